//! Next-token distribution comparisons in nats, from logits: log-softmax, cross-entropy of the true
//! next token, KL(clean || other) and the Jensen-Shannon divergence. All in f64.

/// log softmax of one row of logits.
pub fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let sum: f64 = logits.iter().map(|&v| (v as f64 - max).exp()).sum();
    let log_z = max + sum.ln();
    logits.iter().map(|&v| v as f64 - log_z).collect()
}

/// KL(p || q) for log-probabilities `lp`, `lq` (p's zero entries contribute nothing).
pub fn kl(lp: &[f64], lq: &[f64]) -> f64 {
    lp.iter()
        .zip(lq)
        .map(|(&a, &b)| {
            let p = a.exp();
            if p > 0.0 { p * (a - b) } else { 0.0 }
        })
        .sum::<f64>()
        .max(0.0)
}

/// Jensen-Shannon divergence (nats, at most ln 2): mean KL of p and q to their midpoint.
pub fn jsd(lp: &[f64], lq: &[f64]) -> f64 {
    let mut s = 0.0;
    for (&a, &b) in lp.iter().zip(lq) {
        let (p, q) = (a.exp(), b.exp());
        let m = 0.5 * (p + q);
        if m <= 0.0 {
            continue;
        }
        let lm = m.ln();
        if p > 0.0 {
            s += 0.5 * p * (a - lm);
        }
        if q > 0.0 {
            s += 0.5 * q * (b - lm);
        }
    }
    s.clamp(0.0, std::f64::consts::LN_2)
}

/// SAELens's `ce_loss_score`: the share of the CE gap between ablation and clean that the
/// reconstruction closes (1 = as good as clean, 0 = as bad as ablation).
pub fn ce_loss_score(ce_clean: f64, ce_spliced: f64, ce_ablated: f64) -> f64 {
    (ce_ablated - ce_spliced) / (ce_ablated - ce_clean)
}

/// SAELens's `kl_div_score`: 1 − KL(clean‖spliced) / KL(clean‖ablated).
pub fn kl_div_score(kl_spliced: f64, kl_ablated: f64) -> f64 {
    (kl_ablated - kl_spliced) / kl_ablated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn log_softmax_normalises_and_survives_large_logits() {
        let lp = log_softmax(&[1000.0, 1000.0, 999.0]);
        let total: f64 = lp.iter().map(|v| v.exp()).sum();
        assert!(close(total, 1.0, 1e-12));
        assert!(close(lp[0], lp[1], 0.0));
        assert!(close(lp[0] - lp[2], 1.0, 1e-12));
    }

    #[test]
    fn kl_and_jsd_against_hand_computed_values() {
        // p = (1/2, 1/2), q = (1/4, 3/4)
        let lp = [0.5f64.ln(), 0.5f64.ln()];
        let lq = [0.25f64.ln(), 0.75f64.ln()];
        let want_kl = 0.5 * (0.5f64 / 0.25).ln() + 0.5 * (0.5f64 / 0.75).ln();
        assert!(close(kl(&lp, &lq), want_kl, 1e-15));
        let m = [0.375f64, 0.625];
        let want_js = 0.5 * (0.5 * (0.5 / m[0]).ln() + 0.5 * (0.5 / m[1]).ln())
            + 0.5 * (0.25 * (0.25 / m[0]).ln() + 0.75 * (0.75 / m[1]).ln());
        assert!(close(jsd(&lp, &lq), want_js, 1e-15));
        assert_eq!(kl(&lp, &lp), 0.0);
        assert_eq!(jsd(&lp, &lp), 0.0);
        // disjoint supports: JSD is ln 2
        let a = [0.0, f64::NEG_INFINITY];
        let b = [f64::NEG_INFINITY, 0.0];
        assert!(close(jsd(&a, &b), std::f64::consts::LN_2, 1e-15));
    }

    #[test]
    fn scores_are_one_for_perfect_and_zero_for_ablation() {
        assert_eq!(ce_loss_score(2.0, 2.0, 6.0), 1.0);
        assert_eq!(ce_loss_score(2.0, 6.0, 6.0), 0.0);
        assert_eq!(ce_loss_score(2.0, 3.0, 6.0), 0.75);
        assert_eq!(kl_div_score(0.0, 4.0), 1.0);
        assert_eq!(kl_div_score(1.0, 4.0), 0.75);
    }
}
