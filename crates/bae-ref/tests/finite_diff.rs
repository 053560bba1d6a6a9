//! Finite-difference checks where the gradient is a true gradient: the whole BAE loss with respect to
//! the decoder (codes do not depend on it), and the ReLU-L1 SAE with respect to every parameter
//! (piecewise smooth; the step is far smaller than the distance of any z to its kink).

use bae_ref::{Arch, Estimator, Params, StepOptions};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn problem(n: usize, d: usize, dc: usize, seed: u64) -> (Params<f64>, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let p = Params::init_linear(d, dc, || rng.random::<f64>());
    let x = (0..n * d)
        .map(|_| rng.random::<f64>() * 4.0 - 2.0)
        .collect();
    (p, x)
}

fn loss(p: &Params<f64>, x: &[f64], n: usize, arch: &Arch, opts: &StepOptions) -> f64 {
    bae_ref::step_with(p, x, n, arch, true, opts).losses.total
}

/// Central differences on every entry of the chosen tensors (indices into PARAM_NAMES).
fn check(arch: Arch, tensors: &[usize], seed: u64) {
    check_with(arch, tensors, seed, &StepOptions::default());
}

fn check_with(arch: Arch, tensors: &[usize], seed: u64, opts: &StepOptions) {
    let (n, d, dc) = (16, 6, 20);
    let (p, x) = problem(n, d, dc, seed);
    let s = bae_ref::step_with(&p, &x, n, &arch, true, opts);
    let kink = if let Arch::JumpRelu { theta, .. } = arch {
        theta
    } else {
        0.0
    };
    let min_gap = s
        .forward
        .z
        .iter()
        .fold(f64::INFINITY, |m, z| m.min((z - kink).abs()));
    let h = 1e-6;
    assert!(
        min_gap > 1e-4,
        "test problem too close to a kink: {min_gap}"
    );
    let grads = s.backward.grads.tensors();
    let mut checked = 0;
    for &t in tensors {
        for (i, &g) in grads[t].iter().enumerate() {
            let mut plus = p.clone();
            plus.tensors_mut()[t][i] += h;
            let mut minus = p.clone();
            minus.tensors_mut()[t][i] -= h;
            let fd =
                (loss(&plus, &x, n, &arch, opts) - loss(&minus, &x, n, &arch, opts)) / (2.0 * h);
            assert!(
                (fd - g).abs() <= 1e-6 * (1.0 + g.abs().max(fd.abs()))
                    && (fd - g).abs() <= 1e-7 + 1e-4 * g.abs(),
                "{} {}[{i}]: analytic {g:e} vs finite difference {fd:e}",
                arch.name(),
                bae_ref::PARAM_NAMES[t]
            );
            checked += 1;
        }
    }
    assert!(checked > 0);
}

#[test]
fn bae_decoder_gradients_match_finite_differences() {
    for estimator in [Estimator::SignS, Estimator::Ste] {
        let arch = Arch::Bae {
            estimator,
            lambda_entropy: 0.1,
            lambda_cov: 0.05,
        };
        check(arch, &[2, 3], 11);
    }
}

#[test]
fn relu_l1_gradients_match_finite_differences() {
    check(Arch::ReluL1 { l1: 1e-2 }, &[0, 1, 2, 3], 12);
}

#[test]
fn jumprelu_gradients_match_finite_differences() {
    check(
        Arch::JumpRelu {
            theta: 0.1,
            l1: 1e-2,
        },
        &[0, 1, 2, 3],
        13,
    );
}

/// The scale-free reconstruction term (batch FVU; its denominator depends on x only) and the rate
/// target (it depends on the codes only, which the decoder does not move): true gradients with
/// respect to the decoder, and for the SAE every parameter.
#[test]
fn fvu_loss_and_rate_target_gradients_match_finite_differences() {
    let opts = StepOptions {
        fvu_loss: true,
        rate_target: Some((0.05, 0.3)),
    };
    for estimator in [Estimator::SignS, Estimator::Ste] {
        let arch = Arch::Bae {
            estimator,
            lambda_entropy: 0.1,
            lambda_cov: 0.05,
        };
        check_with(arch, &[2, 3], 11, &opts);
    }
    check_with(Arch::ReluL1 { l1: 1e-2 }, &[0, 1, 2, 3], 12, &opts);
}

/// The FVU loss equals the MSE divided by the batch's variance per element, and its decoder
/// gradients are the MSE's times the same constant.
#[test]
fn fvu_loss_is_the_mse_over_the_batch_variance() {
    let (n, d, dc) = (16, 6, 20);
    let (p, x) = problem(n, d, dc, 31);
    let arch = Arch::Bae {
        estimator: Estimator::SignS,
        lambda_entropy: 0.0,
        lambda_cov: 0.0,
    };
    let plain = bae_ref::step(&p, &x, n, &arch, true);
    let fvu = StepOptions {
        fvu_loss: true,
        rate_target: None,
    };
    let scaled = bae_ref::step_with(&p, &x, n, &arch, true, &fvu);
    let mean: Vec<f64> = (0..d)
        .map(|j| (0..n).map(|i| x[i * d + j]).sum::<f64>() / n as f64)
        .collect();
    let var: f64 = (0..n * d).map(|k| (x[k] - mean[k % d]).powi(2)).sum();
    let ratio = (n * d) as f64 / var;
    assert!((scaled.losses.fvu - plain.losses.mse * ratio).abs() < 1e-12);
    assert_eq!(scaled.losses.total, scaled.losses.fvu);
    for (a, b) in scaled
        .backward
        .grads
        .w_dec
        .iter()
        .zip(&plain.backward.grads.w_dec)
    {
        assert!((a - b * ratio).abs() <= 1e-12 * (1.0 + a.abs()));
    }
}
