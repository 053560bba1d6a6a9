//! `bae encode`: run a trained BAE over a corpus once and store its binary codes bit-packed
//! (`bae_io::code_store`), so that entropy studies over many subsets read `d'/8` bytes per row
//! instead of the `2·d` bytes of f16 activations and a forward pass.
//!
//! Rows are encoded in batches of `batch` and written in shards of `shard_rows`: memory holds one
//! batch of activations and pre-activations plus one shard of codes. An interrupted encode resumes
//! after its last complete shard (same run, data, rows and shard size; anything else is refused in
//! one line) and ends with the same files as an uninterrupted one.

use crate::TrainedRun;
use crate::eval::same_path;
use bae_bits::PackedRows;
use bae_io::ShardStore;
use bae_io::code_store::{CodeIds, CodeStore, CodeStoreWriter, checksum};
use bae_train::RowSource;
use serde::Serialize;
use serde_json::json;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Which rows of the data to encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowSelection {
    /// every row
    All,
    /// the run's validation split (on its own data; every row of other `--data`, as `bae eval`)
    HeldOut,
}

impl RowSelection {
    pub fn name(self) -> &'static str {
        match self {
            RowSelection::All => "all",
            RowSelection::HeldOut => "held-out",
        }
    }
}

#[derive(Clone, Debug)]
pub struct EncodeOptions {
    /// run folder written by `bae train` (a BAE)
    pub run: PathBuf,
    /// activations to encode (extract folder or activation file); None: the run's own data
    pub data: Option<PathBuf>,
    /// the code-store folder to write (or to continue)
    pub out: PathBuf,
    pub rows: RowSelection,
    /// rows per shard file
    pub shard_rows: usize,
    /// rows per forward pass
    pub batch: usize,
    /// stop (incomplete, resumable) after writing this many shards in this call
    pub stop_after_shards: Option<usize>,
}

impl EncodeOptions {
    pub fn new(run: &Path, out: &Path) -> EncodeOptions {
        EncodeOptions {
            run: run.to_path_buf(),
            data: None,
            out: out.to_path_buf(),
            rows: RowSelection::All,
            shard_rows: DEFAULT_SHARD_ROWS,
            batch: 4096,
            stop_after_shards: None,
        }
    }
}

pub const DEFAULT_SHARD_ROWS: usize = 65_536;

#[derive(Clone, Debug, Serialize)]
pub struct EncodeSummary {
    pub out: String,
    /// which rows: "all n rows of DATA" or "validation split (rows a..b of n)"
    pub rows_from: String,
    /// rows in the store now
    pub rows: usize,
    /// rows the store will hold when complete
    pub rows_total: usize,
    /// rows found already there (a resumed encode)
    pub rows_resumed: usize,
    pub complete: bool,
    pub shards: usize,
    pub d: usize,
    pub n_bits: usize,
    /// the code words alone: rows · ceil(d'/64) · 8
    pub code_bytes: u64,
    /// on disk: shard files (codes + 12 bytes of ids a row + headers) and the index
    pub bytes: u64,
    /// what the same rows take as f16 activations: rows · d · 2
    pub f16_activation_bytes: u64,
    /// code_bytes / f16_activation_bytes (1/4 at d' = 4d)
    pub ratio: f64,
    /// bytes / f16_activation_bytes
    pub disk_ratio: f64,
}

impl EncodeSummary {
    /// One line: rows, MB, ratio.
    pub fn line(&self) -> String {
        format!(
            "{} rows x {} bits in {} ({} shards, {:.1} MB of codes, {:.1} MB on disk with ids{}): codes {:.4} (on disk {:.4}) of the {:.1} MB of f16 activations (1/{:.1}); rows: {}",
            self.rows,
            self.n_bits,
            self.out,
            self.shards,
            self.code_bytes as f64 / 1e6,
            self.bytes as f64 / 1e6,
            if self.complete {
                String::new()
            } else {
                format!(", incomplete: {} of {} rows", self.rows, self.rows_total)
            },
            self.ratio,
            self.disk_ratio,
            self.f16_activation_bytes as f64 / 1e6,
            1.0 / self.ratio.max(f64::MIN_POSITIVE),
            self.rows_from
        )
    }
}

