#!/usr/bin/env bash
# Builds and installs the `bae` Python package (python/, PyO3 + maturin) into data/py-venv
# (git-ignored) with numpy and pytest, for the package's tests (python/tests) and benchmark.
# Idempotent; the wheel is rebuilt every time (cargo reuses its build). Needs only PyPI and
# crates.io. Prints the venv's python path last.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/data/py-venv"
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
"$VENV/bin/python" -m pip install --quiet "numpy>=1.21" "pytest>=7" "maturin>=1.7,<2"
# the same cargo target folder as the workspace, so a CI run builds the shared crates once
CARGO_TARGET_DIR="$ROOT/target" "$VENV/bin/python" -m pip install --quiet --force-reinstall --no-deps "$ROOT/python"
"$VENV/bin/python" -c "import bae; print('python_setup: bae', bae.__file__)" >&2
echo "$VENV/bin/python"
