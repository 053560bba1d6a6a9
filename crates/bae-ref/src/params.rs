//! Autoencoder parameters in the golden layout: `W_enc [d, d']`, `b_enc [d']`, `W_dec [d', d]`, `b_dec [d]`
//! (the transposes of torch's `nn.Linear.weight`).

use crate::Float;

/// Names of the four parameter tensors, in the order torch's Adam visits them.
pub const PARAM_NAMES: [&str; 4] = ["W_enc", "b_enc", "W_dec", "b_dec"];

#[derive(Clone, Debug, PartialEq)]
pub struct Params<T> {
    /// input width d
    pub d: usize,
    /// code width d'
    pub d_code: usize,
    pub w_enc: Vec<T>,
    pub b_enc: Vec<T>,
    pub w_dec: Vec<T>,
    pub b_dec: Vec<T>,
}

impl<T: Float> Params<T> {
    pub fn zeros(d: usize, d_code: usize) -> Self {
        Params {
            d,
            d_code,
            w_enc: vec![T::ZERO; d * d_code],
            b_enc: vec![T::ZERO; d_code],
            w_dec: vec![T::ZERO; d_code * d],
            b_dec: vec![T::ZERO; d],
        }
    }

    /// torch `nn.Linear` default init: every weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    /// fan_in = d for the encoder and d' for the decoder. `uniform01` yields U[0, 1) draws.
    pub fn init_linear(d: usize, d_code: usize, mut uniform01: impl FnMut() -> f64) -> Self {
        let mut p = Self::zeros(d, d_code);
        let enc = 1.0 / (d as f64).sqrt();
        let dec = 1.0 / (d_code as f64).sqrt();
        for (buf, bound) in [
            (&mut p.w_enc, enc),
            (&mut p.b_enc, enc),
            (&mut p.w_dec, dec),
            (&mut p.b_dec, dec),
        ] {
            for v in buf.iter_mut() {
                *v = T::from_f64((2.0 * uniform01() - 1.0) * bound);
            }
        }
        p
    }

    /// Shapes in the golden layout, in `PARAM_NAMES` order.
    pub fn shapes(&self) -> [Vec<usize>; 4] {
        [
            vec![self.d, self.d_code],
            vec![self.d_code],
            vec![self.d_code, self.d],
            vec![self.d],
        ]
    }

    pub fn tensors(&self) -> [&[T]; 4] {
        [&self.w_enc, &self.b_enc, &self.w_dec, &self.b_dec]
    }

    pub fn tensors_mut(&mut self) -> [&mut Vec<T>; 4] {
        [
            &mut self.w_enc,
            &mut self.b_enc,
            &mut self.w_dec,
            &mut self.b_dec,
        ]
    }

    pub fn n_params(&self) -> usize {
        self.tensors().iter().map(|t| t.len()).sum()
    }

    /// Convert element type (f64 oracle <-> f32 fast path).
    pub fn cast<U: Float>(&self) -> Params<U> {
        let c = |v: &[T]| v.iter().map(|x| U::from_f64(x.to_f64())).collect();
        Params {
            d: self.d,
            d_code: self.d_code,
            w_enc: c(&self.w_enc),
            b_enc: c(&self.b_enc),
            w_dec: c(&self.w_dec),
            b_dec: c(&self.b_dec),
        }
    }

    /// Index of the first non-finite value, as (tensor name, flat index).
    pub fn first_non_finite(&self) -> Option<(&'static str, usize)> {
        for (name, t) in PARAM_NAMES.iter().zip(self.tensors()) {
            if let Some(i) = t.iter().position(|v| !v.is_finite()) {
                return Some((name, i));
            }
        }
        None
    }
}
