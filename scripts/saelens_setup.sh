#!/usr/bin/env bash
# Create data/saelens-venv (git-ignored) with SAELens 6.x for scripts/saelens_check.py.
# Idempotent: an existing venv whose imports work is kept.
# Only PyPI is reachable here, so torch is whatever PyPI's default Linux wheel is (it may be the large
# CUDA build; it runs on the CPU either way). The `bae` package (python/) itself needs only numpy;
# torch and sae_lens are for the SAELens round trip. The package is (re)installed every time.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/data/saelens-venv"
PY="$VENV/bin/python"

check() {
    "$PY" - <<'PY' 2>/dev/null
import sae_lens, torch, numpy, safetensors
major = int(sae_lens.__version__.split(".")[0])
raise SystemExit(0 if major == 6 else 1)
PY
}

install_bae() {
    CARGO_TARGET_DIR="$ROOT/target" "$PY" -m pip install --quiet --force-reinstall --no-deps "$ROOT/python"
}

if [[ -x "$PY" ]] && check; then
    echo "saelens venv: present ($VENV)"
    install_bae
    exit 0
fi

echo "saelens venv: creating $VENV"
python3 -m venv "$VENV"
"$PY" -m pip install --quiet --upgrade pip
echo "saelens venv: installing sae-lens 6.x, numpy, safetensors (pulls torch and transformer-lens: large download)"
"$PY" -m pip install --quiet "sae-lens>=6,<7" numpy safetensors
if ! check; then
    echo "saelens venv: sae_lens 6.x does not import in $VENV" >&2
    exit 1
fi
install_bae
"$PY" -c "from importlib.metadata import version as v; print('saelens venv: ok:', ', '.join(p + ' ' + v(p) for p in ['sae-lens', 'torch', 'numpy', 'safetensors']))"
