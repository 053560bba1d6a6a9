//! Activation shards (safetensors) and the per-block manifest, both written atomically.
//!
//! Shard `DIR/blockB/shard-NNNNN.safetensors` holds `activations` `[n, d]` (f16/bf16/f32),
//! `token_ids`, `doc_ids`, `positions` `[n]` (i32) and string metadata. `manifest.json` lists the
//! complete shards and where in the text each one ends, so an interrupted run can resume.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::Dtype;
use safetensors::tensor::TensorView;
use serde::{Deserialize, Serialize};

use crate::error::{LlmError, Result};

/// Element type of the stored activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
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

    fn st_dtype(self) -> Dtype {
        match self {
            OutDtype::F16 => Dtype::F16,
            OutDtype::Bf16 => Dtype::BF16,
            OutDtype::F32 => Dtype::F32,
        }
    }

    /// Appends `row` converted to this type, little-endian.
    fn push_row(self, row: &[f32], out: &mut Vec<u8>) {
        match self {
            OutDtype::F16 => {
                for &v in row {
                    out.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
                }
            }
            OutDtype::Bf16 => {
                for &v in row {
                    out.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes());
                }
            }
            OutDtype::F32 => {
                for &v in row {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
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

/// `DIR/blockB/manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub model: String,
    pub block: usize,
    pub d: usize,
    pub dtype: OutDtype,
    pub window: usize,
    /// Rows stored in all shards.
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
    pub fn path(block_dir: &Path) -> PathBuf {
        block_dir.join("manifest.json")
    }

    /// Reads a manifest; Ok(None) if there is none.
    pub fn read(block_dir: &Path) -> Result<Option<Self>> {
        let path = Self::path(block_dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LlmError::io(&path, e)),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            LlmError::io(
                &path,
                format!("unreadable manifest ({e}); remove the folder to start over"),
            )
        })
    }

    pub fn write(&self, block_dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).expect("manifest serialises");
        write_file(&Self::path(block_dir), &bytes)
    }
}

pub fn shard_name(index: usize) -> String {
    format!("shard-{index:05}.safetensors")
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    bae_io::write_atomic(path, bytes).map_err(|e| LlmError::Output(e.to_string()))
}

/// Rows of one block waiting to be written as a shard.
pub struct ShardBuffer {
    dtype: OutDtype,
    d: usize,
    acts: Vec<u8>,
    pub token_ids: Vec<i32>,
    pub doc_ids: Vec<i32>,
    pub positions: Vec<i32>,
    /// Norms of all candidate rows of this shard so far (for the running median).
    pub norms: Vec<f32>,
    pub dropped_outliers: usize,
}

impl ShardBuffer {
    pub fn new(dtype: OutDtype, d: usize) -> Self {
        Self {
            dtype,
            d,
            acts: Vec::new(),
            token_ids: Vec::new(),
            doc_ids: Vec::new(),
            positions: Vec::new(),
            norms: Vec::new(),
            dropped_outliers: 0,
        }
    }

    pub fn rows(&self) -> usize {
        self.token_ids.len()
    }

    pub fn push(&mut self, row: &[f32], token: u32, doc: usize, pos: usize) {
        debug_assert_eq!(row.len(), self.d);
        self.dtype.push_row(row, &mut self.acts);
        self.token_ids.push(token as i32);
        self.doc_ids.push(doc as i32);
        self.positions.push(pos as i32);
    }

    /// Serialises the buffer as a safetensors file (atomically) and empties it.
    pub fn flush(&mut self, path: &Path, metadata: HashMap<String, String>) -> Result<()> {
        let n = self.rows();
        let ints = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let (tok, doc, pos) = (
            ints(&self.token_ids),
            ints(&self.doc_ids),
            ints(&self.positions),
        );
        let tensors = vec![
            (
                "activations",
                view(self.dtype.st_dtype(), vec![n, self.d], &self.acts)?,
            ),
            ("doc_ids", view(Dtype::I32, vec![n], &doc)?),
            ("positions", view(Dtype::I32, vec![n], &pos)?),
            ("token_ids", view(Dtype::I32, vec![n], &tok)?),
        ];
        let bytes = safetensors::serialize(tensors, Some(metadata))
            .map_err(|e| LlmError::Tensor(e.to_string()))?;
        write_file(path, &bytes)?;
        *self = Self::new(self.dtype, self.d);
        Ok(())
    }
}

fn view(dtype: Dtype, shape: Vec<usize>, data: &[u8]) -> Result<TensorView<'_>> {
    TensorView::new(dtype, shape, data).map_err(|e| LlmError::Tensor(e.to_string()))
}

/// Median of a non-empty slice (upper median for even lengths; reorders the copy).
pub fn median(values: &[f32]) -> f32 {
    let mut v = values.to_vec();
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f32::total_cmp);
    *m
}

/// Creates a block folder and proves it is writable.
pub(crate) fn prepare_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| LlmError::io(dir, format!("cannot create output folder ({e})")))?;
    let probe = dir.join(".write-probe");
    write_file(&probe, b"ok")?;
    std::fs::remove_file(&probe).map_err(|e| LlmError::io(&probe, e))?;
    Ok(())
}

/// Removes temporary files and shard files that the manifest does not list (left by a kill).
pub(crate) fn remove_stale_files(dir: &Path, m: &Manifest) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| LlmError::io(dir, e))?;
    for entry in rd {
        let path = entry.map_err(|e| LlmError::io(dir, e))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
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

/// Refuses to continue a folder written with other settings (one line naming the difference).
pub(crate) fn check_settings(dir: &Path, old: &RunSettings, new: &RunSettings) -> Result<()> {
    let diff = if old == new {
        return Ok(());
    } else if old.model != new.model {
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
