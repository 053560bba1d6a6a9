"""Regenerates the committed fuzz corpus with the *reference* writers (numpy, the safetensors
package, llama.cpp's gguf package) and with slices of real files, so the fuzzer also starts from
files it did not write itself. The in-code seeds (src/seeds.rs) cover the rest.

    data/venv/bin/python crates/bae-fuzz/corpus/make_corpus.py [--real]

--real also takes slices of data/activations/block15 (a real `bae extract` block), the header
of data/models/SmolLM2-135M-Instruct.Q4_1.gguf, and a checkpoint written by `bae train`
(target/release/bae) when those exist. Every file stays a few KB.
"""

import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import save as st_save, load as st_load

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
rng = np.random.default_rng(7)


def out_files(target, name, files):
    """A folder input (manifest + shards) in the one-buffer form the fuzz targets take:
    `=== file NAME` + newline before each file, a newline before each marker but the first."""
    parts = [(b"=== file " if i == 0 else b"\n=== file ") + n.encode() + b"\n" + data
             for i, (n, data) in enumerate(sorted(files.items()))]
    out(target, name + ".files", b"".join(parts))


def out(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def npy_bytes(arr, version=None):
    import io

    b = io.BytesIO()
    if version is None:
        np.save(b, arr, allow_pickle=False)
    else:
        np.lib.format.write_array(b, arr, version=version, allow_pickle=False)
    return b.getvalue()


def npy():
    a = rng.standard_normal((3, 4))
    out("npy", "np-f4.npy", npy_bytes(a.astype("<f4")))
    out("npy", "np-f2.npy", npy_bytes(a.astype("<f2")))
    out("npy", "np-f8.npy", npy_bytes(a.astype("<f8")))
    out("npy", "np-f4-v2.npy", npy_bytes(a.astype("<f4"), version=(2, 0)))
    out("npy", "np-f4-v3.npy", npy_bytes(a.astype("<f4"), version=(3, 0)))
    out("npy", "np-fortran.npy", npy_bytes(np.asfortranarray(a.astype("<f4"))))
    out("npy", "np-big-endian.npy", npy_bytes(a.astype(">f4")))
    out("npy", "np-i4.npy", npy_bytes((a * 10).astype("<i4")))
    out("npy", "np-1d.npy", npy_bytes(a.ravel().astype("<f4")))
    out("npy", "np-3d.npy", npy_bytes(a.reshape(2, 3, 2).astype("<f4")))
    out("npy", "np-empty.npy", npy_bytes(np.zeros((0, 4), "<f4")))
    out("npy", "np-scalar.npy", npy_bytes(np.array(1.5, "<f4")))
    special = a.astype("<f2")
    special[1, 2] = np.inf
    special[2, 0] = np.nan
    out("npy", "np-f2-nonfinite.npy", npy_bytes(special))
    rec = np.zeros(3, dtype=[("x", "<f4"), ("y", "<f4")])
    out("npy", "np-structured.npy", npy_bytes(rec))
    wide = rng.standard_normal((2, 300)).astype("<f4")
    out("npy", "np-wide.npy", npy_bytes(wide))


def safetensors():
    a = rng.standard_normal((4, 3))
    meta = {"model": "toy", "block": "3"}
    out("safetensors", "st-f16.safetensors", st_save({"activations": a.astype(np.float16)}, meta))
    out("safetensors", "st-f32.safetensors", st_save({"activations": a.astype(np.float32)}))
    out("safetensors", "st-f64.safetensors", st_save({"activations": a.astype(np.float64)}))
    out("safetensors", "st-other-name.safetensors", st_save({"h": a.astype(np.float32)}))
    n = 4
    shard = {
        "activations": a.astype(np.float16),
        "doc_ids": np.array([0, 0, 1, 1], np.int32),
        "token_ids": np.arange(100, 100 + n, dtype=np.int32),
        "positions": np.array([1, 2, 1, 2], np.int32),
    }
    out("safetensors", "st-shard.safetensors", st_save(shard, {"d": "3", "dtype": "f16"}))
    out("safetensors", "st-u8.safetensors", st_save({"activations": (a * 10).astype(np.uint8)}))


def tensors():
    d, dc = 4, 8
    p = {
        "W_enc": rng.standard_normal((d, dc)).astype(np.float32),
        "b_enc": rng.standard_normal(dc).astype(np.float32),
        "W_dec": rng.standard_normal((dc, d)).astype(np.float32),
        "b_dec": rng.standard_normal(d).astype(np.float32),
    }
    out("tensors", "model-f32.safetensors", st_save(p, {"arch": "bae"}))
    out("tensors", "model-f64.safetensors", st_save({k: v.astype(np.float64) for k, v in p.items()}))
    out("tensors", "model-f16.safetensors", st_save({k: v.astype(np.float16) for k, v in p.items()}))
    ints = {
        "doc_ids": np.array([0, 1, -1], np.int32),
        "token_ids": np.array([1, 2**60, -5], np.int64),
        "positions": np.array([[1, 2], [3, 4]], np.int32),
        "flags": np.array([True, False]),
        "bytes": np.arange(5, dtype=np.uint8),
        "u16": np.arange(3, dtype=np.uint16),
        "scalar": np.array(2.5, np.float64),
        "empty": np.zeros((0, 3), np.float32),
    }
    out("tensors", "mixed-dtypes.safetensors", st_save(ints))


def toy_vocab():
    # GPT-2 byte alphabet for a few bytes, plus merges "Ġ t", "h e", "Ġt he"
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    b2c = {b: chr(c) for b, c in zip(bs, cs)}
    alphabet = b" \nabcdefghijklmnopqrstuvwxyz0123456789!.,'HTW"
    tokens = ["<|endoftext|>"] + [b2c[b] for b in alphabet] + ["Ġt", "he", "Ġthe"]
    merges = ["Ġ t", "h e", "Ġt he"]
    return tokens, merges


def gguf_files():
    import gguf

    tokens, merges = toy_vocab()
    d = 8

    def base(path, arch="llama", version_note=None, extra=None):
        w = gguf.GGUFWriter(path, arch)
        w.add_block_count(1)
        w.add_context_length(64)
        w.add_embedding_length(d)
        w.add_feed_forward_length(2 * d)
        w.add_head_count(2)
        w.add_head_count_kv(1)
        w.add_layer_norm_rms_eps(1e-5)
        w.add_rope_freq_base(10000.0)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("smollm")
        w.add_token_list(tokens)
        w.add_token_types([1] * len(tokens))
        w.add_token_merges(merges)
        w.add_bos_token_id(0)
        w.add_eos_token_id(0)
        if extra:
            extra(w)
        emb = rng.standard_normal((len(tokens), d)).astype(np.float16)
        w.add_tensor("token_embd.weight", emb)
        w.add_tensor("output_norm.weight", np.ones(d, np.float32))
        q8 = np.frombuffer(bytes([0x00, 0x3C] + list(range(32))), dtype=np.uint8)
        w.add_tensor("blk.0.ffn_up.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    with tempfile.TemporaryDirectory() as t:
        for name, extra in [
            ("llamacpp-toy.gguf", None),
            ("llamacpp-align64.gguf", lambda w: w.add_custom_alignment(64)),
            ("llamacpp-arch-qwen.gguf", None),
        ]:
            p = os.path.join(t, name)
            base(p, arch="qwen2" if "qwen" in name else "llama", extra=extra)
            with open(p, "rb") as f:
                out("gguf", name, f.read())


def real_slices():
    """Slices of real files: a 4-row extract block, the real model's metadata with a tiny vocab."""
    block = os.path.join(ROOT, "data", "activations", "block15")
    shard_path = os.path.join(block, "shard-00000.safetensors")
    if os.path.exists(shard_path):
        with open(shard_path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
        meta = header.get("__metadata__", {})
        full = st_load(open(shard_path, "rb").read())
        rows = 2
        small = {k: np.ascontiguousarray(v[:rows]) for k, v in full.items()}
        small["activations"] = np.ascontiguousarray(small["activations"][:, :64])
        meta = dict(meta, d="64")
        shard = st_save(small, meta)
        man = json.load(open(os.path.join(block, "manifest.json")))
        man["d"] = 64
        man["tokens_total"] = rows
        man["tokens_budget"] = rows
        man["shards"] = [dict(man["shards"][0], rows=rows, candidates_end=rows)]
        man["docs"] = man["docs"][:2]
        out_files("store", "real-block15-head", {
            "shard-00000.safetensors": shard,
            "manifest.json": json.dumps(man, indent=2).encode(),
        })
        out("safetensors", "real-shard-head.safetensors", shard)

    model = os.path.join(ROOT, "data", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if os.path.exists(model):
        import gguf

        r = gguf.GGUFReader(model)
        tf = r.fields["tokenizer.ggml.tokens"]
        tokens = [bytes(tf.parts[i]).decode() for i in tf.data[:190]]
        mf = r.fields["tokenizer.ggml.merges"]
        merges = [bytes(mf.parts[i]).decode() for i in mf.data[:40]]
        for m in merges:  # the merges' parts and products join the vocabulary
            a, _, b = m.partition(" ")
            for t in (a, b, a + b):
                if t not in tokens:
                    tokens.append(t)
        with tempfile.TemporaryDirectory() as t:
            p = os.path.join(t, "x.gguf")
            w = gguf.GGUFWriter(p, "llama")
            skip = ("GGUF.", "general.architecture", "tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type", "tokenizer.chat_template")
            for k, f in r.fields.items():
                if k.startswith(skip) or k == "general.architecture":
                    continue
                v = f.contents()
                vt = f.types[0]
                if k in ("llama.embedding_length",):
                    v = 8
                if k in ("llama.feed_forward_length",):
                    v = 16
                if k == "llama.attention.head_count":
                    v = 2
                if k == "llama.attention.head_count_kv":
                    v = 1
                if k == "llama.vocab_size":
                    v = len(tokens)
                if vt == gguf.GGUFValueType.ARRAY:
                    w.add_array(k, v)
                else:
                    w.add_key_value(k, v, vt)
            w.add_token_list(tokens)
            w.add_token_types([1] * len(tokens))
            w.add_token_merges(merges)
            w.add_tensor("token_embd.weight", rng.standard_normal((len(tokens), 8)).astype(np.float16))
            w.add_tensor("output_norm.weight", np.ones(8, np.float32))
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_tensors_to_file()
            w.close()
            out("gguf", "real-smollm2-header-200tok.gguf", open(p, "rb").read())

    bae = os.path.join(ROOT, "target", "release", "bae")
    if os.path.exists(bae):
        with tempfile.TemporaryDirectory() as t:
            data = os.path.join(t, "x.npy")
            np.save(data, rng.standard_normal((64, 4)).astype(np.float32))
            run = os.path.join(t, "run")
            subprocess.run(
                [bae, "train", "--data", data, "--out", run, "--expand", "2", "--steps", "3",
                 "--batch-size", "16", "--device", "cpu"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            out("checkpoint", "bae-train-checkpoint.safetensors", open(os.path.join(run, "checkpoint.safetensors"), "rb").read())
            out("checkpoint", "bae-train-model.safetensors", open(os.path.join(run, "model.safetensors"), "rb").read())
            out("tensors", "bae-train-model.safetensors", open(os.path.join(run, "model.safetensors"), "rb").read())


def checkpoint():
    d, dc = 4, 8
    t = {}
    for name, shape in [("W_enc", (d, dc)), ("b_enc", (dc,)), ("W_dec", (dc, d)), ("b_dec", (d,))]:
        for prefix in ("", "adam.m.", "adam.v."):
            v = rng.standard_normal(shape).astype(np.float32)
            t[prefix + name] = np.abs(v) if prefix == "adam.v." else v
    meta = {"format": "bae-checkpoint-1", "step": "12", "adam_t": "12"}
    out("checkpoint", "st-checkpoint.safetensors", st_save(t, meta))


def store():
    files = {}
    shards = []
    for i, rows in enumerate([3, 2]):
        sh = {
            "activations": rng.standard_normal((rows, 2)).astype(np.float32),
            "doc_ids": np.array([i] * rows, np.int32),
            "token_ids": np.arange(rows, dtype=np.int32),
            "positions": np.arange(1, rows + 1, dtype=np.int32),
        }
        name = f"shard-{i:05d}.safetensors"
        files[name] = st_save(sh, {"shard": str(i)})
        shards.append({"file": name, "rows": rows})
    files["manifest.json"] = json.dumps({"d": 2, "shards": shards}).encode()
    out_files("store", "two-shards", files)


if __name__ == "__main__":
    npy()
    safetensors()
    tensors()
    checkpoint()
    store()
    gguf_files()
    if "--real" in sys.argv:
        real_slices()
