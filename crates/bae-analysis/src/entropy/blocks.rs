//! `bae entropy --by block`: one BAE per block, trained with the same settings on the blocks of one
//! extraction pass (`bae extract --blocks …` writes `ROOT/block{B}/`), then the entropy of each
//! block's held-out rows under its own BAE.

use super::{CurvePoint, EstimateOptions, set_entropy};
use crate::TrainedRun;
use crate::compare::train_or_reuse;
use crate::encode::RowSelection;
use bae_train::{TrainConfig, TrainError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI32;

pub struct BlockStudyOptions<'a> {
    /// folder holding `block{B}/` extract folders
    pub data_root: PathBuf,
    pub blocks: Vec<usize>,
    /// the settings every block's BAE trains with (`data` and `out` are set per block)
    pub base: TrainConfig,
    /// the BAEs go to `out/block{B}/` (finished ones reused, interrupted ones resumed)
    pub out: PathBuf,
    pub show_progress: bool,
    pub stop: Option<&'a AtomicI32>,
}

/// The extract folder of block `b` under `root`.
pub fn block_dir(root: &Path, b: usize) -> PathBuf {
    root.join(format!("block{b}"))
}

/// The run config of block `b`'s BAE.
pub fn block_config(opts: &BlockStudyOptions, b: usize) -> TrainConfig {
    let mut cfg = opts.base.clone();
    cfg.data = block_dir(&opts.data_root, b);
    cfg.out = block_dir(&opts.out, b);
    cfg
}

/// Trains (or reuses) one BAE per block, then estimates each block's held-out entropy; the
/// points carry the BAE's held-out "fvu" and "l0". `progress(done, total)` after each block.
pub fn by_block(
    opts: &BlockStudyOptions,
    est: &EstimateOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<CurvePoint>, TrainError> {
    if opts.blocks.is_empty() {
        return Err("no blocks given".to_string().into());
    }
    for &b in &opts.blocks {
        let dir = block_dir(&opts.data_root, b);
        if !dir.join("manifest.json").is_file() {
            return Err(format!(
                "{}: no extract of block {b} (run `bae extract --blocks {} --out {}`)",
                dir.display(),
                opts.blocks
                    .iter()
                    .map(|b| b.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                opts.data_root.display()
            )
            .into());
        }
        let cfg = block_config(opts, b);
        cfg.validate().map_err(|e| format!("block {b}: {e}"))?;
        crate::compare::finished_run(&cfg.out, &cfg)?;
    }
    let total = opts.blocks.len();
    let mut points = Vec::with_capacity(total);
    for (k, &b) in opts.blocks.iter().enumerate() {
        let cfg = block_config(opts, b);
        let src = bae_train::store::open_source(&cfg.data)?;
        train_or_reuse(
            &cfg,
            src.as_ref(),
            &format!("block {b}"),
            opts.show_progress,
            opts.stop,
        )?;
        drop(src);
        let run = TrainedRun::open(&cfg.out)?;
        let set = super::encode_set(&run, None, RowSelection::HeldOut, &mut |_, _| {})?;
        let entropy = set_entropy(&set, est);
        let mut extra = BTreeMap::new();
        if let Some((fvu, l0)) = held_out_fit(&cfg.out) {
            extra.insert("fvu".to_string(), fvu);
            extra.insert("l0".to_string(), l0);
        }
        points.push(CurvePoint {
            x: b as f64,
            entropy,
            extra,
        });
        progress(k + 1, total);
    }
    Ok(points)
}

/// (FVU, L0) on the held-out rows, from the run's `summary.json`.
fn held_out_fit(run: &Path) -> Option<(f64, f64)> {
    let text = std::fs::read_to_string(run.join("summary.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some((
        v["validation"]["fvu"].as_f64()?,
        v["validation"]["l0"].as_f64()?,
    ))
}
