//! The 32-bit "panel" layout of the AVX-512 kernels, and a small pool of reusable buffers (also
//! for the nibble layout of the AVX2 kernel).
//!
//! A panel interleaves 16 bit vectors (columns of the codes, or rows of a sign mask) word by
//! word: 32-bit word `w` of vector `16p + l` sits at `(p*wpg32 + w)*16 + l`. One 512-bit load then
//! holds word `w` of 16 vectors, and a kernel that broadcasts a word of another vector does 16
//! AND+popcounts per instruction, vectorised across pairs instead of along the words (no
//! horizontal sums, however short the vectors are).

use rayon::prelude::*;
use std::sync::Mutex;

/// Vectors per panel.
pub(crate) const LANES: usize = 16;

/// Bit vectors in panel layout, on a 64-byte boundary, padded with zero vectors.
pub(crate) struct Panels32 {
    buf: PoolBuf,
    /// 32-bit words per vector
    pub wpg32: usize,
}

impl Panels32 {
    /// `n` vectors of `wpg` u64 words each, stored one after another in `words`, padded with zero
    /// vectors to a multiple of `pad` (a multiple of 16).
    pub fn new(words: &[u64], n: usize, wpg: usize, pad: usize) -> Self {
        debug_assert!(pad.is_multiple_of(LANES) && words.len() == n * wpg);
        let wpg32 = 2 * wpg;
        let len = n.div_ceil(pad) * pad * wpg32;
        let mut buf = PoolBuf::new(len);
        if wpg32 > 0 {
            let zero = vec![0u64; wpg];
            // every element is written (zeros for padding vectors): the buffer may be recycled
            buf.as_mut_slice()
                .par_chunks_mut(LANES * wpg32)
                .enumerate()
                .for_each(|(p, dst)| {
                    let src: [&[u64]; LANES] = std::array::from_fn(|l| {
                        let g = p * LANES + l;
                        if g < n {
                            &words[g * wpg..(g + 1) * wpg]
                        } else {
                            &zero[..]
                        }
                    });
                    for w in 0..wpg {
                        for (l, s) in src.iter().enumerate() {
                            dst[2 * w * LANES + l] = s[w] as u32;
                            dst[(2 * w + 1) * LANES + l] = (s[w] >> 32) as u32;
                        }
                    }
                });
        }
        Panels32 { buf, wpg32 }
    }

    pub fn words(&self) -> &[u32] {
        self.buf.as_slice()
    }
}

/// `len` u32 from the pool (unspecified contents) starting on a 64-byte boundary; back to the
/// pool when dropped.
pub(crate) struct PoolBuf {
    buf: Vec<u32>,
    off: usize,
    len: usize,
}

impl PoolBuf {
    pub fn new(len: usize) -> Self {
        const ALIGN_U32: usize = 64 / 4;
        let buf = take(len + ALIGN_U32);
        let off = buf.as_ptr().align_offset(64).min(ALIGN_U32);
        PoolBuf { buf, off, len }
    }

    pub fn as_slice(&self) -> &[u32] {
        &self.buf[self.off..self.off + self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u32] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.buf));
    }
}

/// Recycled scratch buffers. The panel copies are megabytes at the target sizes; allocating and
/// freeing them on every call (every training step) costs page faults and TLB shootdowns that
/// are a sizeable share of the kernel time. A few buffers are kept for the life of the process.
static POOL: Mutex<Vec<Vec<u32>>> = Mutex::new(Vec::new());
const POOL_MAX: usize = 4;

/// A buffer of `len` elements with unspecified contents.
fn take(len: usize) -> Vec<u32> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    // the smallest that fits, else the largest (to grow)
    let fit = (0..pool.len())
        .filter(|&i| pool[i].capacity() >= len)
        .min_by_key(|&i| pool[i].capacity())
        .or_else(|| (0..pool.len()).max_by_key(|&i| pool[i].capacity()));
    let mut v = fit.map(|i| pool.swap_remove(i)).unwrap_or_default();
    drop(pool);
    if v.len() >= len {
        v.truncate(len);
    } else {
        v.resize(len, 0);
    }
    v
}

fn give(v: Vec<u32>) {
    if v.capacity() == 0 {
        return;
    }
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < POOL_MAX {
        pool.push(v);
    } else if let Some(i) = (0..pool.len()).min_by_key(|&i| pool[i].capacity()) {
        // keep the larger ones
        if pool[i].capacity() < v.capacity() {
            pool[i] = v;
        }
    }
}
