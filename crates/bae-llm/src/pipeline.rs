//! The extraction loop: windows -> batches -> forward pass -> row rules -> shards.

use std::collections::HashMap;

use bae_io::extract_store::{Manifest, ShardEntry, TextPos};

use crate::corpus::DocStream;
use crate::error::{LlmError, Result};
use crate::extract::{ExtractOptions, ExtractProgress, OUTLIER_FACTOR, tokenize_document};
use crate::model::Model;
use crate::shards::{ShardBuffer, median, shard_name, write_manifest};
use crate::tokenizer::Tokenizer;

/// A window of one document waiting for a forward pass.
pub(crate) struct Window {
    doc: usize,
    /// Token ids of the window (at most `window`, fewer at the end of a document).
    ids: Vec<u32>,
    /// Candidate rows to keep: positions skip..skip + keep.
    keep: usize,
    /// Text position after the last token this window consumes.
    end: TextPos,
}

/// Per-block output state.
pub(crate) struct BlockOut {
    pub block: usize,
    pub dir: std::path::PathBuf,
    pub manifest: Manifest,
    pub buf: ShardBuffer,
}

#[derive(Default)]
pub(crate) struct Stats {
    /// Candidate rows so far, all runs (what --tokens counts).
    pub candidates: u64,
    pub tokens_run: u64,
    pub dropped_sink: u64,
    pub seconds: f64,
    pub complete: bool,
    pub exhausted: bool,
}

/// State of one extraction pass.
pub(crate) struct Run<'a> {
    pub args: &'a ExtractOptions,
    pub model: &'a Model,
    pub blocks: &'a [usize],
    /// Leading positions dropped from each window.
    pub skip: usize,
    /// Windows per forward pass.
    pub batch: usize,
    pub pad_id: u32,
    pub outs: Vec<BlockOut>,
    pub pending: Vec<Window>,
    /// Candidate rows in the shard being filled.
    pub shard_candidates: usize,
    /// Text position after the last window run.
    pub last_end: TextPos,
    /// Names of the documents seen; doc ids index this list.
    pub docs: Vec<String>,
    pub stats: Stats,
    pub progress: &'a mut dyn ExtractProgress,
}

