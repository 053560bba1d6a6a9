//! The sign product `H S` behind the covariance gradient: `(H S)_ik = popcount(row_i AND pos_k)
//! - popcount(row_i AND neg_k)`, with one AND+popcount pass per pair instead of two (see
//! [`SignPlan`]), tiled so the sign rows stay in cache.

use crate::covariance::SignMasks;
use crate::packed::PackedRows;
use crate::panel::Panels32;
use crate::simd::{self, Backend, HS_KS, HS_ROWS, SP_I, SP_K};
use rayon::prelude::*;

/// `q_k = Σ_j c_j S_jk` exactly: write `c` in binary as bit-plane rows `C_b` (bit `j` of plane `b`
/// is bit `b` of `c_j`); then `q = Σ_b 2^b (C_b S)`, a sign product with only `log2(n)` rows.
pub(crate) fn sign_times_counts(
    b: Backend,
    firing: &[u32],
    signs: &SignMasks,
    main: &TileSource<'_>,
) -> Vec<i64> {
    let cols = firing.len();
    let max = firing.iter().copied().max().unwrap_or(0);
    let planes = (32 - max.leading_zeros()) as usize;
    let mut c = PackedRows::zeros(planes, cols);
    for (j, &f) in firing.iter().enumerate() {
        for p in 0..planes {
            if (f >> p) & 1 == 1 {
                c.set(p, j, true);
            }
        }
    }
    let mut prod = vec![0i32; planes * cols];
    let plane_counts = crate::firing::firing_counts_rows_with(b, &c);
    drive(b, &c, &plane_counts, signs, main, &mut prod, copy_values);
    let mut q = vec![0i64; cols];
    for (p, row) in prod.chunks(cols.max(1)).enumerate() {
        for (q, &v) in q.iter_mut().zip(row) {
            *q += (v as i64) << p;
        }
    }
    q
}

/// `(H S)_ik = popcount(row_i AND pos_k) - popcount(row_i AND neg_k)`, `n x cols` row-major.
/// `pos` and `neg` may be any `cols x cols` masks (overlapping ones are handled too).
pub fn sign_product(rows: &PackedRows, signs: &SignMasks) -> Vec<i32> {
    sign_product_with(Backend::detect(), rows, signs)
}

#[doc(hidden)]
pub fn sign_product_with(b: Backend, rows: &PackedRows, signs: &SignMasks) -> Vec<i32> {
    let b = b.check();
    let mut out = vec![0i32; rows.n_rows() * rows.n_cols()];
    let firing = crate::firing::firing_counts_rows_with(b, rows);
    let main = TileSource::new(b, &signs.pos);
    drive(b, rows, &firing, signs, &main, &mut out, copy_values);
    out
}

/// How `(H S)_ik` is computed from `P_ik = popcount(row_i AND pos_k)` alone. Because `pos_k`,
/// `neg_k` and the zero set `Z_k` partition the columns, `Σneg = L0_i - Σpos - ΣZ`, so
/// `(H S)_ik = 2 P_ik - L0_i + Σ_{j∈Z_k} h_ij`: one AND+popcount pass instead of two. For
/// covariance signs `Z_k` is the diagonal, the constant columns of H (each contributes 0 or 1 to
/// every row: `ones_k` counts the always-on ones) and exactly uncorrelated pairs `E_k`. `Σ_{E_k}`
/// is a few bit lookups when `E_k` is small, else one more AND+popcount pass over the rows `E_k`
/// collected in `extra` (only those sign rows). Empty sign rows give 0; masks where `pos_k` and
/// `neg_k` overlap (never from covariance) are computed with both popcounts.
struct SignPlan {
    /// L0 of each code row
    l0: Vec<i32>,
    /// always-on columns in `Z_k`, padded to whole tiles
    ones: Vec<i32>,
    /// bit `l` of word `t`: sign row `32t + l` has its diagonal in `Z_k`
    diag: Vec<u32>,
    /// sign rows needing more than the vectorised formula, in increasing order
    special: Vec<(usize, Special)>,
    /// `E_k` of the sign rows marked `Special::Extra`, one row each
    extra: PackedRows,
}

