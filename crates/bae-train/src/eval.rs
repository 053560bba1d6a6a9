//! Validation metrics the field expects (method.md, "Metrics"): MSE, FVU, L0, feature-set entropy,
//! covariance term, dead / dense / inverted features by firing rate, and density by salience.

use crate::data::RowSource;
use bae_bits::{CovarianceTerm, FiringCounter};
use bae_ref::{Arch, Params};
use serde::Serialize;
use std::ops::Range;

/// Features among a token's most salient ones when counting salience density (the paper's top-10).
pub const SALIENT_TOP: usize = 10;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EvalReport {
    pub rows: usize,
    pub mse: f64,
    /// fraction of variance unexplained, sum |x - x^|^2 / sum |x - mean|^2
    pub fvu: f64,
    /// mean number of active features (bits set) per token
    pub l0: f64,
    /// sum over features of the Bernoulli entropy of their rate on this set, in bits
    pub entropy_bits: f64,
    /// mean over batches of `batch_size` rows of sum_{j!=k} |cov(H)_jk| (the training loss's term)
    pub cov_term: f64,
    pub dead: usize,
    pub dense_10: usize,
    pub dense_50: usize,
    /// firing rate above 0.5: the salient event of such a feature is being off
    pub inverted: usize,
    pub mean_rate: f64,
    /// features among more than 10% of tokens' top-10 by salience |h - mu| (BAE only)
    pub salient_dense_10: usize,
    /// by the rare value r = min(p, 1 - p) (method.md): 0.01% <= r <= 1%, a feature that can mean something
    pub specific: usize,
    /// r < 0.01%: as good as dead (always off or always on)
    pub constant: usize,
    /// r > 10%
    pub dense_rare_10: usize,
    #[serde(skip)]
    pub rates: Vec<f64>,
    #[serde(skip)]
    pub salience_share: Vec<f64>,
}

/// Evaluate `params` on `rows` of `src`, reading `eval_batch` rows at a time.
pub fn evaluate(
    params: &Params<f32>,
    arch: &Arch,
    src: &dyn RowSource,
    rows: Range<usize>,
    eval_batch: usize,
    cov_batch: usize,
) -> Result<EvalReport, String> {
    let (d, dc) = (params.d, params.d_code);
    let n = rows.len();
    if n == 0 {
        return Err("evaluation set is empty".into());
    }
    let mut x = vec![0f32; eval_batch.max(cov_batch) * d];
    let mut sse = 0.0f64;
    let mut sum = vec![0.0f64; d];
    let mut sum_sq = vec![0.0f64; d];
    let mut l0 = 0u64;
    let mut counter = FiringCounter::new(dc);
    let mut cov_sum = 0.0;
    let mut cov_batches = 0usize;
    let idx: Vec<usize> = rows.collect();
    for chunk in idx.chunks(eval_batch) {
        let m = chunk.len();
        let xb = &mut x[..m * d];
        src.gather(chunk, xb)?;
        let f = bae_ref::forward(params, xb, m, arch);
        sse += bae_ref::mse(xb, &f.x_hat) * (m * d) as f64;
        for row in xb.chunks(d) {
            for ((s, q), &v) in sum.iter_mut().zip(sum_sq.iter_mut()).zip(row) {
                let v = v as f64;
                *s += v;
                *q += v * v;
            }
        }
        l0 += f
            .codes
            .row_popcounts()
            .iter()
            .map(|&c| c as u64)
            .sum::<u64>();
        counter.add_rows(&f.codes);
        if arch.is_binary() {
            add_batch_covariance(&f.codes, cov_batch, &mut cov_sum, &mut cov_batches)?;
        }
    }
    let total_var: f64 = sum
        .iter()
        .zip(&sum_sq)
        .map(|(s, q)| q - s * s / n as f64)
        .sum();
    let rates = counter.rates();
    let salience_share = if arch.is_binary() {
        salience_density(params, src, &idx, eval_batch, &rates)?
    } else {
        Vec::new()
    };
    Ok(EvalReport {
        rows: n,
        mse: sse / (n * d) as f64,
        fvu: if total_var > 0.0 {
            sse / total_var
        } else {
            f64::NAN
        },
        l0: l0 as f64 / n as f64,
        entropy_bits: bae_bits::entropy_bits(&rates),
        cov_term: if cov_batches > 0 {
            cov_sum / cov_batches as f64
        } else {
            0.0
        },
        dead: rates.iter().filter(|&&p| p == 0.0).count(),
        dense_10: rates.iter().filter(|&&p| p > 0.1).count(),
        dense_50: rates.iter().filter(|&&p| p > 0.5).count(),
        inverted: rates.iter().filter(|&&p| p > 0.5).count(),
        mean_rate: rates.iter().sum::<f64>() / dc as f64,
        salient_dense_10: salience_share.iter().filter(|&&s| s > 0.1).count(),
        specific: rare_count(&rates, |r| (1e-4..=0.01).contains(&r)),
        constant: rare_count(&rates, |r| r < 1e-4),
        dense_rare_10: rare_count(&rates, |r| r > 0.1),
        rates,
        salience_share,
    })
}

