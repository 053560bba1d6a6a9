//! Streaming extraction of residual-stream activations into safetensors shards.
//!
//! Documents are read and tokenised one at a time and cut into windows of `--window` tokens
//! (each window lies inside one document; a document's last, shorter window is padded, which
//! causal attention makes harmless, and its padded positions are not stored). Windows are run in
//! batches through the model up to the deepest requested block.
//!
//! Row rules (unless `--keep-sink`): positions 0 and 1 of every window are dropped (the attention
//! sink sits at position 0, and moves to 1 when token 0 is weak), and so is any row whose norm
//! exceeds 10x the median norm of the current shard's candidate rows so far (current batch
//! included). The `--tokens` budget counts *candidate* rows: rows that pass the position rule,
//! before the norm rule. Blocks share shard boundaries, so every block's folder ends at the same
//! text position, and a shard always ends on a batch boundary: re-running with the same
//! arguments redoes exactly the batches that follow the last complete shard.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bae_io::extract_store::{Manifest, OutDtype, RunSettings};
use serde::Serialize;

use crate::corpus::{DocStream, list_files};
use crate::error::{LlmError, Result};
use crate::gguf::Gguf;
use crate::model::{LoadOptions, Model};
use crate::pipeline::{BlockOut, Run, Stats};
use crate::shards::{ShardBuffer, check_settings, prepare_dir, read_manifest, remove_stale_files};
use crate::tokenizer::Tokenizer;

pub const DEFAULT_MODEL: &str = "data/models/SmolLM2-135M-Instruct.Q4_1.gguf";
/// Rows whose norm exceeds this many times the running median are dropped.
pub const OUTLIER_FACTOR: f32 = 10.0;
/// Leading positions of each window dropped unless --keep-sink.
pub const SINK_POSITIONS: usize = 2;
/// Documents larger than this are tokenised in pieces (see `corpus::safe_chunks`).
pub(crate) const TOKENIZE_CHUNK_BYTES: usize = 1 << 20;

/// What to extract and where (the flags of `bae extract`, whose defaults [`Default`] gives).
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractOptions {
    /// GGUF model file.
    pub model: PathBuf,
    /// Text sources: .txt files, .jsonl files ("text" field per line), or folders of them.
    pub text: Vec<PathBuf>,
    /// Blocks to extract (block b = residual stream after layer b, 0-based).
    pub blocks: Vec<usize>,
    /// Tokens per window (context length of each forward pass).
    pub window: usize,
    /// Budget of rows to extract (rows passing the position rule, counted over all runs).
    pub tokens: u64,
    /// Stored activation type.
    pub dtype: OutDtype,
    /// Keep every row: no dropping of positions 0-1 nor of rows with norm > 10x median.
    pub keep_sink: bool,
    /// Maximum rows per shard file.
    pub shard_rows: usize,
    /// Output folder; each block goes to `out/block{B}/`.
    pub out: PathBuf,
    /// Windows per forward pass.
    pub batch: usize,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        Self {
            model: PathBuf::from(DEFAULT_MODEL),
            text: vec![PathBuf::from("data/corpus/sotu")],
            blocks: vec![15],
            window: 128,
            tokens: 200_000,
            dtype: OutDtype::F16,
            keep_sink: false,
            shard_rows: 65_536,
            out: PathBuf::from("data/activations"),
            batch: 8,
        }
    }
}

/// How [`run_extract_with_progress`] reports progress (the CLI draws a bar). Every method does
/// nothing unless overridden.
pub trait ExtractProgress {
    /// Once, before the first forward pass: `done` candidate rows (from earlier runs of the same
    /// folder) out of the `budget` (`tokens`). Not called when there is nothing left to do.
    fn start(&mut self, _done: u64, _budget: u64) {}
    /// After each batch: candidate rows so far, all runs.
    fn update(&mut self, _done: u64) {}
    /// The text is read; the last shard and the manifests are still to be written.
    fn finish(&mut self) {}
}

/// No progress reports (what [`run_extract`] uses).
pub struct NoProgress;

impl ExtractProgress for NoProgress {}

/// Per-block outcome.
#[derive(Debug, Clone, Serialize)]
pub struct BlockSummary {
    pub block: usize,
    pub dir: PathBuf,
    /// Rows stored in all shards of this block.
    pub rows: u64,
    pub shards: usize,
    /// Rows dropped by the norm rule (all runs).
    pub dropped_outliers: u64,
}

