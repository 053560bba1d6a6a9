"""Shared fixtures: the repository's paths, the `bae` binary, and a tiny trained run."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def golden_dir() -> Path:
    return Path(os.environ.get("BAE_GOLDEN_DIR", ROOT / "tests" / "golden"))


def bae_binary() -> Path:
    """The CLI (BAE_BIN, else target/debug or target/release). CI builds target/debug/bae with
    `cargo test` first; without it the CLI-crossing tests fail with the reason (REQUIRE_BAE_BIN=1)
    or skip with it."""
    for p in [os.environ.get("BAE_BIN"), ROOT / "target/debug/bae", ROOT / "target/release/bae"]:
        if p and Path(p).is_file():
            return Path(p)
    msg = "no bae binary (cargo build, or set BAE_BIN)"
    if os.environ.get("REQUIRE_BAE_BIN") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


def run_cli(*args: str) -> None:
    out = subprocess.run([str(bae_binary()), *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """`bae synth` + `bae train` (BAE, d = 16, d' = 64) + `bae encode`: (run, data, codes) folders."""
    d = tmp_path_factory.mktemp("tiny")
    data, run, codes = d / "synth.safetensors", d / "run", d / "codes"
    run_cli("synth", "--n", "700", "--d", "16", "--bits", "4", "--seed", "5", "--out", str(data))
    run_cli("train", "--device", "cpu", "--data", str(data), "--out", str(run), "--steps", "40",
            "--batch-size", "128", "--lr", "0.005", "--quiet")
    run_cli("encode", "--run", str(run), "--data", str(data), "--out", str(codes), "--shard-rows", "256")
    return run, data, codes


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def have(module: str) -> bool:
    return shutil.which(module) is not None
