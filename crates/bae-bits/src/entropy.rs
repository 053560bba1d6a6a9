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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // constant features contribute -log2(1 + eps), not 0 (official formula)
        let c = -(1.0 + ENTROPY_EPS).log2();
        assert_eq!(bernoulli_entropy_bits(0.0), c);
        assert_eq!(bernoulli_entropy_bits(1.0), c);
        assert!((bernoulli_entropy_bits(0.5) - 1.0).abs() < 1e-9);
        assert!((bernoulli_entropy_bits(0.25) - 0.811_278_124_459_132_9).abs() < 1e-9);
        assert_eq!(
            entropy_bits(&[0.5, 0.25]),
            bernoulli_entropy_bits(0.5) + bernoulli_entropy_bits(0.25)
        );
        assert_eq!(
            entropy_per_feature(&[0.0, 0.5]),
            vec![c, bernoulli_entropy_bits(0.5)]
        );
    }

    #[test]
    fn threshold_quirk() {
        assert_eq!(entropy_train_bits(&[0.0, 1.0, 0.0]), (0.0, false));
        let (h, on) = entropy_train_bits(&[0.0, 0.5]);
        assert!(on && h == bernoulli_entropy_bits(0.0) + bernoulli_entropy_bits(0.5));
        assert_eq!(entropy_train_bits(&[]), (0.0, true));
    }

    #[test]
    fn gradient_matches_finite_difference_and_is_finite_at_the_ends() {
        let n = 10;
        for &p in &[0.1, 0.3, 0.5, 0.85] {
            let g = entropy_grad_coeffs(&[p], n)[0];
            // one more 1 in a column raises p by 1/n: dH/dh ≈ (H(p + δ) - H(p - δ)) / (2 δ n)
            let d = 1e-6;
            let fd = (bernoulli_entropy_bits(p + d) - bernoulli_entropy_bits(p - d))
                / (2.0 * d)
                / n as f64;
            assert!(
                (g - fd).abs() < 1e-6 * fd.abs().max(1.0),
                "p={p}: {g} vs {fd}"
            );
        }
        let g0 = entropy_grad_coeffs(&[0.0, 1.0], 1);
        assert!(
            (g0[0] - 34.66).abs() < 0.05 && (g0[1] + 34.66).abs() < 0.05,
            "{g0:?}"
        );
    }
}
