#!/usr/bin/env bash
# On the GPU machine (after MLX's CUDA wheel is installed): etmlx against mlx-lm on the same MLX library in
# interleaved rounds, with A/B levers of etmlx inside every round, then `bench --profile` of the first workload
# with and without each lever. One call's worth of measurement (on an H200: ~1.5 min for W1 bf16 + 4-bit in 6
# rounds, ~3.5 min with four levers in 3 rounds, ~3.5 min for W0, W1 4/8-bit and W2 in 3 rounds).
#   tools/gpu/run-rounds.sh BIN_DIR MODELS_DIR MLX_LM_WHEEL WORKLOADS ROUNDS [NAME=FLAGS ...]
# BIN_DIR holds etmlx or etmlx.xz; WORKLOADS is a regex on '<workload>-<variant>' (e.g. 'W1-(bf16|4w)');
# NAME=FLAGS are `etmlx bench` flags of a lever (e.g. 'stage4=--mlx-option submit_every=4').
# PROMPTS (default 128,512,2048), GENS (128) and REPS (5) set the tests.
# Writes $OUT/rounds/{results.jsonl,log.txt,report.md} and $OUT/profiles.txt.
set -uo pipefail
bin=$1; models=$2; wheel=$3; w=$4; rounds=$5; shift 5
source /tmp/mlx-site/env.sh
[ -x "$bin/etmlx" ] || { xz -dkc "$bin/etmlx.xz" > /tmp/etmlx && chmod +x /tmp/etmlx && bin=/tmp; }
[ -d /tmp/mlx-lm/mlx_lm ] || python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall('/tmp/mlx-lm')" "$wheel"
levers=(); for l in "$@"; do levers+=(--lever-set "$l"); done
python3 python/bench_harness.py run --plan gpu --out "$OUT/rounds" --etmlx "$bin/etmlx" --models "$models" \
  --mlx-lm-path /tmp/mlx-lm -p "${PROMPTS:-128,512,2048}" -n "${GENS:-128}" -r "${REPS:-5}" --timeout 240 \
  --rounds "$rounds" --only "(etmlx|mlx-lm) ($w)" "${levers[@]}" 2>&1 | grep -E '^\[harness\] (etmlx|mlx-lm)'
python3 python/bench_harness.py report "$OUT/rounds" --markdown "$OUT/rounds/report.md" > /dev/null
sed -n '/etmlx ÷ peer, per round/,$p' "$OUT/rounds/report.md"
first=$(ls "$models" | grep -E "^($w)\.pte$" | head -1)
for l in "default=" "$@"; do
  echo "== ${first%.pte} ${l%%=*}: ${l#*=}" >> "$OUT/profiles.txt"
  # shellcheck disable=SC2086
  "$bin/etmlx" bench "$models/$first" -p "${PROMPTS:-128,512,2048}" -n 0 -r 5 --synthetic-weights --profile \
    ${l#*=} 2>&1 | grep -E 'per call|^\| pp' >> "$OUT/profiles.txt"
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >> "$OUT/profiles.txt"
