//! `bae entropy --by demonstrations`: the entropy of the last-token hidden states of an in-context
//! task's queries under a trained BAE, for k = 0..=max_k demonstrations, with the model's accuracy
//! on the task beside it ([`super::icl`]).

use super::icl::{self, IclOptions, IclTask};
use super::{CurvePoint, EstimateOptions, estimate};
use crate::TrainedRun;
use bae_bits::PackedRows;
use std::collections::BTreeMap;
use std::path::Path;

/// The block the run's BAE was trained on, from the manifest of its extract folder.
pub fn run_block(run: &TrainedRun) -> Result<usize, String> {
    let data = run.data();
    let m = bae_llm::Manifest::read(data)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "{}: the run's data is not an extract folder, so its block is unknown; pass --block",
                data.display()
            )
        })?;
    Ok(m.block)
}

/// Runs `task` through the LLM in `model` with 0..=`opts.max_k` demonstrations, encodes each k's
/// last-token states with the run's BAE and estimates their entropy (one bootstrap group per
/// query). The points carry "accuracy" (greedy answer exactly right) and "first_token".
/// `progress(done, total)` counts prompts.
pub fn by_demonstrations(
    run: &TrainedRun,
    model: &Path,
    task: &IclTask,
    opts: &IclOptions,
    est: &EstimateOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<CurvePoint>, String> {
    let mut gguf = crate::run::open_llm(run, model, "bash scripts/setup.sh fetches the default")?;
    let tokenizer = bae_llm::Tokenizer::from_gguf(&gguf).map_err(|e| e.to_string())?;
    let load = bae_llm::LoadOptions {
        n_layers: None,
        head: true,
    };
    let llm = bae_llm::Model::from_gguf(&mut gguf, load).map_err(|e| e.to_string())?;
    let states = icl::run_icl(&llm, &tokenizer, task, opts, progress)?;
    let (d, dc) = (run.d(), run.d_code());
    let mut points = Vec::with_capacity(states.levels.len());
    for level in &states.levels {
        let n = level.n();
        if n < 2 {
            return Err(format!(
                "task {}: {n} queries; the entropy of a set needs at least 2",
                task.name
            ));
        }
        debug_assert_eq!(level.states.len(), n * d);
        let z = bae_ref::encode_pre(&run.params, &level.states, n);
        let codes = PackedRows::encode_positive(&z, n, dc);
        let groups: Vec<u32> = (0..n as u32).collect();
        let entropy = estimate(&codes, &groups, "queries", est);
        let mut extra = BTreeMap::new();
        extra.insert("accuracy".to_string(), level.accuracy());
        extra.insert(
            "first_token".to_string(),
            level.n_first_token() as f64 / n as f64,
        );
        points.push(CurvePoint {
            x: level.k as f64,
            entropy,
            extra,
        });
    }
    Ok(points)
}
