#!/usr/bin/env bash
# The project's test command (README): fetch the model and text if missing, then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f scripts/setup.sh ]; then
  bash scripts/setup.sh
fi
REQUIRE_MODEL=1 cargo test --workspace
