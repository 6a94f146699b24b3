#!/usr/bin/env bash
set -uo pipefail
source /tmp/mlx-site/env.sh
cd /tmp/c6 && for f in *.xz; do xz -dk $f; chmod +x ${f%.xz}; done; cd - >/dev/null
E=/tmp/c6/etmlx; M=/tmp/c6/W1-bf16.pte
for round in 1 2; do
  for v in 100 400 1000; do echo "r$round ops=$v start=0: $(MLX_MAX_OPS_PER_BUFFER=$v /tmp/c6/decode_step_cost gpu 16 96 0)"; done
  for c in 1 0; do echo "r$round cudnn=$c start=1000: $(MLX_CUDA_USE_CUDNN_SDPA=$c /tmp/c6/decode_step_cost gpu 16 96 1000)"; done
done
b() { echo "== $*"; env "$@" 2>&1 | grep -E "^\| (pp|tg)|per call: [0-9.]+ ms"; }
for round in 1 2; do
  b $E bench $M -p 0 -n 128 -d 1024 -r 5 --synthetic-weights
  b MLX_CUDA_USE_CUDNN_SDPA=0 $E bench $M -p 0 -n 128 -d 1024 -r 5 --synthetic-weights
  b $E bench $M -p 0 -n 128 -r 5 --synthetic-weights
  b MLX_MAX_OPS_PER_BUFFER=400 $E bench $M -p 0 -n 128 -r 5 --synthetic-weights
done
b $E bench $M -p 512,2048 -n 0 -r 5 --synthetic-weights
b MLX_CUDA_USE_CUDNN_SDPA=0 $E bench $M -p 512,2048 -n 0 -r 5 --synthetic-weights
