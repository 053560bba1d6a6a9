//! Entropy estimates of a binary code from popcount statistics (firing counts, co-activation
//! counts), the building blocks of an entropy report:
//!
//! * [`marginal_bits`]: the paper's estimate (method.md, "Applications"), the sum of the plug-in
//!   Bernoulli entropies of the features. An upper bound on the joint entropy of the empirical
//!   code distribution (subadditivity).
//! * [`miller_madow_bits`]: the same sum with the Miller–Madow correction of each term.
//! * [`tree_bits`]: the Chow–Liu bound `Σ_j H_j − Σ_{(j,k)∈T} I(j;k)` from the co-activation
//!   matrix, a tighter upper bound that removes pairwise redundancy.
//! * [`bootstrap_interval`]: a percentile bootstrap interval over resampled groups of rows
//!   (documents), for the per-feature estimators.
//!
//! Unlike [`crate::entropy_bits`] (the official training formula with its `ε` inside the
//! logarithms) everything here is the exact plug-in quantity with `0·log 0 = 0`, in bits.

use crate::PackedRows;
use rayon::prelude::*;
use std::f64::consts::LN_2;

/// `x·log2(x)` with `0·log2(0) = 0`.
#[inline]
fn xlog2x(x: f64) -> f64 {
    if x > 0.0 { x * x.log2() } else { 0.0 }
}

/// Plug-in entropy in bits of a Bernoulli feature that fired `c` times in `n` rows.
#[inline]
fn plugin_bits(c: u64, n: u64) -> f64 {
    assert!(c <= n, "firing count {c} exceeds the number of rows {n}");
    if c == 0 || c == n {
        return 0.0;
    }
    let p = c as f64 / n as f64;
    -(xlog2x(p) + xlog2x(1.0 - p))
}

/// Plug-in ("maximum likelihood") estimate of the sum of marginal Bernoulli entropies,
/// `Σ_j H(c_j / n)` in bits, with `0·log 0 = 0` (a constant feature contributes exactly 0; no
/// `ε`, unlike [`crate::entropy_bits`]). `counts[j]` is the number of rows (out of `n`) in which
/// feature `j` fired. Returns 0 for `n = 0`.
///
/// # Panics
/// If some `counts[j] > n`.
pub fn marginal_bits(counts: &[u64], n: u64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    counts.iter().map(|&c| plugin_bits(c, n)).sum()
}

/// Miller–Madow corrected sum of marginal entropies: per feature
/// `H_plugin(c_j/n) + (m_j − 1) / (2 n ln 2)` bits, with `m_j ∈ {1, 2}` the number of values
/// observed (1 for a constant feature, which gets no correction), summed over the features.
///
/// The plug-in entropy is biased downwards: `E[Ĥ] = H − (m − 1)/(2n) + O(1/n²)` nats for a
/// variable with `m` values of non-zero probability. The correction adds back that first-order
/// `O(1/n)` term (here converted to bits), which matters when `n` is small compared with
/// `1/min(p, 1−p)`; it does not remove the `O(1/n²)` remainder. Returns 0 for `n = 0`.
///
/// # Panics
/// If some `counts[j] > n`.
pub fn miller_madow_bits(counts: &[u64], n: u64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let corr = 1.0 / (2.0 * n as f64 * LN_2);
    counts
        .iter()
        .map(|&c| {
            let h = plugin_bits(c, n);
            if c == 0 || c == n { h } else { h + corr }
        })
        .sum()
}

/// Result of [`tree_bits`].
#[derive(Clone, Debug, PartialEq)]
pub struct TreeBound {
    /// The Chow–Liu bound `marginal_bits − mutual_info_removed`, in bits.
    pub bits: f64,
    /// `Σ_j H(N_jj / n)`, plug-in, in bits (the same as [`marginal_bits`] of the diagonal).
    pub marginal_bits: f64,
    /// `Σ_{(j,k)∈T} I(j;k)` over the edges of the maximum-weight spanning forest, in bits.
    pub mutual_info_removed: f64,
    /// The forest's edges `(parent, child, I(parent; child))` in the order Prim's algorithm
    /// added them (from vertex 0; edges of zero mutual information are left out).
    pub edges: Vec<(usize, usize, f64)>,
}