enum Special {
    Empty,
    Dense,
    /// `E_k` as a short list of columns
    Lookups(Vec<u32>),
    /// `E_k` is row `idx` of `SignPlan::extra`
    Extra(usize),
}

/// Beyond this many columns in `E_k`, a popcount pass is cheaper than bit lookups.
const MAX_LOOKUPS: usize = 4;

impl SignPlan {
    fn new(rows: &PackedRows, firing: &[u32], signs: &SignMasks) -> Self {
        let (n, cols, wpr) = (rows.n_rows(), rows.n_cols(), rows.words_per_row());
        // constant columns of H, the always-on ones, and the columns that exist
        let (mut constant, mut always, mut valid) =
            (vec![0u64; wpr], vec![0u64; wpr], vec![0u64; wpr]);
        for (j, &c) in firing.iter().enumerate() {
            let bit = 1u64 << (j % 64);
            valid[j / 64] |= bit;
            if c == 0 || c as usize == n {
                constant[j / 64] |= bit;
            }
            if c as usize == n {
                always[j / 64] |= bit;
            }
        }
        enum Found {
            Empty,
            Dense,
            Extra(Vec<u64>),
        }
        let per_k: Vec<(i32, bool, Option<Found>)> = (0..cols)
            .into_par_iter()
            .with_min_len(64)
            .map(|k| {
                let (p, q) = (signs.pos.row(k), signs.neg.row(k));
                if p.iter().chain(q).all(|&w| w == 0) {
                    return (0, false, Some(Found::Empty));
                }
                if p.iter().zip(q).any(|(&a, &b)| a & b != 0) {
                    return (0, false, Some(Found::Dense));
                }
                let (mut ones, mut any_extra) = (0i32, false);
                let mut extra = vec![0u64; wpr];
                for w in 0..wpr {
                    let z = !(p[w] | q[w]) & valid[w];
                    if always[w] != 0 {
                        ones += (z & always[w]).count_ones() as i32;
                    }
                    extra[w] = z & !constant[w];
                    any_extra |= extra[w] != 0;
                }
                let diag = (extra[k / 64] >> (k % 64)) & 1 == 1;
                extra[k / 64] &= !(1u64 << (k % 64));
                let any_extra = any_extra && extra.iter().any(|&w| w != 0);
                (ones, diag, any_extra.then_some(Found::Extra(extra)))
            })
            .collect();
        let tiles = cols.div_ceil(HS_KS);
        let mut plan = SignPlan {
            l0: rows.row_popcounts().into_iter().map(|v| v as i32).collect(),
            ones: vec![0; tiles * HS_KS],
            diag: vec![0; tiles],
            special: Vec::new(),
            extra: PackedRows::zeros(0, cols),
        };
        let mut extra_words = Vec::new();
        for (k, (ones, diag, found)) in per_k.into_iter().enumerate() {
            plan.ones[k] = ones;
            plan.diag[k / HS_KS] |= (diag as u32) << (k % HS_KS);
            let sp = match found {
                None => continue,
                Some(Found::Empty) => Special::Empty,
                Some(Found::Dense) => Special::Dense,
                Some(Found::Extra(e)) => {
                    if e.iter().map(|w| w.count_ones() as usize).sum::<usize>() <= MAX_LOOKUPS {
                        let mut list = Vec::new();
                        for (w, &x) in e.iter().enumerate() {
                            let mut x = x;
                            while x != 0 {
                                list.push((w * 64) as u32 + x.trailing_zeros());
                                x &= x - 1;
                            }
                        }
                        Special::Lookups(list)
                    } else {
                        extra_words.extend_from_slice(&e);
                        Special::Extra(extra_words.len() / wpr.max(1) - 1)
                    }
                }
            };
            plan.special.push((k, sp));
        }
        let n_extra = extra_words.len() / wpr.max(1);
        plan.extra =
            PackedRows::from_words(n_extra, cols, extra_words).expect("extra rows keep zero tails");
        plan
    }
}

