//! `bae interpret`: describe features with a judge model and score the descriptions (ComSem and
//! detection), for one run or every run of a `bae compare` folder.

use crate::features::{SampleArgs, samples_of};
use bae_analysis::interpret::cache::{AnswerCache, CacheStats};
use bae_analysis::interpret::judge::Judge;
use bae_analysis::interpret::local::LocalJudge;
use bae_analysis::interpret::openai::{self, OpenAiJudge, OpenAiOptions};
use bae_analysis::interpret::{self, INTERPRET_JSON, InterpretOptions, InterpretResult, Selection};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

const AFTER_HELP: &str = "\
For each chosen feature with at least 6 samples (see `bae features --help` for how samples are
collected): the judge writes one short linguistic description from the first 5 samples; then
answers Yes/No, one snippet at a time, whether the description fits up to 8 further samples
(ComSem = share of Yes, the paper's score) and as many random corpus tokens on which the feature
does not take its salient value (the random floor = share of Yes there). Detection = balanced
accuracy over both sets ((Yes rate on samples + No rate on random tokens) / 2), the stricter
score of SAEBench and delphi: a vague description that fits everything gets ComSem 1 but
detection 0.5. A feature is interpretable when its score reaches --threshold.

Judges: `local` (default) runs SmolLM2-135M-Instruct through this project's own forward, greedy,
with its chat template: needs nothing, but a 135M judge is weak. `openai` talks to any
OpenAI-compatible chat-completions endpoint (--judge-url, --judge-model; the key is read from the
variable named by --judge-key-env and not needed for a server on this machine); failed requests
are retried with backoff and counted, an unreachable server or a refused key stops with one line.

Every answer is cached under RUN/judge_cache keyed by (judge, prompt): a rerun, or a run after an
interrupt, asks nothing twice. Writes RUN/interpret.json; `bae features --html` shows the
descriptions and scores. --run may be a `bae compare` folder: every model in it is scored with the
same judge, features and corpus, and the table goes to interpret.md beside them.";

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum JudgeKind {
    Local,
    Openai,
}

/// `bae interpret`: ComSem and detection scores of features from a judge model.
#[derive(Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct InterpretArgs {
    /// run folder written by `bae train`, or a `bae compare` folder (every model in it)
    #[arg(long)]
    run: PathBuf,
    /// features to score: N drawn at random (seeded), `all`, or a list `3,17,1024`
    #[arg(long, default_value = "50")]
    features: String,
    /// `local`: SmolLM2-135M-Instruct run here (weak, needs nothing); `openai`: any
    /// OpenAI-compatible chat-completions endpoint
    #[arg(long, value_enum, default_value = "local")]
    judge: JudgeKind,
    /// local judge: a chat GGUF (SmolLM2-Instruct family)
    #[arg(long, default_value = bae_llm::DEFAULT_MODEL)]
    judge_file: PathBuf,
    /// openai judge: base URL of the API (e.g. https://api.openai.com/v1, http://127.0.0.1:8080/v1)
    #[arg(long)]
    judge_url: Option<String>,
    /// openai judge: model name sent with each request
    #[arg(long)]
    judge_model: Option<String>,
    /// openai judge: environment variable holding the API key
    #[arg(long, default_value = "OPENAI_API_KEY")]
    judge_key_env: String,
    /// openai judge: requests in flight at once
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// openai judge: at most this many requests per minute
    #[arg(long)]
    requests_per_minute: Option<f64>,
    /// openai judge: retries of a failed request (429, 5xx, network)
    #[arg(long, default_value_t = 4)]
    retries: usize,
    /// openai judge: $ per million input tokens, for the cost estimate
    #[arg(long)]
    price_in: Option<f64>,
    /// openai judge: $ per million output tokens, for the cost estimate
    #[arg(long)]
    price_out: Option<f64>,
    /// score at which a feature counts as interpretable
    #[arg(long, default_value_t = 0.75)]
    threshold: f64,
    /// seed of the feature choice and of the random tokens
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    samples: SampleArgs,
}

fn selection(s: &str) -> Result<Selection, String> {
    let s = s.trim();
    if s == "all" {
        return Ok(Selection::All);
    }
    if s.contains(',') {
        return s
            .split(',')
            .map(|p| p.trim().parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .map(Selection::List)
            .map_err(|_| format!("--features {s:?}: expected N, `all` or a list like 3,17,1024"));
    }
    s.parse::<usize>()
        .map(Selection::Random)
        .map_err(|_| format!("--features {s:?}: expected N, `all` or a list like 3,17,1024"))
}

/// The runs to score: `dir` itself, or the model folders of a `bae compare` folder.
fn runs_in(dir: &Path) -> Result<Vec<PathBuf>, String> {
    if !dir.is_dir() {
        return Err(format!("{}: no such run folder", dir.display()));
    }
    if dir.join("config.json").is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot read folder: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("config.json").is_file() && p.join("model.safetensors").is_file())
        .collect();
    runs.sort();
    if runs.is_empty() {
        return Err(format!(
            "{}: neither a run folder (config.json) nor a bae compare folder with finished runs",
            dir.display()
        ));
    }
    Ok(runs)
}

