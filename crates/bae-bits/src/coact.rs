//! Co-activation counts `N_jk = popcount(col_j AND col_k)` over all column pairs, and the fused
//! pass that turns them into exact covariance signs and the covariance term.
//!
//! Work is split into 64x64 blocks of pairs `(j-block, k-block)` with `k-block >= j-block`; only
//! those are computed and the lower triangle is mirrored. The columns are first re-laid out in
//! "panels" of 8 columns with their words interleaved, so one 512-bit load holds word `w` of 8
//! columns and the kernel is vectorised across pairs (no horizontal sums, however short a column).

use crate::packed::PackedColumns;
use crate::simd::{self, Backend, CoactTile, SignBlock};
use crate::transpose::transpose64;
use rayon::prelude::*;

/// Words per chunk of the inner loop: a 64-column block of 64 words is 32 KiB, so the two
/// blocks being multiplied stay in L1/L2 whatever `n` is.
const WORD_CHUNK: usize = 64;
/// 64-column k-blocks per parallel task.
const BLOCKS_PER_TASK: usize = 4;

/// Columns padded to a multiple of 64 (zero columns), in panel layout, 64-byte aligned.
pub(crate) struct Panels {
    buf: Vec<u64>,
    off: usize,
    len: usize,
    pub wpc: usize,
    /// number of 64-column blocks
    pub n_blocks: usize,
}

impl Panels {
    pub fn new(h: &PackedColumns) -> Self {
        let (cols, wpc) = (h.n_cols(), h.words_per_col());
        let n_blocks = cols.div_ceil(64);
        let len = n_blocks * 64 * wpc;
        let buf = vec![0u64; len + 8];
        // start at a 64-byte boundary so every panel load is one cache line
        let off = buf.as_ptr().align_offset(64).min(8);
        let mut p = Panels {
            buf,
            off,
            len,
            wpc,
            n_blocks,
        };
        if wpc > 0 {
            let words = h.words();
            p.slice_mut()
                .par_chunks_mut(8 * wpc)
                .enumerate()
                .for_each(|(panel, dst)| {
                    for l in 0..8 {
                        let j = panel * 8 + l;
                        if j >= cols {
                            break;
                        }
                        for (w, &x) in words[j * wpc..(j + 1) * wpc].iter().enumerate() {
                            dst[w * 8 + l] = x;
                        }
                    }
                });
        }
        p
    }

    pub fn slice(&self) -> &[u64] {
        &self.buf[self.off..self.off + self.len]
    }

    fn slice_mut(&mut self) -> &mut [u64] {
        &mut self.buf[self.off..self.off + self.len]
    }

    /// Counts of the 64x64 block `(jb, kb)` into `counts[jj*64 + kk]`.
    pub fn block_counts(&self, b: Backend, jb: usize, kb: usize, counts: &mut [u32; 4096]) {
        counts.fill(0);
        let panels = self.slice();
        for w0 in (0..self.wpc).step_by(WORD_CHUNK) {
            let w1 = (w0 + WORD_CHUNK).min(self.wpc);
            for pair in 0..4 {
                let t = CoactTile {
                    panels,
                    wpc: self.wpc,
                    pj: jb * 8,
                    pk: kb * 8 + pair * 2,
                    w0,
                    w1,
                };
                simd::coact_tile(b, &t, &mut counts[pair * 16..], 64);
            }
        }
    }

    /// The upper-triangle block pairs grouped into parallel tasks: `(jb, kb_start, kb_end)`.
    fn tasks(&self) -> Vec<(usize, usize, usize)> {
        let mut t = Vec::new();
        for jb in 0..self.n_blocks {
            let mut kb = jb;
            while kb < self.n_blocks {
                let end = (kb + BLOCKS_PER_TASK).min(self.n_blocks);
                t.push((jb, kb, end));
                kb = end;
            }
        }
        t
    }
}

/// Shared write access to a slice from several tasks that write provably disjoint index sets.
/// Indices are bounds-checked; only the disjointness is the caller's promise.
#[derive(Clone, Copy)]
struct SharedMut<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: used only to write disjoint elements from different threads (see `write`).
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T: Copy> SharedMut<T> {
    fn new(s: &mut [T]) -> Self {
        SharedMut {
            ptr: s.as_mut_ptr(),
            len: s.len(),
        }
    }

    /// SAFETY: no other thread accesses index `i` while the `SharedMut` is in use.
    #[inline]
    unsafe fn write(&self, i: usize, v: T) {
        assert!(i < self.len);
        // SAFETY: in bounds; exclusive per the caller's promise.
        unsafe { self.ptr.add(i).write(v) }
    }

    /// SAFETY: as `write`, for every index of `i .. i + src.len()`.
    #[inline]
    unsafe fn write_slice(&self, i: usize, src: &[T]) {
        assert!(i + src.len() <= self.len);
        // SAFETY: in bounds; exclusive per the caller's promise.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(i), src.len()) }
    }
}

