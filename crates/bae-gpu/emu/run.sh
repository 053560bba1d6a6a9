#!/usr/bin/env bash
# Builds every kernel in kernels/*.cu as host C++ against the emulator (cuda_emu.h) and runs the
# harness: the kernels' logic checked on a machine without a GPU. Needs a C++20 compiler
# ($CXX, default g++). Usage: crates/bae-gpu/emu/run.sh [build-dir]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KERNELS="$(cd "$HERE/../../../kernels" && pwd)"
OUT="${1:-${TMPDIR:-/tmp}/bae-gpu-emu}"
CXX="${CXX:-g++}"
FLAGS=(-std=c++20 -O1 -ffp-contract=off -pthread -I"$HERE" -I"$KERNELS")
mkdir -p "$OUT"
pids=()
for cu in "$KERNELS"/*.cu; do
    name="$(basename "$cu" .cu)"
    "$CXX" "${FLAGS[@]}" -include cuda_emu.h -x c++ -c "$cu" -o "$OUT/$name.o" &
    pids+=($!)
done
"$CXX" "${FLAGS[@]}" -c "$HERE/harness.cpp" -o "$OUT/harness.o" &
pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done
"$CXX" -pthread "$OUT"/*.o -o "$OUT/harness"
"$OUT/harness"