impl Run<'_> {
    /// Reads documents from `start` on, cuts windows, runs batches, writes shards.
    pub fn stream(
        &mut self,
        tokenizer: &Tokenizer,
        mut stream: DocStream,
        start: TextPos,
    ) -> Result<()> {
        // Skip the documents that earlier runs finished (their names are still needed).
        while self.docs.len() < start.doc {
            match stream.next_doc()? {
                Some(d) => self.docs.push(d.name),
                None => break,
            }
        }
        let mut offset = start.token;
        let mut exhausted = false;
        while self.stats.candidates < self.args.tokens {
            let Some(doc) = stream.next_doc()? else {
                exhausted = true;
                break;
            };
            self.docs.push(doc.name);
            let ids = tokenize_document(tokenizer, &doc.text);
            self.cut_windows(&ids, offset)?;
            offset = 0;
        }
        if !self.pending.is_empty() {
            self.run_batch()?;
        }
        self.progress.finish();
        if self.stats.candidates == 0 && exhausted {
            let src: Vec<String> = self
                .args
                .text
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            return Err(LlmError::Input(format!(
                "empty text: no window of more than {} tokens in {}",
                self.skip,
                src.join(", ")
            )));
        }
        // Final (possibly short) shard; the manifests say complete.
        self.stats.complete = true;
        self.stats.exhausted = exhausted;
        self.flush()
    }

    /// Queues the windows of the last document in `docs`, from token `offset` on.
    fn cut_windows(&mut self, ids: &[u32], offset: usize) -> Result<()> {
        let (window, skip) = (self.args.window, self.skip);
        let doc = self.docs.len() - 1;
        let mut pos = offset;
        while pos < ids.len() && self.stats.candidates < self.args.tokens {
            let end = (pos + window).min(ids.len());
            let available = (end - pos).saturating_sub(skip);
            let keep = available.min((self.args.tokens - self.stats.candidates) as usize);
            if keep == 0 {
                break; // too short after the position rule: the rest of the document is unused
            }
            // The window consumes its tokens through the last kept position.
            let consumed = if keep < available {
                pos + skip + keep
            } else {
                end
            };
            let end_pos = if consumed >= ids.len() {
                TextPos {
                    doc: doc + 1,
                    token: 0,
                }
            } else {
                TextPos {
                    doc,
                    token: consumed,
                }
            };
            let ids = ids[pos..end].to_vec();
            self.pending.push(Window {
                doc,
                ids,
                keep,
                end: end_pos,
            });
            self.stats.candidates += keep as u64;
            self.stats.dropped_sink += (end - pos).min(skip) as u64;
            pos = end;
            if self.pending.len() == self.batch {
                self.run_batch()?;
            }
        }
        Ok(())
    }

    /// Runs the pending windows through the model and appends their rows to the shard buffers,
    /// writing the current shards first if this batch would not fit in them.
    fn run_batch(&mut self) -> Result<()> {
        let batch_candidates: usize = self.pending.iter().map(|w| w.keep).sum();
        if self.shard_candidates > 0
            && self.shard_candidates + batch_candidates > self.args.shard_rows
        {
            self.flush()?;
        }
        let t = self.args.window;
        let mut flat = Vec::with_capacity(self.pending.len() * t);
        for w in &self.pending {
            flat.extend_from_slice(&w.ids);
            flat.extend(std::iter::repeat_n(self.pad_id, t - w.ids.len()));
            self.stats.tokens_run += w.ids.len() as u64;
        }
        let states = self
            .model
            .hidden_states(&flat, self.pending.len(), t, self.blocks)?;
        let d = self.model.config().d_model;
        for (o, data) in self.outs.iter_mut().zip(&states) {
            let row = |wi: usize, p: usize| &data[(wi * t + p) * d..(wi * t + p + 1) * d];
            // Candidate rows of this batch with their norms: (window, position, norm).
            let mut rows = Vec::with_capacity(batch_candidates);
            for (wi, w) in self.pending.iter().enumerate() {
                for p in self.skip..self.skip + w.keep {
                    let norm = row(wi, p).iter().map(|v| v * v).sum::<f32>().sqrt();
                    rows.push((wi, p, norm));
                }
            }
            o.buf.norms.extend(rows.iter().map(|r| r.2));
            let limit = if self.args.keep_sink {
                f32::INFINITY
            } else {
                OUTLIER_FACTOR * median(&o.buf.norms)
            };
            for (wi, p, norm) in rows {
                // NaN rows fail `is_finite` and are dropped too.
                if !norm.is_finite() || norm > limit {
                    o.buf.dropped_outliers += 1;
                    continue;
                }
                let w = &self.pending[wi];
                o.buf.push(row(wi, p), w.ids[p], w.doc, p);
            }
        }
        self.shard_candidates += batch_candidates;
        self.last_end = self.pending.last().map_or(self.last_end, |w| w.end);
        self.pending.clear();
        self.progress.update(self.stats.candidates);
        Ok(())
    }

    /// Writes the buffered rows of every block as the next shard (if any), then the manifests.
    /// The shard ends at `last_end`, after `stats.candidates - pending` candidate rows.
    fn flush(&mut self) -> Result<()> {
        let pending: u64 = self.pending.iter().map(|w| w.keep as u64).sum();
        let candidates_end = self.stats.candidates - pending;
        for o in self.outs.iter_mut() {
            if self.shard_candidates > 0 {
                let index = o.manifest.shards.len();
                let file = shard_name(index);
                let rows = o.buf.rows();
                let entry = ShardEntry {
                    file: file.clone(),
                    rows,
                    first_doc: o.buf.doc_ids.first().map_or(-1, |&x| x as i64),
                    last_doc: o.buf.doc_ids.last().map_or(-1, |&x| x as i64),
                    end: self.last_end,
                    candidates_end,
                    dropped_outliers: o.buf.dropped_outliers,
                };
                let meta = shard_metadata(&o.manifest, index);
                o.buf.flush(&o.dir.join(&file), meta)?;
                o.manifest.shards.push(entry);
                o.manifest.tokens_total += rows as u64;
            }
            o.manifest.docs = self.docs.clone();
            o.manifest.tokens_budget = self.args.tokens;
            o.manifest.complete = self.stats.complete;
            o.manifest.exhausted = self.stats.exhausted;
        }
        self.shard_candidates = 0;
        // Manifests only after every block's shard is on disk.
        for o in &self.outs {
            write_manifest(&o.manifest, &o.dir)?;
        }
        Ok(())
    }
}

fn shard_metadata(m: &Manifest, index: usize) -> HashMap<String, String> {
    let s = &m.settings;
    HashMap::from([
        ("model".to_string(), m.model.clone()),
        ("block".to_string(), m.block.to_string()),
        ("tokenizer".to_string(), m.tokenizer.clone()),
        ("source".to_string(), s.source.join(",")),
        ("window".to_string(), m.window.to_string()),
        ("dtype".to_string(), m.dtype.name().to_string()),
        ("d".to_string(), m.d.to_string()),
        ("keep_sink".to_string(), s.keep_sink.to_string()),
        ("shard".to_string(), index.to_string()),
    ])
}
