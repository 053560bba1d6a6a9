//! `bae eval`: judge a trained autoencoder as the field does, on held-out rows: reconstruction
//! (MSE, FVU, explained variance, cosine, L2 ratio), feature statistics (L0, dead, dense by firing
//! rate and by rare value, specific / constant, salience density, entropy, covariance term), two
//! log10 histograms, and downstream fidelity on the LLM (`fidelity`).

pub mod divergence;
pub mod features;
pub mod fidelity;

use crate::TrainedRun;
use bae_io::ShardStore;
use bae_train::RowSource;
pub use features::{FeatureStats, Reconstruction};
pub use fidelity::Fidelity;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Downstream fidelity settings.
#[derive(Clone, Debug)]
pub struct DownstreamOptions {
    /// GGUF of the LLM the activations came from
    pub model: PathBuf,
    /// held-out windows to run
    pub windows: usize,
    /// windows per forward pass
    pub batch: usize,
}

#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub run: PathBuf,
    /// rows to evaluate on: the run's validation split when None (or the same data), else all of it
    pub data: Option<PathBuf>,
    /// evaluate on the first N of those rows only
    pub rows: Option<usize>,
    /// rows per forward pass
    pub batch: usize,
    /// None: no downstream evaluation
    pub downstream: Option<DownstreamOptions>,
    pub show_progress: bool,
    /// the command line, recorded in eval.json
    pub command: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub command: String,
    pub run: String,
    pub arch: String,
    pub d: usize,
    pub d_code: usize,
    pub data: String,
    /// which rows: "validation split (rows a..b of n)" or "all n rows"
    pub rows_from: String,
    pub rows: usize,
    pub reconstruction: Reconstruction,
    pub features: FeatureStats,
    pub downstream: Option<Fidelity>,
    /// why there is no downstream section, when there is none
    pub downstream_note: Option<String>,
    pub images: Vec<String>,
}

pub const EVAL_JSON: &str = "eval.json";
pub const RATES_SVG: &str = "eval_rates.svg";

pub(crate) fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

pub(crate) fn bar(show: bool, len: u64, what: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{elapsed_precise}} [{{wide_bar}}] {{human_pos}}/{{human_len}} {what}, ETA {{eta}}"
        ))
        .expect("static template"),
    );
    pb
}

/// Evaluates the run of `opts` (nothing written: see [`write_outputs`]).
pub fn evaluate(opts: &EvalOptions) -> Result<EvalReport, String> {
    let run = TrainedRun::open(&opts.run)?;
    let data = opts
        .data
        .clone()
        .unwrap_or_else(|| run.data().to_path_buf());
    let src = bae_train::store::open_source(&data)?;
    run.check_rows(src.as_ref(), &data)?;
    let n = src.n_rows();
    let same = same_path(&data, run.data());
    let (range, rows_from) = if same {
        let split = src.train_rows(run.config.val_split);
        if split >= n {
            return Err(format!(
                "{}: the run trained on every row (--val-split {}): pass --data with held-out activations",
                run.dir.join("config.json").display(),
                run.config.val_split
            ));
        }
        (
            split..n,
            format!("validation split (rows {split}..{n} of {n})"),
        )
    } else {
        (0..n, format!("all {n} rows"))
    };
    let idx: Vec<usize> = range.take(opts.rows.unwrap_or(usize::MAX)).collect();
    let pb = bar(
        opts.show_progress,
        idx.len() as u64 * if run.arch.is_binary() { 2 } else { 1 },
        "rows",
    );
    let m = features::row_metrics(
        &run.params,
        &run.arch,
        src.as_ref(),
        &idx,
        opts.batch.max(1),
        run.config.batch_size.max(2),
        &pb,
    )?;
    pb.finish_and_clear();
    let (downstream, downstream_note) = match &opts.downstream {
        None => (None, Some("not asked (--no-downstream)".to_string())),
        Some(_) if !data.is_dir() => (
            None,
            Some(format!(
                "{} is not a bae extract folder: no text to run the LLM on",
                data.display()
            )),
        ),
        Some(ds) => {
            let store = ShardStore::open(&data).map_err(|e| e.to_string())?;
            let first_doc = match idx.first() {
                Some(&r) if same => store.doc_of(r).max(0) as usize,
                _ => 0,
            };
            let f = downstream(&run, &store, first_doc, &m.mean_row, ds, opts.show_progress)?;
            (Some(f), None)
        }
    };
    Ok(EvalReport {
        command: opts.command.clone(),
        run: run.dir.display().to_string(),
        arch: run.arch.name().to_string(),
        d: run.d(),
        d_code: run.d_code(),
        data: data.display().to_string(),
        rows_from,
        rows: m.rows,
        reconstruction: m.reconstruction,
        features: m.features,
        downstream,
        downstream_note,
        images: vec![RATES_SVG.to_string()],
    })
}

