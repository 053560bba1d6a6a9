//! Co-activation counts `N_jk = popcount(col_j AND col_k)` over all column pairs, and the fused
//! pass that turns them into exact covariance signs and the covariance term.
//!
//! Work is split into 64x64 blocks of pairs `(jb, kb)`; only `jb <= kb` is computed and the rest
//! mirrored. A task takes 8 consecutive j-blocks against a few k-blocks, so that its mirrored
//! sign words for one row are 8 adjacent words (a whole cache line) rather than scattered ones.
//! For AVX-512 the columns are first re-laid out in "panels" of 16 columns with their 32-bit words
//! interleaved, so one 512-bit load holds word `w` of 16 columns and the kernel is vectorised
//! across pairs (no horizontal sums, however short a column).

use crate::packed::PackedColumns;
use crate::simd::{self, Backend, FUSED_MAX_N, PanelBlock, SignBlock};
use crate::transpose::transpose64;
use rayon::prelude::*;

/// j-blocks per task (a cache line of mirrored sign words).
const J_BLOCKS_PER_TASK: usize = 8;
/// k-blocks per task.
const K_BLOCKS_PER_TASK: usize = 4;

/// The columns, padded to a multiple of 64 with zero columns, in the 32-bit panel layout of
/// [`PanelBlock`], starting on a 64-byte boundary.
struct Panels {
    buf: Vec<u32>,
    off: usize,
    len: usize,
    wpc32: usize,
}

impl Panels {
    fn new(h: &PackedColumns) -> Self {
        let (cols, wpc) = (h.n_cols(), h.words_per_col());
        let wpc32 = 2 * wpc;
        let len = cols.div_ceil(64) * 64 * wpc32;
        let buf = vec![0u32; len + 16];
        let off = buf.as_ptr().align_offset(64).min(16);
        let mut p = Panels { buf, off, len, wpc32 };
        if wpc32 > 0 {
            let words = h.words();
            p.buf[off..off + len].par_chunks_mut(16 * wpc32).enumerate().for_each(|(panel, dst)| {
                for l in 0..16 {
                    let j = panel * 16 + l;
                    if j >= cols {
                        break;
                    }
                    for (w, &x) in words[j * wpc..(j + 1) * wpc].iter().enumerate() {
                        dst[2 * w * 16 + l] = x as u32;
                        dst[(2 * w + 1) * 16 + l] = (x >> 32) as u32;
                    }
                }
            });
        }
        p
    }

    fn block(&self, jb: usize, kb: usize) -> PanelBlock<'_> {
        PanelBlock { panels: &self.buf[self.off..self.off + self.len], wpc32: self.wpc32, jb, kb }
    }
}

/// Shared write access to a slice from several tasks that write provably disjoint index sets.
/// Indices are bounds-checked; only the disjointness is the caller's promise.
#[derive(Clone, Copy)]
struct SharedMut<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: used only to write disjoint elements from different threads (see `write_slice`).
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T: Copy> SharedMut<T> {
    fn new(s: &mut [T]) -> Self {
        SharedMut { ptr: s.as_mut_ptr(), len: s.len() }
    }

    /// SAFETY: no other thread accesses `i .. i + src.len()` while the `SharedMut` is in use.
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
    /// sign bit masks, `cols x cols` row-packed words (empty unless firing counts were given)
    pub pos: Vec<u64>,
    pub neg: Vec<u64>,
}

