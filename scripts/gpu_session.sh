#!/usr/bin/env bash
# Every GPU check of the project in ONE call of the lent GPU machine, in two halves.
#
#   bash scripts/gpu_session.sh prepare          # here (Rust + the NVRTC wheels): build, strip and
#                                                # check the GPU binaries in .gpu-bin/ (git-ignored),
#                                                # print the carry size (fails over 64 MiB) and the call
#   bash scripts/gpu_session.sh run [STAGE...]   # there (no Rust): repository root, .gpu-bin carried;
#                                                # no STAGE or `all`: every stage, in this order
#   bash scripts/gpu_session.sh run --quick      # parity + one step table (d=2048, d'=8192), < 3 min
#   bash scripts/gpu_session.sh summarize DIR    # (re)build DIR/summary.md from stage logs in DIR
#
# Stages:
#   parity    every kernel against its CPU twin, the whole step, the 200-step trajectory
#   train     `bae train --device cuda` against `--device cpu`, exact GPU resume (tests/gpu_train.rs)
#   sanitize  compute-sanitizer memcheck + racecheck on the parity tests (small shapes only)
#   bench     bf16 GEMM + device-copy ceilings, kernels and steps at d=576/d'=2304 and d=2048/d'=8192
#             (n=512) in f32, tf32 and bf16, CUDA events, each as a ratio to its floor
#   torch     the official PyTorch step (f32; bf16 autocast + torch.compile), same sizes and timing
#   all       all of the above (sanitize last)
# Each stage runs under `timeout` inside a session budget (GPU_SESSION_BUDGET_S, default 530 s), so
# `run all` ends inside one 10-minute call even if something hangs; a stage that runs out of time
# is logged as TIMEOUT and the next one starts. $OUT (default gpu-logs/) receives three files:
# summary.md (one table: parity, sanitizers, step times against the floor), summary.txt (each
# stage's exit code and time, written as they finish) and session.log (every stage's full output).
# Exit status: 0 when every stage passed; 1 when one failed or timed out; 2 usage; 3 no GPU;
# 4 .gpu-bin missing. For rehearsals and tests: GPU_SESSION_BIN (another binaries folder),
# GPU_SESSION_BUDGET_<STAGE>=S (one stage's budget), GPU_SESSION_REQUIRE_GPU (default 1).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
BIN=${GPU_SESSION_BIN:-.gpu-bin}
MAX_CARRY=$((64 << 20))

usage() {
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
}

die() {
    local code=$1
    shift
    echo "gpu_session: $*" >&2
    exit "$code"
}

# ---------------------------------------------------------------------------------------------
# prepare (here)

# build_exe TARGET ARGS...: builds `cargo ARGS --no-run` and prints the path of the test/bench
# executable of target TARGET (not the binaries cargo builds beside it, e.g. bae for gpu_train).
build_exe() {
    local target=$1 json
    shift
    json=$(cargo "$@" --no-run --message-format=json-render-diagnostics) ||
        die 1 "prepare: cargo $* failed"
    python3 -c '
import json, sys
exe = None
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if (m.get("reason") == "compiler-artifact" and m.get("executable")
            and m["target"]["name"] == sys.argv[1] and m["profile"]["test"]):
        exe = m["executable"]
if not exe:
    sys.exit("no executable in cargo output")
print(exe)
' "$target" <<<"$json" || die 1 "prepare: cargo $* built no $target executable"
}

# Bytes that travel with a call: tracked + untracked-not-ignored files, and the carried .gpu-bin.
tree_bytes() {
    git ls-files -z --cached --others --exclude-standard |
        du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1
}

