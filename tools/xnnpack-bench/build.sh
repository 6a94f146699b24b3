#!/usr/bin/env bash
# Builds xnnpack_bench against the executorch wheel's C++ runtime (headers + shared libraries) and collects
# the binary and the libraries it needs into OUT (default .gpu/xnnpack) so they can travel to another host.
#   tools/xnnpack-bench/build.sh [OUT] [EXECUTORCH_PACKAGE_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-.gpu/xnnpack}
venv=${ETMLX_HOME:-$HOME/.cache/etmlx}/export-venv
et=${2:-$(ls -d "$venv"/lib/python3*/site-packages/executorch | head -1)}
mkdir -p "$out/lib"
for lib in libexecutorch libexecutorch_kernels_optimized libexecutorch_backend_xnnpack libexecutorch_threadpool \
           libexecutorch_kernels_quantized; do
  cp "$et/lib/$lib.so" "$out/lib/"
done
# --no-as-needed: the kernel and delegate libraries only register themselves from static initialisers.
g++ -std=c++17 -O2 -Wno-deprecated-declarations -DC10_USING_CUSTOM_GENERATED_MACROS -DET_USE_THREADPOOL \
  -I"$et/include" -I"$et/include/executorch/runtime/core/portable_type/c10" \
  "$here/xnnpack_bench.cpp" -o "$out/xnnpack_bench" \
  -L"$out/lib" -Wl,--no-as-needed -lexecutorch_kernels_optimized -lexecutorch_backend_xnnpack \
  -lexecutorch_kernels_quantized -lexecutorch_threadpool -lexecutorch -Wl,--as-needed \
  -Wl,-rpath,'$ORIGIN/lib' -lpthread
echo "$out/xnnpack_bench"
