//! `bae entropy-bench`: the synthetic ground-truth benchmark of the entropy estimators.
//!
//! Each case is a set of hidden bits with a known joint entropy ([`cases`]: independent fair bits,
//! sparse independent bits, correlated groups), rendered as rows of activations (each bit that is
//! on adds its own random Gaussian direction, plus noise). For each case a BAE is trained on the
//! first rows with the official λ's and with the sparsity control, the held-out rows are encoded,
//! and the three estimates ([`measure`]: marginal sum, Miller–Madow, Chow–Liu tree, each with a
//! bootstrap interval, as `bae entropy` computes them) are reported for the BAE's codes and for
//! the hidden bits themselves, which separates the estimator's error from the autoencoder's.

pub mod cases;
mod chart;
pub mod measure;
mod report;

pub use cases::{Case, Group, SynthRows, all_cases, generate, select_cases};
pub use measure::{Estimates, Interval, joint_plugin_bits, measure};
pub use report::{case_line, table, write_outputs};

use crate::TrainedRun;
use bae_bits::PackedRows;
use bae_train::{Device, MemoryRows, RowSource, RunOptions, TrainConfig};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const BENCH_JSON: &str = "entropy_bench.json";
pub const BENCH_SVG: &str = "entropy_bench.svg";

/// How a case's BAE is trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Setting {
    /// `TrainConfig::default()` (the official λ's, lr, batch) with the benchmark's steps and width
    Official,
    /// the same passed through `bae_train::sparse_preset` (`--preset sparse`)
    Sparse,
}

impl Setting {
    pub fn name(self) -> &'static str {
        match self {
            Setting::Official => "official",
            Setting::Sparse => "sparse",
        }
    }
}

/// What to run.
#[derive(Clone, Debug, Serialize)]
pub struct BenchOptions {
    pub cases: Vec<Case>,
    pub settings: Vec<Setting>,
    /// rows the BAE trains on (the first rows)
    pub train_rows: usize,
    /// rows encoded and measured (the last rows, never trained on)
    pub held_out_rows: usize,
    /// input width per hidden bit: d = d_per_bit · r
    pub d_per_bit: usize,
    /// d' = expand · d
    pub expand: usize,
    /// optimiser steps per BAE (batch and lr: the setting's)
    pub steps: u64,
    /// standard deviation of the noise on every entry
    pub noise: f64,
    /// rows centred on their expected value (false: around `Σ_i P(bit i) u_i`, as `bae synth`)
    pub center: bool,
    pub seed: u64,
    /// bootstrap replicates
    pub reps: usize,
    /// coverage of the intervals
    pub level: f64,
    /// rows per bootstrap block
    pub block_rows: usize,
    /// the BAEs' run folders go in here, one `<case>-<setting>` folder each
    #[serde(skip)]
    pub runs_dir: PathBuf,
}

impl BenchOptions {
    /// The default benchmark (every case, both settings), its run folders in `runs_dir`.
    pub fn standard(runs_dir: &Path) -> BenchOptions {
        BenchOptions {
            cases: all_cases(),
            settings: vec![Setting::Official, Setting::Sparse],
            train_rows: 32_768,
            held_out_rows: 16_384,
            d_per_bit: 4,
            expand: 1,
            steps: 4000,
            noise: 0.05,
            center: true,
            seed: 0,
            reps: 200,
            level: 0.9,
            block_rows: 128,
            runs_dir: runs_dir.to_path_buf(),
        }
    }

