//! The estimates of one code matrix, exactly as `bae entropy` computes them
//! ([`crate::entropy::estimate`]: marginal sum, Miller–Madow, Chow–Liu tree bound, each with its
//! basic bootstrap interval), with the bootstrap groups made of contiguous blocks of rows
//! (synthetic rows have no documents; they are i.i.d., so any block is a fair resampling unit),
//! plus two figures only a benchmark can afford: the plug-in joint entropy of whole rows and L0.

use crate::entropy::{EstimateOptions, estimate};
use bae_bits::PackedRows;
use serde::Serialize;
use std::collections::HashMap;

/// An estimate in bits and its bootstrap interval (`lo = hi = bits` when none was drawn).
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Interval {
    pub bits: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    fn of(e: &crate::entropy::Estimate) -> Interval {
        Interval {
            bits: e.bits,
            lo: e.lo.unwrap_or(e.bits),
            hi: e.hi.unwrap_or(e.bits),
        }
    }

    pub fn contains(&self, v: f64) -> bool {
        self.lo <= v && v <= self.hi
    }
}

/// The estimates of one code (the hidden bits or a BAE's codes) on one set of rows.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Estimates {
    pub rows: usize,
    /// bootstrap groups: blocks of consecutive rows
    pub blocks: usize,
    pub features: usize,
    /// features that take both values on these rows (the others add 0 to every estimate)
    pub varying: usize,
    /// mean number of features on per row
    pub l0: f64,
    /// Σ_j H(p_j), plug-in (the paper's estimate)
    pub marginal: Interval,
    /// the same sum with the Miller–Madow correction of each feature
    pub miller_madow: Interval,
    /// the Chow–Liu tree bound Σ_j H_j − Σ_tree I(j;k)
    pub tree: Interval,
    /// plug-in entropy of whole rows (distinct patterns counted): the code's joint entropy when
    /// it is far below log2(rows), biased down towards log2(rows) otherwise
    pub joint_plugin: f64,
}

/// Plug-in entropy in bits of the distribution of whole rows.
pub fn joint_plugin_bits(codes: &PackedRows) -> f64 {
    let n = codes.n_rows();
    let mut seen: HashMap<&[u64], u64> = HashMap::new();
    for i in 0..n {
        *seen.entry(codes.row(i)).or_default() += 1;
    }
    let nf = n as f64;
    seen.values()
        .map(|&c| {
            let p = c as f64 / nf;
            -p * p.log2()
        })
        .sum::<f64>()
        .max(0.0)
}

/// Every estimate of `codes` with `level` intervals from `reps` bootstrap replicates (for the
/// sums and for the tree alike) over blocks of `block_rows` consecutive rows; seeded; 0 reps: no
/// intervals.
///
/// # Panics
/// If `codes` has no rows or `block_rows` is 0.
pub fn measure(
    codes: &PackedRows,
    block_rows: usize,
    reps: usize,
    level: f64,
    seed: u64,
) -> Estimates {
    let n = codes.n_rows();
    assert!(n > 0 && block_rows > 0, "measure: no rows or empty blocks");
    let groups: Vec<u32> = (0..n).map(|i| (i / block_rows) as u32).collect();
    let opts = EstimateOptions {
        reps,
        tree_reps: reps,
        level,
        seed,
    };
    let e = estimate(codes, &groups, "row blocks", &opts);
    let l0 = codes.row_popcounts().iter().map(|&c| c as f64).sum::<f64>() / n as f64;
    Estimates {
        rows: n,
        blocks: e.groups,
        features: e.features,
        varying: e.varying_features,
        l0,
        marginal: Interval::of(&e.marginal),
        miller_madow: Interval::of(&e.miller_madow),
        tree: Interval::of(&e.tree),
        joint_plugin: joint_plugin_bits(codes),
    }
}