/// What `run_extract` did.
#[derive(Debug, Clone, Serialize)]
pub struct ExtractSummary {
    pub out: PathBuf,
    pub blocks: Vec<BlockSummary>,
    pub d: usize,
    /// Candidate rows so far (what --tokens counts), all runs.
    pub candidates_total: u64,
    /// Real tokens run through the model in this call.
    pub tokens_run: u64,
    /// Rows dropped by the position rule in this call.
    pub dropped_sink_rows: u64,
    /// Shards that were already complete when this call started.
    pub resumed_shards: usize,
    /// Budget reached or text exhausted.
    pub complete: bool,
    /// Whole text consumed.
    pub exhausted: bool,
    /// Documents seen so far.
    pub docs: usize,
    /// Seconds spent after loading the model.
    pub seconds: f64,
    /// tokens_run / seconds (tokenising, forward passes and writing included).
    pub tokens_per_s: f64,
}

/// A document's token ids as extraction computes them (large documents in pieces).
pub fn tokenize_document(tokenizer: &Tokenizer, text: &str) -> Vec<u32> {
    let mut ids = Vec::new();
    for chunk in crate::corpus::safe_chunks(text, TOKENIZE_CHUNK_BYTES) {
        ids.extend(tokenizer.encode(chunk));
    }
    ids
}

/// Runs (or resumes) an extraction without progress reports; see the module docs.
pub fn run_extract(args: &ExtractOptions) -> Result<ExtractSummary> {
    run_extract_with_progress(args, &mut NoProgress)
}

/// Runs (or resumes) an extraction, reporting progress to `progress`; see the module docs.
pub fn run_extract_with_progress(
    args: &ExtractOptions,
    progress: &mut dyn ExtractProgress,
) -> Result<ExtractSummary> {
    validate(args)?;
    let mut gguf = Gguf::open(&args.model)?;
    let cfg = gguf.llama_config()?;
    let mut blocks = args.blocks.clone();
    blocks.sort_unstable();
    blocks.dedup();
    if let Some(&b) = blocks.iter().find(|&&b| b >= cfg.n_layers) {
        return Err(LlmError::Input(format!(
            "block {b} out of range: the model has {} blocks (0..{})",
            cfg.n_layers,
            cfg.n_layers - 1
        )));
    }
    if args.window > cfg.context_length {
        return Err(LlmError::Input(format!(
            "--window {} exceeds the model's context length {}",
            args.window, cfg.context_length
        )));
    }
    let tokenizer = Tokenizer::from_gguf(&gguf)?;
    let files = list_files(&args.text)?;

    // A batch must fit in one shard so that shards end on batch boundaries.
    let batch = args.batch.min(args.shard_rows / args.window).max(1);
    let model_name = file_name(&args.model);
    let settings = RunSettings {
        model: model_name.clone(),
        source: args.text.iter().map(|p| p.display().to_string()).collect(),
        window: args.window,
        dtype: args.dtype,
        keep_sink: args.keep_sink,
        shard_rows: args.shard_rows,
        batch,
    };
    let fresh = |block: usize| Manifest {
        model: model_name.clone(),
        block,
        d: cfg.d_model,
        dtype: args.dtype,
        window: args.window,
        tokens_total: 0,
        shards: Vec::new(),
        complete: false,
        exhausted: false,
        tokens_budget: args.tokens,
        docs: Vec::new(),
        tokenizer: format!(
            "byte-level BPE from {model_name} metadata, llama.cpp smollm pre-tokenizer, {} tokens",
            tokenizer.vocab_size()
        ),
        settings: settings.clone(),
    };
    let mut outs = Vec::with_capacity(blocks.len());
    for &block in &blocks {
        let dir = args.out.join(format!("block{block}"));
        prepare_dir(&dir)?;
        let manifest = match read_manifest(&dir)? {
            Some(m) => {
                check_settings(&dir, &m.settings, &settings)?;
                m
            }
            None => fresh(block),
        };
        let buf = ShardBuffer::new(args.dtype, cfg.d_model);
        outs.push(BlockOut {
            block,
            dir,
            manifest,
            buf,
        });
    }
    let resumed = align_manifests(&mut outs)?;
    let last = outs[0].manifest.shards.last();
    let start = last.map(|s| s.end).unwrap_or_default();
    let candidates = last.map_or(0, |s| s.candidates_end);
    let all_complete = outs.iter().all(|o| o.manifest.complete);
    let exhausted = all_complete && outs[0].manifest.exhausted;
    if all_complete && (exhausted || candidates >= args.tokens) {
        let stats = Stats {
            candidates,
            ..Stats::default()
        };
        return Ok(summary(args, &outs, cfg.d_model, stats, resumed));
    }

    let deepest = blocks[blocks.len() - 1];
    let opts = LoadOptions {
        n_layers: Some(deepest + 1),
        head: false,
    };
    let model = Model::from_gguf(&mut gguf, opts)?;
    let started = Instant::now();
    let mut run = Run {
        args,
        model: &model,
        blocks: &blocks,
        skip: if args.keep_sink { 0 } else { SINK_POSITIONS },
        batch,
        pad_id: tokenizer.eos_id.unwrap_or(0),
        outs,
        pending: Vec::with_capacity(batch),
        shard_candidates: 0,
        last_end: start,
        docs: Vec::new(),
        stats: Stats {
            candidates,
            ..Stats::default()
        },
        progress,
    };
    run.progress.start(candidates, args.tokens);
    run.stream(&tokenizer, DocStream::new(files), start)?;
    run.stats.seconds = started.elapsed().as_secs_f64();
    Ok(summary(args, &run.outs, cfg.d_model, run.stats, resumed))
}

