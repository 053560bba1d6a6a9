//! Short deterministic fuzzing runs of every target (the committed corpus plus the in-code
//! seeds, 2,000 mutated executions each, fixed seed) must find no crash; the harness must catch
//! each kind of failure; the same seed must give the same run.

use std::path::PathBuf;
use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_bae-fuzz");

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bae-fuzz-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fuzz(name: &str, args: &[&str]) -> (Output, String, PathBuf) {
    let dir = scratch(name);
    let out = Command::new(EXE)
        .args(args)
        .arg("--crash-dir")
        .arg(dir.join("crashes"))
        .arg("--work-dir")
        .arg(dir.join("work"))
        .arg("--quiet")
        .output()
        .expect("run bae-fuzz");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text, dir)
}

#[test]
fn every_target_survives_a_short_run() {
    let (out, text, _) = fuzz(
        "all",
        &[
            "all",
            "--iters",
            "2000",
            "--seed",
            "1",
            "--timeout-ms",
            "20000",
        ],
    );
    assert!(out.status.success(), "bae-fuzz found a crash:\n{text}");
    for target in [
        "safetensors",
        "npy",
        "tensors",
        "store",
        "checkpoint",
        "gguf",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{target}: ")))
            .unwrap_or_else(|| panic!("no summary for {target}:\n{text}"));
        assert!(line.contains("crashes 0"), "{line}");
        let execs: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(execs > 2000, "{line}");
        // both accepted and refused inputs: the seeds parse, the mutations reach the checks
        assert!(
            !line.contains(" ok 0,") && !line.contains("err 0;"),
            "{line}"
        );
    }
}

#[test]
fn same_seed_same_run() {
    let summary = |name: &str| {
        let (out, text, _) = fuzz(
            name,
            &[
                "tensors",
                "--iters",
                "500",
                "--seed",
                "9",
                "--timeout-ms",
                "20000",
            ],
        );
        assert!(out.status.success(), "{text}");
        let line = text
            .lines()
            .find(|l| l.starts_with("tensors: "))
            .unwrap()
            .to_string();
        // drop the timings: "... exec/s); ok ..., err ...; ... classes; corpus ..."
        line.split("exec/s); ")
            .nth(1)
            .unwrap()
            .split("; largest")
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(summary("det-a"), summary("det-b"));
}

#[test]
fn harness_catches_each_kind_of_failure() {
    // (target, exit status, crash kind in the saved file name)
    let cases = [
        ("selftest-panic", 1, "panic"),
        ("selftest-bug", 1, "bug"),
        ("selftest-hang", 4, "hang"),
        ("selftest-alloc", 3, "alloc"),
        ("selftest-abort", 5, "abort"),
    ];
    for (target, code, kind) in cases {
        // Only the hang case needs a short limit; the others get room for a slow CI machine.
        let timeout = if kind == "hang" { "300" } else { "20000" };
        let (out, text, dir) = fuzz(
            target,
            &[
                target,
                "--iters",
                "50",
                "--timeout-ms",
                timeout,
                "--no-corpus",
            ],
        );
        assert_eq!(out.status.code(), Some(code), "{target}:\n{text}");
        assert!(text.contains(&format!("=== CRASH ({kind})")), "{text}");
        let saved: Vec<String> = std::fs::read_dir(dir.join("crashes"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            saved
                .iter()
                .any(|n| n.starts_with(&format!("{target}-{kind}-")) && n.ends_with(".bin")),
            "{target}: {saved:?}"
        );
        // the saved input reproduces the crash
        let input = saved
            .iter()
            .find(|n| n.ends_with(".bin"))
            .map(|n| dir.join("crashes").join(n))
            .unwrap();
        let re = Command::new(EXE)
            .args(["repro", target])
            .arg(&input)
            .args(["--timeout-ms", timeout, "--crash-dir"])
            .arg(dir.join("repro-crashes"))
            .output()
            .unwrap();
        assert!(
            !re.status.success(),
            "{target}: the saved input did not crash again"
        );
    }
}
