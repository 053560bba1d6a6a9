//! The rate-target term: the mean over features of KL(p* ‖ p_j) in nats, where p_j is feature j's
//! firing rate on the batch and p* a target rate. Unlike the summed Bernoulli entropy, whose gradient
//! pushes hardest on the rarest features until they never fire, it pulls every rate towards p* from
//! both sides: zero at p = p*, and growing without bound as p -> 0, so a feature is kept rare but
//! never constant. Rates are clamped to [1/(2n), 1 − 1/(2n)] (a batch of n rows cannot tell smaller
//! rates apart), so the term and its gradient stay finite.

/// The clamped rate used for a batch of `n_rows`.
fn clamp(p: f64, n_rows: usize) -> f64 {
    let lo = 0.5 / n_rows as f64;
    p.clamp(lo, 1.0 - lo)
}

/// (1/d') Σ_j KL(p* ‖ p_j), nats.
pub fn rate_target_term(rates: &[f64], target: f64, n_rows: usize) -> f64 {
    let t = target;
    let kl = |p: f64| {
        let p = clamp(p, n_rows);
        t * (t / p).ln() + (1.0 - t) * ((1.0 - t) / (1.0 - p)).ln()
    };
    rates.iter().map(|&p| kl(p)).sum::<f64>() / rates.len().max(1) as f64
}

/// `d term / d H_ij` for each column j (the same for every row i), with the 1/n of p = mean_i H_ij:
/// `(1/(d' n)) (−p*/p + (1 − p*)/(1 − p))`. At a clamped rate it is taken at the clamp value, so a
/// feature that did not fire in the batch is still asked to (the clamp's zero slope would not).
pub fn rate_target_grad_coeffs(rates: &[f64], target: f64, n_rows: usize) -> Vec<f64> {
    let scale = 1.0 / (rates.len().max(1) as f64 * n_rows as f64);
    rates
        .iter()
        .map(|&p| {
            let p = clamp(p, n_rows);
            scale * (-target / p + (1.0 - target) / (1.0 - p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_at_the_target_and_positive_elsewhere() {
        let n = 1000;
        assert!(rate_target_term(&[0.01], 0.01, n).abs() < 1e-15);
        assert!(rate_target_term(&[0.2], 0.01, n) > 0.0);
        assert!(rate_target_term(&[0.0], 0.01, n).is_finite());
        assert!(rate_target_grad_coeffs(&[0.01], 0.01, n)[0].abs() < 1e-18);
        // below the target the gradient asks for more firing (negative), above it for less
        let g = rate_target_grad_coeffs(&[0.0, 0.001, 0.5, 1.0], 0.01, n);
        assert!(g[0] < g[1] && g[1] < 0.0 && g[2] > 0.0 && g[3] > g[2]);
    }

    #[test]
    fn gradient_is_the_derivative_of_the_term() {
        // the coefficient is d term / d H_ij; H_ij moves p_j by 1/n
        let (n, t) = (500usize, 0.004);
        let rates = [0.002, 0.05, 0.3, 0.9, 0.004];
        let g = rate_target_grad_coeffs(&rates, t, n);
        for j in 0..rates.len() {
            let h = 1e-7;
            let mut up = rates;
            let mut dn = rates;
            up[j] += h;
            dn[j] -= h;
            let fd =
                (rate_target_term(&up, t, n) - rate_target_term(&dn, t, n)) / (2.0 * h) / n as f64;
            assert!(
                (fd - g[j]).abs() <= 1e-6 * g[j].abs().max(1e-9),
                "j={j}: fd {fd} vs {}",
                g[j]
            );
        }
    }
}
