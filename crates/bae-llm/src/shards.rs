//! Writing the extract store: activation shards (safetensors) and the per-block manifest, both
//! written atomically. The format itself (the typed manifest, the shard tensor names) is defined
//! once in [`bae_io::extract_store`], which also reads it back.
//!
//! Shard `DIR/blockB/shard-NNNNN.safetensors` holds `activations` `[n, d]` (f16/bf16/f32),
//! `token_ids`, `doc_ids`, `positions` `[n]` (i32) and string metadata.

use std::collections::HashMap;
use std::path::Path;

use bae_io::ACTIVATIONS_TENSOR;
use bae_io::extract_store::{
    DOC_IDS_TENSOR, Manifest, OutDtype, POSITIONS_TENSOR, RunSettings, TOKEN_IDS_TENSOR,
};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

use crate::error::{LlmError, Result};

/// safetensors element type of the stored activations.
fn st_dtype(dtype: OutDtype) -> Dtype {
    match dtype {
        OutDtype::F16 => Dtype::F16,
        OutDtype::Bf16 => Dtype::BF16,
        OutDtype::F32 => Dtype::F32,
    }
}

/// Appends `row` converted to `dtype`, little-endian.
fn push_row(dtype: OutDtype, row: &[f32], out: &mut Vec<u8>) {
    match dtype {
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

/// Reads a block folder's manifest for resuming; Ok(None) if there is none.
pub(crate) fn read_manifest(block_dir: &Path) -> Result<Option<Manifest>> {
    Manifest::read(block_dir)
        .map_err(|e| LlmError::Output(format!("{e}; remove the folder to start over")))
}

/// Writes a block folder's manifest atomically.
pub(crate) fn write_manifest(m: &Manifest, block_dir: &Path) -> Result<()> {
    m.write(block_dir)
        .map_err(|e| LlmError::Output(e.to_string()))
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
        push_row(self.dtype, row, &mut self.acts);
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
                ACTIVATIONS_TENSOR,
                view(st_dtype(self.dtype), vec![n, self.d], &self.acts)?,
            ),
            (DOC_IDS_TENSOR, view(Dtype::I32, vec![n], &doc)?),
            (POSITIONS_TENSOR, view(Dtype::I32, vec![n], &pos)?),
            (TOKEN_IDS_TENSOR, view(Dtype::I32, vec![n], &tok)?),
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
