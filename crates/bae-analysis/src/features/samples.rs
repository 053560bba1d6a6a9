//! Sample collection as the paper's ComSem pipeline does it, streamed over the corpus in two
//! passes of bounded memory:
//!
//! 1. per feature: how often it is active, the range of its value (BAE: pre-activation z;
//!    baselines: the non-zero activations) and the mean / spread of its activation (`--rescale`);
//! 2. per token: its top-k features by salience (BAE: |h − μ_j|, the order of
//!    β = log2(|h − μ| + 1e-6); baselines: the activation, or its z-score with rescale, active
//!    features only); each feature keeps its first samples in corpus order and its strongest
//!    ones, a histogram of its value, and co-activation counts of its salient event (popcount).
//!
//! A pool of random corpus tokens is drawn beside it: the negatives of the detection score and
//! the random-feature floor of `bae interpret`.

use super::{Coactive, FeatureEntry, Histogram, Sample};
use bae_bits::{PackedRows, coactivation_counts};
use bae_ref::{Arch, Params};
use bae_train::RowSource;
use bae_train::eval::select_top;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BinaryHeap;

/// How the samples are collected (the CLI's `bae features` / `bae interpret` flags).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SampleOptions {
    /// features kept per token, by salience (the paper: 10)
    pub top_k: usize,
    /// first samples kept per feature, in corpus order (5 to describe, 8 to verify, more to show)
    pub keep_first: usize,
    /// strongest samples kept per feature
    pub keep_strongest: usize,
    /// histogram bins
    pub bins: usize,
    /// co-activating features listed per feature
    pub coactive: usize,
    /// baselines: rank by z-scored activation instead of the raw activation
    pub rescale: bool,
    /// random corpus tokens drawn for negatives and the random floor
    pub pool: usize,
    pub seed: u64,
    /// rows per forward pass
    pub batch: usize,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions {
            top_k: 10,
            keep_first: 24,
            keep_strongest: 8,
            bins: 40,
            coactive: 8,
            rescale: false,
            pool: 512,
            seed: 0,
            batch: 4096,
        }
    }
}

/// What the two passes produced; contexts and logit effects are filled in afterwards.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Collected {
    pub rows: usize,
    pub features: Vec<FeatureEntry>,
    /// random tokens of the corpus (rows in corpus order)
    pub pool: Vec<Sample>,
    /// for each pool token, the features whose salient event it carries (sorted)
    pub pool_events: Vec<Vec<u32>>,
}

/// Per-feature sums of pass 1.
struct Pass1 {
    active: Vec<u64>,
    lo: Vec<f32>,
    hi: Vec<f32>,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
}

/// The value whose histogram a feature page shows and the activation a baseline ranks by.
struct Encoded {
    z: Vec<f32>,
    act: Vec<f32>,
    active: PackedRows,
}

fn encode(params: &Params<f32>, arch: &Arch, x: &[f32], m: usize) -> Encoded {
    let z = bae_ref::encode_pre(params, x, m);
    let (act, active, _) = bae_ref::activate(&z, m, params.d_code, arch);
    Encoded { z, act, active }
}

