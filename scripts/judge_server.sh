#!/usr/bin/env bash
# A real OpenAI-compatible judge server on this machine, for `bae interpret --judge-url` and the live test
# (crates/bae-analysis/tests/openai_judge.rs, openai_judge_live):
#
#   bash scripts/judge_server.sh setup        # venv data/llama-venv with llama-cpp-python[server] (cached)
#   bash scripts/judge_server.sh start PORT   # serve data/models/SmolLM2-135M-Instruct.Q4_1.gguf on 127.0.0.1:PORT
#   bash scripts/judge_server.sh stop         # stop it
#   bash scripts/judge_server.sh status       # running or not
#
# Then: JUDGE_URL=http://127.0.0.1:PORT/v1 cargo test --release -p bae-analysis --test openai_judge -- --nocapture
#
# PyPI ships llama-cpp-python as a source distribution only, so `setup` compiles llama.cpp with the system C++
# compiler (several minutes on 2 cores; cmake comes from PyPI through the build isolation). The venv is reused
# once its import check passes. The model comes from `bash scripts/setup.sh`.
# Knobs: LLAMA_CPP_PYTHON_SPEC (pip requirement), JUDGE_MODEL (GGUF path), JUDGE_START_TIMEOUT (seconds, 120),
# JUDGE_THREADS (CPU threads, all cores by default).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$ROOT/data"
VENV="$DATA/llama-venv"
PY="$VENV/bin/python"
SPEC="${LLAMA_CPP_PYTHON_SPEC:-llama-cpp-python[server]==0.3.16}"
MODEL="${JUDGE_MODEL:-$DATA/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
PIDFILE="$DATA/judge_server.pid"
LOG="$DATA/judge_server.log"
START_TIMEOUT="${JUDGE_START_TIMEOUT:-120}"
THREADS="${JUDGE_THREADS:-$(nproc)}" # llama_cpp.server's default is half the cores

die() {
    echo "judge_server: $*" >&2
    exit 1
}

venv_ok() {
    [[ -x "$PY" ]] && "$PY" -c 'import llama_cpp, llama_cpp.server, uvicorn' >/dev/null 2>&1
}

setup() {
    if venv_ok; then
        echo "judge_server: venv ready ($VENV, llama_cpp $("$PY" -c 'import llama_cpp; print(llama_cpp.__version__)'))"
        return
    fi
    command -v c++ >/dev/null || die "no C++ compiler (apt-get install g++): llama-cpp-python builds from source"
    mkdir -p "$DATA"
    [[ -x "$PY" ]] || python3 -m venv "$VENV" || die "python3 -m venv failed (apt-get install python3-venv)"
    local t0=$SECONDS
    echo "judge_server: pip install '$SPEC' into $VENV (compiles llama.cpp: minutes)"
    "$PY" -m pip install --quiet --upgrade pip
    # CPU only, no multimodal helper library, no tests/examples: the shortest build that serves chat completions.
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON -DLLAVA_BUILD=OFF -DMTMD_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF}" \
        CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
        "$PY" -m pip install --quiet --no-cache-dir "$SPEC" >"$DATA/llama-venv-install.log" 2>&1 ||
        die "pip install '$SPEC' failed: $(tail -n 3 "$DATA/llama-venv-install.log" | tr '\n' ' ') (full log: $DATA/llama-venv-install.log)"
    venv_ok || die "installed, but 'import llama_cpp.server' fails in $VENV"
    echo "judge_server: venv ready in $((SECONDS - t0)) s ($VENV)"
}

running_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

start() {
    local port="${1:-}"
    [[ "$port" =~ ^[0-9]+$ ]] || die "usage: bash scripts/judge_server.sh start PORT"
    venv_ok || die "no venv: run 'bash scripts/judge_server.sh setup' first"
    [[ -f "$MODEL" ]] || die "no model at $MODEL: run 'bash scripts/setup.sh' first"
    if pid="$(running_pid)"; then
        die "already running (pid $pid, $(cat "$DATA/judge_server.port" 2>/dev/null || echo '?')); 'stop' first"
    fi
    local t0=$SECONDS
    # setsid: its own process group, so `stop` ends the server and nothing else.
    setsid "$PY" -m llama_cpp.server --model "$MODEL" --host 127.0.0.1 --port "$port" \
        --n_ctx 2048 --chat_format chatml --model_alias "$(basename "$MODEL" .gguf)" \
        --n_threads "$THREADS" --n_threads_batch "$THREADS" \
        >"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    echo "http://127.0.0.1:$port/v1" >"$DATA/judge_server.port"
    local pid
    pid="$(cat "$PIDFILE")"
    while ((SECONDS - t0 < START_TIMEOUT)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PIDFILE"
            die "server exited during start: $(tail -n 3 "$LOG" | tr '\n' ' ') (log: $LOG)"
        fi
        if "$PY" - "$port" <<'PY' 2>/dev/null; then
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/v1/models", timeout=2).read()
PY
            echo "judge_server: ready at http://127.0.0.1:$port/v1 in $((SECONDS - t0)) s (pid $pid, log $LOG)"
            return
        fi
        sleep 0.5
    done
    kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    die "no answer from http://127.0.0.1:$port/v1/models after ${START_TIMEOUT} s: $(tail -n 3 "$LOG" | tr '\n' ' ') (log: $LOG)"
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PIDFILE"
        echo "judge_server: not running"
        return
    fi
    kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    echo "judge_server: stopped (pid $pid)"
}

case "${1:-}" in
setup) setup ;;
start) start "${2:-}" ;;
stop) stop ;;
status)
    if pid="$(running_pid)"; then
        echo "judge_server: running (pid $pid, $(cat "$DATA/judge_server.port" 2>/dev/null || echo '?'))"
    else
        echo "judge_server: not running"
    fi
    ;;
*) die "usage: bash scripts/judge_server.sh setup|start PORT|stop|status" ;;
esac
