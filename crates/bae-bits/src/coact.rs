//! Co-activation counts `N_jk = popcount(col_j AND col_k)` over all column pairs, and the fused
//! pass that turns them into exact covariance signs and the covariance term.
//!
//! Work is split into 64x64 blocks of pairs `(jb, kb)`; only `jb <= kb` is computed and the rest
//! mirrored. A task takes 8 consecutive j-blocks against a few k-blocks, so that its mirrored
//! sign words for one row are 8 adjacent words (a whole cache line) rather than scattered ones.
//! For AVX-512 the columns are first re-laid out in 32-bit panels (see `panel.rs`), for AVX2 split
//! into nibbles (see `nibble.rs`).

use crate::nibble::NibbleColumns;
use crate::packed::PackedColumns;
use crate::panel::Panels32;
use crate::simd::{self, Backend, FUSED_MAX_N, PanelBlock, SignBlock};
use rayon::prelude::*;

/// j-blocks per task (a cache line of mirrored sign words).
const J_BLOCKS_PER_TASK: usize = 8;
/// k-blocks per task.
const K_BLOCKS_PER_TASK: usize = 4;

/// The columns in panel layout, padded with zero columns to whole 64-column blocks.
fn column_panels(h: &PackedColumns) -> Panels32 {
    Panels32::new(h.words(), h.n_cols(), h.words_per_col(), 64)
}

fn panel_block(p: &Panels32, jb: usize, kb: usize) -> PanelBlock<'_> {
    PanelBlock {
        panels: p.words(),
        wpc32: p.wpg32,
        jb,
        kb,
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
        SharedMut {
            ptr: s.as_mut_ptr(),
            len: s.len(),
        }
    }

    /// SAFETY: no other thread accesses `i .. i + src.len()` while the `SharedMut` is in use.
    #[inline]
    unsafe fn write_slice(&self, i: usize, src: &[T]) {
        assert!(i + src.len() <= self.len);
        // SAFETY: in bounds; exclusive per the caller's promise.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(i), src.len()) }
    }

    /// `write_slice` for a run of known length (inlined stores instead of a memcpy call).
    #[inline]
    unsafe fn write_array<const L: usize>(&self, i: usize, src: &[T; L]) {
        assert!(i + L <= self.len);
        // SAFETY: in bounds; exclusive per the caller's promise.
        unsafe { self.ptr.add(i).cast::<[T; L]>().write_unaligned(*src) }
    }
}

impl SharedMut<u32> {
    /// `write_slice` of a block row: a whole one (64) as inlined stores, not a memcpy call.
    #[inline]
    unsafe fn write_up_to_64(&self, i: usize, src: &[u32]) {
        // SAFETY: the caller's promise, passed on
        unsafe {
            match src.try_into() {
                Ok(row) => self.write_array::<64>(i, row),
                Err(_) => self.write_slice(i, src),
            }
        }
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
    let (n, cols) = (h.n_rows(), h.n_cols());
    let nb = cols.div_ceil(64); // also the words per row of a cols x cols bit matrix
    let mut coact = want_coact.then(|| crate::huge::zeroed(cols * cols));
    let (mut pos, mut neg) = reuse.unwrap_or_default();
    let sign_len = if firing.is_some() { cols * nb } else { 0 };
    // every word is overwritten, so stale contents of reused buffers do not matter
    pos.resize(sign_len, 0);
    neg.resize(sign_len, 0);
    let panels = (b == Backend::Avx512).then(|| column_panels(h));
    let nibbles =
        simd::uses_nibbles(b).then(|| NibbleColumns::new(h.words(), cols, h.words_per_col()));
    let pass = Pass {
        b,
        h,
        n,
        cols,
        nb,
        fused: firing.is_some() && panels.is_some() && n <= FUSED_MAX_N,
        panels,
        nibbles,
        // firing counts padded with zeros to whole blocks
        fpad: firing.map(|f| {
            let mut v = f.to_vec();
            v.resize(nb * 64, 0);
            v
        }),
        out_n: coact.as_deref_mut().map(SharedMut::new),
        out_pos: SharedMut::new(&mut pos),
        out_neg: SharedMut::new(&mut neg),
    };
    let mut tasks = Vec::new();
    for jb0 in (0..nb).step_by(J_BLOCKS_PER_TASK) {
        for kb0 in (jb0..nb).step_by(K_BLOCKS_PER_TASK) {
            tasks.push((jb0, kb0));
        }
    }
    // integer sum: exact and independent of the order rayon combines the tasks in
    let abs_upper = tasks
        .into_par_iter()
        .map(|(jb0, kb0)| pass.task(jb0, kb0))
        .sum();
    PairPass {
        coact,
        abs_upper,
        pos,
        neg,
    }
}

/// Shared state of one [`pair_pass`].
///
/// Ownership of the outputs, so that tasks never write the same element: block `(jb, kb)`,
/// `jb <= kb`, writes the counts of rows of `jb` x columns of `kb` and their mirror (rows of `kb` x
/// columns of `jb`); the sign words (rows of `jb`, word `kb`), and for `jb < kb` the mirrored words
/// (rows of `kb`, word `jb`). The diagonal block writes both triangles of its own region.
struct Pass<'a> {
    b: Backend,
    h: &'a PackedColumns,
    n: usize,
    cols: usize,
    nb: usize,
    panels: Option<Panels32>,
    nibbles: Option<NibbleColumns>,
    fused: bool,
    fpad: Option<Vec<u32>>,
    out_n: Option<SharedMut<u32>>,
    out_pos: SharedMut<u64>,
    out_neg: SharedMut<u64>,
}

