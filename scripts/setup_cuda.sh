#!/usr/bin/env bash
# Install NVRTC 13.0 (+ the CUDA headers the kernels include) from PyPI wheels into ./.cuda
# (git-ignored), so that `cargo build -p bae-gpu` compiles kernels/*.cu to sm_90a cubins on a
# machine without a GPU or a CUDA toolkit. Idempotent: re-running with everything present only
# checks it.
#
# Pinned to 13.0 on purpose: an unpinned install gets NVRTC 13.5, whose PTX (ISA 9.5) the
# driver 580 (CUDA 13.0) of the GPU machines rejects at module load.
#
# Afterwards the build finds the wheels at ./.cuda; set BAE_CUDA_DIR to use another folder.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${BAE_CUDA_DIR:-$ROOT/.cuda}"
PKGS=(
    nvidia-cuda-nvrtc==13.0.88
    nvidia-cuda-runtime==13.0.96
    nvidia-cuda-cccl==13.0.85
    nvidia-cuda-crt==13.0.88
)
LIB="$DEST/nvidia/cu13/lib"
INC="$DEST/nvidia/cu13/include"
STAMP="$DEST/.bae-setup-13.0.88"

present() {
    [[ -f "$STAMP" ]] && ls "$LIB"/libnvrtc.so.13* >/dev/null 2>&1 &&
        ls "$LIB"/libnvrtc-builtins.so.13* >/dev/null 2>&1 &&
        [[ -f "$INC/cuda_bf16.h" && -f "$INC/cuda_runtime.h" && -d "$INC/cccl" ]]
}

if present; then
    echo "setup_cuda: NVRTC 13.0 wheels present in $DEST"
else
    echo "setup_cuda: installing ${PKGS[*]} into $DEST"
    # one pip call for all wheels: separate `--target` calls would clobber the shared tree
    rm -rf "$DEST"
    mkdir -p "$DEST"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$DEST" "${PKGS[@]}"
    if ! ls "$LIB"/libnvrtc.so.13* >/dev/null 2>&1; then
        echo "setup_cuda: libnvrtc.so.13 not found under $LIB after install" >&2
        exit 1
    fi
    touch "$STAMP"
fi

# The build script watches build.rs; touching it makes cargo re-run it and pick the wheels up.
touch "$ROOT/crates/bae-gpu/build.rs"
ls "$LIB"
