#!/usr/bin/env bash
# On the GPU machine: python/bench_harness.py's gpu plan (etmlx over the weight-stripped exports with synthetic
# weights, mlx-lm on the same MLX, HF transformers eager, and the official XNNPACK runtime on the host CPU).
# Results go to $OUT/harness-gpu (results.jsonl, log.txt).
#   tools/gpu/run-harness.sh BIN_DIR MODELS_DIR XNNPACK_DIR MLX_LM_WHEEL [harness run options, e.g. --only REGEX]
set -uo pipefail
bin=$1; models=$2; xnnpack=$3; wheel=$4; shift 4
source /tmp/mlx-site/env.sh
[ -d /tmp/mlx-lm/mlx_lm ] || python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall('/tmp/mlx-lm')" "$wheel"
python3 python/bench_harness.py run --plan gpu --out "$OUT/harness-gpu" --etmlx "$bin/etmlx" --models "$models" \
  --xnnpack-models "$xnnpack" --xnnpack-bench "$xnnpack/xnnpack_bench" --mlx-lm-path /tmp/mlx-lm "$@"
