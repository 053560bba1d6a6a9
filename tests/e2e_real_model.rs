//! The main job on a small slice: `bae extract` (real SmolLM2 over the real corpus) -> `bae train` on
//! the extract folder -> `bae features` -> `bae eval` (downstream fidelity on the real LLM). Needs
//! `bash scripts/setup.sh`; skips without the model unless REQUIRE_MODEL=1 (scripts/test.sh sets it,
//! so CI always runs it).

mod common;
use common::{bae, s};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The model and corpus of `bash scripts/setup.sh`, or None after printing SKIP (a failure with
/// REQUIRE_MODEL=1, which scripts/test.sh sets).
fn real_model_and_corpus() -> Option<(PathBuf, PathBuf)> {
    let model = root().join("data/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let corpus = root().join("data/corpus/sotu");
    if model.is_file() && corpus.is_dir() {
        return Some((model, corpus));
    }
    assert!(
        std::env::var("REQUIRE_MODEL").as_deref() != Ok("1"),
        "REQUIRE_MODEL=1 but the model or corpus is missing: run bash scripts/setup.sh"
    );
    eprintln!("SKIP: model or corpus missing (bash scripts/setup.sh)");
    None
}

#[test]
fn extract_train_features_on_a_small_slice() {
    if real_model_and_corpus().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let acts = dir.path().join("acts");
    let o = bae(&[
        "extract",
        "--blocks",
        "8",
        "--tokens",
        "3000",
        "--out",
        s(&acts),
        "--quiet",
    ]);
    assert!(
        o.status.success(),
        "extract: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let block = acts.join("block8");
    // the manifest `bae extract` wrote reads through the typed store definition, and is exactly
    // that definition's serialisation
    let manifest = bae_io::extract_store::Manifest::read(&block)
        .unwrap()
        .unwrap();
    assert_eq!(
        manifest.to_bytes(),
        std::fs::read(block.join("manifest.json")).unwrap()
    );
    assert_eq!((manifest.d, manifest.block), (576, 8));
    assert!(manifest.complete);
    let rows = manifest.tokens_total;
    assert!((2900..=3000).contains(&rows), "rows {rows}");
    assert_eq!(
        bae_io::ShardStore::open(&acts).unwrap().n_rows() as u64,
        rows
    );

    // re-running a finished extraction reuses it
    let o = bae(&[
        "extract",
        "--blocks",
        "8",
        "--tokens",
        "3000",
        "--out",
        s(&acts),
        "--quiet",
    ]);
    assert!(o.status.success());

    let run = dir.path().join("run");
    let o = bae(&[
        "train",
        "--data",
        s(&block),
        "--out",
        s(&run),
        "--steps",
        "40",
        "--batch-size",
        "256",
        "--lr",
        "0.002",
        "--quiet",
    ]);
    assert!(
        o.status.success(),
        "train: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let fvu = summary["validation"]["fvu"].as_f64().unwrap();
    assert!(fvu > 0.0 && fvu < 1.0, "FVU {fvu}");
    assert!(run.join("density.svg").is_file() && run.join("training.svg").is_file());

    let html = dir.path().join("report");
    let o = bae(&[
        "features",
        "--run",
        s(&run),
        "--n",
        "3",
        "--examples",
        "4",
        "--html",
        s(&html),
        "--quiet",
    ]);
    assert!(
        o.status.success(),
        "features: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let pages = std::fs::read_to_string(run.join("features.md")).unwrap();
    assert!(pages.matches("## feature").count() == 3, "{pages}");
    // decoded text with the bracketed token
    assert!(
        pages.contains("- `") && pages.contains('[') && pages.contains(']'),
        "{pages}"
    );
    interpret_on_the_small_run(&run, &html);

    // bae eval with downstream fidelity on held-out windows of the same text: a trained model's
    // spliced CE lies between clean and zero-ablated
    let o = bae(&["eval", "--run", s(&run), "--windows", "4", "--quiet"]);
    assert!(
        o.status.success(),
        "eval: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("eval.json")).unwrap()).unwrap();
    let ds = &report["downstream"];
    let f = |k: &str| ds[k].as_f64().unwrap_or_else(|| panic!("{k} in {ds}"));
    assert_eq!(ds["block"], 8);
    assert!(f("ce_clean") < f("ce_spliced"), "{ds}");
    assert!(f("ce_spliced") < f("ce_zero_ablated"), "{ds}");
    assert!(
        f("kl_spliced") > 0.0 && f("kl_spliced") < f("kl_zero_ablated"),
        "{ds}"
    );
    assert!(f("ce_loss_score") > 0.0 && f("ce_loss_score") < 1.0, "{ds}");
    assert!(f("last_token_jsd") >= 0.0 && f("last_token_jsd") <= std::f64::consts::LN_2);
    assert!(report["command"].as_str().unwrap().contains("eval"));
}

/// `bae features --html` wrote a report of every feature; `bae interpret` with the offline judge
/// scores two features, a rerun costs nothing, the report then shows the judge's descriptions, and
/// an unreachable or keyless judge stops with one line.
fn interpret_on_the_small_run(run: &Path, html: &Path) {
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(html.join("report.json")).unwrap()).unwrap();
    let n_features = report["features"].as_array().unwrap().len();
    assert_eq!(n_features, 4 * 576);
    assert!(html.join("index.html").is_file());
    assert!(html.join("features/f00000.html").is_file());
    assert!(
        html.join(format!("features/f{:05}.html", n_features - 1))
            .is_file()
    );
    let with_context = report["features"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["samples"].as_array().unwrap())
        .filter(|s| !s["context"]["before"].as_str().unwrap().is_empty())
        .count();
    assert!(with_context > 0, "no sample has a decoded context");

    report_opens_in_chromium(html, n_features);

    // the two features with the most samples (a small corpus leaves most below 6)
    let mut by_samples: Vec<(usize, usize)> = report["features"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(j, f)| (f["samples"].as_array().unwrap().len(), j))
        .collect();
    by_samples.sort_unstable_by(|a, b| b.cmp(a));
    assert!(by_samples[1].0 >= 13, "{:?}", &by_samples[..2]);
    let list = format!("{},{}", by_samples[0].1, by_samples[1].1);
    let interpret = |extra: &[&str]| {
        let mut args = vec!["interpret", "--run", s(run), "--quiet"];
        args.extend_from_slice(extra);
        bae(&args)
    };
    let o = interpret(&["--features", &list]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "interpret: {}{out}",
        String::from_utf8_lossy(&o.stderr)
    );
    // 2 descriptions, then 8 samples + 8 random tokens each for the described ones
    assert!(
        out.contains("0 answers from the cache, 2 asked")
            || out.contains("0 answers from the cache, 18 asked")
            || out.contains("0 answers from the cache, 34 asked"),
        "{out}"
    );
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("interpret.json")).unwrap())
            .unwrap();
    assert!(
        result["judge"]
            .as_str()
            .unwrap()
            .starts_with("local:SmolLM2")
    );
    let scored = result["features"].as_array().unwrap();
    assert_eq!(scored.len(), 2);
    for f in scored {
        match f["interpretation"].as_object() {
            Some(i) => {
                let c = i["comsem"].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&c), "{f}");
                assert!(!i["description"].as_str().unwrap().is_empty());
            }
            None => assert!(f["why_not"].is_string(), "{f}"),
        }
    }
    // the rerun is answered from the cache alone
    let o = interpret(&["--features", &list]);
    let again = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success() && again.contains(" 0 asked"), "{again}");
    // the report picks the interpretations up
    let o = bae(&["features", "--run", s(run), "--html", s(html), "--quiet"]);
    assert!(o.status.success());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(html.join("report.json")).unwrap()).unwrap();
    for f in scored.iter().filter(|f| f["interpretation"].is_object()) {
        let j = f["feature"].as_u64().unwrap() as usize;
        assert_eq!(
            report["features"][j]["interpretation"]["description"],
            f["interpretation"]["description"]
        );
    }
    // judge failures: one line each, nothing scored lost
    let o = interpret(&[
        "--features",
        &list,
        "--judge",
        "openai",
        "--judge-url",
        "http://127.0.0.1:9/v1",
        "--judge-model",
        "m",
        "--retries",
        "0",
    ]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success());
    assert!(err.contains("cannot reach http://127.0.0.1:9/v1"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let o = interpret(&[
        "--judge",
        "openai",
        "--judge-url",
        "https://judge.invalid/v1",
        "--judge-model",
        "m",
        "--judge-key-env",
        "BAE_TEST_UNSET_KEY",
    ]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success() && err.contains("no API key"), "{err}");
    assert!(run.join("interpret.json").is_file());
}

/// The report of a real run in headless chromium: the index draws a row per feature, a feature
/// page shows its highlighted contexts and histogram, no console message. Skips without chromium
/// unless REQUIRE_CHROMIUM=1 (CI).
fn report_opens_in_chromium(html: &Path, n_features: usize) {
    use bae_analysis::features::report::{chromium_path, file_url, headless};
    if chromium_path().is_none() {
        assert!(
            std::env::var("REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "REQUIRE_CHROMIUM=1 but chromium is not installed (bash scripts/chromium_setup.sh)"
        );
        eprintln!(
            "SKIP report in chromium: chromium not installed (bash scripts/chromium_setup.sh)"
        );
        return;
    }
    let dom = |page: &Path| {
        let url = file_url(page).unwrap();
        let h = headless(
            &[
                "--virtual-time-budget=3000".into(),
                "--dump-dom".into(),
                url.clone(),
            ],
            std::time::Duration::from_secs(90),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !h.stderr.contains("CONSOLE") && !h.stderr.contains("Uncaught"),
            "console messages on {url}: {}",
            h.stderr
        );
        h.stdout
    };
    let index = dom(&html.join("index.html"));
    assert_eq!(index.matches("<tr data-feature=").count(), n_features);
    let page = dom(&html.join("features/f00000.html"));
    assert!(page.contains("<svg class=\"histogram\""), "no histogram");
    assert!(page.contains("Feature 0"), "no title");
}

/// `bae eval` refuses, in one line naming the GGUF, a model whose width is not the activations'
/// (an 8-wide extract folder written by hand, a BAE trained on it, the real 576-wide SmolLM2).
#[test]
fn eval_refuses_a_model_of_another_width() {
    let Some((model, _)) = real_model_and_corpus() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let block = dir.path().join("block3");
    std::fs::create_dir(&block).unwrap();
    let (n, d) = (300usize, 8usize);
    let acts: Vec<f32> = (0..n * d)
        .map(|k| ((k * 37 % 101) as f32 - 50.0) / 10.0)
        .collect();
    let docs: Vec<f32> = (0..n).map(|i| (i / 100) as f32).collect();
    bae_io::save_tensors(
        &block.join("shard_00000.safetensors"),
        &[("activations", &[n, d], &acts), ("doc_ids", &[n], &docs)],
        &std::collections::BTreeMap::new(),
    )
    .unwrap();
    extract_manifest(d, "shard_00000.safetensors", n)
        .write(&block)
        .unwrap();
    let run = dir.path().join("run");
    let o = bae(&[
        "train",
        "--data",
        s(&block),
        "--out",
        s(&run),
        "--steps",
        "5",
        "--batch-size",
        "64",
        "--device",
        "cpu",
        "--quiet",
    ]);
    assert!(
        o.status.success(),
        "train: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = bae(&["eval", "--run", s(&run), "--model", s(&model), "--quiet"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let line = err.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("error: ") && line.contains("SmolLM2") && line.contains("576 wide"),
        "{err}"
    );
    assert!(!run.join("eval.json").exists(), "nothing written on error");
}

/// The manifest of an f32 extract folder of one shard of `rows` rows of width `d`.
fn extract_manifest(d: usize, file: &str, rows: usize) -> bae_io::extract_store::Manifest {
    use bae_io::extract_store::{Manifest, OutDtype, RunSettings, ShardEntry, TextPos};
    let settings = RunSettings {
        model: "hand-written".into(),
        source: vec!["none".into()],
        window: 100,
        dtype: OutDtype::F32,
        keep_sink: true,
        shard_rows: rows,
        batch: 1,
    };
    Manifest {
        model: settings.model.clone(),
        block: 3,
        d,
        dtype: OutDtype::F32,
        window: 100,
        tokens_total: rows as u64,
        shards: vec![ShardEntry {
            file: file.into(),
            rows,
            first_doc: 0,
            last_doc: (rows as i64 - 1) / 100,
            end: TextPos::default(),
            candidates_end: rows as u64,
            dropped_outliers: 0,
        }],
        complete: true,
        exhausted: true,
        tokens_budget: rows as u64,
        docs: (0..rows.div_ceil(100)).map(|i| format!("doc{i}")).collect(),
        tokenizer: "none".into(),
        settings,
    }
}
