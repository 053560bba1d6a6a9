#!/usr/bin/env bash
# Create data/venv (git-ignored) with Python transformers + gguf for scripts/crosscheck_hidden.py.
# Idempotent: an existing venv whose imports work is kept.
# Only PyPI is reachable here, so torch comes from PyPI (the default Linux wheel; it runs on CPU).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/data/venv"
PY="$VENV/bin/python"

if [[ -x "$PY" ]] && "$PY" -c "import torch, transformers, accelerate, gguf, numpy, safetensors" 2>/dev/null; then
    echo "crosscheck venv: present ($VENV)"
    exit 0
fi

echo "crosscheck venv: creating $VENV"
python3 -m venv "$VENV"
"$PY" -m pip install --quiet --upgrade pip
echo "crosscheck venv: installing torch, transformers, accelerate, gguf, numpy, safetensors (large download)"
"$PY" -m pip install --quiet torch transformers accelerate gguf numpy safetensors
"$PY" -c "from importlib.metadata import version as v; print('crosscheck venv: ok:', ', '.join(p + ' ' + v(p) for p in ['torch', 'transformers', 'accelerate', 'gguf']))"
