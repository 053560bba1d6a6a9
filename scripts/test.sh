#!/usr/bin/env bash
# The project's test command (README): fetch the model and text if missing, install headless
# chromium (the HTML report's browser test), then run every test: the workspace's, then the
# Python package's (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f scripts/setup.sh ]; then
  bash scripts/setup.sh
fi
# without chromium the browser test skips with a line, or fails where REQUIRE_CHROMIUM=1 (CI)
bash scripts/chromium_setup.sh || echo "test.sh: chromium could not be installed; the browser test skips"
REQUIRE_MODEL=1 cargo test --workspace
# the Python package (python/): build the wheel into data/py-venv, then its pytest suite; the CLI
# tests use the debug `bae` that cargo test just built, and fail instead of skipping without it
PY=$(bash scripts/python_setup.sh)
REQUIRE_MODEL=1 REQUIRE_BAE_BIN=1 BAE_BIN=target/debug/bae "$PY" -m pytest -q -p no:cacheprovider python/tests
