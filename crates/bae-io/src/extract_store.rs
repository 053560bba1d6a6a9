//! The one definition of the `bae extract` store: a block folder `OUT/block<B>/` holding
//! safetensors shards and `manifest.json`, the typed manifest (written by the extractor in
//! `bae-llm`, read here), and [`ShardStore`], the reader that opens a folder as one `[n, d]`
//! matrix of memory-mapped rows.
//!
//! Shard `shard-NNNNN.safetensors` holds `activations` `[rows, d]` (F16, BF16 or F32),
//! `doc_ids` `[rows]` and, from `bae extract`, `token_ids` and `positions` `[rows]` (I32).
//! `manifest.json` lists the complete shards in order and where in the text each one ends, so an
//! interrupted extraction can resume. The JSON layout is exactly what serde writes for the types
//! below (fields in declaration order, `to_vec_pretty`); manifests of earlier versions read
//! unchanged.
//!
//! Everything read is untrusted: a manifest that is not valid JSON, lacks a field, has a field of
//! the wrong type, names a shard outside its folder, or disagrees with its shards is refused with
//! a one-line [`IoError`] naming the file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::activations::ActivationFile;
use crate::error::{IoError, Result};

/// The manifest's file name inside a block folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Per-row document index into [`Manifest::docs`] (required in every shard).
pub const DOC_IDS_TENSOR: &str = "doc_ids";
/// Per-row token id (optional: absent in hand-made folders).
pub const TOKEN_IDS_TENSOR: &str = "token_ids";
/// Per-row position in its window (optional, like `token_ids`).
pub const POSITIONS_TENSOR: &str = "positions";

/// Element type of the stored activations (`"f16"`, `"bf16"`, `"f32"` in the JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutDtype {
    F16,
    Bf16,
    F32,
}

impl OutDtype {
    pub fn name(self) -> &'static str {
        match self {
            OutDtype::F16 => "f16",
            OutDtype::Bf16 => "bf16",
            OutDtype::F32 => "f32",
        }
    }
}

/// Where the text stands: the next unread token is `token` of document `doc`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextPos {
    pub doc: usize,
    pub token: usize,
}

/// One complete shard in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// File name inside the block folder (a plain name, checked on reading).
    pub file: String,
    pub rows: usize,
    /// Document ids of the first and last row (-1 for an empty shard).
    pub first_doc: i64,
    pub last_doc: i64,
    /// Text position right after this shard (resume point).
    pub end: TextPos,
    /// Candidate rows (after the position rule, before the outlier rule) up to the end of this
    /// shard, counted from the start: what the --tokens budget counts.
    pub candidates_end: u64,
    /// Rows dropped in this shard by the norm > 10 x median rule.
    pub dropped_outliers: usize,
}

/// Settings that must be equal for a run to continue an existing output folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    pub model: String,
    pub source: Vec<String>,
    pub window: usize,
    pub dtype: OutDtype,
    pub keep_sink: bool,
    pub shard_rows: usize,
    pub batch: usize,
}

/// `OUT/block<B>/manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub model: String,
    pub block: usize,
    pub d: usize,
    pub dtype: OutDtype,
    pub window: usize,
    /// Rows stored in all shards (the sum of their `rows`, checked on reading).
    pub tokens_total: u64,
    pub shards: Vec<ShardEntry>,
    /// True when the run reached its --tokens budget or the end of the text.
    pub complete: bool,
    /// True when the whole text was consumed (a larger budget cannot add rows).
    pub exhausted: bool,
    pub tokens_budget: u64,
    /// Document names; doc_ids in the shards index this list.
    pub docs: Vec<String>,
    pub tokenizer: String,
    pub settings: RunSettings,
}

impl Manifest {
    /// `block_dir/manifest.json`.
    pub fn path(block_dir: &Path) -> PathBuf {
        block_dir.join(MANIFEST_FILE)
    }

    /// Reads and checks `block_dir/manifest.json`; Ok(None) if there is none.
    pub fn read(block_dir: &Path) -> Result<Option<Self>> {
        let path = Self::path(block_dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(IoError::from_io(&path, "cannot read", &e)),
        };
        Self::from_slice(&path, &bytes).map(Some)
    }

