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
    /// AVX-512F/BW + AVX512_VPOPCNTDQ intrinsics.
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
                    && std::arch::is_x86_feature_detected!("avx512bw")
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

/// A 64x64 block of column pairs `(jb, kb)` in the 32-bit panel layout used by the AVX-512
/// kernels: panel `p` holds columns `16p..16p+16`, 32-bit word `w` of column `16p+l` at
/// `(p*wpc32 + w)*16 + l`.
pub(crate) struct PanelBlock<'a> {
    pub panels: &'a [u32],
    pub wpc32: usize,
    pub jb: usize,
    pub kb: usize,
}

impl PanelBlock<'_> {
    fn check(&self) {
        assert!((self.jb.max(self.kb) + 1) * 4 * self.wpc32 * 16 <= self.panels.len());
    }
}

/// Co-activation counts of a block, `counts[jj*64 + kk] = N_{64jb+jj, 64kb+kk}`, from the panel
/// layout. AVX-512 only.
pub(crate) fn panel_block_counts(b: Backend, p: &PanelBlock<'_>, counts: &mut [u32; 4096]) {
    p.check();
    match b {
        // SAFETY: geometry checked above; the back end was checked to be available.
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => unsafe { x86::panel_block_counts(p, counts) },
        _ => unreachable!("panel layout is used by the AVX-512 back end only"),
    }
}

/// Largest `n` for [`panel_block_fused`]: counts and firing counts fit in i16 lanes, all of `n`
/// fits one word chunk, and the per-block sum of `|d| <= n²/4` fits u32 lanes.
pub(crate) const FUSED_MAX_N: usize = 4096;

/// Counts, signs and `Σ|d|` of a block in one go, straight from the accumulator registers
/// (`n <= FUSED_MAX_N`). AVX-512 only. Returns `Σ |d_jk|` over the counted pairs.
pub(crate) fn panel_block_fused(
    b: Backend,
    p: &PanelBlock<'_>,
    s: &SignBlock<'_>,
    counts: Option<&mut [u32; 4096]>,
    pos: &mut [u64; 64],
    neg: &mut [u64; 64],
) -> u64 {
    p.check();
    assert!(s.n as usize <= FUSED_MAX_N && s.cj.len() == 64 && s.ck.len() == 64);
    match b {
        // SAFETY: geometry checked above; the back end was checked to be available.
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => unsafe { x86::panel_block_fused(p, s, counts, pos, neg) },
        _ => unreachable!("panel layout is used by the AVX-512 back end only"),
    }
}

/// Co-activation counts of a block from the plain column layout (portable back ends).
/// Columns at or beyond `cols` count as zero.
pub(crate) fn column_block_counts(
    b: Backend,
    words: &[u64],
    wpc: usize,
    cols: usize,
    jb: usize,
    kb: usize,
    counts: &mut [u32; 4096],
) {
    assert!(words.len() == wpc * cols);
    match b {
        #[cfg(target_arch = "x86_64")]
        Backend::Popcnt | Backend::Avx512 => unsafe { x86::column_block_counts_popcnt(words, wpc, cols, jb, kb, counts) },
        _ => portable::column_block_counts(words, wpc, cols, jb, kb, counts),
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

/// `out[i][k] = Σ_w popcount(rows[i][w] & pos[k][w]) - popcount(rows[i][w] & neg[k][w])`, or
/// without the second term when `neg` is `None`. All slices have the same length.
pub(crate) fn sign_micro(
    b: Backend,
    rows: &[&[u64]; SP_I],
    pos: &[&[u64]; SP_K],
    neg: Option<&[&[u64]; SP_K]>,
) -> [[i32; SP_K]; SP_I] {
    let nw = rows[0].len();
    assert!(rows.iter().chain(pos).chain(neg.into_iter().flatten()).all(|s| s.len() == nw));
    match (b, neg) {
        // SAFETY (x86 arms): `b` was checked to be available on this CPU.
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx512, Some(neg)) => unsafe { x86::sign_micro::<true>(rows, pos, neg) },
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx512, None) => unsafe { x86::sign_micro::<false>(rows, pos, pos) },
        #[cfg(target_arch = "x86_64")]
        (Backend::Popcnt, Some(neg)) => unsafe { x86::sign_micro_popcnt::<true>(rows, pos, neg) },
        #[cfg(target_arch = "x86_64")]
        (Backend::Popcnt, None) => unsafe { x86::sign_micro_popcnt::<false>(rows, pos, pos) },
        (_, Some(neg)) => portable::sign_micro::<true>(rows, pos, neg),
        (_, None) => portable::sign_micro::<false>(rows, pos, pos),
    }
}

// ---------------------------------------------------------------------------------------------

