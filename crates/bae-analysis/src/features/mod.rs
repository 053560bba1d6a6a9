//! Reading the features of a trained run: samples collected as the paper's ComSem pipeline does
//! (every token's top-10 features by salience, in corpus order), per-feature statistics, logit
//! effects of the decoder directions, and a static HTML report over all of it.
//!
//! The types here are the one definition the sampler fills, `bae interpret` scores and the HTML
//! report draws; `report.json` in the report folder is this struct serialised.

pub mod context;
pub mod logits;
pub mod report;
pub mod samples;

use crate::TrainedRun;
use bae_io::ShardStore;
use bae_train::RowSource;
pub use samples::SampleOptions;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A feature with fewer samples than this is not interpretable (method.md).
pub const MIN_SAMPLES: usize = 6;

/// One token on which the feature is among the token's top-k by salience.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    /// global row index in the source
    pub row: usize,
    pub doc: i64,
    pub position: i64,
    pub token_id: u32,
    /// the sampler's salience (β for a BAE, activation or z-score for the baselines)
    pub salience: f32,
    /// strength of the event: a BAE's pre-activation signed towards its rare value (z for a
    /// feature that fires rarely, −z for one that rarely goes silent); a baseline's activation
    pub strength: f32,
    pub context: Context,
}

/// Decoded text around a sample's token.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Context {
    pub before: String,
    pub token: String,
    pub after: String,
}

/// Counts of a feature's value (BAE: pre-activation; baselines: non-zero activation) in `bins`
/// equal bins over [lo, hi]; `zeros` counts exact zeros (baselines) kept out of the bins.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Histogram {
    pub lo: f64,
    pub hi: f64,
    pub counts: Vec<u64>,
    pub zeros: u64,
    /// what the axis shows, e.g. "pre-activation z (fires where z > 0)"
    pub label: String,
    /// the decision threshold drawn on the axis (0 for a BAE, θ for JumpReLU), if any
    pub threshold: Option<f64>,
}

/// A token the feature's event promotes or suppresses: the decoder direction (sign of the rare
/// event) through the LLM's final norm and unembedding.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LogitEffect {
    pub token: String,
    pub value: f32,
}

/// A feature whose salient event co-occurs with this one's.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Coactive {
    pub feature: usize,
    /// tokens on which both take their salient value
    pub count: u64,
    /// count / |tokens where either does|
    pub jaccard: f64,
}

/// What the judge said about one feature (filled by `bae interpret`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Interpretation {
    pub description: String,
    /// ComSem: share of Yes over the verification samples
    pub comsem: f64,
    pub comsem_n: usize,
    /// detection: balanced accuracy picking the feature's samples from a shuffled mix
    pub detection: Option<f64>,
    pub detection_n: usize,
    /// answers the judge gave that were neither Yes nor No (not counted in the scores)
    pub malformed: usize,
    pub judge: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FeatureEntry {
    pub feature: usize,
    /// firing rate over the corpus (BAE: bit set; baselines: activation ≠ 0)
    pub rate: f64,
    /// the salient value: 1 = fires, 0 = goes silent (a BAE feature with rate > 0.5)
    pub rare_value: u8,
    /// min(rate, 1 − rate) for a BAE, rate for a baseline
    pub rare_rate: f64,
    /// share of tokens with this feature among their top-k by salience
    pub salience_density: f64,
    /// all top-k hits over the corpus (samples holds only the first ones)
    pub n_samples: u64,
    /// the first samples in corpus order
    pub samples: Vec<Sample>,
    /// the strongest samples (by `strength`), strongest first
    pub strongest: Vec<Sample>,
    pub histogram: Histogram,
    pub promotes: Vec<LogitEffect>,
    pub suppresses: Vec<LogitEffect>,
    pub coactive: Vec<Coactive>,
    pub interpretation: Option<Interpretation>,
}

impl FeatureEntry {
    pub fn interpretable(&self) -> bool {
        self.n_samples as usize >= MIN_SAMPLES
    }
}

/// The whole report: one entry per feature of the run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FeatureReport {
    /// run folder
    pub run: String,
    /// "bae", "relu-l1", "topk", "jumprelu"
    pub arch: String,
    /// GGUF file name whose tokenizer decoded the contexts
    pub model: String,
    /// the rows read: source folder and range
    pub corpus: String,
    pub rows: usize,
    pub top_k: usize,
    /// baselines ranked by z-scored activation
    pub rescale: bool,
    pub features: Vec<FeatureEntry>,
}

/// A collected report with what `bae interpret` needs beside it: random corpus tokens (the
/// detection negatives and the random floor) and the options it was collected with, so a later
/// command reuses it only when they match. Saved as [`SAMPLES_JSON`] in the run folder.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FeatureSet {
    pub report: FeatureReport,
    pub options: SampleOptions,
    /// `--data`, `--rows` and `--model` as asked (None: the run's data, all held-out rows)
    pub asked_data: Option<PathBuf>,
    pub asked_rows: Option<usize>,
    pub asked_model: PathBuf,
    pub pool: Vec<Sample>,
    /// for each pool token, the features whose salient event it carries (sorted)
    pub pool_events: Vec<Vec<u32>>,
}

