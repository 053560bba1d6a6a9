//! `bae features`: the feature report of a trained run (samples as the paper's ComSem pipeline
//! collects them, histograms, logit tables, co-activations), as markdown and as an HTML report.

use bae_analysis::features::{self, FeatureOptions, FeatureSet, SampleOptions};
use bae_analysis::interpret::{self, INTERPRET_JSON, InterpretResult};
use clap::Args;
use std::fmt::Write;
use std::path::{Path, PathBuf};

const AFTER_HELP: &str = "\
Samples (the paper's ComSem pipeline): over the interpretation corpus (the run's held-out rows by
default, or every row of --data), each token's top-k features by salience (a BAE: beta =
log2(|h - mu| + 1e-6), high when the feature takes its rare value; baselines: the activation, or its
z-score with --rescale) add that token to the feature's samples, in corpus order. A feature with
fewer than 6 samples is not interpretable. Two streamed passes; memory is bounded by the samples
kept, not by the corpus.

Writes into the run folder: feature_samples.json (reused by later `bae features` and `bae interpret`
calls with the same settings) and features.md (the --n most specific features with --examples
samples each). With --html OUT: a self-contained HTML report (index of all features, sortable and
filterable; a page per feature with its contexts, histogram, the tokens its decoder direction
promotes and suppresses, its most co-activating features, and the judge's description and scores
when `bae interpret` ran). Open OUT/index.html in a browser; no network needed.";

/// How samples are collected: shared by `bae features` and `bae interpret`.
#[derive(Args, Clone)]
pub struct SampleArgs {
    /// extract folder of the interpretation corpus (default: the run's data, its held-out rows)
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// read the first N rows of the corpus only
    #[arg(long)]
    pub rows: Option<usize>,
    /// GGUF of the LLM: its tokenizer decodes the contexts, its unembedding gives the logit tables
    #[arg(long, default_value = bae_llm::DEFAULT_MODEL)]
    pub model: PathBuf,
    /// features kept per token by salience
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    /// baselines: rank by z-scored activation instead of the raw activation
    #[arg(long)]
    pub rescale: bool,
    /// collect again even when feature_samples.json holds these settings
    #[arg(long)]
    pub fresh: bool,
    /// hide the progress bars
    #[arg(long)]
    pub quiet: bool,
}

impl SampleArgs {
    pub fn options(&self, run: &Path) -> FeatureOptions {
        FeatureOptions {
            run: run.to_path_buf(),
            data: self.data.clone(),
            model: self.model.clone(),
            rows: self.rows,
            sample: SampleOptions {
                top_k: self.top_k.max(1),
                rescale: self.rescale,
                ..SampleOptions::default()
            },
            show_progress: !self.quiet,
        }
    }
}

