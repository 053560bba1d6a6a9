//! `row_metrics` against a brute-force evaluation written from the definitions (method.md,
//! "Metrics"): one row at a time, two-pass mean, full sorts for the top-10 by salience.

use bae_analysis::eval::features::{SALIENT_TOP, row_metrics};
use bae_ref::{Arch, Estimator, Params};
use bae_train::MemoryRows;

/// Deterministic pseudo-random values in [0, 1).
fn lcg(seed: &mut u64) -> f64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 11) as f64 / (1u64 << 53) as f64
}

struct Brute {
    mse: f64,
    fvu: f64,
    cosine: f64,
    l2_ratio: f64,
    l0: f64,
    rates: Vec<f64>,
    salience: Vec<f64>,
}

fn brute(p: &Params<f32>, arch: &Arch, x: &[f32], n: usize) -> Brute {
    let (d, dc) = (p.d, p.d_code);
    let rows: Vec<_> = (0..n)
        .map(|i| bae_ref::forward(p, &x[i * d..(i + 1) * d], 1, arch))
        .collect();
    let mean: Vec<f64> = (0..d)
        .map(|j| (0..n).map(|i| x[i * d + j] as f64).sum::<f64>() / n as f64)
        .collect();
    let (mut sse, mut var, mut cos, mut ratio, mut active) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut fires = vec![0.0; dc];
    for (i, f) in rows.iter().enumerate() {
        let xi = &x[i * d..(i + 1) * d];
        let dot: f64 = xi
            .iter()
            .zip(&f.x_hat)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        let nx: f64 = xi.iter().map(|&a| (a as f64).powi(2)).sum::<f64>().sqrt();
        let nr: f64 = f
            .x_hat
            .iter()
            .map(|&a| (a as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        cos += dot / (nx * nr);
        ratio += nr / nx;
        for j in 0..d {
            sse += (xi[j] as f64 - f.x_hat[j] as f64).powi(2);
            var += (xi[j] as f64 - mean[j]).powi(2);
        }
        for (j, fj) in fires.iter_mut().enumerate() {
            if f.codes.get(0, j) {
                *fj += 1.0;
                active += 1.0;
            }
        }
    }
    let rates: Vec<f64> = fires.iter().map(|c| c / n as f64).collect();
    let mut hits = vec![0.0; dc];
    for f in &rows {
        let score = |j: usize| -> f64 {
            if arch.is_binary() {
                (if f.codes.get(0, j) { 1.0 } else { 0.0 } - rates[j]).abs()
            } else {
                f.act[j] as f64
            }
        };
        let mut order: Vec<usize> = (0..dc)
            .filter(|&j| arch.is_binary() || f.act[j] != 0.0)
            .collect();
        order.sort_by(|&a, &b| score(b).total_cmp(&score(a)).then(a.cmp(&b)));
        for &j in order.iter().take(SALIENT_TOP) {
            hits[j] += 1.0;
        }
    }
    Brute {
        mse: sse / (n * d) as f64,
        fvu: sse / var,
        cosine: cos / n as f64,
        l2_ratio: ratio / n as f64,
        l0: active / n as f64,
        rates,
        salience: hits.iter().map(|h| h / n as f64).collect(),
    }
}

fn close(a: f64, b: f64) -> bool {
    // f32 forwards of a batch and of one row round differently in the last bits
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[test]
fn row_metrics_equal_brute_force_for_every_arch() {
    let (d, dc, n) = (6, 40, 203);
    let mut seed = 7u64;
    let p = Params::<f32>::init_linear(d, dc, || lcg(&mut seed));
    let x: Vec<f32> = (0..n * d)
        .map(|_| (lcg(&mut seed) * 4.0 - 2.0) as f32)
        .collect();
    let src = MemoryRows {
        d,
        data: x.clone(),
        name: "mem".into(),
    };
    let idx: Vec<usize> = (0..n).collect();
    let pb = indicatif::ProgressBar::hidden();
    for arch in [
        Arch::Bae {
            estimator: Estimator::SignS,
            lambda_entropy: 1e-7,
            lambda_cov: 1e-7,
        },
        Arch::ReluL1 { l1: 1e-3 },
        Arch::TopK { k: 5, l1: 0.0 },
        Arch::JumpRelu {
            theta: 0.1,
            l1: 1e-3,
        },
    ] {
        // batches of 37 rows: results do not depend on the batching
        let m = row_metrics(&p, &arch, &src, &idx, 37, 64, &pb).unwrap();
        let b = brute(&p, &arch, &x, n);
        let r = &m.reconstruction;
        let name = arch.name();
        assert!(close(r.mse, b.mse), "{name} mse {} vs {}", r.mse, b.mse);
        assert!(close(r.fvu, b.fvu), "{name} fvu {} vs {}", r.fvu, b.fvu);
        assert!(close(r.explained_variance, 1.0 - b.fvu));
        assert!(close(r.cosine, b.cosine), "{name} cosine");
        assert!(close(r.l2_ratio, b.l2_ratio), "{name} l2 ratio");
        let f = &m.features;
        assert!(close(f.l0, b.l0), "{name} l0 {} vs {}", f.l0, b.l0);
        assert_eq!(f.rates, b.rates, "{name} rates");
        assert_eq!(f.salience_share, b.salience, "{name} salience");
        let rare: Vec<f64> = b.rates.iter().map(|&p| p.min(1.0 - p)).collect();
        let count = |pred: &dyn Fn(f64) -> bool, v: &[f64]| v.iter().filter(|&&q| pred(q)).count();
        assert_eq!(f.dead, count(&|q| q == 0.0, &b.rates));
        assert_eq!(f.dense_rate_10, count(&|q| q > 0.1, &b.rates));
        assert_eq!(f.inverted, count(&|q| q > 0.5, &b.rates));
        assert_eq!(f.dense_rare_10, count(&|q| q > 0.1, &rare));
        assert_eq!(f.dense_rare_1, count(&|q| q > 0.01, &rare));
        assert_eq!(f.constant, count(&|q| q < 1e-4, &rare));
        assert_eq!(f.specific, count(&|q| (1e-4..=0.01).contains(&q), &rare));
        assert_eq!(f.cov_term.is_some(), arch.is_binary());
        let mean0: f64 = (0..n).map(|i| x[i * d] as f64).sum::<f64>() / n as f64;
        assert!((m.mean_row[0] as f64 - mean0).abs() < 1e-6);
    }
}

#[test]
fn empty_evaluation_set_is_an_error() {
    let p = Params::<f32>::zeros(2, 4);
    let src = MemoryRows {
        d: 2,
        data: vec![0.0; 8],
        name: "mem".into(),
    };
    let arch = Arch::ReluL1 { l1: 0.0 };
    let pb = indicatif::ProgressBar::hidden();
    let e = row_metrics(&p, &arch, &src, &[], 8, 8, &pb).err().unwrap();
    assert!(e.contains("empty"), "{e}");
}
