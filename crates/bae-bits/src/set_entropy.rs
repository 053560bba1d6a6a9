//! Every entropy estimate of one set of codes, with bootstrap intervals over documents: the
//! paper's marginal sum (plug-in), its Miller–Madow correction, and the Chow–Liu tree bound.

use crate::estimators::{below, quantile, splitmix64};
use crate::{
    PackedRows, TreeBound, bootstrap_interval, coactivation_counts, firing_counts_rows,
    marginal_bits, miller_madow_bits, tree_bits,
};

/// How the intervals are drawn.
#[derive(Clone, Debug)]
pub struct EstimateOptions {
    /// bootstrap replicates of the marginal and Miller–Madow sums (0: no interval)
    pub reps: usize,
    /// bootstrap replicates of the tree bound (each one a co-activation pass; 0: no interval)
    pub tree_reps: usize,
    /// coverage of the intervals, e.g. 0.9
    pub level: f64,
    pub seed: u64,
}

impl Default for EstimateOptions {
    fn default() -> Self {
        EstimateOptions {
            reps: 200,
            tree_reps: 30,
            level: 0.9,
            seed: 0,
        }
    }
}

/// One estimate in bits with its bootstrap interval (None when not drawn).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Estimate {
    pub bits: f64,
    pub lo: Option<f64>,
    pub hi: Option<f64>,
}

impl Estimate {
    fn new(bits: f64, interval: Option<(f64, f64)>) -> Estimate {
        Estimate {
            bits,
            lo: interval.map(|i| i.0),
            hi: interval.map(|i| i.1),
        }
    }

    /// "195.3 [190.1, 201.0]" (or the value alone).
    pub fn show(&self) -> String {
        match (self.lo, self.hi) {
            (Some(lo), Some(hi)) => format!("{:.1} [{lo:.1}, {hi:.1}]", self.bits),
            _ => format!("{:.1}", self.bits),
        }
    }
}

/// The estimates of one set of codes.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SetEntropy {
    pub rows: usize,
    /// bootstrap groups
    pub groups: usize,
    /// what a group is: "documents", "windows" or "row blocks" ([`groups_from_ids`])
    pub group_unit: String,
    pub features: usize,
    /// features that take both values in the set (the others add 0 to every estimate)
    pub varying_features: usize,
    /// Σ_j H(p_j), plug-in: the paper's estimate
    pub marginal: Estimate,
    /// the same sum with the Miller–Madow small-sample correction of each feature
    pub miller_madow: Estimate,
    /// Chow–Liu bound Σ_j H_j − Σ_tree I(j;k): still ≥ the joint entropy, ≤ the marginal sum
    pub tree: Estimate,
    /// the mutual information the tree removed, bits
    pub tree_mutual_info: f64,
    /// log2(rows): the most entropy a set this small can show of its own rows
    pub log2_rows: f64,
}

/// Fewest documents a bootstrap over documents needs; below it the groups are the windows.
pub const MIN_DOCUMENTS: usize = 20;

/// Bootstrap groups of rows from their ids, and what a group is: the documents when there are at
/// least [`MIN_DOCUMENTS`]; else the context windows (a new one where the document changes or the
/// position does not grow), which keeps the within-window dependence the bootstrap must respect;
/// rows without ids go in blocks of `block` consecutive rows.
pub fn groups_from_ids(
    doc_ids: &[i32],
    positions: &[i32],
    block: usize,
) -> (Vec<u32>, &'static str) {
    let mut docs: Vec<i32> = doc_ids.iter().copied().filter(|&d| d >= 0).collect();
    docs.sort_unstable();
    docs.dedup();
    if docs.len() >= MIN_DOCUMENTS && doc_ids.iter().all(|&d| d >= 0) {
        return (dense_labels(doc_ids.iter().map(|&d| d as i64)), "documents");
    }
    if doc_ids.iter().all(|&d| d >= 0) && positions.iter().all(|&p| p >= 0) {
        let mut window = 0i64;
        let labels = (0..doc_ids.len()).map(|i| {
            if i > 0 && (doc_ids[i] != doc_ids[i - 1] || positions[i] <= positions[i - 1]) {
                window += 1;
            }
            window
        });
        let labels: Vec<i64> = labels.collect();
        return (dense_labels(labels.into_iter()), "windows");
    }
    let labels = (0..doc_ids.len()).map(|i| (i / block.max(1)) as i64);
    (dense_labels(labels), "row blocks")
}

/// Labels renumbered densely 0..G in sorted order.
fn dense_labels(labels: impl Iterator<Item = i64>) -> Vec<u32> {
    let ids: Vec<i64> = labels.collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    ids.iter()
        .map(|v| sorted.binary_search(v).expect("present") as u32)
        .collect()
}

