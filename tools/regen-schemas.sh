#!/usr/bin/env bash
# Regenerate the checked-in Rust code for every FlatBuffers schema in schema/.
#
# Needs planus-cli 1.3.0 (`cargo install planus-cli --version 1.3.0 --locked`);
# the generated code checks at compile time that it matches the planus crate.
# Output is run through rustfmt so `cargo fmt --check` stays stable.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

planus_bin="${PLANUS:-$(command -v planus || echo "$HOME/.cargo/bin/planus")}"
if [[ ! -x "$planus_bin" ]]; then
    echo "error: planus not found; install it with: cargo install planus-cli --version 1.3.0 --locked" >&2
    exit 1
fi

# schema file -> generated Rust file
generate() {
    local schema="$1" output="$2"
    mkdir -p "$(dirname "$output")"
    "$planus_bin" rust -o "$output" "$schema"
    rustfmt --edition 2021 "$output"
    echo "generated $output from $schema"
}

generate schema/program.fbs crates/etmlx-pte/src/generated/program.rs
generate schema/flat_tensor.fbs crates/etmlx-pte/src/generated/flat_tensor.rs

# The MLX delegate schema belongs to etmlx-mlx; regenerate it when present.
if [[ -f schema/mlx_delegate.fbs ]]; then
    generate schema/mlx_delegate.fbs crates/etmlx-mlx/src/generated/mlx_delegate.rs
fi
