//! A finished `bae train` run folder ([`TrainedRun`], defined beside the trainer) and the LLM it
//! was extracted from.

pub use bae_train::TrainedRun;
use std::path::Path;

/// Opens the LLM GGUF `model` and checks that its width is the autoencoder's; `hint` ends the
/// missing-file line (how to get the file, or how to skip the part that needs it).
pub fn open_llm(run: &TrainedRun, model: &Path, hint: &str) -> Result<bae_llm::Gguf, String> {
    if !model.is_file() {
        return Err(format!("{}: no such model file ({hint})", model.display()));
    }
    let gguf = bae_llm::Gguf::open(model).map_err(|e| e.to_string())?;
    let width = gguf.llama_config().map_err(|e| e.to_string())?.d_model;
    if width != run.d() {
        return Err(format!(
            "{}: the model is {width} wide, the autoencoder's activations are {}",
            model.display(),
            run.d()
        ));
    }
    Ok(gguf)
}
