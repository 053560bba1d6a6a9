//! Time the phases of one f32 step (development aid): `cargo run --release -p bae-ref --example phases`.
use bae_ref::{Float, Params};
use std::time::Instant;

fn t<F: FnMut()>(name: &str, mut f: F) {
    f();
    let reps = 5;
    let s = Instant::now();
    for _ in 0..reps {
        f();
    }
    println!(
        "{name:40} {:8.2} ms",
        s.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
}

fn main() {
    let (d, dc, n) = (576usize, 2304usize, 512usize);
    let mut k = 1u64;
    let mut r = || {
        k = k
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (k >> 11) as f64 / (1u64 << 53) as f64
    };
    let p = Params::<f32>::init_linear(d, dc, &mut r);
    let x: Vec<f32> = (0..n * d).map(|_| (r() * 4.0 - 2.0) as f32).collect();
    let z = bae_ref::encode_pre(&p, &x, n);
    let codes = bae_bits::PackedRows::encode_positive(&z, n, dc);
    let act = codes.to_dense::<f32>();
    let xh = bae_ref::decode(&p, &act, n);
    let mut g = vec![0f32; n * dc];
    t("encode gemm", || drop(bae_ref::encode_pre(&p, &x, n)));
    t("encode_positive", || {
        drop(bae_bits::PackedRows::encode_positive(&z, n, dc))
    });
    t("to_dense", || drop(codes.to_dense::<f32>()));
    t("decode gemm", || drop(bae_ref::decode(&p, &act, n)));
    t("G = dxhat W_dec^T", || {
        f32::gemm(n, d, dc, 1.0, &xh, false, &p.w_dec, true, 0.0, &mut g)
    });
    let mut gw = vec![0f32; d * dc];
    t("W_enc grad x^T dz", || {
        f32::gemm(d, n, dc, 1.0, &x, true, &g, false, 0.0, &mut gw)
    });
    let mut gd = vec![0f32; dc * d];
    t("W_dec grad act^T dxhat", || {
        f32::gemm(dc, n, d, 1.0, &act, true, &xh, false, 0.0, &mut gd)
    });
    let cols = codes.to_columns();
    t("to_columns", || drop(codes.to_columns()));
    t("CovarianceStats", || {
        drop(bae_bits::CovarianceStats::from_columns(&cols).unwrap())
    });
    let st = bae_bits::CovarianceStats::from_columns(&cols).unwrap();
    t("add_covariance_grad", || {
        st.add_covariance_grad(&codes, 1e-7, &mut g)
    });
    t("column_sums", || drop(bae_ref::column_sums(&g, dc)));
    let mut adam = bae_ref::Adam::new(bae_ref::AdamConfig::default(), &p);
    let mut pp = p.clone();
    let grads = p.clone();
    t("adam", || adam.step(&mut pp, &grads));
    let arch = bae_ref::Arch::Bae {
        estimator: bae_ref::Estimator::SignS,
        lambda_entropy: 1e-7,
        lambda_cov: 1e-7,
    };
    t("whole step", || drop(bae_ref::step(&p, &x, n, &arch, true)));
}