/// Both passes over rows `idx` (corpus order) of `src`; `progress(m)` after each batch of m rows.
pub fn collect(
    params: &Params<f32>,
    arch: &Arch,
    src: &dyn RowSource,
    idx: &[usize],
    opts: &SampleOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<Collected, String> {
    let (d, dc, n) = (params.d, params.d_code, idx.len());
    if n == 0 {
        return Err("the interpretation corpus is empty".into());
    }
    let binary = arch.is_binary();
    let batch = opts.batch.max(1);
    let mut x = vec![0f32; batch * d];

    let mut p1 = Pass1 {
        active: vec![0; dc],
        lo: vec![f32::INFINITY; dc],
        hi: vec![f32::NEG_INFINITY; dc],
        sum: vec![0.0; dc],
        sum_sq: vec![0.0; dc],
    };
    for chunk in idx.chunks(batch) {
        let m = chunk.len();
        src.gather(chunk, &mut x[..m * d])?;
        let e = encode(params, arch, &x[..m * d], m);
        for (zr, ar) in e.z.chunks(dc).zip(e.act.chunks(dc)) {
            for j in 0..dc {
                let v = if binary { zr[j] } else { ar[j] };
                if ar[j] != 0.0 {
                    p1.active[j] += 1;
                }
                if binary || v != 0.0 {
                    p1.lo[j] = p1.lo[j].min(v);
                    p1.hi[j] = p1.hi[j].max(v);
                }
                p1.sum[j] += ar[j] as f64;
                p1.sum_sq[j] += (ar[j] as f64).powi(2);
            }
        }
        progress(m);
    }
    let rate: Vec<f64> = p1.active.iter().map(|&a| a as f64 / n as f64).collect();
    // the salient event: a BAE feature's rare value; a baseline feature being active
    let rare_value: Vec<u8> = rate
        .iter()
        .map(|&p| u8::from(!binary || p <= 0.5))
        .collect();
    let (mean, std): (Vec<f64>, Vec<f64>) = (0..dc)
        .map(|j| {
            let mu = p1.sum[j] / n as f64;
            let var = (p1.sum_sq[j] / n as f64 - mu * mu).max(0.0);
            (mu, var.sqrt())
        })
        .unzip();

    let mut pass2 = Pass2::new(dc, opts, &p1, binary);
    for chunk in idx.chunks(batch) {
        let m = chunk.len();
        src.gather(chunk, &mut x[..m * d])?;
        let e = encode(params, arch, &x[..m * d], m);
        let salience = |i: usize, j: usize| -> f64 {
            if binary {
                (if e.active.get(i, j) { 1.0 } else { 0.0 } - rate[j]).abs()
            } else if opts.rescale {
                (e.act[i * dc + j] as f64 - mean[j]) / std[j].max(1e-12)
            } else {
                e.act[i * dc + j] as f64
            }
        };
        let tops: Vec<Vec<usize>> = (0..m)
            .into_par_iter()
            .map_init(
                || Vec::with_capacity(dc),
                |order: &mut Vec<usize>, i| {
                    order.clear();
                    if binary {
                        order.extend(0..dc);
                    } else {
                        order.extend((0..dc).filter(|&j| e.act[i * dc + j] != 0.0));
                    }
                    select_top(order, opts.top_k, |j| salience(i, j)).to_vec()
                },
            )
            .collect();
        let events = event_codes(&e.active, &rare_value);
        pass2.add_batch(chunk, &e, &events, &tops, &salience, &rare_value);
        progress(m);
    }

    let (pool, pool_events) = draw_pool(params, arch, src, idx, opts, &rare_value)?;
    let features = pass2.finish(&rate, &rare_value, n, binary, opts);
    Ok(Collected {
        rows: n,
        features,
        pool,
        pool_events,
    })
}

/// The salient-event bits: `active` where the rare value is 1, its complement where it is 0.
fn event_codes(active: &PackedRows, rare_value: &[u8]) -> PackedRows {
    let (m, dc) = (active.n_rows(), active.n_cols());
    let mut flip = PackedRows::zeros(1, dc);
    for (j, &r) in rare_value.iter().enumerate() {
        flip.set(0, j, r == 0);
    }
    let mask = flip.row(0);
    let words: Vec<u64> = (0..m)
        .flat_map(|i| active.row(i).iter().zip(mask).map(|(&a, &f)| a ^ f))
        .collect();
    PackedRows::from_words(m, dc, words).expect("same shape as the active bits")
}

/// A sample ordered by strength, for the per-feature min-heaps of the strongest ones.
struct ByStrength(Sample);

impl PartialEq for ByStrength {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == std::cmp::Ordering::Equal
    }
}
impl Eq for ByStrength {}
impl PartialOrd for ByStrength {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for ByStrength {
    /// reversed, so the heap's top is the weakest kept (the earlier row wins a tie)
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.0.strength
            .total_cmp(&self.0.strength)
            .then(self.0.row.cmp(&o.0.row))
    }
}

