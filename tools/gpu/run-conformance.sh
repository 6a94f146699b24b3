#!/usr/bin/env bash
# On the GPU machine: run the exported op suite (unpacked under /tmp/opsuite) and the fixtures through
# the carried release binaries on MLX's CUDA backend; results go to $OUT.
#   usage: tools/gpu/run-conformance.sh BIN_DIR SUITE_DIR
set -uo pipefail
bin=$1; suite=$2
source /tmp/mlx-site/env.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/gpu.txt"
python3 -c 'import mlx.core as mx; print("mlx", mx.__version__, mx.default_device())' >> "$OUT/gpu.txt" 2>&1
"$bin/etmlx" run tests/fixtures/add/model.pte --input tests/fixtures/add/input.bin --json >> "$OUT/gpu.txt" 2>&1
python3 python/conformance.py run --suite "$suite" --runner "$bin/op_test_runner" --jobs 8 \
  --report "$OUT/cuda-report.json" --md "$OUT/cuda-report.md" > "$OUT/cuda-run.log" 2>&1
tail -3 "$OUT/cuda-run.log"
