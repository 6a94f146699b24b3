#!/usr/bin/env bash
# `etmlx serve` against the official `openai` Python client (python/serve_test.py): installs `openai` into
# ~/.cache/etmlx/openai-venv on first use, builds the etmlx binary, and runs the test, which bounds its own time
# and always stops the servers it starts.
#   usage: tools/test-serve.sh [serve_test.py arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${ETMLX_OPENAI_VENV:-$HOME/.cache/etmlx/openai-venv}"
if ! "$venv/bin/python" -c "import openai" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "openai>=1.50,<3"
fi
cargo build --locked -q -p etmlx-cli --bin etmlx
timeout 480 "$venv/bin/python" python/serve_test.py --etmlx target/debug/etmlx --time-limit 420 "$@"