    /// Parses and checks manifest bytes; `path` is what errors name.
    pub fn from_slice(path: &Path, bytes: &[u8]) -> Result<Self> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| IoError::new(path, format_args!("not a valid extract manifest: {e}")))?;
        m.check(path)?;
        Ok(m)
    }

    /// The checks serde cannot express: every shard is a plain file name of the folder, and
    /// `tokens_total` is the sum of the shards' rows.
    fn check(&self, path: &Path) -> Result<()> {
        let mut total = 0u64;
        for s in &self.shards {
            if !crate::code_store::plain_name(&s.file) || s.file.contains("..") {
                return Err(IoError::new(
                    path,
                    format_args!(
                        "shard name {:?} is not a plain file name in the folder",
                        s.file
                    ),
                ));
            }
            total = total.saturating_add(s.rows as u64);
        }
        if total != self.tokens_total {
            return Err(IoError::new(
                path,
                format_args!(
                    "tokens_total is {} but the shards hold {total} rows",
                    self.tokens_total
                ),
            ));
        }
        Ok(())
    }

    /// The JSON bytes of `manifest.json` (pretty-printed, no trailing newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a manifest serialises")
    }

    /// Writes `block_dir/manifest.json` atomically.
    pub fn write(&self, block_dir: &Path) -> Result<()> {
        crate::write_atomic(&Self::path(block_dir), &self.to_bytes())
    }
}

