//! `bae compare`: every architecture trained at the same width, steps, batch and seed on the same
//! training rows, then judged by `eval` on the same held-out rows. Each model is an ordinary run
//! folder `OUT/<arch>`: a finished one with the same settings is reused, an interrupted one resumed.

use crate::eval::{self, EvalOptions, EvalReport};
use bae_train::{ArchKind, Device, RunOptions, TrainConfig, TrainError};
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

/// The run's recorded training speed, when `dir` holds a finished run trained with `cfg`.
fn finished_run(dir: &Path, cfg: &TrainConfig) -> Result<Option<Option<f64>>, String> {
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

/// Trains (or reuses) and evaluates every architecture of `opts`, then writes compare.md / .svg /
/// .json into `opts.out`, holding the folder's lock throughout.
pub fn compare(opts: &CompareOptions, command: &str) -> Result<Vec<CompareRow>, TrainError> {
    let _lock = bae_io::FolderLock::acquire(&opts.out).map_err(|e| e.to_string())?;
    let rows = train_and_evaluate(opts)?;
    write_outputs(&opts.out, &opts.base, command, &rows)?;
    Ok(rows)
}

fn train_and_evaluate(opts: &CompareOptions) -> Result<Vec<CompareRow>, TrainError> {
    let src = bae_train::store::open_source(&opts.base.data)?;
    let mut rows = Vec::new();
    for arch in &opts.archs {
        let dir = opts.out.join(arch_dir_name(arch));
        let cfg = TrainConfig {
            arch: arch.clone(),
            out: dir.clone(),
            ..opts.base.clone()
        };
        cfg.validate()?;
        let (reused, speed) = match finished_run(&dir, &cfg)? {
            Some(speed) => (true, speed),
            None => {
                if opts.show_progress {
                    eprintln!("{}: training -> {}", arch_dir_name(arch), dir.display());
                }
                let run = RunOptions {
                    show_progress: opts.show_progress,
                    resume: dir.join("config.json").is_file(),
                    stop: opts.stop,
                    device: Device::Cpu,
                };
                let o = bae_train::train(&cfg, src.as_ref(), run)?;
                (
                    false,
                    (o.train_tokens_per_s > 0.0).then_some(o.train_tokens_per_s),
                )
            }
        };
        if opts.show_progress {
            eprintln!("{}: evaluating", arch_dir_name(arch));
        }
        let report = eval::evaluate(&EvalOptions {
            run: dir.clone(),
            ..opts.eval.clone()
        })?;
        eval::write_outputs(&report)?;
        rows.push(CompareRow {
            arch: arch_dir_name(arch).to_string(),
            run: dir.display().to_string(),
            reused,
            train_tokens_per_s: speed,
            eval: report,
        });
    }
    Ok(rows)
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
    let steps = match base.steps {
        Some(s) => format!("{s} steps"),
        None => format!("{} epochs", base.epochs),
    };
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
