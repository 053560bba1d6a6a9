//! The covariance (independence) term `D = Σ_{j≠k} |C_jk|` of the codes, computed exactly from
//! popcounts, and its gradient `∂D/∂H = (2/(n-1)) (H - 1 pᵀ) S` with `S = sign(C)` held as two bit
//! masks, so that `H S` is AND + popcount instead of a dense `n x d' x d'` product.

use crate::coact::pair_pass;
use crate::packed::{PackedColumns, PackedRows};
use crate::sign_product::{TileSource, drive, sign_times_counts};
use crate::simd::{Backend, Checked};
use crate::{BitsError, Real};
use rayon::prelude::*;

/// `S = sign(C)` off the diagonal as two `cols x cols` bit masks (row `j` = sign row `j`; the
/// matrix is symmetric). `pos` bit `(j,k)` is set iff `C_jk > 0`, `neg` iff `C_jk < 0`; both are
/// clear on the diagonal and for exactly uncorrelated pairs (`sign(0) = 0`, as torch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignMasks {
    pub pos: PackedRows,
    pub neg: PackedRows,
}

impl SignMasks {
    /// `S_jk` as -1, 0 or 1.
    pub fn sign(&self, j: usize, k: usize) -> i8 {
        self.pos.get(j, k) as i8 - self.neg.get(j, k) as i8
    }

    pub fn n_cols(&self) -> usize {
        self.pos.n_cols()
    }
}

/// The covariance term and what its gradient needs, without the `cols x cols` count matrix.
#[derive(Clone, Debug)]
pub struct CovarianceTerm {
    pub n_rows: usize,
    pub n_cols: usize,
    /// firing counts `c_j`
    pub firing: Vec<u32>,
    /// `D = Σ_{j≠k} |C_jk|` with the unbiased covariance
    pub term: f64,
    pub signs: SignMasks,
}

/// Everything about the codes' covariance: [`CovarianceTerm`] (counts, `D`, signs and the
/// gradient, reached through `Deref`) plus the full co-activation matrix. The matrix is
/// `cols² u32` (256 MiB at 8192 columns); a training step that needs only `D` and its gradient
/// should use [`CovarianceTerm`].
#[derive(Clone, Debug)]
pub struct CovarianceStats {
    pub base: CovarianceTerm,
    /// co-activation counts `N_jk`, full symmetric `cols x cols`, row-major
    pub coact: Vec<u32>,
}

impl std::ops::Deref for CovarianceStats {
    type Target = CovarianceTerm;
    fn deref(&self) -> &CovarianceTerm {
        &self.base
    }
}

struct Computed {
    n: usize,
    cols: usize,
    firing: Vec<u32>,
    coact: Option<Vec<u32>>,
    term: f64,
    signs: SignMasks,
}

impl Computed {
    fn into_term(self) -> CovarianceTerm {
        CovarianceTerm {
            n_rows: self.n,
            n_cols: self.cols,
            firing: self.firing,
            term: self.term,
            signs: self.signs,
        }
    }
}

/// The unbiased estimator divides by `n - 1`.
fn check_rows(n: usize) -> Result<(), BitsError> {
    if n < 2 {
        return Err(BitsError::TooFewRows {
            n_rows: n,
            needed: 2,
        });
    }
    Ok(())
}

/// One fused pass: counts, exact signs of `n N_jk - c_j c_k`, and
/// `D = 2 Σ_{j<k} |n N_jk - c_j c_k| / (n (n-1))`, the sum taken exactly in integers.
fn compute(
    b: Backend,
    h: &PackedColumns,
    want_coact: bool,
    reuse: Option<(Vec<u64>, Vec<u64>)>,
) -> Result<Computed, BitsError> {
    let b = b.check();
    let (n, cols) = (h.n_rows(), h.n_cols());
    check_rows(n)?;
    let firing = h.col_popcounts_with(b);
    let pass = pair_pass(b, h, Some(&firing), want_coact, reuse);
    let denom = (n as u128 * (n as u128 - 1)) as f64;
    let term = (2 * pass.abs_upper) as f64 / denom;
    let signs = SignMasks {
        pos: PackedRows::from_words(cols, cols, pass.pos).expect("sign mask shape"),
        neg: PackedRows::from_words(cols, cols, pass.neg).expect("sign mask shape"),
    };
    Ok(Computed {
        n,
        cols,
        firing,
        coact: pass.coact,
        term,
        signs,
    })
}

impl CovarianceStats {
    /// Needs `n_rows >= 2` (the unbiased estimator divides by `n - 1`).
    pub fn from_columns(h: &PackedColumns) -> Result<Self, BitsError> {
        Self::from_columns_with(Backend::detect(), h)
    }

    #[doc(hidden)]
    pub fn from_columns_with(b: Backend, h: &PackedColumns) -> Result<Self, BitsError> {
        let mut c = compute(b, h, true, None)?;
        let coact = c.coact.take().expect("requested");
        Ok(CovarianceStats {
            base: c.into_term(),
            coact,
        })
    }

    /// `cov(H)` (unbiased, as `torch.cov(h.T)`), full `cols x cols` including the variances on
    /// the diagonal; each entry is `(n N_jk - c_j c_k) / (n (n-1))` from the exact integer.
    pub fn covariance_matrix(&self) -> Vec<f64> {
        let (n, cols) = (self.n_rows as i128, self.n_cols);
        let denom = (n * (n - 1)) as f64;
        let mut out = vec![0.0; cols * cols];
        if cols == 0 {
            return out;
        }
        out.par_chunks_mut(cols).enumerate().for_each(|(j, row)| {
            let cj = self.firing[j] as i128;
            for (k, o) in row.iter_mut().enumerate() {
                let d = n * self.coact[j * cols + k] as i128 - cj * self.firing[k] as i128;
                *o = d as f64 / denom;
            }
        });
        out
    }

