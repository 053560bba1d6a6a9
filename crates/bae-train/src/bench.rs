//! Throughput of one full CPU training step (forward, three loss terms, backward, Adam).

use bae_ref::{Adam, AdamConfig, Arch, Estimator, Params};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct StepTiming {
    pub d: usize,
    pub d_code: usize,
    pub n: usize,
    pub with_cov: bool,
    /// median seconds per step
    pub median_s: f64,
    pub min_s: f64,
    pub tokens_per_s: f64,
}

/// Median over `reps` steps (after one warm-up) at width d -> d' on a batch of n Gaussian rows.
pub fn time_step(d: usize, d_code: usize, n: usize, reps: usize, with_cov: bool) -> StepTiming {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x: Vec<f32> = (0..n * d)
        .map(|_| (rng.random::<f32>() - 0.5) * 4.0)
        .collect();
    let mut params = Params::<f32>::init_linear(d, d_code, || rng.random::<f64>());
    let mut adam = Adam::new(AdamConfig::default(), &params);
    let arch = Arch::Bae {
        estimator: Estimator::SignS,
        lambda_entropy: 1e-7,
        lambda_cov: if with_cov { 1e-7 } else { 0.0 },
    };
    let mut times = Vec::with_capacity(reps);
    for r in 0..=reps {
        let t = Instant::now();
        let s = bae_ref::step(&params, &x, n, &arch, true);
        adam.step(&mut params, &s.backward.grads);
        drop(s);
        if r > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median_s = times[times.len() / 2];
    StepTiming {
        d,
        d_code,
        n,
        with_cov,
        median_s,
        min_s: times[0],
        tokens_per_s: n as f64 / median_s,
    }
}
