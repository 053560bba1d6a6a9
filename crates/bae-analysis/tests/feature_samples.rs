//! The streamed sampler against a brute-force reading of the paper's pipeline on small cases:
//! every row's full salience list sorted, the first samples per feature in corpus order, the
//! strongest ones, the rates, the histograms and the co-activation counts of the salient events.

use bae_analysis::features::samples::{Collected, SampleOptions, collect};
use bae_ref::{Arch, Estimator, Params};
use bae_train::MemoryRows;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const D: usize = 8;
const DC: usize = 24;
const N: usize = 301;

fn setup(seed: u64) -> (Params<f32>, MemoryRows) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p = Params::<f32>::init_linear(D, DC, || rng.random::<f64>());
    // spread the biases so rates range from rare to dense (some features inverted)
    for (j, b) in p.b_enc.iter_mut().enumerate() {
        *b += (j as f32 / DC as f32 - 0.6) * 2.5;
    }
    let data: Vec<f32> = (0..N * D)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect();
    let rows = MemoryRows {
        d: D,
        data,
        name: "synthetic".into(),
    };
    (p, rows)
}

fn bae() -> Arch {
    Arch::Bae {
        estimator: Estimator::SignS,
        lambda_entropy: 0.0,
        lambda_cov: 0.0,
    }
}

/// Brute force: pre-activations and activations of every row, one row at a time.
fn brute(p: &Params<f32>, rows: &MemoryRows, arch: &Arch) -> (Vec<f32>, Vec<f32>) {
    let mut z = Vec::new();
    let mut a = Vec::new();
    for i in 0..N {
        let zi = bae_ref::encode_pre(p, &rows.data[i * D..(i + 1) * D], 1);
        let (ai, _, _) = bae_ref::activate(&zi, 1, DC, arch);
        z.extend(zi);
        a.extend(ai);
    }
    (z, a)
}

fn check(arch: Arch, rescale: bool, top_k: usize) {
    let (p, rows) = setup(7);
    let idx: Vec<usize> = (0..N).collect();
    let opts = |batch| SampleOptions {
        top_k,
        keep_first: 5,
        keep_strongest: 3,
        bins: 7,
        coactive: 4,
        rescale,
        pool: 40,
        seed: 3,
        batch,
    };
    let got = collect(&p, &arch, &rows, &idx, &opts(37), &mut |_| {}).unwrap();
    // the batch size changes no choice (the GEMM's last bits may differ with the row count)
    let one = collect(&p, &arch, &rows, &idx, &opts(1), &mut |_| {}).unwrap();
    let all = collect(&p, &arch, &rows, &idx, &opts(1000), &mut |_| {}).unwrap();
    assert_eq!(choices(&got), choices(&one));
    assert_eq!(choices(&got), choices(&all));

    let binary = arch.is_binary();
    let (z, a) = brute(&p, &rows, &arch);
    let active = |i: usize, j: usize| a[i * DC + j] != 0.0;
    let rate: Vec<f64> = (0..DC)
        .map(|j| (0..N).filter(|&i| active(i, j)).count() as f64 / N as f64)
        .collect();
    let rare: Vec<bool> = (0..DC).map(|j| !binary || rate[j] <= 0.5).collect();
    let mean: Vec<f64> = (0..DC)
        .map(|j| (0..N).map(|i| a[i * DC + j] as f64).sum::<f64>() / N as f64)
        .collect();
    let std: Vec<f64> = (0..DC)
        .map(|j| {
            let v = (0..N).map(|i| (a[i * DC + j] as f64).powi(2)).sum::<f64>() / N as f64
                - mean[j] * mean[j];
            v.max(0.0).sqrt()
        })
        .collect();
    let sal = |i: usize, j: usize| -> f64 {
        if binary {
            (if active(i, j) { 1.0 } else { 0.0 } - rate[j]).abs()
        } else if rescale {
            (a[i * DC + j] as f64 - mean[j]) / std[j].max(1e-12)
        } else {
            a[i * DC + j] as f64
        }
    };
    let event = |i: usize, j: usize| active(i, j) == rare[j];
    let mut first: Vec<Vec<usize>> = vec![Vec::new(); DC];
    let mut hits = [0u64; DC];
    let mut strengths: Vec<Vec<(f32, usize)>> = vec![Vec::new(); DC];
    for i in 0..N {
        let mut cand: Vec<usize> = (0..DC).filter(|&j| binary || active(i, j)).collect();
        // full sort, salience descending, ties to the lower feature
        cand.sort_by(|&x, &y| sal(i, y).total_cmp(&sal(i, x)).then(x.cmp(&y)));
        for &j in cand.iter().take(top_k) {
            hits[j] += 1;
            if first[j].len() < 5 {
                first[j].push(i);
            }
            let s = if binary {
                if rare[j] {
                    z[i * DC + j]
                } else {
                    -z[i * DC + j]
                }
            } else {
                a[i * DC + j]
            };
            strengths[j].push((s, i));
        }
    }
    let mut rare_rates = Vec::new();
    for (j, f) in got.features.iter().enumerate() {
        assert_eq!(f.feature, j);
        assert_eq!(f.rate, rate[j], "rate of {j}");
        assert_eq!(f.rare_value, u8::from(rare[j]));
        assert_eq!(f.n_samples, hits[j], "hits of {j}");
        let rows_first: Vec<usize> = f.samples.iter().map(|s| s.row).collect();
        assert_eq!(rows_first, first[j], "first samples of {j}");
        strengths[j].sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
        let want: Vec<usize> = strengths[j].iter().take(3).map(|s| s.1).collect();
        let rows_strong: Vec<usize> = f.strongest.iter().map(|s| s.row).collect();
        assert_eq!(rows_strong, want, "strongest of {j}");
        // histogram: every token (BAE) or every non-zero activation (baselines) counted once
        let counted: u64 = f.histogram.counts.iter().sum::<u64>() + f.histogram.zeros;
        assert_eq!(counted, N as u64);
        let nonzero = (0..N).filter(|&i| active(i, j)).count() as u64;
        if !binary {
            assert_eq!(f.histogram.zeros, N as u64 - nonzero);
        }
        // co-activation of the salient events, brute force
        let nj = (0..N).filter(|&i| event(i, j)).count() as u64;
        for c in &f.coactive {
            let k = c.feature;
            let both = (0..N).filter(|&i| event(i, j) && event(i, k)).count() as u64;
            let nk = (0..N).filter(|&i| event(i, k)).count() as u64;
            assert_eq!(c.count, both, "co-activation {j},{k}");
            assert_eq!(c.jaccard, both as f64 / (nj + nk - both) as f64);
        }
        // the listed partners are the best by Jaccard
        if let Some(last) = f.coactive.last() {
            for k in (0..DC).filter(|&k| k != j && f.coactive.iter().all(|c| c.feature != k)) {
                let both = (0..N).filter(|&i| event(i, j) && event(i, k)).count() as u64;
                let nk = (0..N).filter(|&i| event(i, k)).count() as u64;
                let jac = both as f64 / (nj + nk - both).max(1) as f64;
                assert!(jac <= last.jaccard, "{k} should be listed for {j}");
            }
        }
        rare_rates.push(f.rare_rate);
    }
    check_pool(&got, &event);
    if binary {
        assert!(
            got.features.iter().any(|f| f.rare_value == 0),
            "no inverted feature in the case"
        );
    }
    assert!(rare_rates.iter().any(|&r| r > 0.0 && r < 0.2));
}

