#!/usr/bin/env bash
# On the GPU machine: `etmlx bench --profile` of builds and settings one after another on the same machine,
# for A/B of a build, an MLXBackend option or an MLX environment variable.
#   tools/gpu/profile-ab.sh MODELS_DIR 'MODEL ...' LABEL=BIN[;VAR=VALUE...][;--flag...] ...
# BIN may be an .xz. Each variant runs `bench -p $PROMPT -n $GEN -r $REPS --synthetic-weights --profile` on every
# MODEL; output goes to $OUT/profile-ab.txt, one "== LABEL MODEL" header per run.
set -uo pipefail
models=$1; names=$2; shift 2
out=$OUT/profile-ab.txt
for variant in "$@"; do
  label=${variant%%=*}; IFS=';' read -r -a parts <<< "${variant#*=}"
  bin=${parts[0]}
  if [[ $bin == *.xz ]]; then xz -dc "$bin" > "/tmp/$label.bin" && chmod +x "/tmp/$label.bin"; bin=/tmp/$label.bin; fi
  envs=(); flags=()
  for p in "${parts[@]:1}"; do [[ $p == --* ]] && flags+=($p) || envs+=("$p"); done
  for m in $names; do
    echo "== $label $m ${parts[*]:1}" >> "$out"
    env "${envs[@]}" "$bin" bench "$models/$m.pte" -p "${PROMPT:-128}" -n "${GEN:-128}" -r "${REPS:-5}" \
      --synthetic-weights --profile "${flags[@]}" >> "$out" 2>&1
  done
done
