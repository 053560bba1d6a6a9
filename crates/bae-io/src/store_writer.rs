//! Appending shards to an extract store from outside `bae extract` (the Python package's
//! `bae.write_store`, for hidden states taken from any model): the same shard files and typed
//! manifest that `bae extract` writes and `ShardStore` reads. Each shard, then the manifest, is
//! written atomically, so an interrupted writer leaves the store of its complete shards, which a
//! later writer continues; the folder lock keeps a second writer out.

use crate::extract_store::{
    DOC_IDS_TENSOR, Manifest, OutDtype, POSITIONS_TENSOR, RunSettings, ShardEntry,
    TOKEN_IDS_TENSOR, TextPos,
};
use crate::safetensors_file::{EntrySpec, build_header};
use crate::{ACTIVATIONS_TENSOR, FolderLock, IoError, Result, write_atomic};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the store says about where its rows came from.
#[derive(Clone, Debug)]
pub struct StoreInfo {
    /// the model's name (e.g. "gpt2", a Hugging Face id)
    pub model: String,
    /// the layer the hidden states are from
    pub block: usize,
    pub tokenizer: String,
    /// context window of the forward passes (0: unknown)
    pub window: usize,
    /// document names, indexed by the doc ids
    pub docs: Vec<String>,
    /// written into every shard's safetensors metadata
    pub metadata: BTreeMap<String, String>,
}

/// Appends shards to one block folder.
pub struct StoreWriter {
    dir: PathBuf,
    manifest: Manifest,
    metadata: BTreeMap<String, String>,
    _lock: FolderLock,
}

/// Name of shard `k`, as `bae extract` names them.
pub fn shard_file_name(k: usize) -> String {
    format!("shard-{k:05}.safetensors")
}

impl StoreWriter {
    /// Opens (creating) the block folder `dir` for rows of width `d`. A folder that already
    /// holds a store continues it when its width and dtype are these, else it is refused.
    pub fn open(dir: &Path, d: usize, dtype: OutDtype, info: StoreInfo) -> Result<StoreWriter> {
        if d == 0 {
            return Err(IoError::new(dir, "rows of width 0 cannot be stored"));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| IoError::from_io(dir, "cannot create folder", &e))?;
        let lock = FolderLock::acquire(dir)?;
        let manifest = match Manifest::read(dir)? {
            Some(m) if m.d != d || m.dtype != dtype => {
                return Err(IoError::new(
                    Manifest::path(dir),
                    format_args!(
                        "the store holds rows of width {} as {}; these are {d} wide as {} (use another folder)",
                        m.d,
                        m.dtype.name(),
                        dtype.name()
                    ),
                ));
            }
            Some(mut m) => {
                m.complete = false;
                m
            }
            None => Manifest {
                model: info.model.clone(),
                block: info.block,
                d,
                dtype,
                window: info.window,
                tokens_total: 0,
                shards: Vec::new(),
                complete: false,
                exhausted: false,
                tokens_budget: 0,
                docs: info.docs.clone(),
                tokenizer: info.tokenizer.clone(),
                settings: RunSettings {
                    model: info.model.clone(),
                    source: vec!["bae.write_store".into()],
                    window: info.window,
                    dtype,
                    keep_sink: true,
                    shard_rows: 0,
                    batch: 0,
                },
            },
        };
        Ok(StoreWriter {
            dir: dir.to_path_buf(),
            manifest,
            metadata: info.metadata,
            _lock: lock,
        })
    }

    /// Rows stored so far (earlier writers' included).
    pub fn n_rows(&self) -> u64 {
        self.manifest.tokens_total
    }

    /// Writes `acts` (`n x d`, row-major) and its id columns (`n` each) as the next shard, then
    /// the manifest.
    pub fn append(
        &mut self,
        acts: &[f32],
        token_ids: &[i32],
        doc_ids: &[i32],
        positions: &[i32],
    ) -> Result<()> {
        let d = self.manifest.d;
        let n = doc_ids.len();
        let file = shard_file_name(self.manifest.shards.len());
        let path = self.dir.join(&file);
        if acts.len() != n * d || token_ids.len() != n || positions.len() != n {
            return Err(IoError::new(
                &path,
                format_args!(
                    "{} values for {n} rows of width {d}, {} token ids, {} positions",
                    acts.len(),
                    token_ids.len(),
                    positions.len()
                ),
            ));
        }
        if n == 0 {
            return Ok(());
        }
        let dtype = self.manifest.dtype;
        let (name, elem) = match dtype {
            OutDtype::F16 => ("F16", 2),
            OutDtype::Bf16 => ("BF16", 2),
            OutDtype::F32 => ("F32", 4),
        };
        let shape2 = [n, d];
        let shape1 = [n];
        // tensors in name order, as a safetensors writer lays them out
        let specs = [
            EntrySpec {
                name: ACTIVATIONS_TENSOR,
                dtype: name,
                shape: &shape2,
                n_bytes: n * d * elem,
            },
            EntrySpec {
                name: DOC_IDS_TENSOR,
                dtype: "I32",
                shape: &shape1,
                n_bytes: 4 * n,
            },
            EntrySpec {
                name: POSITIONS_TENSOR,
                dtype: "I32",
                shape: &shape1,
                n_bytes: 4 * n,
            },
            EntrySpec {
                name: TOKEN_IDS_TENSOR,
                dtype: "I32",
                shape: &shape1,
                n_bytes: 4 * n,
            },
        ];
        let mut bytes = build_header(&path, &specs, &self.metadata)?;
        bytes.reserve(n * d * elem + 12 * n);
        for &v in acts {
            match dtype {
                OutDtype::F16 => bytes.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
                OutDtype::Bf16 => bytes.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
                OutDtype::F32 => bytes.extend_from_slice(&v.to_le_bytes()),
            }
        }
        for col in [doc_ids, positions, token_ids] {
            for &v in col {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        write_atomic(&path, &bytes)?;
        let m = &mut self.manifest;
        m.tokens_total += n as u64;
        m.shards.push(ShardEntry {
            file,
            rows: n,
            first_doc: doc_ids[0] as i64,
            last_doc: doc_ids[n - 1] as i64,
            end: TextPos::default(),
            candidates_end: m.tokens_total,
            dropped_outliers: 0,
        });
        m.tokens_budget = m.tokens_total;
        m.write(&self.dir)
    }

    /// Marks the store complete (what `bae extract` does when it reaches its budget).
    pub fn finish(&mut self) -> Result<()> {
        self.manifest.complete = true;
        self.manifest.write(&self.dir)
    }
}
