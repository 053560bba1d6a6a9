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
//! Every statistic that can be exact is computed in integers (popcounts), and converted to floating
//! point once at the end. The hot kernels have an AVX-512 (`VPOPCNTQ`) path chosen at run time and a
//! portable fallback; both give identical results.

mod coact;
mod covariance;
mod entropy;
mod firing;
mod packed;
mod simd;
mod transpose;

pub use coact::coactivation_counts;
#[doc(hidden)]
pub use coact::coactivation_counts_with;
#[doc(hidden)]
pub use covariance::sign_product_with;
pub use covariance::{CovarianceStats, CovarianceTerm, SignMasks, sign_product};
pub use entropy::{
    ENTROPY_EPS, bernoulli_entropy_bits, entropy_bits, entropy_grad_coeffs, entropy_per_feature,
    entropy_train_bits,
};
pub use firing::{FiringCounter, firing_counts, firing_counts_rows, firing_rates};
#[doc(hidden)]
pub use firing::{firing_counts_rows_with, firing_counts_with};
pub use packed::{PackedColumns, PackedRows};
#[doc(hidden)]
pub use simd::Backend;

use std::fmt;

/// Floating-point element type of dense inputs and outputs (`f32`, `f64`).
pub trait Real: Copy + Send + Sync + 'static + PartialOrd {
    const ZERO: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;

    /// Packs `1[src[j] > 0]` into `dst` (`dst.len() == ceil(src.len()/64)`, tail bits 0).
    /// Overridden for `f32`/`f64` with SIMD compares; the default is the portable loop.
    #[doc(hidden)]
    fn pack_positive(src: &[Self], dst: &mut [u64], backend: Backend) {
        let _ = backend;
        packed::pack_with(src, dst, |v| v > Self::ZERO);
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
    fn pack_positive(src: &[Self], dst: &mut [u64], backend: Backend) {
        simd::pack_positive_f32(backend, src, dst);
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
    fn pack_positive(src: &[Self], dst: &mut [u64], backend: Backend) {
        simd::pack_positive_f64(backend, src, dst);
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