    /// Drops the count matrix.
    pub fn into_term(self) -> CovarianceTerm {
        self.base
    }
}

impl CovarianceTerm {
    /// Needs `n_rows >= 2`. The same values as [`CovarianceStats::from_columns`].
    pub fn from_columns(h: &PackedColumns) -> Result<Self, BitsError> {
        Self::from_columns_with(Backend::detect(), h)
    }

    #[doc(hidden)]
    pub fn from_columns_with(b: Backend, h: &PackedColumns) -> Result<Self, BitsError> {
        Ok(compute(b, h, false, None)?.into_term())
    }

    /// Recomputes everything for a new batch `h`, reusing the sign-mask buffers (at 8192 columns
    /// they are 16 MiB, whose fresh allocation costs page faults on every training step).
    pub fn update(&mut self, h: &PackedColumns) -> Result<(), BitsError> {
        self.update_with(Backend::detect(), h)
    }

    #[doc(hidden)]
    pub fn update_with(&mut self, b: Backend, h: &PackedColumns) -> Result<(), BitsError> {
        // fail before taking the buffers, so an error leaves `self` untouched
        check_rows(h.n_rows())?;
        let empty = SignMasks {
            pos: PackedRows::zeros(0, 0),
            neg: PackedRows::zeros(0, 0),
        };
        let old = std::mem::replace(&mut self.signs, empty);
        let c = compute(
            b,
            h,
            false,
            Some((old.pos.into_words(), old.neg.into_words())),
        )?;
        *self = c.into_term();
        Ok(())
    }

    /// Adds `weight * ∂D/∂H` into `out` (`n x cols`, row-major); `rows` must be the same `H`.
    pub fn add_covariance_grad<T: Real>(&self, rows: &PackedRows, weight: f64, out: &mut [T]) {
        self.add_covariance_grad_with(Backend::detect(), rows, weight, out)
    }

    #[doc(hidden)]
    pub fn add_covariance_grad_with<T: Real>(
        &self,
        b: Backend,
        rows: &PackedRows,
        weight: f64,
        out: &mut [T],
    ) {
        add_grad(
            b.check(),
            self.n_rows,
            &self.firing,
            &self.signs,
            rows,
            weight,
            out,
        )
    }
}

/// `out[i,k] += weight (2/(n-1)) ((H S)_ik - (pᵀS)_k)`, evaluated as
/// `weight * 2/(n(n-1)) * (n (H S)_ik - q_k)` with the exact integer `q = S c` (c = firing counts),
/// so the only rounding is the final scale.
fn add_grad<T: Real>(
    b: Backend,
    n: usize,
    firing: &[u32],
    signs: &SignMasks,
    rows: &PackedRows,
    weight: f64,
    out: &mut [T],
) {
    let cols = firing.len();
    assert_eq!(
        (rows.n_rows(), rows.n_cols()),
        (n, cols),
        "rows must be the n x cols codes the statistics came from"
    );
    assert_eq!(out.len(), n * cols, "out must be n x cols");
    debug_assert_eq!(
        crate::firing::firing_counts_rows(rows),
        firing,
        "rows differ from the analysed codes"
    );
    // the sign rows in kernel layout, built once for both products
    let main = TileSource::new(b, &signs.pos);
    let q = sign_times_counts(b, firing, signs, &main);
    let scale = weight * 2.0 / (n as f64 * (n as f64 - 1.0));
    // n*v and q are integers below 2^53, so this f64 difference is the exact integer (and
    // converts from i32 in packed form, unlike an i64)
    let nf = n as f64;
    let qf: Vec<f64> = q.iter().map(|&v| v as f64).collect();
    let c = Checked(b); // callers pass a checked back end
    drive(b, rows, firing, signs, &main, out, |o, k0, v| {
        T::add_scaled(o, v, &qf[k0..], nf, scale, c)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random bits.
    fn bits(seed: u64, n: usize, cols: usize, density_per_col: impl Fn(usize) -> u64) -> Vec<f64> {
        crate::xorshift::XorShift64::new(seed).bits(n, cols, density_per_col)
    }

    #[test]
    fn update_reuses_buffers_and_matches_fresh() {
        let (n, cols) = (64, 130);
        let a =
            PackedRows::from_dense01(&bits(11, n, cols, |j| (j % 90) as u64), n, cols).to_columns();
        let b = PackedRows::from_dense01(&bits(12, n + 3, cols, |j| (j % 70) as u64), n + 3, cols)
            .to_columns();
        let mut t = CovarianceTerm::from_columns(&a).unwrap();
        t.update(&b).unwrap();
        let fresh = CovarianceTerm::from_columns(&b).unwrap();
        assert_eq!(
            (t.n_rows, t.term, &t.signs, &t.firing),
            (fresh.n_rows, fresh.term, &fresh.signs, &fresh.firing)
        );
        let before = (t.term, t.signs.clone());
        assert!(t.update(&PackedColumns::zeros(1, cols)).is_err());
        assert_eq!(
            (t.term, t.signs.clone()),
            before,
            "an error leaves the value untouched"
        );
    }
}
