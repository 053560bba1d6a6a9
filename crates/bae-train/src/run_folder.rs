//! A finished `bae train` run folder: its config, its weights and the data it was trained on.

use crate::TrainConfig;
use bae_ref::{Arch, Params};
use std::path::{Path, PathBuf};

/// `config.json` + `model.safetensors` of a run folder, checked against each other.
#[derive(Clone, Debug)]
pub struct TrainedRun {
    pub dir: PathBuf,
    pub config: TrainConfig,
    pub arch: Arch,
    pub params: Params<f32>,
}

impl TrainedRun {
    /// Opens `dir`; `d` is read from the model file itself (W_enc is [d, d']).
    pub fn open(dir: &Path) -> Result<TrainedRun, String> {
        if !dir.is_dir() {
            return Err(format!(
                "{}: not a run folder (no such directory)",
                dir.display()
            ));
        }
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| {
            format!(
                "{}: cannot read the run config ({e}); is this a `bae train` folder?",
                cfg_path.display()
            )
        })?;
        let config: TrainConfig = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a bae run config: {e}", cfg_path.display()))?;
        let arch = config
            .arch()
            .map_err(|e| format!("{}: {e}", cfg_path.display()))?;
        let model = dir.join("model.safetensors");
        if !model.is_file() {
            return Err(format!(
                "{}: the run folder has no model (training unfinished? `bae train --resume {}` completes it)",
                model.display(),
                dir.display()
            ));
        }
        let (d, dc) = model_shape(&model)?;
        let params = crate::load_init(&model, d, dc)?;
        Ok(TrainedRun {
            dir: dir.to_path_buf(),
            config,
            arch,
            params,
        })
    }

    pub fn d(&self) -> usize {
        self.params.d
    }

    pub fn d_code(&self) -> usize {
        self.params.d_code
    }

    /// Checks that the rows of `src` (read from `data`) are as wide as the autoencoder's input.
    pub fn check_rows(&self, src: &dyn crate::RowSource, data: &Path) -> Result<(), String> {
        if src.dim() == self.d() {
            return Ok(());
        }
        Err(format!(
            "{}: rows are {} wide, the model {} expects {}",
            data.display(),
            src.dim(),
            self.dir.join("model.safetensors").display(),
            self.d()
        ))
    }

    /// The training data recorded in the config (an extract folder or an activation file).
    pub fn data(&self) -> &Path {
        &self.config.data
    }
}

/// (d, d') from the shape of `W_enc` in a model file.
fn model_shape(path: &Path) -> Result<(usize, usize), String> {
    let (map, _) = bae_io::load_tensors(path).map_err(|e| e.to_string())?;
    let w = map
        .get("W_enc")
        .ok_or_else(|| format!("{}: no tensor W_enc (not a bae model)", path.display()))?;
    match w.shape.as_slice() {
        [d, dc] if *d > 0 && *dc > 0 => Ok((*d, *dc)),
        s => Err(format!(
            "{}: W_enc has shape {s:?}, expected [d, d']",
            path.display()
        )),
    }
}
