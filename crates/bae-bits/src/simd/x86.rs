//! AVX-512 kernels, the AVX2 co-activation tile, and the portable ones recompiled with `popcnt`. Every `unsafe fn` here
//! requires the CPU features of its `#[target_feature]`; the dispatchers in `simd` guarantee them.

use super::{HS_KS, HS_ROWS, PanelBlock, SP_I, SP_K, SignBlock, portable};
use crate::nibble::STEP_U32;
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

// ---- AVX2 (CPUs without AVX-512: the Popcnt back end uses it when present) ----

/// AND-popcounts of a 2 x 4 tile of nibble-split columns (see `crate::nibble`) over `steps`
/// 256-bit steps: per pair and step 2 ANDs, 2 table lookups and 2 byte adds (at most 8 a step)
/// into byte counters, folded into u64 lanes with VPSADBW every 31 steps, before a byte overflows.
#[inline(always)]
unsafe fn tile_2x4_nibbles(a: [&[u32]; 2], b: [&[u32]; 4], steps: usize) -> [[u32; 4]; 2] {
    unsafe {
        let lut = _mm256_setr_epi8(
            0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2,
            3, 3, 4,
        );
        let zero = _mm256_setzero_si256();
        let count = |acc: __m256i, x: __m256i, y: __m256i| {
            _mm256_add_epi8(acc, _mm256_shuffle_epi8(lut, _mm256_and_si256(x, y)))
        };
        let mut wide = [[zero; 4]; 2];
        let mut step = 0;
        while step < steps {
            let end = (step + 31).min(steps);
            let mut bytes = [[zero; 4]; 2];
            for s in step..end {
                // low nibbles at 0, high nibbles at 8 (u32 elements) of the step's run
                let at = |c: &[u32], h: usize| {
                    _mm256_loadu_si256(c.as_ptr().add(STEP_U32 * s + h).cast())
                };
                let (a0, a0h, a1, a1h) = (at(a[0], 0), at(a[0], 8), at(a[1], 0), at(a[1], 8));
                for q in 0..4 {
                    let (y, yh) = (at(b[q], 0), at(b[q], 8));
                    bytes[0][q] = count(count(bytes[0][q], a0, y), a0h, yh);
                    bytes[1][q] = count(count(bytes[1][q], a1, y), a1h, yh);
                }
            }
            for r in 0..2 {
                for q in 0..4 {
                    wide[r][q] = _mm256_add_epi64(wide[r][q], _mm256_sad_epu8(bytes[r][q], zero));
                }
            }
            step = end;
        }
        tile_sums(wide)
    }
}

/// Lane sums of a tile's accumulators: `[r][q]` = the sum of the 4 u64 lanes of `wide[r][q]`
/// (each below 2^32). Two accumulators share a vector as u32 halves, then halves add up.
#[inline(always)]
unsafe fn tile_sums(wide: [[__m256i; 4]; 2]) -> [[u32; 4]; 2] {
    let mut out = [[0u32; 4]; 2];
    for (o, w) in out.iter_mut().zip(wide) {
        // SAFETY: AVX2 is enabled in every caller; the store writes the 16 bytes of `o`
        unsafe {
            let t01 = _mm256_or_si256(w[0], _mm256_slli_epi64::<32>(w[1]));
            let t23 = _mm256_or_si256(w[2], _mm256_slli_epi64::<32>(w[3]));
            // per 128-bit half: lane 0 of each + lane 1 of each = [q0, q1, q2, q3] of that half
            let s = _mm256_add_epi32(
                _mm256_unpacklo_epi64(t01, t23),
                _mm256_unpackhi_epi64(t01, t23),
            );
            let v = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
            _mm_storeu_si128(o.as_mut_ptr().cast(), v);
        }
    }
    out
}

