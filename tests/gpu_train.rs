//! `bae train --device cuda` end to end against `--device cpu`: the f32 GPU run follows the CPU
//! run, a GPU run resumed from its checkpoint equals the uninterrupted GPU run bit for bit (same
//! GPU, same build), a CPU checkpoint resumes on the GPU, frozen biases stay put, and the bf16
//! mode trains. Skipped without a GPU; `REQUIRE_GPU=1` makes a missing GPU a failure.
//!
//! Each check prints `PARITY <name> max_err=<x> tol=<y> PASS|FAIL` before its assert, for the
//! summary of `scripts/gpu_session.sh` (exact checks: `tol=0`, `max_err` = differing elements).

use std::path::{Path, PathBuf};
use std::process::Command;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The `bae` binary: `BAE_BIN` when set (test binaries carried to a GPU machine), else cargo's.
fn bae(args: &[&str]) -> String {
    let exe = std::env::var("BAE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_bae").to_string());
    let o = Command::new(exe).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "bae {args:?}:\n{text}");
    text
}

fn data(dir: &Path) -> PathBuf {
    let p = dir.join("x.safetensors");
    bae(&[
        "synth",
        "--n",
        "3000",
        "--d",
        "32",
        "--bits",
        "6",
        "--seed",
        "4",
        "--out",
        s(&p),
    ]);
    p
}

/// Trains `steps` steps into `dir/name` on `device` with `extra` flags.
fn train(dir: &Path, name: &str, steps: &str, device: &[&str], extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let x = dir.join("x.safetensors");
    let mut args = vec![
        "train",
        "--data",
        s(&x),
        "--out",
        s(&out),
        "--steps",
        steps,
        "--batch-size",
        "128",
        "--lr",
        "0.002",
        "--entropy-start",
        "20",
        "--lambda-entropy",
        "1e-4",
        "--lambda-cov",
        "1e-4",
        "--checkpoint-every",
        "10",
        "--quiet",
    ];
    args.extend_from_slice(device);
    args.extend_from_slice(extra);
    bae(&args);
    out
}

fn weights(out: &Path) -> Vec<(String, Vec<f32>)> {
    bae_io::load_tensors(&out.join("model.safetensors"))
        .unwrap()
        .0
        .into_iter()
        .map(|(k, v)| (k, v.data))
        .collect()
}

fn losses(out: &Path) -> Vec<f64> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["loss"].as_f64().unwrap()
        })
        .collect()
}

fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

/// `x` for a PARITY line: integers as such, anything else as `{:e}` (`inf` and `NaN` included).
fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:e}")
    }
}

/// Prints the check's PARITY line and returns `pass`, the test's own comparison; `max_err` and
/// `tol` are what the line shows of it. Called before the assert, so a failing check reports.
fn report(name: &str, max_err: f64, tol: f64, pass: bool) -> bool {
    let verdict = if pass { "PASS" } else { "FAIL" };
    println!(
        "PARITY {name} max_err={} tol={} {verdict}",
        num(max_err),
        num(tol)
    );
    pass
}

/// A tensor's name in a PARITY line.
fn key(name: &str) -> String {
    name.to_lowercase().replace(char::is_whitespace, "_")
}

/// How many elements of two checkpoints differ (infinite when their tensors do not match up).
fn differing(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f64 {
    let aligned = a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((na, va), (nb, vb))| na == nb && va.len() == vb.len());
    if !aligned {
        return f64::INFINITY;
    }
    let pairs = a
        .iter()
        .zip(b)
        .flat_map(|((_, va), (_, vb))| va.iter().zip(vb));
    pairs.filter(|(x, y)| x != y).count() as f64
}

/// Raises a finished 40-step run to 100 steps and resumes it on the GPU (f32).
fn continue_on_gpu(out: &Path) {
    let cfg = out.join("config.json");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("\"steps\": 40"), "{text}");
    std::fs::write(&cfg, text.replace("\"steps\": 40", "\"steps\": 100")).unwrap();
    let mut args = vec!["train", "--resume", s(out), "--quiet"];
    args.extend_from_slice(CUDA_F32);
    bae(&args);
}

const CUDA_F32: &[&str] = &["--device", "cuda", "--gpu-precision", "f32"];
const CPU: &[&str] = &["--device", "cpu"];