impl Pass<'_> {
    /// j-blocks `jb0 .. jb0 + J_BLOCKS_PER_TASK` against k-blocks `kb0 .. kb0 + K_BLOCKS_PER_TASK`
    /// (pairs with `jb <= kb` only). Returns the task's `Σ |d|`.
    fn task(&self, jb0: usize, kb0: usize) -> u128 {
        let jb1 = (jb0 + J_BLOCKS_PER_TASK).min(self.nb);
        let kb1 = (kb0 + K_BLOCKS_PER_TASK).min(self.nb);
        // on the heap without a stack temporary (Box::new of an array copies it)
        let mut counts_buf = vec![0u32; 4096];
        let counts: &mut [u32; 4096] = counts_buf.as_mut_slice().try_into().expect("4096");
        let mut abs = 0u128;
        // sign words mirrored into the rows of the current kb: words jb0 .. jb1 of each row
        let mut mirror_p = [[0u64; J_BLOCKS_PER_TASK]; 64];
        let mut mirror_n = [[0u64; J_BLOCKS_PER_TASK]; 64];
        for kb in kb0..kb1 {
            let (k0, kn) = (kb * 64, (self.cols - kb * 64).min(64));
            for jb in jb0..jb1.min(kb + 1) {
                let (mut up, mut un) = ([0u64; 64], [0u64; 64]);
                abs += self.block(jb, kb, counts, &mut up, &mut un);
                if let Some(out) = &self.out_n {
                    self.write_counts(out, jb, kb, counts);
                }
                if self.fpad.is_some() {
                    // afterwards up/un hold the transposed block: the mirrored words
                    self.write_upper_signs(jb, kb, &mut up, &mut un);
                    if jb != kb {
                        for kk in 0..kn {
                            mirror_p[kk][jb - jb0] = up[kk];
                            mirror_n[kk][jb - jb0] = un[kk];
                        }
                    }
                }
            }
            // the mirrored words of blocks jb < kb: one contiguous run per row (a cache line)
            let m = jb1.min(kb) - jb0.min(kb);
            if self.fpad.is_some() && m > 0 {
                for kk in 0..kn {
                    let at = (k0 + kk) * self.nb + jb0;
                    // SAFETY: mirror sign words of blocks (jb, kb), jb < kb, owned by this task
                    unsafe {
                        if m == J_BLOCKS_PER_TASK {
                            self.out_pos.write_array(at, &mirror_p[kk]);
                            self.out_neg.write_array(at, &mirror_n[kk]);
                        } else {
                            self.out_pos.write_slice(at, &mirror_p[kk][..m]);
                            self.out_neg.write_slice(at, &mirror_n[kk][..m]);
                        }
                    }
                }
            }
        }
        abs
    }

    /// Counts of block `(jb, kb)` (when they are needed) and, with firing counts, its upper
    /// triangle signs (`up`/`un`, bit `kk` of word `jj`) and `Σ |d|`.
    fn block(
        &self,
        jb: usize,
        kb: usize,
        counts: &mut [u32; 4096],
        up: &mut [u64; 64],
        un: &mut [u64; 64],
    ) -> u128 {
        let b = self.b;
        let s = self.fpad.as_ref().map(|f| SignBlock {
            counts: &[],
            cj: &f[jb * 64..jb * 64 + 64],
            ck: &f[kb * 64..kb * 64 + 64],
            n: self.n as u64,
            diag: jb == kb,
        });
        if let (Some(p), Some(s), true) = (&self.panels, &s, self.fused) {
            let c = self.out_n.is_some().then_some(counts);
            return simd::panel_block_fused(b, &panel_block(p, jb, kb), s, c, up, un) as u128;
        }
        match (&self.panels, &self.nibbles) {
            (Some(p), _) => simd::panel_block_counts(b, &panel_block(p, jb, kb), counts),
            (None, Some(nib)) => simd::nibble_block_counts(nib, self.cols, jb, kb, counts),
            (None, None) => {
                let (words, wpc) = (self.h.words(), self.h.words_per_col());
                simd::column_block_counts(b, words, wpc, self.cols, jb, kb, counts)
            }
        }
        match s {
            Some(s) => simd::sign_block(
                b,
                &SignBlock {
                    counts: &counts[..],
                    ..s
                },
                up,
                un,
            ),
            None => 0,
        }
    }

    /// The block's counts into the full matrix, and their mirror.
    fn write_counts(&self, out: &SharedMut<u32>, jb: usize, kb: usize, counts: &[u32; 4096]) {
        let (j0, k0, cols) = (jb * 64, kb * 64, self.cols);
        let (jn, kn) = ((cols - j0).min(64), (cols - k0).min(64));
        for jj in 0..jn {
            // SAFETY: region owned by this block (see `Pass`)
            unsafe { out.write_up_to_64((j0 + jj) * cols + k0, &counts[jj * 64..jj * 64 + kn]) };
        }
        if jb != kb {
            let mut col = [0u32; 64];
            for kk in 0..kn {
                for (jj, c) in col.iter_mut().enumerate().take(jn) {
                    *c = counts[jj * 64 + kk];
                }
                // SAFETY: mirror region owned by this block
                unsafe { out.write_up_to_64((k0 + kk) * cols + j0, &col[..jn]) };
            }
        }
    }

    /// Writes the sign words (rows of `jb`, word `kb`), then transposes `up`/`un` in place into
    /// the mirrored words (row `kk` of `kb`, word `jb`). A diagonal block holds both triangles in
    /// its own words.
    fn write_upper_signs(&self, jb: usize, kb: usize, up: &mut [u64; 64], un: &mut [u64; 64]) {
        let (j0, nb) = (jb * 64, self.nb);
        let jn = (self.cols - j0).min(64);
        if jb == kb {
            let (mut tp, mut tn) = (*up, *un);
            simd::transpose64(self.b, &mut tp);
            simd::transpose64(self.b, &mut tn);
            for jj in 0..jn {
                // SAFETY: sign words owned by this block (see `Pass`)
                unsafe {
                    self.out_pos
                        .write_array((j0 + jj) * nb + kb, &[up[jj] | tp[jj]]);
                    self.out_neg
                        .write_array((j0 + jj) * nb + kb, &[un[jj] | tn[jj]]);
                }
            }
            return;
        }
        for jj in 0..jn {
            // SAFETY: sign words owned by this block (see `Pass`)
            unsafe {
                self.out_pos.write_array((j0 + jj) * nb + kb, &[up[jj]]);
                self.out_neg.write_array((j0 + jj) * nb + kb, &[un[jj]]);
            }
        }
        simd::transpose64(self.b, up);
        simd::transpose64(self.b, un);
    }
}

/// Full symmetric `cols x cols` matrix (row-major) of co-activation counts
/// `N_jk = #{i : H_ij = H_ik = 1}`; the diagonal holds the firing counts.
pub fn coactivation_counts(h: &PackedColumns) -> Vec<u32> {
    coactivation_counts_with(Backend::detect(), h)
}

#[doc(hidden)]
pub fn coactivation_counts_with(b: Backend, h: &PackedColumns) -> Vec<u32> {
    pair_pass(b.check(), h, None, true, None)
        .coact
        .expect("requested")
}