/// Co-activation counts of block `(jb, kb)` from nibble-split columns (`steps` steps each, see
/// `crate::nibble`), in 2 x 4 tiles.
#[target_feature(enable = "avx2")]
pub unsafe fn nibble_block_counts_avx2(
    nib: &[u32],
    steps: usize,
    cols: usize,
    jb: usize,
    kb: usize,
    counts: &mut [u32; 4096],
) {
    assert_eq!(nib.len(), cols * steps * STEP_U32);
    portable::column_block_tiles(nib, steps * STEP_U32, cols, jb, kb, counts, |a, b| {
        // SAFETY: every column has `steps` whole steps (asserted above); AVX2 is enabled here
        unsafe { tile_2x4_nibbles(a, b, steps) }
    })
}

#[target_feature(enable = "popcnt")]
pub unsafe fn signed_dot_popcnt(row: &[u64], pos: &[u64], neg: &[u64]) -> i32 {
    portable::signed_dot(row, pos, neg)
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

/// The same six swap rounds as the scalar transpose, on 8 registers of 8 words: rounds 32,
/// 16 and 8 pair whole registers; rounds 4, 2 and 1 pair lanes inside a register, reached with
/// an in-register permute.
#[target_feature(enable = "avx512f")]
pub unsafe fn transpose64(a: &mut [u64; 64]) {
    let mut r = [_mm512_setzero_si512(); 8];
    for (i, r) in r.iter_mut().enumerate() {
        // SAFETY: 8 words inside `a`
        *r = unsafe { _mm512_loadu_si512(a.as_ptr().add(8 * i).cast()) };
    }
    // rounds between registers: words k and k + j are registers i and i + j/8
    macro_rules! across {
        ($j:literal, $m:expr) => {{
            let m = _mm512_set1_epi64($m as i64);
            for i in 0..8 {
                if i & ($j / 8) == 0 {
                    let (x, y) = (r[i], r[i + $j / 8]);
                    // t = ((x >> j) ^ y) & m
                    let t = _mm512_ternarylogic_epi64::<0x28>(_mm512_srli_epi64::<$j>(x), y, m);
                    r[i] = _mm512_xor_si512(x, _mm512_slli_epi64::<$j>(t));
                    r[i + $j / 8] = _mm512_xor_si512(y, t);
                }
            }
        }};
    }
    // rounds inside a register: lane l pairs with lane l + j (l has bit j clear)
    macro_rules! within {
        ($j:literal, $m:expr, $low:expr, $swap:expr) => {{
            let m = _mm512_set1_epi64($m as i64);
            for x in r.iter_mut() {
                let p = $swap(*x); // lane l holds lane l ^ j
                let t = _mm512_ternarylogic_epi64::<0x28>(_mm512_srli_epi64::<$j>(*x), p, m);
                let up = $swap(t); // the high lane of each pair gets its partner's t
                let v = _mm512_mask_blend_epi64($low, up, _mm512_slli_epi64::<$j>(t));
                *x = _mm512_xor_si512(*x, v);
            }
        }};
    }
    across!(32, 0x0000_0000_FFFF_FFFFu64);
    across!(16, 0x0000_FFFF_0000_FFFFu64);
    across!(8, 0x00FF_00FF_00FF_00FFu64);
    within!(
        4,
        0x0F0F_0F0F_0F0F_0F0Fu64,
        0x0F,
        |v| _mm512_shuffle_i64x2::<0b01_00_11_10>(v, v)
    );
    within!(
        2,
        0x3333_3333_3333_3333u64,
        0x33,
        |v| _mm512_shuffle_i64x2::<0b10_11_00_01>(v, v)
    );
    within!(
        1,
        0x5555_5555_5555_5555u64,
        0x55,
        |v| _mm512_shuffle_epi32::<0x4E>(v)
    );
    for (i, r) in r.iter().enumerate() {
        // SAFETY: 8 words inside `a`
        unsafe { _mm512_storeu_si512(a.as_mut_ptr().add(8 * i).cast(), *r) };
    }
}

/// Byte counters, one per column: a row word is loaded straight into a mask register and
/// adds 1 to the byte lanes of its set bits (2 instructions per 64 bits). Every 255 rows the
/// bytes are widened into the u32 totals.
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn vertical_counts(words: &[u64], wpr: usize, out: &mut [u32]) {
    let mut w0 = 0;
    while w0 < wpr {
        // SAFETY: w0 + NW <= wpr in every arm
        unsafe {
            w0 += match wpr - w0 {
                16.. => vertical_block::<16>(words, wpr, w0, out),
                8..=15 => vertical_block::<8>(words, wpr, w0, out),
                4..=7 => vertical_block::<4>(words, wpr, w0, out),
                2..=3 => vertical_block::<2>(words, wpr, w0, out),
                _ => vertical_block::<1>(words, wpr, w0, out),
            };
        }
    }
}

/// Word columns `w0 .. w0 + NW` (NW x 64 columns, one register of byte counters each).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn vertical_block<const NW: usize>(
    words: &[u64],
    wpr: usize,
    w0: usize,
    out: &mut [u32],
) -> usize {
    let n = words.len() / wpr;
    let ones = _mm512_set1_epi8(1);
    for r0 in (0..n).step_by(255) {
        let mut acc = [_mm512_setzero_si512(); NW];
        for r in r0..(r0 + 255).min(n) {
            let row = &words[r * wpr + w0..r * wpr + w0 + NW];
            for (a, &x) in acc.iter_mut().zip(row) {
                *a = _mm512_mask_add_epi8(*a, _cvtu64_mask64(x), *a, ones);
            }
        }
        for (t, a) in acc.iter().enumerate() {
            let o = &mut out[(w0 + t) * 64..(w0 + t + 1) * 64];
            for q in 0..4 {
                // SAFETY: 16 u32 lanes inside `o`
                unsafe {
                    let part = match q {
                        0 => _mm512_extracti32x4_epi32::<0>(*a),
                        1 => _mm512_extracti32x4_epi32::<1>(*a),
                        2 => _mm512_extracti32x4_epi32::<2>(*a),
                        _ => _mm512_extracti32x4_epi32::<3>(*a),
                    };
                    let p = o.as_mut_ptr().add(q * 16).cast::<__m512i>();
                    _mm512_storeu_si512(
                        p,
                        _mm512_add_epi32(_mm512_loadu_si512(p), _mm512_cvtepu8_epi32(part)),
                    );
                }
            }
        }
    }
    NW
}

