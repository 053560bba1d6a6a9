//! The set of codes an entropy study reads: activations encoded in memory under a trained BAE, or
//! a code store written by `bae encode`.

use crate::TrainedRun;
use crate::encode::{RowSelection, encode_in_memory, read_codes, select_rows};
use bae_bits::PackedRows;
use bae_io::code_store::{CodeIds, CodeStore};
use std::path::Path;

/// Codes of a set of hidden states with their per-row ids (−1 where unknown).
pub struct CodeSet {
    pub codes: PackedRows,
    pub ids: CodeIds,
    /// where the rows came from, one phrase
    pub from: String,
}

impl CodeSet {
    /// The rows `rows` of the set (in that order), with their ids.
    pub fn subset(&self, rows: &[usize]) -> CodeSet {
        let w = self.codes.words_per_row();
        let mut words = Vec::with_capacity(rows.len() * w);
        let mut ids = CodeIds::default();
        for &r in rows {
            words.extend_from_slice(self.codes.row(r));
            ids.token_ids.push(self.ids.token_ids[r]);
            ids.doc_ids.push(self.ids.doc_ids[r]);
            ids.positions.push(self.ids.positions[r]);
        }
        CodeSet {
            codes: PackedRows::from_words(rows.len(), self.codes.n_cols(), words)
                .expect("same width"),
            ids,
            from: self.from.clone(),
        }
    }
}

/// Encodes `rows` of `data` (default: the run's own activations) under the BAE of `run`.
pub fn encode_set(
    run: &TrainedRun,
    data: Option<&Path>,
    rows: RowSelection,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<CodeSet, String> {
    if !run.arch.is_binary() {
        return Err(format!(
            "{}: the run is a {} autoencoder; entropy studies need the binary codes of a BAE",
            run.dir.join("config.json").display(),
            run.arch.name()
        ));
    }
    let (_, src, range, from) = select_rows(run, data, rows)?;
    let (codes, ids) = encode_in_memory(run, &src, range, 4096, progress)?;
    Ok(CodeSet { codes, ids, from })
}

/// Every row of the code store in `dir` (written by `bae encode`).
pub fn read_set(dir: &Path) -> Result<CodeSet, String> {
    let store = CodeStore::open(dir).map_err(|e| e.to_string())?;
    let n = store.n_rows();
    if n == 0 {
        return Err(format!("{}: the code store holds no rows", dir.display()));
    }
    let codes = read_codes(&store, 0..n)?;
    let ids = store.ids(0..n).map_err(|e| e.to_string())?;
    let complete = if store.is_complete() {
        ""
    } else {
        " (an unfinished encode)"
    };
    Ok(CodeSet {
        codes,
        ids,
        from: format!("{n} stored codes of {}{complete}", dir.display()),
    })
}
