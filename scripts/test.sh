#!/usr/bin/env bash
# The project's test command (README): fetch the model and text if missing, install headless
# chromium (the HTML report's browser test), then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f scripts/setup.sh ]; then
  bash scripts/setup.sh
fi
# without chromium the browser test skips with a line, or fails where REQUIRE_CHROMIUM=1 (CI)
bash scripts/chromium_setup.sh || echo "test.sh: chromium could not be installed; the browser test skips"
REQUIRE_MODEL=1 cargo test --workspace