/// Accumulators of pass 2.
struct Pass2 {
    dc: usize,
    hits: Vec<u64>,
    first: Vec<Vec<Sample>>,
    strongest: Vec<BinaryHeap<ByStrength>>,
    hist: Vec<Vec<u64>>,
    zeros: Vec<u64>,
    lo: Vec<f32>,
    hi: Vec<f32>,
    coact: Vec<u64>,
    keep_first: usize,
    keep_strongest: usize,
    binary: bool,
}

impl Pass2 {
    fn new(dc: usize, opts: &SampleOptions, p1: &Pass1, binary: bool) -> Pass2 {
        let bins = opts.bins.max(1);
        let (lo, hi): (Vec<f32>, Vec<f32>) = p1
            .lo
            .iter()
            .zip(&p1.hi)
            .map(|(&l, &h)| {
                if l.is_finite() && h.is_finite() {
                    (l, if h > l { h } else { l + 1.0 })
                } else {
                    (0.0, 1.0)
                }
            })
            .unzip();
        Pass2 {
            dc,
            hits: vec![0; dc],
            first: vec![Vec::new(); dc],
            strongest: (0..dc).map(|_| BinaryHeap::new()).collect(),
            hist: vec![vec![0; bins]; dc],
            zeros: vec![0; dc],
            lo,
            hi,
            coact: vec![0; dc * dc],
            keep_first: opts.keep_first,
            keep_strongest: opts.keep_strongest,
            binary,
        }
    }

    fn add_batch(
        &mut self,
        rows: &[usize],
        e: &Encoded,
        events: &PackedRows,
        tops: &[Vec<usize>],
        salience: &dyn Fn(usize, usize) -> f64,
        rare_value: &[u8],
    ) {
        let dc = self.dc;
        // histograms, one feature per task
        let (binary, z, act) = (self.binary, &e.z, &e.act);
        let m = rows.len();
        self.hist
            .par_iter_mut()
            .zip(self.zeros.par_iter_mut())
            .enumerate()
            .for_each(|(j, (h, zeros))| {
                let (lo, hi) = (self.lo[j], self.hi[j]);
                let bins = h.len();
                for i in 0..m {
                    let v = if binary {
                        z[i * dc + j]
                    } else {
                        act[i * dc + j]
                    };
                    if !binary && v == 0.0 {
                        *zeros += 1;
                        continue;
                    }
                    let b = (((v - lo) / (hi - lo)) * bins as f32) as isize;
                    h[b.clamp(0, bins as isize - 1) as usize] += 1;
                }
            });
        for (i, top) in tops.iter().enumerate() {
            for &j in top {
                self.hits[j] += 1;
                let s = self.sample(rows[i], i, j, e, salience, rare_value);
                if self.first[j].len() < self.keep_first {
                    self.first[j].push(s.clone());
                }
                let heap = &mut self.strongest[j];
                if heap.len() < self.keep_strongest {
                    heap.push(ByStrength(s));
                } else if let Some(weakest) = heap.peek()
                    && s.strength > weakest.0.strength
                {
                    heap.pop();
                    heap.push(ByStrength(s));
                }
            }
        }
        let counts = coactivation_counts(&events.to_columns());
        self.coact
            .par_iter_mut()
            .zip(counts.par_iter())
            .for_each(|(a, &c)| *a += c as u64);
    }

    fn sample(
        &self,
        row: usize,
        i: usize,
        j: usize,
        e: &Encoded,
        salience: &dyn Fn(usize, usize) -> f64,
        rare_value: &[u8],
    ) -> Sample {
        let dc = self.dc;
        let strength = if self.binary {
            let z = e.z[i * dc + j];
            if rare_value[j] == 1 { z } else { -z }
        } else {
            e.act[i * dc + j]
        };
        // a BAE's ranking key |h − μ| shown as the paper's β = log2(|h − μ| + 1e-6)
        let key = salience(i, j);
        Sample {
            row,
            doc: -1,
            position: -1,
            token_id: 0,
            salience: if self.binary {
                (key + 1e-6).log2() as f32
            } else {
                key as f32
            },
            strength,
            context: Default::default(),
        }
    }

