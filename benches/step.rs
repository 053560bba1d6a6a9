//! Criterion benchmark of one full CPU training step (forward, MSE + entropy + covariance, backward, Adam).
use bae_ref::{Adam, AdamConfig, Arch, Estimator, Params};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn step(c: &mut Criterion) {
    bae_train::memory::keep_freed_memory();
    let mut group = c.benchmark_group("train_step_cpu");
    group.sample_size(10);
    for (d, dc, n) in [(576usize, 2304usize, 512usize), (2048, 8192, 512)] {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let x: Vec<f32> = (0..n * d)
            .map(|_| rng.random::<f32>() * 4.0 - 2.0)
            .collect();
        let mut params = Params::<f32>::init_linear(d, dc, || rng.random::<f64>());
        let mut adam = Adam::new(AdamConfig::default(), &params);
        let arch = Arch::Bae {
            estimator: Estimator::SignS,
            lambda_entropy: 1e-7,
            lambda_cov: 1e-7,
        };
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("d{d}_dc{dc}_n{n}"), |b| {
            b.iter(|| {
                let s = bae_ref::step(&params, &x, n, &arch, true);
                adam.step(&mut params, &s.backward.grads);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, step);
criterion_main!(benches);
