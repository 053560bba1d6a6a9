//! A thin trainer over the CPU reference: data sources and the seeded batch schedule, the training
//! loop with metrics and outputs, validation metrics, synthetic data with known entropy, and a
//! step benchmark.

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod engine;
pub mod eval;
pub mod memory;
pub mod plots;
pub mod run_folder;
pub mod store;
pub mod synth;
pub mod trainer;

pub use config::{ArchKind, TrainConfig};
pub use data::{MemoryRows, RowSource, Schedule};
pub use engine::Device;
pub use eval::{EvalReport, evaluate};
pub use run_folder::TrainedRun;
pub use trainer::{
    RunOptions, TrainError, TrainOutcome, TrainState, init_params, load_init, save_model, train,
};
