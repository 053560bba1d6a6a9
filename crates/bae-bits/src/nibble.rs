//! The nibble-split column layout of the AVX2 co-activation kernel.
//!
//! AVX2 has no vector popcount: the kernel counts bits with a 16-entry table lookup (VPSHUFB) per
//! 4-bit nibble, so a 256-bit AND-popcount needs the AND, a shift, two masks, two lookups and an
//! add. Since `lo(x & y) = lo(x) & lo(y)` (and the same for the high nibbles), splitting every
//! column once into its low nibbles `x & 0x0f..` and its high nibbles `(x >> 4) & 0x0f..` leaves
//! a pair 2 ANDs, 2 lookups and 2 adds per 256 bits: 6 vector operations instead of 8, for a
//! copy that is made once per call and read `cols / 2` times.
//!
//! Layout: step `s` of a column (its words `4s .. 4s + 4`) is one 64-byte run, the 4 words' low
//! nibbles then their high nibbles; a column has `steps = ceil(wpc / 4)` steps, missing words zero.

use crate::panel::PoolBuf;
use rayon::prelude::*;

/// u32 elements of one step (8 u64 words).
pub(crate) const STEP_U32: usize = 16;

const LOW_NIBBLES: u64 = 0x0f0f_0f0f_0f0f_0f0f;

/// Columns in the nibble-split layout, on a 64-byte boundary.
pub(crate) struct NibbleColumns {
    buf: PoolBuf,
    /// 4-word steps per column
    pub steps: usize,
}

impl NibbleColumns {
    /// `cols` columns of `wpc` words each, stored one after another in `words`.
    pub fn new(words: &[u64], cols: usize, wpc: usize) -> Self {
        debug_assert_eq!(words.len(), cols * wpc);
        let steps = wpc.div_ceil(4);
        let per_col = steps * STEP_U32;
        let mut buf = PoolBuf::new(cols * per_col);
        if per_col > 0 {
            // every element is written (zeros past the last word): the buffer may be recycled
            buf.as_mut_slice()
                .par_chunks_mut(per_col)
                .zip(words.par_chunks(wpc.max(1)))
                .for_each(|(dst, src)| {
                    for (s, out) in dst.chunks_exact_mut(STEP_U32).enumerate() {
                        for q in 0..4 {
                            let w = src.get(4 * s + q).copied().unwrap_or(0);
                            let (lo, hi) = (w & LOW_NIBBLES, (w >> 4) & LOW_NIBBLES);
                            // little-endian halves: the run reads back as u64 words
                            out[2 * q] = lo as u32;
                            out[2 * q + 1] = (lo >> 32) as u32;
                            out[8 + 2 * q] = hi as u32;
                            out[8 + 2 * q + 1] = (hi >> 32) as u32;
                        }
                    }
                });
        }
        NibbleColumns { buf, steps }
    }

    pub fn words(&self) -> &[u32] {
        self.buf.as_slice()
    }
}