/// 8 lanes of f64: the same operations in the same order as the scalar loop (no FMA), so
/// the results are bit-identical.
#[target_feature(enable = "avx512f")]
pub unsafe fn add_scaled_f32(out: &mut [f32], v: &[i32], q: &[f64], nf: f64, scale: f64) {
    let (nfv, sv) = (_mm512_set1_pd(nf), _mm512_set1_pd(scale));
    for c in (0..out.len()).step_by(8) {
        let m = lanes8((out.len() - c).min(7)) | if out.len() - c >= 8 { 0xFF } else { 0 };
        // SAFETY: masked lanes stay inside the slices (checked lengths).
        unsafe {
            let o = _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_maskz_loadu_ps(
                m as u16,
                out.as_ptr().add(c),
            )));
            let vi = _mm512_cvtepi32_pd(_mm512_castsi512_si256(_mm512_maskz_loadu_epi32(
                m as u16,
                v.as_ptr().add(c),
            )));
            let x = _mm512_sub_pd(
                _mm512_mul_pd(nfv, vi),
                _mm512_maskz_loadu_pd(m, q.as_ptr().add(c)),
            );
            let r = _mm512_cvtpd_ps(_mm512_add_pd(o, _mm512_mul_pd(sv, x)));
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(c), m as u16, _mm512_castps256_ps512(r));
        }
    }
}

