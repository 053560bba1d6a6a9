//! `bae eval`: reconstruction, feature statistics and downstream fidelity of a trained run.

use bae_analysis::eval::{self, DownstreamOptions, EvalOptions};
use clap::Args;
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Rows: the run's validation split (the last --val-split share of its data, on a document boundary),
or every row of --data when that is other activations. Downstream fidelity runs the LLM on held-out
windows of the extract's own text (re-read from the sources its manifest names), replaces the
residual stream after the autoencoder's block at the positions training kept (not positions 0-1,
not rows with norm > 10x the median) by the reconstruction, by zeros or by the mean activation, and
compares next-token distributions (nats): CE clean / spliced / ablated, KL(clean||spliced), JSD,
SAELens's ce_loss_score and kl_div_score (zero ablation), and the mean JSD at the last position
when only the last token is replaced.

Writes eval.json (every number, the command line and the data source) and eval_rates.svg (log10
histograms of firing rates, rare-value rates min(p, 1-p) and salience shares) into the run folder,
each atomically.";

/// `bae eval`: judge a trained autoencoder on held-out rows.
#[derive(Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct EvalArgs {
    /// run folder written by `bae train` (config.json, model.safetensors)
    #[arg(long)]
    run: PathBuf,
    /// other activations to evaluate on (an extract folder or an activation file); default: the
    /// run's validation split
    #[arg(long)]
    data: Option<PathBuf>,
    /// evaluate on the first N rows only
    #[arg(long)]
    rows: Option<usize>,
    /// GGUF of the LLM for downstream fidelity
    #[arg(long, default_value = bae_llm::DEFAULT_MODEL)]
    model: PathBuf,
    /// held-out windows run through the LLM
    #[arg(long, default_value_t = 32)]
    windows: usize,
    /// skip the downstream (LLM) part
    #[arg(long)]
    no_downstream: bool,
    /// rows per forward pass of the autoencoder
    #[arg(long, default_value_t = 4096)]
    batch: usize,
    /// hide the progress bars
    #[arg(long)]
    quiet: bool,
}

pub fn run(a: EvalArgs) -> Result<(), String> {
    if a.windows == 0 && !a.no_downstream {
        return Err("--windows must be at least 1 (or pass --no-downstream)".into());
    }
    let opts = EvalOptions {
        run: a.run.clone(),
        data: a.data.clone(),
        rows: a.rows,
        batch: a.batch.max(1),
        downstream: (!a.no_downstream).then(|| DownstreamOptions {
            model: a.model.clone(),
            windows: a.windows,
            batch: 8,
        }),
        show_progress: !a.quiet,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    // refuse while a training (or another eval) writes the run folder
    let _lock = bae_io::FolderLock::acquire_existing(&a.run).map_err(|e| e.to_string())?;
    let report = eval::evaluate(&opts)?;
    eval::write_outputs(&report)?;
    print!("{}", eval::table(&report));
    println!(
        "wrote {} and {} in {}",
        eval::EVAL_JSON,
        eval::RATES_SVG,
        a.run.display()
    );
    Ok(())
}
