#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers of untrusted files with cargo-fuzz / libFuzzer under
# AddressSanitizer (README, "Reliability").
#
#   scripts/fuzz.sh TARGET|all SECONDS     campaign(s) of SECONDS each; a log per target in
#                                          fuzz/logs/, new inputs in fuzz/corpus/TARGET/, crashes
#                                          in fuzz/artifacts/TARGET/; prints executions and the last
#                                          cov:/ft: line per target; exit 1 if any found a crash
#   scripts/fuzz.sh coverage TARGET|all    line coverage of the target's parser source files over
#                                          its corpus (cargo fuzz coverage + llvm-cov report)
#   scripts/fuzz.sh list                   the targets
#
# Environment: FUZZ_JOBS (campaigns at a time, default 1), FUZZ_TARGET_DIR (default
# target/fuzz), FUZZ_RSS_MB (default 4096), FUZZ_MALLOC_MB (default 2048), FUZZ_TIMEOUT_S (one
# execution, default 10). Installs cargo-fuzz (cargo install --locked) and, for coverage, llvm-19
# (apt-get) when missing. ASan needs nightly features: RUSTC_BOOTSTRAP=1 on stable, as OSS-Fuzz does.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(safetensors npy tensors store checkpoint gguf codes)
TDIR=${FUZZ_TARGET_DIR:-target/fuzz}
LLVM=/usr/lib/llvm-19/bin

# the parser source files whose line coverage `coverage` reports, per target
sources() {
  case $1 in
    safetensors) echo crates/bae-io/src/activations.rs crates/bae-io/src/safetensors_file.rs crates/bae-io/src/dtype.rs ;;
    npy) echo crates/bae-io/src/activations.rs crates/bae-io/src/npy.rs crates/bae-io/src/dtype.rs ;;
    tensors) echo crates/bae-io/src/tensors.rs crates/bae-io/src/safetensors_file.rs ;;
    store) echo crates/bae-io/src/extract_store.rs crates/bae-io/src/safetensors_file.rs ;;
    checkpoint) echo crates/bae-train/src/checkpoint.rs crates/bae-io/src/tensors.rs crates/bae-io/src/safetensors_file.rs ;;
    gguf) echo crates/bae-llm/src/gguf.rs crates/bae-llm/src/gguf_header.rs crates/bae-llm/src/tokenizer.rs ;;
    codes) echo crates/bae-io/src/code_store.rs crates/bae-io/src/safetensors_file.rs ;;
  esac
}

usage() {
  echo "usage: scripts/fuzz.sh TARGET|all SECONDS | coverage TARGET|all | list   (targets: ${TARGETS[*]})" >&2
  exit 2
}

need_cargo_fuzz() {
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
  fi
}

need_llvm() {
  if [ ! -x "$LLVM/llvm-cov" ] || [ ! -x "$LLVM/llvm-profdata" ]; then
    echo "fuzz.sh: installing llvm-19 (Debian's default llvm-profdata cannot read this rustc's profiles)" >&2
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq && $sudo apt-get install -y -qq llvm-19
  fi
}

pick() {
  if [ "$1" = all ]; then
    echo "${TARGETS[@]}"
  elif [[ " ${TARGETS[*]} " == *" $1 "* ]]; then
    echo "$1"
  else
    echo "fuzz.sh: no target '$1' (targets: ${TARGETS[*]})" >&2
    exit 2
  fi
}

campaign() {
  local t=$1 secs=$2
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" "fuzz/regressions/$t" fuzz/logs
  local rc=0
  RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz --target-dir "$TDIR" "$t" \
    "fuzz/corpus/$t" "crates/bae-fuzz/corpus/$t" "fuzz/regressions/$t" -- \
    -max_total_time="$secs" -timeout="${FUZZ_TIMEOUT_S:-10}" \
    -rss_limit_mb="${FUZZ_RSS_MB:-4096}" -malloc_limit_mb="${FUZZ_MALLOC_MB:-2048}" \
    -dict="fuzz/dicts/$t.dict" -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 \
    >"fuzz/logs/$t.log" 2>&1 || rc=$?
  echo "$rc" >"fuzz/logs/$t.rc"
}

summary() {
  local t=$1 log=fuzz/logs/$1.log
  local execs cov crashes rc
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 | sed -E 's/^#([0-9]+)\s+\S+\s+/#\1 /')
  crashes=$(find "fuzz/artifacts/$t" -type f 2>/dev/null | wc -l)
  rc=$(cat "fuzz/logs/$t.rc" 2>/dev/null || echo "?")
  printf '%-12s execs %-10s exit %-3s artifacts %-3s %s\n' "$t" "${execs:-?}" "$rc" "$crashes" "${cov:-no cov line (see $log)}"
}

coverage() {
  local t=$1
  need_llvm
  mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t"
  # its own target folder: the coverage build would otherwise overwrite the ASan build
  cargo fuzz coverage --sanitizer none --llvm-path "$LLVM" --fuzz-dir fuzz --target-dir "$TDIR/cov" "$t" \
    "fuzz/corpus/$t" "crates/bae-fuzz/corpus/$t" "fuzz/regressions/$t" >"fuzz/logs/$t.coverage.log" 2>&1 \
    || { tail -20 "fuzz/logs/$t.coverage.log"; return 1; }
  local bin
  bin=$(find "$TDIR/cov" -path "*/release/$t" -type f -perm -u+x | head -1)
  echo "== $t: line coverage over $(find "fuzz/corpus/$t" "crates/bae-fuzz/corpus/$t" "fuzz/regressions/$t" -type f | wc -l) inputs"
  # shellcheck disable=SC2046
  "$LLVM/llvm-cov" report "$bin" -instr-profile="fuzz/coverage/$t/coverage.profdata" \
    $(sources "$t" | tr ' ' '\n' | sed "s|^|$PWD/|")
}

[ $# -ge 1 ] || usage
case $1 in
  list) echo "${TARGETS[@]}" ;;
  coverage)
    [ $# -eq 2 ] || usage
    need_cargo_fuzz
    mkdir -p fuzz/logs
    for t in $(pick "$2"); do coverage "$t"; done
    ;;
  *)
    [ $# -eq 2 ] && [[ $2 =~ ^[0-9]+$ ]] || usage
    need_cargo_fuzz
    todo=$(pick "$1")
    # build once up front (a build inside each campaign would count against its time)
    # shellcheck disable=SC2086
    for t in $todo; do
      RUSTC_BOOTSTRAP=1 cargo fuzz build --fuzz-dir fuzz --target-dir "$TDIR" "$t"
    done
    jobs_max=${FUZZ_JOBS:-1}
    for t in $todo; do
      rm -f "fuzz/logs/$t.rc"
      campaign "$t" "$2" &
      while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
    done
    wait
    echo "== libFuzzer campaigns, $2 s each (ASan; logs in fuzz/logs/)"
    fail=0
    for t in $todo; do
      summary "$t"
      [ "$(cat "fuzz/logs/$t.rc" 2>/dev/null)" = 0 ] || fail=1
    done
    exit $fail
    ;;
esac
