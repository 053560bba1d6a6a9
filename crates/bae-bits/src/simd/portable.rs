//! Plain-Rust kernels. `#[inline(always)]` so that the `popcnt`-enabled wrappers in `x86` get
//! their own copy compiled with the instruction.

use super::{SP_I, SP_K, SignBlock};
use std::ops::{Mul, Sub};

#[inline(always)]
pub fn count_majors(words: &[u64], wpm: usize, out: &mut [u32]) {
    if wpm == 0 {
        out.fill(0);
        return;
    }
    for (o, w) in out.iter_mut().zip(words.chunks_exact(wpm)) {
        *o = w.iter().map(|x| x.count_ones()).sum();
    }
}

/// Register tile of 2 j columns x 4 k columns over the plain column layout. Missing columns
/// (beyond `cols`) are read as a valid column and their counts zeroed afterwards.
#[inline(always)]
pub fn column_block_counts(
    words: &[u64],
    wpc: usize,
    cols: usize,
    jb: usize,
    kb: usize,
    counts: &mut [u32; 4096],
) {
    column_block_tiles(words, wpc, cols, jb, kb, counts, |a, b| {
        let mut acc = [[0u32; 4]; 2];
        for w in 0..wpc {
            let (x0, x1) = (a[0][w], a[1][w]);
            for q in 0..4 {
                let y = b[q][w];
                acc[0][q] += (x0 & y).count_ones();
                acc[1][q] += (x1 & y).count_ones();
            }
        }
        acc
    })
}

/// The block's 2 x 4 tiles of columns (`a`: two j columns, `b`: four k columns, each `wpc`
/// elements), counted by `tile`; columns at or beyond `cols` repeat the last one and are not
/// stored.
#[inline(always)]
pub fn column_block_tiles<T>(
    words: &[T],
    wpc: usize,
    cols: usize,
    jb: usize,
    kb: usize,
    counts: &mut [u32; 4096],
    mut tile: impl FnMut([&[T]; 2], [&[T]; 4]) -> [[u32; 4]; 2],
) {
    counts.fill(0);
    if cols == 0 {
        return;
    }
    let col = |j: usize| &words[j.min(cols - 1) * wpc..(j.min(cols - 1) + 1) * wpc];
    let (j0, k0) = (jb * 64, kb * 64);
    let jn = cols.saturating_sub(j0).min(64);
    let kn = cols.saturating_sub(k0).min(64);
    for jj in (0..jn).step_by(2) {
        let a = [col(j0 + jj), col(j0 + jj + 1)];
        for kk in (0..kn).step_by(4) {
            let b: [&[T]; 4] = std::array::from_fn(|q| col(k0 + kk + q));
            let acc = tile(a, b);
            for (r, acc) in acc.iter().enumerate().take(jn - jj) {
                let at = (jj + r) * 64 + kk;
                if kk + 4 <= kn {
                    counts[at..at + 4].copy_from_slice(acc);
                } else {
                    counts[at..at + kn - kk].copy_from_slice(&acc[..kn - kk]);
                }
            }
        }
    }
}

/// `d = n·N_jk − c_j·c_k` as the difference of two unsigned products: in u64 (one multiply
/// each) whenever n < 2^32, so that both products are below 2^64; else in u128.
#[inline(always)]
pub fn sign_block(s: &SignBlock<'_>, pos: &mut [u64; 64], neg: &mut [u64; 64]) -> u128 {
    if s.n <= u32::MAX as u64 {
        sign_block_in::<u64>(s, pos, neg)
    } else {
        sign_block_in::<u128>(s, pos, neg)
    }
}

