//! `bae sweep`: one model per point of a grid of training settings, trained alike and judged on the
//! same held-out rows.

use crate::run_args::{ArchChoice, SharedTrainArgs};
use bae_analysis::eval::{DownstreamOptions, EvalOptions};
use bae_analysis::sweep::{self, SweepOptions};
use bae_train::{TrainConfig, TrainError};
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::AtomicI32;

const AFTER_HELP: &str = "\
The grid: groups `key=v1,v2,...` separated by `;`; every combination of one value per group is
trained (the cartesian product; the first group varies slowest). A key is a training setting:
the name of a field of the run's config.json with `-` for `_`, e.g. lambda-entropy, lambda-cov,
estimator (sign_s, ste), entropy-start, steps, epochs, lr, batch-size, expand, seed, l1, k, theta,
arch (bae, relu-l1, topk, jumprelu), shuffle, enc-bias, dec-bias. A value is read as a number,
true/false or null (null: the default, e.g. entropy-start=null is a quarter of the run) when it is
one, else as text. data, out and val-split cannot be varied. Settings the grid does not name come
from the flags (the official defaults, 2 epochs, unless given). Every point is checked before
anything trains: an unknown key, a value of the wrong type or an impossible setting is one line.

Each point is a normal run folder OUT/<name>, its name made of the grid's keys and values (e.g.
OUT/lambda-cov=0,estimator=ste); a finished run with the same settings is reused, an interrupted
one resumed: re-running the command continues, and adding a value to a group trains only the new
points. Every point is evaluated like `bae eval` on the same held-out rows (the validation split);
downstream fidelity on the LLM only with --downstream (it runs the LLM once per point). Writes
OUT/sweep.md (the table and the charts), OUT/sweep.svg (FVU against the mean rare-value rate
min(p, 1-p); features whose rare value is below 1 % against FVU) and OUT/sweep.json (every number).
Training runs on the CPU.

Examples (the reviewers' ablations):
  is the covariance term necessary?   bae sweep --data D --out runs/cov --grid \"lambda-cov=0,1e-7\"
  does the estimator matter?          bae sweep --data D --out runs/est --grid \"estimator=sign_s,ste\"
  how long must it train?             bae sweep --data D --out runs/len --grid \"steps=500,1000,2000\"
  both at once (4 points):            --grid \"lambda-cov=0,1e-7;estimator=sign_s,ste\"
  entropy weight and start:           --grid \"lambda-entropy=1e-7,1e-5;entropy-start=0,null\"";

/// `bae sweep`: train and evaluate one model per point of a grid of settings.
#[derive(Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct SweepArgs {
    /// activations: an extract folder (downstream fidelity needs one) or an activation file
    #[arg(long)]
    data: PathBuf,
    /// output folder: one run folder per grid point plus sweep.md / .svg / .json
    #[arg(long, default_value = "runs/sweep")]
    out: PathBuf,
    /// the settings to vary: "key=v1,v2,...;key=..." (see below)
    #[arg(long)]
    grid: String,
    /// architecture of every point (unless the grid varies arch)
    #[arg(long, value_enum, default_value = "bae")]
    arch: ArchChoice,
    /// backward of the binariser: sign_s (official default) or ste
    #[arg(long, default_value = "sign_s")]
    estimator: String,
    #[command(flatten)]
    train: SharedTrainArgs,
    /// also measure downstream fidelity on the LLM for every point (off by default)
    #[arg(long)]
    downstream: bool,
    /// the default: no downstream part (accepted for the same flags as bae compare)
    #[arg(long, conflicts_with = "downstream")]
    no_downstream: bool,
    /// GGUF of the LLM for --downstream
    #[arg(long, default_value = bae_llm::DEFAULT_MODEL)]
    model: PathBuf,
    /// held-out windows run through the LLM per point (--downstream)
    #[arg(long, default_value_t = 16)]
    windows: usize,
    /// hide the progress lines and bars
    #[arg(long)]
    quiet: bool,
}

pub fn run(a: SweepArgs, stop: &AtomicI32) -> Result<(), TrainError> {
    let base = a.train.apply(TrainConfig {
        data: a.data.clone(),
        arch: a.arch.kind(),
        estimator: a.estimator.clone(),
        ..TrainConfig::default()
    });
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let opts = SweepOptions {
        out: a.out.clone(),
        grid: a.grid.clone(),
        base,
        eval: EvalOptions {
            run: PathBuf::new(),
            data: None,
            rows: None,
            batch: 4096,
            downstream: (a.downstream && !a.no_downstream).then(|| DownstreamOptions {
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
    let rows = sweep::sweep(&opts, &command)?;
    print!("{}", sweep::table(&rows));
    let reused = rows.iter().filter(|r| r.reused).count();
    println!(
        "{} points ({reused} reused); wrote {} and {} in {}",
        rows.len(),
        sweep::SWEEP_MD,
        sweep::SWEEP_SVG,
        a.out.display()
    );
    Ok(())
}
