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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::corpus::{DocStream, list_files, safe_chunks};
use crate::error::{LlmError, Result};
use crate::gguf::Gguf;
use crate::model::{LoadOptions, Model};
use crate::shards::{
    Manifest, OutDtype, RunSettings, ShardBuffer, ShardEntry, TextPos, median, shard_name,
    write_file,
};
use crate::tokenizer::Tokenizer;

pub const DEFAULT_MODEL: &str = "data/models/SmolLM2-135M-Instruct.Q4_1.gguf";
/// Rows whose norm exceeds this many times the running median are dropped.
pub const OUTLIER_FACTOR: f32 = 10.0;
/// Leading positions of each window dropped unless --keep-sink.
pub const SINK_POSITIONS: usize = 2;
/// Documents larger than this are tokenised in pieces (see `corpus::safe_chunks`).
const TOKENIZE_CHUNK_BYTES: usize = 1 << 20;

/// Options of `bae extract` (and of the `extract` example).
#[derive(Debug, Clone, clap::Args)]
pub struct ExtractArgs {
    /// GGUF model file (fetched by `bash scripts/setup.sh`)
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Text sources: .txt files, .jsonl files ("text" field per line), or folders of them
    #[arg(long, num_args = 1.., default_value = "data/corpus/sotu")]
    pub text: Vec<PathBuf>,
    /// Blocks to extract, comma-separated (block b = residual stream after layer b, 0-based)
    #[arg(long, value_delimiter = ',', default_value = "15")]
    pub blocks: Vec<usize>,
    /// Tokens per window (context length of each forward pass)
    #[arg(long, default_value_t = 128)]
    pub window: usize,
    /// Budget of rows to extract (rows passing the position rule, counted over all runs)
    #[arg(long, default_value_t = 200_000)]
    pub tokens: u64,
    /// Stored activation type
    #[arg(long, value_enum, default_value_t = OutDtype::F16)]
    pub dtype: OutDtype,
    /// Keep every row: no dropping of positions 0-1 nor of rows with norm > 10x median
    #[arg(long)]
    pub keep_sink: bool,
    /// Maximum rows per shard file
    #[arg(long, default_value_t = 65_536)]
    pub shard_rows: usize,
    /// Output folder; each block goes to OUT/block<B>/
    #[arg(long, default_value = "data/activations")]
    pub out: PathBuf,
    /// Windows per forward pass
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
}

impl Default for ExtractArgs {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            args: ExtractArgs,
        }
        <Wrap as clap::Parser>::parse_from(["extract"]).args
    }
}

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

/// A window of one document waiting for a forward pass.
struct Window {
    doc: usize,
    /// Token ids of the window (at most `window`, fewer at the end of a document).
    ids: Vec<u32>,
    /// Candidate rows to keep: positions skip..skip + keep.
    keep: usize,
    /// Text position after the last token this window consumes.
    end: TextPos,
}

/// Per-block output state.
struct BlockOut {
    block: usize,
    dir: PathBuf,
    manifest: Manifest,
    buf: ShardBuffer,
}

