//! Reading the features of a trained run: samples collected as the paper's ComSem pipeline does
//! (every token's top-10 features by salience, in corpus order), per-feature statistics, logit
//! effects of the decoder directions, and a static HTML report over all of it.
//!
//! The types here are the one definition the sampler fills, `bae interpret` scores and the HTML
//! report draws; `report.json` in the report folder is this struct serialised.

pub mod report;
pub mod samples;

use serde::{Deserialize, Serialize};

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
