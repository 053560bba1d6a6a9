//! `bae encode` and `bae entropy` end to end: stored codes give the same estimates as encoding in
//! memory, the curves by position and by block on a real SmolLM2 extract (needs the model:
//! `bash scripts/setup.sh`; REQUIRE_MODEL=1 makes its absence a failure), and one-line errors.

mod common;
use common::*;
use std::path::{Path, PathBuf};

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn ok(o: &std::process::Output, what: &str) {
    assert!(o.status.success(), "{what}: {}", stderr(o));
}

/// A BAE trained for a few steps on `bae synth` rows; returns (data file, run folder).
fn small_run(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("synth.safetensors");
    ok(
        &bae(&[
            "synth",
            "--n",
            "3000",
            "--d",
            "16",
            "--bits",
            "6",
            "--out",
            s(&data),
        ]),
        "synth",
    );
    let run = dir.join("run");
    ok(
        &bae(&[
            "train",
            "--data",
            s(&data),
            "--out",
            s(&run),
            "--steps",
            "30",
            "--expand",
            "2",
            "--batch-size",
            "256",
            "--quiet",
        ]),
        "train",
    );
    (data, run)
}

#[test]
fn stored_codes_give_the_estimates_of_encoding_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = small_run(dir.path());
    let codes = dir.path().join("codes");
    let o = bae(&[
        "encode",
        "--run",
        s(&run),
        "--data",
        s(&data),
        "--out",
        s(&codes),
        "--shard-rows",
        "700",
        "--quiet",
    ]);
    ok(&o, "encode");
    let line = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(line.contains("3000 rows x 32 bits"), "{line}");
    let index = json(&codes.join("codes.json"));
    assert_eq!(index["complete"], true);
    assert_eq!(index["shards"].as_array().unwrap().len(), 5);

    let from_codes = dir.path().join("e1");
    ok(
        &bae(&[
            "entropy",
            "--codes",
            s(&codes),
            "--out",
            s(&from_codes),
            "--quiet",
        ]),
        "entropy --codes",
    );
    let from_run = dir.path().join("e2");
    let o = bae(&[
        "entropy",
        "--run",
        s(&run),
        "--data",
        s(&data),
        "--rows",
        "all",
        "--out",
        s(&from_run),
        "--quiet",
    ]);
    ok(&o, "entropy --run");
    let table = String::from_utf8_lossy(&o.stdout).to_string();
    for row in [
        "marginal sum",
        "Miller-Madow",
        "Chow-Liu tree bound",
        "row blocks",
    ] {
        assert!(table.contains(row), "{table}");
    }
    let (a, b) = (
        json(&from_codes.join("entropy.json")),
        json(&from_run.join("entropy.json")),
    );
    assert_eq!(a["entropy"], b["entropy"]);
    let e = &a["entropy"];
    assert_eq!(e["rows"], 3000);
    assert_eq!(e["group_unit"], "row blocks");
    let f = |k: &str, v: &str| e[k][v].as_f64().unwrap();
    // the tree bound lies under the marginal sum, each estimate inside its interval
    assert!(f("tree", "bits") <= f("marginal", "bits") + 1e-9);
    for k in ["marginal", "miller_madow", "tree"] {
        assert!(f(k, "lo") <= f(k, "bits") + 0.5 && f(k, "bits") <= f(k, "hi") + 0.5);
    }

    // one-line errors
    let nope = dir.path().join("nope");
    let lines = [
        (vec!["entropy"], "give --run"),
        (
            vec!["entropy", "--run", s(&run), "--by", "block"],
            "--by block needs --blocks",
        ),
        (
            vec!["entropy", "--codes", s(&codes), "--by", "demonstrations"],
            "needs --run",
        ),
        (
            vec![
                "entropy",
                "--run",
                s(&run),
                "--by",
                "position",
                "--positions",
                "9-3",
            ],
            "expected FIRST-LAST",
        ),
        (
            vec![
                "entropy",
                "--run",
                s(&run),
                "--by",
                "position",
                "--rows",
                "all",
            ],
            "no token positions",
        ),
        (vec!["entropy", "--codes", s(&nope)], "nope"),
        (
            vec!["entropy", "--run", s(&run), "--level", "1.5"],
            "--level",
        ),
    ];
    for (args, want) in lines {
        let mut args = args;
        let out = dir.path().join("err");
        args.extend(["--out", s(&out)]);
        let e = error_line(&bae(&args));
        assert!(e.contains(want), "{args:?}: {e}");
    }
}

