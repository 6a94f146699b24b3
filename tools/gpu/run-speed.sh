#!/usr/bin/env bash
# On the GPU machine: decode/prefill A/B runs of etmlx against mlx-lm on the same MLX library, through
# python/bench_harness.py, all records in one results.jsonl (each A/B lever labelled with --lever).
#   tools/gpu/run-speed.sh BIN_DIR MODELS_DIR MLX_LM_WHEEL WORKLOADS [LEVER=ARGS ...]
# WORKLOADS: a regex on '<workload>-<variant>', e.g. 'W1-(bf16|4w)'.
# BIN_DIR holds etmlx (or etmlx.xz). Every LEVER=ARGS pair runs the etmlx rows again with those bench flags
# (a leading env:VAR=VALUE,... sets MLX environment variables instead). Writes $OUT/speed/{results.jsonl,log.txt}
# and $OUT/profiles.txt (etmlx bench --profile of W1 bf16 and 4w, pipelined and host loops). ROUNDS=N runs
# etmlx and mlx-lm back to back N times per workload, alternating (bench_harness.py --rounds).
set -uo pipefail
bin=$1; models=$2; wheel=$3; w=$4; shift 4
source /tmp/mlx-site/env.sh
[ -x "$bin/etmlx" ] || { xz -dkc "$bin/etmlx.xz" > /tmp/etmlx && chmod +x /tmp/etmlx && bin=/tmp; }
[ -d /tmp/mlx-lm/mlx_lm ] || python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall('/tmp/mlx-lm')" "$wheel"
h() { python3 python/bench_harness.py run --plan gpu --out "$OUT/speed" --etmlx "$bin/etmlx" --models "$models" \
  --mlx-lm-path /tmp/mlx-lm -p "${PROMPTS:-128,512}" -n "${GENS:-128}" -r "${REPS:-5}" --timeout 240 \
  ${ROUNDS:+--rounds "$ROUNDS"} "$@"; }
h --only "(etmlx|mlx-lm) ($w)"
for lever in "$@"; do
  name=${lever%%=*}; flags=${lever#*=}
  if [[ $flags == env:* ]]; then
    (IFS=, ; for kv in ${flags#env:}; do export "$kv"; done; h --only "etmlx ($w)" --lever "$name")
  else
    h --only "etmlx ($w)" --lever "$name" --etmlx-args="$flags"
  fi
done
for m in ${PROFILE_MODELS:-W1-bf16 W1-4w}; do
  for loop in "" --host-decode; do
    [ -e "$models/$m.pte" ] || continue
    echo "== $m $loop" >> "$OUT/profiles.txt"
    "$bin/etmlx" bench "$models/$m.pte" -p 128 -n 128 -r 3 --synthetic-weights --profile $loop >> "$OUT/profiles.txt" 2>&1
  done
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >> "$OUT/profiles.txt"