/// Bytes of sign rows per cache block: with a task's code rows they stay in L2, and the output
/// segments written per row are long enough for the hardware prefetchers.
const K_BLOCK_BYTES: usize = 256 << 10;

/// Where `P` tiles come from: sign rows in panel layout (AVX-512) or as they are (portable).
pub(crate) enum TileSource<'a> {
    Panels(Panels32),
    Rows(&'a PackedRows),
}

impl<'a> TileSource<'a> {
    pub(crate) fn new(b: Backend, m: &'a PackedRows) -> Self {
        if b == Backend::Avx512 {
            TileSource::Panels(Panels32::new(
                m.words(),
                m.n_rows(),
                m.words_per_row(),
                HS_KS,
            ))
        } else {
            TileSource::Rows(m)
        }
    }

    /// `tile[d][l] = popcount(r[d] AND m.row(32t + l))` for `l < kn` (sign rows past the end read
    /// as zero).
    fn tile(
        &self,
        b: Backend,
        r: &[&[u64]; HS_ROWS],
        t: usize,
        kn: usize,
        zero: &[u64],
        tile: &mut [[i32; HS_KS]; HS_ROWS],
    ) {
        match self {
            TileSource::Panels(p) => {
                let r32: [&[u32]; HS_ROWS] = std::array::from_fn(|d| as_u32(r[d]));
                simd::panel_row_tile(b, &r32, p.words(), p.wpg32, t, tile);
            }
            TileSource::Rows(m) => {
                let k0 = t * HS_KS;
                for half in 0..HS_ROWS / SP_I {
                    let rr: [&[u64]; SP_I] = std::array::from_fn(|d| r[half * SP_I + d]);
                    for kg in (0..kn).step_by(SP_K) {
                        let p: [&[u64]; SP_K] = std::array::from_fn(|e| {
                            if kg + e < kn {
                                m.row(k0 + kg + e)
                            } else {
                                zero
                            }
                        });
                        let v = simd::sign_micro(b, &rr, &p, None);
                        for (d, v) in v.iter().enumerate() {
                            for (e, &v) in v.iter().enumerate() {
                                if kg + e < HS_KS {
                                    tile[half * SP_I + d][kg + e] = v;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Computes `(H S)_ik` for every `i, k` and hands them over per row segment:
/// `emit(&mut out[i*cols + k0 .. i*cols + k0 + len], k0, &values[..len])`. Parallel over chunks of
/// rows (disjoint output rows); inside, blocked over sign rows so they stay in cache. Tiles of
/// `HS_ROWS x HS_KS` products `P_ik` come from the AVX-512 panel kernel or the portable micro
/// kernel; the [`SignPlan`] epilogue, shared by all back ends, turns them into `(H S)_ik`.
pub(crate) fn drive<O: Send>(
    b: Backend,
    rows: &PackedRows,
    firing: &[u32],
    signs: &SignMasks,
    main: &TileSource<'_>,
    out: &mut [O],
    emit: impl Fn(&mut [O], usize, &[i32]) + Sync,
) {
    let (n, cols, wpr) = (rows.n_rows(), rows.n_cols(), rows.words_per_row());
    assert_eq!(
        (
            signs.pos.n_rows(),
            signs.pos.n_cols(),
            signs.neg.n_rows(),
            signs.neg.n_cols()
        ),
        (cols, cols, cols, cols),
        "sign masks must be cols x cols"
    );
    assert_eq!(out.len(), n * cols);
    assert_eq!(firing.len(), cols);
    if n == 0 || cols == 0 {
        return;
    }
    let plan = SignPlan::new(rows, firing, signs);
    let n_extra = plan.extra.n_rows();
    let extra = TileSource::new(b, &plan.extra);
    let zero = vec![0u64; wpr];
    let threads = rayon::current_num_threads();
    let rows_per_task = n
        .div_ceil(threads * 4)
        .clamp(HS_ROWS, 64)
        .next_multiple_of(HS_ROWS);
    let k_block = (K_BLOCK_BYTES / (8 * wpr)).clamp(HS_KS, 1024) / HS_KS * HS_KS;
    out.par_chunks_mut(rows_per_task * cols)
        .enumerate()
        .for_each(|(t, chunk)| {
            let i0 = t * rows_per_task;
            let ni = chunk.len() / cols;
            let mut tile = [[0i32; HS_KS]; HS_ROWS];
            let row_group = |ig: usize| -> [&[u64]; HS_ROWS] {
                std::array::from_fn(|d| {
                    if ig + d < ni {
                        rows.row(i0 + ig + d)
                    } else {
                        &zero[..]
                    }
                })
            };
            // Σ_{E_k} h_ij of this chunk's rows for the sign rows with a long E_k
            let mut corr = vec![0i32; ni * n_extra];
            for ig in (0..ni).step_by(HS_ROWS) {
                let r = row_group(ig);
                for te in 0..n_extra.div_ceil(HS_KS) {
                    let kn = (n_extra - te * HS_KS).min(HS_KS);
                    extra.tile(b, &r, te, kn, &zero, &mut tile);
                    for (d, vals) in tile.iter().enumerate().take(ni - ig) {
                        corr[(ig + d) * n_extra + te * HS_KS..][..kn].copy_from_slice(&vals[..kn]);
                    }
                }
            }
            for kb in (0..cols).step_by(k_block) {
                for ig in (0..ni).step_by(HS_ROWS) {
                    let r = row_group(ig);
                    for k0 in (kb..(kb + k_block).min(cols)).step_by(HS_KS) {
                        let kn = (cols - k0).min(HS_KS);
                        main.tile(b, &r, k0 / HS_KS, kn, &zero, &mut tile);
                        let specials = {
                            let lo = plan.special.partition_point(|s| s.0 < k0);
                            let hi = plan.special.partition_point(|s| s.0 < k0 + kn);
                            &plan.special[lo..hi]
                        };
                        let ones: &[i32; HS_KS] =
                            plan.ones[k0..k0 + HS_KS].try_into().expect("tile");
                        for (d, vals) in tile.iter_mut().enumerate().take(ni - ig) {
                            let (i, row) = (i0 + ig + d, r[d]);
                            let l0 = plan.l0[i];
                            let bits = (row[k0 / 64] >> (k0 % 64)) as u32; // k0 is a multiple of 32
                            let dm = bits & plan.diag[k0 / HS_KS];
                            // fixed-length, branch-free: vectorises
                            for l in 0..HS_KS {
                                vals[l] = 2 * vals[l] - l0 + ones[l] + (dm & (1 << l) != 0) as i32;
                            }
                            for (k, sp) in specials {
                                let v = &mut vals[k - k0];
                                match sp {
                                    Special::Empty => *v = 0,
                                    Special::Dense => {
                                        *v = simd::signed_dot(
                                            b,
                                            row,
                                            signs.pos.row(*k),
                                            signs.neg.row(*k),
                                        )
                                    }
                                    Special::Lookups(list) => {
                                        *v += list
                                            .iter()
                                            .map(|&j| {
                                                ((row[j as usize / 64] >> (j % 64)) & 1) as i32
                                            })
                                            .sum::<i32>()
                                    }
                                    Special::Extra(x) => *v += corr[(ig + d) * n_extra + x],
                                }
                            }
                            emit(&mut chunk[(ig + d) * cols + k0..][..kn], k0, &vals[..kn]);
                        }
                    }
                }
            }
        });
}

/// `emit` for a plain `H S`: element by element, the segments are too short for a memcpy call.
fn copy_values(o: &mut [i32], _k0: usize, v: &[i32]) {
    for (o, &v) in o.iter_mut().zip(v) {
        *o = v;
    }
}

/// The same bits as 32-bit words: on little-endian targets (the AVX-512 back end, the only
/// user, is x86-64) word `2w` is the low half of `w`.
fn as_u32(w: &[u64]) -> &[u32] {
    // SAFETY: u64 -> 2 x u32 is a plain reinterpretation with stricter alignment already met.
    unsafe { std::slice::from_raw_parts(w.as_ptr().cast::<u32>(), 2 * w.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::covariance::CovarianceTerm;

    /// Deterministic pseudo-random bits.
    fn bits(seed: u64, n: usize, cols: usize, density_per_col: impl Fn(usize) -> u64) -> Vec<f64> {
        crate::xorshift::XorShift64::new(seed).bits(n, cols, density_per_col)
    }

    fn naive_hs(h: &[f64], n: usize, cols: usize, s: &SignMasks) -> Vec<i32> {
        let mut out = vec![0i32; n * cols];
        for i in 0..n {
            for j in 0..cols {
                if h[i * cols + j] != 0.0 {
                    for k in 0..cols {
                        out[i * cols + k] += s.sign(j, k) as i32;
                    }
                }
            }
        }
        out
    }

    /// Small batches have many exactly uncorrelated pairs: every kind of special sign row shows up
    /// (empty, short lookups, extra popcount rows), and the results still match the dense product.
    #[test]
    fn plan_covers_every_kind_and_matches_naive() {
        let (n, cols) = (32, 300);
        let mut h = bits(7, n, cols, |j| [0, 100, 50, 30, 10, 70][j % 6]);
        // a few duplicate columns too
        for i in 0..n {
            h[i * cols + 299] = h[i * cols + 298];
        }
        let rows = PackedRows::from_dense01(&h, n, cols);
        let st = CovarianceTerm::from_columns(&rows.to_columns()).unwrap();
        let plan = SignPlan::new(&rows, &st.firing, &st.signs);
        let has = |f: fn(&Special) -> bool| plan.special.iter().any(|s| f(&s.1));
        assert!(has(|s| matches!(s, Special::Empty)));
        assert!(has(|s| matches!(s, Special::Lookups(_))));
        assert!(has(|s| matches!(s, Special::Extra(_))));
        assert!(
            plan.ones.iter().any(|&o| o > 0),
            "always-on columns are counted"
        );
        let want = naive_hs(&h, n, cols, &st.signs);
        for b in Backend::all_available() {
            assert_eq!(sign_product_with(b, &rows, &st.signs), want, "{b:?}");
        }
    }

    /// Overlapping masks (never produced by the covariance) take the two-popcount path.
    #[test]
    fn overlapping_masks_are_dense() {
        let (n, cols) = (37, 70);
        let h = bits(3, n, cols, |_| 40);
        let pos = PackedRows::from_dense01(&bits(5, cols, cols, |_| 50), cols, cols);
        let neg = PackedRows::from_dense01(&bits(9, cols, cols, |_| 50), cols, cols);
        let s = SignMasks { pos, neg };
        let rows = PackedRows::from_dense01(&h, n, cols);
        let plan = SignPlan::new(&rows, &crate::firing::firing_counts_rows(&rows), &s);
        assert!(plan.special.iter().all(|s| matches!(s.1, Special::Dense)));
        let mut want = vec![0i32; n * cols];
        for i in 0..n {
            for j in 0..cols {
                if h[i * cols + j] != 0.0 {
                    for k in 0..cols {
                        // sign row k, as documented (the masks here are not symmetric)
                        want[i * cols + k] += s.pos.get(k, j) as i32 - s.neg.get(k, j) as i32;
                    }
                }
            }
        }
        for b in Backend::all_available() {
            assert_eq!(sign_product_with(b, &rows, &s), want, "{b:?}");
        }
    }
}
