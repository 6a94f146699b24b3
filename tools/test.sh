#!/usr/bin/env bash
# The test command: installs MLX's CPU library if needed, runs every Rust test of the workspace, the benchmark
# harness's own checks (python/test_bench_harness.py), `etmlx serve`
# against the official `openai` Python client (tools/test-serve.sh), then the official MLX op-suite subset (tests/conformance/subset) through our op_test_runner, failing on any
# failure that tests/conformance/known_gaps.txt does not list.
#   usage: tools/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${MLX_DIR:-}" ]; then
  MLX_DIR=$(tools/setup-mlx.sh)
  export MLX_DIR
fi
echo "using MLX from $MLX_DIR" >&2
cargo test --workspace --locked "$@"

python3 python/test_bench_harness.py

tools/test-serve.sh

cargo build --locked -q -p etmlx-cli --bin op_test_runner
report=target/conformance/report.json
mkdir -p target/conformance
python3 python/conformance.py run --suite tests/conformance/subset --runner target/debug/op_test_runner \
  --jobs 2 --report "$report" --md target/conformance/report.md > target/conformance/run.log
python3 python/conformance.py check --report "$report" --known-gaps tests/conformance/known_gaps.txt --no-allow-metal