/// Makes all blocks resume from the same shard: the last one every block has (a kill between
/// two manifest writes can leave one block a shard ahead; that shard is simply redone).
/// Removes leftovers of killed runs. Returns the number of shards kept.
fn align_manifests(outs: &mut [BlockOut]) -> Result<usize> {
    let k = outs
        .iter()
        .map(|o| o.manifest.shards.len())
        .min()
        .unwrap_or(0);
    for o in outs.iter_mut() {
        if o.manifest.shards.len() > k {
            o.manifest.shards.truncate(k);
            o.manifest.complete = false;
            o.manifest.exhausted = false;
        }
        o.manifest.tokens_total = o.manifest.shards.iter().map(|s| s.rows as u64).sum();
        remove_stale_files(&o.dir, &o.manifest)?;
    }
    Ok(k)
}

fn summary(
    args: &ExtractOptions,
    outs: &[BlockOut],
    d: usize,
    stats: Stats,
    resumed: usize,
) -> ExtractSummary {
    let m0 = &outs[0].manifest;
    ExtractSummary {
        out: args.out.clone(),
        blocks: outs
            .iter()
            .map(|o| BlockSummary {
                block: o.block,
                dir: o.dir.clone(),
                rows: o.manifest.tokens_total,
                shards: o.manifest.shards.len(),
                dropped_outliers: o
                    .manifest
                    .shards
                    .iter()
                    .map(|s| s.dropped_outliers as u64)
                    .sum(),
            })
            .collect(),
        d,
        candidates_total: stats.candidates,
        tokens_run: stats.tokens_run,
        dropped_sink_rows: stats.dropped_sink,
        resumed_shards: resumed,
        complete: m0.complete,
        exhausted: m0.exhausted,
        docs: m0.docs.len(),
        seconds: stats.seconds,
        tokens_per_s: if stats.seconds > 0.0 {
            stats.tokens_run as f64 / stats.seconds
        } else {
            0.0
        },
    }
}

fn validate(args: &ExtractOptions) -> Result<()> {
    let bad = |m: &str| Err(LlmError::Input(m.to_string()));
    if args.blocks.is_empty() {
        return bad("--blocks: give at least one block");
    }
    let min_window = if args.keep_sink {
        1
    } else {
        SINK_POSITIONS + 1
    };
    if args.window < min_window {
        return Err(LlmError::Input(format!(
            "--window must be at least {min_window}"
        )));
    }
    if args.tokens == 0 {
        return bad("--tokens must be positive");
    }
    if args.shard_rows < args.window {
        return bad("--shard-rows must be at least --window");
    }
    if args.batch == 0 {
        return bad("--batch must be positive");
    }
    if args.text.is_empty() {
        return bad("empty text: no --text path given");
    }
    Ok(())
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
