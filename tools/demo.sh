#!/usr/bin/env bash
# Placeholder until the LLM demo lands: builds etmlx and inspects + runs a bundled official export.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${MLX_DIR:-}" ]; then MLX_DIR=$(tools/setup-mlx.sh); export MLX_DIR; fi
cargo build --release -q -p etmlx-cli
target/release/etmlx inspect tests/fixtures/mlp/model.pte
target/release/etmlx run tests/fixtures/mlp/model.pte --input tests/fixtures/mlp/input.bin
