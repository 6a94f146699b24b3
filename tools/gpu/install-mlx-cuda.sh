#!/usr/bin/env bash
# On the GPU machine: reassemble the mlx-cuda-13 wheel from the parts copied into /tmp/parts by
# earlier calls (cudapart.aa, .ab, .ac + the mlx front-end wheel + mlx-cuda-install.sh) and install it.
# Prints nothing but errors; afterwards `source /tmp/mlx-site/env.sh`.
set -euo pipefail
parts=/tmp/parts
[ -e /tmp/mlx-site/env.sh ] && exit 0
cat "$parts"/cudapart.a? > "$parts/mlx_cuda_13.part.aa"
: > "$parts/mlx_cuda_13.part.ab"
bash "$parts/mlx-cuda-install.sh" "$parts" /tmp/mlx-site >/dev/null