pub const SAMPLES_JSON: &str = "feature_samples.json";

/// Where the samples come from and how they are collected.
#[derive(Clone, Debug)]
pub struct FeatureOptions {
    pub run: PathBuf,
    /// extract folder of the interpretation corpus (default: the run's data, its held-out rows)
    pub data: Option<PathBuf>,
    /// GGUF: tokenizer for the contexts, final norm + unembedding for the logit tables
    pub model: PathBuf,
    /// the first N rows of the corpus only
    pub rows: Option<usize>,
    pub sample: SampleOptions,
    pub show_progress: bool,
}

/// Tokens listed per feature in the promote / suppress tables.
const LOGIT_TOP: usize = 10;

/// The corpus rows: the run's held-out rows when `data` is its training data, else all rows.
fn corpus_rows(
    run: &TrainedRun,
    store: &ShardStore,
    data: &Path,
    limit: Option<usize>,
) -> Result<(Vec<usize>, String), String> {
    let n = store.n_rows();
    let (range, what) = if crate::eval::same_path(data, run.data()) {
        let split = store.train_rows(run.config.val_split);
        if split >= n {
            return Err(format!(
                "{}: the run trained on every row (--val-split {}): pass --data with held-out text",
                run.dir.join("config.json").display(),
                run.config.val_split
            ));
        }
        (split..n, format!("held-out rows {split}..{n} of"))
    } else {
        (0..n, format!("all {n} rows of"))
    };
    let rows: Vec<usize> = range.take(limit.unwrap_or(usize::MAX)).collect();
    let what = format!("{what} {} ({} used)", data.display(), rows.len());
    Ok((rows, what))
}

/// Runs the sampler over the corpus and fills contexts and logit tables.
pub fn collect_features(opts: &FeatureOptions) -> Result<FeatureSet, String> {
    let run = TrainedRun::open(&opts.run)?;
    let data = opts
        .data
        .clone()
        .unwrap_or_else(|| run.data().to_path_buf());
    if !data.is_dir() {
        return Err(format!(
            "{}: not a bae extract folder (the report needs the token ids of the text): pass --data with one",
            data.display()
        ));
    }
    let store = ShardStore::open(&data).map_err(|e| e.to_string())?;
    run.check_rows(&store, &data)?;
    let mut gguf = crate::run::open_llm(
        &run,
        &opts.model,
        "bash scripts/setup.sh fetches the default",
    )?;
    let tok = bae_llm::Tokenizer::from_gguf(&gguf).map_err(|e| e.to_string())?;
    let (rows, what) = corpus_rows(&run, &store, &data, opts.rows)?;
    let pb = crate::eval::bar(opts.show_progress, 2 * rows.len() as u64, "rows");
    let mut got = samples::collect(
        &run.params,
        &run.arch,
        &store,
        &rows,
        &opts.sample,
        &mut |m| pb.inc(m as u64),
    )?;
    pb.finish_and_clear();
    for f in &mut got.features {
        context::fill(&mut f.samples, &store, &tok)?;
        context::fill(&mut f.strongest, &store, &tok)?;
    }
    context::fill(&mut got.pool, &store, &tok)?;
    let model = bae_llm::Model::from_gguf(
        &mut gguf,
        bae_llm::LoadOptions {
            n_layers: None,
            head: true,
        },
    )
    .map_err(|e| e.to_string())?;
    logits::fill(&mut got.features, &run.params, &model, &tok, LOGIT_TOP)?;
    let report = FeatureReport {
        run: run.dir.display().to_string(),
        arch: run.arch.name().to_string(),
        model: opts.model.file_name().map_or_else(
            || opts.model.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        corpus: what,
        rows: got.rows,
        top_k: opts.sample.top_k,
        rescale: opts.sample.rescale && !run.arch.is_binary(),
        features: got.features,
    };
    Ok(FeatureSet {
        report,
        options: opts.sample.clone(),
        asked_data: opts.data.clone(),
        asked_rows: opts.rows,
        asked_model: opts.model.clone(),
        pool: got.pool,
        pool_events: got.pool_events,
    })
}

/// The saved samples of `opts.run` if they were collected with the same options.
pub fn load_samples(opts: &FeatureOptions) -> Option<FeatureSet> {
    let text = std::fs::read_to_string(opts.run.join(SAMPLES_JSON)).ok()?;
    let set: FeatureSet = serde_json::from_str(&text).ok()?;
    (set.options == opts.sample
        && set.asked_data == opts.data
        && set.asked_rows == opts.rows
        && set.asked_model == opts.model)
        .then_some(set)
}

pub fn save_samples(run: &Path, set: &FeatureSet) -> Result<(), String> {
    let path = run.join(SAMPLES_JSON);
    let json = serde_json::to_vec(set).map_err(|e| format!("{}: {e}", path.display()))?;
    bae_io::write_atomic(&path, &json).map_err(|e| e.to_string())
}
