//! `bae compare`: every architecture trained at the same width, steps, batch and seed on the same
//! training rows, then judged by `eval` on the same held-out rows. Each model is an ordinary run
//! folder `OUT/<arch>`: a finished one with the same settings is reused, an interrupted one resumed.
//!
//! The train-or-reuse-then-evaluate part ([`check_models`], [`train_or_reuse`],
//! [`train_and_evaluate_models`]) is shared with `bae sweep` (`crate::sweep`).

use crate::eval::{self, EvalOptions, EvalReport};
use bae_train::{ArchKind, Device, RowSource, RunOptions, TrainConfig, TrainError};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI32;

pub struct CompareOptions<'a> {
    pub out: PathBuf,
    pub archs: Vec<ArchKind>,
    /// settings shared by every model (its `arch` and `out` are set per model)
    pub base: TrainConfig,
    /// evaluation settings (`run` is set per model)
    pub eval: EvalOptions,
    pub show_progress: bool,
    pub stop: Option<&'a AtomicI32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CompareRow {
    pub arch: String,
    pub run: String,
    /// true when a finished run with the same settings was reused
    pub reused: bool,
    pub train_tokens_per_s: Option<f64>,
    pub eval: EvalReport,
}

pub fn arch_dir_name(a: &ArchKind) -> &'static str {
    match a {
        ArchKind::Bae => "bae",
        ArchKind::ReluL1 => "relu-l1",
        ArchKind::Topk => "topk",
        ArchKind::Jumprelu => "jumprelu",
    }
}

/// The run's recorded training speed, when `dir` holds a finished run trained with `cfg`; None when
/// it holds no run or an unfinished one; an error when it holds a run with other settings.
pub fn finished_run(dir: &Path, cfg: &TrainConfig) -> Result<Option<Option<f64>>, String> {
    let cfg_path = dir.join("config.json");
    let Ok(text) = std::fs::read_to_string(&cfg_path) else {
        return Ok(None);
    };
    let saved: TrainConfig = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a bae run config: {e}", cfg_path.display()))?;
    if &saved != cfg {
        return Err(format!(
            "{}: holds a run with other settings; remove it or choose another --out",
            dir.display()
        ));
    }
    let summary = dir.join("summary.json");
    if !dir.join("model.safetensors").is_file() {
        return Ok(None);
    }
    let Ok(text) = std::fs::read_to_string(&summary) else {
        return Ok(None);
    };
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: unreadable summary: {e}", summary.display()))?;
    Ok(Some(v["train_tokens_per_s"].as_f64()))
}

/// One model to train (or reuse) and evaluate: `cfg.out` is its run folder, `label` names it in
/// progress lines.
#[derive(Clone, Debug)]
pub struct PlannedModel {
    pub label: String,
    pub cfg: TrainConfig,
}

/// What [`train_and_evaluate_models`] measured for one model.
#[derive(Clone, Debug)]
pub struct ModelResult {
    pub label: String,
    pub run: PathBuf,
    /// true when a finished run with the same settings was reused
    pub reused: bool,
    pub train_tokens_per_s: Option<f64>,
    pub eval: EvalReport,
}

/// Before anything trains: every config valid, and no run folder holding a run with other settings.
/// The first problem, as one line naming the model.
pub fn check_models(models: &[PlannedModel]) -> Result<(), String> {
    for m in models {
        m.cfg.validate().map_err(|e| format!("{}: {e}", m.label))?;
    }
    for m in models {
        finished_run(&m.cfg.out, &m.cfg)?;
    }
    Ok(())
}

/// Reuses the finished run in `cfg.out` trained with `cfg`, resumes an interrupted one, or trains it
/// (on the CPU). Returns (reused, recorded training speed).
pub fn train_or_reuse(
    cfg: &TrainConfig,
    src: &dyn RowSource,
    label: &str,
    show_progress: bool,
    stop: Option<&AtomicI32>,
) -> Result<(bool, Option<f64>), TrainError> {
    let dir = &cfg.out;
    if let Some(speed) = finished_run(dir, cfg)? {
        if show_progress {
            eprintln!("{label}: finished run reused ({})", dir.display());
        }
        return Ok((true, speed));
    }
    let resume = dir.join("config.json").is_file();
    if show_progress {
        eprintln!(
            "{label}: {} -> {}",
            if resume { "resuming" } else { "training" },
            dir.display()
        );
    }
    let run = RunOptions {
        show_progress,
        resume,
        stop,
        device: Device::Cpu,
    };
    let o = bae_train::train(cfg, src, run)?;
    Ok((
        false,
        (o.train_tokens_per_s > 0.0).then_some(o.train_tokens_per_s),
    ))
}

/// Checks every model ([`check_models`]), then trains or reuses each on the rows of its
/// `cfg.data` and evaluates it with `eval` (its `run` set per model; `eval.json` and the histograms
/// written into the run folder), in order.
pub fn train_and_evaluate_models(
    models: &[PlannedModel],
    eval: &EvalOptions,
    show_progress: bool,
    stop: Option<&AtomicI32>,
) -> Result<Vec<ModelResult>, TrainError> {
    check_models(models)?;
    let mut sources: Vec<(PathBuf, Box<dyn RowSource>)> = Vec::new();
    let mut results = Vec::new();
    for m in models {
        let i = match sources.iter().position(|(p, _)| *p == m.cfg.data) {
            Some(i) => i,
            None => {
                let src = bae_train::store::open_source(&m.cfg.data)?;
                sources.push((m.cfg.data.clone(), src));
                sources.len() - 1
            }
        };
        let (reused, speed) =
            train_or_reuse(&m.cfg, sources[i].1.as_ref(), &m.label, show_progress, stop)?;
        if show_progress {
            eprintln!("{}: evaluating", m.label);
        }
        let report = eval::evaluate(&EvalOptions {
            run: m.cfg.out.clone(),
            ..eval.clone()
        })?;
        eval::write_outputs(&report)?;
        results.push(ModelResult {
            label: m.label.clone(),
            run: m.cfg.out.clone(),
            reused,
            train_tokens_per_s: speed,
            eval: report,
        });
    }
    Ok(results)
}

