//! Kernel back ends and run-time dispatch.
//!
//! Each hot kernel exists once as plain Rust (`portable`, compiled twice: for the baseline target
//! and with the `popcnt` instruction enabled) and once with AVX-512F + VPOPCNTQ intrinsics (`x86`).
//! The choice is made at run time with `is_x86_feature_detected!`, so a binary built for the
//! baseline x86-64 target runs everywhere and still uses the wide path where it exists.

/// Which kernel implementation to use. `detect()` picks the best one this CPU supports; the
/// others exist so tests and benches can compare them (all give bit-identical results).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Plain Rust for the compilation target (no run-time features).
    Scalar,
    /// Plain Rust with the `popcnt` instruction enabled.
    Popcnt,
    /// AVX-512F + AVX512_VPOPCNTDQ intrinsics.
    Avx512,
}

impl Backend {
    /// The fastest back end this CPU supports.
    pub fn detect() -> Backend {
        if Backend::Avx512.available() {
            Backend::Avx512
        } else if Backend::Popcnt.available() {
            Backend::Popcnt
        } else {
            Backend::Scalar
        }
    }

    /// Whether this CPU can run the back end.
    pub fn available(self) -> bool {
        match self {
            Backend::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Backend::Popcnt => std::arch::is_x86_feature_detected!("popcnt"),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// All back ends this CPU supports, `Scalar` first.
    pub fn all_available() -> Vec<Backend> {
        [Backend::Scalar, Backend::Popcnt, Backend::Avx512]
            .into_iter()
            .filter(|b| b.available())
            .collect()
    }

    /// Panics unless the CPU supports `self`: every public `*_with` entry point calls this, so
    /// the `unsafe` feature-gated calls below only ever run on a CPU that has the features.
    pub(crate) fn check(self) -> Backend {
        assert!(
            self.available(),
            "bae-bits: back end {self:?} is not supported by this CPU"
        );
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Dispatch. Callers pass a `Backend` that went through `Backend::check` (or `detect`).

/// `out[m] = popcount(words[m*wpm .. (m+1)*wpm])` for every major index `m`.
pub(crate) fn count_majors(b: Backend, words: &[u64], wpm: usize, out: &mut [u32]) {
    debug_assert_eq!(words.len(), wpm * out.len());
    match b {
        // SAFETY (all three x86 arms): `b` was checked to be available on this CPU.
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => unsafe { x86::count_majors(words, wpm, out) },
        #[cfg(target_arch = "x86_64")]
        Backend::Popcnt => unsafe { x86::count_majors_popcnt(words, wpm, out) },
        _ => portable::count_majors(words, wpm, out),
    }
}

pub(crate) fn pack_positive_f32(b: Backend, src: &[f32], dst: &mut [u64]) {
    debug_assert_eq!(dst.len(), src.len().div_ceil(64));
    match b {
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => unsafe { x86::pack_positive_f32(src, dst) },
        _ => crate::packed::pack_with(src, dst, |v| v > 0.0),
    }
}

pub(crate) fn pack_positive_f64(b: Backend, src: &[f64], dst: &mut [u64]) {
    debug_assert_eq!(dst.len(), src.len().div_ceil(64));
    match b {
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => unsafe { x86::pack_positive_f64(src, dst) },
        _ => crate::packed::pack_with(src, dst, |v| v > 0.0),
    }
}

/// Geometry of a co-activation micro tile; see [`coact_tile`].
pub(crate) struct CoactTile<'a> {
    /// panel layout: panel `p` (columns 8p..8p+8), word `w`, lane `l` at `(p*wpc + w)*8 + l`
    pub panels: &'a [u64],
    pub wpc: usize,
    /// first j panel (8 consecutive panels = 64 columns are done)
    pub pj: usize,
    /// first k panel (2 consecutive panels = 16 columns are done)
    pub pk: usize,
    /// word range
    pub w0: usize,
    pub w1: usize,
}

/// `tile[jj*stride + kk] += Σ_{w0 <= w < w1} popcount(col(8pj+jj)[w] & col(8pk+kk)[w])` for
/// `jj < 64`, `kk < 16`. `tile` must hold `63*stride + 16` elements.
pub(crate) fn coact_tile(b: Backend, t: &CoactTile<'_>, tile: &mut [u32], stride: usize) {
    assert!(tile.len() >= 63 * stride + 16 && stride >= 16);
    assert!((t.pj + 8).max(t.pk + 2) * t.wpc * 8 <= t.panels.len() && t.w1 <= t.wpc);
    match b {
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => unsafe { x86::coact_tile(t, tile, stride) },
        #[cfg(target_arch = "x86_64")]
        Backend::Popcnt => unsafe { x86::coact_tile_popcnt(t, tile, stride) },
        _ => portable::coact_tile(t, tile, stride),
    }
}

/// Signs and absolute values of `d_jk = n*N_jk - c_j*c_k` over one 64x64 block of counts.
pub(crate) struct SignBlock<'a> {
    /// counts `N[jj*64 + kk]`
    pub counts: &'a [u32],
    /// firing counts of the block's 64 j columns and 64 k columns (0 beyond the matrix)
    pub cj: &'a [u32],
    pub ck: &'a [u32],
    pub n: u64,
    /// diagonal block: only pairs with kk > jj count (the rest comes from the mirror)
    pub diag: bool,
}

/// Fills `pos[jj]`/`neg[jj]` with bit `kk` set iff `d_jk > 0` / `< 0` (only pairs counted, see
/// [`SignBlock::diag`]) and returns `Σ |d_jk|` over the counted pairs.
pub(crate) fn sign_block(
    b: Backend,
    s: &SignBlock<'_>,
    pos: &mut [u64; 64],
    neg: &mut [u64; 64],
) -> u128 {
    assert!(s.counts.len() == 64 * 64 && s.cj.len() == 64 && s.ck.len() == 64);
    match b {
        // The vector path needs n*N and c_j*c_k below 2^52 and a per-lane sum below 2^64.
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 if s.n < (1 << 26) => unsafe { x86::sign_block(s, pos, neg) },
        _ => portable::sign_block(s, pos, neg),
    }
}

/// Rows of the sign-product micro kernel.
pub(crate) const SP_I: usize = 4;
/// Sign rows (k) of the sign-product micro kernel.
pub(crate) const SP_K: usize = 3;

/// `out[i][k] = Σ_w popcount(rows[i][w] & pos[k][w]) - popcount(rows[i][w] & neg[k][w])`.
/// All slices have the same length.
pub(crate) fn sign_micro(
    b: Backend,
    rows: &[&[u64]; SP_I],
    pos: &[&[u64]; SP_K],
    neg: &[&[u64]; SP_K],
) -> [[i32; SP_K]; SP_I] {
    let nw = rows[0].len();
    assert!(rows.iter().chain(pos).chain(neg).all(|s| s.len() == nw));
    match b {
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => unsafe { x86::sign_micro(rows, pos, neg) },
        #[cfg(target_arch = "x86_64")]
        Backend::Popcnt => unsafe { x86::sign_micro_popcnt(rows, pos, neg) },
        _ => portable::sign_micro(rows, pos, neg),
    }
}

// ---------------------------------------------------------------------------------------------

/// Plain-Rust kernels. `#[inline(always)]` so that the `popcnt`-enabled wrappers in `x86` get
/// their own copy compiled with the instruction.
mod portable {
    use super::{CoactTile, SP_I, SP_K, SignBlock};

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

    #[inline(always)]
    pub fn coact_tile(t: &CoactTile<'_>, tile: &mut [u32], stride: usize) {
        let p = t.panels;
        for jp in 0..8 {
            let a = &p[(t.pj + jp) * t.wpc * 8..(t.pj + jp + 1) * t.wpc * 8];
            let b = &p[t.pk * t.wpc * 8..(t.pk + 2) * t.wpc * 8];
            let (b0, b1) = b.split_at(t.wpc * 8);
            let mut acc = [[0u32; 16]; 8];
            for w in t.w0..t.w1 {
                let aw = &a[w * 8..w * 8 + 8];
                let bw0 = &b0[w * 8..w * 8 + 8];
                let bw1 = &b1[w * 8..w * 8 + 8];
                for (row, &x) in acc.iter_mut().zip(aw) {
                    for (r, &y) in row[..8].iter_mut().zip(bw0) {
                        *r += (x & y).count_ones();
                    }
                    for (r, &y) in row[8..].iter_mut().zip(bw1) {
                        *r += (x & y).count_ones();
                    }
                }
            }
            for (jj, row) in acc.iter().enumerate() {
                let o = &mut tile[(jp * 8 + jj) * stride..(jp * 8 + jj) * stride + 16];
                for (o, &v) in o.iter_mut().zip(row) {
                    *o += v;
                }
            }
        }
    }

    #[inline(always)]
    pub fn sign_block(s: &SignBlock<'_>, pos: &mut [u64; 64], neg: &mut [u64; 64]) -> u128 {
        let n = s.n as i128;
        let mut abs = 0u128;
        for jj in 0..64 {
            let cj = s.cj[jj] as i128;
            let (mut pw, mut nw) = (0u64, 0u64);
            let k0 = if s.diag { jj + 1 } else { 0 };
            for kk in k0..64 {
                let d = n * s.counts[jj * 64 + kk] as i128 - cj * s.ck[kk] as i128;
                pw |= ((d > 0) as u64) << kk;
                nw |= ((d < 0) as u64) << kk;
                abs += d.unsigned_abs();
            }
            pos[jj] = pw;
            neg[jj] = nw;
        }
        abs
    }

    #[inline(always)]
    pub fn sign_micro(
        rows: &[&[u64]; SP_I],
        pos: &[&[u64]; SP_K],
        neg: &[&[u64]; SP_K],
    ) -> [[i32; SP_K]; SP_I] {
        let mut acc = [[0i32; SP_K]; SP_I];
        for (a, r) in acc.iter_mut().zip(rows) {
            for ((a, p), q) in a.iter_mut().zip(pos).zip(neg) {
                let mut s = 0i32;
                for ((&x, &y), &z) in r.iter().zip(p.iter()).zip(q.iter()) {
                    s += (x & y).count_ones() as i32 - (x & z).count_ones() as i32;
                }
                *a = s;
            }
        }
        acc
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{CoactTile, SP_I, SP_K, SignBlock, portable};
    use std::arch::x86_64::*;

    // ---- portable code compiled with the popcnt instruction ----

    #[target_feature(enable = "popcnt")]
    pub unsafe fn count_majors_popcnt(words: &[u64], wpm: usize, out: &mut [u32]) {
        portable::count_majors(words, wpm, out)
    }

    #[target_feature(enable = "popcnt")]
    pub unsafe fn coact_tile_popcnt(t: &CoactTile<'_>, tile: &mut [u32], stride: usize) {
        portable::coact_tile(t, tile, stride)
    }

    #[target_feature(enable = "popcnt")]
    pub unsafe fn sign_micro_popcnt(
        rows: &[&[u64]; SP_I],
        pos: &[&[u64]; SP_K],
        neg: &[&[u64]; SP_K],
    ) -> [[i32; SP_K]; SP_I] {
        portable::sign_micro(rows, pos, neg)
    }

    // ---- AVX-512 ----

    /// Mask of the first `len` (< 8) lanes.
    #[inline(always)]
    fn lanes8(len: usize) -> __mmask8 {
        ((1u32 << len) - 1) as __mmask8
    }

    /// Popcount of a slice: VPOPCNTQ over 8 words at a time, masked tail.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    fn popcount_slice(w: &[u64]) -> u64 {
        let mut acc = _mm512_setzero_si512();
        let chunks = w.chunks_exact(8);
        let rem = chunks.remainder();
        for c in chunks {
            // SAFETY: `c` holds 8 readable words.
            let v = unsafe { _mm512_loadu_si512(c.as_ptr().cast()) };
            acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(v));
        }
        if !rem.is_empty() {
            // SAFETY: masked lanes are not read.
            let v = unsafe { _mm512_maskz_loadu_epi64(lanes8(rem.len()), rem.as_ptr().cast()) };
            acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(v));
        }
        _mm512_reduce_add_epi64(acc) as u64
    }

    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    pub unsafe fn count_majors(words: &[u64], wpm: usize, out: &mut [u32]) {
        if wpm == 0 {
            out.fill(0);
            return;
        }
        for (o, w) in out.iter_mut().zip(words.chunks_exact(wpm)) {
            *o = popcount_slice(w) as u32;
        }
    }