/// Plug-in mutual information in bits of features `j`, `k` from their 2×2 table
/// (`cj = N_jj`, `ck = N_kk`, `c11 = N_jk`, `n` rows), `0·log 0 = 0`, clamped at 0 (it can only be
/// negative by rounding).
#[inline]
fn pair_mi_bits(cj: u64, ck: u64, c11: u64, n: u64) -> f64 {
    assert!(
        c11 <= cj.min(ck) && cj + ck - c11 <= n,
        "inconsistent co-activation counts: N_jj={cj}, N_kk={ck}, N_jk={c11}, n={n}"
    );
    let c10 = cj - c11;
    let c01 = ck - c11;
    let c00 = n - c10 - c01 - c11;
    let nf = n as f64;
    let (aj, ak) = (cj as f64, ck as f64);
    let (bj, bk) = (nf - aj, nf - ak);
    // Σ_ab n_ab log2(n_ab n / (n_a n_b)) / n: each term is well conditioned, no cancellation of
    // large `n log n` sums.
    let term = |nab: u64, na: f64, nb: f64| {
        if nab == 0 {
            0.0
        } else {
            let x = nab as f64;
            x * (x * nf / (na * nb)).log2()
        }
    };
    let mi = (term(c11, aj, ak) + term(c10, aj, bk) + term(c01, bj, ak) + term(c00, bj, bk)) / nf;
    mi.max(0.0)
}

/// Largest row count for which [`tree_bits`] tabulates `m·log2 m` (8 bytes per possible count).
const MI_TABLE_MAX_ROWS: u64 = 1 << 22;

/// `m·log2(m)` for every count `m ∈ 0..=n`: the pair's mutual information from four lookups,
/// `I = (Σ_ab t(n_ab) − t(n_j) − t(n−n_j) − t(n_k) − t(n−n_k)) / n + log2 n`, instead of four
/// logarithms (the d²/2 pairs dominate the tree's time). The sums cancel to within
/// ~1e-16 · log2(n) · 4 bits per pair, far below any mutual information the tree keeps.
struct XLogX {
    t: Vec<f64>,
    n: u64,
    log2_n: f64,
}

impl XLogX {
    fn new(n: u64) -> XLogX {
        let t = (0..=n)
            .map(|m| {
                if m == 0 {
                    0.0
                } else {
                    m as f64 * (m as f64).log2()
                }
            })
            .collect();
        XLogX {
            t,
            n,
            log2_n: (n as f64).log2(),
        }
    }

    /// `t(c) + t(n − c)`: the part of the pair's sum that belongs to one feature.
    #[inline]
    fn margin(&self, c: u64) -> f64 {
        self.t[c as usize] + self.t[(self.n - c) as usize]
    }

    /// Mutual information in bits of the pair with counts `cj`, `ck`, `c11`; `margins` is
    /// `margin(cj) + margin(ck)`. Clamped at 0 like [`pair_mi_bits`].
    #[inline]
    fn mi_bits(&self, cj: u64, ck: u64, c11: u64, margins: f64) -> f64 {
        assert!(
            c11 <= cj.min(ck) && cj + ck - c11 <= self.n,
            "inconsistent co-activation counts: N_jj={cj}, N_kk={ck}, N_jk={c11}, n={}",
            self.n
        );
        let (c10, c01) = (cj - c11, ck - c11);
        let c00 = self.n - c10 - c01 - c11;
        let t = &self.t;
        let cells = t[c11 as usize] + t[c10 as usize] + t[c01 as usize] + t[c00 as usize];
        ((cells - margins) / self.n as f64 + self.log2_n).max(0.0)
    }
}