#[test]
fn cuda_training_runs_follow_the_cpu_and_resume_exactly() {
    if bae_gpu::gpu_or_skip("bae train --device cuda").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    data(dir.path());

    // f32 on the GPU tracks the CPU reference step by step
    let cpu = train(dir.path(), "cpu", "100", CPU, &[]);
    let gpu = train(dir.path(), "gpu", "100", CUDA_F32, &[]);
    let (lc, lg) = (losses(&cpu), losses(&gpu));
    assert_eq!(lc.len(), 100);
    assert_eq!(lg.len(), 100);
    // per step: the worst relative difference shown, each step held to its own bound
    let within = |(c, g): (&f64, &f64)| (c - g).abs() <= 1e-3 * c.abs();
    let worst = lc.iter().zip(&lg).fold(0.0f64, |w, (c, g)| {
        let r = (c - g).abs() / c.abs();
        w.max(if r.is_nan() { f64::INFINITY } else { r })
    });
    let bad = lc.iter().zip(&lg).position(|p| !within(p));
    if !report("train_cuda_vs_cpu/loss", worst, 1e-3, bad.is_none()) {
        let i = bad.unwrap();
        panic!("step {}: cpu {} gpu {}", i + 1, lc[i], lg[i]);
    }
    let wc = weights(&cpu);
    for ((name, c), (_, g)) in wc.iter().zip(weights(&gpu).iter()) {
        let e = rel_l2(g, c);
        println!("{name}: GPU f32 vs CPU after 100 steps, rel L2 {e:e}");
        assert!(
            report(
                &format!("train_cuda_vs_cpu/{}", key(name)),
                e,
                1e-3,
                e < 1e-3
            ),
            "{name}: {e:e}"
        );
    }

    // a GPU run stopped at step 40 and resumed equals the uninterrupted GPU run bit for bit
    let part = train(dir.path(), "part", "40", CUDA_F32, &[]);
    continue_on_gpu(&part);
    let (wp, wg) = (weights(&part), weights(&gpu));
    let differ = differing(&wp, &wg);
    assert!(
        report("train_gpu_resume", differ, 0.0, wp == wg),
        "GPU resume is not bit-identical: {differ} elements differ"
    );

    // a CPU checkpoint continues on the GPU
    let mixed = train(dir.path(), "mixed", "40", CPU, &[]);
    continue_on_gpu(&mixed);
    for ((name, c), (_, m)) in wc.iter().zip(weights(&mixed).iter()) {
        let e = rel_l2(m, c);
        assert!(
            report(
                &format!("train_cpu_resumed_on_gpu/{}", key(name)),
                e,
                1e-3,
                e < 1e-3
            ),
            "{name}: CPU 40 + GPU 60 vs CPU 100: {e:e}"
        );
    }

    // frozen biases stay at zero on the GPU
    let frozen = train(
        dir.path(),
        "frozen",
        "30",
        CUDA_F32,
        &["--no-enc-bias", "--no-dec-bias"],
    );
    for (name, w) in weights(&frozen) {
        if name.starts_with("b_") {
            let moved = w.iter().fold(0.0f32, |m, &v| {
                m.max(if v.is_nan() { f32::INFINITY } else { v.abs() })
            });
            let still = w.iter().all(|&v| v == 0.0);
            assert!(
                report(
                    &format!("train_frozen_biases/{}", key(&name)),
                    moved as f64,
                    0.0,
                    still
                ),
                "{name} moved (max |{name}| {moved:e})"
            );
        }
    }

    // bf16 with the fused encoder trains: its loss ends within 5% of the CPU run's
    let bf = train(dir.path(), "bf16", "100", &["--device", "cuda"], &[]);
    let (end_c, end_b) = (lc[99], losses(&bf)[99]);
    let e = (end_b - end_c).abs();
    assert!(
        report("train_bf16/final_loss", e / end_c, 0.05, e <= 0.05 * end_c),
        "bf16 final loss {end_b} vs cpu {end_c}"
    );
    let summary = std::fs::read_to_string(bf.join("summary.json")).unwrap();
    assert!(summary.contains("\"device\": \"cuda: "), "{summary}");
}
