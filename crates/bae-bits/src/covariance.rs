//! The covariance (independence) term `D = Σ_{j≠k} |C_jk|` of the codes, computed exactly from
//! popcounts, and its gradient `∂D/∂H = (2/(n-1)) (H - 1 pᵀ) S` with `S = sign(C)` held as two bit
//! masks, so that `H S` is AND + popcount instead of a dense `n x d' x d'` product.

use crate::coact::pair_pass;
use crate::packed::{PackedColumns, PackedRows};
use crate::simd::{self, Backend, SP_I, SP_K};
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

/// Everything about the codes' covariance: firing counts, the full co-activation matrix, the term
/// `D` and the signs. The co-activation matrix is `cols² u32` (256 MiB at 8192 columns); a
/// training step that needs only `D` and its gradient should use [`CovarianceTerm`].
#[derive(Clone, Debug)]
pub struct CovarianceStats {
    pub n_rows: usize,
    pub n_cols: usize,
    /// firing counts `c_j`
    pub firing: Vec<u32>,
    /// co-activation counts `N_jk`, full symmetric `cols x cols`, row-major
    pub coact: Vec<u32>,
    /// `D = Σ_{j≠k} |C_jk|` with the unbiased covariance
    pub term: f64,
    pub signs: SignMasks,
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

struct Computed {
    n: usize,
    cols: usize,
    firing: Vec<u32>,
    coact: Option<Vec<u32>>,
    term: f64,
    signs: SignMasks,
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
    if n < 2 {
        return Err(BitsError::TooFewRows {
            n_rows: n,
            needed: 2,
        });
    }
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
        let c = compute(b, h, true, None)?;
        Ok(CovarianceStats {
            n_rows: c.n,
            n_cols: c.cols,
            firing: c.firing,
            coact: c.coact.expect("requested"),
            term: c.term,
            signs: c.signs,
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

    /// Drops the count matrix.
    pub fn into_term(self) -> CovarianceTerm {
        CovarianceTerm {
            n_rows: self.n_rows,
            n_cols: self.n_cols,
            firing: self.firing,
            term: self.term,
            signs: self.signs,
        }
    }
}

impl CovarianceTerm {
    /// Needs `n_rows >= 2`. The same values as [`CovarianceStats::from_columns`].
    pub fn from_columns(h: &PackedColumns) -> Result<Self, BitsError> {
        Self::from_columns_with(Backend::detect(), h)
    }

    #[doc(hidden)]
    pub fn from_columns_with(b: Backend, h: &PackedColumns) -> Result<Self, BitsError> {
        let c = compute(b, h, false, None)?;
        Ok(CovarianceTerm { n_rows: c.n, n_cols: c.cols, firing: c.firing, term: c.term, signs: c.signs })
    }

    /// Recomputes everything for a new batch `h`, reusing the sign-mask buffers (at 8192 columns
    /// they are 16 MiB, whose fresh allocation costs page faults on every training step).
    pub fn update(&mut self, h: &PackedColumns) -> Result<(), BitsError> {
        self.update_with(Backend::detect(), h)
    }

    #[doc(hidden)]
    pub fn update_with(&mut self, b: Backend, h: &PackedColumns) -> Result<(), BitsError> {
        let empty = SignMasks { pos: PackedRows::zeros(0, 0), neg: PackedRows::zeros(0, 0) };
        let old = std::mem::replace(&mut self.signs, empty);
        let c = compute(b, h, false, Some((old.pos.into_words(), old.neg.into_words())))?;
        *self = CovarianceTerm { n_rows: c.n, n_cols: c.cols, firing: c.firing, term: c.term, signs: c.signs };
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
    assert_eq!((rows.n_rows(), rows.n_cols()), (n, cols), "rows must be the n x cols codes the statistics came from");
    assert_eq!(out.len(), n * cols, "out must be n x cols");
    debug_assert_eq!(crate::firing::firing_counts_rows(rows), firing, "rows differ from the analysed codes");
    let q = sign_times_counts(b, firing, signs);
    let scale = weight * 2.0 / (n as f64 * (n as f64 - 1.0));
    let plan = SignPlan::new(rows, firing, signs);
    let n = n as i64;
    // sign rows the plan skips are empty, so their q_k is 0 and so is the gradient
    drive(b, rows, signs, &plan, out, |o, k, v| {
        let g = scale * (n * v as i64 - q[k]) as f64;
        *o = T::from_f64(o.to_f64() + g);
    });
}

/// `q_k = Σ_j c_j S_jk` exactly: write `c` in binary as bit-plane rows `C_b` (bit `j` of plane `b`
/// is bit `b` of `c_j`); then `q = Σ_b 2^b (C_b S)`, a sign product with only `log2(n)` rows.
fn sign_times_counts(b: Backend, firing: &[u32], signs: &SignMasks) -> Vec<i64> {
    let cols = firing.len();
    let max = firing.iter().copied().max().unwrap_or(0);
    let planes = (32 - max.leading_zeros()) as usize;
    let mut c = PackedRows::zeros(planes, cols);
    for (j, &f) in firing.iter().enumerate() {
        for p in 0..planes {
            if (f >> p) & 1 == 1 {
                c.set(p, j, true);
            }
        }
    }
    let mut prod = vec![0i32; planes * cols];
    // the planes are not a code matrix: no plan shortcuts, both popcounts for every sign row
    drive(b, &c, signs, &SignPlan::dense(cols), &mut prod, |o, _, v| *o = v);
    let mut q = vec![0i64; cols];
    for (p, row) in prod.chunks(cols.max(1)).enumerate() {
        for (q, &v) in q.iter_mut().zip(row) {
            *q += (v as i64) << p;
        }
    }
    q
}

/// `(H S)_ik = popcount(row_i AND pos_k) - popcount(row_i AND neg_k)`, `n x cols` row-major.
/// `pos` and `neg` may be any `cols x cols` masks (overlapping ones are handled too).
pub fn sign_product(rows: &PackedRows, signs: &SignMasks) -> Vec<i32> {
    sign_product_with(Backend::detect(), rows, signs)
}

#[doc(hidden)]
pub fn sign_product_with(b: Backend, rows: &PackedRows, signs: &SignMasks) -> Vec<i32> {
    let b = b.check();
    let mut out = vec![0i32; rows.n_rows() * rows.n_cols()];
    let firing = crate::firing::firing_counts_rows_with(b, rows);
    let plan = SignPlan::new(rows, &firing, signs);
    // skipped sign rows are empty: their products are the 0 already there
    drive(b, rows, signs, &plan, &mut out, |o, _, v| *o = v);
    out
}

/// How each `(H S)_ik` is computed. Because `pos_k`, `neg_k` and the zero set `Z_k` partition the
/// columns, `Σneg = L0_i - Σpos - ΣZ`, so `(H S)_ik = 2 Σ_{pos_k} h_ij - L0_i + Σ_{Z_k} h_ij`: one
/// AND+popcount pass instead of two. `Z_k` of a covariance sign row is the diagonal, the constant
/// columns (whose contribution is known: 0 or 1 for every row) and rare exactly uncorrelated
/// pairs, so `Σ_{Z_k}` is a few bit lookups. Rows where that is not so use both popcounts.
struct SignPlan {
    /// one-popcount sign rows
    sparse: Vec<usize>,
    /// two-popcount sign rows
    dense: Vec<usize>,
    /// per sparse row k (indexed like `sparse`): number of always-1 columns in `Z_k`, and the
    /// non-constant columns of `Z_k`
    ones: Vec<i32>,
    zeros: Vec<Vec<u32>>,
    /// L0 of each code row
    l0: Vec<i32>,
}

impl SignPlan {
    /// Every sign row with both popcounts.
    fn dense(cols: usize) -> Self {
        SignPlan { sparse: Vec::new(), dense: (0..cols).collect(), ones: Vec::new(), zeros: Vec::new(), l0: Vec::new() }
    }

    fn new(rows: &PackedRows, firing: &[u32], signs: &SignMasks) -> Self {
        let (n, cols, wpr) = (rows.n_rows(), rows.n_cols(), rows.words_per_row());
        // constant columns of H, and the columns that exist
        let mut constant = vec![0u64; wpr];
        let mut always = vec![0u64; wpr];
        let mut valid = vec![0u64; wpr];
        for (j, &c) in firing.iter().enumerate() {
            let bit = 1u64 << (j % 64);
            valid[j / 64] |= bit;
            if c == 0 || c as usize == n {
                constant[j / 64] |= bit;
            }
            if c as usize == n {
                always[j / 64] |= bit;
            }
        }
        // a second popcount pass costs ~wpr/8 vector steps per pair; a lookup about one
        let max_lookups = 2 + wpr / 8;
        enum Class {
            Empty,
            Sparse(i32, Vec<u32>),
            Dense,
        }
        let classes: Vec<Class> = (0..cols)
            .into_par_iter()
            .with_min_len(64)
            .map(|k| {
                let (p, q) = (signs.pos.row(k), signs.neg.row(k));
                if p.iter().chain(q).all(|&w| w == 0) {
                    return Class::Empty;
                }
                if p.iter().zip(q).any(|(&a, &b)| a & b != 0) {
                    return Class::Dense;
                }
                let mut ones = 0i32;
                let mut list = Vec::new();
                for w in 0..wpr {
                    let z = !(p[w] | q[w]) & valid[w];
                    ones += (z & always[w]).count_ones() as i32;
                    let mut rest = z & !constant[w];
                    if rest.count_ones() as usize + list.len() > max_lookups {
                        return Class::Dense;
                    }
                    while rest != 0 {
                        list.push((w * 64) as u32 + rest.trailing_zeros());
                        rest &= rest - 1;
                    }
                }
                Class::Sparse(ones, list)
            })
            .collect();
        let mut plan = SignPlan::dense(0);
        for (k, c) in classes.into_iter().enumerate() {
            match c {
                Class::Empty => {}
                Class::Dense => plan.dense.push(k),
                Class::Sparse(ones, list) => {
                    plan.sparse.push(k);
                    plan.ones.push(ones);
                    plan.zeros.push(list);
                }
            }
        }
        if !plan.sparse.is_empty() {
            plan.l0 = rows.row_popcounts().into_iter().map(|v| v as i32).collect();
        }
        plan
    }
}

/// Sign rows per cache block: with a task's code rows they stay in L2.
const K_BLOCK: usize = 16 * SP_K;

/// Computes `(H S)_ik` for the sign rows of `plan` and hands each to
/// `emit(&mut out[i*cols + k], k, value)`. Parallel over chunks of rows (disjoint output rows);
/// inside, blocked over sign rows so they stay in cache; the micro kernel does `SP_I` rows x
/// `SP_K` sign rows at once.
fn drive<O: Send>(
    b: Backend,
    rows: &PackedRows,
    signs: &SignMasks,
    plan: &SignPlan,
    out: &mut [O],
    emit: impl Fn(&mut O, usize, i32) + Sync,
) {
    let (n, cols, wpr) = (rows.n_rows(), rows.n_cols(), rows.words_per_row());
    assert_eq!(
        (signs.pos.n_rows(), signs.pos.n_cols(), signs.neg.n_rows(), signs.neg.n_cols()),
        (cols, cols, cols, cols),
        "sign masks must be cols x cols"
    );
    assert_eq!(out.len(), n * cols);
    if n == 0 || cols == 0 {
        return;
    }
    let zero = vec![0u64; wpr];
    let threads = rayon::current_num_threads();
    let rows_per_task = n.div_ceil(threads * 4).clamp(SP_I, 64).next_multiple_of(SP_I);
    out.par_chunks_mut(rows_per_task * cols).enumerate().for_each(|(t, chunk)| {
        let i0 = t * rows_per_task;
        let ni = chunk.len() / cols;
        for (list, sparse) in [(&plan.sparse, true), (&plan.dense, false)] {
            for kblock in (0..list.len()).step_by(K_BLOCK) {
                let kend = (kblock + K_BLOCK).min(list.len());
                for ig in (0..ni).step_by(SP_I) {
                    let r: [&[u64]; SP_I] =
                        std::array::from_fn(|d| if ig + d < ni { rows.row(i0 + ig + d) } else { &zero[..] });
                    for kg in (kblock..kend).step_by(SP_K) {
                        let p: [&[u64]; SP_K] = std::array::from_fn(|e| pick(&signs.pos, list, kg + e, kend, &zero));
                        let v = if sparse {
                            simd::sign_micro(b, &r, &p, None)
                        } else {
                            let q: [&[u64]; SP_K] = std::array::from_fn(|e| pick(&signs.neg, list, kg + e, kend, &zero));
                            simd::sign_micro(b, &r, &p, Some(&q))
                        };
                        for (d, v) in v.iter().enumerate().take(ni - ig) {
                            let i = i0 + ig + d;
                            let orow = &mut chunk[(ig + d) * cols..(ig + d + 1) * cols];
                            for (e, &v) in v.iter().enumerate().take(kend - kg) {
                                let k = list[kg + e];
                                let v = if sparse {
                                    let row = r[d];
                                    let z: i32 = plan.zeros[kg + e].iter().map(|&j| ((row[j as usize / 64] >> (j % 64)) & 1) as i32).sum();
                                    2 * v - plan.l0[i] + plan.ones[kg + e] + z
                                } else {
                                    v
                                };
                                emit(&mut orow[k], k, v);
                            }
                        }
                    }
                }
            }
        }
    });
}

/// Sign row `list[idx]` of `m`, or the zero row past the end of the block.
#[inline]
fn pick<'s>(m: &'s PackedRows, list: &[usize], idx: usize, end: usize, zero: &'s [u64]) -> &'s [u64] {
    if idx < end { m.row(list[idx]) } else { zero }
}
