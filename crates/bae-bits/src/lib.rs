//! Bit-packed binary code matrices (the codes `H ∈ {0,1}^{n×d'}` of a Binary Autoencoder) and
//! their statistics: firing counts and rates, Bernoulli entropy in bits, exact co-activation
//! counts, the unbiased covariance term `D = Σ_{j≠k} |C_jk|` and its gradient.
//!
//! Packing conventions (bit `b` of a `u64` is `(w >> b) & 1`, least significant first):
//! * [`PackedRows`]: row-major, one row (token) after another; row `i` occupies the
//!   `words_per_row = ceil(cols/64)` words starting at `i * words_per_row`, and bit `j % 64` of
//!   its word `j / 64` is `H[i, j]`.
//! * [`PackedColumns`]: column-major, column (feature) `j` occupies `words_per_col = ceil(n/64)`
//!   words starting at `j * words_per_col`, and bit `i % 64` of its word `i / 64` is `H[i, j]`.
//! * Tail bits (beyond `cols` in a row, beyond `n` in a column) are always 0; every kernel relies
//!   on it, and [`PackedRows::from_words`] / [`PackedColumns::from_words`] check it.
//!
//! Every statistic that can be exact is computed in integers (popcounts) and converted to floating
//! point once at the end: signs of the covariance are exact (`sign(0) = 0` for exactly
//! uncorrelated pairs), the term `D` is an exact integer sum divided once.
//!
//! For a training step use [`CovarianceTerm`] (term, signs, gradient; [`CovarianceTerm::update`]
//! reuses its buffers); [`CovarianceStats`] adds the full `cols²` co-activation matrix.
//!
//! ```
//! use bae_bits::{PackedRows, coactivation_counts, entropy_bits, firing_rates};
//!
//! let z = vec![0.3f32, -1.0, 2.0, 0.0, 0.5, 0.1]; // 2 rows x 3 features
//! let rows = PackedRows::encode_positive(&z, 2, 3); // codes 1[z > 0]
//! let cols = rows.to_columns();
//! assert_eq!(firing_rates(&cols), vec![0.5, 0.5, 1.0]);
//! assert_eq!(coactivation_counts(&cols), vec![1, 0, 1, 0, 1, 1, 1, 1, 2]);
//! assert!((entropy_bits(&firing_rates(&cols)) - 2.0).abs() < 1e-9);
//! ```
//!
//! The hot kernels have an AVX-512 path (F/BW/VPOPCNTDQ, detected at run time, never assumed at
//! compile time), AVX2 co-activation blocks on nibble-split columns where AVX-512 is missing, and a
//! portable one (plain Rust, with the `popcnt` instruction when present). All give bit-identical
//! results; the hidden `*_with(Backend, ..)` functions pick one for tests and benches.

mod coact;
mod covariance;
mod entropy;
pub mod estimators;
mod firing;
mod huge;
mod nibble;
mod packed;
mod panel;
mod rate_target;
pub mod set_entropy;
mod sign_product;
mod simd;
mod transpose;
#[doc(hidden)]
pub mod xorshift;

pub use coact::coactivation_counts;
#[doc(hidden)]
pub use coact::coactivation_counts_with;
pub use covariance::{CovarianceStats, CovarianceTerm, SignMasks};
pub use entropy::{
    ENTROPY_EPS, bernoulli_entropy_bits, entropy_bits, entropy_grad_coeffs, entropy_per_feature,
    entropy_train_bits,
};
pub use estimators::{TreeBound, bootstrap_interval, marginal_bits, miller_madow_bits, tree_bits};
pub use firing::{FiringCounter, firing_counts, firing_counts_rows, firing_rates};
#[doc(hidden)]
pub use firing::{firing_counts_rows_with, firing_counts_with};
pub use packed::{PackedColumns, PackedRows};
pub use rate_target::{rate_target_grad_coeffs, rate_target_term};
pub use sign_product::sign_product;
#[doc(hidden)]
pub use sign_product::sign_product_with;
#[doc(hidden)]
pub use simd::{Backend, Checked};

use std::fmt;

/// Floating-point element type of dense inputs and outputs (`f32`, `f64`).
pub trait Real: Copy + Send + Sync + 'static + PartialOrd {
    const ZERO: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;

    /// Packs `1[src[j] > 0]` into `dst` (`dst.len() == ceil(src.len()/64)`, tail bits 0).
    /// Overridden for `f32`/`f64` with SIMD compares; the default is the portable loop.
    #[doc(hidden)]
    fn pack_positive(src: &[Self], dst: &mut [u64], backend: Checked) {
        let _ = backend;
        packed::pack_with(src, dst, |v| v > Self::ZERO);
    }

    /// `out[l] = out[l] + scale * (nf * v[l] - q[l])`, evaluated in f64 (one rounding for the
    /// product, one for the sum, one to `Self`). Overridden with AVX-512 for `f32`/`f64`, with
    /// bit-identical results (no fused multiply-add).
    #[doc(hidden)]
    fn add_scaled(out: &mut [Self], v: &[i32], q: &[f64], nf: f64, scale: f64, backend: Checked) {
        let _ = backend;
        add_scaled_portable(out, v, q, nf, scale);
    }
}

#[inline]
fn add_scaled_portable<T: Real>(out: &mut [T], v: &[i32], q: &[f64], nf: f64, scale: f64) {
    for ((o, &v), &q) in out.iter_mut().zip(v).zip(q) {
        *o = T::from_f64(o.to_f64() + scale * (nf * v as f64 - q));
    }
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    #[inline]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn pack_positive(src: &[Self], dst: &mut [u64], backend: Checked) {
        simd::pack_positive_f32(backend.0, src, dst);
    }
    fn add_scaled(out: &mut [Self], v: &[i32], q: &[f64], nf: f64, scale: f64, backend: Checked) {
        if !simd::add_scaled_f32(backend.0, out, v, q, nf, scale) {
            add_scaled_portable(out, v, q, nf, scale);
        }
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    #[inline]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    fn pack_positive(src: &[Self], dst: &mut [u64], backend: Checked) {
        simd::pack_positive_f64(backend.0, src, dst);
    }
    fn add_scaled(out: &mut [Self], v: &[i32], q: &[f64], nf: f64, scale: f64, backend: Checked) {
        if !simd::add_scaled_f64(backend.0, out, v, q, nf, scale) {
            add_scaled_portable(out, v, q, nf, scale);
        }
    }
}

/// Errors from constructors and statistics that need a minimum shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BitsError {
    /// A word buffer or dense slice does not have the length the shape needs.
    LengthMismatch { expected: usize, got: usize },
    /// A word has bits set beyond the matrix edge (the tails must be 0).
    NonZeroTail { word: usize },
    /// The statistic needs at least `needed` rows.
    TooFewRows { n_rows: usize, needed: usize },
}

impl fmt::Display for BitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BitsError::LengthMismatch { expected, got } => {
                write!(
                    f,
                    "length mismatch: expected {expected} elements, got {got}"
                )
            }
            BitsError::NonZeroTail { word } => {
                write!(
                    f,
                    "word {word} has bits set beyond the matrix edge (tails must be 0)"
                )
            }
            BitsError::TooFewRows { n_rows, needed } => {
                write!(f, "needs at least {needed} rows, got {n_rows}")
            }
        }
    }
}

impl std::error::Error for BitsError {}
