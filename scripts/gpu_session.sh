#!/usr/bin/env bash
# Everything a session with a lent GPU runs, in two halves.
#
#   bash scripts/gpu_session.sh prepare        # here (Rust + the NVRTC wheels): build, strip and
#                                              # copy the GPU test/bench binaries into .gpu-bin/
#   bash scripts/gpu_session.sh run STAGE...   # on the GPU machine (no Rust there), from the
#                                              # repository root with .gpu-bin carried; logs go
#                                              # to $OUT (or gpu-logs/), one file per stage
#
# Stages: parity (kernel + step parity, REQUIRE_GPU=1), train (`bae train --device cuda` against
# the CPU, exact GPU resume), sanitize (compute-sanitizer memcheck + racecheck on the parity
# tests), bench (criterion kernel benches + the step table), torch (the official PyTorch step and
# the best-effort variant), all (every stage in that order). Each stage's exit status is appended
# to $OUT/summary.txt, and a failing stage does not stop the others.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.gpu-bin

# The executables cargo builds for `cargo <args> --no-run`, one per line.
executables() {
    cargo "$@" --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])
'
}

prepare() {
    set -e
    bash scripts/setup_cuda.sh
    cargo build --release --bin bae
    rm -rf "$BIN" && mkdir -p "$BIN"
    local exe
    for exe in $(executables test --release -p bae-gpu --test parity) \
        $(executables bench -p bae-gpu --bench kernels) \
        $(executables test --release --test gpu_train); do
        # drop cargo's hash: parity, kernels, gpu_train
        cp "$exe" "$BIN/$(basename "$exe" | sed 's/-[0-9a-f]\{16\}$//')"
    done
    cp target/release/bae "$BIN/bae"
    strip "$BIN"/*
    # .gpu-bin is a build output: keep it out of git without touching .gitignore's tracked rules
    grep -qx "/$BIN" .git/info/exclude 2>/dev/null || echo "/$BIN" >>.git/info/exclude
    ls -la "$BIN"
    du -sh "$BIN"
}

# cuBLAS / cuBLASLt come from the PyTorch wheels on the GPU machine.
cublas_path() {
    python3 -c 'import nvidia.cublas as m, os; print(os.path.join(list(m.__path__)[0], "lib"))' 2>/dev/null ||
        dirname "$(find / -name 'libcublasLt.so.13*' 2>/dev/null | head -1)"
}

stage() {
    local name=$1
    shift
    local t0=$SECONDS
    "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc, $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
}

run() {
    OUT=${OUT:-gpu-logs}
    mkdir -p "$OUT"
    export LD_LIBRARY_PATH="$(cublas_path):${LD_LIBRARY_PATH:-}"
    export REQUIRE_GPU=1
    nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
    local stages=("$@")
    [ "${stages[*]}" = all ] && stages=(parity train sanitize bench torch)
    local s
    for s in "${stages[@]}"; do
        case $s in
        parity) stage parity "$BIN/parity" --test-threads=1 --nocapture ;;
        train) stage train env BAE_BIN="$BIN/bae" "$BIN/gpu_train" --test-threads=1 --nocapture ;;
        sanitize)
            stage memcheck compute-sanitizer --tool memcheck --error-exitcode 9 "$BIN/parity" --test-threads=1
            stage racecheck compute-sanitizer --tool racecheck --error-exitcode 9 "$BIN/parity" --test-threads=1
            ;;
        bench) stage bench env BAE_BENCH_QUICK="${BAE_BENCH_QUICK:-1}" "$BIN/kernels" --bench ;;
        torch) stage torch python3 scripts/torch_step.py ;;
        *) echo "unknown stage $s" | tee -a "$OUT/summary.txt" ;;
        esac
    done
}

case "${1:-}" in
prepare) prepare ;;
run)
    shift
    [ $# -gt 0 ] || set -- all
    run "$@"
    ;;
*)
    sed -n '2,14p' "$0"
    exit 2
    ;;
esac