    /// `--quick`: four small cases, few rows and steps (seconds).
    pub fn quick(runs_dir: &Path) -> BenchOptions {
        BenchOptions {
            cases: select_cases(&cases::QUICK_CASES.join(",")).expect("known cases"),
            train_rows: 8192,
            held_out_rows: 4096,
            steps: 600,
            reps: 100,
            ..BenchOptions::standard(runs_dir)
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.cases.is_empty() || self.settings.is_empty() {
            return Err("nothing to run: no case or no setting".into());
        }
        if self.train_rows < 2 || self.held_out_rows == 0 {
            return Err("need at least 2 training rows and 1 held-out row".into());
        }
        if self.d_per_bit == 0 || self.expand == 0 || self.steps == 0 || self.block_rows == 0 {
            return Err("d per bit, expand, steps and block rows must be at least 1".into());
        }
        if !(self.noise >= 0.0 && self.noise.is_finite()) {
            return Err(format!("--noise must be >= 0, got {}", self.noise));
        }
        if !(self.level > 0.0 && self.level < 1.0) {
            return Err(format!("the level must be in (0, 1), got {}", self.level));
        }
        Ok(())
    }
}

/// One code's figures on a case's held-out rows.
#[derive(Clone, Debug, Serialize)]
pub struct CodeResult {
    /// "true bits", or the setting the BAE was trained with
    pub code: String,
    pub estimates: Estimates,
    /// the BAE's reconstruction of the held-out rows (None for the true bits)
    pub fvu: Option<f64>,
    /// features that never fire on the held-out rows
    pub dead: usize,
    /// features with min(p, 1 − p) < 0.01 % on the held-out rows (dead or always on)
    pub constant: usize,
    /// features equal to one hidden bit or its negation on ≥ 99 % of the held-out rows
    pub copies: usize,
    /// hidden bits with at least one such copy among the features
    pub bits_copied: usize,
    /// wall time of the training
    pub train_s: Option<f64>,
    /// the run folder
    pub run: Option<String>,
}

/// Everything measured on one case.
#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    pub case: Case,
    /// hidden bits r
    pub bits: usize,
    /// input width d
    pub d: usize,
    /// the BAE's width d'
    pub d_code: usize,
    /// the exact joint entropy of the hidden bits
    pub truth: f64,
    /// what the marginal sum tends to on the hidden bits as the rows grow
    pub limit_marginal: f64,
    /// what the tree bound tends to on the hidden bits as the rows grow
    pub limit_tree: f64,
    /// the true bits first, then one BAE per setting
    pub codes: Vec<CodeResult>,
    pub seconds: f64,
}

/// The benchmark's output (`entropy_bench.json`).
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub command: String,
    pub options: BenchOptions,
    pub seconds: f64,
    pub cases: Vec<CaseResult>,
}

/// FNV-1a of a case's name: each case's seed does not depend on which other cases run.
fn name_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The training settings of one case's BAE.
pub fn train_config(opts: &BenchOptions, case: &Case, setting: Setting, seed: u64) -> TrainConfig {
    let n = opts.train_rows + opts.held_out_rows;
    let cfg = TrainConfig {
        data: PathBuf::from(format!(
            "(in memory: bae entropy-bench case {}, seed {})",
            case.name, opts.seed
        )),
        out: opts
            .runs_dir
            .join(format!("{}-{}", case.name, setting.name())),
        expand: opts.expand,
        steps: Some(opts.steps),
        val_split: opts.held_out_rows as f64 / n as f64,
        seed,
        log_every: 10,
        ..TrainConfig::default()
    };
    match setting {
        Setting::Official => cfg,
        Setting::Sparse => bae_train::config::sparse_preset(cfg),
    }
}

/// (features that copy a hidden bit or its negation on ≥ 99 % of the rows, hidden bits copied).
pub fn copies(codes: &PackedRows, bits: &PackedRows) -> (usize, usize) {
    let n = codes.n_rows();
    assert_eq!(n, bits.n_rows(), "copies: the same rows");
    let (c, b) = (codes.to_columns(), bits.to_columns());
    let mut copied = vec![false; bits.n_cols()];
    let mut features = 0;
    for j in 0..codes.n_cols() {
        let mut any = false;
        for (k, hit) in copied.iter_mut().enumerate() {
            let differ: u32 = c
                .col(j)
                .iter()
                .zip(b.col(k))
                .map(|(x, y)| (x ^ y).count_ones())
                .sum();
            let differ = differ.min(n as u32 - differ) as usize;
            if differ * 100 <= n {
                *hit = true;
                any = true;
            }
        }
        features += any as usize;
    }
    (features, copied.iter().filter(|&&c| c).count())
}