    fn finish(
        self,
        rate: &[f64],
        rare_value: &[u8],
        n: usize,
        binary: bool,
        opts: &SampleOptions,
    ) -> Vec<FeatureEntry> {
        let dc = self.dc;
        let label = if binary {
            "pre-activation z (the bit is set where z > 0)"
        } else {
            "activation (non-zero values; zeros counted apart)"
        };
        let coact = &self.coact;
        let mut out = Vec::with_capacity(dc);
        for (j, (first, heap)) in self.first.into_iter().zip(self.strongest).enumerate() {
            let mut strongest: Vec<Sample> = heap.into_iter().map(|s| s.0).collect();
            strongest.sort_by(|a, b| b.strength.total_cmp(&a.strength).then(a.row.cmp(&b.row)));
            let nj = coact[j * dc + j];
            let mut partners: Vec<Coactive> = (0..dc)
                .filter(|&k| k != j && coact[j * dc + k] > 0)
                .map(|k| {
                    let c = coact[j * dc + k];
                    let union = nj + coact[k * dc + k] - c;
                    Coactive {
                        feature: k,
                        count: c,
                        jaccard: c as f64 / union.max(1) as f64,
                    }
                })
                .collect();
            partners.sort_by(|a, b| {
                b.jaccard
                    .total_cmp(&a.jaccard)
                    .then(a.feature.cmp(&b.feature))
            });
            partners.truncate(opts.coactive);
            out.push(FeatureEntry {
                feature: j,
                rate: rate[j],
                rare_value: rare_value[j],
                rare_rate: if binary {
                    rate[j].min(1.0 - rate[j])
                } else {
                    rate[j]
                },
                salience_density: self.hits[j] as f64 / n as f64,
                n_samples: self.hits[j],
                samples: first,
                strongest,
                histogram: Histogram {
                    lo: self.lo[j] as f64,
                    hi: self.hi[j] as f64,
                    counts: self.hist[j].clone(),
                    zeros: self.zeros[j],
                    label: label.into(),
                    threshold: if binary { Some(0.0) } else { None },
                },
                promotes: Vec::new(),
                suppresses: Vec::new(),
                coactive: partners,
                interpretation: None,
            });
        }
        out
    }
}

/// `opts.pool` random rows of `idx` (seeded, without replacement, in corpus order) and the
/// features whose salient event each carries.
fn draw_pool(
    params: &Params<f32>,
    arch: &Arch,
    src: &dyn RowSource,
    idx: &[usize],
    opts: &SampleOptions,
    rare_value: &[u8],
) -> Result<(Vec<Sample>, Vec<Vec<u32>>), String> {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x706f_6f6c);
    let mut rows: Vec<usize> =
        rand::seq::index::sample(&mut rng, idx.len(), opts.pool.min(idx.len()))
            .into_iter()
            .map(|k| idx[k])
            .collect();
    rows.sort_unstable();
    if rows.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let (d, dc, m) = (params.d, params.d_code, rows.len());
    let mut x = vec![0f32; m * d];
    src.gather(&rows, &mut x)?;
    let e = encode(params, arch, &x, m);
    let events = event_codes(&e.active, rare_value);
    let pool = rows
        .iter()
        .map(|&row| Sample {
            row,
            doc: -1,
            position: -1,
            token_id: 0,
            salience: 0.0,
            strength: 0.0,
            context: Default::default(),
        })
        .collect();
    let pool_events = (0..m)
        .map(|i| {
            (0..dc)
                .filter(|&j| events.get(i, j))
                .map(|j| j as u32)
                .collect()
        })
        .collect();
    Ok((pool, pool_events))
}
