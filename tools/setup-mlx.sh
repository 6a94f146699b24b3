#!/usr/bin/env bash
# Installs MLX's C++ library from its PyPI wheel into a cached virtualenv and prints the MLX_DIR
# to build etmlx against. Idempotent; the second run only prints.
#   usage: tools/setup-mlx.sh [--backend cpu|cuda13|metal]   (default: metal on macOS, cpu elsewhere)
#   env:   ETMLX_HOME (default ~/.cache/etmlx), MLX_VERSION (default 0.32.4), PYTHON (default python3)
set -euo pipefail
home=${ETMLX_HOME:-$HOME/.cache/etmlx}
version=${MLX_VERSION:-0.32.4}
python=${PYTHON:-python3}
backend=""
while [ $# -gt 0 ]; do
  case "$1" in
    --backend) backend=$2; shift 2 ;;
    *) echo "setup-mlx.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$backend" ]; then
  if [ "$(uname -s)" = Darwin ]; then backend=metal; else backend=cpu; fi
fi
case "$backend" in
  cpu) pkg="mlx-cpu==$version" ;;
  cuda13) pkg="mlx-cuda-13==$version" ;;
  metal) pkg="mlx-metal==$version" ;;
  *) echo "setup-mlx.sh: unknown backend '$backend' (cpu, cuda13, metal)" >&2; exit 2 ;;
esac
venv="$home/mlx-$backend-venv"
stamp="$venv/.etmlx-$pkg"
if [ ! -e "$stamp" ]; then
  mkdir -p "$home"
  "$python" -m venv "$venv" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$pkg" >&2
  touch "$stamp"
fi
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mlx_dir="$site/mlx"
if [ ! -e "$mlx_dir/include/mlx/mlx.h" ]; then
  echo "setup-mlx.sh: $pkg installed but $mlx_dir/include/mlx/mlx.h is missing" >&2
  exit 1
fi
echo "$mlx_dir"
