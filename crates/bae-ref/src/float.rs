//! The scalar types the reference runs in: f64 (the oracle that reproduces the golden vectors)
//! and f32 (the fast path). One generic implementation serves both, so they cannot drift apart.

use bae_bits::Real;
use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

pub trait Float:
    Real
    + Debug
    + Display
    + Default
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + Sum
{
    const ONE: Self;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    fn powi(self, n: i32) -> Self;
    /// `self * a + b` with one rounding (a fused multiply-add)
    fn mul_add(self, a: Self, b: Self) -> Self;
    fn is_finite(self) -> bool;
    /// `C = alpha * op(A) * op(B) + beta * C` on row-major slices; `op` transposes when asked.
    /// `A` is stored as `m x k` (or `k x m` when `a_t`), `B` as `k x n` (or `n x k` when `b_t`).
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: &[Self],
        a_t: bool,
        b: &[Self],
        b_t: bool,
        beta: Self,
        c: &mut [Self],
    );
}

/// (row stride, column stride) of a row-major matrix stored with `stored_cols` columns, read
/// as its transpose or not.
fn strides(stored_cols: usize, transposed: bool) -> (isize, isize) {
    if transposed {
        (1, stored_cols as isize)
    } else {
        (stored_cols as isize, 1)
    }
}

macro_rules! impl_float {
    ($t:ty) => {
        impl Float for $t {
            const ONE: Self = 1.0;
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            fn powi(self, n: i32) -> Self {
                <$t>::powi(self, n)
            }
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                <$t>::mul_add(self, a, b)
            }
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            fn gemm(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: &[Self],
                a_t: bool,
                b: &[Self],
                b_t: bool,
                beta: Self,
                c: &mut [Self],
            ) {
                assert!(
                    a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
                    "gemm: slice too short"
                );
                let (rsa, csa) = strides(if a_t { m } else { k }, a_t);
                let (rsb, csb) = strides(if b_t { k } else { n }, b_t);
                let threads = rayon::current_num_threads();
                let par = if threads > 1 && m * n * k >= 1 << 18 {
                    gemm::Parallelism::Rayon(threads)
                } else {
                    gemm::Parallelism::None
                };
                // SAFETY: the slices were checked to hold the m x k, k x n and m x n matrices the
                // strides describe; c does not alias a or b (distinct borrows).
                // The gemm crate computes dst = alpha_dst * dst + beta_prod * lhs * rhs.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        c.as_mut_ptr(),
                        1,
                        n as isize,
                        beta != 0.0,
                        a.as_ptr(),
                        csa,
                        rsa,
                        b.as_ptr(),
                        csb,
                        rsb,
                        beta,
                        alpha,
                        false,
                        false,
                        false,
                        par,
                    )
                }
            }
        }
    };
}

impl_float!(f32);
impl_float!(f64);