/// The block folder holding `manifest.json`: `dir` itself, or its only subfolder that has one.
pub fn block_dir(dir: &Path) -> Result<PathBuf> {
    if Manifest::path(dir).is_file() {
        return Ok(dir.to_path_buf());
    }
    let mut blocks: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| IoError::from_io(dir, "cannot read folder", &e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| Manifest::path(p).is_file())
        .collect();
    blocks.sort();
    match blocks.len() {
        1 => Ok(blocks.remove(0)),
        0 => Err(IoError::new(
            dir,
            "no manifest.json here or in a block folder (not a bae extract folder)",
        )),
        _ => Err(IoError::new(
            dir,
            format_args!(
                "holds several blocks ({}); pass one of them",
                blocks
                    .iter()
                    .map(|b| b.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Reads a shard's per-row integer columns without touching its activations: `doc_ids` is
/// required, `token_ids` and `positions` are optional (empty when absent); each present column
/// must have shape `[rows]`.
pub fn read_columns(path: &Path, rows: usize) -> Result<[Vec<i64>; 3]> {
    let names = [DOC_IDS_TENSOR, TOKEN_IDS_TENSOR, POSITIONS_TENSOR];
    let (tensors, _) = crate::load_tensors_f64_only(path, &names)?;
    let mut cols: [Vec<i64>; 3] = Default::default();
    for (k, name) in names.iter().enumerate() {
        match tensors.get(*name) {
            Some(t) if t.shape == [rows] => cols[k] = t.data.iter().map(|&v| v as i64).collect(),
            Some(t) => {
                return Err(IoError::new(
                    path,
                    format_args!(
                        "{name} has shape {}, expected [{rows}]",
                        crate::error::fmt_shape(&t.shape)
                    ),
                ));
            }
            None if k == 0 => {
                return Err(IoError::new(
                    path,
                    format_args!("missing tensor {DOC_IDS_TENSOR}"),
                ));
            }
            None => {}
        }
    }
    Ok(cols)
}

struct Shard {
    file: ActivationFile,
    /// Document id, token id and position in the window of each row (the shard's i32 columns;
    /// the last two empty when the shard has none).
    doc_ids: Vec<i64>,
    token_ids: Vec<i64>,
    positions: Vec<i64>,
}

/// An extract folder opened as one `[n, d]` matrix: the shards of its manifest, memory-mapped,
/// in order (rows stay on disk, so folders larger than RAM read fine).
pub struct ShardStore {
    dir: PathBuf,
    manifest: Manifest,
    shards: Vec<Shard>,
    /// First global row of each non-empty shard, plus the total at the end.
    starts: Vec<usize>,
}

impl std::fmt::Debug for ShardStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardStore")
            .field("dir", &self.dir)
            .field("rows", &self.n_rows())
            .field("d", &self.dim())
            .field("shards", &self.shards.len())
            .finish()
    }
}

impl ShardStore {
    /// Opens a block folder, or an extract folder with a single block folder. Checks the
    /// manifest (see [`Manifest::from_slice`]) and that every non-empty shard holds
    /// `[rows, d]` activations and a `doc_ids` column of its rows.
    pub fn open(dir: &Path) -> Result<ShardStore> {
        let block = block_dir(dir)?;
        let mpath = Manifest::path(&block);
        let manifest = Manifest::read(&block)?
            .ok_or_else(|| IoError::new(&mpath, "no such file (removed while opening)"))?;
        let d = manifest.d;
        let mut shards = Vec::new();
        let mut starts = vec![0usize];
        for e in &manifest.shards {
            if e.rows == 0 {
                continue;
            }
            let path = block.join(&e.file);
            let file = ActivationFile::open(&path)?;
            if file.n_rows() != e.rows || file.dim() != d {
                return Err(IoError::new(
                    &path,
                    format_args!(
                        "holds [{}, {}], the manifest says [{}, {d}]",
                        file.n_rows(),
                        file.dim(),
                        e.rows
                    ),
                ));
            }
            let [doc_ids, token_ids, positions] = read_columns(&path, e.rows)?;
            starts.push(starts.last().expect("non-empty") + e.rows);
            shards.push(Shard {
                file,
                doc_ids,
                token_ids,
                positions,
            });
        }
        if shards.is_empty() {
            return Err(IoError::new(&mpath, "the manifest lists no rows"));
        }
        Ok(ShardStore {
            dir: block,
            manifest,
            shards,
            starts,
        })
    }

    /// The block folder (the one holding `manifest.json`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folder's manifest, as read and checked by [`ShardStore::open`].
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Rows in all shards.
    pub fn n_rows(&self) -> usize {
        *self.starts.last().expect("non-empty")
    }

    /// Width of a row.
    pub fn dim(&self) -> usize {
        self.manifest.d
    }

    /// (shard, row in that shard) of a global row `< n_rows()`.
    fn locate(&self, row: usize) -> (usize, usize) {
        let s = self.starts.partition_point(|&st| st <= row) - 1;
        (s, row - self.starts[s])
    }

    /// Document id of a row `< n_rows()`.
    pub fn doc_of(&self, row: usize) -> i64 {
        let (s, r) = self.locate(row);
        self.shards[s].doc_ids[r]
    }

    /// Token id and position in its window of a row `< n_rows()`, where the shards store them.
    pub fn token_of(&self, row: usize) -> Option<(u32, i64)> {
        let (s, r) = self.locate(row);
        let sh = &self.shards[s];
        Some((*sh.token_ids.get(r)? as u32, *sh.positions.get(r)?))
    }

    /// Gathers rows as f32: `out[k*d..(k+1)*d]` = row `idx[k]`, with the NaN/Inf check of
    /// [`ActivationFile::read_rows`].
    pub fn gather_rows(&self, idx: &[usize], out: &mut [f32]) -> Result<()> {
        let d = self.dim();
        let want = idx.len().saturating_mul(d);
        if out.len() != want {
            return Err(IoError::new(
                &self.dir,
                format_args!(
                    "output buffer holds {} values but {} rows of dimension {d} need {want}",
                    out.len(),
                    idx.len()
                ),
            ));
        }
        let n = self.n_rows();
        for (&row, dst) in idx.iter().zip(out.chunks_exact_mut(d)) {
            if row >= n {
                return Err(IoError::new(
                    &self.dir,
                    format_args!("row {row} out of range (the folder has {n} rows)"),
                ));
            }
            let (s, r) = self.locate(row);
            self.shards[s].file.read_rows(r, 1, dst)?;
        }
        Ok(())
    }
}
