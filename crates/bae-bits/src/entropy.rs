//! Minibatch Bernoulli entropy of the features, in bits, exactly as the official trainer
//! (`train/training_objective.py`) computes it, epsilons included.

use std::f64::consts::LN_2;

/// The epsilon inside both logarithms of the official formula.
pub const ENTROPY_EPS: f64 = 1e-10;

/// `-[p log2(p + eps) + (1 - p) log2(1 - p + eps)]`. Because of the epsilons a constant feature
/// (p = 0 or 1) gives `-log2(1 + eps) ≈ -1.44e-10`, not 0, as in the official code.
#[inline]
pub fn bernoulli_entropy_bits(p: f64) -> f64 {
    let q = 1.0 - p;
    -(p * (p + ENTROPY_EPS).log2() + q * (q + ENTROPY_EPS).log2())
}

/// [`bernoulli_entropy_bits`] of every feature.
pub fn entropy_per_feature(rates: &[f64]) -> Vec<f64> {
    rates.iter().map(|&p| bernoulli_entropy_bits(p)).collect()
}

/// Entropy of the batch: summed (not averaged) over the features.
pub fn entropy_bits(rates: &[f64]) -> f64 {
    rates.iter().map(|&p| bernoulli_entropy_bits(p)).sum()
}

/// What the official trainer optimises: `(entropy, true)`, or `(0, false)` when the summed
/// entropy is negative (only possible when every feature is constant); then the trainer uses a
/// constant 0 and no entropy gradient flows.
pub fn entropy_train_bits(rates: &[f64]) -> (f64, bool) {
    let h = entropy_bits(rates);
    if h < 0.0 { (0.0, false) } else { (h, true) }
}

/// `dH_b/dH_ij` for each column `j` (the same for every row `i`), including the `1/n` of
/// `p = mean_i H_ij`:
/// `(1/n)[-log2(p+e) - p/((p+e) ln2) + log2(1-p+e) + (1-p)/((1-p+e) ln2)]`.
/// Finite at p = 0 and 1 thanks to the epsilons (about ±34.66/n).
pub fn entropy_grad_coeffs(rates: &[f64], n_rows: usize) -> Vec<f64> {
    let inv_n = 1.0 / n_rows as f64;
    rates
        .iter()
        .map(|&p| {
            let q = 1.0 - p;
            let (pe, qe) = (p + ENTROPY_EPS, q + ENTROPY_EPS);
            inv_n * (-pe.log2() - p / (pe * LN_2) + qe.log2() + q / (qe * LN_2))
        })
        .collect()
}