/// Runs (or resumes) an extraction; see the module docs.
pub fn run_extract(args: &ExtractArgs) -> Result<ExtractSummary> {
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

    let skip = if args.keep_sink { 0 } else { SINK_POSITIONS };
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
    let tokenizer_desc = format!(
        "byte-level BPE from {model_name} metadata, llama.cpp smollm pre-tokenizer, {} tokens",
        tokenizer.vocab_size()
    );

    // Output folders and any earlier progress.
    let mut outs = Vec::with_capacity(blocks.len());
    for &block in &blocks {
        let dir = args.out.join(format!("block{block}"));
        prepare_dir(&dir)?;
        let manifest = match Manifest::read(&dir)? {
            Some(m) => {
                check_settings(&dir, &m.settings, &settings)?;
                m
            }
            None => Manifest {
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
                tokenizer: tokenizer_desc.clone(),
                settings: settings.clone(),
            },
        };
        outs.push(BlockOut {
            block,
            dir,
            buf: ShardBuffer::new(args.dtype, cfg.d_model),
            manifest,
        });
    }
    // Resume after the last shard that every block has (a kill between two manifest writes
    // can leave one block a shard ahead; that shard is simply redone).
    let k = outs
        .iter()
        .map(|o| o.manifest.shards.len())
        .min()
        .unwrap_or(0);
    let mut all_done = true;
    for o in &mut outs {
        if o.manifest.shards.len() > k {
            o.manifest.shards.truncate(k);
            o.manifest.complete = false;
            o.manifest.exhausted = false;
        }
        o.manifest.tokens_total = o.manifest.shards.iter().map(|s| s.rows as u64).sum();
        remove_stale_files(&o.dir, &o.manifest)?;
        all_done &= o.manifest.complete;
    }
    let first = &outs[0].manifest;
    let start = first.shards.last().map(|s| s.end).unwrap_or_default();
    let mut candidates = first.shards.last().map_or(0, |s| s.candidates_end);
    let exhausted = first.exhausted && all_done;
    if all_done && (exhausted || candidates >= args.tokens) {
        return Ok(summary(
            args,
            &outs,
            cfg.d_model,
            candidates,
            Stats::default(),
            k,
            all_done,
            exhausted,
        ));
    }

    let model = Model::from_gguf(
        &mut gguf,
        LoadOptions {
            n_layers: Some(blocks[blocks.len() - 1] + 1),
            head: false,
        },
    )?;
    let pad_id = tokenizer.eos_id.unwrap_or(0);

    let started = Instant::now();
    let pb = progress_bar(args, candidates);
    let mut stats = Stats::default();
    let mut stream = DocStream::new(files);
    let mut docs: Vec<String> = Vec::new();
    // Skip the documents that earlier runs finished.
    while docs.len() < start.doc {
        match stream.next_doc()? {
            Some(d) => docs.push(d.name),
            None => break,
        }
    }
    let mut pending: Vec<Window> = Vec::with_capacity(batch);
    let mut shard_candidates = 0usize;
    let mut last_end = start;
    let mut exhausted = false;
    let mut offset = start.token;
    'docs: loop {
        if candidates >= args.tokens {
            break;
        }
        let Some(doc) = stream.next_doc()? else {
            exhausted = true;
            break;
        };
        let doc_id = docs.len();
        docs.push(doc.name);
        let mut ids = Vec::new();
        for chunk in safe_chunks(&doc.text, TOKENIZE_CHUNK_BYTES) {
            ids.extend(tokenizer.encode(chunk));
        }
        drop(doc.text);
        let mut pos = offset;
        offset = 0;
        while pos < ids.len() {
            let end = (pos + args.window).min(ids.len());
            let available = (end - pos).saturating_sub(skip);
            let keep = available.min((args.tokens - candidates) as usize);
            if keep == 0 {
                break; // too short after the position rule: the rest of the document is unused
            }
            // The window consumes through its last kept position.
            let consumed = if keep < available {
                pos + skip + keep
            } else {
                end
            };
            let end_pos = if consumed >= ids.len() {
                TextPos {
                    doc: doc_id + 1,
                    token: 0,
                }
            } else {
                TextPos {
                    doc: doc_id,
                    token: consumed,
                }
            };
            pending.push(Window {
                doc: doc_id,
                ids: ids[pos..end].to_vec(),
                keep,
                end: end_pos,
            });
            candidates += keep as u64;
            stats.dropped_sink += (end - pos).min(skip) as u64;
            pos = end;
            if pending.len() == batch {
                run_batch(
                    &model,
                    &mut outs,
                    &mut pending,
                    &mut shard_candidates,
                    &mut last_end,
                    &blocks,
                    args,
                    skip,
                    pad_id,
                    &docs,
                    &mut stats,
                )?;
                pb.set_position(candidates);
            }
            if candidates >= args.tokens {
                break 'docs;
            }
        }
    }
    if !pending.is_empty() {
        run_batch(
            &model,
            &mut outs,
            &mut pending,
            &mut shard_candidates,
            &mut last_end,
            &blocks,
            args,
            skip,
            pad_id,
            &docs,
            &mut stats,
        )?;
    }
    pb.set_position(candidates);
    pb.finish_and_clear();
    if candidates == 0 && exhausted {
        let src: Vec<String> = args.text.iter().map(|p| p.display().to_string()).collect();
        return Err(LlmError::Input(format!(
            "empty text: no window of more than {skip} tokens in {}",
            src.join(", ")
        )));
    }
    // Final (possibly short) shard, then mark complete.
    flush(
        &mut outs,
        shard_candidates,
        last_end,
        candidates,
        args,
        &docs,
        true,
        exhausted,
    )?;
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(summary(
        args,
        &outs,
        cfg.d_model,
        candidates,
        stats,
        k,
        true,
        exhausted,
    ))
}