/// The Chow–Liu upper bound on the joint entropy of the empirical code distribution:
/// `Σ_j H_j − Σ_{(j,k)∈T} I(j;k)` in bits, with `T` the maximum-weight spanning tree of the
/// complete graph over the features weighted by their pairwise mutual information (the entropy
/// of the best tree-structured approximation of the joint distribution; every spanning tree gives
/// an upper bound, the maximum-weight one the tightest).
///
/// `coact` is the full symmetric `d×d` co-activation matrix (row-major, `d = sqrt(coact.len())`),
/// as returned by [`crate::coactivation_counts`] (`u32`) or accumulated over batches (`u64`):
/// `coact[j*d + k] = N_jk = #{rows where j and k both fire}`, diagonal = firing counts, over `n`
/// rows. `I(j;k)` is the exact plug-in mutual information of the 2×2 table `n11 = N_jk`,
/// `n10 = N_jj − N_jk`, `n01 = N_kk − N_jk`, `n00 = n − n10 − n01 − n11`; only the upper
/// triangle (`k > j`) is read.
///
/// Prim's algorithm on the dense graph, `O(d²)` time and `O(d)` extra memory: the mutual
/// information of each pair is computed once, on the fly, when the first of the two joins the
/// tree (parallel over the other vertices with rayon). Edges of zero mutual information are
/// skipped, so `T` is a forest (independent or constant features stay alone). For the empirical
/// distribution of the same rows the bound is exact arithmetic:
/// `H_joint ≤ tree_bits ≤ marginal_bits`.
///
/// Timing (random consistent counts, n = 100,000, release build, 2 cores shared with other builds
/// at load ≈ 4, tests `tree_bits_timing` / `tree_bits_timing_8192 --ignored`): d = 2304 ≈ 0.09–0.14 s,
/// d = 8192 ≈ 1.0–1.5 s (the pairs' mutual information from a table of `m·log2 m`, [`XLogX`]; with
/// four logarithms a pair it was 0.2–0.3 s and ≈ 3 s).
///
/// # Panics
/// If `coact.len()` is not a square, or the counts are inconsistent (`N_jk > min(N_jj, N_kk)` or
/// `N_jj + N_kk − N_jk > n`).
pub fn tree_bits<C>(coact: &[C], n: u64) -> TreeBound
where
    C: Copy + Into<u64> + Sync,
{
    let d = coact.len().isqrt();
    assert_eq!(
        d * d,
        coact.len(),
        "tree_bits: the co-activation matrix must be square (got {} entries)",
        coact.len()
    );
    let diag: Vec<u64> = (0..d).map(|j| coact[j * d + j].into()).collect();
    let marginal = marginal_bits(&diag, n);
    let mut edges = Vec::new();
    if d == 0 || n == 0 {
        return TreeBound {
            bits: marginal,
            marginal_bits: marginal,
            mutual_info_removed: 0.0,
            edges,
        };
    }

    let table = (n <= MI_TABLE_MAX_ROWS).then(|| XLogX::new(n));
    let margins: Vec<f64> = match &table {
        Some(t) => diag.iter().map(|&c| t.margin(c)).collect(),
        None => Vec::new(),
    };
    // best[k]: largest MI from k to the tree so far (-1 once k is in the tree), parent[k]: its
    // end in the tree. Ties go to the lowest index, so the result is deterministic.
    let mut best = vec![0.0f64; d];
    let mut parent = vec![0usize; d];
    let mut removed = 0.0;
    let mut v = 0usize;
    best[0] = -1.0;
    for _ in 1..d {
        // add v's edges; a pair (v, k) is read from the upper triangle
        let cv = diag[v];
        let margin_v = table.as_ref().map_or(0.0, |t| t.margin(cv));
        best.par_iter_mut()
            .zip(parent.par_iter_mut())
            .enumerate()
            .with_min_len(256)
            .for_each(|(k, (b, p))| {
                if *b < 0.0 {
                    return;
                }
                let c11: u64 = if v < k {
                    coact[v * d + k].into()
                } else {
                    coact[k * d + v].into()
                };
                let mi = match &table {
                    Some(t) => t.mi_bits(cv, diag[k], c11, margin_v + margins[k]),
                    None => pair_mi_bits(cv, diag[k], c11, n),
                };
                if mi > *b {
                    *b = mi;
                    *p = v;
                }
            });
        // next vertex: the one with the largest MI to the tree
        let (mut next, mut w) = (usize::MAX, -1.0);
        for (k, &b) in best.iter().enumerate() {
            if b > w {
                w = b;
                next = k;
            }
        }
        if w > 0.0 {
            edges.push((parent[next], next, w));
            removed += w;
        }
        best[next] = -1.0;
        v = next;
    }
    TreeBound {
        bits: marginal - removed,
        marginal_bits: marginal,
        mutual_info_removed: removed,
        edges,
    }
}

/// SplitMix64 step (the generator of the bootstrap's resampling).
#[inline]
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform integer in `0..m` (`m > 0`), Lemire's multiply-shift (bias < m / 2^64).
#[inline]
pub(crate) fn below(state: &mut u64, m: usize) -> usize {
    ((splitmix64(state) as u128 * m as u128) >> 64) as usize
}

