#!/usr/bin/env python3
"""Independent check of bae-llm's forward pass with Hugging Face transformers.

Loads the same GGUF file with transformers (which dequantises it through the `gguf` package),
runs the token ids that the Rust side dumped, and prints the cosine similarity per token between
the two residual streams for every dumped block. HF's `hidden_states[b + 1]` is the residual after
layer b, which is bae-llm's "block b" (for the last block HF applies the final norm, and so does
this script to the Rust side before comparing).

    bash scripts/crosscheck_setup.sh          # once: data/venv with torch, transformers, gguf
    cargo run --release -p bae-llm --example dump_hidden -- --tokens 256 --blocks 0,8,15,29
    data/venv/bin/python scripts/crosscheck_hidden.py

Exit status 1 if the minimum cosine at any block is below --min-cos (default 0.9999).
"""

import argparse
import os
import sys

os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF loader draws a progress bar

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump", default="data/crosscheck/rust_hidden.safetensors")
    ap.add_argument("--model", default="data/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--min-cos", type=float, default=0.9999)
    args = ap.parse_args()

    with safe_open(args.dump, "np") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    ids = torch.tensor(tensors["token_ids"].astype(np.int64))[None, :]
    blocks = [int(b) for b in meta["blocks"].split(",")]
    print(f"dump: {args.dump}: {ids.shape[1]} tokens, blocks {blocks}")

    folder, name = os.path.split(os.path.abspath(args.model))
    torch.set_num_threads(os.cpu_count() or 1)
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)

    ok = True
    for b in blocks:
        ref = out.hidden_states[b + 1][0].double().numpy()
        ours = tensors[f"block{b}"].astype(np.float64)
        if b + 1 == len(out.hidden_states) - 1:
            # HF's last hidden state has the final RMSNorm applied: apply it to ours too.
            with torch.no_grad():
                ours = model.model.norm(torch.tensor(ours, dtype=torch.float32)).double().numpy()
        cos = (ref * ours).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(ours, axis=1))
        rel = np.linalg.norm(ref - ours, axis=1) / np.linalg.norm(ref, axis=1)
        norms = np.linalg.norm(ref, axis=1)
        print(
            f"block {b:2d}: cosine min {cos.min():.7f} mean {cos.mean():.7f} "
            f"(positions >= 2: min {cos[2:].min():.7f}); relative error max {rel.max():.2e}; "
            f"norm pos0 {norms[0]:.0f}, median {np.median(norms):.1f}"
        )
        ok &= bool(cos.min() >= args.min_cos)

    # Tokenizer agreement on digit-free text (HF's GGUF tokenizer does not split digits).
    if "sample_ids" in tensors and "sample" in meta:
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        hf_ids = tok(meta["sample"], add_special_tokens=False)["input_ids"]
        same = list(map(int, tensors["sample_ids"])) == list(hf_ids)
        print(f"tokenizer on {len(meta['sample'])} digit-free chars: {len(hf_ids)} HF ids, identical: {same}")
        ok &= same

    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
