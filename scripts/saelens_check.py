#!/usr/bin/env python3
"""Round trip of `bae export --format saelens` through the real SAELens 6 package.

For each export folder (written with `bae export ... --with-reference N`):
  * SAE.load_from_disk loads it (a BAE after bae.saelens registers "binary");
  * SAELens's encode / decode / forward on the N reference rows (real hidden states from the run's
    validation split) are compared with bae's own outputs stored by the export (reference.safetensors);
  * the `bae` package (python/) is compared with both, from the export folder and from the run folder;
  * for TopK, the effect of SAELens's ReLU on the kept values is measured (rows where bae's k-th
    largest pre-activation is negative), also with k raised at inference on the same weights.

Errors are relative to the reference tensor: max |a - b| / max |b| (the figure held to --tol, default
1e-5), and, for information, the worst row's ||a - b|| / ||b|| (large for a row whose only active
feature is tiny: its f32 rounding is relative to the row's inputs, not to that value). Exit status 1 if
a comparison where the forwards should agree exceeds --tol, or if BAE codes differ anywhere.

  bash scripts/saelens_setup.sh
  ./target/release/bae export --run runs/export-topk --out runs/saelens/topk --with-reference 512
  data/saelens-venv/bin/python scripts/saelens_check.py runs/saelens/*
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

import bae  # the package of python/ (scripts/saelens_setup.sh installs it into the venv)


def row_rel(a: np.ndarray, b: np.ndarray) -> float:
    """max over rows of ||a_i - b_i|| / ||b_i|| (rows where both are zero count 0), in float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    num = np.linalg.norm(a - b, axis=1)
    den = np.linalg.norm(b, axis=1)
    r = np.where(den > 0, num / np.where(den > 0, den, 1), np.where(num > 0, np.inf, 0))
    return float(r.max()) if r.size else 0.0


