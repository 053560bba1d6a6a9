//! What a researcher does with a trained autoencoder, kept out of the trainer: load a run folder,
//! evaluate it (reconstruction, feature statistics, downstream fidelity on the LLM), compare
//! architectures trained on the same rows, and export to other tools' formats.

pub mod compare;
pub mod encode;
pub mod entropy;
pub mod eval;
pub mod export;
pub mod features;
pub mod interpret;
pub mod plots;
pub mod run;
pub mod sweep;

pub use run::TrainedRun;
