//! Adam exactly as torch's single-tensor path computes it (the official optimiser):
//! `m = lerp(m, g, 1-b1)`, `v = b2 v + (1-b2) g^2`,
//! `p -= (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps)` — eps is added after the bias correction.

use crate::{Float, Params};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamConfig {
    /// Official defaults: lr 5e-4, betas (0.9, 0.999), eps 1e-8, no weight decay.
    fn default() -> Self {
        AdamConfig {
            lr: 5e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Optimiser state: everything needed to continue a run exactly (moments and step count).
#[derive(Clone, Debug, PartialEq)]
pub struct Adam<T> {
    pub config: AdamConfig,
    /// number of updates done so far
    pub t: u64,
    pub m: Params<T>,
    pub v: Params<T>,
}

impl<T: Float> Adam<T> {
    pub fn new(config: AdamConfig, like: &Params<T>) -> Self {
        Adam {
            config,
            t: 0,
            m: Params::zeros(like.d, like.d_code),
            v: Params::zeros(like.d, like.d_code),
        }
    }

    pub fn step(&mut self, params: &mut Params<T>, grads: &Params<T>) {
        self.t += 1;
        let c = self.config;
        let t = self.t as i32;
        // torch computes these scalars in Python floats (f64), then uses them in the tensor's dtype.
        let step_size = T::from_f64(c.lr / (1.0 - c.beta1.powi(t)));
        let bc2_sqrt = T::from_f64((1.0 - c.beta2.powi(t)).sqrt());
        let w1 = T::from_f64(1.0 - c.beta1);
        let b2 = T::from_f64(c.beta2);
        let w2 = T::from_f64(1.0 - c.beta2);
        let eps = T::from_f64(c.eps);
        let ps = params.tensors_mut();
        let ms = self.m.tensors_mut();
        let vs = self.v.tensors_mut();
        let gs = grads.tensors();
        for (((p, m), v), g) in ps.into_iter().zip(ms).zip(vs).zip(gs) {
            p.par_chunks_mut(4096)
                .zip(m.par_chunks_mut(4096))
                .zip(v.par_chunks_mut(4096))
                .zip(g.par_chunks(4096))
                .for_each(|(((p, m), v), g)| {
                    for i in 0..p.len() {
                        let gi = g[i];
                        m[i] += w1 * (gi - m[i]);
                        v[i] = b2 * v[i] + w2 * gi * gi;
                        // same operation order as torch's addcdiv: p + (-step) * (m / denom)
                        let denom = v[i].sqrt() / bc2_sqrt + eps;
                        p[i] -= step_size * (m[i] / denom);
                    }
                });
        }
    }
}