/// Linear-interpolation quantile (type 7) of sorted values.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Percentile bootstrap interval of a per-feature entropy estimator over resampled groups of
/// rows.
///
/// * `rows`: the code, one row per token.
/// * `groups[i]`: the group (document id) of row `i`; any `u32` labels, not necessarily
///   contiguous or sorted. Resampling whole documents keeps the dependence between the tokens of
///   a document; pass the row index (`0..n`) to resample single rows.
/// * `reps`: number of bootstrap replicates (e.g. 1000).
/// * `seed`: the interval is a deterministic function of the inputs and the seed (independent of
///   the number of threads).
/// * `level`: coverage of the interval, e.g. 0.9 for a 90 % interval.
/// * `estimator`: an estimate from firing counts and a row count, e.g. [`marginal_bits`] or
///   [`miller_madow_bits`].
///
/// Each replicate draws `G` groups uniformly with replacement (`G` = number of distinct groups),
/// sums their firing counts and row counts, and evaluates `estimator`; the interval is the
/// `(1 − level)/2` and `(1 + level)/2` quantiles of the replicates (linear interpolation). The
/// firing counts of each group are computed once and stored sparsely (non-zero features only),
/// so a replicate costs `O(G + Σ_g nnz_g + d)` and memory is at most the number of set bits.
/// Returns `(lo, hi)`.
///
/// # Panics
/// If `groups.len() != rows.n_rows()`, there are no rows, `reps == 0`, or `level` is not in
/// `(0, 1)`.
pub fn bootstrap_interval<E>(
    rows: &PackedRows,
    groups: &[u32],
    reps: usize,
    seed: u64,
    level: f64,
    estimator: E,
) -> (f64, f64)
where
    E: Fn(&[u64], u64) -> f64 + Sync,
{
    let n = rows.n_rows();
    let d = rows.n_cols();
    assert_eq!(
        groups.len(),
        n,
        "bootstrap_interval: one group label per row needed"
    );
    assert!(n > 0, "bootstrap_interval: no rows");
    assert!(reps > 0, "bootstrap_interval: reps must be positive");
    assert!(
        level > 0.0 && level < 1.0,
        "bootstrap_interval: level must be in (0, 1), got {level}"
    );

    // rows ordered by group label; each group's counts as a sparse (feature, count) list
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| groups[i]);
    let mut starts = Vec::new(); // CSR offsets into `feats`/`cnts`, one per group + 1
    let mut sizes: Vec<u64> = Vec::new();
    let mut feats: Vec<u32> = Vec::new();
    let mut cnts: Vec<u32> = Vec::new();
    let mut dense = vec![0u32; d];
    let mut touched: Vec<u32> = Vec::new();
    let mut i = 0;
    while i < n {
        let g = groups[order[i]];
        let mut size = 0u64;
        while i < n && groups[order[i]] == g {
            for (w, &word) in rows.row(order[i]).iter().enumerate() {
                let mut x = word;
                while x != 0 {
                    let j = w * 64 + x.trailing_zeros() as usize;
                    if dense[j] == 0 {
                        touched.push(j as u32);
                    }
                    dense[j] += 1;
                    x &= x - 1;
                }
            }
            size += 1;
            i += 1;
        }
        starts.push(feats.len());
        sizes.push(size);
        touched.sort_unstable();
        for &j in &touched {
            feats.push(j);
            cnts.push(dense[j as usize]);
            dense[j as usize] = 0;
        }
        touched.clear();
    }
    starts.push(feats.len());
    let n_groups = sizes.len();

    let mut estimates: Vec<f64> = (0..reps)
        .into_par_iter()
        .map_init(
            || vec![0u64; d],
            |counts, r| {
                counts.fill(0);
                let mut state = seed ^ (r as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
                splitmix64(&mut state);
                let mut total = 0u64;
                for _ in 0..n_groups {
                    let g = below(&mut state, n_groups);
                    total += sizes[g];
                    for e in starts[g]..starts[g + 1] {
                        counts[feats[e] as usize] += cnts[e] as u64;
                    }
                }
                estimator(counts, total)
            },
        )
        .collect();
    estimates.sort_by(f64::total_cmp);
    let alpha = (1.0 - level) / 2.0;
    (
        quantile(&estimates, alpha),
        quantile(&estimates, 1.0 - alpha),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tabulated mutual information equals the well-conditioned direct formula on every
    /// consistent 2×2 table of small n, and on random tables of a large n.
    #[test]
    fn tabulated_mutual_information_matches_the_direct_formula() {
        let check = |n: u64, cj: u64, ck: u64, c11: u64, t: &XLogX| {
            let direct = pair_mi_bits(cj, ck, c11, n);
            let fast = t.mi_bits(cj, ck, c11, t.margin(cj) + t.margin(ck));
            assert!(
                (direct - fast).abs() <= 1e-12,
                "n={n} cj={cj} ck={ck} c11={c11}: {direct} vs {fast}"
            );
        };
        for n in [1u64, 2, 7, 30] {
            let t = XLogX::new(n);
            for cj in 0..=n {
                for ck in 0..=n {
                    for c11 in 0..=cj.min(ck) {
                        if cj + ck - c11 <= n {
                            check(n, cj, ck, c11, &t);
                        }
                    }
                }
            }
        }
        let n = 3_000_000;
        let t = XLogX::new(n);
        let mut state = 5u64;
        for _ in 0..100_000 {
            let cj = below(&mut state, n as usize + 1) as u64;
            let ck = below(&mut state, n as usize + 1) as u64;
            let lo = (cj + ck).saturating_sub(n);
            let c11 = lo + below(&mut state, (cj.min(ck) - lo) as usize + 1) as u64;
            check(n, cj, ck, c11, &t);
        }
    }
}
