//! `bae extract`: the command line of `bae_llm::run_extract` (flags, progress bar, summary).

use bae_llm::{DEFAULT_MODEL, ExtractOptions, ExtractProgress, OutDtype};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// `--dtype` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DtypeArg {
    F16,
    Bf16,
    F32,
}

impl From<DtypeArg> for OutDtype {
    fn from(d: DtypeArg) -> OutDtype {
        match d {
            DtypeArg::F16 => OutDtype::F16,
            DtypeArg::Bf16 => OutDtype::Bf16,
            DtypeArg::F32 => OutDtype::F32,
        }
    }
}

/// Flags of `bae extract`; their defaults are `ExtractOptions::default()` (a test checks).
#[derive(Debug, Clone, Args)]
pub struct ExtractArgs {
    /// GGUF model file (fetched by `bash scripts/setup.sh`)
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// Text sources: .txt files, .jsonl files ("text" field per line), or folders of them
    #[arg(long, num_args = 1.., default_value = "data/corpus/sotu")]
    text: Vec<PathBuf>,
    /// Blocks to extract, comma-separated (block b = residual stream after layer b, 0-based)
    #[arg(long, value_delimiter = ',', default_value = "15")]
    blocks: Vec<usize>,
    /// Tokens per window (context length of each forward pass)
    #[arg(long, default_value_t = 128)]
    window: usize,
    /// Budget of rows to extract (rows passing the position rule, counted over all runs)
    #[arg(long, default_value_t = 200_000)]
    tokens: u64,
    /// Stored activation type
    #[arg(long, value_enum, default_value_t = DtypeArg::F16)]
    dtype: DtypeArg,
    /// Keep every row: no dropping of positions 0-1 nor of rows with norm > 10x median
    #[arg(long)]
    keep_sink: bool,
    /// Maximum rows per shard file
    #[arg(long, default_value_t = 65_536)]
    shard_rows: usize,
    /// Output folder; each block goes to OUT/block{B}/
    #[arg(long, default_value = "data/activations")]
    out: PathBuf,
    /// Windows per forward pass
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// No progress bar
    #[arg(long)]
    quiet: bool,
}

impl ExtractArgs {
    fn options(&self) -> ExtractOptions {
        ExtractOptions {
            model: self.model.clone(),
            text: self.text.clone(),
            blocks: self.blocks.clone(),
            window: self.window,
            tokens: self.tokens,
            dtype: self.dtype.into(),
            keep_sink: self.keep_sink,
            shard_rows: self.shard_rows,
            out: self.out.clone(),
            batch: self.batch,
        }
    }
}

/// The progress bar of an extraction (rows counted against the --tokens budget), drawn from the
/// first forward pass on; none with --quiet.
struct Bar {
    quiet: bool,
    pb: Option<ProgressBar>,
}

impl ExtractProgress for Bar {
    fn start(&mut self, done: u64, budget: u64) {
        if self.quiet {
            return;
        }
        let pb = ProgressBar::new(budget);
        pb.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} tokens, {per_sec:0}, ETA {eta}",
            )
            .expect("static template"),
        );
        pb.set_position(done);
        // the rows of earlier runs are no measure of this run's speed
        pb.reset_eta();
        self.pb = Some(pb);
    }
    fn update(&mut self, done: u64) {
        if let Some(pb) = &self.pb {
            pb.set_position(done);
        }
    }
    fn finish(&mut self) {
        if let Some(pb) = &self.pb {
            pb.finish_and_clear();
        }
    }
}

pub fn run(a: ExtractArgs) -> Result<(), String> {
    let opts = a.options();
    // one extraction per output folder: two would append to the same shards and manifest
    let _lock = bae_io::FolderLock::acquire(&opts.out).map_err(|e| e.to_string())?;
    let mut bar = Bar {
        quiet: a.quiet,
        pb: None,
    };
    let s = bae_llm::run_extract_with_progress(&opts, &mut bar).map_err(|e| e.to_string())?;
    for b in &s.blocks {
        println!(
            "block {}: {} rows in {} shards -> {} ({} outlier rows dropped)",
            b.block,
            b.rows,
            b.shards,
            b.dir.display(),
            b.dropped_outliers
        );
    }
    println!(
        "{} tokens run at {:.0} tokens/s; {}",
        s.tokens_run,
        s.tokens_per_s,
        if s.complete {
            "complete"
        } else {
            "incomplete (re-run to continue)"
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: ExtractArgs,
    }

    fn parse(argv: &[&str]) -> ExtractArgs {
        Wrap::try_parse_from(std::iter::once("extract").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn the_flag_defaults_are_the_library_defaults() {
        let a = parse(&[]);
        assert_eq!(a.options(), ExtractOptions::default());
        assert!(!a.quiet);
    }

    #[test]
    fn every_flag_reaches_the_options() {
        let a = parse(&[
            "--model",
            "m.gguf",
            "--text",
            "a.txt",
            "b",
            "--blocks",
            "3,8",
            "--window",
            "64",
            "--tokens",
            "1000",
            "--dtype",
            "bf16",
            "--keep-sink",
            "--shard-rows",
            "512",
            "--out",
            "o",
            "--batch",
            "2",
            "--quiet",
        ]);
        assert!(a.quiet);
        assert_eq!(
            a.options(),
            ExtractOptions {
                model: "m.gguf".into(),
                text: vec!["a.txt".into(), "b".into()],
                blocks: vec![3, 8],
                window: 64,
                tokens: 1000,
                dtype: OutDtype::Bf16,
                keep_sink: true,
                shard_rows: 512,
                out: "o".into(),
                batch: 2,
            }
        );
        for (arg, dtype) in [
            ("f16", OutDtype::F16),
            ("bf16", OutDtype::Bf16),
            ("f32", OutDtype::F32),
        ] {
            assert_eq!(parse(&["--dtype", arg]).options().dtype, dtype);
            // the CLI's names are the manifest's names
            assert_eq!(dtype.name(), arg);
        }
    }
}
