//! `bae compare`: BAE and the SAE baselines trained alike and judged on the same held-out rows.

use crate::run_args::{ArchChoice, SharedTrainArgs};
use bae_analysis::compare::{self, CompareOptions};
use bae_analysis::eval::{DownstreamOptions, EvalOptions};
use bae_train::{TrainConfig, TrainError};
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::AtomicI32;

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
    archs: Vec<ArchChoice>,
    #[command(flatten)]
    train: SharedTrainArgs,
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
    let base = a.train.apply(TrainConfig {
        data: a.data.clone(),
        ..TrainConfig::default()
    });
    if a.archs.is_empty() {
        return Err("--archs: give at least one architecture".to_string().into());
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let opts = CompareOptions {
        out: a.out.clone(),
        archs: a.archs.iter().map(|x| x.kind()).collect(),
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