fn judge_of(a: &InterpretArgs) -> Result<Box<dyn Judge>, String> {
    match a.judge {
        JudgeKind::Local => {
            if a.judge_url.is_some() || a.judge_model.is_some() {
                return Err("--judge-url / --judge-model need --judge openai".into());
            }
            Ok(Box::new(LocalJudge::load(&a.judge_file)?))
        }
        JudgeKind::Openai => {
            let url = a
                .judge_url
                .clone()
                .ok_or("--judge openai needs --judge-url (e.g. https://api.openai.com/v1)")?;
            let model = a
                .judge_model
                .clone()
                .ok_or("--judge openai needs --judge-model (the model name the server knows)")?;
            let opts = OpenAiOptions {
                key_env: Some(a.judge_key_env.clone()),
                concurrency: a.concurrency.max(1),
                requests_per_minute: a.requests_per_minute,
                max_retries: a.retries,
                price_per_mtok_in: a.price_in,
                price_per_mtok_out: a.price_out,
                ..OpenAiOptions::new(url, model)
            };
            Ok(Box::new(OpenAiJudge::new(opts)?))
        }
    }
}

pub fn run(a: InterpretArgs) -> Result<(), String> {
    if !(0.0..=1.0).contains(&a.threshold) {
        return Err(format!(
            "--threshold {}: a score lies in [0, 1]",
            a.threshold
        ));
    }
    let opts = InterpretOptions {
        features: selection(&a.features)?,
        threshold: a.threshold,
        seed: a.seed,
        chunk: if a.judge == JudgeKind::Openai {
            8 * a.concurrency.max(1)
        } else {
            16
        },
        ..InterpretOptions::default()
    };
    let runs = runs_in(&a.run)?;
    let judge = judge_of(&a)?;
    let mut results = Vec::new();
    for run in &runs {
        let _lock = bae_io::FolderLock::acquire(run).map_err(|e| e.to_string())?;
        let set = samples_of(run, &a.samples)?;
        let cache = AnswerCache::open(&run.join("judge_cache"))?;
        let planned = interpret::planned_requests(&set, &opts, &cache, &judge.id())?;
        let cached = planned
            .iter()
            .filter(|r| cache.get(&judge.id(), r).is_some())
            .count();
        let est = openai::estimate_usage(&planned);
        let price = OpenAiOptions {
            price_per_mtok_in: a.price_in,
            price_per_mtok_out: a.price_out,
            ..OpenAiOptions::default()
        };
        println!(
            "{} ({}): judge {}; {}; {cached} of them already answered (cache)",
            run.display(),
            set.report.arch,
            judge.id(),
            est.summary(&price)
        );
        let t = std::time::Instant::now();
        let pb = progress(!a.samples.quiet, planned.len() as u64);
        let (result, stats) =
            interpret::interpret(&set, judge.as_ref(), &cache, &opts, &mut |m| {
                pb.inc(m as u64)
            })?;
        pb.finish_and_clear();
        report_run(run, &result, &stats, t.elapsed().as_secs_f64())?;
        results.push(result);
    }
    println!("\n{}", interpret::table(&results));
    if runs.len() > 1 {
        let md = format!(
            "# Interpretable features\n\njudge `{}`, threshold {}, features {}, seed {}\n\n{}",
            judge.id(),
            a.threshold,
            a.features,
            a.seed,
            interpret::table(&results)
        );
        let out = a.run.join("interpret.md");
        bae_io::write_atomic(&out, md.as_bytes()).map_err(|e| e.to_string())?;
        let json = serde_json::to_vec_pretty(&results).expect("plain data");
        bae_io::write_atomic(&a.run.join(INTERPRET_JSON), &json).map_err(|e| e.to_string())?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

fn report_run(
    run: &Path,
    r: &InterpretResult,
    stats: &CacheStats,
    seconds: f64,
) -> Result<(), String> {
    let path = run.join(INTERPRET_JSON);
    let json = serde_json::to_vec_pretty(r).expect("plain data");
    bae_io::write_atomic(&path, &json).map_err(|e| e.to_string())?;
    let h = &r.headline;
    println!(
        "  {} of {} scored features described; ComSem >= {}: {} (mean {:.3}), detection >= {}: {} \
         (mean {:.3}), random floor {:.3}; {} answers from the cache, {} asked, {} failed, {} \
         malformed; {:.0} s -> {}",
        h.described,
        h.scored,
        h.threshold,
        h.interpretable_comsem,
        h.mean_comsem,
        h.threshold,
        h.interpretable_detection,
        h.mean_detection,
        h.mean_floor,
        stats.hits,
        stats.asked,
        stats.failed,
        h.malformed_answers,
        seconds,
        path.display()
    );
    Ok(())
}

fn progress(show: bool, len: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} judge requests, ETA {eta}",
        )
        .expect("static template"),
    );
    pb
}