/// The columns of `codes` listed in `cols`, in that order.
fn keep_columns(codes: &PackedRows, cols: &[usize]) -> PackedRows {
    let mut out = PackedRows::zeros(codes.n_rows(), cols.len());
    for i in 0..codes.n_rows() {
        let row = codes.row(i);
        for (k, &j) in cols.iter().enumerate() {
            if row[j / 64] >> (j % 64) & 1 == 1 {
                out.set(i, k, true);
            }
        }
    }
    out
}

/// The rows `rows` of `codes` (repeats allowed), as a new matrix.
fn gather_rows(codes: &PackedRows, rows: &[usize]) -> PackedRows {
    let w = codes.words_per_row();
    let mut words = Vec::with_capacity(rows.len() * w);
    for &r in rows {
        words.extend_from_slice(codes.row(r));
    }
    PackedRows::from_words(rows.len(), codes.n_cols(), words).expect("same width")
}

fn tree_of(codes: &PackedRows) -> TreeBound {
    let coact = coactivation_counts(&codes.to_columns());
    tree_bits(&coact, codes.n_rows() as u64)
}

/// Basic ("reflected") bootstrap interval of the tree bound: each replicate draws the groups with
/// replacement and recomputes the co-activation counts of the drawn rows; the interval is
/// `[2·T − q_hi, 2·T − q_lo]` around the estimate `T`. Not the percentile interval: resampled sets
/// repeat rows, which inflates every pairwise mutual information and the tree's choice of the
/// largest ones, so the replicates sit below `T` by the estimator's own small-sample bias; the
/// reflection turns that bias around instead of reporting an interval that misses `T`.
fn tree_interval(
    codes: &PackedRows,
    groups: &[u32],
    estimate: f64,
    opts: &EstimateOptions,
) -> (f64, f64) {
    let n_groups = groups.iter().map(|&g| g as usize + 1).max().unwrap_or(0);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_groups];
    for (i, &g) in groups.iter().enumerate() {
        members[g as usize].push(i);
    }
    let mut state = opts.seed ^ 0x7472_6565;
    splitmix64(&mut state);
    let mut reps: Vec<f64> = (0..opts.tree_reps)
        .map(|_| {
            let mut rows = Vec::with_capacity(codes.n_rows());
            for _ in 0..n_groups {
                rows.extend_from_slice(&members[below(&mut state, n_groups)]);
            }
            tree_of(&gather_rows(codes, &rows)).bits
        })
        .collect();
    reps.sort_by(f64::total_cmp);
    (
        2.0 * estimate - quantile(&reps, (1.0 + opts.level) / 2.0),
        2.0 * estimate - quantile(&reps, (1.0 - opts.level) / 2.0),
    )
}

/// Every estimate of the set `codes` (one row per hidden state); `groups[i]` is row i's bootstrap
/// group (dense labels 0..G, e.g. from [`groups_from_ids`]), `group_unit` says what a group is.
///
/// # Panics
/// If `groups.len() != codes.n_rows()` or the set is empty.
pub fn estimate(
    codes: &PackedRows,
    groups: &[u32],
    group_unit: &str,
    opts: &EstimateOptions,
) -> SetEntropy {
    let n = codes.n_rows();
    assert!(n > 0, "estimate: empty set");
    assert_eq!(groups.len(), n, "estimate: one group per row");
    let counts: Vec<u64> = firing_counts_rows(codes)
        .into_iter()
        .map(u64::from)
        .collect();
    let varying: Vec<usize> = (0..counts.len())
        .filter(|&j| counts[j] > 0 && counts[j] < n as u64)
        .collect();
    // constant features add nothing to any estimate: the tree runs on the varying ones
    let compact = keep_columns(codes, &varying);
    let tree = tree_of(&compact);
    let n_groups = groups.iter().map(|&g| g as usize + 1).max().unwrap_or(0);
    // basic bootstrap intervals throughout (see `tree_interval`): the plug-in sums are biased
    // low at small n as well, and their replicates twice as much
    let interval = |reps: usize, f: fn(&[u64], u64) -> f64| {
        (reps > 0 && n_groups > 1).then(|| {
            let (lo, hi) = bootstrap_interval(&compact, groups, reps, opts.seed, opts.level, f);
            let at = f(&counts, n as u64);
            (2.0 * at - hi, 2.0 * at - lo)
        })
    };
    let marginal = marginal_bits(&counts, n as u64);
    SetEntropy {
        rows: n,
        groups: n_groups,
        group_unit: group_unit.to_string(),
        features: codes.n_cols(),
        varying_features: varying.len(),
        marginal: Estimate::new(marginal, interval(opts.reps, marginal_bits)),
        miller_madow: Estimate::new(
            miller_madow_bits(&counts, n as u64),
            interval(opts.reps, miller_madow_bits),
        ),
        tree: Estimate::new(
            tree.bits,
            (opts.tree_reps > 0 && n_groups > 1)
                .then(|| tree_interval(&compact, groups, tree.bits, opts)),
        ),
        tree_mutual_info: tree.mutual_info_removed,
        log2_rows: (n as f64).log2(),
    }
}
