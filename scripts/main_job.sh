#!/usr/bin/env bash
# The main job on the embedded default: fetch SmolLM2-135M and the State of the Union corpus, build,
# extract block-15 hidden states, train a BAE with the official standard settings scaled to the slice,
# and report (validation metrics, bae eval with downstream fidelity, charts, feature pages). Re-running reuses what was fetched and extracted.
#
# Knobs (environment): BAE_TOKENS (default 200000 rows), BAE_BLOCK (15), BAE_EPOCHS (8), BAE_OUT (runs/main),
# BAE_PRESET (sparse: features that are actually rare, the recommended setting; official: the paper's
# standard usage, lambda_e = lambda_c = 1e-7).
set -euo pipefail
cd "$(dirname "$0")/.."
TOKENS="${BAE_TOKENS:-200000}"
BLOCK="${BAE_BLOCK:-15}"
EPOCHS="${BAE_EPOCHS:-8}"
OUT="${BAE_OUT:-runs/main}"
PRESET="${BAE_PRESET:-sparse}"
ACTS="data/activations"

start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start ))s] $*"; }

stamp "fetching model and text (scripts/setup.sh)"
bash scripts/setup.sh

stamp "building (release)"
cargo build --release --quiet --bin bae
BAE=target/release/bae

stamp "extracting $TOKENS hidden states of block $BLOCK"
"$BAE" extract --blocks "$BLOCK" --tokens "$TOKENS" --out "$ACTS"

# sparse (default): bae train --preset sparse, the setting the README's sweep recommends (scale-free FVU
# loss, every firing rate pulled to 0.5 %). official: lr 5e-4, batch 512, lambda_e = lambda_c = 1e-7,
# sign_s, expand 4, 80/20 split, entropy on from a quarter of the run (official: epoch 500 of 2000).
# Either way the epoch count is scaled to the slice.
case "$PRESET" in
sparse)
    stamp "training a BAE with --preset sparse ($EPOCHS epochs; BAE_PRESET=official for the paper's settings) -> $OUT"
    PRESET_ARGS=(--preset sparse)
    ;;
official)
    stamp "training a BAE with the official standard settings ($EPOCHS epochs) -> $OUT"
    PRESET_ARGS=()
    ;;
*)
    echo "BAE_PRESET must be sparse or official, not '$PRESET'" >&2
    exit 2
    ;;
esac
"$BAE" train --data "$ACTS/block$BLOCK" --out "$OUT" --epochs "$EPOCHS" --checkpoint-every 5m "${PRESET_ARGS[@]}"

stamp "evaluation on the held-out rows, with downstream fidelity on the LLM"
"$BAE" eval --run "$OUT" --quiet

stamp "feature report (samples as the paper's ComSem pipeline collects them; HTML in $OUT/report)"
"$BAE" features --run "$OUT" --n 8 --examples 6 --html "$OUT/report" --quiet | tail -n 60

stamp "done: $OUT/summary.json, $OUT/eval.json, $OUT/eval_rates.svg, $OUT/density.svg, $OUT/training.svg, $OUT/features.md, $OUT/report/index.html"