fn downstream(
    run: &TrainedRun,
    store: &ShardStore,
    first_doc: usize,
    mean_row: &[f32],
    ds: &DownstreamOptions,
    show_progress: bool,
) -> Result<Fidelity, String> {
    let mut gguf = crate::run::open_llm(
        run,
        &ds.model,
        "bash scripts/setup.sh fetches the default; --no-downstream skips this part",
    )?;
    let tokenizer = bae_llm::Tokenizer::from_gguf(&gguf).map_err(|e| e.to_string())?;
    let block_dir = PathBuf::from(store.describe());
    let text = fidelity::held_out_text(&block_dir, &tokenizer, first_doc, ds.windows)?;
    let opts = bae_llm::LoadOptions {
        n_layers: None,
        head: true,
    };
    let model = bae_llm::Model::from_gguf(&mut gguf, opts).map_err(|e| e.to_string())?;
    let name = ds.model.file_name().map_or_else(
        || ds.model.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let (params, arch) = (&run.params, run.arch);
    let recon = move |x: &[f32], n: usize| bae_ref::forward(params, x, n, &arch).x_hat;
    let pb = bar(
        show_progress,
        text.windows.len() as u64,
        "windows through the LLM",
    );
    let f = fidelity::fidelity(&model, &name, &text, &recon, mean_row, ds.batch, &pb)?;
    pb.finish_and_clear();
    Ok(f)
}

/// Writes `eval.json` and the histograms into the run folder, each atomically.
pub fn write_outputs(report: &EvalReport) -> Result<(), String> {
    let dir = Path::new(&report.run);
    let rare: Vec<f64> = report
        .features
        .rates
        .iter()
        .map(|&p| p.min(1.0 - p))
        .collect();
    let sal = "salience share (top-10)";
    bae_train::plots::log10_histograms(
        &dir.join(RATES_SVG),
        &[
            ("firing rate p", &report.features.rates),
            ("rare-value rate min(p, 1-p)", &rare),
            (sal, &report.features.salience_share),
        ],
    )?;
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    bae_io::write_atomic(&dir.join(EVAL_JSON), json.as_bytes()).map_err(|e| e.to_string())
}

/// The report as a table for the terminal (and the README).
pub fn table(r: &EvalReport) -> String {
    let mut s = String::new();
    let f = &r.features;
    let c = &r.reconstruction;
    let _ = writeln!(
        s,
        "{} ({} -> {}), {} rows: {}",
        r.arch, r.d, r.d_code, r.rows, r.rows_from
    );
    let _ = writeln!(s, "| metric | value |\n|---|---|");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(s, "| {k} | {v} |");
    };
    row("MSE", format!("{:.6}", c.mse));
    row(
        "FVU / explained variance",
        format!("{:.4} / {:.4}", c.fvu, c.explained_variance),
    );
    row("cosine(x, x^)", format!("{:.4}", c.cosine));
    row("L2 ratio |x^|/|x|", format!("{:.4}", c.l2_ratio));
    row("L0", format!("{:.1} of {}", f.l0, f.n_features));
    row("dead", f.dead.to_string());
    row(
        "dense by rate (>10% / >50%)",
        format!("{} / {}", f.dense_rate_10, f.dense_rate_50),
    );
    row("inverted (rate > 0.5)", f.inverted.to_string());
    row(
        "dense by rare value (>10% / >1%)",
        format!("{} / {}", f.dense_rare_10, f.dense_rare_1),
    );
    row(
        "specific (0.01%..1%) / constant (<0.01%)",
        format!("{} / {}", f.specific, f.constant),
    );
    row(
        "salience-dense (>10% of top-10)",
        f.salience_dense_10.to_string(),
    );
    row("entropy", format!("{:.2} bits", f.entropy_bits));
    if let Some(cov) = f.cov_term {
        row("covariance term", format!("{cov:.4e}"));
    }
    match &r.downstream {
        Some(d) => {
            row(
                "downstream",
                format!(
                    "{}, block {}, {} windows, {} positions scored, {} spliced",
                    d.model, d.block, d.windows, d.scored_positions, d.spliced_positions
                ),
            );
            row(
                "CE clean / spliced",
                format!("{:.4} / {:.4} nats", d.ce_clean, d.ce_spliced),
            );
            row(
                "CE zero- / mean-ablated",
                format!("{:.4} / {:.4} nats", d.ce_zero_ablated, d.ce_mean_ablated),
            );
            row(
                "KL(clean||spliced) / JSD",
                format!("{:.4} / {:.4} nats", d.kl_spliced, d.jsd_spliced),
            );
            row(
                "KL zero- / mean-ablated",
                format!("{:.4} / {:.4} nats", d.kl_zero_ablated, d.kl_mean_ablated),
            );
            row(
                "ce_loss_score / kl_div_score (zero abl.)",
                format!("{:.4} / {:.4}", d.ce_loss_score, d.kl_div_score),
            );
            row(
                "the same against mean ablation",
                format!("{:.4} / {:.4}", d.ce_loss_score_mean, d.kl_div_score_mean),
            );
            row(
                "last-token JSD (only the last token spliced)",
                format!("{:.5} nats", d.last_token_jsd),
            );
        }
        None => row("downstream", r.downstream_note.clone().unwrap_or_default()),
    }
    s
}