/// Result of [`pair_pass`].
pub(crate) struct PairPass {
    pub coact: Option<Vec<u32>>,
    /// `Σ_{j<k} |n N_jk - c_j c_k|`, exact
    pub abs_upper: u128,
    /// sign bit masks, `cols x cols` row-packed words (empty unless requested)
    pub pos: Vec<u64>,
    pub neg: Vec<u64>,
}

/// One pass over the upper-triangle blocks. Optionally stores the full symmetric count matrix
/// and/or, given the firing counts, the exact signs of `n N_jk - c_j c_k` and the sum of its
/// absolute values.
pub(crate) fn pair_pass(
    b: Backend,
    h: &PackedColumns,
    firing: Option<&[u32]>,
    want_coact: bool,
) -> PairPass {
    let cols = h.n_cols();
    let n = h.n_rows() as u64;
    let panels = Panels::new(h);
    let wpr = panels.n_blocks; // words per row of a cols x cols bit matrix
    let mut coact = want_coact.then(|| vec![0u32; cols * cols]);
    let (mut pos, mut neg) = if firing.is_some() {
        (vec![0u64; cols * wpr], vec![0u64; cols * wpr])
    } else {
        (Vec::new(), Vec::new())
    };
    // firing counts padded with zeros to whole blocks
    let fpad: Vec<u32> = firing.map_or(Vec::new(), |f| {
        let mut v = f.to_vec();
        v.resize(panels.n_blocks * 64, 0);
        v
    });

    let out_n = coact.as_deref_mut().map(SharedMut::new);
    let out_pos = SharedMut::new(&mut pos);
    let out_neg = SharedMut::new(&mut neg);

    // Every block (jb, kb), jb <= kb, writes: coact rows of jb x columns of kb and the mirror
    // rows of kb x columns of jb; sign words (row in jb, word kb) and (row in kb, word jb). Each
    // such region belongs to exactly one block (the diagonal block writes both halves of its own
    // region), so tasks never touch the same element.
    let abs_upper: u128 = panels
        .tasks()
        .into_par_iter()
        .map(|(jb, kb0, kb1)| {
            let mut counts = Box::new([0u32; 4096]);
            let mut abs = 0u128;
            for kb in kb0..kb1 {
                panels.block_counts(b, jb, kb, &mut counts);
                let (j0, k0) = (jb * 64, kb * 64);
                let (jn, kn) = ((cols - j0).min(64), (cols - k0).min(64));
                if let Some(out) = &out_n {
                    for jj in 0..jn {
                        // SAFETY: region owned by this block (see above)
                        unsafe {
                            out.write_slice((j0 + jj) * cols + k0, &counts[jj * 64..jj * 64 + kn])
                        };
                    }
                    if kb != jb {
                        let mut col = [0u32; 64];
                        for kk in 0..kn {
                            for (jj, c) in col.iter_mut().enumerate().take(jn) {
                                *c = counts[jj * 64 + kk];
                            }
                            // SAFETY: mirror region owned by this block
                            unsafe { out.write_slice((k0 + kk) * cols + j0, &col[..jn]) };
                        }
                    }
                }
                if !fpad.is_empty() {
                    let s = SignBlock {
                        counts: &counts[..],
                        cj: &fpad[j0..j0 + 64],
                        ck: &fpad[k0..k0 + 64],
                        n,
                        diag: jb == kb,
                    };
                    let (mut up, mut un) = ([0u64; 64], [0u64; 64]);
                    abs += simd::sign_block(b, &s, &mut up, &mut un);
                    let (mut tp, mut tn) = (up, un);
                    transpose64(&mut tp);
                    transpose64(&mut tn);
                    for jj in 0..jn {
                        let (p, q) = if jb == kb {
                            (up[jj] | tp[jj], un[jj] | tn[jj])
                        } else {
                            (up[jj], un[jj])
                        };
                        // SAFETY: sign words owned by this block
                        unsafe {
                            out_pos.write((j0 + jj) * wpr + kb, p);
                            out_neg.write((j0 + jj) * wpr + kb, q);
                        }
                    }
                    if kb != jb {
                        for kk in 0..kn {
                            // SAFETY: mirror sign words owned by this block
                            unsafe {
                                out_pos.write((k0 + kk) * wpr + jb, tp[kk]);
                                out_neg.write((k0 + kk) * wpr + jb, tn[kk]);
                            }
                        }
                    }
                }
            }
            abs
        })
        .sum();
    PairPass {
        coact,
        abs_upper,
        pos,
        neg,
    }
}

/// Full symmetric `cols x cols` matrix (row-major) of co-activation counts
/// `N_jk = #{i : H_ij = H_ik = 1}`; the diagonal holds the firing counts.
pub fn coactivation_counts(h: &PackedColumns) -> Vec<u32> {
    coactivation_counts_with(Backend::detect(), h)
}

#[doc(hidden)]
pub fn coactivation_counts_with(b: Backend, h: &PackedColumns) -> Vec<u32> {
    pair_pass(b.check(), h, None, true)
        .coact
        .expect("requested")
}