/// One pass over the upper-triangle blocks. Optionally stores the full symmetric count matrix
/// and/or, given the firing counts, the exact signs of `n N_jk - c_j c_k` and the sum of its
/// absolute values. `reuse` donates old sign buffers (avoids page faults on large widths).
pub(crate) fn pair_pass(
    b: Backend,
    h: &PackedColumns,
    firing: Option<&[u32]>,
    want_coact: bool,
    reuse: Option<(Vec<u64>, Vec<u64>)>,
) -> PairPass {
    let (n, cols, wpc) = (h.n_rows(), h.n_cols(), h.words_per_col());
    let nb = cols.div_ceil(64); // also the words per row of a cols x cols bit matrix
    let panels = (b == Backend::Avx512).then(|| Panels::new(h));
    let mut coact = want_coact.then(|| vec![0u32; cols * cols]);
    let want_signs = firing.is_some();
    let (mut pos, mut neg) = reuse.unwrap_or_default();
    let sign_len = if want_signs { cols * nb } else { 0 };
    // every word is overwritten below, so stale contents of reused buffers do not matter
    pos.resize(sign_len, 0);
    neg.resize(sign_len, 0);
    // firing counts padded with zeros to whole blocks
    let fpad: Vec<u32> = firing.map_or(Vec::new(), |f| {
        let mut v = f.to_vec();
        v.resize(nb * 64, 0);
        v
    });
    let fused = want_signs && panels.is_some() && n <= FUSED_MAX_N;

    let out_n = coact.as_deref_mut().map(SharedMut::new);
    let out_pos = SharedMut::new(&mut pos);
    let out_neg = SharedMut::new(&mut neg);

    let mut tasks = Vec::new();
    for jb0 in (0..nb).step_by(J_BLOCKS_PER_TASK) {
        for kb0 in (jb0..nb).step_by(K_BLOCKS_PER_TASK) {
            tasks.push((jb0, kb0));
        }
    }

    // Ownership of outputs (so tasks never write the same element): block (jb, kb), jb <= kb,
    // writes count rows of jb x columns of kb and the mirror (rows of kb x columns of jb); sign
    // words (rows of jb, word kb), and the mirror words (rows of kb, word jb) for jb < kb. The
    // diagonal block writes both triangles of its own region.
    let abs_upper: u128 = tasks
        .into_par_iter()
        .map(|(jb0, kb0)| {
            let jb1 = (jb0 + J_BLOCKS_PER_TASK).min(nb);
            let kb1 = (kb0 + K_BLOCKS_PER_TASK).min(nb);
            let mut counts = Box::new([0u32; 4096]);
            let mut abs = 0u128;
            let mut mirror_p = [[0u64; J_BLOCKS_PER_TASK]; 64];
            let mut mirror_n = [[0u64; J_BLOCKS_PER_TASK]; 64];
            for kb in kb0..kb1 {
                let k0 = kb * 64;
                let kn = (cols - k0).min(64);
                for jb in jb0..jb1.min(kb + 1) {
                    let j0 = jb * 64;
                    let jn = (cols - j0).min(64);
                    let diag = jb == kb;
                    let (mut up, mut un) = ([0u64; 64], [0u64; 64]);
                    let s = want_signs.then(|| SignBlock {
                        counts: &[],
                        cj: &fpad[j0..j0 + 64],
                        ck: &fpad[k0..k0 + 64],
                        n: n as u64,
                        diag,
                    });
                    match (&panels, &s) {
                        (Some(p), Some(s)) if fused => {
                            let c = out_n.is_some().then_some(&mut *counts);
                            abs += simd::panel_block_fused(b, &p.block(jb, kb), s, c, &mut up, &mut un) as u128;
                        }
                        _ => {
                            match &panels {
                                Some(p) => simd::panel_block_counts(b, &p.block(jb, kb), &mut counts),
                                None => simd::column_block_counts(b, h.words(), wpc, cols, jb, kb, &mut counts),
                            }
                            if let Some(s) = &s {
                                let s = SignBlock { counts: &counts[..], ..*s };
                                abs += simd::sign_block(b, &s, &mut up, &mut un);
                            }
                        }
                    }
                    if let Some(out) = &out_n {
                        for jj in 0..jn {
                            // SAFETY: region owned by this block (see above)
                            unsafe { out.write_slice((j0 + jj) * cols + k0, &counts[jj * 64..jj * 64 + kn]) };
                        }
                        if !diag {
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
                    if want_signs {
                        let (mut tp, mut tn) = (up, un);
                        transpose64(&mut tp);
                        transpose64(&mut tn);
                        for jj in 0..jn {
                            let (p, q) = if diag { (up[jj] | tp[jj], un[jj] | tn[jj]) } else { (up[jj], un[jj]) };
                            // SAFETY: sign words owned by this block
                            unsafe {
                                out_pos.write_slice((j0 + jj) * nb + kb, &[p]);
                                out_neg.write_slice((j0 + jj) * nb + kb, &[q]);
                            }
                        }
                        if !diag {
                            for kk in 0..kn {
                                mirror_p[kk][jb - jb0] = tp[kk];
                                mirror_n[kk][jb - jb0] = tn[kk];
                            }
                        }
                    }
                }
                // mirrored words jb0 .. min(jb1, kb) of the rows of kb, one contiguous run per row
                let m = jb1.min(kb) - jb0.min(kb);
                if want_signs && m > 0 {
                    for kk in 0..kn {
                        // SAFETY: mirror sign words of blocks (jb, kb), jb < kb, owned by this task
                        unsafe {
                            out_pos.write_slice((k0 + kk) * nb + jb0, &mirror_p[kk][..m]);
                            out_neg.write_slice((k0 + kk) * nb + jb0, &mirror_n[kk][..m]);
                        }
                    }
                }
            }
            abs
        })
        .sum();
    PairPass { coact, abs_upper, pos, neg }
}

/// Full symmetric `cols x cols` matrix (row-major) of co-activation counts
/// `N_jk = #{i : H_ij = H_ik = 1}`; the diagonal holds the firing counts.
pub fn coactivation_counts(h: &PackedColumns) -> Vec<u32> {
    coactivation_counts_with(Backend::detect(), h)
}

#[doc(hidden)]
pub fn coactivation_counts_with(b: Backend, h: &PackedColumns) -> Vec<u32> {
    pair_pass(b.check(), h, None, true, None).coact.expect("requested")
}