#[target_feature(enable = "avx512f")]
pub unsafe fn add_scaled_f64(out: &mut [f64], v: &[i32], q: &[f64], nf: f64, scale: f64) {
    let (nfv, sv) = (_mm512_set1_pd(nf), _mm512_set1_pd(scale));
    for c in (0..out.len()).step_by(8) {
        let m = lanes8((out.len() - c).min(7)) | if out.len() - c >= 8 { 0xFF } else { 0 };
        // SAFETY: masked lanes stay inside the slices (checked lengths).
        unsafe {
            let o = _mm512_maskz_loadu_pd(m, out.as_ptr().add(c));
            let vi = _mm512_cvtepi32_pd(_mm512_castsi512_si256(_mm512_maskz_loadu_epi32(
                m as u16,
                v.as_ptr().add(c),
            )));
            let x = _mm512_sub_pd(
                _mm512_mul_pd(nfv, vi),
                _mm512_maskz_loadu_pd(m, q.as_ptr().add(c)),
            );
            _mm512_mask_storeu_pd(
                out.as_mut_ptr().add(c),
                m,
                _mm512_add_pd(o, _mm512_mul_pd(sv, x)),
            );
        }
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

#[target_feature(enable = "avx512f,avx512vpopcntdq")]
pub unsafe fn panel_row_tile(
    rows: &[&[u32]; HS_ROWS],
    panels: &[u32],
    wpr32: usize,
    t: usize,
    out: &mut [[i32; HS_KS]; HS_ROWS],
) {
    let r: [*const u32; HS_ROWS] = std::array::from_fn(|i| rows[i].as_ptr());
    let mut acc = [[_mm512_setzero_si512(); 2]; HS_ROWS];
    // SAFETY: the dispatcher checked that every row has wpr32 words and both panels exist.
    unsafe {
        let b0 = panels.as_ptr().add(2 * t * wpr32 * 16);
        let b1 = panels.as_ptr().add((2 * t + 1) * wpr32 * 16);
        for w in 0..wpr32 {
            let v0 = _mm512_loadu_si512(b0.add(w * 16).cast());
            let v1 = _mm512_loadu_si512(b1.add(w * 16).cast());
            for (acc, r) in acc.iter_mut().zip(&r) {
                let x = _mm512_set1_epi32(*r.add(w) as i32);
                acc[0] = _mm512_add_epi32(acc[0], _mm512_popcnt_epi32(_mm512_and_si512(x, v0)));
                acc[1] = _mm512_add_epi32(acc[1], _mm512_popcnt_epi32(_mm512_and_si512(x, v1)));
            }
        }
        for (o, acc) in out.iter_mut().zip(&acc) {
            _mm512_storeu_si512(o.as_mut_ptr().cast(), acc[0]);
            _mm512_storeu_si512(o.as_mut_ptr().add(16).cast(), acc[1]);
        }
    }
}

/// Sums over words `w0..w1` for 8 j columns (broadcast 32-bit words from `a`, lane stride 16)
/// x 32 k columns (two panels `b0`, `b1`): 16 accumulators of 16 u32 lanes. Vectorised
/// across pairs, so no horizontal sums are needed however short a column is.
#[inline]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
unsafe fn panel_acc(
    a: *const u32,
    b0: *const u32,
    b1: *const u32,
    w0: usize,
    w1: usize,
) -> [[__m512i; 2]; 8] {
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
                            let o = out
                                .add((g * 8 + jj) * 64 + h * 32 + q * 16)
                                .cast::<__m512i>();
                            let v = if w0 == 0 {
                                v
                            } else {
                                _mm512_add_epi32(v, _mm512_loadu_si512(o))
                            };
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
                        unsafe {
                            _mm512_storeu_si512(c.as_mut_ptr().add(j * 64 + base).cast(), cnt)
                        };
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
                        a[k] =
                            _mm512_sub_epi64(a[k], _mm512_popcnt_epi64(_mm512_and_si512(x, q[k])));
                    }
                }
            }
        };
        let full = nw / 8;
        for v in 0..full {
            step(&mut acc, v * 8, 0xFF);
        }
        if !nw.is_multiple_of(8) {
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