/// Trains (or reuses) and evaluates every architecture of `opts`, then writes compare.md / .svg /
/// .json into `opts.out`, holding the folder's lock throughout.
pub fn compare(opts: &CompareOptions, command: &str) -> Result<Vec<CompareRow>, TrainError> {
    let _lock = bae_io::FolderLock::acquire(&opts.out).map_err(|e| e.to_string())?;
    let rows = train_and_evaluate(opts)?;
    write_outputs(&opts.out, &opts.base, command, &rows)?;
    Ok(rows)
}

fn train_and_evaluate(opts: &CompareOptions) -> Result<Vec<CompareRow>, TrainError> {
    let models: Vec<PlannedModel> = opts
        .archs
        .iter()
        .map(|arch| PlannedModel {
            label: arch_dir_name(arch).to_string(),
            cfg: TrainConfig {
                arch: arch.clone(),
                out: opts.out.join(arch_dir_name(arch)),
                ..opts.base.clone()
            },
        })
        .collect();
    let results = train_and_evaluate_models(&models, &opts.eval, opts.show_progress, opts.stop)?;
    Ok(results
        .into_iter()
        .map(|r| CompareRow {
            arch: r.label,
            run: r.run.display().to_string(),
            reused: r.reused,
            train_tokens_per_s: r.train_tokens_per_s,
            eval: r.eval,
        })
        .collect())
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.digits$}"))
}

/// The paper-style table, in markdown.
pub fn table(rows: &[CompareRow]) -> String {
    let mut s = String::from(
        "| arch | L0 | FVU | MSE | dead | dense by rate >10% | dense by rare value >10% | specific | entropy (bits) | CE score | KL score | train tokens/s |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let (e, f) = (&r.eval, &r.eval.features);
        let ds = e.downstream.as_ref();
        s.push_str(&format!(
            "| {} | {:.1} | {:.4} | {:.4} | {} | {} | {} | {} | {:.1} | {} | {} | {} |\n",
            r.arch,
            f.l0,
            e.reconstruction.fvu,
            e.reconstruction.mse,
            f.dead,
            f.dense_rate_10,
            f.dense_rare_10,
            f.specific,
            f.entropy_bits,
            opt(ds.map(|d| d.ce_loss_score), 4),
            opt(ds.map(|d| d.kl_div_score), 4),
            opt(r.train_tokens_per_s, 0),
        ));
    }
    s
}

pub const COMPARE_MD: &str = "compare.md";
pub const COMPARE_SVG: &str = "compare.svg";
pub const COMPARE_JSON: &str = "compare.json";

/// "N steps" or "E epochs", as the settings line of compare.md / sweep.md says it.
pub(crate) fn run_length(cfg: &TrainConfig) -> String {
    match cfg.steps {
        Some(s) => format!("{s} steps"),
        None => format!("{} epochs", cfg.epochs),
    }
}

/// compare.md (settings, table, chart), compare.json and compare.svg into `out`, atomically.
fn write_outputs(
    out: &Path,
    base: &TrainConfig,
    command: &str,
    rows: &[CompareRow],
) -> Result<(), String> {
    crate::plots::compare_chart(&out.join(COMPARE_SVG), rows)?;
    let first = rows
        .first()
        .map(|r| r.eval.rows_from.clone())
        .unwrap_or_default();
    let steps = run_length(base);
    let md = format!(
        "# Architectures compared\n\n`{command}`\n\nSame data `{}`, width d' = {} x d, {steps}, batch {}, seed {}, lr {}; \
         held-out rows: {first}. BAE λ_e = {}, λ_c = {}; ReLU-L1 / JumpReLU L1 = {}; TopK k = {}; JumpReLU θ = {}. \
         CE and KL scores are SAELens's `ce_loss_score` and `kl_div_score` against zero ablation \
         (1 = as good as the clean model). Dense by rare value counts features whose rarer value \
         min(p, 1 − p) occurs on more than 10 % of tokens; specific: 0.01 % ≤ min(p, 1 − p) ≤ 1 %.\n\n{}\n![FVU against L0, and dead / dense counts]({COMPARE_SVG})\n",
        base.data.display(),
        base.expand,
        base.batch_size,
        base.seed,
        base.lr,
        base.lambda_entropy,
        base.lambda_cov,
        base.l1,
        base.k,
        base.theta,
        table(rows)
    );
    bae_io::write_atomic(&out.join(COMPARE_MD), md.as_bytes()).map_err(|e| e.to_string())?;
    let json =
        serde_json::to_string_pretty(&serde_json::json!({ "command": command, "models": rows }))
            .map_err(|e| e.to_string())?;
    bae_io::write_atomic(&out.join(COMPARE_JSON), json.as_bytes()).map_err(|e| e.to_string())
}
