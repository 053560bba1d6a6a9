//! One pass over held-out rows: reconstruction quality (f64 sums) and per-feature statistics.
//!
//! Salience follows the paper: for a BAE, β_ij = log2(|h_ij − μ_j| + 1e-6), which ranks like
//! |h − μ| (μ = the feature's rate on these rows, so a second pass); for the SAE baselines, the
//! raw activation (active features only).

use bae_bits::FiringCounter;
use bae_ref::{Arch, Params};
use bae_train::RowSource;
use serde::Serialize;

/// Features among a token's most salient ones when counting salience density (the paper's top-10).
pub const SALIENT_TOP: usize = 10;

/// Rare-value thresholds of method.md: specific = 0.01 % ≤ r ≤ 1 %, constant = r < 0.01 %.
const CONSTANT_BELOW: f64 = 1e-4;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Reconstruction {
    pub mse: f64,
    /// Σ‖x − x̂‖² / Σ‖x − x̄‖²
    pub fvu: f64,
    pub explained_variance: f64,
    /// mean over tokens of cos(x, x̂)
    pub cosine: f64,
    /// mean over tokens of ‖x̂‖ / ‖x‖
    pub l2_ratio: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FeatureStats {
    pub n_features: usize,
    /// mean active features per token (bits set, for a BAE)
    pub l0: f64,
    pub mean_rate: f64,
    pub dead: usize,
    /// by firing rate p
    pub dense_rate_10: usize,
    pub dense_rate_50: usize,
    /// p > 0.5: the salient event of such a feature is being off
    pub inverted: usize,
    /// by rare value r = min(p, 1 − p)
    pub dense_rare_10: usize,
    pub dense_rare_1: usize,
    /// 0.01 % ≤ r ≤ 1 %: features that can mean something
    pub specific: usize,
    /// r < 0.01 %: as good as dead (always off or always on)
    pub constant: usize,
    /// among more than 10 % of tokens' top-10 by salience
    pub salience_dense_10: usize,
    /// Σ_j H(p_j) in bits on these rows
    pub entropy_bits: f64,
    /// mean over batches of `cov_batch` rows of Σ_{j≠k} |cov(H)_jk| (BAE)
    pub cov_term: Option<f64>,
    #[serde(skip)]
    pub rates: Vec<f64>,
    #[serde(skip)]
    pub salience_share: Vec<f64>,
}

/// What the pass measured, plus the mean row (mean ablation splices it in).
pub struct RowMetrics {
    pub rows: usize,
    pub reconstruction: Reconstruction,
    pub features: FeatureStats,
    pub mean_row: Vec<f32>,
}

/// Accumulators of the reconstruction sums, in f64.
struct Sums {
    sse: f64,
    x: Vec<f64>,
    x_sq: Vec<f64>,
    cosine: f64,
    l2_ratio: f64,
}

impl Sums {
    fn add(&mut self, x: &[f32], x_hat: &[f32], d: usize) {
        self.sse += x
            .iter()
            .zip(x_hat)
            .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
            .sum::<f64>();
        for (row, rec) in x.chunks(d).zip(x_hat.chunks(d)) {
            let (mut dot, mut nx, mut nr) = (0.0, 0.0, 0.0);
            for ((&a, &b), (s, q)) in row
                .iter()
                .zip(rec)
                .zip(self.x.iter_mut().zip(&mut self.x_sq))
            {
                let (a, b) = (a as f64, b as f64);
                *s += a;
                *q += a * a;
                dot += a * b;
                nx += a * a;
                nr += b * b;
            }
            if nx > 0.0 && nr > 0.0 {
                self.cosine += dot / (nx * nr).sqrt();
            }
            if nx > 0.0 {
                self.l2_ratio += (nr / nx).sqrt();
            }
        }
    }
}

/// Evaluates `params` on rows `idx` of `src`, `batch` rows per forward pass.
pub fn row_metrics(
    params: &Params<f32>,
    arch: &Arch,
    src: &dyn RowSource,
    idx: &[usize],
    batch: usize,
    cov_batch: usize,
    progress: &indicatif::ProgressBar,
) -> Result<RowMetrics, String> {
    let (d, dc, n) = (params.d, params.d_code, idx.len());
    if n == 0 {
        return Err("the evaluation set is empty".into());
    }
    let mut x = vec![0f32; batch * d];
    let mut sums = Sums {
        sse: 0.0,
        x: vec![0.0; d],
        x_sq: vec![0.0; d],
        cosine: 0.0,
        l2_ratio: 0.0,
    };
    let mut counter = FiringCounter::new(dc);
    let mut active = 0u64;
    let (mut cov_sum, mut cov_batches) = (0.0, 0usize);
    let mut act_hits = vec![0u64; dc];
    for chunk in idx.chunks(batch) {
        let m = chunk.len();
        let xb = &mut x[..m * d];
        src.gather(chunk, xb)?;
        let f = bae_ref::forward(params, xb, m, arch);
        sums.add(xb, &f.x_hat, d);
        active += f
            .codes
            .row_popcounts()
            .iter()
            .map(|&c| c as u64)
            .sum::<u64>();
        counter.add_rows(&f.codes);
        if arch.is_binary() {
            bae_train::eval::add_batch_covariance(
                &f.codes,
                cov_batch,
                &mut cov_sum,
                &mut cov_batches,
            )?;
        } else {
            top_by_activation(&f.act, m, dc, &mut act_hits);
        }
        progress.inc(m as u64);
    }
    let rates = counter.rates();
    let salience_share: Vec<f64> = if arch.is_binary() {
        let hits = bae_train::eval::salience_hits(params, src, idx, batch, &rates, &mut |m| {
            progress.inc(m as u64)
        })?;
        hits.iter().map(|&h| h as f64 / n as f64).collect()
    } else {
        act_hits.iter().map(|&h| h as f64 / n as f64).collect()
    };
    let total_var: f64 = sums
        .x
        .iter()
        .zip(&sums.x_sq)
        .map(|(s, q)| q - s * s / n as f64)
        .sum();
    let fvu = if total_var > 0.0 {
        sums.sse / total_var
    } else {
        f64::NAN
    };
    let count = |f: &dyn Fn(f64) -> bool, v: &[f64]| v.iter().filter(|&&p| f(p)).count();
    let features = FeatureStats {
        n_features: dc,
        l0: active as f64 / n as f64,
        mean_rate: rates.iter().sum::<f64>() / dc as f64,
        dead: count(&|p| p == 0.0, &rates),
        dense_rate_10: count(&|p| p > 0.1, &rates),
        dense_rate_50: count(&|p| p > 0.5, &rates),
        inverted: count(&|p| p > 0.5, &rates),
        dense_rare_10: bae_train::eval::rare_count(&rates, |r| r > 0.1),
        dense_rare_1: bae_train::eval::rare_count(&rates, |r| r > 0.01),
        specific: bae_train::eval::rare_count(&rates, |r| (CONSTANT_BELOW..=0.01).contains(&r)),
        constant: bae_train::eval::rare_count(&rates, |r| r < CONSTANT_BELOW),
        salience_dense_10: count(&|s| s > 0.1, &salience_share),
        entropy_bits: bae_bits::entropy_bits(&rates),
        cov_term: (cov_batches > 0).then(|| cov_sum / cov_batches as f64),
        rates,
        salience_share,
    };
    Ok(RowMetrics {
        rows: n,
        reconstruction: Reconstruction {
            mse: sums.sse / (n * d) as f64,
            fvu,
            explained_variance: 1.0 - fvu,
            cosine: sums.cosine / n as f64,
            l2_ratio: sums.l2_ratio / n as f64,
        },
        features,
        mean_row: sums.x.iter().map(|&s| (s / n as f64) as f32).collect(),
    })
}

/// Adds one to each feature among a row's `SALIENT_TOP` largest positive activations.
fn top_by_activation(act: &[f32], m: usize, dc: usize, hits: &mut [u64]) {
    let mut order: Vec<usize> = Vec::with_capacity(dc);
    for row in act.chunks(dc).take(m) {
        order.clear();
        order.extend((0..dc).filter(|&j| row[j] != 0.0));
        for &j in bae_train::eval::select_top(&mut order, SALIENT_TOP, |j| row[j] as f64) {
            hits[j] += 1;
        }
    }
}
