//! The `bae` command line end to end: synth -> train -> outputs, a step-by-step comparison with the
//! official Adam trajectory through `--init --no-shuffle --val-split 0`, and one-line errors on bad input.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `bae synth` into `path`: `n` rows of width `d` from 3 independent bits.
fn synth_file(path: &Path, n: usize, d: usize) {
    let (n, d) = (n.to_string(), d.to_string());
    let o = bae(&[
        "synth",
        "--n",
        &n,
        "--d",
        &d,
        "--bits",
        "3",
        "--out",
        s(path),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn synth_then_train_writes_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("synth.safetensors");
    let o = bae(&[
        "synth",
        "--n",
        "1200",
        "--d",
        "16",
        "--bits",
        "4",
        "--seed",
        "3",
        "--out",
        s(&data),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("run");
    let o = bae(&[
        "train",
        "--device",
        "cpu",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--steps",
        "30",
        "--batch-size",
        "128",
        "--lr",
        "0.005",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "model.safetensors",
        "config.json",
        "metrics.jsonl",
        "summary.json",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 30);
    assert_eq!(lines[29]["step"], 30);
    // entropy switches on at a quarter of the run by default
    assert_eq!(lines[6]["entropy_on"], false);
    assert_eq!(lines[7]["entropy_on"], true);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let val = &summary["validation"];
    assert_eq!(val["rows"], 240);
    assert!(val["fvu"].as_f64().unwrap() < 0.6, "FVU {}", val["fvu"]);
    let (tensors, _) = bae_io::load_tensors(&out.join("model.safetensors")).unwrap();
    assert_eq!(tensors["W_enc"].shape, vec![16, 64]);
    assert_eq!(tensors["W_dec"].shape, vec![64, 16]);
    // stdout ends with the validation summary
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("FVU") && stdout.contains("dead"),
        "{stdout}"
    );
}

#[test]
fn same_seed_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("x.npy");
    assert!(
        bae(&[
            "synth",
            "--n",
            "600",
            "--d",
            "8",
            "--bits",
            "3",
            "--out",
            s(&data)
        ])
        .status
        .success()
    );
    let run = |name: &str| {
        let out = dir.path().join(name);
        let o = bae(&[
            "train",
            "--device",
            "cpu",
            "--data",
            s(&data),
            "--out",
            s(&out),
            "--steps",
            "12",
            "--batch-size",
            "64",
            "--seed",
            "9",
            "--quiet",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        bae_io::load_tensors(&out.join("model.safetensors"))
            .unwrap()
            .0
    };
    let (a, b) = (run("a"), run("b"));
    assert_eq!(a.len(), 4);
    for (name, t) in &a {
        let same = t
            .data
            .iter()
            .zip(&b[name].data)
            .all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{name} differs between two runs with the same seed");
    }
}

/// Five steps on the golden batch, in file order, no validation rows, from the golden weights:
/// the saved model follows the official float64 Adam trajectory to f32 accuracy.
#[test]
fn train_follows_official_adam_trajectory() {
    let g = Golden::load("bae_small.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let (n, d) = (g.shape("x")[0], g.shape("x")[1]);
    let data = dir.path().join("x.safetensors");
    bae_io::write_activations(
        &data,
        n,
        d,
        &to_f32(g.get("x")),
        bae_io::DType::F32,
        &BTreeMap::new(),
    )
    .unwrap();
    let init = golden_dir().join("bae_small.safetensors");
    let out = dir.path().join("run");
    let lam_e = g.scalar("lam_e").to_string();
    let lam_c = g.scalar("lam_c").to_string();
    let lr = g.scalar("adam.lr").to_string();
    let o = bae(&[
        "train",
        "--device",
        "cpu",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--init",
        s(&init),
        "--no-shuffle",
        "--val-split",
        "0",
        "--steps",
        "5",
        "--batch-size",
        &n.to_string(),
        "--lambda-entropy",
        &lam_e,
        "--lambda-cov",
        &lam_c,
        "--entropy-start",
        "0",
        "--lr",
        &lr,
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (model, _) = bae_io::load_tensors(&out.join("model.safetensors")).unwrap();
    for name in bae_ref::PARAM_NAMES {
        assert_close(
            name,
            &model[name].data,
            g.get(&format!("adam.step5.{name}")),
            1e-5,
        );
    }
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    for (t, line) in metrics.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_close(
            "loss",
            &[v["loss"].as_f64().unwrap()],
            &[g.get("adam.loss_total")[t]],
            1e-5,
        );
    }
}

fn write_bytes(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn bad_inputs_give_one_line_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let train = |data: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--device",
            "cpu",
            "--data",
            s(data),
            "--out",
            s(&out),
            "--steps",
            "2",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        bae(&args)
    };
    // missing file
    let missing = dir.path().join("nope.safetensors");
    let e = error_line(&train(&missing, &[]));
    assert!(e.contains("nope.safetensors"), "{e}");
    // empty file
    let empty = write_bytes(dir.path(), "empty.npy", b"");
    let e = error_line(&train(&empty, &[]));
    assert!(e.contains("empty.npy") && e.contains("empty"), "{e}");
    // truncated file
    let good = dir.path().join("good.safetensors");
    let data: Vec<f32> = (0..64 * 8).map(|i| (i % 7) as f32).collect();
    bae_io::write_activations(&good, 64, 8, &data, bae_io::DType::F32, &BTreeMap::new()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cut = write_bytes(dir.path(), "cut.safetensors", &bytes[..bytes.len() - 100]);
    let e = error_line(&train(&cut, &[]));
    assert!(
        e.contains("cut.safetensors") && e.contains("truncated"),
        "{e}"
    );
    // NaN inside the data: named with its row
    let mut bad = data.clone();
    bad[5 * 8 + 2] = f32::NAN;
    let nan = dir.path().join("nan.safetensors");
    bae_io::write_activations(&nan, 64, 8, &bad, bae_io::DType::F32, &BTreeMap::new()).unwrap();
    let e = error_line(&train(
        &nan,
        &["--no-shuffle", "--batch-size", "64", "--val-split", "0"],
    ));
    assert!(e.contains("nan.safetensors") && e.contains("row 5"), "{e}");
    assert!(e.contains("step 0 (epoch 0, batch 0)"), "{e}");
    // --skip-nonfinite leaves that row out and counts it, once per visit: 6 batches of 16 in
    // file order cover rows 0-63 and then rows 0-31 again, so row 5 is skipped twice
    let skip_out = dir.path().join("skip");
    let o = bae(&[
        "train",
        "--device",
        "cpu",
        "--data",
        s(&nan),
        "--out",
        s(&skip_out),
        "--steps",
        "6",
        "--batch-size",
        "16",
        "--no-shuffle",
        "--val-split",
        "0",
        "--skip-nonfinite",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("skipped 2 rows holding NaN/Inf"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let summary = std::fs::read_to_string(skip_out.join("summary.json")).unwrap();
    assert!(
        summary.contains("\"skipped_nonfinite_rows\": 2"),
        "{summary}"
    );
    // wrong rank
    let one_d = dir.path().join("flat.npy");
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }".to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    npy.extend_from_slice(&[0u8; 16]);
    std::fs::write(&one_d, npy).unwrap();
    let e = error_line(&train(&one_d, &[]));
    assert!(e.contains("flat.npy"), "{e}");
    // --init with mismatched shapes
    let init = golden_dir().join("bae_tiny.safetensors");
    let e = error_line(&train(&good, &["--init", s(&init)]));
    assert!(
        e.contains("bae_tiny.safetensors") && e.contains("W_enc") && e.contains("expected [8, 32]"),
        "{e}"
    );
    // nothing was written for the failed runs except possibly the config of the last one; no temp files
    if out.exists() {
        for entry in std::fs::read_dir(&out).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                !name.ends_with(".tmp"),
                "temporary file left behind: {name}"
            );
        }
    }
}

#[test]
fn disabled_biases_stay_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("x.safetensors");
    assert!(
        bae(&[
            "synth",
            "--n",
            "500",
            "--d",
            "8",
            "--bits",
            "3",
            "--out",
            s(&data)
        ])
        .status
        .success()
    );
    let out = dir.path().join("run");
    let o = bae(&[
        "train",
        "--device",
        "cpu",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--steps",
        "10",
        "--batch-size",
        "64",
        "--no-enc-bias",
        "--no-dec-bias",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (m, _) = bae_io::load_tensors(&out.join("model.safetensors")).unwrap();
    assert!(m["b_enc"].data.iter().all(|&v| v == 0.0));
    assert!(m["b_dec"].data.iter().all(|&v| v == 0.0));
    assert!(m["W_enc"].data.iter().any(|&v| v != 0.0));
}

/// Finite but huge inputs overflow the f32 step: the run stops naming the step and the last good
/// checkpoint, and that checkpoint still holds finite weights.
#[test]
fn divergence_stops_with_step_and_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (n, d) = (256, 8);
    let mut x: Vec<f32> = (0..n * d)
        .map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0)
        .collect();
    // rows past the first epoch's first batches: in file order they arrive at step 2
    for v in &mut x[200 * d..201 * d] {
        *v = 3.0e38;
    }
    let data = dir.path().join("huge.safetensors");
    bae_io::write_activations(&data, n, d, &x, bae_io::DType::F32, &BTreeMap::new()).unwrap();
    let out = dir.path().join("run");
    let o = bae(&[
        "train",
        "--device",
        "cpu",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--steps",
        "20",
        "--batch-size",
        "64",
        "--no-shuffle",
        "--val-split",
        "0",
        "--checkpoint-every",
        "1",
        "--quiet",
    ]);
    let e = error_line(&o);
    assert!(
        e.contains("step 3") && e.contains("last good checkpoint") && e.contains("(step 3)"),
        "{e}"
    );
    let (ck, meta) = bae_io::load_tensors(&out.join("checkpoint.safetensors")).unwrap();
    assert_eq!(meta["step"], "3");
    assert!(ck.values().all(|t| t.data.iter().all(|v| v.is_finite())));
}

/// Without a usable GPU, `--device cuda` is one error line and `--device auto` (the default) says
/// why it trains on the CPU, then does. Skipped where a GPU is present (the GPU tests cover that).
#[test]
fn device_cuda_without_gpu_and_auto_fallback() {
    if let Ok(g) = bae_gpu::GpuContext::new() {
        println!("SKIP: a GPU is present ({})", g.device_name());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("x.safetensors");
    synth_file(&data, 300, 8);
    let out = dir.path().join("run");
    let args = |device: &'static str| {
        vec![
            "train",
            "--data",
            s(&data),
            "--out",
            s(&out),
            "--steps",
            "3",
            "--batch-size",
            "32",
            "--device",
            device,
        ]
    };
    let line = error_line(&bae(&args("cuda")));
    assert!(line.starts_with("error: --device cuda: "), "{line}");
    let o = bae(&args("auto"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("; training on the CPU"),
        "{}",
        stderr(&o)
    );
    if bae_gpu::HARDWARE_VERIFIED.is_none() {
        assert!(
            stderr(&o).contains("not yet been verified on GPU hardware"),
            "{}",
            stderr(&o)
        );
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("tokens/s on cpu ("), "{stdout}");
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(summary.contains("\"device\": \"cpu ("), "{summary}");
}

/// `bae eval` on a synthetic run (no LLM: the data is a file, so downstream is skipped with a
/// note), then its bad inputs: one line each, naming the file, and nothing written.
#[test]
fn eval_writes_report_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let synth = |name: &str, d: usize| {
        let p = dir.path().join(name);
        synth_file(&p, 400, d);
        p
    };
    let data = synth("x.safetensors", 8);
    let run = dir.path().join("run");
    let o = bae(&[
        "train",
        "--data",
        s(&data),
        "--out",
        s(&run),
        "--steps",
        "20",
        "--batch-size",
        "64",
        "--device",
        "cpu",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bae(&["eval", "--run", s(&run), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("| FVU / explained variance |"), "{table}");
    assert!(table.contains("not a bae extract folder"), "{table}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("eval.json")).unwrap()).unwrap();
    assert_eq!(report["rows"], 80, "the validation split: 20 % of 400");
    let fvu = report["reconstruction"]["fvu"].as_f64().unwrap();
    let ev = report["reconstruction"]["explained_variance"]
        .as_f64()
        .unwrap();
    assert!((fvu + ev - 1.0).abs() < 1e-12 && fvu > 0.0, "{report}");
    assert_eq!(report["features"]["n_features"], 32);
    assert!(report["downstream"].is_null());
    assert!(run.join("eval_rates.svg").is_file());

    // the same run on other activations: every row, and a width that does not match
    let o = bae(&["eval", "--run", s(&run), "--data", s(&data), "--quiet"]);
    assert!(o.status.success());
    let wide = synth("wide.safetensors", 12);
    let e = error_line(&bae(&["eval", "--run", s(&run), "--data", s(&wide)]));
    assert!(
        e.contains("wide.safetensors") && e.contains("12 wide"),
        "{e}"
    );
    // a run folder without a model, and no run folder at all
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::copy(run.join("config.json"), empty.join("config.json")).unwrap();
    let e = error_line(&bae(&["eval", "--run", s(&empty)]));
    assert!(
        e.contains("model.safetensors") && e.contains("no model"),
        "{e}"
    );
    let e = error_line(&bae(&["eval", "--run", s(&dir.path().join("nope"))]));
    assert!(e.contains("nope") && e.contains("not a run folder"), "{e}");
    assert!(!empty.join("eval.json").exists());
}

/// `bae compare` trains each architecture alike, writes the table and chart, reuses finished runs
/// on a re-run, and refuses a folder trained with other settings or held by another writer.
#[test]
fn compare_trains_reuses_and_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("x.safetensors");
    synth_file(&data, 600, 8);
    let out = dir.path().join("cmp");
    let args = |lr: &'static str| {
        vec![
            "compare",
            "--data",
            s(&data),
            "--out",
            s(&out),
            "--archs",
            "bae,topk,relu-l1",
            "--steps",
            "15",
            "--batch-size",
            "64",
            "--k",
            "4",
            "--lr",
            lr,
            "--quiet",
        ]
    };
    let o = bae(&args("0.001"));
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    for arch in ["| bae |", "| topk |", "| relu-l1 |"] {
        assert!(md.contains(arch), "{md}");
    }
    assert!(md.contains("compare.svg") && out.join("compare.svg").is_file());
    let svg = std::fs::read_to_string(out.join("compare.svg")).unwrap();
    assert!(
        svg.contains("FVU against L0") && svg.contains("topk: L0 4.0"),
        "the legend names each point"
    );
    let json = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let first = json(&out.join("compare.json"));
    let models = first["models"].as_array().unwrap();
    assert_eq!(models.len(), 3);
    assert!(models.iter().all(|m| m["reused"] == false));
    // every model on the same held-out rows
    let rows: Vec<_> = models
        .iter()
        .map(|m| m["eval"]["rows_from"].clone())
        .collect();
    assert!(rows.iter().all(|r| *r == rows[0]), "{rows:?}");
    assert_eq!(models[1]["eval"]["features"]["l0"], 4.0, "topk k = 4");
    for m in models {
        let run = Path::new(m["run"].as_str().unwrap());
        assert!(run.join("model.safetensors").is_file() && run.join("eval.json").is_file());
    }

    let o = bae(&args("0.001"));
    assert!(o.status.success(), "{}", stderr(&o));
    let again = json(&out.join("compare.json"));
    let again = again["models"].as_array().unwrap();
    assert!(again.iter().all(|m| m["reused"] == true), "{again:?}");
    assert_eq!(
        again[0]["eval"]["reconstruction"],
        models[0]["eval"]["reconstruction"]
    );
    assert_eq!(
        again[0]["train_tokens_per_s"],
        models[0]["train_tokens_per_s"]
    );

    let e = error_line(&bae(&args("0.002")));
    assert!(e.contains("other settings") && e.contains("bae"), "{e}");

    let lock = bae_io::FolderLock::acquire(&out).unwrap();
    let e = error_line(&bae(&args("0.001")));
    assert!(e.contains("another bae process"), "{e}");
    drop(lock);
}

/// `bae sweep` trains one run per grid point (a 2 x 2 grid), writes the table, chart and JSON,
/// reuses finished points on a re-run and trains only new ones, and refuses a bad key, a bad value
/// or an impossible later point in one line before anything trains.
#[test]
fn sweep_trains_grid_reuses_and_checks_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("x.safetensors");
    synth_file(&data, 600, 8);
    let out = dir.path().join("sw");
    let sweep = |out: &Path, grid: &str, steps: &str| {
        bae(&[
            "sweep",
            "--data",
            s(&data),
            "--out",
            s(out),
            "--grid",
            grid,
            "--steps",
            steps,
            "--batch-size",
            "64",
            "--lr",
            "0.01",
            "--quiet",
        ])
    };
    let grid = "lambda-cov=0,1e-2;estimator=sign_s,ste";
    let o = sweep(&out, grid, "15");
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    let rows: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| lambda-cov"))
        .collect();
    assert_eq!(rows.len(), 4, "{md}");
    for (row, want) in rows.iter().zip([
        "| 0 | sign_s |",
        "| 0 | ste |",
        "| 1e-2 | sign_s |",
        "| 1e-2 | ste |",
    ]) {
        assert!(row.starts_with(want), "{row}");
    }
    assert!(md.contains("| lambda-cov | estimator | MSE | FVU | L0 | mean rare-value rate |"));
    let svg = std::fs::read_to_string(out.join("sweep.svg")).unwrap();
    assert!(svg.contains("FVU against the mean rare-value rate"));
    assert!(
        svg.contains("lambda-cov=1e-2, estimator=ste"),
        "the legend names each point"
    );
    let json = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    for (name, cov, est) in [
        ("lambda-cov=0,estimator=sign_s", 0.0, "sign_s"),
        ("lambda-cov=1e-2,estimator=ste", 0.01, "ste"),
    ] {
        let run = out.join(name);
        assert!(run.join("model.safetensors").is_file() && run.join("eval.json").is_file());
        let cfg = json(&run.join("config.json"));
        assert_eq!(cfg["lambda_cov"], cov, "{name}");
        assert_eq!(cfg["estimator"], est, "{name}");
        assert_eq!(cfg["steps"], 15);
        assert_eq!(cfg["lr"], 0.01);
    }
    let first = json(&out.join("sweep.json"));
    let points = first["points"].as_array().unwrap();
    assert_eq!(points.len(), 4);
    assert!(points.iter().all(|p| p["reused"] == false));
    assert_eq!(points[3]["values"]["estimator"], "ste");
    assert_eq!(points[3]["config"]["lambda-cov"], 0.01);
    let held_out: Vec<_> = points.iter().map(|p| &p["eval"]["rows_from"]).collect();
    assert!(held_out.iter().all(|r| *r == held_out[0]), "{held_out:?}");

    // the same command reuses every point; one more value trains only the two new points
    let o = sweep(&out, grid, "15");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("4 points (4 reused)"));
    let again = json(&out.join("sweep.json"));
    assert!(
        again["points"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["reused"] == true)
    );
    assert_eq!(
        again["points"][0]["eval"]["reconstruction"],
        points[0]["eval"]["reconstruction"]
    );
    let o = sweep(&out, "lambda-cov=0,1e-2,1e-1;estimator=sign_s,ste", "15");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("6 points (4 reused)"));

    // one line, and nothing trained: a bad key, a bad value, an impossible later point, a folder
    // holding a run with other settings
    let fresh = dir.path().join("fresh");
    let e = error_line(&sweep(&fresh, "lamda-cov=0,1e-2", "15"));
    assert!(
        e.contains("lamda-cov") && e.contains("valid keys") && e.contains("lambda-cov"),
        "{e}"
    );
    let e = error_line(&sweep(&fresh, "lambda-cov=0,abc", "15"));
    assert!(e.contains("lambda-cov=abc"), "{e}");
    let e = error_line(&sweep(
        &fresh,
        "lambda-cov=0,1e-2;estimator=sign_s,bogus",
        "15",
    ));
    assert!(
        e.contains("estimator=bogus") && e.contains("unknown estimator"),
        "{e}"
    );
    assert!(!fresh.exists(), "nothing trained, no folder made");
    let e = error_line(&sweep(
        &out,
        "lambda-cov=0,1e-2,1;estimator=sign_s,ste",
        "16",
    ));
    assert!(e.contains("other settings"), "{e}");
    assert!(!out.join("lambda-cov=1,estimator=sign_s").exists());
}

/// `--preset sparse` writes its settings into the run's config and refuses the flags it sets.
#[test]
fn sparse_preset_sets_the_rate_target() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("x.safetensors");
    synth_file(&data, 400, 8);
    let out = dir.path().join("run");
    let o = bae(&[
        "train",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--steps",
        "5",
        "--batch-size",
        "64",
        "--preset",
        "sparse",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["target_rate"], 0.005);
    assert_eq!(cfg["fvu_loss"], true);
    assert_eq!(cfg["b_dec_mean_init"], true);
    assert_eq!(cfg["lambda_entropy"], 0.0);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("specific (0.01%..1%)"), "{stdout}");
    let o = bae(&[
        "train",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--preset",
        "sparse",
        "--lr",
        "0.01",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--lr"), "{}", stderr(&o));
}

/// `bae features` / `bae interpret` refuse bad input in one line before any long work.
#[test]
fn features_and_interpret_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    // enough for the argument checks, which come before the run is read
    std::fs::write(run.join("config.json"), "{}").unwrap();
    let not_report = write_bytes(dir.path(), "notes.txt", b"mine");
    let o = bae(&["features", "--run", s(&run), "--html", s(&not_report)]);
    assert!(!o.status.success());
    assert!(
        error_line(&o).contains("is not a feature report folder"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&not_report).unwrap(), b"mine");
    assert!(!run.join("features.md").exists());
    let o = bae(&["features", "--run", s(&dir.path().join("missing"))]);
    assert!(
        error_line(&o).contains("not a run folder"),
        "{}",
        stderr(&o)
    );
    for (args, want) in [
        (vec!["--features", "abc"], "expected N, `all` or a list"),
        (vec!["--threshold", "2"], "a score lies in [0, 1]"),
        (vec!["--judge", "openai"], "needs --judge-url"),
        (
            vec!["--judge-url", "http://127.0.0.1:9/v1"],
            "need --judge openai",
        ),
    ] {
        let mut all = vec!["interpret", "--run", s(&run)];
        all.extend(args);
        let o = bae(&all);
        assert!(!o.status.success());
        assert!(error_line(&o).contains(want), "{want}: {}", stderr(&o));
    }
    let o = bae(&["interpret", "--run", s(dir.path())]);
    assert!(
        error_line(&o).contains("neither a run folder"),
        "{}",
        stderr(&o)
    );
}

/// `bae train --resume DIR` takes its settings from DIR/config.json: a training flag given with it
/// would be silently ignored, so it is refused in one line, and nothing is written.
#[test]
fn resume_refuses_flags_it_would_ignore() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    for flag in [
        vec!["--steps", "10"],
        vec!["--lr", "0.1"],
        vec!["--out", "elsewhere"],
        vec!["--preset", "sparse"],
        vec!["--epochs", "3"],
        vec!["--seed", "1"],
    ] {
        let mut args = vec!["train", "--resume", s(&run)];
        args.extend(&flag);
        let o = bae(&args);
        let line = error_line(&o);
        assert!(line.contains("cannot be used with"), "{flag:?}: {line}");
        assert!(line.contains(flag[0]), "{flag:?}: {line}");
    }
    assert!(!run.exists());
    // what a resume may take: where the data now is, the device, quiet
    let o = bae(&["train", "--resume", s(&run), "--data", "x.npy", "--quiet"]);
    assert!(error_line(&o).contains("config.json"), "{}", stderr(&o));
}

/// Two extractions into one folder would append to the same shards: the second is refused in one
/// line while the first holds the folder.
#[test]
fn extract_refuses_a_folder_another_process_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("acts");
    let held = bae_io::FolderLock::acquire(&out).unwrap();
    let o = bae(&["extract", "--blocks", "3", "--out", s(&out), "--quiet"]);
    assert!(
        error_line(&o).contains("another bae process is writing this folder"),
        "{}",
        stderr(&o)
    );
    drop(held);
    // free again: now it goes on to the model (missing here or not, no lock error)
    let o = bae(&[
        "extract",
        "--blocks",
        "3",
        "--out",
        s(&out),
        "--model",
        s(&dir.path().join("none.gguf")),
        "--quiet",
    ]);
    assert!(
        !stderr(&o).contains("another bae process"),
        "{}",
        stderr(&o)
    );
}
