//! Firing counts (popcount per feature) and a streaming accumulator for large evaluation sets.

use crate::packed::{PackedColumns, PackedRows};
use crate::simd::{self, Backend};
use crate::transpose::load_block;
use rayon::prelude::*;

/// Number of rows in which each column is 1.
pub fn firing_counts(h: &PackedColumns) -> Vec<u32> {
    h.col_popcounts()
}

#[doc(hidden)]
pub fn firing_counts_with(b: Backend, h: &PackedColumns) -> Vec<u32> {
    h.col_popcounts_with(b.check())
}

/// Firing rate `p_j = count_j / n` per column (exactly `mean_i H_ij`); all 0 when `n = 0`.
pub fn firing_rates(h: &PackedColumns) -> Vec<f64> {
    rates_from_counts(
        firing_counts(h).iter().map(|&c| c as u64),
        h.n_rows() as u64,
    )
}

fn rates_from_counts(counts: impl Iterator<Item = u64>, n: u64) -> Vec<f64> {
    if n == 0 {
        return counts.map(|_| 0.0).collect();
    }
    counts.map(|c| c as f64 / n as f64).collect()
}

/// Firing counts straight from the row layout, without building the transposed matrix (AVX-512:
/// byte counters bumped through mask registers; portable: 64x64 block bit transposes).
pub fn firing_counts_rows(h: &PackedRows) -> Vec<u32> {
    firing_counts_rows_with(Backend::detect(), h)
}

#[doc(hidden)]
pub fn firing_counts_rows_with(b: Backend, h: &PackedRows) -> Vec<u32> {
    let b = b.check();
    let (n, cols, wpr) = (h.n_rows(), h.n_cols(), h.words_per_row());
    let mut counts = vec![0u32; cols];
    if n == 0 || cols == 0 {
        return counts;
    }
    let words = h.words();
    if b == Backend::Avx512 {
        // row ranges in parallel, each with its own totals, summed at the end
        let rows_per_task = n.div_ceil(4 * rayon::current_num_threads()).max(1024);
        let total = words
            .par_chunks(rows_per_task * wpr)
            .map(|chunk| {
                let mut c = vec![0u32; wpr * 64];
                simd::vertical_counts(b, chunk, wpr, &mut c);
                c
            })
            .reduce_with(|mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            })
            .expect("n > 0");
        counts.copy_from_slice(&total[..cols]);
        return counts;
    }
    let n_rb = n.div_ceil(64);
    counts.par_chunks_mut(64).enumerate().for_each(|(cw, out)| {
        let mut block_counts = [0u32; 64];
        for rb in 0..n_rb {
            let mut a = load_block(words, n, wpr, rb, cw);
            simd::transpose64(b, &mut a);
            simd::count_majors(b, &a, 1, &mut block_counts);
            for (o, &c) in out.iter_mut().zip(&block_counts) {
                *o += c;
            }
        }
    });
    counts
}

/// Accumulates firing counts over many batches with the same number of columns (e.g. the entropy
/// or the dead/dense feature counts of a large evaluation set). Counts are `u64`, so any number
/// of rows fits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FiringCounter {
    counts: Vec<u64>,
    n_rows: u64,
}

impl FiringCounter {
    pub fn new(n_cols: usize) -> Self {
        FiringCounter {
            counts: vec![0; n_cols],
            n_rows: 0,
        }
    }

    /// Adds a column-packed batch. Panics if its column count differs.
    pub fn add(&mut self, h: &PackedColumns) {
        self.add_counts(&firing_counts(h), h.n_rows());
    }

    /// Adds a row-packed batch (no transpose needed). Panics if its column count differs.
    pub fn add_rows(&mut self, h: &PackedRows) {
        self.add_counts(&firing_counts_rows(h), h.n_rows());
    }

    /// Adds precomputed per-column counts of a batch of `n_rows` rows.
    pub fn add_counts(&mut self, counts: &[u32], n_rows: usize) {
        assert_eq!(
            counts.len(),
            self.counts.len(),
            "FiringCounter: column count mismatch"
        );
        for (a, &c) in self.counts.iter_mut().zip(counts) {
            *a += c as u64;
        }
        self.n_rows += n_rows as u64;
    }

    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    pub fn n_rows(&self) -> u64 {
        self.n_rows
    }

    pub fn n_cols(&self) -> usize {
        self.counts.len()
    }

    /// `count / n_rows` per column (0 before any row was added).
    pub fn rates(&self) -> Vec<f64> {
        rates_from_counts(self.counts.iter().copied(), self.n_rows)
    }
}
