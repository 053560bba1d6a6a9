//! Checkpoints: the whole `TrainState` (weights, Adam moments, step counts) in one safetensors
//! file, written atomically (temp file, fsync, rename) so that a complete checkpoint exists at every
//! moment. The batch order needs no saved RNG state: it is a function of (seed, step).

use crate::config::TrainConfig;
use crate::trainer::TrainState;
use bae_ref::{Adam, PARAM_NAMES, Params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "bae-checkpoint-1";
pub const FILE: &str = "checkpoint.safetensors";

pub fn path(out: &Path) -> PathBuf {
    out.join(FILE)
}

/// When to write checkpoints: every N steps and/or every M minutes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Every {
    pub steps: Option<u64>,
    pub minutes: Option<f64>,
}

impl Every {
    /// "500" (steps), "500s"/"500steps", or "10m"/"10min" (minutes).
    pub fn parse(text: &str) -> Result<Every, String> {
        let t = text.trim();
        let bad =
            || format!("--checkpoint-every: expected N (steps) or Nm (minutes), got '{text}'");
        if let Some(m) = t.strip_suffix("min").or_else(|| t.strip_suffix('m')) {
            let minutes: f64 = m.trim().parse().map_err(|_| bad())?;
            if minutes.is_nan() || minutes <= 0.0 {
                return Err(bad());
            }
            return Ok(Every {
                steps: None,
                minutes: Some(minutes),
            });
        }
        let s = t
            .strip_suffix("steps")
            .or_else(|| t.strip_suffix('s'))
            .unwrap_or(t);
        let steps: u64 = s.trim().parse().map_err(|_| bad())?;
        if steps == 0 {
            return Err(bad());
        }
        Ok(Every {
            steps: Some(steps),
            minutes: None,
        })
    }
}

pub fn save(out: &Path, state: &TrainState) -> Result<(), String> {
    let shapes = state.params.shapes();
    let names: Vec<String> = PARAM_NAMES
        .iter()
        .flat_map(|n| [n.to_string(), format!("adam.m.{n}"), format!("adam.v.{n}")])
        .collect();
    let mut tensors: Vec<(&str, &[usize], &[f32])> = Vec::new();
    let p = state.params.tensors();
    let m = state.adam.m.tensors();
    let v = state.adam.v.tensors();
    for i in 0..4 {
        tensors.push((&names[3 * i], &shapes[i], p[i]));
        tensors.push((&names[3 * i + 1], &shapes[i], m[i]));
        tensors.push((&names[3 * i + 2], &shapes[i], v[i]));
    }
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("step".to_string(), state.step.to_string());
    meta.insert("adam_t".to_string(), state.adam.t.to_string());
    let target = path(out);
    // The write is atomic: on failure the previous checkpoint file is untouched.
    bae_io::save_tensors(&target, &tensors, &meta).map_err(|e| e.to_string())
}

fn meta_u64(meta: &BTreeMap<String, String>, file: &Path, key: &str) -> Result<u64, String> {
    meta.get(key).and_then(|v| v.parse().ok()).ok_or_else(|| {
        format!(
            "{}: checkpoint metadata has no valid '{key}'",
            file.display()
        )
    })
}

/// Load the checkpoint in `out` for a model of width d -> d_code trained with `cfg`.
pub fn load(out: &Path, cfg: &TrainConfig, d: usize, d_code: usize) -> Result<TrainState, String> {
    let file = path(out);
    if !file.is_file() {
        return Err(format!("{}: no checkpoint to resume from", file.display()));
    }
    let (mut map, meta) = bae_io::load_tensors(&file).map_err(|e| e.to_string())?;
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(format!("{}: not a {FORMAT} file", file.display()));
    }
    let step = meta_u64(&meta, &file, "step")?;
    let t = meta_u64(&meta, &file, "adam_t")?;
    let mut params = Params::zeros(d, d_code);
    let mut adam = Adam::new(cfg.adam(), &params);
    adam.t = t;
    let shapes = params.shapes();
    let mut take = |name: String, shape: &[usize]| {
        bae_io::take_tensor(&mut map, &file, &name, shape).map_err(|e| e.to_string())
    };
    for (i, ((p, m), v)) in params
        .tensors_mut()
        .into_iter()
        .zip(adam.m.tensors_mut())
        .zip(adam.v.tensors_mut())
        .enumerate()
    {
        let n = PARAM_NAMES[i];
        *p = take(n.to_string(), &shapes[i])?;
        *m = take(format!("adam.m.{n}"), &shapes[i])?;
        *v = take(format!("adam.v.{n}"), &shapes[i])?;
    }
    for (what, p) in [
        ("weights", &params),
        ("Adam m", &adam.m),
        ("Adam v", &adam.v),
    ] {
        if let Some((name, i)) = p.first_non_finite() {
            return Err(format!(
                "{}: {what} {name} has a non-finite value at index {i}",
                file.display()
            ));
        }
    }
    Ok(TrainState { params, adam, step })
}