prepare() {
    command -v cargo >/dev/null || die 1 "prepare: no cargo here (prepare runs on the dev machine)"
    bash scripts/setup_cuda.sh >/dev/null || die 1 "prepare: scripts/setup_cuda.sh failed"
    local parity kernels gpu_train
    echo "gpu_session prepare: building (release) ..."
    parity=$(build_exe parity test --release -p bae-gpu --test parity) || exit 1
    kernels=$(build_exe kernels bench -p bae-gpu --bench kernels) || exit 1
    gpu_train=$(build_exe gpu_train test --release --test gpu_train) || exit 1
    cargo build --release --bin bae || die 1 "prepare: cargo build --release --bin bae failed"
    rm -rf "$BIN" && mkdir -p "$BIN"
    cp "$parity" "$BIN/parity"
    cp "$kernels" "$BIN/kernels"
    cp "$gpu_train" "$BIN/gpu_train"
    cp target/release/bae "$BIN/bae"
    strip "$BIN"/* || die 1 "prepare: strip failed"
    # .gpu-bin is a build output: keep it out of git without touching the tracked .gitignore
    mkdir -p .git/info
    grep -qx "/$BIN" .git/info/exclude 2>/dev/null || echo "/$BIN" >>.git/info/exclude

    # the binaries must start here (no GPU: they skip) and carry the compiled kernels
    local out
    out=$(env -u REQUIRE_GPU "$BIN/parity" kernels_compile_without_spills --exact --nocapture 2>&1) ||
        die 1 "prepare: $BIN/parity does not run here: $out"
    if grep -q "SKIP:" <<<"$out"; then
        die 1 "prepare: no kernels embedded ($(grep -m1 SKIP: <<<"$out")); run scripts/setup_cuda.sh"
    fi
    echo "kernels embedded: $(grep -c '^[a-z_]\+ \+[a-z_0-9]\+ \+[0-9]' <<<"$out") (no spills)"
    out=$(env -u REQUIRE_GPU "$BIN/kernels" 2>&1) || die 1 "prepare: $BIN/kernels fails here: $out"
    echo "bench without a GPU: $(head -1 <<<"$out")"
    "$BIN/bae" --version >/dev/null 2>&1 || "$BIN/bae" --help >/dev/null 2>&1 ||
        die 1 "prepare: $BIN/bae does not run"
    if command -v objdump >/dev/null; then
        echo "newest glibc symbol needed: $(objdump -T "$BIN"/* 2>/dev/null |
            grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1) (the GPU machine must have at least that)"
    fi
    echo "shared libraries linked: $(ldd "$BIN"/* 2>/dev/null | awk '/=>/ { print $1 }' | sort -u |
        tr '\n' ' ')"

    ls -l "$BIN"
    local carry tree total
    carry=$(du -cb "$BIN" | tail -1 | cut -f1)
    tree=$(tree_bytes)
    total=$((carry + tree))
    awk -v c="$carry" -v t="$tree" -v m=$((MAX_CARRY >> 20)) -v b="$BIN" 'BEGIN {
        printf "carry: %s = %.1f MiB; with the working tree that travels (%.1f MiB): %.1f MiB of %d MiB\n",
            b, c / 1048576, t / 1048576, (c + t) / 1048576, m }'
    if ((total > MAX_CARRY)); then
        die 1 "prepare: $total bytes would travel, over the 64 MiB a call carries"
    fi
    echo "device call: command 'bash scripts/gpu_session.sh run all' (or 'run --quick'), carry [\"$BIN\"], timeout_s 600"
}

# ---------------------------------------------------------------------------------------------
# run (there)

# sanitize last: the stage most likely to run long takes whatever the others left over
STAGES=(parity train bench torch sanitize)
QUICK=0
# seconds each stage may take at most (the session budget caps them all together)
declare -A BUDGET=([parity]=75 [train]=60 [memcheck]=110 [racecheck]=110 [bench]=60 [torch]=115)

gpu_present() {
    local list
    command -v nvidia-smi >/dev/null 2>&1 ||
        die 3 "no NVIDIA GPU (nvidia-smi not found); nothing run"
    if ! list=$(timeout 60 nvidia-smi -L 2>&1); then
        die 3 "no NVIDIA GPU (nvidia-smi -L failed: $(head -1 <<<"$list")); nothing run"
    fi
    grep -q '^GPU [0-9]' <<<"$list" || die 3 "no NVIDIA GPU (nvidia-smi lists no device); nothing run"
}

# The folder holding libcublasLt.so.13: the PyTorch wheels' (what torch itself loads), else the
# toolkit's, else wherever the loader or a bounded search finds it.
cublas_dir() {
    local d
    d=$(python3 - 2>/dev/null <<'PY'
import glob, os, site, sys
roots = list(dict.fromkeys(site.getsitepackages() + [site.getusersitepackages()] + sys.path))
for r in roots:
    hits = sorted(glob.glob(os.path.join(r, "nvidia", "**", "libcublasLt.so.13*"), recursive=True))
    if hits:
        print(os.path.dirname(hits[0]))
        break
PY
    )
    if [ -z "$d" ]; then
        for c in /usr/local/cuda/lib64 /usr/local/cuda-13*/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
            if compgen -G "$c/libcublasLt.so.13*" >/dev/null; then
                d=$c
                break
            fi
        done
    fi
    if [ -z "$d" ]; then
        d=$(ldconfig -p 2>/dev/null | awk '/libcublasLt\.so\.13/ { print $NF; exit }')
        d=${d%/*}
    fi
    if [ -z "$d" ]; then
        d=$(timeout 30 find /usr /opt /root -name 'libcublasLt.so.13*' 2>/dev/null | head -1)
        d=${d%/*}
    fi
    echo "$d"
}

# stage NAME DESCRIPTION CMD...: runs CMD under its budget, output to $WORK/NAME.log and session.log
stage() {
    local name=$1 what=$2
    shift 2
    local var="GPU_SESSION_BUDGET_${name^^}"
    local left=$((DEADLINE - SECONDS)) budget=${!var:-${BUDGET[$name]}}
    ((budget > left)) && budget=$left
    if ((left < 10)); then
        printf '%s\tskipped\t0\t0\n' "$name" >>"$WORK/status.tsv"
        echo "$name: SKIPPED (session budget spent)" | tee -a "$OUT/summary.txt"
        FAILED=1
        return
    fi
    echo "[$name] $what (at most $budget s) ..."
    {
        echo
        echo "===== $name: $* (budget $budget s, $(date -u +%H:%M:%S) UTC) ====="
    } >>"$OUT/session.log"
    local t0=$SECONDS rc
    # a fresh bash runs the stage's function (timeout cannot run a function), in timeout's own
    # process group: at the budget everything the stage started is stopped
    timeout -k 10 "$budget" bash -c "$*" 2>&1 | tee "$WORK/$name.log" >>"$OUT/session.log"
    rc=${PIPESTATUS[0]}
    local took=$((SECONDS - t0)) line
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$took" "$budget" >>"$WORK/status.tsv"
    case $rc in
    0) line="$name: exit 0, $took s" ;;
    124 | 137) line="$name: TIMEOUT after $took s (budget $budget s)" ;;
    *) line="$name: exit $rc, $took s" ;;
    esac
    [ "$rc" = 0 ] || FAILED=1
    echo "===== $line =====" >>"$OUT/session.log"
    echo "$line" | tee -a "$OUT/summary.txt"
}

need_bin() {
    local b
    for b in "$@"; do
        [ -x "$BIN/$b" ] || {
            echo "$BIN/$b is missing: run 'bash scripts/gpu_session.sh prepare' here and carry $BIN"
            return 1
        }
    done
}

run_parity() { need_bin parity && "$BIN/parity" --test-threads=1 --nocapture; }
run_train() { need_bin gpu_train bae && BAE_BIN="$BIN/bae" "$BIN/gpu_train" --test-threads=1 --nocapture; }
# compute-sanitizer: on PATH, else where CUDA toolkits put it
sanitizer() {
    local c
    for c in "$(command -v compute-sanitizer)" /usr/local/cuda/bin/compute-sanitizer \
        /usr/local/cuda*/compute-sanitizer/compute-sanitizer /opt/nvidia/*/compute-sanitizer \
        /usr/local/cuda-*/bin/compute-sanitizer; do
        if [ -n "$c" ] && [ -x "$c" ]; then
            "$c" "$@"
            return
        fi
    done
    echo "compute-sanitizer not found (PATH, /usr/local/cuda*)"
    return 127
}
# BAE_PARITY_SMALL=1 asks the parity tests for their small shapes only (where they support it)
run_memcheck() {
    need_bin parity && BAE_PARITY_SMALL=1 sanitizer --tool memcheck --error-exitcode 9 \
        --print-limit 50 "$BIN/parity" --test-threads=1 --nocapture --skip trajectory
}
# racecheck: the tests of our kernels only (name filters), not the trainer tests that run cuBLAS
RACECHECK_TESTS="adam_and_convert coactivation covariance_grad decode_matches encode_binarize
    encode_gemm entropy_terms firing_counts mse_grad sign_product transpose_bits"
run_racecheck() {
    # shellcheck disable=SC2086 # one filter per word
    need_bin parity && BAE_PARITY_SMALL=1 sanitizer --tool racecheck --error-exitcode 9 \
        --print-limit 50 "$BIN/parity" --test-threads=1 --nocapture $RACECHECK_TESTS
}
run_bench() {
    need_bin kernels || return 1
    if ((QUICK)); then
        BAE_BENCH_QUICK=1 BAE_BENCH_STEPS_ONLY=1 BAE_BENCH_CASES=2048,8192,512 "$BIN/kernels" --bench
    else
        BAE_BENCH_QUICK=1 "$BIN/kernels" --bench
    fi
}
run_torch() { PYTHONUNBUFFERED=1 python3 scripts/torch_step.py --ceilings; }
export -f need_bin sanitizer run_parity run_train run_memcheck run_racecheck run_bench run_torch
export BIN RACECHECK_TESTS

run() {
    local stages=() s
    if [ $# -eq 0 ]; then
        set -- all
    fi
    for s in "$@"; do
        case $s in
        --quick) QUICK=1 ;;
        all) stages+=("${STAGES[@]}") ;;
        parity | train | sanitize | bench | torch) stages+=("$s") ;;
        *)
            echo "gpu_session: unknown stage '$s'" >&2
            usage >&2
            exit 2
            ;;
        esac
    done
    if ((QUICK)); then
        ((${#stages[@]} == 0)) || die 2 "--quick runs its own stages (parity, bench); give no others"
        stages=(parity bench)
    fi
    export QUICK
    gpu_present
    [ -d "$BIN" ] || die 4 "$BIN/ is missing: run 'bash scripts/gpu_session.sh prepare' on the dev machine and carry $BIN; nothing run"
    chmod +x "$BIN"/* 2>/dev/null # in case the copy lost the mode bits

    OUT=${OUT:-gpu-logs}
    mkdir -p "$OUT"
    rm -f "$OUT/summary.md" "$OUT/summary.txt" "$OUT/session.log"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_session.XXXXXX")
    DEADLINE=$((SECONDS + ${GPU_SESSION_BUDGET_S:-530}))
    FAILED=0
    : >"$WORK/status.tsv"
    local lib
    lib=$(cublas_dir)
    export LD_LIBRARY_PATH="${lib:+$lib:}${LD_LIBRARY_PATH:-}"
    export REQUIRE_GPU=${GPU_SESSION_REQUIRE_GPU:-1}
    {
        echo "gpu_session run ${*}: $(date -u '+%Y-%m-%d %H:%M:%S') UTC, budget ${GPU_SESSION_BUDGET_S:-530} s"
        echo "cuBLAS from: ${lib:-NOT FOUND}"
        nvidia-smi 2>&1
    } >"$OUT/session.log"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader \
        >"$WORK/gpu.txt" 2>&1
    if ! "$BIN/parity" --list >"$WORK/parity.list" 2>"$WORK/list.err"; then
        echo "gpu_session: $BIN/parity does not start here: $(head -3 "$WORK/list.err")" |
            tee -a "$OUT/session.log"
    fi
    echo "gpu_session: $(head -1 "$WORK/gpu.txt"); stages: ${stages[*]}; logs in $OUT"

    for s in "${stages[@]}"; do
        case $s in
        parity) stage parity "kernel + step parity" run_parity ;;
        train) stage train "bae train --device cuda vs cpu, GPU resume" run_train ;;
        sanitize)
            stage memcheck "compute-sanitizer memcheck" run_memcheck
            stage racecheck "compute-sanitizer racecheck" run_racecheck
            ;;
        bench) stage bench "ceilings + step times" run_bench ;;
        torch) stage torch "official PyTorch step" run_torch ;;
        esac
    done

    summarize "$WORK" >"$OUT/summary.md" 2>"$WORK/summary.err" ||
        { echo "(summary failed: $(tail -1 "$WORK/summary.err"))"; cat "$OUT/summary.txt" >"$OUT/summary.md"; }
    cat "$WORK/summary.err" >>"$OUT/session.log"
    # files back from a call: at most 16 MiB each
    if (($(stat -c %s "$OUT/session.log") > (15 << 20))); then
        gzip -9 "$OUT/session.log"
    fi
    rm -rf "$WORK"
    echo
    cat "$OUT/summary.md"
    return "$FAILED"
}

# ---------------------------------------------------------------------------------------------
# summary: one table from the stage logs in a folder (status.tsv, <stage>.log, gpu.txt, parity.list)

summarize() {
    python3 - "$1" <<'PY'
import math, os, re, sys
from datetime import datetime, timezone

W = sys.argv[1]


def read(name):
    try:
        with open(os.path.join(W, name), errors="replace") as f:
            return f.read()
    except OSError:
        return None


status = {}  # stage -> (rc, seconds, budget)
for line in (read("status.tsv") or "").splitlines():
    p = line.split("\t")
    if len(p) >= 4:
        status[p[0]] = (p[1], p[2], p[3])


def stage_state(name):
    if name not in status:
        return "not run"
    rc, took, budget = status[name]
    if rc == "skipped":
        return "SKIPPED (session budget spent)"
    if rc in ("124", "137"):
        return f"TIMEOUT after {took} s"
    return f"exit {rc}, {took} s"


def last_line(stage):
    lines = [l.strip() for l in (read(f"{stage}.log") or "").splitlines() if l.strip()]
    return (": " + lines[-1][:140]) if lines else ""


def fnum(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return float("nan")


def g(v, digits=3):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if v == 0:
        return "0"
    return f"{v:.{digits}g}"


rows = []  # (check, measured, bound, result)
failures = []


def row(check, measured, bound, result):
    rows.append((check, measured, bound, result))
    if not (result.startswith(("PASS", "ok", "measured")) or "x floor" in result):
        failures.append(check)


class Tests:
    """libtest output (serial, --nocapture): per test its result, first panic and its own lines."""

    def __init__(self, text, listing=None):
        self.order, self.result, self.panic, self.lines = [], {}, {}, {}
        self.finished = False
        self.all = []
        for l in (listing or "").splitlines():
            m = re.match(r"^(\S+): test$", l)
            if m:
                self.all.append(m.group(1))
        cur, want_msg = None, False
        for l in (text or "").splitlines():
            m = re.match(r"^test (\S+) \.\.\. ?(.*)$", l)
            if m:
                cur = m.group(1)
                self.order.append(cur)
                self.lines[cur] = []
                rest = m.group(2).strip()
                if rest.split(",")[0] in ("ok", "FAILED", "ignored"):
                    self.result[cur] = rest.split(",")[0]
                    cur = None
                elif rest:
                    self.lines[cur].append(rest)
                continue
            if re.match(r"^test result: ", l):
                self.finished = True
                cur = None
                continue
            s = l.strip()
            if cur is None:
                continue
            if s in ("ok", "FAILED") or s.startswith("ignored"):
                self.result[cur] = s.split(",")[0]
                cur = None
                continue
            if want_msg:
                self.panic.setdefault(cur, s)
                want_msg = False
            if re.match(r"^thread '.*' panicked at", s):
                want_msg = True
            self.lines[cur].append(l)
        self.running = cur  # the test that was running when the output stopped

    def state(self, name):
        if name in self.result:
            skip = [l.strip() for l in self.lines.get(name, []) if l.strip().startswith("SKIP:")]
            if self.result[name] == "ok" and skip:
                return "SKIPPED (" + skip[0][5:].strip()[:120] + ")"
            return self.result[name]
        if name == self.running:
            return "stopped while running"
        return "not run"


PARITY = re.compile(r"PARITY\s+(\S+)\s+max_err=(\S+)\s+tol=(\S+)\s+(PASS|FAIL)\b")


def badness(h):
    """Sort key of one PARITY hit: FAIL (or NaN) first, then error / tolerance."""
    err, tol = fnum(h[1]), fnum(h[2])
    if h[3] != "PASS" or math.isnan(err):
        return (1, 0.0 if math.isnan(err) else err)
    return (0, err / tol if tol > 0 else (0.0 if err == 0 else math.inf))


def parity_rows(prefix, text, tests, legacy):
    """PARITY lines (grouped by the name's part before '/', the worst hit shown against its
    tolerance), else the legacy printed metrics, else the test results."""
    by_name = {}
    owner = {}
    for t in tests.order:
        for l in tests.lines.get(t, []):
            m = PARITY.search(l)
            if m:
                group = m.group(1).split("/")[0]
                by_name.setdefault(group, []).append(m.groups())
                owner[group] = t
    for name, hits in by_name.items():
        worst = max(hits, key=badness)
        ok = all(h[3] == "PASS" for h in hits)
        n = f" ({len(hits)} checks)" if len(hits) > 1 else ""
        which = f" ({worst[0].split('/', 1)[1]})" if "/" in worst[0] and len(hits) > 1 else ""
        row(f"{prefix}{name}{n}", g(fnum(worst[1])) + which, g(fnum(worst[2])),
            "PASS" if ok else "FAIL")
    covered = set(owner.values())
    names = tests.all or tests.order
    for t in names:
        st = tests.state(t)
        if t in covered and st == "ok":
            continue
        extra = legacy(t, tests.lines.get(t, [])) if t not in covered else []
        if extra:
            for check, measured, bound, ok in extra:
                row(f"{prefix}{check}", measured, bound, ("PASS" if ok and st == "ok" else
                    "FAIL" if not ok or st == "FAILED" else st))
            if st == "FAILED" and all(ok for *_, ok in extra):
                row(f"{prefix}{t}", "-", "-", "FAILED: " + tests.panic.get(t, "?")[:140])
            continue
        res = {"ok": "ok", "FAILED": "FAILED: " + tests.panic.get(t, "?")[:140]}.get(st, st)
        row(f"{prefix}test {t}", "-", "-", res)


def legacy_parity(t, lines):
    """Metrics the parity tests print today (until they print PARITY lines)."""
    out = []
    if t.startswith("trajectory"):
        vals = [fnum(m.group(2)) for l in lines
                for m in [re.search(r"(\S+): rel L2 distance after 200 steps (\S+)", l)] if m]
        if vals:
            out.append(("trajectory 200 steps: worst parameter rel L2", g(max(vals)), "1e-3",
                        max(vals) < 1e-3))
        for l in lines:
            m = re.search(r"worst per-step relative loss difference (\S+)", l)
            if m:
                v = fnum(m.group(1))
                out.append(("trajectory 200 steps: worst per-step loss rel diff", g(v), "1e-3", v < 1e-3))
    return out


def legacy_train(t, lines):
    out = []
    vals = [fnum(m.group(2)) for l in lines
            for m in [re.search(r"(\S+): GPU f32 vs CPU after 100 steps, rel L2 (\S+)", l)] if m]
    if vals:
        out.append(("CLI --device cuda vs cpu, 100 f32 steps: worst tensor rel L2", g(max(vals)),
                    "1e-3", max(vals) < 1e-3))
    return out


gpu = (read("gpu.txt") or "").strip().splitlines()
print(f"# GPU session: {gpu[0] if gpu else 'unknown GPU'}")
print()
print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Stages: " + "; ".join(
    f"{s} {stage_state(s)}" for s in status) + ".")

# ---- parity
text = read("parity.log")
if text is not None:
    tests = Tests(text, read("parity.list"))
    parity_rows("parity: ", text, tests, legacy_parity)
    if not tests.finished:
        row("parity: stage", "-", "-", stage_state("parity") + last_line("parity"))
elif "parity" in status:
    row("parity", "-", "-", stage_state("parity"))

# ---- bae train on the GPU
text = read("train.log")
if text is not None:
    tests = Tests(text)
    parity_rows("train: ", text, tests, legacy_train)
    names = tests.order
    st = tests.state(names[0]) if names else "not run"
    if any("resume" in (m.group(1) or "") for m in PARITY.finditer(text)):
        pass  # the test reports the resume check itself
    elif "not bit-identical" in text:
        row("train: exact GPU resume (40 + 60 steps == 100, bitwise)", "differs", "bitwise", "FAIL")
    elif st == "ok":
        row("train: exact GPU resume (40 + 60 steps == 100, bitwise)", "identical", "bitwise", "PASS")
    else:
        row("train: exact GPU resume (40 + 60 steps == 100, bitwise)", "-", "bitwise",
            "not reached" if st == "FAILED" else st if st.startswith("SKIPPED")
            else stage_state("train"))

# ---- compute-sanitizer
for tool in ("memcheck", "racecheck"):
    text = read(f"{tool}.log")
    if text is None:
        if tool in status:
            row(f"{tool}", "-", "0 errors", stage_state(tool))
        continue
    tests = Tests(text)
    done = sum(1 for t in tests.order if tests.state(t) == "ok")
    skipped = sum(1 for t in tests.order if tests.state(t).startswith("SKIPPED"))
    failed = [t for t in tests.order if tests.result.get(t) == "FAILED"]
    rc = status.get(tool, ("?",))[0]
    if tool == "memcheck":
        m = re.findall(r"ERROR SUMMARY: (\d+) errors?", text)
        errors = int(m[-1]) if m else None
        warnings = 0
    else:
        m = re.findall(r"RACECHECK SUMMARY: (\d+) hazards? displayed \((\d+) errors?, (\d+) warnings?\)", text)
        errors = int(m[-1][1]) if m else None
        warnings = int(m[-1][2]) if m else 0
    seen = len(re.findall(r"^=+ (Invalid|Uninitialized|Program hit|Error|Race reported|Malloc|Leaked)", text, re.M))
    measured = (f"{errors} errors" if errors is not None else f"{seen} reports so far") + \
        (f", {warnings} warnings" if warnings else "") + f", {done} tests clean" + \
        (f", {skipped} SKIPPED" if skipped else "")
    if rc in ("124", "137"):
        res = f"TIMEOUT during {tests.running or '?'}"
    elif errors is None:
        res = stage_state(tool) + " (no sanitizer summary)"
    elif skipped:
        res = "SKIPPED (no GPU?)"
    elif done == 0:
        res = "no test ran (filters match nothing?)"
    elif errors == 0 and not failed and rc == "0":
        res = "PASS"
    else:
        res = "FAIL" + (f" (tests failed: {', '.join(failed)})" if failed else "")
    row(f"{tool} (parity tests, small shapes)", measured, "0 errors", res)

# ---- step times against the floor
ceil = {}
for name in ("bench.log", "torch.log"):
    for l in (read(name) or "").splitlines():
        m = re.match(r"^CEILING (\S+) (.*)$", l)
        if m:
            kv = dict(re.findall(r"(\w+)=(\S+)", m.group(2)))
            ceil[m.group(1)] = kv
gemm = fnum(ceil.get("bf16_gemm", {}).get("tflops"))
copy = fnum(ceil.get("dtod_copy", {}).get("gbps"))
src = "cuBLASLt 8192^3 / 1 GiB copy, via the Rust bench"
if math.isnan(gemm) or math.isnan(copy):
    gemm = fnum(ceil.get("torch_bf16_matmul", {}).get("tflops"))
    copy = fnum(ceil.get("torch_dtod_copy", {}).get("gbps"))
    src = "torch.matmul 8192^3 / 1 GiB copy, via torch_step.py"
tg, tc = ceil.get("torch_bf16_matmul", {}).get("tflops"), ceil.get("torch_dtod_copy", {}).get("gbps")


def floor_ms(d, dc, n):
    if math.isnan(gemm) or math.isnan(copy):
        return None
    p = 2 * d * dc + d + dc
    return max(10.0 * n * d * dc / (gemm * 1e9), (4.0 * n * d + 24.0 * p) / (copy * 1e6))


steps = []
for l in (read("bench.log") or "").splitlines():
    m = re.match(r"^STEP (.*)$", l)
    if m:
        kv = dict(re.findall(r"(\w+)=(\S+)", m.group(1)))
        steps.append(("ours", kv.get("mode", "?"), kv))
for l in (read("torch.log") or "").splitlines():
    m = re.match(r"^TORCH (.*)$", l)
    if m:
        kv = dict(re.findall(r"(\w+)=(\S+)", m.group(1)))
        if "FAILED" in l:
            kv["failed"] = l.split("FAILED", 1)[1].strip()
        steps.append(("torch", kv.get("variant", "?"), kv))
for who, mode, kv in steps:
    d, dc, n = int(kv.get("d", 0)), int(kv.get("dc", 0)), int(kv.get("n", 0))
    check = f"step {who} {mode} d={d} d'={dc} n={n}"
    if "failed" in kv:
        row(check, "-", "-", "FAILED: " + kv["failed"][:140])
        continue
    ms = fnum(kv.get("median_ms"))
    fl = floor_ms(d, dc, n)
    measured = f"{ms:.4g} ms ({n / (ms / 1e3):,.0f} tok/s)"
    if fl is None:
        row(check, measured, "floor unknown", "measured (no ceilings)")
    else:
        row(check, measured, f"floor {fl:.4g} ms", f"{ms / fl:.1f}x floor")
for stage, what in (("bench", "step ours"), ("torch", "step torch")):
    if stage in status and not any(s[0] == what.split()[1] for s in steps):
        row(f"{what} (no times)", "-", "-", stage_state(stage) + last_line(stage))

if not math.isnan(gemm) and not math.isnan(copy):
    print(f"Ceilings ({src}): bf16 GEMM {gemm:.0f} TFLOP/s, device copy {copy:.0f} GB/s"
          + (f"; torch saw {tg} TFLOP/s and {tc} GB/s" if tg and tc and "Rust" in src else "") + ".")
    print("Floor of a step = max(10 n d d' / GEMM rate, (4 n d + 24 P) / copy rate), P = 2 d d' + d + d'.")
print()
print("| check | measured | bound | result |")
print("|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(str(c).replace("|", "/") for c in r) + " |")
print()
print("All checks passed." if not failures else f"NOT PASSED ({len(failures)}): " + "; ".join(
    failures[:8]) + ("; ..." if len(failures) > 8 else ""))
PY
}

case "${1:-}" in
prepare)
    [ $# -eq 1 ] || die 2 "prepare takes no arguments"
    prepare
    ;;
run)
    shift
    run "$@"
    ;;
summarize)
    if [ $# -ne 2 ] || [ ! -d "$2" ]; then
        die 2 "summarize DIR: DIR must be a folder of stage logs"
    fi
    summarize "$2" | tee "$2/summary.md"
    ;;
*)
    [ -n "${1:-}" ] && echo "gpu_session: unknown command '$1'" >&2
    usage >&2
    exit 2
    ;;
esac
