#!/usr/bin/env bash
# On the GPU machine: `etmlx serve` under python/serve_load.py (1, 4 and 16 streaming clients) with 1 and 4 slots,
# on a weight-stripped export with synthetic weights. Results: $OUT/serve-load.jsonl, $OUT/serve-load.log.
#   tools/gpu/run-serve-load.sh BIN_DIR MODEL.pte TOKENIZER_DIR
set -uo pipefail
bin=$1; model=$2; tok=$3
source /tmp/mlx-site/env.sh
[ -x "$bin/etmlx" ] || { xz -dkc "$bin/etmlx.xz" > /tmp/etmlx && chmod +x /tmp/etmlx && bin=/tmp; }
name=$(basename "$model" .pte)
for slots in 1 4; do
  "$bin/etmlx" serve "$model" --tokenizer "$tok" --synthetic-weights --slots "$slots" --port 0 \
    > /tmp/serve.out 2>> "$OUT/serve-load.log" &
  pid=$!
  url=""
  for _ in $(seq 1 120); do
    url=$(grep -o 'http://[0-9.:]*' /tmp/serve.out | head -1)
    [ -n "$url" ] && break
    sleep 0.5
  done
  if [ -z "$url" ]; then echo "server with $slots slots did not start" >> "$OUT/serve-load.log"; kill "$pid"; continue; fi
  python3 python/serve_load.py --base "$url" --model "$name" --label "etmlx serve, $slots slots, H200" \
    --clients 1,4,16 --requests 64 --max-tokens 64 --time-limit 60 --json >> "$OUT/serve-load.jsonl" 2>> "$OUT/serve-load.log"
  kill -TERM "$pid"; wait "$pid"; echo "server with $slots slots exited $?" >> "$OUT/serve-load.log"
done
cat "$OUT/serve-load.jsonl"
