#!/usr/bin/env bash
# The test command: installs MLX's CPU library if needed, then runs every test of the workspace.
#   usage: tools/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${MLX_DIR:-}" ]; then
  MLX_DIR=$(tools/setup-mlx.sh)
  export MLX_DIR
fi
echo "using MLX from $MLX_DIR" >&2
cargo test --workspace --locked "$@"