/// Trains one BAE on the first rows, encodes the held-out rows and measures its codes.
fn bae_code(
    opts: &BenchOptions,
    case: &Case,
    setting: Setting,
    src: &MemoryRows,
    bits: &PackedRows,
    seed: u64,
) -> Result<CodeResult, String> {
    let cfg = train_config(opts, case, setting, seed);
    let n_train = src.train_rows(cfg.val_split);
    if n_train != opts.train_rows {
        return Err(format!(
            "internal: split at {n_train}, not {}",
            opts.train_rows
        ));
    }
    let t = Instant::now();
    let run = RunOptions {
        show_progress: false,
        resume: false,
        stop: None,
        device: Device::Cpu,
    };
    let outcome = bae_train::train(&cfg, src, run).map_err(|e| match e {
        bae_train::TrainError::Failed(m) => format!("{} ({}): {m}", case.name, setting.name()),
        other => other.to_string(),
    })?;
    let train_s = t.elapsed().as_secs_f64();
    let val = outcome.val.ok_or("internal: no held-out rows")?;
    let trained = TrainedRun::open(&cfg.out)?;
    let d = src.d;
    let m = src.n_rows() - n_train;
    let z = bae_ref::encode_pre(&trained.params, &src.data[n_train * d..], m);
    let codes = PackedRows::encode_positive(&z, m, trained.d_code());
    let (copies, bits_copied) = copies(&codes, bits);
    Ok(CodeResult {
        copies,
        bits_copied,
        code: setting.name().into(),
        estimates: measure(&codes, opts.block_rows, opts.reps, opts.level, seed),
        fvu: Some(val.fvu),
        dead: val.dead,
        constant: val.constant,
        train_s: Some(train_s),
        run: Some(cfg.out.display().to_string()),
    })
}

/// Runs one case: generates its rows, measures the hidden bits, trains and measures a BAE per
/// setting.
pub fn run_case(opts: &BenchOptions, case: &Case) -> Result<CaseResult, String> {
    opts.check()?;
    let t = Instant::now();
    let seed = opts.seed ^ name_hash(&case.name);
    let r = case.bits();
    let d = opts.d_per_bit * r;
    let n = opts.train_rows + opts.held_out_rows;
    let rows = generate(case, n, d, opts.noise, opts.center, seed);
    let held = rows.bits.slice_rows(opts.train_rows, opts.held_out_rows);
    let true_est = measure(&held, opts.block_rows, opts.reps, opts.level, seed);
    let dead = (0..r)
        .filter(|&j| (0..held.n_rows()).all(|i| !held.get(i, j)))
        .count();
    let mut codes = vec![CodeResult {
        code: "true bits".into(),
        constant: r - true_est.varying,
        estimates: true_est,
        fvu: None,
        dead,
        copies: r,
        bits_copied: r,
        train_s: None,
        run: None,
    }];
    let src = MemoryRows {
        d,
        data: rows.x,
        name: format!("entropy-bench case {}", case.name),
    };
    for &s in &opts.settings {
        codes.push(bae_code(opts, case, s, &src, &held, seed)?);
    }
    Ok(CaseResult {
        case: case.clone(),
        bits: r,
        d,
        d_code: d * opts.expand,
        truth: case.true_entropy_bits(),
        limit_marginal: case.limit_marginal_bits(),
        limit_tree: case.limit_tree_bits(),
        codes,
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// Runs every case of `opts` in order; `progress(done, total, case)` after each.
pub fn run(
    opts: &BenchOptions,
    command: &str,
    progress: &mut dyn FnMut(usize, usize, &CaseResult),
) -> Result<BenchReport, String> {
    opts.check()?;
    let t = Instant::now();
    let mut out = Vec::with_capacity(opts.cases.len());
    for (i, case) in opts.cases.iter().enumerate() {
        let res = run_case(opts, case)?;
        progress(i + 1, opts.cases.len(), &res);
        out.push(res);
    }
    Ok(BenchReport {
        command: command.into(),
        options: opts.clone(),
        seconds: t.elapsed().as_secs_f64(),
        cases: out,
    })
}
