#!/usr/bin/env bash
# Final GPU check: the release test binaries and the op-suite subset on CUDA with every default on.
set -uo pipefail
source /tmp/mlx-site/env.sh
cd /tmp/c8 && for f in *.xz; do xz -d $f; chmod +x ${f%.xz}; done; cd - >/dev/null
mkdir -p /work && ln -sfn $PWD /work/main
for t in passes_fixtures delegate_device_step pipelined_decode generate_tiny_llama elementwise shape; do
  echo "== $t"; MLX_ENABLE_TF32=0 /tmp/c8/$t --test-threads=1 2>&1 | grep -E "test result|FAILED|panicked"
done
mkdir -p /tmp/conf
MLX_ENABLE_TF32=0 python3 python/conformance.py run --suite tests/conformance/subset --runner /tmp/c8/op_test_runner \
  --jobs 4 --report /tmp/conf/report.json --md /tmp/conf/report.md > /tmp/conf/run.log 2>&1; echo "conformance run rc=$?"
python3 python/conformance.py check --report /tmp/conf/report.json --known-gaps tests/conformance/known_gaps.txt --no-allow-metal 2>&1 | tail -3
cp /tmp/conf/report.md $OUT/ 2>/dev/null; tail -5 /tmp/conf/run.log