    /// 16 floats per compare; masked loads for the ragged end (zeros compare false).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn pack_positive_f32(src: &[f32], dst: &mut [u64]) {
        let zero = _mm512_setzero_ps();
        for (w, d) in dst.iter_mut().enumerate() {
            let base = w * 64;
            let mut word = 0u64;
            for q in 0..4 {
                let start = base + q * 16;
                if start >= src.len() {
                    break;
                }
                let len = (src.len() - start).min(16);
                let m: __mmask16 = if len == 16 {
                    0xFFFF
                } else {
                    ((1u32 << len) - 1) as u16
                };
                // SAFETY: only the first `len` lanes are read, all inside `src`.
                let v = unsafe { _mm512_maskz_loadu_ps(m, src.as_ptr().add(start)) };
                let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, zero);
                word |= (gt as u64) << (q * 16);
            }
            *d = word;
        }
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn pack_positive_f64(src: &[f64], dst: &mut [u64]) {
        let zero = _mm512_setzero_pd();
        for (w, d) in dst.iter_mut().enumerate() {
            let base = w * 64;
            let mut word = 0u64;
            for q in 0..8 {
                let start = base + q * 8;
                if start >= src.len() {
                    break;
                }
                let len = (src.len() - start).min(8);
                let m: __mmask8 = if len == 8 { 0xFF } else { lanes8(len) };
                // SAFETY: only the first `len` lanes are read, all inside `src`.
                let v = unsafe { _mm512_maskz_loadu_pd(m, src.as_ptr().add(start)) };
                let gt = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(v, zero);
                word |= (gt as u64) << (q * 8);
            }
            *d = word;
        }
    }

    /// Register tile: 8 j columns (broadcast words) x 16 k columns (two panel vectors), 16
    /// accumulators of 8 u64 lanes. Vectorised across pairs, so no horizontal sums are needed
    /// even when a column is a single 512-bit vector (n = 512).
    #[target_feature(enable = "avx2,avx512f,avx512vpopcntdq")]
    pub unsafe fn coact_tile(t: &CoactTile<'_>, tile: &mut [u32], stride: usize) {
        let base = t.panels.as_ptr();
        let wpc = t.wpc;
        for jp in 0..8 {
            // SAFETY: the dispatcher checked that panels pj..pj+8 and pk..pk+2 exist and w1 <= wpc.
            unsafe {
                let a = base.add((t.pj + jp) * wpc * 8);
                let b0 = base.add(t.pk * wpc * 8);
                let b1 = base.add((t.pk + 1) * wpc * 8);
                let mut acc = [[_mm512_setzero_si512(); 2]; 8];
                for w in t.w0..t.w1 {
                    let v0 = _mm512_loadu_si512(b0.add(w * 8).cast());
                    let v1 = _mm512_loadu_si512(b1.add(w * 8).cast());
                    for (jj, acc) in acc.iter_mut().enumerate() {
                        let x = _mm512_set1_epi64(*a.add(w * 8 + jj) as i64);
                        acc[0] =
                            _mm512_add_epi64(acc[0], _mm512_popcnt_epi64(_mm512_and_si512(x, v0)));
                        acc[1] =
                            _mm512_add_epi64(acc[1], _mm512_popcnt_epi64(_mm512_and_si512(x, v1)));
                    }
                }
                for (jj, acc) in acc.iter().enumerate() {
                    let o = tile.as_mut_ptr().add((jp * 8 + jj) * stride);
                    for (h, &v) in acc.iter().enumerate() {
                        let p = o.add(h * 8).cast::<__m256i>();
                        let sum = _mm256_add_epi32(_mm256_loadu_si256(p), _mm512_cvtepi64_epi32(v));
                        _mm256_storeu_si256(p, sum);
                    }
                }
            }
        }
    }

    /// 8 pairs per step in i64 lanes: `d = n*N - c_j*c_k` with VPMULUDQ (all factors < 2^32),
    /// signs straight into bit masks, `|d|` summed per lane (< 2^52 each, <= 512 per lane).
    #[target_feature(enable = "avx2,avx512f")]
    pub unsafe fn sign_block(s: &SignBlock<'_>, pos: &mut [u64; 64], neg: &mut [u64; 64]) -> u128 {
        unsafe {
            let nv = _mm512_set1_epi64(s.n as i64);
            let zero = _mm512_setzero_si512();
            let mut ck = [zero; 8];
            for (t, c) in ck.iter_mut().enumerate() {
                *c = _mm512_cvtepu32_epi64(_mm256_loadu_si256(s.ck.as_ptr().add(t * 8).cast()));
            }
            let mut abs = zero;
            for jj in 0..64 {
                let cj = _mm512_set1_epi64(s.cj[jj] as i64);
                let (mut pw, mut nw) = (0u64, 0u64);
                for (t, &ckv) in ck.iter().enumerate() {
                    let valid: __mmask8 = if !s.diag || jj < t * 8 {
                        0xFF
                    } else if jj >= t * 8 + 7 {
                        0
                    } else {
                        (0xFFu32 << (jj - t * 8 + 1)) as u8
                    };
                    if valid == 0 {
                        continue;
                    }
                    let cnt = _mm512_cvtepu32_epi64(_mm256_loadu_si256(
                        s.counts.as_ptr().add(jj * 64 + t * 8).cast(),
                    ));
                    let d = _mm512_sub_epi64(_mm512_mul_epu32(cnt, nv), _mm512_mul_epu32(cj, ckv));
                    let pm = _mm512_mask_cmpgt_epi64_mask(valid, d, zero);
                    let nm = _mm512_mask_cmplt_epi64_mask(valid, d, zero);
                    abs = _mm512_mask_add_epi64(abs, valid, abs, _mm512_abs_epi64(d));
                    pw |= (pm as u64) << (t * 8);
                    nw |= (nm as u64) << (t * 8);
                }
                pos[jj] = pw;
                neg[jj] = nw;
            }
            let mut lanes = [0u64; 8];
            _mm512_storeu_si512(lanes.as_mut_ptr().cast(), abs);
            lanes.iter().map(|&v| v as u128).sum()
        }
    }

    /// 4 code rows x 3 sign rows, vectorised along the words (8 per step) with a masked tail;
    /// one horizontal sum per pair at the end.
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    pub unsafe fn sign_micro(
        rows: &[&[u64]; SP_I],
        pos: &[&[u64]; SP_K],
        neg: &[&[u64]; SP_K],
    ) -> [[i32; SP_K]; SP_I] {
        let nw = rows[0].len();
        let mut acc = [[_mm512_setzero_si512(); SP_K]; SP_I];
        // SAFETY: all slices have `nw` words (checked by the dispatcher); masked lanes are not read.
        unsafe {
            let step = |acc: &mut [[__m512i; SP_K]; SP_I], off: usize, m: __mmask8| {
                let mut p = [_mm512_setzero_si512(); SP_K];
                let mut q = [_mm512_setzero_si512(); SP_K];
                for k in 0..SP_K {
                    p[k] = _mm512_maskz_loadu_epi64(m, pos[k].as_ptr().add(off).cast());
                    q[k] = _mm512_maskz_loadu_epi64(m, neg[k].as_ptr().add(off).cast());
                }
                for (a, r) in acc.iter_mut().zip(rows) {
                    let x = _mm512_maskz_loadu_epi64(m, r.as_ptr().add(off).cast());
                    for k in 0..SP_K {
                        a[k] =
                            _mm512_add_epi64(a[k], _mm512_popcnt_epi64(_mm512_and_si512(x, p[k])));
                        a[k] =
                            _mm512_sub_epi64(a[k], _mm512_popcnt_epi64(_mm512_and_si512(x, q[k])));
                    }
                }
            };
            let full = nw / 8;
            for v in 0..full {
                step(&mut acc, v * 8, 0xFF);
            }
            if nw % 8 != 0 {
                step(&mut acc, full * 8, lanes8(nw % 8));
            }
        }
        let mut out = [[0i32; SP_K]; SP_I];
        for (o, a) in out.iter_mut().zip(&acc) {
            for (o, &a) in o.iter_mut().zip(a) {
                *o = _mm512_reduce_add_epi64(a) as i32;
            }
        }
        out
    }
}