/// The rows to read: an extract folder (with ids) or a plain activation file (ids −1).
pub(crate) enum Source {
    Store(Box<ShardStore>),
    Other(Box<dyn RowSource>),
}

impl Source {
    pub(crate) fn rows(&self) -> &dyn RowSource {
        match self {
            Source::Store(s) => s.as_ref(),
            Source::Other(s) => s.as_ref(),
        }
    }

    pub(crate) fn ids(&self, rows: Range<usize>, out: &mut CodeIds) {
        for r in rows {
            let (tok, doc, pos) = match self {
                Source::Store(s) => {
                    let doc = i32::try_from(s.doc_of(r)).unwrap_or(-1);
                    match s.token_of(r) {
                        Some((t, p)) => (
                            i32::try_from(t).unwrap_or(-1),
                            doc,
                            i32::try_from(p).unwrap_or(-1),
                        ),
                        None => (-1, doc, -1),
                    }
                }
                Source::Other(_) => (-1, -1, -1),
            };
            out.token_ids.push(tok);
            out.doc_ids.push(doc);
            out.positions.push(pos);
        }
    }
}

/// The rows a command reads: `data` (default: the run's own activations) checked against the run's
/// width, and the range `rows` selects, with a phrase naming it.
pub(crate) fn select_rows(
    run: &TrainedRun,
    data: Option<&Path>,
    rows: RowSelection,
) -> Result<(PathBuf, Source, Range<usize>, String), String> {
    let data = data
        .map(Path::to_path_buf)
        .unwrap_or_else(|| run.data().to_path_buf());
    let src = if data.is_dir() {
        Source::Store(Box::new(
            ShardStore::open(&data).map_err(|e| e.to_string())?,
        ))
    } else {
        Source::Other(bae_train::store::open_source(&data)?)
    };
    let rs = src.rows();
    run.check_rows(rs, &data)?;
    let n = rs.n_rows();
    let range = match rows {
        RowSelection::HeldOut if same_path(&data, run.data()) => {
            let split = rs.train_rows(run.config.val_split);
            if split >= n {
                return Err(format!(
                    "{}: the run trained on every row (--val-split {}): there are no held-out rows; use --rows all or --data",
                    run.dir.join("config.json").display(),
                    run.config.val_split
                ));
            }
            split..n
        }
        _ => 0..n,
    };
    let rows_from = if range.len() == n {
        format!("all {n} rows of {}", data.display())
    } else {
        format!(
            "validation split (rows {}..{} of {n}) of {}",
            range.start,
            range.end,
            data.display()
        )
    };
    Ok((data, src, range, rows_from))
}

