#!/usr/bin/env bash
# Interleaved rounds: etmlx and mlx-lm on the same workload back to back, the order alternating per round.
set -uo pipefail
source /tmp/mlx-site/env.sh
xz -dc /tmp/c7/etmlx.xz > /tmp/etmlx && chmod +x /tmp/etmlx
python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall('/tmp/mlx-lm')" /tmp/c7/mlx_lm-0.32.2-py3-none-any.whl
h() { python3 python/bench_harness.py run --plan gpu --out $OUT/$1 --etmlx /tmp/etmlx --models /tmp/c7 --mlx-lm-path /tmp/mlx-lm -p 128,512 -n 128 -r 5 --timeout 240 --only "$2" 2>&1 | grep -E "^\[harness\] (etmlx|mlx-lm)"; }
pair() { if [ $(( $2 % 2 )) -eq 1 ]; then h r$2 "etmlx ($1)"; h r$2 "mlx-lm ($1)"; else h r$2 "mlx-lm ($1)"; h r$2 "etmlx ($1)"; fi; }
for r in 1 2 3 4 5 6; do pair W1-bf16 $r; done
for r in 1 2; do pair W1-4w $r; pair W1-8w $r; pair W0-bf16 $r; done
