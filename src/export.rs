//! `bae export`: a trained run as a folder another tool loads (SAELens 6).

use bae_analysis::TrainedRun;
use bae_analysis::export::{ExportOptions, export_saelens};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// SAELens 6 folder: cfg.json, sae_weights.safetensors, sparsity.safetensors
    Saelens,
}

const AFTER_HELP: &str = "\
--format saelens writes a folder that SAELens 6 loads with SAE.load_from_disk(DIR):
  relu-l1  -> \"standard\"
  topk     -> \"topk\" (k)
  jumprelu -> \"jumprelu\" (threshold = the fixed theta for every feature)
  bae      -> \"binary\": not a SAELens architecture; the `bae` Python package (python/) reads it and
              registers it with SAELens (import bae.saelens), codes = 1[x W_enc + b_enc > 0]
Files: cfg.json, sae_weights.safetensors (W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in],
b_dec [d_in], f32; apply_b_dec_to_input false, normalize_activations \"none\"), sparsity.safetensors
(log10 feature density on the run's validation rows), bae_export.json (provenance and notes), and with
--with-reference N reference.safetensors. metadata.hook_name (blocks.{b}.hook_resid_post), model_name and
context_size come from the extract folder's manifest.json.

The command prints where SAELens's forward differs from bae's, with counts measured on the validation
rows (TopK: SAELens applies ReLU to the k kept values, bae's official TopK keeps negative ones and ties).

The folder is written beside --out and renamed into place: --out holds its old content or the complete
export, never a part. Check the round trip: bash scripts/saelens_setup.sh, then
data/saelens-venv/bin/python scripts/saelens_check.py DIR...";

/// `bae export`: a trained run as a SAELens 6 folder.
#[derive(Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct ExportArgs {
    /// run folder written by `bae train` (config.json, model.safetensors)
    #[arg(long)]
    run: PathBuf,
    #[arg(long, value_enum, default_value = "saelens")]
    format: FormatArg,
    /// output folder; an existing non-empty one must be a previous export (or use --force)
    #[arg(long)]
    out: PathBuf,
    /// replace --out even when it is a non-empty folder that is not a previous export (its content is deleted)
    #[arg(long)]
    force: bool,
    /// activations for the density (default: the run's training data; its validation split is used)
    #[arg(long)]
    data: Option<PathBuf>,
    /// do not read the data: no sparsity.safetensors and no measured counts
    #[arg(long)]
    no_sparsity: bool,
    /// also write reference.safetensors: N validation rows (spread over the split) with bae's own
    /// pre-activations, features and reconstructions, for scripts/saelens_check.py
    #[arg(long, value_name = "N")]
    with_reference: Option<usize>,
    /// metadata.model_name (default: from the extract manifest, e.g. HuggingFaceTB/SmolLM2-135M-Instruct)
    #[arg(long)]
    model_name: Option<String>,
    /// metadata.hook_name (default: blocks.{b}.hook_resid_post from the extract manifest)
    #[arg(long)]
    hook_name: Option<String>,
}

pub fn run(a: ExportArgs) -> Result<(), String> {
    let run = TrainedRun::open(&a.run)?;
    let opts = ExportOptions {
        out: a.out,
        force: a.force,
        data: a.data,
        no_sparsity: a.no_sparsity,
        reference_rows: a.with_reference.unwrap_or(0),
        model_name: a.model_name,
        hook_name: a.hook_name,
    };
    if a.with_reference == Some(0) {
        return Err("--with-reference must be at least 1".into());
    }
    let report = match a.format {
        FormatArg::Saelens => export_saelens(&run, &opts)?,
    };
    for line in report.lines() {
        println!("{line}");
    }
    Ok(())
}
