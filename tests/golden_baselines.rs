//! SAE baselines (ReLU + L1, TopK, fixed-threshold JumpReLU) against the official golden vectors.

mod common;
use bae_ref::{Arch, Float, Params};
use common::*;

fn check<T: Float + Into<f64>>(g: &Golden, prefix: &str, arch: Arch, tol: f64, exact_xhat: bool) {
    let params: Params<T> = g.params("").cast();
    let x: Vec<T> = g.get("x").iter().map(|&v| T::from_f64(v)).collect();
    let n = g.shape("x")[0];
    let s = bae_ref::step(&params, &x, n, &arch, true);
    let key = |k: &str| format!("{prefix}.{k}");
    assert_exact("z", &s.forward.z, g.get("z"));
    assert_exact(&key("a"), &s.forward.act, g.get(&key("a")));
    if exact_xhat {
        assert_exact(&key("x_hat"), &s.forward.x_hat, g.get(&key("x_hat")));
    } else {
        assert_close(&key("x_hat"), &s.forward.x_hat, g.get(&key("x_hat")), tol);
    }
    assert_close(
        &key("loss_mse"),
        &[s.losses.mse],
        &[g.scalar(&key("loss_mse"))],
        tol,
    );
    assert_close(
        &key("loss_l1"),
        &[s.losses.l1],
        &[g.scalar(&key("loss_l1"))],
        tol,
    );
    assert_close(
        &key("loss_total"),
        &[s.losses.total],
        &[g.scalar(&key("loss_total"))],
        tol,
    );
    assert_close(
        &key("dL_dxhat"),
        &s.backward.dl_dxhat,
        g.get(&key("dL_dxhat")),
        tol,
    );
    assert_close(
        &key("dL_da"),
        &s.backward.dl_dact,
        g.get(&key("dL_da")),
        tol,
    );
    assert_close(&key("dL_dz"), &s.backward.dl_dz, g.get(&key("dL_dz")), tol);
    for (name, got) in bae_ref::PARAM_NAMES.iter().zip(s.backward.grads.tensors()) {
        assert_close(
            &key(&format!("grad.{name}")),
            got,
            g.get(&key(&format!("grad.{name}"))),
            tol,
        );
    }
    if prefix == "topk" {
        let kept: Vec<f64> = s
            .forward
            .pass
            .row_popcounts()
            .iter()
            .map(|&c| c as f64)
            .collect();
        assert_exact("topk.n_kept", &kept, g.get("topk.n_kept"));
    }
}

fn archs(g: &Golden) -> [(&'static str, Arch); 3] {
    [
        (
            "relu",
            Arch::ReluL1 {
                l1: g.scalar("relu.l1_weight"),
            },
        ),
        (
            "topk",
            Arch::TopK {
                k: g.scalar("topk.k") as usize,
                l1: g.scalar("topk.l1_weight"),
            },
        ),
        (
            "jumprelu",
            Arch::JumpRelu {
                theta: g.scalar("jumprelu.theta"),
                l1: g.scalar("jumprelu.l1_weight"),
            },
        ),
    ]
}

#[test]
fn golden_baselines_f64() {
    let g = Golden::load("baselines.safetensors");
    for (prefix, arch) in archs(&g) {
        check::<f64>(&g, prefix, arch, 1e-9, false);
    }
}

#[test]
fn golden_baselines_f32() {
    let g = Golden::load("baselines.safetensors");
    for (prefix, arch) in archs(&g) {
        // a has up to 18 significant bits, so the baselines' x_hat is not exact in f32 (README)
        check::<f32>(&g, prefix, arch, 1e-5, false);
    }
}
