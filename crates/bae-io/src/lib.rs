//! File input and output for the Binary Autoencoder trainer.
//!
//! * [`ActivationFile`]: a memory-mapped `[n, d]` activation matrix from a `.safetensors`
//!   or `.npy` file (F16, BF16, F32, F64), read as f32 rows with NaN/Inf checks.
//! * [`write_activations`]: the inverse, for tests, tools and data preparation.
//! * [`load_tensors`], [`load_tensors_f64`], [`take_tensor`], [`save_tensors`]: named
//!   tensors (parameters, checkpoints, golden vectors) in safetensors files.
//! * [`write_atomic`]: crash-safe file replacement; [`JsonlWriter`]: metrics logs.
//! * [`extract_store`]: the `bae extract` folder format (typed `manifest.json`, shard tensors)
//!   and [`ShardStore`], its reader.
//!
//! All inputs are treated as untrusted. Every declared size (header lengths, shapes,
//! offsets) is checked with overflow-safe arithmetic against the real file length before
//! anything is allocated or read, so malformed files produce an error and never a panic,
//! an out-of-bounds read, a huge allocation or a hang. Every error is an [`IoError`] whose
//! `Display` is a single line `"<path>: <problem>"`.

mod activations;
mod atomic;
pub mod code_store;
mod dtype;
mod error;
mod export_format;
pub mod extract_store;
mod folder_lock;
mod jsonl;
mod npy;
mod safetensors_file;
pub mod store_writer;
mod tensors;

pub use activations::{ACTIVATIONS_TENSOR, ActivationFile, FileFormat, write_activations};
pub use atomic::{write_atomic, write_atomic_with};
pub use code_store::{CodeIds, CodeStore, CodeStoreWriter};
pub use dtype::{DType, first_non_finite, first_non_finite_f64};
pub use error::{IoError, Result};
pub use export_format::{
    ExportMarker, SAELENS_LAYOUT_VERSION, SaeArchitecture, SaeLensCfg, SaeLensMetadata,
    export_files, export_tensors, reference_tensors,
};
pub use extract_store::ShardStore;
pub use folder_lock::{FolderLock, LOCK_FILE};
pub use jsonl::JsonlWriter;
pub use safetensors_file::{TensorLayout, tensor_layout};
pub use store_writer::{StoreInfo, StoreWriter};
pub use tensors::{
    Tensor, Tensor64, TensorFile, load_tensors, load_tensors_f64, load_tensors_f64_only,
    save_tensors, save_tensors_f64, take_tensor, take_tensor_f64,
};
