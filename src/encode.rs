//! `bae encode`: store the binary codes of a corpus under a trained BAE, bit-packed.

use bae_analysis::encode::{self, EncodeOptions, RowSelection};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Runs the BAE's encoder over the rows once and stores the codes H = 1[x W_enc + b_enc > 0] as bits
(d'/8 bytes per row; at --expand 4 that is 1/4 of the f16 activations), with each row's token id,
document id and position, so entropy studies over many subsets read codes instead of activations.

The output folder holds codes.json (the index: bits per row, the run, its model checksum and
config, the source folder and its row range, the shards, a complete flag) and
codes-NNNNN.safetensors shards (`codes` U64 [rows, ceil(d'/64)], LSB first as bae_bits::PackedRows;
`token_ids`, `doc_ids`, `positions` I32, -1 where the source has none: 12 bytes a row more). Each shard is
written atomically, then the index; an interrupted encode continues after its last complete shard
when run again with the same arguments (different settings are refused in one line). One process
writes the folder at a time.";

/// Which rows a command reads (`bae encode`, `bae entropy`).
#[derive(Clone, Copy, ValueEnum)]
pub enum RowsArg {
    /// every row of the data
    All,
    /// the run's validation split (every row when --data is other activations)
    HeldOut,
}

impl RowsArg {
    pub fn selection(self) -> RowSelection {
        match self {
            RowsArg::All => RowSelection::All,
            RowsArg::HeldOut => RowSelection::HeldOut,
        }
    }
}

/// `bae encode`: bit-packed codes of a corpus under a trained BAE.
#[derive(Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct EncodeArgs {
    /// run folder written by `bae train --arch bae` (config.json, model.safetensors)
    #[arg(long)]
    run: PathBuf,
    /// activations to encode (an extract folder or an activation file); default: the run's data
    #[arg(long)]
    data: Option<PathBuf>,
    /// code-store folder to write (continued when it holds an interrupted encode of the same rows)
    #[arg(long)]
    out: PathBuf,
    /// which rows
    #[arg(long, value_enum, default_value = "all")]
    rows: RowsArg,
    /// rows per shard file
    #[arg(long, default_value_t = encode::DEFAULT_SHARD_ROWS)]
    shard_rows: usize,
    /// rows per forward pass of the encoder
    #[arg(long, default_value_t = 4096)]
    batch: usize,
    /// hide the progress bar
    #[arg(long)]
    quiet: bool,
}

pub fn run(a: EncodeArgs) -> Result<(), String> {
    if a.shard_rows == 0 || a.batch == 0 {
        return Err("--shard-rows and --batch must be at least 1".into());
    }
    let opts = EncodeOptions {
        run: a.run,
        data: a.data,
        out: a.out,
        rows: a.rows.selection(),
        shard_rows: a.shard_rows,
        batch: a.batch,
        stop_after_shards: None,
    };
    let start = std::time::Instant::now();
    let pb = crate::progress::bar(a.quiet, "rows encoded");
    let summary = encode::encode(&opts, &mut crate::progress::track(&pb));
    pb.finish_and_clear();
    let summary = summary?;
    println!(
        "{} in {:.1} s",
        summary.line(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
