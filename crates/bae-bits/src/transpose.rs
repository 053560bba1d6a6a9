//! 64x64 bit-block transpose and the blocked transpose of a whole bit matrix.

use crate::simd::{self, Backend};
use rayon::prelude::*;

/// Transposes a 64x64 bit block in place: afterwards bit `c` of `a[r]` is the old bit `r` of
/// `a[c]`. Six rounds of swapping off-diagonal sub-blocks (32x32, 16x16, ..., 1x1), each a few
/// shifts and xors per word pair.
#[inline]
pub(crate) fn transpose64(a: &mut [u64; 64]) {
    let mut j = 32usize;
    let mut m: u64 = 0x0000_0000_FFFF_FFFF;
    while j != 0 {
        let mut k = 0usize;
        while k < 64 {
            // (row k, bits j..2j of the sub-block) <-> (row k+j, bits 0..j)
            let t = ((a[k] >> j) ^ a[k + j]) & m;
            a[k] ^= t << j;
            a[k + j] ^= t;
            k = (k + j + 1) & !j;
        }
        j >>= 1;
        m ^= m << j;
    }
}

/// Loads the 64x64 block of rows `rb*64..` (missing rows read as 0) at word column `cw`.
#[inline]
pub(crate) fn load_block(
    words: &[u64],
    n_major: usize,
    wpm: usize,
    rb: usize,
    cw: usize,
) -> [u64; 64] {
    let mut a = [0u64; 64];
    let r0 = rb * 64;
    let rows = (n_major - r0).min(64);
    for (t, x) in a.iter_mut().take(rows).enumerate() {
        *x = words[(r0 + t) * wpm + cw];
    }
    a
}

/// Transposes an `n_major x n_minor` bit matrix (major index = word group, minor = bit) into the
/// `n_minor x n_major` one. Parallel over groups of output rows (input word columns), each task
/// reading whole cache lines of the input (8 adjacent word columns) per block row.
pub(crate) fn transpose_bits(
    b: Backend,
    words: &[u64],
    n_major: usize,
    n_minor: usize,
) -> Vec<u64> {
    let wpm = n_minor.div_ceil(64);
    let wpm_out = n_major.div_ceil(64);
    let mut out = vec![0u64; n_minor * wpm_out];
    if n_minor == 0 || n_major == 0 {
        return out;
    }
    let n_rb = n_major.div_ceil(64);
    // 8 word columns per task (one input cache line), fewer when that leaves a core idle
    let group = (wpm.div_ceil(rayon::current_num_threads())).clamp(1, 8);
    out.par_chunks_mut(group * 64 * wpm_out)
        .enumerate()
        .for_each(|(g, chunk)| {
            let cw0 = g * group;
            let n_out_rows = chunk.len() / wpm_out;
            for rb in 0..n_rb {
                for dc in 0..group {
                    let cw = cw0 + dc;
                    if cw >= wpm {
                        break;
                    }
                    let mut a = load_block(words, n_major, wpm, rb, cw);
                    simd::transpose64(b, &mut a);
                    let first = dc * 64;
                    let last = (first + 64).min(n_out_rows);
                    for (t, &x) in a.iter().enumerate().take(last.saturating_sub(first)) {
                        chunk[(first + t) * wpm_out + rb] = x;
                    }
                }
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose64_matches_naive() {
        let mut rng = crate::xorshift::XorShift64::new(0x9E37_79B9_7F4A_7C15);
        let a: [u64; 64] = std::array::from_fn(|_| rng.next_u64());
        let mut a = a;
        let orig = a;
        transpose64(&mut a);
        for (r, &row) in a.iter().enumerate() {
            for (c, &col) in orig.iter().enumerate() {
                assert_eq!((row >> c) & 1, (col >> r) & 1, "r={r} c={c}");
            }
        }
        transpose64(&mut a);
        assert_eq!(a, orig);
    }

    #[test]
    fn every_backend_transposes_alike() {
        let mut rng = crate::xorshift::XorShift64::new(0x1234_5678_9ABC_DEF1);
        for _ in 0..20 {
            let a: [u64; 64] = std::array::from_fn(|_| {
                let s = rng.next_u64();
                s & (s >> 3) // sparser bits too
            });
            let mut want = a;
            transpose64(&mut want);
            for b in Backend::all_available() {
                let mut got = a;
                simd::transpose64(b, &mut got);
                assert_eq!(got, want, "{b:?}");
            }
        }
    }
}
