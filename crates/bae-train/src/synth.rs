//! Synthetic activations with a known entropy (the paper's §4.1): r independent bits with chosen
//! firing probabilities, each along its own random direction, plus Gaussian noise. The true
//! feature-set entropy is sum_i H(p_i) bits, so a trained BAE's estimate can be checked against it.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

#[derive(Clone, Debug, PartialEq)]
pub struct SynthSpec {
    pub n: usize,
    pub d: usize,
    pub bits: usize,
    /// firing probabilities are drawn uniformly in [p_min, p_max] (both 0.5: fair bits, as the paper)
    pub p_min: f64,
    pub p_max: f64,
    /// standard deviation of the isotropic noise added to every element
    pub noise: f64,
    pub seed: u64,
}

pub struct Synth {
    /// n x d row-major
    pub data: Vec<f32>,
    pub probabilities: Vec<f64>,
    /// the r x n ground-truth bits are not stored; their entropy is
    pub true_entropy_bits: f64,
}

/// Bernoulli entropy in bits without the training epsilon (the ground truth).
pub fn bernoulli_bits(p: f64) -> f64 {
    let h = |q: f64| if q > 0.0 { -q * q.log2() } else { 0.0 };
    h(p) + h(1.0 - p)
}

pub fn generate(spec: &SynthSpec) -> Result<Synth, String> {
    if spec.n == 0 || spec.d == 0 || spec.bits == 0 {
        return Err("synth: --n, --d and --bits must be positive".into());
    }
    if spec.p_min.is_nan()
        || spec.p_max.is_nan()
        || spec.p_min < 0.0
        || spec.p_min > spec.p_max
        || spec.p_max > 1.0
    {
        return Err(format!(
            "synth: need 0 <= p-min <= p-max <= 1, got {} and {}",
            spec.p_min, spec.p_max
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let probabilities: Vec<f64> = (0..spec.bits)
        .map(|_| spec.p_min + (spec.p_max - spec.p_min) * rng.random::<f64>())
        .collect();
    // unit-variance Gaussian directions: norm ~ sqrt(d), well separated from the noise for small noise
    let directions: Vec<f32> = (0..spec.bits * spec.d)
        .map(|_| rng.sample::<f64, _>(StandardNormal) as f32)
        .collect();
    let mut data = vec![0f32; spec.n * spec.d];
    for row in data.chunks_mut(spec.d) {
        for (i, &p) in probabilities.iter().enumerate() {
            if rng.random::<f64>() < p {
                for (v, &u) in row
                    .iter_mut()
                    .zip(&directions[i * spec.d..(i + 1) * spec.d])
                {
                    *v += u;
                }
            }
        }
        for v in row.iter_mut() {
            *v += (spec.noise * rng.sample::<f64, _>(StandardNormal)) as f32;
        }
    }
    let true_entropy_bits = probabilities.iter().map(|&p| bernoulli_bits(p)).sum();
    Ok(Synth {
        data,
        probabilities,
        true_entropy_bits,
    })
}
