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

/// A back end this CPU supports; only [`Backend::check`] makes one. The hidden `Real` hooks take
/// this instead of a `Backend`, so code outside the crate cannot hand them an unsupported one.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked(pub(crate) Backend);

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

/// 64x64 bit transpose (see [`crate::transpose::transpose64`]), in registers with AVX-512.
#[inline]
pub(crate) fn transpose64(b: Backend, a: &mut [u64; 64]) {
    match b {
        // SAFETY: the back end was checked to be available.
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => unsafe { x86::transpose64(a) },
        _ => crate::transpose::transpose64(a),
    }
}

/// AVX-512 version of `Real::add_scaled` for f32; returns false (doing nothing) on other back ends.
pub(crate) fn add_scaled_f32(
    b: Backend,
    out: &mut [f32],
    v: &[i32],
    q: &[f64],
    nf: f64,
    scale: f64,
) -> bool {
    assert!(v.len() == out.len() && q.len() >= out.len());
    match b {
        // SAFETY: lengths checked; the back end was checked to be available.
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => {
            unsafe { x86::add_scaled_f32(out, v, q, nf, scale) };
            true
        }
        _ => false,
    }
}

/// AVX-512 version of `Real::add_scaled` for f64; returns false (doing nothing) on other back ends.
pub(crate) fn add_scaled_f64(
    b: Backend,
    out: &mut [f64],
    v: &[i32],
    q: &[f64],
    nf: f64,
    scale: f64,
) -> bool {
    assert!(v.len() == out.len() && q.len() >= out.len());
    match b {
        // SAFETY: lengths checked; the back end was checked to be available.
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => {
            unsafe { x86::add_scaled_f64(out, v, q, nf, scale) };
            true
        }
        _ => false,
    }
}

/// Adds the per-column counts of the row-major rows in `words` (`wpr` words per row) into `out`
/// (`wpr * 64` entries). AVX-512 only (the portable path transposes 64x64 blocks instead).
pub(crate) fn vertical_counts(b: Backend, words: &[u64], wpr: usize, out: &mut [u32]) {
    assert!(wpr > 0 && words.len().is_multiple_of(wpr) && out.len() == wpr * 64);
    match b {
        // SAFETY: sizes checked above; the back end was checked to be available.
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => unsafe { x86::vertical_counts(words, wpr, out) },
        _ => unreachable!("vertical counting is used by the AVX-512 back end only"),
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

/// Whether `b`'s co-activation counts from the plain column layout run on nibble-split columns
/// ([`crate::nibble`]) with the AVX2 kernel: the POPCNT back end on a CPU with AVX2.
pub(crate) fn uses_nibbles(b: Backend) -> bool {
    b == Backend::Popcnt && has_avx2()
}

/// AVX2 present (cached by std's feature detection).
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
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
        // SAFETY: the back end (POPCNT) was checked to be available
        #[cfg(target_arch = "x86_64")]
        Backend::Popcnt | Backend::Avx512 => unsafe {
            x86::column_block_counts_popcnt(words, wpc, cols, jb, kb, counts)
        },
        _ => portable::column_block_counts(words, wpc, cols, jb, kb, counts),
    }
}

/// Co-activation counts of a block from nibble-split columns; only where [`uses_nibbles`].
pub(crate) fn nibble_block_counts(
    nib: &crate::nibble::NibbleColumns,
    cols: usize,
    jb: usize,
    kb: usize,
    counts: &mut [u32; 4096],
) {
    #[cfg(target_arch = "x86_64")]
    {
        assert!(has_avx2(), "nibble layout without AVX2");
        // SAFETY: AVX2 was detected just above
        unsafe { x86::nibble_block_counts_avx2(nib.words(), nib.steps, cols, jb, kb, counts) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (nib, cols, jb, kb, counts);
        unreachable!("the nibble layout is used on x86-64 with AVX2 only (see `uses_nibbles`)")
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

/// Code rows per sign-product tile (AVX-512 panel kernel and the shared epilogue).
pub(crate) const HS_ROWS: usize = 8;
/// Sign rows per sign-product tile (two 16-row panels).
pub(crate) const HS_KS: usize = 32;

/// `out[r][l] = Σ_w popcount(rows[r][w] & sign_row(32t + l)[w])` over 32-bit words, with the sign
/// rows in the 32-bit panel layout (panel `p` = rows `16p..16p+16`, word `w` of row `16p+l` at
/// `(p*wpr32 + w)*16 + l`). AVX-512 only.
pub(crate) fn panel_row_tile(
    b: Backend,
    rows: &[&[u32]; HS_ROWS],
    panels: &[u32],
    wpr32: usize,
    t: usize,
    out: &mut [[i32; HS_KS]; HS_ROWS],
) {
    assert!(rows.iter().all(|r| r.len() == wpr32) && (2 * t + 2) * wpr32 * 16 <= panels.len());
    match b {
        // SAFETY: sizes checked above; the back end was checked to be available.
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => unsafe { x86::panel_row_tile(rows, panels, wpr32, t, out) },
        _ => unreachable!("panel layout is used by the AVX-512 back end only"),
    }
}

/// `Σ_w popcount(row[w] & pos[w]) - popcount(row[w] & neg[w])` for one pair.
pub(crate) fn signed_dot(b: Backend, row: &[u64], pos: &[u64], neg: &[u64]) -> i32 {
    assert!(row.len() == pos.len() && row.len() == neg.len());
    match b {
        // SAFETY: `b` was checked to be available, and both imply popcnt.
        #[cfg(target_arch = "x86_64")]
        Backend::Popcnt | Backend::Avx512 => unsafe { x86::signed_dot_popcnt(row, pos, neg) },
        _ => portable::signed_dot(row, pos, neg),
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
    assert!(
        rows.iter()
            .chain(pos)
            .chain(neg.into_iter().flatten())
            .all(|s| s.len() == nw)
    );
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

mod portable;

#[cfg(target_arch = "x86_64")]
mod x86;
