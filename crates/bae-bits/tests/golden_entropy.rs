//! Golden vectors of the official PyTorch code (float64): `entropy_sets.safetensors`, sets 0..5.
//! Firing rates must be exact; everything else within 1e-9 of max|ref| per tensor.

mod common;

use bae_bits::{
    CovarianceStats, CovarianceTerm, PackedRows, entropy_bits, entropy_grad_coeffs,
    entropy_per_feature, entropy_train_bits, firing_rates,
};
use safetensors::{Dtype, SafeTensors};
use std::path::PathBuf;

const TOL: f64 = 1e-9;

fn golden_dir() -> PathBuf {
    match std::env::var_os("BAE_GOLDEN_DIR") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/golden")),
    }
}

struct Tensor {
    shape: Vec<usize>,
    data: Vec<f64>,
}

fn tensor(st: &SafeTensors<'_>, name: &str) -> Tensor {
    let v = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(v.dtype(), Dtype::F64, "{name}");
    let data = v
        .data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    Tensor {
        shape: v.shape().to_vec(),
        data,
    }
}

#[track_caller]
fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    let e = common::rel_err(got, want);
    eprintln!("{what}: max rel err {e:.2e}");
    let all_zero = want.iter().all(|&v| v == 0.0);
    if all_zero {
        assert!(got.iter().all(|&v| v == 0.0), "{what}: expected all zeros");
    } else {
        assert!(e <= TOL, "{what}: relative error {e:e} > {TOL:e}");
    }
}

#[test]
fn entropy_sets_match_official() {
    let path = golden_dir().join("entropy_sets.safetensors");
    let buf = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set BAE_GOLDEN_DIR)", path.display()));
    let st = SafeTensors::deserialize(&buf).expect("golden file parses");
    let mut negative_entropy_seen = false;
    for set in 0..6 {
        let g = |name: &str| tensor(&st, &format!("set{set}.{name}"));
        let h = g("h");
        let (n, cols) = (h.shape[0], h.shape[1]);
        let rows = PackedRows::from_dense01(&h.data, n, cols);
        assert_eq!(rows.to_dense::<f64>(), h.data, "set{set}: h is 0/1");
        let pc = rows.to_columns();

        let p = firing_rates(&pc);
        assert_eq!(p, g("p").data, "set{set}: p must be exact");

        assert_close(
            &format!("set{set}.entropy_per_feature"),
            &entropy_per_feature(&p),
            &g("entropy_per_feature").data,
        );
        let ent = g("entropy");
        assert!(ent.shape.is_empty(), "scalars are 0-d tensors");
        assert_close(&format!("set{set}.entropy"), &[entropy_bits(&p)], &ent.data);

        let (train, active) = entropy_train_bits(&p);
        assert_close(
            &format!("set{set}.entropy_train"),
            &[train],
            &g("entropy_train").data,
        );
        assert_eq!(active, ent.data[0] >= 0.0, "set{set}: threshold quirk");
        if !active {
            negative_entropy_seen = true;
            assert_eq!(train, 0.0);
        }

        // dentropy_dh is the gradient of `entropy` (no threshold), one value per column
        let coef = entropy_grad_coeffs(&p, n);
        let dent: Vec<f64> = (0..n * cols).map(|x| coef[x % cols]).collect();
        assert_close(
            &format!("set{set}.dentropy_dh"),
            &dent,
            &g("dentropy_dh").data,
        );

        let stats = CovarianceStats::from_columns(&pc).unwrap();
        assert_close(
            &format!("set{set}.cov_matrix"),
            &stats.covariance_matrix(),
            &g("cov_matrix").data,
        );
        assert_close(&format!("set{set}.cov"), &[stats.term], &g("cov").data);
        let mut dcov = vec![0.0f64; n * cols];
        stats.add_covariance_grad(&rows, 1.0, &mut dcov);
        assert_close(&format!("set{set}.dcov_dh"), &dcov, &g("dcov_dh").data);

        let lean = CovarianceTerm::from_columns(&pc).unwrap();
        assert_eq!(lean.term, stats.term);
        let mut dcov2 = vec![0.0f64; n * cols];
        lean.add_covariance_grad(&rows, 1.0, &mut dcov2);
        assert_eq!(dcov2, dcov);
    }
    assert!(
        negative_entropy_seen,
        "set4 should exercise the threshold quirk"
    );
}
