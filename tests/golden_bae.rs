//! The BAE reference against the official implementation's float64 golden vectors:
//! forward, the three loss terms, per-term gradients, both estimators, the 5-step Adam trajectory;
//! in f64 (<= 1e-9 relative) and in the fast f32 path (exact forward, f32-accurate losses/gradients).

mod common;
use bae_bits::{CovarianceStats, PackedRows};
use bae_ref::{Adam, AdamConfig, Arch, Estimator, Float, Params, Step};
use common::*;

const F64_TOL: f64 = 1e-9;
const CASES: [&str; 3] = [
    "bae_tiny.safetensors",
    "bae_small.safetensors",
    "bae_ragged.safetensors",
];

fn arch(g: &Golden, estimator: Estimator) -> Arch {
    Arch::Bae {
        estimator,
        lambda_entropy: g.scalar("lam_e"),
        lambda_cov: g.scalar("lam_c"),
    }
}

fn run<T: Float + Into<f64>>(g: &Golden, estimator: Estimator) -> Step<T> {
    let params: Params<T> = g.params("").cast();
    let x: Vec<T> = g.get("x").iter().map(|&v| T::from_f64(v)).collect();
    let n = g.shape("x")[0];
    bae_ref::step(&params, &x, n, &arch(g, estimator), true)
}

/// Checks shared by both precisions; `tol_loss` / `tol_grad` are the allowed relative errors.
fn check_case<T: Float + Into<f64>>(g: &Golden, tol_loss: f64, tol_grad: f64) {
    let s = run::<T>(g, Estimator::SignS);
    let f = &s.forward;
    // z, h, x_hat, p are exact by construction of the inputs (dyadic grids), in f64 and f32 alike.
    assert_exact("z", &f.z, g.get("z"));
    assert_exact("h", &f.act, g.get("h"));
    assert_exact("x_hat", &f.x_hat, g.get("x_hat"));
    assert_exact("p", &s.rates, g.get("p"));

    let l = s.losses;
    // f32 rounds 1 + 1e-10 to 1 inside the entropy logs: allow 1e-10 per feature there.
    let dc = g.shape("p")[0] as f64;
    let ent_slack = if std::mem::size_of::<T>() == 4 {
        2e-10 * dc
    } else {
        0.0
    };
    assert_close("loss_mse", &[l.mse], &[g.scalar("loss_mse")], tol_loss);
    assert!(
        (l.entropy - g.scalar("loss_entropy")).abs()
            <= tol_loss * g.scalar("loss_entropy").abs() + ent_slack
    );
    assert_close("loss_cov", &[l.cov], &[g.scalar("loss_cov")], tol_loss);
    assert_close(
        "loss_total",
        &[l.total],
        &[g.scalar("loss_total")],
        tol_loss,
    );
    assert!(s.cov.is_some(), "covariance term computed");
    let stats = CovarianceStats::from_columns(&f.codes.to_columns()).unwrap();
    assert_close(
        "cov_matrix",
        &stats.covariance_matrix(),
        g.get("cov_matrix"),
        tol_loss,
    );

    let b = &s.backward;
    assert_close("dL_dxhat", &b.dl_dxhat, g.get("dL_dxhat"), tol_grad);
    assert_close("dL_dh", &b.dl_dact, g.get("dL_dh"), tol_grad);
    assert_close("dL_dz_sign_s", &b.dl_dz, g.get("dL_dz_sign_s"), tol_grad);
    for (name, got) in bae_ref::PARAM_NAMES.iter().zip(b.grads.tensors()) {
        assert_close(
            &format!("grad.sign_s.{name}"),
            got,
            g.get(&format!("grad.sign_s.{name}")),
            tol_grad,
        );
    }
    let ste = run::<T>(g, Estimator::Ste);
    assert_close(
        "dL_dz (ste) = dL_dh",
        &ste.backward.dl_dz,
        g.get("dL_dh"),
        tol_grad,
    );
    for (name, got) in bae_ref::PARAM_NAMES
        .iter()
        .zip(ste.backward.grads.tensors())
    {
        assert_close(
            &format!("grad.sign.{name}"),
            got,
            g.get(&format!("grad.sign.{name}")),
            tol_grad,
        );
    }
}

