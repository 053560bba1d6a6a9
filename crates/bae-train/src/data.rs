//! Where training rows come from, how they split into train/validation, and the seeded batch order.
//!
//! The batch order is a pure function of (seed, epoch, step): a run needs no RNG state beyond its
//! seed and step counter to continue exactly where it stopped.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A matrix of activation rows [n, d], read by row index (memory-mapped files, extract folders).
pub trait RowSource: Sync {
    fn n_rows(&self) -> usize;
    fn dim(&self) -> usize;
    /// What to name in messages (a path).
    fn describe(&self) -> String;
    /// Copy rows `idx` as f32 into `out` (`idx.len() * dim`); one-line error on unreadable or non-finite data.
    fn gather(&self, idx: &[usize], out: &mut [f32]) -> Result<(), String>;
    /// Training rows for a validation share: the rows before the split point (official: a sequential
    /// split). Sources that know documents move the point to a document boundary.
    fn train_rows(&self, val_split: f64) -> usize {
        self.n_rows() - (self.n_rows() as f64 * val_split).round() as usize
    }
}

impl RowSource for bae_io::ActivationFile {
    fn n_rows(&self) -> usize {
        bae_io::ActivationFile::n_rows(self)
    }
    fn dim(&self) -> usize {
        bae_io::ActivationFile::dim(self)
    }
    fn describe(&self) -> String {
        self.path().display().to_string()
    }
    fn gather(&self, idx: &[usize], out: &mut [f32]) -> Result<(), String> {
        self.gather_rows(idx, out).map_err(|e| e.to_string())
    }
}

/// In-memory rows (tests, synthetic data, benchmarks).
pub struct MemoryRows {
    pub d: usize,
    pub data: Vec<f32>,
    pub name: String,
}

impl RowSource for MemoryRows {
    fn n_rows(&self) -> usize {
        self.data.len() / self.d
    }
    fn dim(&self) -> usize {
        self.d
    }
    fn describe(&self) -> String {
        self.name.clone()
    }
    fn gather(&self, idx: &[usize], out: &mut [f32]) -> Result<(), String> {
        for (r, &i) in idx.iter().enumerate() {
            let row = &self.data[i * self.d..(i + 1) * self.d];
            if let Some(c) = row.iter().position(|v| !v.is_finite()) {
                return Err(format!(
                    "{}: non-finite value at row {i}, column {c}",
                    self.name
                ));
            }
            out[r * self.d..(r + 1) * self.d].copy_from_slice(row);
        }
        Ok(())
    }
}

/// Sequential train/validation split (official: the first 80% train, the last 20% validation),
/// and the batch schedule over the training rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub n_train: usize,
    pub n_val: usize,
    pub batch_size: usize,
    pub shuffle: bool,
    pub seed: u64,
    /// batches per pass over the training rows; a last batch of a single row is dropped
    /// (the unbiased covariance needs two rows), any other partial batch is kept as torch's loader does
    pub batches_per_epoch: u64,
    pub total_steps: u64,
}

impl Schedule {
    pub fn new(
        n_rows: usize,
        n_train: usize,
        batch_size: usize,
        shuffle: bool,
        seed: u64,
        epochs: u64,
        steps: Option<u64>,
    ) -> Result<Schedule, String> {
        let n_val = n_rows - n_train;
        if n_train < 2 {
            return Err(format!(
                "only {n_train} training rows after the validation split ({n_rows} rows)"
            ));
        }
        let full = n_train / batch_size;
        let rest = n_train % batch_size;
        let batches_per_epoch = (full + usize::from(rest >= 2)) as u64;
        let total_steps = steps.unwrap_or(epochs * batches_per_epoch);
        Ok(Schedule {
            n_train,
            n_val,
            batch_size,
            shuffle,
            seed,
            batches_per_epoch,
            total_steps,
        })
    }

    /// The order of the training rows in one epoch: a seeded permutation, or file order.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.n_train).collect();
        if self.shuffle {
            // one independent stream per epoch, so any epoch's order is computed without the ones before
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
            rng.set_stream(epoch.wrapping_add(1));
            for i in (1..order.len()).rev() {
                let j = rng.random_range(0..=i);
                order.swap(i, j);
            }
        }
        order
    }

    /// (epoch, batch index within the epoch) of a global step.
    pub fn position(&self, step: u64) -> (u64, u64) {
        (step / self.batches_per_epoch, step % self.batches_per_epoch)
    }

    /// Row indices of batch `b` in an epoch's order.
    pub fn batch<'a>(&self, order: &'a [usize], b: u64) -> &'a [usize] {
        let start = b as usize * self.batch_size;
        let end = (start + self.batch_size).min(order.len());
        &order[start..end]
    }

    pub fn val_rows(&self) -> std::ops::Range<usize> {
        self.n_train..self.n_train + self.n_val
    }
}