/// Plain-Rust kernels. `#[inline(always)]` so that the `popcnt`-enabled wrappers in `x86` get
/// their own copy compiled with the instruction.
mod portable {
    use super::{SP_I, SP_K, SignBlock};

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
    pub fn column_block_counts(words: &[u64], wpc: usize, cols: usize, jb: usize, kb: usize, counts: &mut [u32; 4096]) {
        counts.fill(0);
        if cols == 0 {
            return;
        }
        let col = |j: usize| &words[j.min(cols - 1) * wpc..(j.min(cols - 1) + 1) * wpc];
        let (j0, k0) = (jb * 64, kb * 64);
        let jn = cols.saturating_sub(j0).min(64);
        let kn = cols.saturating_sub(k0).min(64);
        for jj in (0..jn).step_by(2) {
            let (a0, a1) = (col(j0 + jj), col(j0 + jj + 1));
            for kk in (0..kn).step_by(4) {
                let b: [&[u64]; 4] = std::array::from_fn(|q| col(k0 + kk + q));
                let mut acc = [[0u32; 4]; 2];
                for w in 0..wpc {
                    let (x0, x1) = (a0[w], a1[w]);
                    for q in 0..4 {
                        let y = b[q][w];
                        acc[0][q] += (x0 & y).count_ones();
                        acc[1][q] += (x1 & y).count_ones();
                    }
                }
                for (r, acc) in acc.iter().enumerate() {
                    for (q, &v) in acc.iter().enumerate() {
                        if jj + r < jn && kk + q < kn {
                            counts[(jj + r) * 64 + kk + q] = v;
                        }
                    }
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
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{PanelBlock, SP_I, SP_K, SignBlock, portable};
    use std::arch::x86_64::*;

    // ---- portable code compiled with the popcnt instruction ----

    #[target_feature(enable = "popcnt")]
    pub unsafe fn count_majors_popcnt(words: &[u64], wpm: usize, out: &mut [u32]) {
        portable::count_majors(words, wpm, out)
    }

    #[target_feature(enable = "popcnt")]
    pub unsafe fn column_block_counts_popcnt(
        words: &[u64],
        wpc: usize,
        cols: usize,
        jb: usize,
        kb: usize,
        counts: &mut [u32; 4096],
    ) {
        portable::column_block_counts(words, wpc, cols, jb, kb, counts)
    }

    #[target_feature(enable = "popcnt")]
    pub unsafe fn sign_micro_popcnt<const SIGNED: bool>(
        rows: &[&[u64]; SP_I],
        pos: &[&[u64]; SP_K],
        neg: &[&[u64]; SP_K],
    ) -> [[i32; SP_K]; SP_I] {
        portable::sign_micro::<SIGNED>(rows, pos, neg)
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

    /// Sums over words `w0..w1` for 8 j columns (broadcast 32-bit words from `a`, lane stride 16)
    /// x 32 k columns (two panels `b0`, `b1`): 16 accumulators of 16 u32 lanes. Vectorised
    /// across pairs, so no horizontal sums are needed however short a column is.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    unsafe fn panel_acc(a: *const u32, b0: *const u32, b1: *const u32, w0: usize, w1: usize) -> [[__m512i; 2]; 8] {
        let mut acc = [[_mm512_setzero_si512(); 2]; 8];
        // SAFETY: the caller guarantees words w0..w1 of the three panels exist.
        unsafe {
            for w in w0..w1 {
                let v0 = _mm512_loadu_si512(b0.add(w * 16).cast());
                let v1 = _mm512_loadu_si512(b1.add(w * 16).cast());
                for (jj, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_epi32(*a.add(w * 16 + jj) as i32);
                    acc[0] = _mm512_add_epi32(acc[0], _mm512_popcnt_epi32(_mm512_and_si512(x, v0)));
                    acc[1] = _mm512_add_epi32(acc[1], _mm512_popcnt_epi32(_mm512_and_si512(x, v1)));
                }
            }
        }
        acc
    }

    /// Pointers for j-group `g` (8 columns) and k-half `h` (32 columns) of a block.
    #[inline(always)]
    fn group_ptrs(p: &PanelBlock<'_>, g: usize, h: usize) -> (*const u32, *const u32, *const u32) {
        let panel = |q: usize| p.panels[q * p.wpc32 * 16..].as_ptr();
        // SAFETY: lane offset 0 or 8 inside a panel of 16 lanes
        let a = unsafe { panel(p.jb * 4 + g / 2).add((g % 2) * 8) };
        (a, panel(p.kb * 4 + 2 * h), panel(p.kb * 4 + 2 * h + 1))
    }

    /// Word chunk for long columns: 4096 rows, so a 64-column block is 32 KiB.
    const WORD_CHUNK32: usize = 128;

    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    pub unsafe fn panel_block_counts(p: &PanelBlock<'_>, counts: &mut [u32; 4096]) {
        if p.wpc32 == 0 {
            counts.fill(0);
            return;
        }
        let out = counts.as_mut_ptr();
        for w0 in (0..p.wpc32).step_by(WORD_CHUNK32) {
            let w1 = (w0 + WORD_CHUNK32).min(p.wpc32);
            for h in 0..2 {
                for g in 0..8 {
                    let (a, b0, b1) = group_ptrs(p, g, h);
                    // SAFETY: panel geometry checked by the dispatcher; stores stay in `counts`.
                    unsafe {
                        let acc = panel_acc(a, b0, b1, w0, w1);
                        for (jj, acc) in acc.iter().enumerate() {
                            for (q, &v) in acc.iter().enumerate() {
                                let o = out.add((g * 8 + jj) * 64 + h * 32 + q * 16).cast::<__m512i>();
                                let v = if w0 == 0 { v } else { _mm512_add_epi32(v, _mm512_loadu_si512(o)) };
                                _mm512_storeu_si512(o, v);
                            }
                        }
                    }
                }
            }
        }
    }

    /// `d = n N - c_j c_k` for 16 pairs in one VPMADDWD: each 32-bit lane holds the i16 pair
    /// `(N, c_j)` and is multiplied by `(n, -c_k)`. Everything fits i16 because `n <= 4096`, and
    /// `Σ|d| <= 256 * n²/4` fits the u32 lanes of one block.
    #[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq")]
    pub unsafe fn panel_block_fused(
        p: &PanelBlock<'_>,
        s: &SignBlock<'_>,
        mut counts: Option<&mut [u32; 4096]>,
        pos: &mut [u64; 64],
        neg: &mut [u64; 64],
    ) -> u64 {
        let zero = _mm512_setzero_si512();
        let nlo = _mm512_set1_epi32(s.n as i32);
        let mut abs = zero;
        pos.fill(0);
        neg.fill(0);
        for h in 0..2 {
            let mut nk = [zero; 2];
            for (q, nk) in nk.iter_mut().enumerate() {
                // SAFETY: s.ck has 64 entries
                let ck = unsafe { _mm512_loadu_si512(s.ck.as_ptr().add(h * 32 + q * 16).cast()) };
                *nk = _mm512_or_si512(nlo, _mm512_slli_epi32::<16>(_mm512_sub_epi32(zero, ck)));
            }
            for g in 0..8 {
                let (a, b0, b1) = group_ptrs(p, g, h);
                // SAFETY: panel geometry checked by the dispatcher.
                let acc = unsafe { panel_acc(a, b0, b1, 0, p.wpc32) };
                for (jj, acc) in acc.iter().enumerate() {
                    let j = g * 8 + jj;
                    let cj = _mm512_set1_epi32((s.cj[j] << 16) as i32);
                    for (q, &cnt) in acc.iter().enumerate() {
                        let base = h * 32 + q * 16;
                        if let Some(c) = counts.as_deref_mut() {
                            // SAFETY: 16 lanes inside the 4096-entry block
                            unsafe { _mm512_storeu_si512(c.as_mut_ptr().add(j * 64 + base).cast(), cnt) };
                        }
                        let valid: __mmask16 = if !s.diag || j < base {
                            0xFFFF
                        } else if j >= base + 15 {
                            0
                        } else {
                            (0xFFFFu32 << (j - base + 1)) as u16
                        };
                        let d = _mm512_madd_epi16(_mm512_or_si512(cnt, cj), nk[q]);
                        let pm = _mm512_mask_cmpgt_epi32_mask(valid, d, zero);
                        let nm = _mm512_mask_cmplt_epi32_mask(valid, d, zero);
                        abs = _mm512_mask_add_epi32(abs, valid, abs, _mm512_abs_epi32(d));
                        pos[j] |= (pm as u64) << base;
                        neg[j] |= (nm as u64) << base;
                    }
                }
            }
        }
        let lo = _mm512_cvtepu32_epi64(_mm512_castsi512_si256(abs));
        let hi = _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64::<1>(abs));
        _mm512_reduce_add_epi64(_mm512_add_epi64(lo, hi)) as u64
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
    pub unsafe fn sign_micro<const SIGNED: bool>(
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
                    if SIGNED {
                        q[k] = _mm512_maskz_loadu_epi64(m, neg[k].as_ptr().add(off).cast());
                    }
                }
                for (a, r) in acc.iter_mut().zip(rows) {
                    let x = _mm512_maskz_loadu_epi64(m, r.as_ptr().add(off).cast());
                    for k in 0..SP_K {
                        a[k] = _mm512_add_epi64(a[k], _mm512_popcnt_epi64(_mm512_and_si512(x, p[k])));
                        if SIGNED {
                            a[k] = _mm512_sub_epi64(a[k], _mm512_popcnt_epi64(_mm512_and_si512(x, q[k])));
                        }
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