#[derive(Default)]
struct Stats {
    tokens_run: u64,
    dropped_sink: u64,
    seconds: f64,
}

/// Runs the pending windows through the model and appends their rows to the shard buffers,
/// flushing the shards first if this batch would not fit.
#[allow(clippy::too_many_arguments)]
fn run_batch(
    model: &Model,
    outs: &mut [BlockOut],
    pending: &mut Vec<Window>,
    shard_candidates: &mut usize,
    last_end: &mut TextPos,
    blocks: &[usize],
    args: &ExtractArgs,
    skip: usize,
    pad_id: u32,
    docs: &[String],
    stats: &mut Stats,
) -> Result<()> {
    let batch_candidates: usize = pending.iter().map(|w| w.keep).sum();
    if *shard_candidates > 0 && *shard_candidates + batch_candidates > args.shard_rows {
        let cands_before = outs[0]
            .manifest
            .shards
            .last()
            .map_or(0, |s| s.candidates_end)
            + *shard_candidates as u64;
        flush(
            outs,
            *shard_candidates,
            *last_end,
            cands_before,
            args,
            docs,
            false,
            false,
        )?;
        *shard_candidates = 0;
    }
    let t = args.window;
    let mut flat = Vec::with_capacity(pending.len() * t);
    for w in pending.iter() {
        flat.extend_from_slice(&w.ids);
        flat.extend(std::iter::repeat_n(pad_id, t - w.ids.len()));
        stats.tokens_run += w.ids.len() as u64;
    }
    let states = model.hidden_states(&flat, pending.len(), t, blocks)?;
    let d = model.config().d_model;
    for (o, st) in outs.iter_mut().zip(&states) {
        let data: &[f32] = st;
        // Candidate rows of this batch, with their norms.
        let mut rows: Vec<(usize, usize, f32)> = Vec::with_capacity(batch_candidates); // (window, pos, norm)
        for (wi, w) in pending.iter().enumerate() {
            for p in skip..skip + w.keep {
                let r = &data[(wi * t + p) * d..(wi * t + p + 1) * d];
                let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt();
                rows.push((wi, p, norm));
            }
        }
        o.buf.norms.extend(rows.iter().map(|r| r.2));
        let limit = if args.keep_sink {
            f32::INFINITY
        } else {
            OUTLIER_FACTOR * median(&o.buf.norms)
        };
        for (wi, p, norm) in rows {
            // `!(norm <= limit)` also drops NaN rows.
            if !(norm <= limit) {
                o.buf.dropped_outliers += 1;
                continue;
            }
            let w = &pending[wi];
            let r = &data[(wi * t + p) * d..(wi * t + p + 1) * d];
            o.buf.push(r, w.ids[p], w.doc, p);
        }
    }
    *shard_candidates += batch_candidates;
    *last_end = pending.last().map(|w| w.end).unwrap_or(*last_end);
    pending.clear();
    Ok(())
}

/// Writes the buffered rows of every block as the next shard and rewrites the manifests.
#[allow(clippy::too_many_arguments)]
fn flush(
    outs: &mut [BlockOut],
    shard_candidates: usize,
    end: TextPos,
    candidates_end: u64,
    args: &ExtractArgs,
    docs: &[String],
    finished: bool,
    exhausted: bool,
) -> Result<()> {
    for o in outs.iter_mut() {
        if shard_candidates > 0 {
            let index = o.manifest.shards.len();
            let file = shard_name(index);
            let rows = o.buf.rows();
            let entry = ShardEntry {
                file: file.clone(),
                rows,
                first_doc: o.buf.doc_ids.first().map_or(-1, |&x| x as i64),
                last_doc: o.buf.doc_ids.last().map_or(-1, |&x| x as i64),
                end,
                candidates_end,
                dropped_outliers: o.buf.dropped_outliers,
            };
            let meta = shard_metadata(&o.manifest, o.block, args, index);
            o.buf.flush(&o.dir.join(&file), meta)?;
            o.manifest.shards.push(entry);
            o.manifest.tokens_total += rows as u64;
        }
        o.manifest.docs = docs.to_vec();
        o.manifest.tokens_budget = args.tokens;
        o.manifest.complete = finished;
        o.manifest.exhausted = exhausted;
    }
    // Manifests only after every block's shard is on disk.
    for o in outs.iter() {
        o.manifest.write(&o.dir)?;
    }
    Ok(())
}

