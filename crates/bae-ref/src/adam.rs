//! Adam exactly as torch computes it in float32 (the official optimiser), operation for operation:
//! - `m.lerp_(g, 1-b1)`: `m = fma(1-b1, g - m, m)` (torch's vectorised lerp is a fused multiply-add);
//! - `v.mul_(b2).addcmul_(g, g, value=1-b2)`: `v = fma((1-b2) g, g, b2 v)` (addcmul fuses too);
//! - `denom = sqrt(v) / sqrt(1-b2^t) + eps` (eps after the bias correction);
//! - `p.addcdiv_(m, denom, value=-step)`: `p = p + (-step · m) / denom`, `step = lr / (1-b1^t)`.
//!
//! The scalars are Python floats (f64, `b ** t` by libm's `pow`) rounded to f32 where used.
//! Checked bit for bit against torch.optim.Adam's f32 trajectories (`tests/adam_torch.rs`). One
//! difference from torch on a CPU: there its f32 sqrt is MKL's vector sqrt, which is not correctly
//! rounded; ours is IEEE, as CUDA's sqrtf on which the official code trained.

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
        let s = AdamScalars::<T>::new(&self.config, self.t);
        let ps = params.tensors_mut();
        let ms = self.m.tensors_mut();
        let vs = self.v.tensors_mut();
        let gs = grads.tensors();
        for (((p, m), v), g) in ps.into_iter().zip(ms).zip(vs).zip(gs) {
            p.par_chunks_mut(4096)
                .zip(m.par_chunks_mut(4096))
                .zip(v.par_chunks_mut(4096))
                .zip(g.par_chunks(4096))
                .for_each(|(((p, m), v), g)| update(&s, p, m, v, g));
        }
    }
}

/// The step's scalars as torch forms them: Python floats (f64) rounded to the tensor's dtype.
pub struct AdamScalars<T> {
    /// `lr / (1 - b1^t)`
    pub step_size: T,
    /// `sqrt(1 - b2^t)`
    pub bc2_sqrt: T,
    /// `1 - b1`, the lerp weight
    pub w1: T,
    pub b2: T,
    /// `1 - b2`
    pub w2: T,
    pub eps: T,
}

impl<T: Float> AdamScalars<T> {
    /// `t` is the step number after the increment (>= 1).
    pub fn new(c: &AdamConfig, t: u64) -> Self {
        // Python's `beta ** step` and `bc ** 0.5` are libm's pow, as powf is (powi differs in
        // the last bit for some t)
        let t = t as f64;
        AdamScalars {
            step_size: T::from_f64(c.lr / (1.0 - c.beta1.powf(t))),
            bc2_sqrt: T::from_f64((1.0 - c.beta2.powf(t)).powf(0.5)),
            w1: T::from_f64(1.0 - c.beta1),
            b2: T::from_f64(c.beta2),
            w2: T::from_f64(1.0 - c.beta2),
            eps: T::from_f64(c.eps),
        }
    }
}

fn update<T: Float>(s: &AdamScalars<T>, p: &mut [T], m: &mut [T], v: &mut [T], g: &[T]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has FMA (checked above)
        unsafe { update_fma(s, p, m, v, g) };
        return;
    }
    update_any(s, p, m, v, g)
}

/// The same loop compiled with FMA instructions (otherwise `mul_add` is a libm call per element).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn update_fma<T: Float>(s: &AdamScalars<T>, p: &mut [T], m: &mut [T], v: &mut [T], g: &[T]) {
    update_any(s, p, m, v, g)
}

#[inline(always)]
fn update_any<T: Float>(s: &AdamScalars<T>, p: &mut [T], m: &mut [T], v: &mut [T], g: &[T]) {
    for i in 0..p.len() {
        let gi = g[i];
        m[i] = s.w1.mul_add(gi - m[i], m[i]);
        v[i] = (s.w2 * gi).mul_add(gi, s.b2 * v[i]);
        let denom = v[i].sqrt() / s.bc2_sqrt + s.eps;
        // p + (-step m) / denom, written as a subtraction (negation is exact)
        p[i] -= (s.step_size * m[i]) / denom;
    }
}