def max_rel(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b|, in float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = np.abs(b).max()
    d = np.abs(a - b).max()
    return float(d / scale) if scale > 0 else (0.0 if d == 0 else float("inf"))


def errs(a, b) -> dict:
    return {"row_rel": row_rel(a, b), "max_rel": max_rel(a, b)}


def fmt(e: dict) -> str:
    return f"{e['row_rel']:.2e} / {e['max_rel']:.2e}"


def fvu(x: np.ndarray, x_hat: np.ndarray) -> float:
    x = x.astype(np.float64)
    x_hat = x_hat.astype(np.float64)
    return float(((x - x_hat) ** 2).sum() / ((x - x.mean(axis=0)) ** 2).sum())


def check_one(folder: Path, tol: float, torch, SAE) -> tuple[dict, list[str]]:
    marker = json.loads((folder / "bae_export.json").read_text())
    cfg = json.loads((folder / "cfg.json").read_text())
    if not (folder / "reference.safetensors").is_file():
        raise SystemExit(f"{folder}: no reference.safetensors; export with `bae export ... --with-reference 512`")
    ref = bae.load_reference(folder)
    x, z_ref, f_ref, out_ref = ref["x"], ref["hidden_pre"], ref["feature_acts"], ref["sae_out"]
    arch = cfg["architecture"]
    failures: list[str] = []
    res: dict = {"folder": str(folder), "architecture": arch, "bae_arch": marker["bae_arch"], "rows": int(x.shape[0])}

    def need(name: str, e: dict):
        res[name] = e
        worst = e["max_rel"]
        if not worst <= tol:
            failures.append(f"{folder}: {name} relative error {worst:.3e} > {tol:g}")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sae = SAE.load_from_disk(str(folder), device="cpu")
    sae.eval()
    res["saelens_class"] = type(sae).__name__
    with torch.no_grad():
        xt = torch.from_numpy(x)
        z_sl = (xt @ sae.W_enc + sae.b_enc).numpy()
        f_sl = sae.encode(xt)
        out_sl = sae.decode(f_sl).numpy()
        fwd_sl = sae(xt).numpy()
        f_sl = f_sl.numpy()
    sp = bae.read_tensors(folder / "sparsity.safetensors")["sparsity"]
    res["sparsity_shape"] = list(sp.shape)
    # log10(density + 1e-10) is at most log10(1 + 1e-10), a hair above 0
    if list(sp.shape) != [cfg["d_sae"]] or not (sp <= 1e-6).all():
        failures.append(f"{folder}: sparsity.safetensors has shape {list(sp.shape)} or values > 0")

    # the numpy module, from the export and from the run folder
    mod = bae.load(folder)
    run_dir = Path(marker["run"])
    mod_run = bae.load(run_dir) if run_dir.is_dir() else None
    if mod_run is not None:
        w, w_run = mod.weights(), mod_run.weights()
        same = all(np.array_equal(w[n], w_run[n]) for n in ("W_enc", "b_enc", "W_dec", "b_dec"))
        res["module_run_weights_equal"] = same
        if not same:
            failures.append(f"{folder}: weights differ from the run folder's model.safetensors")

    need("hidden_pre saelens vs bae", errs(z_sl, z_ref))
    need("forward() vs decode(encode())", errs(fwd_sl, out_sl))
    f_mod, out_mod = mod.forward(x)
    res["fvu_bae"] = fvu(x, out_ref)

    if arch == "binary":
        c_ref = f_ref > 0
        c_sl = f_sl > 0
        c_mod = mod.codes(x)
        c_run = mod_run.codes(x) if mod_run is not None else c_mod
        res["codes"] = int(c_ref.size)
        res["codes_differ_saelens"] = int((c_sl != c_ref).sum())
        res["codes_differ_module"] = int((c_mod != c_ref).sum())
        res["codes_differ_module_run"] = int((c_run != c_ref).sum())
        res["codes_set"] = int(c_ref.sum())
        res["min_abs_hidden_pre"] = float(np.abs(z_ref).min())
        for k in ("codes_differ_saelens", "codes_differ_module", "codes_differ_module_run"):
            if res[k]:
                bad = np.abs(z_ref[(c_sl if 'saelens' in k else c_mod) != c_ref])
                failures.append(f"{folder}: {k} = {res[k]} (|z| there <= {bad.max():.2e})")
        need("features saelens vs bae", errs(f_sl, f_ref))
        need("sae_out saelens vs bae", errs(out_sl, out_ref))
        need("features module vs bae", errs(f_mod, f_ref))
        need("sae_out module vs bae", errs(out_mod, out_ref))
    elif arch == "topk":
        k = int(cfg["k"])
        kept = f_ref != 0
        neg_rows = (f_ref < 0).any(axis=1)
        tie_rows = kept.sum(axis=1) > k
        agree = ~(neg_rows | tie_rows)
        res["k"] = k
        res["rows_with_negative_kept"] = int(neg_rows.sum())
        res["rows_with_ties"] = int(tie_rows.sum())
        res["kept_negative"] = int((f_ref < 0).sum())
        res["kept"] = int(kept.sum())
        if agree.any():
            need("features saelens vs bae (rows without negative kept values)", errs(f_sl[agree], f_ref[agree]))
            need("sae_out saelens vs bae (rows without negative kept values)", errs(out_sl[agree], out_ref[agree]))
        res["sae_out saelens vs bae (all rows)"] = errs(out_sl, out_ref)
        res["fvu_saelens"] = fvu(x, out_sl)
        need("features module vs bae", errs(f_mod, f_ref))
        need("sae_out module vs bae", errs(out_mod, out_ref))
        f_mod_sl, out_mod_sl = mod.forward(x, semantics="saelens")
        need("features module(saelens semantics) vs saelens", errs(f_mod_sl, f_sl))
        need("sae_out module(saelens semantics) vs saelens", errs(out_mod_sl, out_sl))
        # the same weights with k raised at inference: how much the ReLU changes once negatives are kept
        sweep = []
        for kk in (k, 64, 128, 256, 512, 1024, 2048):
            if kk < k or kk > cfg["d_sae"]:
                continue
            mod_k = mod.with_k(kk)
            fb, ob = mod_k.forward(x, semantics="bae")
            fs, os_ = mod_k.forward(x, semantics="saelens")
            sweep.append(
                {
                    "k": kk,
                    "rows_with_negative": float((fb < 0).any(axis=1).mean()),
                    "kept_negative": float((fb < 0).sum() / max((fb != 0).sum(), 1)),
                    "rows_with_ties": int(((fb != 0).sum(axis=1) > kk).sum()),
                    "recon_row_rel": row_rel(os_, ob),
                    "fvu_bae": fvu(x, ob),
                    "fvu_saelens": fvu(x, os_),
                }
            )
        res["k_sweep"] = sweep
    elif arch == "jumprelu":
        theta = float(mod.threshold)
        flips = ((z_sl > theta) != (z_ref > theta)).sum()
        res["threshold"] = theta
        res["threshold_flips"] = int(flips)
        res["active"] = int((f_ref != 0).sum())
        need("features saelens vs bae", errs(f_sl, f_ref))
        need("sae_out saelens vs bae", errs(out_sl, out_ref))
        need("features module vs bae", errs(f_mod, f_ref))
        need("sae_out module vs bae", errs(out_mod, out_ref))
    else:  # standard
        res["active"] = int((f_ref != 0).sum())
        need("features saelens vs bae", errs(f_sl, f_ref))
        need("sae_out saelens vs bae", errs(out_sl, out_ref))
        need("features module vs bae", errs(f_mod, f_ref))
        need("sae_out module vs bae", errs(out_mod, out_ref))
    return res, failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("exports", nargs="+", type=Path, help="folders written by `bae export --with-reference N`")
    ap.add_argument("--tol", type=float, default=1e-5, help="largest relative error accepted (default 1e-5)")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    a = ap.parse_args()

    import torch
    import sae_lens
    from sae_lens import SAE

    import bae.saelens  # noqa: F401  (registers "binary")

    torch.set_grad_enabled(False)
    print(f"sae_lens {sae_lens.__version__}, torch {torch.__version__}, numpy {np.__version__}; tolerance {a.tol:g}")
    results, failures = [], []
    for folder in a.exports:
        if not (folder / "cfg.json").is_file():
            print(f"{folder}: not an export folder (no cfg.json)", file=sys.stderr)
            return 2
        res, fail = check_one(folder, a.tol, torch, SAE)
        results.append(res)
        failures += fail
        print(f"\n{folder}: bae {res['bae_arch']} -> SAELens {res['architecture']} ({res['saelens_class']}), "
              f"{res['rows']} rows; errors as worst row ||a-b||/||b|| / max|a-b|/max|b|")
        for k, v in res.items():
            if isinstance(v, dict) and "row_rel" in v:
                print(f"  {k:58s} {fmt(v)}")
        for k in ("codes", "codes_set", "codes_differ_saelens", "codes_differ_module", "codes_differ_module_run",
                  "min_abs_hidden_pre", "k", "kept", "kept_negative", "rows_with_negative_kept", "rows_with_ties",
                  "threshold", "threshold_flips", "active", "fvu_bae", "fvu_saelens", "module_run_weights_equal"):
            if k in res:
                print(f"  {k:58s} {res[k]}")
        for s in res.get("k_sweep", []):
            print(
                f"  k {s['k']:5d} (same weights): rows with a negative kept value {100 * s['rows_with_negative']:6.2f} %, "
                f"kept values negative {100 * s['kept_negative']:6.2f} %, rows with ties {s['rows_with_ties']}, "
                f"reconstruction SAELens vs bae "
                f"{s['recon_row_rel']:.3e}, FVU bae {s['fvu_bae']:.4f} SAELens {s['fvu_saelens']:.4f}"
            )
    if a.json:
        a.json.write_text(json.dumps(results, indent=1) + "\n")
    print()
    if failures:
        for f in failures:
            print("FAIL", f)
        return 1
    print(f"ok: {len(results)} exports agree with bae within {a.tol:g} where the forwards should agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