fn real_model() -> bool {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let have = root
        .join("data/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        .is_file()
        && root.join("data/corpus").is_dir();
    if !have {
        assert!(
            std::env::var("REQUIRE_MODEL").is_err(),
            "REQUIRE_MODEL is set but the model or corpus is missing"
        );
        eprintln!("SKIP entropy curves: model or corpus missing (bash scripts/setup.sh)");
    }
    have
}

#[test]
fn entropy_by_position_and_by_block_on_a_real_extract() {
    if !real_model() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let acts = dir.path().join("acts");
    ok(
        &bae(&[
            "extract",
            "--blocks",
            "4,8",
            "--tokens",
            "3000",
            "--window",
            "64",
            "--keep-sink",
            "--out",
            s(&acts),
            "--quiet",
        ]),
        "extract",
    );
    let run = dir.path().join("run");
    ok(
        &bae(&[
            "train",
            "--data",
            s(&acts.join("block8")),
            "--out",
            s(&run),
            "--steps",
            "20",
            "--batch-size",
            "256",
            "--quiet",
        ]),
        "train",
    );
    let out = dir.path().join("by-position");
    ok(
        &bae(&[
            "entropy",
            "--run",
            s(&run),
            "--rows",
            "all",
            "--by",
            "position",
            "--positions",
            "1-63",
            "--min-rows",
            "10",
            "--reps",
            "20",
            "--tree-reps",
            "4",
            "--out",
            s(&out),
            "--quiet",
        ]),
        "entropy --by position",
    );
    let curve = json(&out.join("entropy_by_position.json"));
    let points = curve["points"].as_array().unwrap();
    assert_eq!(points.len(), 63, "positions 1..=63 of 64-token windows");
    assert_eq!(points[0]["x"], 1.0);
    let rows: u64 = points
        .iter()
        .map(|p| p["entropy"]["rows"].as_u64().unwrap())
        .sum();
    assert!((2800..=3000).contains(&rows), "rows {rows}");
    let svg_path = out.join("entropy_by_position.svg");
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.contains("Chow-Liu tree bound"));
    // --replot redraws the chart from the JSON alone
    std::fs::remove_file(&svg_path).unwrap();
    let json_path = out.join("entropy_by_position.json");
    ok(
        &bae(&["entropy", "--replot", s(&json_path)]),
        "entropy --replot",
    );
    assert_eq!(std::fs::read_to_string(&svg_path).unwrap(), svg);

    let demos = dir.path().join("by-demos");
    ok(
        &bae(&[
            "entropy",
            "--run",
            s(&run),
            "--by",
            "demonstrations",
            "--max-k",
            "2",
            "--queries",
            "12",
            "--reps",
            "10",
            "--tree-reps",
            "0",
            "--out",
            s(&demos),
            "--quiet",
        ]),
        "entropy --by demonstrations",
    );
    let curve = json(&demos.join("entropy_by_demonstrations.json"));
    assert!(
        curve["from"].as_str().unwrap().contains("block 8"),
        "{}",
        curve["from"]
    );
    let points = curve["points"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    for (k, p) in points.iter().enumerate() {
        assert_eq!(p["x"], k as f64);
        assert_eq!(p["entropy"]["rows"], 12);
        assert_eq!(p["entropy"]["group_unit"], "queries");
        let acc = p["extra"]["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
    }
    assert!(demos.join("entropy_by_demonstrations.svg").is_file());
    let e = error_line(&bae(&[
        "entropy",
        "--run",
        s(&run),
        "--by",
        "demonstrations",
        "--task",
        "nope",
        "--out",
        s(&demos),
    ]));
    assert!(e.contains("nope"), "{e}");

    let blocks = dir.path().join("by-block");
    let args = [
        "entropy",
        "--run",
        s(&run),
        "--data",
        s(&acts),
        "--by",
        "block",
        "--blocks",
        "4,8",
        "--epochs",
        "1",
        "--reps",
        "20",
        "--tree-reps",
        "0",
        "--out",
        s(&blocks),
    ];
    ok(&bae(&args), "entropy --by block");
    let curve = json(&blocks.join("entropy_by_block.json"));
    let points = curve["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    for (p, b) in points.iter().zip([4.0, 8.0]) {
        assert_eq!(p["x"], b);
        let fvu = p["extra"]["fvu"].as_f64().unwrap();
        assert!(fvu > 0.0 && fvu < 2.0, "fvu {fvu}");
        assert!(p["entropy"]["tree"]["lo"].is_null());
        assert!(blocks.join(format!("block{b}/model.safetensors")).is_file());
    }
    // a second run reuses both BAEs
    let o = bae(&args);
    ok(&o, "entropy --by block again");
    assert_eq!(
        stderr(&o).matches("finished run reused").count(),
        2,
        "{}",
        stderr(&o)
    );
    // a block that was not extracted
    let mut bad = args.to_vec();
    bad[8] = "4,12";
    let e = error_line(&bae(&bad));
    assert!(e.contains("no extract of block 12"), "{e}");
}
