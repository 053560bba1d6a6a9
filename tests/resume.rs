//! Exact resume: a run killed with SIGKILL at random moments and resumed each time ends with weights
//! identical, bit for bit, to an uninterrupted run; SIGINT/SIGTERM stop cleanly with a checkpoint.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bae() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bae"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const STEPS: &str = "1200";

fn make_data(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("x.safetensors");
    let st = bae()
        .args([
            "synth",
            "--n",
            "3000",
            "--d",
            "24",
            "--bits",
            "6",
            "--seed",
            "5",
            "--out",
            s(&data),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    data
}

fn start(data: &Path, out: &Path) -> Child {
    bae()
        .args([
            "train",
            "--device",
            "cpu",
            "--data",
            s(data),
            "--out",
            s(out),
            "--steps",
            STEPS,
            "--batch-size",
            "64",
            "--lr",
            "0.003",
            "--checkpoint-every",
            "7",
            "--seed",
            "21",
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn resume(out: &Path) -> Child {
    bae()
        .args(["train", "--resume", s(out), "--quiet", "--device", "cpu"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The step of the complete checkpoint in `out` (0 when there is none yet).
fn checkpoint_step(out: &Path) -> u64 {
    let Ok(bytes) = std::fs::read(out.join("checkpoint.safetensors")) else {
        return 0;
    };
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    meta.metadata().as_ref().unwrap()["step"].parse().unwrap()
}

fn weights(out: &Path) -> Vec<(String, Vec<u32>)> {
    let (t, _) = bae_io::load_tensors(&out.join("model.safetensors")).unwrap();
    t.into_iter()
        .map(|(k, v)| (k, v.data.iter().map(|x| x.to_bits()).collect()))
        .collect()
}

#[test]
fn kill_9_and_resume_is_bit_identical() {
    let cycles: usize = std::env::var("BAE_KILL_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let dir = tempfile::tempdir().unwrap();
    let data = make_data(dir.path());
    let reference = dir.path().join("reference");
    let t0 = Instant::now();
    assert!(start(&data, &reference).wait().unwrap().success());
    let full = t0.elapsed();

    let out = dir.path().join("killed");
    let total: u64 = STEPS.parse().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    let mut child = start(&data, &out);
    // the checkpoint step on disk at each kill: proof that the kills landed inside training
    let mut killed_at = Vec::new();
    'cycles: while killed_at.len() < cycles {
        // let the run go a random stretch past its last checkpoint ...
        let target = checkpoint_step(&out) + rng.random_range(1..=total / cycles as u64);
        while checkpoint_step(&out) < target {
            if child.try_wait().unwrap().is_some() {
                break 'cycles; // finished before the kill landed
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        // ... then kill it at a random moment of the following steps (a checkpoint write included)
        std::thread::sleep(Duration::from_micros(rng.random_range(0..3000)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        killed_at.push(checkpoint_step(&out));
        child = resume(&out);
    }
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "final resume failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let kills = killed_at.len();
    eprintln!(
        "{kills} kill -9 / resume cycles, at checkpoint steps {killed_at:?} of {total} \
         (uninterrupted run: {full:?})"
    );
    assert_eq!(
        kills, cycles,
        "only {kills} of {cycles} kills landed before the run finished"
    );
    assert!(
        killed_at.windows(2).all(|w| w[0] < w[1]) && killed_at[0] > 0,
        "each kill must land after training progressed: {killed_at:?}"
    );
    assert_eq!(
        weights(&out),
        weights(&reference),
        "weights differ after {kills} kill/resume cycles"
    );
    // the metrics file holds each step once, in order
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = metrics
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        steps,
        (1..=STEPS.parse::<u64>().unwrap()).collect::<Vec<_>>()
    );
}

#[cfg(unix)]
#[test]
fn sigint_and_sigterm_checkpoint_and_exit_with_128_plus_signal() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_data(dir.path());
    for (sig, code) in [("INT", 130), ("TERM", 143)] {
        let out = dir.path().join(format!("run-{sig}"));
        let child = bae()
            .args([
                "train",
                "--device",
                "cpu",
                "--data",
                s(&data),
                "--out",
                s(&out),
                "--steps",
                "100000",
                "--batch-size",
                "64",
                "--quiet",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // wait until training is under way (the config is written before the first step)
        let t = Instant::now();
        while !out.join("metrics.jsonl").exists() && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "stderr: {err}");
        assert!(err.contains("checkpoint written"), "{err}");
        assert!(out.join("checkpoint.safetensors").is_file());
    }
}