/// Features whose rare-value rate min(p, 1 - p) satisfies `pred`.
pub fn rare_count(rates: &[f64], pred: impl Fn(f64) -> bool) -> usize {
    rates.iter().filter(|&&p| pred(p.min(1.0 - p))).count()
}

/// Adds the covariance term of each full `cov_batch`-row slice of `codes` to `sum` (a minibatch
/// quantity, so averaged over batches of the training size); a shorter slice counts only when it
/// would be the first (evaluation sets smaller than one batch).
pub fn add_batch_covariance(
    codes: &bae_bits::PackedRows,
    cov_batch: usize,
    sum: &mut f64,
    batches: &mut usize,
) -> Result<(), String> {
    let m = codes.n_rows();
    for sub in (0..m).step_by(cov_batch) {
        let len = cov_batch.min(m - sub);
        if len == cov_batch || (len >= 2 && *batches == 0) {
            let cols = codes.slice_rows(sub, len).to_columns();
            *sum += CovarianceTerm::from_columns(&cols)
                .map_err(|e| e.to_string())?
                .term;
            *batches += 1;
        }
    }
    Ok(())
}

/// Share of tokens for which each feature is among the token's `SALIENT_TOP` features by salience
/// beta_ij = log2(|h_ij - mu_j| + 1e-6) (monotone in |h - mu|, so ranking by |h - mu| is the same).
fn salience_density(
    params: &Params<f32>,
    src: &dyn RowSource,
    idx: &[usize],
    eval_batch: usize,
    mu: &[f64],
) -> Result<Vec<f64>, String> {
    let hits = salience_hits(params, src, idx, eval_batch, mu, &mut |_| {})?;
    Ok(hits.iter().map(|&h| h as f64 / idx.len() as f64).collect())
}

/// The `top` entries of `order` with the largest `key` (ties to the lower feature index, so a
/// ranking never depends on the sort), moved to the front and returned (unordered).
pub fn select_top(order: &mut [usize], top: usize, key: impl Fn(usize) -> f64) -> &[usize] {
    let top = top.min(order.len());
    if top == 0 {
        return &[];
    }
    order.select_nth_unstable_by(top - 1, |&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
    &order[..top]
}

/// Per feature, the number of rows of `idx` for which it is among the row's `SALIENT_TOP` by
/// |h − μ| (ties to the lower feature index); `done(m)` after each batch of m rows.
pub fn salience_hits(
    params: &Params<f32>,
    src: &dyn RowSource,
    idx: &[usize],
    batch: usize,
    mu: &[f64],
    done: &mut dyn FnMut(usize),
) -> Result<Vec<u64>, String> {
    let (d, dc) = (params.d, params.d_code);
    let mut x = vec![0f32; batch * d];
    let mut hits = vec![0u64; dc];
    let top = SALIENT_TOP.min(dc);
    let mut order: Vec<usize> = (0..dc).collect();
    for chunk in idx.chunks(batch) {
        let m = chunk.len();
        src.gather(chunk, &mut x[..m * d])?;
        let z = bae_ref::encode_pre(params, &x[..m * d], m);
        let codes = bae_bits::PackedRows::encode_positive(&z, m, dc);
        for i in 0..m {
            let sal = |j: usize| (if codes.get(i, j) { 1.0 } else { 0.0 } - mu[j]).abs();
            for &j in select_top(&mut order, top, sal) {
                hits[j] += 1;
            }
        }
        done(m);
    }
    Ok(hits)
}
