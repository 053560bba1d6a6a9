"""bae.load, open_codes and open_store against what the `bae` command wrote and computes."""

import json
import os
import subprocess

import numpy as np
import pytest

import bae
from conftest import ROOT, bae_binary, run_cli


def synth_x(data):
    return bae._native.read_tensors(str(data))["activations"].astype(np.float32)


def test_python_encode_equals_bae_encode(tiny_run):
    run, data, codes_dir = tiny_run
    m = bae.load(run)
    assert (m.arch, m.d, m.d_code, m.kind) == ("bae", 16, 64, "run")
    assert m.config["arch"] == "bae" and m.config["expand"] == 4 and m.summary is not None
    stored = bae.open_codes(codes_dir)
    assert stored.complete and stored.codes.shape == (700, 64)
    x = synth_x(data)
    assert m.encode(x) == stored.codes  # bit for bit, Rust CLI vs Python
    np.testing.assert_array_equal(m.encode(x, packed=False), stored.codes.to_dense())


def test_decode_and_reconstruct_match_numpy(tiny_run):
    run, data, _ = tiny_run
    m = bae.load(run)
    w = m.weights()
    x = synth_x(data)[:100]
    z = x.astype(np.float64) @ w["W_enc"] + w["b_enc"]
    np.testing.assert_allclose(m.pre(x), z, rtol=1e-4, atol=1e-5)
    h = m.encode(x)
    want = h.to_dense().astype(np.float64) @ w["W_dec"] + w["b_dec"]
    np.testing.assert_allclose(m.decode(h), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(m.decode(h), m.reconstruct(x))
    np.testing.assert_array_equal(m.decode(h.to_dense()), m.decode(h))


def test_saelens_export_loads_as_the_run(tiny_run, tmp_path):
    run, data, _ = tiny_run
    out = tmp_path / "exp"
    run_cli("export", "--run", str(run), "--format", "saelens", "--out", str(out), "--with-reference", "32")
    e, m = bae.load(out), bae.load(run)
    assert (e.kind, e.arch, e.d, e.d_code) == ("saelens", "bae", 16, 64)
    assert e.config["architecture"] == "binary"
    ref = bae.load_reference(out)
    assert ref["x"].dtype == np.float32
    np.testing.assert_array_equal(e.encode(ref["x"], packed=False), ref["feature_acts"] > 0)
    x = synth_x(data)
    assert e.encode(x) == m.encode(x)
    np.testing.assert_array_equal(e.encode(x, semantics="saelens"), m.encode(x, packed=False).astype(np.float32))


@pytest.fixture(scope="module")
def topk_run(tiny_run, tmp_path_factory):
    """A TopK (k = 5) baseline trained by `bae train` on the tiny run's data."""
    run = tmp_path_factory.mktemp("topk") / "run"
    run_cli("train", "--device", "cpu", "--arch", "topk", "--k", "5", "--data", str(tiny_run[1]), "--out",
            str(run), "--steps", "20", "--batch-size", "64", "--quiet")
    return run


def test_sae_baseline_encodes_activations(tiny_run, topk_run):
    _, data, _ = tiny_run
    m = bae.load(topk_run)
    assert (m.arch, m.k) == ("topk", 5)
    x = synth_x(data)[:50]
    a = m.encode(x)
    assert a.dtype == np.float32 and a.shape == (50, m.d_code)
    z = m.pre(x)
    kth = -np.sort(-z, axis=1)[:, 4:5]
    np.testing.assert_array_equal(a, np.where(z >= kth, z, 0))
    np.testing.assert_allclose(m.reconstruct(x), m.decode(a), rtol=0, atol=0)


@pytest.fixture(scope="module")
def extract(tmp_path_factory):
    """A small real extraction (SmolLM2, block 8) with `bae extract`; needs the model of
    scripts/setup.sh (fails instead of skipping with REQUIRE_MODEL=1, as CI sets)."""
    model = ROOT / "data/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    if not model.is_file():
        if os.environ.get("REQUIRE_MODEL") == "1":
            pytest.fail("REQUIRE_MODEL=1 but the model is missing: run bash scripts/setup.sh")
        pytest.skip("model missing (bash scripts/setup.sh)")
    out = tmp_path_factory.mktemp("extract") / "acts"
    r = subprocess.run([str(bae_binary()), "extract", "--blocks", "8", "--tokens", "700", "--shard-rows", "300",
                        "--out", str(out), "--quiet"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out / "block8"


def test_open_store_maps_the_shards(extract):
    s = bae.open_store(extract)
    assert s.d == 576 and s.dtype == "f16" and len(s) == sum(sh.rows for sh in s.shards) >= 600
    assert len(s.shards) >= 2 and s.manifest["block"] == 8
    first = s.shards[0]
    assert isinstance(first.activations, np.memmap) and first.activations.dtype == np.float16
    n0 = first.rows
    idx = [0, 1, n0 - 1, n0, len(s) - 1]
    want = np.concatenate([sh.activations for sh in s.shards]).astype(np.float32)[idx]
    np.testing.assert_array_equal(s.rows(idx), want)
    docs = s.column("doc_ids")
    assert docs.shape == (len(s),) and (np.diff(docs) >= 0).all()
    assert s.column("positions").min() >= 2  # the attention sink and BOS are left out by default


def test_bad_folders_and_inputs_raise_the_cli_message(tmp_path, tiny_run):
    with pytest.raises(bae.BaeError, match="no such folder"):
        bae.load(tmp_path / "missing")
    with pytest.raises(bae.BaeError, match="neither a run folder"):
        bae.load(tmp_path)
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(bae.BaeError, match="config.json: not a bae run config"):
        bae.load(tmp_path)
    with pytest.raises(bae.BaeError, match="manifest.json|no such"):
        bae.open_store(tmp_path)
    with pytest.raises(bae.BaeError):
        bae.open_codes(tmp_path)
    m = bae.load(tiny_run[0])
    with pytest.raises(bae.BaeError, match="x has 3 columns, the model .* expects 16"):
        m.encode(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(bae.BaeError, match="codes have 5 columns"):
        m.decode(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(bae.BaeError, match="semantics"):
        m.encode(np.zeros((2, 16)), semantics="other")
    json.dumps(m.config)


def test_with_k_forward_and_codes(tiny_run, topk_run):
    _, data, _ = tiny_run
    m = bae.load(topk_run)
    x = synth_x(data)[:40]
    m9 = m.with_k(9)
    assert (m9.k, m.k) == (9, 5)
    feats, out = m9.forward(x)
    assert ((feats != 0).sum(axis=1) >= 9).all()
    np.testing.assert_array_equal(m9.codes(x), feats != 0)
    np.testing.assert_array_equal(out, m9.decode(feats))
    with pytest.raises(bae.BaeError, match="not topk"):
        bae.load(tiny_run[0]).with_k(3)


def test_stubs_name_every_native_function_and_class():
    import re
    stub = (ROOT / "python/bae/_native.pyi").read_text()
    declared = set(re.findall(r"^(?:def|class) (\w+)", stub, flags=re.M))
    public = {n for n in dir(bae._native) if not n.startswith("_")}
    assert public <= declared, f"not in _native.pyi: {sorted(public - declared)}"


def test_write_store_then_train_and_read_back(tmp_path, rng):
    x = rng.standard_normal((1000, 24)).astype(np.float32)
    docs = np.repeat(np.arange(10), 100)
    store = tmp_path / "store"
    n = bae.write_store(store, x[:600], doc_ids=docs[:600], positions=np.tile(np.arange(100), 6),
                        metadata={"model": "toy", "block": 3, "docs": [f"d{i}" for i in range(10)], "note": 1},
                        dtype="f32", shard_rows=250, complete=False)
    assert n == 600
    # a second call continues the store (an interrupted writer's shards stay)
    n = bae.write_store(store, x[600:], doc_ids=docs[600:], positions=np.tile(np.arange(100), 4),
                        dtype="f32", shard_rows=250)
    assert n == 1000
    s = bae.open_store(store)
    assert len(s) == 1000 and s.d == 24 and [sh.rows for sh in s.shards] == [250, 250, 100, 250, 150]
    assert s.manifest["model"] == "toy" and s.manifest["block"] == 3 and s.manifest["complete"]
    np.testing.assert_array_equal(s.rows(np.arange(1000)), x)
    np.testing.assert_array_equal(s.column("doc_ids"), docs)
    run = tmp_path / "run"
    run_cli("train", "--device", "cpu", "--data", str(store), "--out", str(run), "--steps", "10",
            "--batch-size", "64", "--quiet")
    assert bae.load(run).d == 24
    with pytest.raises(bae.BaeError, match="width 24 as f32; these are 5 wide as f32"):
        bae.write_store(store, x[:, :5], dtype="f32")
    with pytest.raises(bae.BaeError, match="doc_ids has 3 entries for 4 rows"):
        bae.write_store(tmp_path / "other", x[:4], doc_ids=[0, 1, 2])
    f16 = tmp_path / "f16"
    bae.write_store(f16, x[:10])
    np.testing.assert_array_equal(bae.open_store(f16).shards[0].activations, x[:10].astype(np.float16))
