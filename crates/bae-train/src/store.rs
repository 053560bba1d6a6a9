//! An activation store over an extract folder (`bae extract` output): many safetensors shards,
//! memory-mapped, read as one matrix. Rows stay on disk (datasets larger than RAM train fine);
//! the train/validation split falls on a document boundary so no document is in both.

use crate::data::RowSource;
use bae_io::ActivationFile;
use std::path::{Path, PathBuf};

struct Shard {
    file: ActivationFile,
    /// document id, token id and position in the window of each row (the shard's i32 columns)
    doc_ids: Vec<i64>,
    token_ids: Vec<i64>,
    positions: Vec<i64>,
}

pub struct ShardStore {
    dir: PathBuf,
    d: usize,
    shards: Vec<Shard>,
    /// first global row of each shard, plus the total at the end
    starts: Vec<usize>,
}

/// The block folder holding `manifest.json`: `dir` itself, or its only `block*` subfolder.
fn block_dir(dir: &Path) -> Result<PathBuf, String> {
    if dir.join("manifest.json").is_file() {
        return Ok(dir.to_path_buf());
    }
    let mut blocks: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot read folder: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("manifest.json").is_file())
        .collect();
    blocks.sort();
    match blocks.len() {
        1 => Ok(blocks.remove(0)),
        0 => Err(format!(
            "{}: no manifest.json here or in a block folder (not a bae extract folder)",
            dir.display()
        )),
        _ => Err(format!(
            "{}: holds several blocks ({}); pass one of them",
            dir.display(),
            blocks
                .iter()
                .map(|b| b.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Read a shard's per-row integer columns without touching its activations:
/// `doc_ids` is required, `token_ids` and `positions` are optional (empty when absent).
fn read_columns(path: &Path, rows: usize) -> Result<[Vec<i64>; 3], String> {
    let names = ["doc_ids", "token_ids", "positions"];
    let (tensors, _) = bae_io::load_tensors_f64_only(path, &names).map_err(|e| e.to_string())?;
    let mut cols: [Vec<i64>; 3] = Default::default();
    for (k, name) in names.iter().enumerate() {
        match tensors.get(*name) {
            Some(t) if t.shape == [rows] => cols[k] = t.data.iter().map(|&v| v as i64).collect(),
            Some(t) => {
                return Err(format!(
                    "{}: {name} has shape {:?}, expected [{rows}]",
                    path.display(),
                    t.shape
                ));
            }
            None if k == 0 => return Err(format!("{}: missing tensor doc_ids", path.display())),
            None => {}
        }
    }
    Ok(cols)
}

impl ShardStore {
    pub fn open(dir: &Path) -> Result<ShardStore, String> {
        let block = block_dir(dir)?;
        let mpath = block.join("manifest.json");
        let text =
            std::fs::read_to_string(&mpath).map_err(|e| format!("{}: {e}", mpath.display()))?;
        let m: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not valid JSON: {e}", mpath.display()))?;
        let d = m["d"]
            .as_u64()
            .ok_or_else(|| format!("{}: no field d", mpath.display()))? as usize;
        let entries = m["shards"]
            .as_array()
            .ok_or_else(|| format!("{}: no shards list", mpath.display()))?;
        let mut shards = Vec::new();
        let mut starts = vec![0usize];
        for e in entries {
            let name = e["file"]
                .as_str()
                .ok_or_else(|| format!("{}: a shard has no file name", mpath.display()))?;
            if name.contains('/') || name.contains("..") || name.chars().any(char::is_control) {
                return Err(format!(
                    "{}: shard name {:?} is not a plain file name in the folder",
                    mpath.display(),
                    name
                ));
            }
            let rows = e["rows"]
                .as_u64()
                .ok_or_else(|| format!("{}: shard {name} has no rows", mpath.display()))?;
            if rows == 0 {
                continue;
            }
            let path = block.join(name);
            let file = ActivationFile::open(&path).map_err(|e| e.to_string())?;
            if file.n_rows() != rows as usize || file.dim() != d {
                return Err(format!(
                    "{}: holds [{}, {}], the manifest says [{rows}, {d}]",
                    path.display(),
                    file.n_rows(),
                    file.dim()
                ));
            }
            let [doc_ids, token_ids, positions] = read_columns(&path, rows as usize)?;
            starts.push(starts.last().expect("non-empty") + rows as usize);
            shards.push(Shard {
                file,
                doc_ids,
                token_ids,
                positions,
            });
        }
        if shards.is_empty() {
            return Err(format!("{}: the manifest lists no rows", mpath.display()));
        }
        Ok(ShardStore {
            dir: block,
            d,
            shards,
            starts,
        })
    }

    fn locate(&self, row: usize) -> (usize, usize) {
        let s = self.starts.partition_point(|&st| st <= row) - 1;
        (s, row - self.starts[s])
    }

    pub fn doc_of(&self, row: usize) -> i64 {
        let (s, r) = self.locate(row);
        self.shards[s].doc_ids[r]
    }

    /// Token id and position in its window of a row, where the shards store them.
    pub fn token_of(&self, row: usize) -> Option<(u32, i64)> {
        let (s, r) = self.locate(row);
        let sh = &self.shards[s];
        Some((*sh.token_ids.get(r)? as u32, *sh.positions.get(r)?))
    }
}

impl RowSource for ShardStore {
    fn n_rows(&self) -> usize {
        *self.starts.last().expect("non-empty")
    }
    fn dim(&self) -> usize {
        self.d
    }
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
    fn gather(&self, idx: &[usize], out: &mut [f32]) -> Result<(), String> {
        let d = self.d;
        for (k, &row) in idx.iter().enumerate() {
            if row >= self.n_rows() {
                return Err(format!("{}: row {row} out of range", self.dir.display()));
            }
            let (s, r) = self.locate(row);
            self.shards[s]
                .file
                .read_rows(r, 1, &mut out[k * d..(k + 1) * d])
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
    /// Move the sequential split point back to the first row of its document.
    fn train_rows(&self, val_split: f64) -> usize {
        let n = self.n_rows();
        let mut split = n - (n as f64 * val_split).round() as usize;
        if split == 0 || split >= n {
            return split;
        }
        let doc = self.doc_of(split);
        while split > 0 && self.doc_of(split - 1) == doc {
            split -= 1;
        }
        if split == 0 {
            // a single document: fall back to the row split
            n - (n as f64 * val_split).round() as usize
        } else {
            split
        }
    }
}

/// Open `--data`: an extract folder (shards + manifest) or a single `.safetensors` / `.npy` file.
pub fn open_source(path: &Path) -> Result<Box<dyn RowSource>, String> {
    if path.is_dir() {
        Ok(Box::new(ShardStore::open(path)?))
    } else {
        Ok(Box::new(
            ActivationFile::open(path).map_err(|e| e.to_string())?,
        ))
    }
}
