#!/usr/bin/env bash
# On the GPU machine: `etmlx bench` over the weight-stripped benchmark exports (synthetic weights), then
# the peer baselines (mlx-lm, HF transformers eager) on the same shapes. Results to $OUT (few files).
#   usage: tools/gpu/run-bench.sh BIN_DIR MODELS_DIR MLX_LM_WHEEL [etmlx|peers|all]
set -uo pipefail
bin=$1; models=$2; wheel=$3; what=${4:-all}
source /tmp/mlx-site/env.sh
log=$OUT/bench-log.txt
if [ "$what" != peers ]; then
  for m in W0-fp32 W0-bf16 W0-8w W0-4w W1-bf16 W1-8w W1-4w W2-bf16 W2-4w; do
    [ -e "$models/$m.pte" ] || { echo "$m: no export" >> "$log"; continue; }
    echo "== etmlx $m" >> "$log"
    "$bin/etmlx" bench "$models/$m.pte" --synthetic-weights -p 128,512 -n 128 -r 3 --json 2>> "$log" \
      | tee -a "$log" | tail -1 >> "$OUT/etmlx-bench.jsonl"
  done
  "$bin/etmlx" bench "$models/W1-bf16.pte" --synthetic-weights -p 0 -n 128 -r 3 --profile 2>&1 \
    | tee -a "$log" > "$OUT/etmlx-profile-W1-bf16.txt"
fi
if [ "$what" != etmlx ]; then
  python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall('/tmp/mlx-lm')" "$wheel"
  for spec in "W0 bf16" "W0 4w" "W1 bf16" "W1 8w" "W1 4w" "W2 bf16" "W2 4w"; do
    set -- $spec
    echo "== mlx-lm $1 $2" >> "$log"
    timeout 300 python3 tools/gpu/peer_bench.py --runtime mlx-lm --shape "$1" --dtype "$2" \
      --mlx-lm-path /tmp/mlx-lm -p 128 -n 128 -r 3 --out "$OUT/peers.jsonl" >> "$log" 2>&1
  done
  for s in W0 W1 W2; do
    echo "== hf $s bf16" >> "$log"
    timeout 300 python3 tools/gpu/peer_bench.py --runtime hf --shape "$s" --dtype bf16 \
      -p 128 -n 128 -r 3 --out "$OUT/peers.jsonl" >> "$log" 2>&1
  done
fi
tail -5 "$log"