fn shard_metadata(
    m: &Manifest,
    block: usize,
    args: &ExtractArgs,
    index: usize,
) -> HashMap<String, String> {
    HashMap::from([
        ("model".to_string(), m.model.clone()),
        ("block".to_string(), block.to_string()),
        ("tokenizer".to_string(), m.tokenizer.clone()),
        ("source".to_string(), m.settings.source.join(",")),
        ("window".to_string(), args.window.to_string()),
        ("dtype".to_string(), args.dtype.name().to_string()),
        ("d".to_string(), m.d.to_string()),
        ("keep_sink".to_string(), args.keep_sink.to_string()),
        ("shard".to_string(), index.to_string()),
    ])
}

#[allow(clippy::too_many_arguments)]
fn summary(
    args: &ExtractArgs,
    outs: &[BlockOut],
    d: usize,
    candidates: u64,
    stats: Stats,
    resumed: usize,
    complete: bool,
    exhausted: bool,
) -> ExtractSummary {
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
        candidates_total: candidates,
        tokens_run: stats.tokens_run,
        dropped_sink_rows: stats.dropped_sink,
        resumed_shards: resumed,
        complete,
        exhausted,
        docs: outs[0].manifest.docs.len(),
        seconds: stats.seconds,
        tokens_per_s: if stats.seconds > 0.0 {
            stats.tokens_run as f64 / stats.seconds
        } else {
            0.0
        },
    }
}

fn validate(args: &ExtractArgs) -> Result<()> {
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

/// Creates the block folder and proves it is writable.
fn prepare_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| LlmError::io(dir, format!("cannot create output folder ({e})")))?;
    let probe = dir.join(".write-probe");
    write_file(&probe, b"ok")?;
    std::fs::remove_file(&probe).map_err(|e| LlmError::io(&probe, e))?;
    Ok(())
}

/// Removes temporary files and shard files that the manifest does not list (left by a kill).
fn remove_stale_files(dir: &Path, m: &Manifest) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| LlmError::io(dir, e))?;
    for entry in rd {
        let path = entry.map_err(|e| LlmError::io(dir, e))?.path();
        let name = file_name(&path);
        let temp = name.starts_with('.') && name.ends_with(".tmp");
        let stale_shard = name.starts_with("shard-")
            && name.ends_with(".safetensors")
            && !m.shards.iter().any(|s| s.file == name);
        if temp || stale_shard {
            std::fs::remove_file(&path).map_err(|e| LlmError::io(&path, e))?;
        }
    }
    Ok(())
}

fn check_settings(dir: &Path, old: &RunSettings, new: &RunSettings) -> Result<()> {
    if old == new {
        return Ok(());
    }
    let diff = if old.model != new.model {
        format!("model {} vs {}", old.model, new.model)
    } else if old.source != new.source {
        format!("text {:?} vs {:?}", old.source, new.source)
    } else if old.window != new.window {
        format!("window {} vs {}", old.window, new.window)
    } else if old.dtype != new.dtype {
        format!("dtype {} vs {}", old.dtype.name(), new.dtype.name())
    } else if old.keep_sink != new.keep_sink {
        format!("keep-sink {} vs {}", old.keep_sink, new.keep_sink)
    } else if old.shard_rows != new.shard_rows {
        format!("shard-rows {} vs {}", old.shard_rows, new.shard_rows)
    } else {
        format!("batch {} vs {}", old.batch, new.batch)
    };
    Err(LlmError::Input(format!(
        "{}: holds an extraction with other settings ({diff}); use another --out or delete it",
        Manifest::path(dir).display()
    )))
}

fn progress_bar(args: &ExtractArgs, done: u64) -> indicatif::ProgressBar {
    if args.quiet {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(args.tokens);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} tokens {per_sec} ETA {eta}",
        )
        .expect("static template"),
    );
    pb.set_position(done);
    pb.reset_eta();
    pb
}
