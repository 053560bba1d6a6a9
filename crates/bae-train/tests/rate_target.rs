//! The sparsity control on synthetic data: the rate target brings every feature's firing rate near
//! the target without making any constant, and the same settings give the same rates when the
//! activations are 10x larger (FVU loss: nothing in the objective depends on the scale).

use bae_train::synth::{SynthSpec, generate};
use bae_train::{MemoryRows, RunOptions, TrainConfig};

/// Trains on `data` (d = 16) with the rate target and returns the validation rates.
fn rates_after_training(data: Vec<f32>, dir: &std::path::Path, name: &str) -> Vec<f64> {
    let src = MemoryRows {
        d: 16,
        data,
        name: name.into(),
    };
    let cfg = TrainConfig {
        out: dir.join(name),
        steps: Some(600),
        batch_size: 256,
        lr: 2e-3,
        lambda_entropy: 0.0,
        lambda_cov: 0.0,
        fvu_loss: true,
        b_dec_mean_init: true,
        target_rate: Some(0.05),
        lambda_rate: 3.0,
        ..TrainConfig::default()
    };
    let o = bae_train::train(&cfg, &src, RunOptions::default()).expect("train");
    o.val.expect("validation").rates
}

#[test]
fn rates_reach_the_target_at_any_scale() {
    let spec = SynthSpec {
        n: 6000,
        d: 16,
        bits: 6,
        p_min: 0.02,
        p_max: 0.3,
        noise: 0.1,
        seed: 3,
    };
    let data = generate(&spec).unwrap().data;
    let scaled: Vec<f32> = data.iter().map(|v| v * 10.0).collect();
    let dir = tempfile::tempdir().unwrap();
    let a = rates_after_training(data, dir.path(), "x1");
    let b = rates_after_training(scaled, dir.path(), "x10");
    let mean = |r: &[f64]| r.iter().sum::<f64>() / r.len() as f64;
    let (ma, mb) = (mean(&a), mean(&b));
    println!("mean firing rate: x1 {ma:.4}, x10 {mb:.4} (target 0.05)");
    for (r, what) in [(&a, "x1"), (&b, "x10")] {
        assert!(
            r.iter().all(|&p| p > 0.0 && p < 1.0),
            "{what}: a constant feature: {r:?}"
        );
        let m = mean(r);
        // from ~0.5 at the start to near the target in 600 steps (the data's own bits fire 2-30 %)
        assert!(
            (0.025..=0.15).contains(&m),
            "{what}: mean rate {m} far from 0.05"
        );
    }
    assert!((ma - mb).abs() <= 0.02 * ma.max(mb), "x1 {ma} vs x10 {mb}");
}
