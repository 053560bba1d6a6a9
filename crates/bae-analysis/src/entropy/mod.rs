//! Entropy studies of sets of hidden states under a trained BAE (method.md, "Applications"):
//! estimates of one set, curves by block, by token position and by number of in-context
//! demonstrations, and the synthetic ground-truth benchmark.
//!
//! Every set gets the same three estimates ([`estimate`]): the paper's marginal sum, its
//! Miller–Madow correction and the Chow–Liu tree bound, each with a bootstrap interval over
//! documents.

pub mod bench;
pub mod blocks;
pub mod chart;
pub mod codes;
pub mod demos;
pub mod icl;

pub use bae_bits::set_entropy::{Estimate, EstimateOptions, SetEntropy, estimate, groups_from_ids};
pub use codes::{CodeSet, encode_set, read_set};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Rows of a set without document ids are bootstrapped in blocks of this many consecutive rows.
pub const ROW_BLOCK: usize = 128;

/// One point of an entropy curve: the set at `x` and what else was measured there.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CurvePoint {
    pub x: f64,
    pub entropy: SetEntropy,
    /// figures beside the entropy, e.g. "fvu" of a block's BAE or "accuracy" at k demonstrations
    pub extra: BTreeMap<String, f64>,
}

/// An entropy curve and how it was made, as `bae entropy --by …` writes it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Curve {
    /// "block", "position" or "demonstrations"
    pub by: String,
    pub x_label: String,
    /// where the sets came from
    pub from: String,
    pub level: f64,
    pub points: Vec<CurvePoint>,
}

/// Every estimate of a whole set (groups: its documents, or windows; [`groups_from_ids`]).
pub fn set_entropy(set: &CodeSet, opts: &EstimateOptions) -> SetEntropy {
    let (groups, unit) = groups_from_ids(&set.ids.doc_ids, &set.ids.positions, ROW_BLOCK);
    estimate(&set.codes, &groups, unit, opts)
}

/// The set split by token position (the rows' `positions` column), one estimate per position in
/// `lo..=hi` that holds at least `min_rows` rows; `progress(done, total)` after each position.
pub fn by_position(
    set: &CodeSet,
    lo: i32,
    hi: i32,
    min_rows: usize,
    opts: &EstimateOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<CurvePoint>, String> {
    if set.ids.positions.iter().all(|&p| p < 0) {
        return Err(format!(
            "{}: the rows carry no token positions (an activation file, not an extract folder)",
            set.from
        ));
    }
    let mut rows_at: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for (i, &p) in set.ids.positions.iter().enumerate() {
        if (lo..=hi).contains(&p) {
            rows_at.entry(p).or_default().push(i);
        }
    }
    rows_at.retain(|_, rows| rows.len() >= min_rows);
    if rows_at.is_empty() {
        return Err(format!(
            "{}: no position in {lo}..={hi} has {min_rows} rows or more",
            set.from
        ));
    }
    let total = rows_at.len();
    let mut points = Vec::with_capacity(total);
    for (k, (&p, rows)) in rows_at.iter().enumerate() {
        let entropy = set_entropy(&set.subset(rows), opts);
        points.push(CurvePoint {
            x: p as f64,
            entropy,
            extra: BTreeMap::new(),
        });
        progress(k + 1, total);
    }
    Ok(points)
}

/// A plain-text table of a curve: one line per point, every estimate with its interval.
pub fn curve_table(curve: &Curve) -> String {
    let extra_keys: Vec<&String> = curve
        .points
        .first()
        .map(|p| p.extra.keys().collect())
        .unwrap_or_default();
    let mut out = format!(
        "{:>8} {:>7} {:>6} {:>24} {:>24} {:>24} {:>8}",
        curve.x_label, "rows", "groups", "marginal", "miller-madow", "tree", "log2 n"
    );
    for k in &extra_keys {
        out += &format!(" {k:>9}");
    }
    out.push('\n');
    for p in &curve.points {
        let e = &p.entropy;
        out += &format!(
            "{:>8} {:>7} {:>6} {:>24} {:>24} {:>24} {:>8.2}",
            p.x,
            e.rows,
            e.groups,
            e.marginal.show(),
            e.miller_madow.show(),
            e.tree.show(),
            e.log2_rows
        );
        for k in &extra_keys {
            out += &format!(" {:>9.4}", p.extra.get(*k).copied().unwrap_or(f64::NAN));
        }
        out.push('\n');
    }
    out
}

/// The estimates of one set as a few lines.
pub fn set_table(e: &SetEntropy, level: f64) -> String {
    let pct = (level * 100.0).round();
    format!(
        "rows {}  groups {} ({})  features {} ({} take both values)  log2 rows {:.2}\n\
         marginal sum (plug-in, the paper's)  {} bits   [{pct} % bootstrap interval over groups]\n\
         Miller-Madow corrected sum           {} bits\n\
         Chow-Liu tree bound                  {} bits   (removes {:.1} bits of pairwise mutual information)\n",
        e.rows,
        e.groups,
        e.group_unit,
        e.features,
        e.varying_features,
        e.log2_rows,
        e.marginal.show(),
        e.miller_madow.show(),
        e.tree.show(),
        e.tree_mutual_info
    )
}
