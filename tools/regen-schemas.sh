#!/usr/bin/env bash
# Regenerate the checked-in Rust code for every FlatBuffers schema in schema/.
#
#   tools/regen-schemas.sh           rewrite the generated files
#   tools/regen-schemas.sh --check   regenerate into a temp dir and fail if anything differs
#
# Needs planus-cli 1.3.0 (`cargo install planus-cli --version 1.3.0 --locked`); the generated
# code checks at compile time that it matches the planus crate. Output is run through rustfmt
# so that `cargo fmt --check` stays stable.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

check=0
if [[ "${1:-}" == "--check" ]]; then
    check=1
elif [[ $# -gt 0 ]]; then
    echo "usage: $0 [--check]" >&2
    exit 2
fi

planus_bin="${PLANUS:-$(command -v planus || echo "$HOME/.cargo/bin/planus")}"
if [[ ! -x "$planus_bin" ]]; then
    echo "error: planus not found; install it with: cargo install planus-cli --version 1.3.0 --locked" >&2
    exit 1
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
status=0

# schema file -> generated Rust file
generate() {
    local schema="$1" output="$2"
    local fresh="$scratch/$(basename "$output")"
    "$planus_bin" rust -o "$fresh" "$schema"
    rustfmt --edition 2021 "$fresh"
    if [[ $check -eq 1 ]]; then
        if ! cmp -s "$fresh" "$output"; then
            echo "out of date: $output (run tools/regen-schemas.sh)" >&2
            status=1
        fi
    else
        mkdir -p "$(dirname "$output")"
        cp "$fresh" "$output"
        echo "generated $output from $schema"
    fi
}

generate schema/program.fbs crates/etmlx-pte/src/generated/program.rs
generate schema/flat_tensor.fbs crates/etmlx-pte/src/generated/flat_tensor.rs

# The MLX delegate schema belongs to etmlx-mlx; regenerate it when present.
if [[ -f schema/mlx_delegate.fbs ]]; then
    generate schema/mlx_delegate.fbs crates/etmlx-mlx/src/generated/mlx_delegate.rs
fi

exit $status
