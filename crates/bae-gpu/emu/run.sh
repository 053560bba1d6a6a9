#!/usr/bin/env bash
# Builds every kernel in kernels/*.cu as host C++ against the emulator (cuda_emu.h) and runs the
# harness: the kernels' logic checked on a machine without a GPU. Needs a C++20 compiler
# ($CXX, default g++).
#   run.sh [--build-only] [--tsan] [build-dir]
# builds build-dir/{harness,planted} and, with --tsan, the same with -fsanitize=thread in
# build-dir/tsan/; then (unless --build-only) runs build-dir/harness.
# Kernels get -ffp-contract=fast, as NVRTC contracts by default (--fmad=true); the emulated
# __f*_rn / __d*_rn intrinsics stay unfused (cuda_emu.h), so the kernels that rely on them are
# still bit-exact, and the references (harness.cpp) keep -ffp-contract=off.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KERNELS="$(cd "$HERE/../../../kernels" && pwd)"
BUILD_ONLY=0 TSAN=0
while [[ $# -gt 0 && "$1" == --* ]]; do
    case "$1" in
        --build-only) BUILD_ONLY=1 ;;
        --tsan) TSAN=1 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
OUT="${1:-${TMPDIR:-/tmp}/bae-gpu-emu}"
CXX="${CXX:-g++}"
# -O2: GCC forms FMAs only with -fexpensive-optimizations (and an FMA target: -march=native)
BASE=(-std=c++20 -O2 -pthread -I"$HERE" -I"$KERNELS")
if echo 'int main(){}' | "$CXX" -march=native -x c++ - -o /dev/null 2>/dev/null; then
    BASE+=(-march=native)
fi
pids=()
# build VARIANT_DIR RUNTIME_FLAGS EXTRA_FLAGS...: kernels, runtime, harness and planted bugs
build() {
    local out="$1" rt="$2"; shift 2
    mkdir -p "$out"
    rm -f "$out"/k_*.o  # a removed kernel must not linger in a reused build dir
    for cu in "$KERNELS"/*.cu; do
        "$CXX" "${BASE[@]}" "$@" -ffp-contract=fast -include cuda_emu.h -include kernels.h -x c++ -c "$cu" \
            -o "$out/k_$(basename "$cu" .cu).o" &
        pids+=($!)
    done
    "$CXX" "${BASE[@]}" "$@" -ffp-contract=fast -c "$HERE/planted.cpp" -o "$out/planted.o" &
    pids+=($!)
    "$CXX" "${BASE[@]}" $rt -ffp-contract=off -c "$HERE/emu_runtime.cpp" -o "$out/emu_runtime.o" &
    pids+=($!)
    "$CXX" "${BASE[@]}" "$@" -ffp-contract=off -c "$HERE/harness.cpp" -o "$out/harness.o" &
    pids+=($!)
}
build "$OUT" ""
# the runtime stays uninstrumented and only annotates (emu_runtime.cpp)
[[ $TSAN == 1 ]] && build "$OUT/tsan" "-DEMU_TSAN=1 -g" -fsanitize=thread -g
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
[[ $status == 0 ]] || { echo "run.sh: compile failed" >&2; exit 1; }
link() {
    local out="$1"; shift
    "$CXX" -pthread "$@" "$out"/k_*.o "$out/emu_runtime.o" "$out/harness.o" -o "$out/harness"
    "$CXX" -pthread "$@" "$out/emu_runtime.o" "$out/planted.o" -o "$out/planted"
}
link "$OUT"
[[ $TSAN == 1 ]] && link "$OUT/tsan" -fsanitize=thread
[[ $BUILD_ONLY == 1 ]] && exit 0
"$OUT/harness"