#[test]
fn golden_f64_forward_losses_gradients() {
    for case in CASES {
        check_case::<f64>(&Golden::load(case), F64_TOL, F64_TOL);
    }
}

#[test]
fn golden_f32_fast_path() {
    for case in CASES {
        check_case::<f32>(&Golden::load(case), 1e-6, 1e-5);
    }
}

/// The three unweighted per-term gradients w.r.t. H, each from its own building block.
#[test]
fn golden_per_term_gradients() {
    for case in CASES {
        let g = Golden::load(case);
        let (n, dc) = (g.shape("h")[0], g.shape("h")[1]);
        let params = g.params("");
        let x = g.get("x");
        let mse_only = Arch::Bae {
            estimator: Estimator::Ste,
            lambda_entropy: 0.0,
            lambda_cov: 0.0,
        };
        let s = bae_ref::step(&params, x, n, &mse_only, true);
        assert_close("dmse_dh", &s.backward.dl_dact, g.get("dmse_dh"), F64_TOL);

        let coef = bae_bits::entropy_grad_coeffs(&s.rates, n);
        let dent: Vec<f64> = (0..n).flat_map(|_| coef.iter().copied()).collect();
        assert_close("dentropy_dh", &dent, g.get("dentropy_dh"), F64_TOL);

        let rows = PackedRows::from_dense01(g.get("h"), n, dc);
        let stats = CovarianceStats::from_columns(&rows.to_columns()).unwrap();
        let mut dcov = vec![0.0f64; n * dc];
        stats.add_covariance_grad(&rows, 1.0, &mut dcov);
        assert_close("dcov_dh", &dcov, g.get("dcov_dh"), F64_TOL);
    }
}

fn adam_config(g: &Golden) -> AdamConfig {
    assert_eq!(g.scalar("adam.weight_decay"), 0.0);
    AdamConfig {
        lr: g.scalar("adam.lr"),
        beta1: g.scalar("adam.beta1"),
        beta2: g.scalar("adam.beta2"),
        eps: g.scalar("adam.eps"),
    }
}

/// Five Adam steps on the same batch, sign_s, full loss: losses before each step and parameters after.
fn adam_trajectory<T: Float + Into<f64>>(tol_loss: f64, tol_param: f64) {
    let g = Golden::load("bae_small.safetensors");
    let n = g.shape("x")[0];
    let x: Vec<T> = g.get("x").iter().map(|&v| T::from_f64(v)).collect();
    let arch = arch(&g, Estimator::SignS);
    let mut params: Params<T> = g.params("").cast();
    let mut adam = Adam::new(adam_config(&g), &params);
    let steps = g.get("adam.loss_total").len();
    assert_eq!(steps, 5);
    for t in 0..steps {
        let s = bae_ref::step(&params, &x, n, &arch, true);
        for (key, got) in [
            ("adam.loss_total", s.losses.total),
            ("adam.loss_mse", s.losses.mse),
            ("adam.loss_cov", s.losses.cov),
        ] {
            assert_close(&format!("{key}[{t}]"), &[got], &[g.get(key)[t]], tol_loss);
        }
        adam.step(&mut params, &s.backward.grads);
        let want = g.params(&format!("adam.step{}.", t + 1));
        for (name, (got, w)) in bae_ref::PARAM_NAMES
            .iter()
            .zip(params.tensors().into_iter().zip(want.tensors()))
        {
            assert_close(&format!("step{} {name}", t + 1), got, w, tol_param);
        }
    }
}

#[test]
fn golden_adam_trajectory_f64() {
    adam_trajectory::<f64>(F64_TOL, F64_TOL);
}

#[test]
fn golden_adam_trajectory_f32() {
    // After the first update the parameters leave the dyadic grid: f32 follows approximately.
    adam_trajectory::<f32>(1e-5, 1e-5);
}
