//! `bae compare`: BAE and the SAE baselines trained alike and judged on the same held-out rows.

use bae_analysis::compare::{self, CompareOptions};
use bae_analysis::eval::{DownstreamOptions, EvalOptions};
use bae_train::{ArchKind, TrainConfig, TrainError};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::sync::atomic::AtomicI32;

#[derive(Clone, Copy, ValueEnum)]
pub enum CompareArch {
    Bae,
    ReluL1,
    Topk,
    Jumprelu,
}

const AFTER_HELP: &str = "\
Each model is a normal run folder OUT/<arch> (train with the same width, steps, batch, seed and
training rows; the baselines with their official defaults unless --l1/--k/--theta say otherwise),
evaluated like `bae eval` on the same held-out rows (the validation split). A finished run with
the same settings is reused, an interrupted one resumed: re-running the command continues.
Writes OUT/compare.md (the table and the chart), OUT/compare.svg (FVU against L0, dead/dense
counts as bars) and OUT/compare.json (every number). Training runs on the CPU.";

/// `bae compare`: train and evaluate several architectures on the same rows.
#[derive(Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct CompareArgs {
    /// activations: an extract folder (downstream fidelity needs one) or an activation file
    #[arg(long)]
    data: PathBuf,
    /// output folder: one run folder per architecture plus compare.md / .svg / .json
    #[arg(long, default_value = "runs/compare")]
    out: PathBuf,
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "bae,relu-l1,topk,jumprelu"
    )]
    archs: Vec<CompareArch>,
    /// optimiser steps per model (overrides --epochs)
    #[arg(long)]
    steps: Option<u64>,
    /// passes over the training rows per model
    #[arg(long, default_value_t = 2)]
    epochs: u64,
    #[arg(long, default_value_t = 512)]
    batch_size: usize,
    /// code width d' = expand * d
    #[arg(long, default_value_t = 4)]
    expand: usize,
    #[arg(long, default_value_t = 5e-4)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 0.2)]
    val_split: f64,
    #[arg(long, default_value_t = 1e-7)]
    lambda_entropy: f64,
    #[arg(long, default_value_t = 1e-7)]
    lambda_cov: f64,
    /// first step with the entropy term on (default: a quarter of the steps)
    #[arg(long)]
    entropy_start: Option<u64>,
    /// L1 weight (relu-l1, jumprelu)
    #[arg(long, default_value_t = 1e-3)]
    l1: f64,
    /// k (topk)
    #[arg(long, default_value_t = 32)]
    k: usize,
    /// threshold (jumprelu)
    #[arg(long, default_value_t = 0.5)]
    theta: f64,
    /// GGUF of the LLM for downstream fidelity
    #[arg(long, default_value = bae_llm::DEFAULT_MODEL)]
    model: PathBuf,
    /// held-out windows run through the LLM per model
    #[arg(long, default_value_t = 16)]
    windows: usize,
    /// skip the downstream (LLM) part
    #[arg(long)]
    no_downstream: bool,
    /// hide the progress bars
    #[arg(long)]
    quiet: bool,
}

pub fn run(a: CompareArgs, stop: &AtomicI32) -> Result<(), TrainError> {
    let base = TrainConfig {
        data: a.data.clone(),
        expand: a.expand,
        lr: a.lr,
        batch_size: a.batch_size,
        epochs: a.epochs,
        steps: a.steps,
        lambda_entropy: a.lambda_entropy,
        lambda_cov: a.lambda_cov,
        entropy_start: a.entropy_start,
        val_split: a.val_split,
        seed: a.seed,
        l1: a.l1,
        k: a.k,
        theta: a.theta,
        ..TrainConfig::default()
    };
    if a.archs.is_empty() {
        return Err("--archs: give at least one architecture".to_string().into());
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let opts = CompareOptions {
        out: a.out.clone(),
        archs: a
            .archs
            .iter()
            .map(|x| match x {
                CompareArch::Bae => ArchKind::Bae,
                CompareArch::ReluL1 => ArchKind::ReluL1,
                CompareArch::Topk => ArchKind::Topk,
                CompareArch::Jumprelu => ArchKind::Jumprelu,
            })
            .collect(),
        base: base.clone(),
        eval: EvalOptions {
            run: PathBuf::new(),
            data: None,
            rows: None,
            batch: 4096,
            downstream: (!a.no_downstream).then(|| DownstreamOptions {
                model: a.model.clone(),
                windows: a.windows.max(1),
                batch: 8,
            }),
            show_progress: !a.quiet,
            command: command.clone(),
        },
        show_progress: !a.quiet,
        stop: Some(stop),
    };
    let rows = compare::compare(&opts, &command)?;
    print!("{}", compare::table(&rows));
    println!(
        "wrote {} and {} in {}",
        compare::COMPARE_MD,
        compare::COMPARE_SVG,
        a.out.display()
    );
    Ok(())
}