/// The samples of `run`: the saved ones when they were collected with these settings, else
/// collected now (and saved).
pub fn samples_of(run: &Path, a: &SampleArgs) -> Result<FeatureSet, String> {
    let opts = a.options(run);
    if !a.fresh
        && let Some(set) = features::load_samples(&opts)
    {
        if !a.quiet {
            eprintln!(
                "{}: reusing {} ({} rows)",
                run.display(),
                features::SAMPLES_JSON,
                set.report.rows
            );
        }
        return Ok(set);
    }
    let t = std::time::Instant::now();
    let set = features::collect_features(&opts)?;
    features::save_samples(run, &set)?;
    if !a.quiet {
        eprintln!(
            "{}: samples of {} features over {} rows in {:.1} s",
            run.display(),
            set.report.features.len(),
            set.report.rows,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(set)
}

/// `bae features`: the feature report of a trained run.
#[derive(Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct FeaturesArgs {
    /// run folder written by `bae train` (model.safetensors, config.json)
    #[arg(long)]
    run: PathBuf,
    /// write the HTML report into this folder (replaced if it holds an earlier report)
    #[arg(long)]
    html: Option<PathBuf>,
    /// features shown in features.md (the most specific ones with enough samples)
    #[arg(long, default_value_t = 12)]
    n: usize,
    /// samples per feature in features.md
    #[arg(long, default_value_t = 8)]
    examples: usize,
    #[command(flatten)]
    samples: SampleArgs,
}

pub fn run(a: FeaturesArgs) -> Result<(), String> {
    let _lock = bae_io::FolderLock::acquire_existing(&a.run).map_err(|e| e.to_string())?;
    // refuse a bad --html before the long part (write_html checks it again when it replaces)
    if let Some(dir) = &a.html
        && dir.exists()
        && !dir.join("report.json").is_file()
    {
        return Err(format!(
            "{}: exists and is not a feature report folder (no report.json); refusing to replace it",
            dir.display()
        ));
    }
    let mut set = samples_of(&a.run, &a.samples)?;
    let judged = a.run.join(INTERPRET_JSON);
    if let Ok(text) = std::fs::read_to_string(&judged) {
        let result: InterpretResult = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a bae interpret result: {e}", judged.display()))?;
        interpret::merge_into(&mut set.report, &result);
    }
    let md = markdown(&set, a.n, a.examples);
    let out = a.run.join("features.md");
    bae_io::write_atomic(&out, md.as_bytes()).map_err(|e| e.to_string())?;
    print!("{md}");
    println!("(written to {})", out.display());
    if let Some(dir) = &a.html {
        let t = std::time::Instant::now();
        let s = features::report::write_html(&set.report, dir)?;
        println!(
            "HTML report: {} ({} pages, {:.1} MB, {:.1} s); open {}",
            dir.display(),
            s.pages,
            s.bytes as f64 / 1e6,
            t.elapsed().as_secs_f64(),
            dir.join("index.html").display()
        );
    }
    Ok(())
}

/// The `n` most specific features with at least `examples` samples, each with its first samples.
fn markdown(set: &FeatureSet, n: usize, examples: usize) -> String {
    let r = &set.report;
    let mut chosen: Vec<&features::FeatureEntry> = r
        .features
        .iter()
        .filter(|f| f.samples.len() >= examples.max(features::MIN_SAMPLES))
        .collect();
    chosen.sort_by(|a, b| a.rare_rate.total_cmp(&b.rare_rate));
    chosen.truncate(n);
    let interpretable = r.features.iter().filter(|f| f.interpretable()).count();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Feature pages\n\nrun `{}` ({}), {} tokens: {}; top-{} features by salience per token; \
         {interpretable} of {} features have at least {} samples\n",
        r.run,
        r.arch,
        r.rows,
        r.corpus,
        r.top_k,
        r.features.len(),
        features::MIN_SAMPLES
    );
    let _ = writeln!(
        md,
        "The {} features with the rarest salient event among those with at least {} samples; \
         samples in corpus order, the token in brackets after its context.\n",
        chosen.len(),
        examples.max(features::MIN_SAMPLES)
    );
    for f in chosen {
        let event = if f.rare_value == 1 {
            "fires"
        } else {
            "is silent"
        };
        let _ = writeln!(
            md,
            "## feature {} — {event} on {:.2}% of tokens ({} samples)\n",
            f.feature,
            100.0 * f.rare_rate,
            f.n_samples
        );
        if let Some(i) = &f.interpretation {
            let _ = writeln!(
                md,
                "*{}* (ComSem {:.2}, judge {})\n",
                i.description, i.comsem, i.judge
            );
        }
        for s in f.samples.iter().take(examples) {
            let c = &s.context;
            let line = format!("{}[{}]", c.before, c.token).replace('`', "'");
            let _ = writeln!(md, "- `{line}`");
        }
        if !f.promotes.is_empty() {
            let top: Vec<String> = f
                .promotes
                .iter()
                .take(5)
                .map(|e| format!("{:?}", e.token))
                .collect();
            let _ = writeln!(md, "\npromotes: {}", top.join(", "));
        }
        md.push('\n');
    }
    md
}
