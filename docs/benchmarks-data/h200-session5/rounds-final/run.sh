#!/usr/bin/env bash
set -uo pipefail
source /tmp/mlx-site/env.sh
xz -dc /tmp/c9/etmlx.xz > /tmp/etmlx && chmod +x /tmp/etmlx
python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall('/tmp/mlx-lm')" /tmp/c9/mlx_lm-0.32.2-py3-none-any.whl
python3 python/bench_harness.py run --plan gpu --out /tmp/rounds --etmlx /tmp/etmlx --models /tmp/c9 --mlx-lm-path /tmp/mlx-lm \
  -p 128,512 -n 128 -r 5 --timeout 120 --rounds 6 --only '(etmlx|mlx-lm) W1-bf16' 2>&1 | grep -E "^\[harness\] (etmlx|mlx-lm)"
python3 python/bench_harness.py report /tmp/rounds --markdown /tmp/rounds/report.md > /dev/null
tail -8 /tmp/rounds/report.md
tar -C /tmp -czf $OUT/rounds-final.tgz rounds
