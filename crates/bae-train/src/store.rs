//! Training rows from an extract folder (`bae extract` output): [`bae_io::ShardStore`] reads the
//! shards as one memory-mapped matrix; here it becomes a [`RowSource`] whose train/validation
//! split falls on a document boundary, so no document is in both.

use crate::data::RowSource;
use bae_io::{ActivationFile, ShardStore};
use std::path::Path;

impl RowSource for ShardStore {
    fn n_rows(&self) -> usize {
        ShardStore::n_rows(self)
    }
    fn dim(&self) -> usize {
        ShardStore::dim(self)
    }
    fn describe(&self) -> String {
        self.dir().display().to_string()
    }
    fn gather(&self, idx: &[usize], out: &mut [f32]) -> Result<(), String> {
        self.gather_rows(idx, out).map_err(|e| e.to_string())
    }
    /// Move the sequential split point back to the first row of its document.
    fn train_rows(&self, val_split: f64) -> usize {
        let n = ShardStore::n_rows(self);
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
        Ok(Box::new(ShardStore::open(path).map_err(|e| e.to_string())?))
    } else {
        Ok(Box::new(
            ActivationFile::open(path).map_err(|e| e.to_string())?,
        ))
    }
}