#[inline(always)]
fn sign_block_in<T>(s: &SignBlock<'_>, pos: &mut [u64; 64], neg: &mut [u64; 64]) -> u128
where
    T: Copy + Ord + From<u32> + From<u64> + Into<u128> + Mul<Output = T> + Sub<Output = T>,
{
    let n = T::from(s.n);
    let mut abs = 0u128;
    for jj in 0..64 {
        let cj = T::from(s.cj[jj]);
        let (mut pw, mut nw) = (0u64, 0u64);
        let k0 = if s.diag { jj + 1 } else { 0 };
        for kk in k0..64 {
            let (a, b) = (n * T::from(s.counts[jj * 64 + kk]), cj * T::from(s.ck[kk]));
            pw |= ((a > b) as u64) << kk;
            nw |= ((a < b) as u64) << kk;
            abs += (a.max(b) - a.min(b)).into();
        }
        pos[jj] = pw;
        neg[jj] = nw;
    }
    abs
}

#[inline(always)]
pub fn signed_dot(row: &[u64], pos: &[u64], neg: &[u64]) -> i32 {
    let mut s = 0i32;
    for ((&x, &y), &z) in row.iter().zip(pos).zip(neg) {
        s += (x & y).count_ones() as i32 - (x & z).count_ones() as i32;
    }
    s
}

#[inline(always)]
pub fn sign_micro<const SIGNED: bool>(
    rows: &[&[u64]; SP_I],
    pos: &[&[u64]; SP_K],
    neg: &[&[u64]; SP_K],
) -> [[i32; SP_K]; SP_I] {
    let mut acc = [[0i32; SP_K]; SP_I];
    for (a, r) in acc.iter_mut().zip(rows) {
        for ((a, p), q) in a.iter_mut().zip(pos).zip(neg) {
            let mut s = 0i32;
            for ((&x, &y), &z) in r.iter().zip(p.iter()).zip(q.iter()) {
                s += (x & y).count_ones() as i32;
                if SIGNED {
                    s -= (x & z).count_ones() as i32;
                }
            }
            *a = s;
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xorshift::XorShift64;

    /// Both arithmetic paths (u64 products below n = 2^32, u128 above) against `d` in i128.
    #[test]
    fn sign_block_matches_i128_on_both_paths() {
        let mut rng = XorShift64::new(3);
        for (n, diag) in [
            (1000u64, false),
            (1000, true),
            (u32::MAX as u64, false),
            (1 << 40, true),
        ] {
            let below = |rng: &mut XorShift64, m: u64| (rng.next_u64() % m.min(1 << 32)) as u32;
            // small counts make d = 0 and both signs common
            let counts: Vec<u32> = (0..4096).map(|_| below(&mut rng, 4)).collect();
            let cj: Vec<u32> = (0..64).map(|_| below(&mut rng, 64)).collect();
            let ck: Vec<u32> = (0..64).map(|_| below(&mut rng, n)).collect();
            let s = SignBlock {
                counts: &counts,
                cj: &cj,
                ck: &ck,
                n,
                diag,
            };
            let (mut pos, mut neg) = ([0u64; 64], [0u64; 64]);
            let abs = sign_block(&s, &mut pos, &mut neg);
            let mut want_abs = 0u128;
            for jj in 0..64 {
                for kk in 0..64 {
                    let counted = !diag || kk > jj;
                    let d =
                        n as i128 * counts[jj * 64 + kk] as i128 - cj[jj] as i128 * ck[kk] as i128;
                    let bit = |w: &[u64; 64]| w[jj] >> kk & 1 == 1;
                    assert_eq!(bit(&pos), counted && d > 0, "n {n} ({jj}, {kk})");
                    assert_eq!(bit(&neg), counted && d < 0, "n {n} ({jj}, {kk})");
                    if counted {
                        want_abs += d.unsigned_abs();
                    }
                }
            }
            assert_eq!(abs, want_abs, "n {n}");
            let ones = |w: &[u64; 64]| w.iter().map(|x| x.count_ones()).sum::<u32>();
            assert!(
                ones(&pos) > 100 && ones(&neg) > 100,
                "n {n}: both signs tested"
            );
        }
    }
}