fn canonical(p: &Path) -> String {
    p.canonicalize()
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// Encodes the rows of `opts` into `opts.out` under its folder lock, continuing an interrupted
/// encode; `progress(done, total)` after every batch.
pub fn encode(
    opts: &EncodeOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EncodeSummary, String> {
    if opts.shard_rows == 0 || opts.batch == 0 {
        return Err("--shard-rows and the batch size must be at least 1".into());
    }
    let run = TrainedRun::open(&opts.run)?;
    if !run.arch.is_binary() {
        return Err(format!(
            "{}: the run is a {} autoencoder; `bae encode` stores binary codes of a BAE only",
            run.dir.join("config.json").display(),
            run.arch.name()
        ));
    }
    let (data, src, range, rows_from) = select_rows(&run, opts.data.as_deref(), opts.rows)?;
    let model_file = run.dir.join("model.safetensors");
    let model_bytes = std::fs::read(&model_file)
        .map_err(|e| format!("{}: cannot read: {e}", model_file.display()))?;
    let (llm, block) = match &src {
        Source::Store(s) => (
            Some(json!(s.manifest().model)),
            Some(json!(s.manifest().block)),
        ),
        Source::Other(_) => (None, None),
    };
    let settings = json!({
        "run": canonical(&run.dir),
        "arch": run.arch.name(),
        "model_check": format!("{:016x}", checksum(&model_bytes)),
        "run_config": serde_json::to_value(&run.config).map_err(|e| e.to_string())?,
        "d": run.d(),
        "source": canonical(&data),
        "source_rows": [range.start, range.end],
        "rows": opts.rows.name(),
        "model": llm.unwrap_or(serde_json::Value::Null),
        "block": block.unwrap_or(serde_json::Value::Null),
        "shard_rows": opts.shard_rows,
    });
    drop(model_bytes);
    let _lock = bae_io::FolderLock::acquire(&opts.out).map_err(|e| e.to_string())?;
    let dc = run.d_code();
    let d = run.d();
    let mut w = CodeStoreWriter::open(&opts.out, dc, settings).map_err(|e| e.to_string())?;
    let total = range.len();
    let resumed = w.n_rows();
    if resumed > total {
        return Err(format!(
            "{}: holds {resumed} rows, more than the {total} to encode",
            opts.out.join(bae_io::code_store::CODES_INDEX).display()
        ));
    }
    let mut row = range.start + resumed;
    let mut written = 0usize;
    progress(resumed, total);
    while row < range.end && !w.is_complete() {
        if opts.stop_after_shards.is_some_and(|k| written >= k) {
            break;
        }
        let end = (row + opts.shard_rows).min(range.end);
        let done = row - range.start;
        let (codes, ids) = encode_in_memory(&run, &src, row..end, opts.batch, &mut |k, _| {
            progress(done + k, total)
        })?;
        let words = codes.into_words();
        w.append(&words, &ids).map_err(|e| e.to_string())?;
        written += 1;
        row = end;
    }
    if w.n_rows() == total && !w.is_complete() {
        w.finish().map_err(|e| e.to_string())?;
    }
    let rows = w.n_rows();
    let bytes = w.bytes();
    let code_bytes = w.code_bytes();
    let f16 = rows as u64 * d as u64 * 2;
    let ratio = |b: u64| if f16 == 0 { 0.0 } else { b as f64 / f16 as f64 };
    Ok(EncodeSummary {
        out: opts.out.display().to_string(),
        rows_from,
        rows,
        rows_total: total,
        rows_resumed: resumed,
        complete: w.is_complete(),
        shards: w.n_shards(),
        d,
        n_bits: dc,
        code_bytes,
        bytes,
        f16_activation_bytes: f16,
        ratio: ratio(code_bytes),
        disk_ratio: ratio(bytes),
    })
}

/// Rows `rows` of a code store as a bit matrix.
pub fn read_codes(store: &CodeStore, rows: Range<usize>) -> Result<PackedRows, String> {
    let n = rows.len();
    let words = store.rows(rows).map_err(|e| e.to_string())?;
    PackedRows::from_words(n, store.n_bits(), words)
        .map_err(|e| format!("{}: {e}", store.dir().display()))
}

/// The codes and ids of `range` of `src` under the BAE of `run`, in memory (d'/8 bytes a row),
/// encoded in batches of `batch` rows; `progress(done, total)` after every batch.
pub(crate) fn encode_in_memory(
    run: &TrainedRun,
    src: &Source,
    range: Range<usize>,
    batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(PackedRows, CodeIds), String> {
    let (d, dc) = (run.d(), run.d_code());
    let rs = src.rows();
    let total = range.len();
    let mut words: Vec<u64> = Vec::with_capacity(total * dc.div_ceil(64));
    let mut ids = CodeIds::default();
    let mut x = vec![0f32; batch.min(total.max(1)) * d];
    let mut b = range.start;
    while b < range.end {
        let e = (b + batch).min(range.end);
        let m = e - b;
        let idx: Vec<usize> = (b..e).collect();
        rs.gather(&idx, &mut x[..m * d])?;
        let z = bae_ref::encode_pre(&run.params, &x[..m * d], m);
        words.extend_from_slice(PackedRows::encode_positive(&z, m, dc).words());
        src.ids(b..e, &mut ids);
        b = e;
        progress(b - range.start, total);
    }
    let codes = PackedRows::from_words(total, dc, words).map_err(|e| e.to_string())?;
    Ok((codes, ids))
}