/// One feature's choices: first rows, strongest rows, hits, partners, histogram counts.
type Choice = (Vec<usize>, Vec<usize>, u64, Vec<(usize, u64)>, Vec<u64>);

/// Everything the sampler chose, without the floats: rows of the samples, counts, partners.
fn choices(c: &Collected) -> Vec<Choice> {
    c.features
        .iter()
        .map(|f| {
            (
                f.samples.iter().map(|s| s.row).collect(),
                f.strongest.iter().map(|s| s.row).collect(),
                f.n_samples,
                f.coactive.iter().map(|k| (k.feature, k.count)).collect(),
                f.histogram.counts.clone(),
            )
        })
        .chain(std::iter::once((
            c.pool.iter().map(|s| s.row).collect(),
            c.pool_events.iter().map(|e| e.len()).collect(),
            c.rows as u64,
            Vec::new(),
            Vec::new(),
        )))
        .collect()
}

fn check_pool(got: &Collected, event: &dyn Fn(usize, usize) -> bool) {
    assert_eq!(got.pool.len(), 40);
    assert!(got.pool.windows(2).all(|w| w[0].row < w[1].row));
    for (s, ev) in got.pool.iter().zip(&got.pool_events) {
        let want: Vec<u32> = (0..DC)
            .filter(|&j| event(s.row, j))
            .map(|j| j as u32)
            .collect();
        assert_eq!(ev, &want, "events of pool row {}", s.row);
    }
}

#[test]
fn bae_samples_match_brute_force() {
    check(bae(), false, 3);
    check(bae(), false, 10);
}

#[test]
fn relu_samples_match_brute_force() {
    check(Arch::ReluL1 { l1: 0.0 }, false, 3);
    check(Arch::ReluL1 { l1: 0.0 }, true, 3);
}

#[test]
fn topk_samples_match_brute_force() {
    check(Arch::TopK { k: 5, l1: 0.0 }, false, 4);
    check(
        Arch::JumpRelu {
            theta: 0.1,
            l1: 0.0,
        },
        true,
        2,
    );
}

#[test]
fn empty_corpus_is_one_line() {
    let (p, rows) = setup(1);
    let e = collect(
        &p,
        &bae(),
        &rows,
        &[],
        &SampleOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(e, "the interpretation corpus is empty");
}
