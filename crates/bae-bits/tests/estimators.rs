//! Entropy estimators: the Chow–Liu bound against brute-force joint entropies of small codes,
//! Miller–Madow against the plug-in on small samples, bootstrap coverage, and agreement with the
//! training formula.

use bae_bits::{
    PackedRows, bootstrap_interval, coactivation_counts, entropy_bits, marginal_bits,
    miller_madow_bits, tree_bits,
};
use std::collections::HashMap;
use std::time::Instant;

/// SplitMix64, seeded.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn bern(&mut self, p: f64) -> bool {
        self.uniform() < p
    }
    fn below(&mut self, m: u64) -> u64 {
        ((self.next() as u128 * m as u128) >> 64) as u64
    }
}

fn h2(p: f64) -> f64 {
    let f = |x: f64| if x > 0.0 { -x * x.log2() } else { 0.0 };
    f(p) + f(1.0 - p)
}

/// Builds an `n × d` code row by row from a generator of one row (as a bit vector).
fn build(n: usize, d: usize, mut row: impl FnMut(&mut Vec<bool>)) -> PackedRows {
    let mut h = PackedRows::zeros(n, d);
    let mut r = vec![false; d];
    for i in 0..n {
        row(&mut r);
        for (j, &b) in r.iter().enumerate() {
            h.set(i, j, b);
        }
    }
    h
}

/// Plug-in entropy of the empirical joint distribution of the rows (d ≤ 64), bits.
fn joint_bits(h: &PackedRows) -> f64 {
    let mut m: HashMap<u64, u64> = HashMap::new();
    for i in 0..h.n_rows() {
        *m.entry(h.row(i)[0]).or_default() += 1;
    }
    let n = h.n_rows() as f64;
    m.values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

fn counts_of(h: &PackedRows) -> (Vec<u64>, Vec<u32>) {
    let coact = coactivation_counts(&h.to_columns());
    let d = h.n_cols();
    let diag = (0..d).map(|j| coact[j * d + j] as u64).collect();
    (diag, coact)
}

/// Weight of the maximum spanning tree over pairwise plug-in mutual information, computed
/// independently: the 2×2 tables counted from the rows, Kruskal with union–find.
fn kruskal_mi_bits(h: &PackedRows) -> f64 {
    let (n, d) = (h.n_rows(), h.n_cols());
    let mut pairs = Vec::new();
    for j in 0..d {
        for k in j + 1..d {
            let mut t = [[0u64; 2]; 2];
            for i in 0..n {
                t[h.get(i, j) as usize][h.get(i, k) as usize] += 1;
            }
            let nf = n as f64;
            let mut mi = 0.0;
            for a in 0..2 {
                for b in 0..2 {
                    let (pab, pa, pb) = (
                        t[a][b] as f64 / nf,
                        (t[a][0] + t[a][1]) as f64 / nf,
                        (t[0][b] + t[1][b]) as f64 / nf,
                    );
                    if pab > 0.0 {
                        mi += pab * (pab / (pa * pb)).log2();
                    }
                }
            }
            pairs.push((mi, j, k));
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut root: Vec<usize> = (0..d).collect();
    fn find(r: &mut [usize], mut x: usize) -> usize {
        while r[x] != x {
            r[x] = r[r[x]];
            x = r[x];
        }
        x
    }
    let mut total = 0.0;
    for (mi, j, k) in pairs {
        let (a, b) = (find(&mut root, j), find(&mut root, k));
        if a != b && mi > 0.0 {
            root[a] = b;
            total += mi;
        }
    }
    total
}

/// Small codes, independent and correlated: `H_joint ≤ tree_bits ≤ marginal_bits` exactly (up to
/// rounding) on the same empirical data, and the tree's weight is that of a maximum spanning
/// tree found independently.
#[test]
fn tree_bound_sandwiched_by_brute_force_joint_entropy() {
    let n = 2000;
    let mut rng = Rng(1);
    type Gen = Box<dyn FnMut(&mut Vec<bool>, &mut Rng)>;
    let ps = [
        0.5, 0.1, 0.02, 0.3, 0.7, 0.0, 1.0, 0.45, 0.2, 0.9, 0.05, 0.6,
    ];
    let cases: Vec<(&str, usize, Gen)> = vec![
        (
            "independent",
            12,
            Box::new(move |r, g| {
                for (j, b) in r.iter_mut().enumerate() {
                    *b = g.bern(ps[j]);
                }
            }),
        ),
        (
            "copies",
            10,
            Box::new(|r, g| {
                for (j, &p) in [0.5, 0.2, 0.35, 0.1, 0.6, 0.05].iter().enumerate() {
                    r[j] = g.bern(p);
                }
                r[6] = r[0];
                r[7] = r[1];
                r[8] = r[1];
                r[9] = !r[3];
            }),
        ),
        (
            "xor",
            7,
            Box::new(|r, g| {
                for (j, &p) in [0.5, 0.3, 0.2, 0.6].iter().enumerate() {
                    r[j] = g.bern(p);
                }
                r[4] = r[0] ^ r[1];
                r[5] = r[2] ^ r[3];
                r[6] = r[4] ^ r[5];
            }),
        ),
        (
            "and",
            8,
            Box::new(|r, g| {
                for (j, &p) in [0.5, 0.4, 0.7, 0.3, 0.15].iter().enumerate() {
                    r[j] = g.bern(p);
                }
                r[5] = r[0] & r[1];
                r[6] = r[2] & r[3];
                r[7] = r[5] | (r[6] & r[4]);
            }),
        ),
        (
            "markov",
            12,
            Box::new(|r, g| {
                r[0] = g.bern(0.3);
                for j in 1..r.len() {
                    let flip = g.bern(0.05 + 0.03 * j as f64);
                    r[j] = r[j - 1] ^ flip;
                }
            }),
        ),
        (
            "mixed",
            12,
            Box::new(|r, g| {
                let z = g.bern(0.4); // latent cause
                for (j, b) in r.iter_mut().enumerate().take(8) {
                    *b = if z {
                        g.bern(0.8 - 0.05 * j as f64)
                    } else {
                        g.bern(0.1)
                    };
                }
                r[8] = r[0] & r[1];
                r[9] = r[2] ^ r[3];
                r[10] = r[4];
                r[11] = g.bern(0.5);
            }),
        ),
    ];
    for (name, d, mut gen_row) in cases {
        let h = build(n, d, |r| gen_row(r, &mut rng));
        let (diag, coact) = counts_of(&h);
        let hj = joint_bits(&h);
        let t = tree_bits(&coact, n as u64);
        let m = marginal_bits(&diag, n as u64);
        println!(
            "{name:12} d={d:2}: joint {hj:.4} <= tree {:.4} <= marginal {m:.4} ({} edges)",
            t.bits,
            t.edges.len()
        );
        assert!((t.marginal_bits - m).abs() < 1e-12, "{name}");
        assert!(
            (t.bits - (t.marginal_bits - t.mutual_info_removed)).abs() < 1e-12,
            "{name}"
        );
        let edge_sum: f64 = t.edges.iter().map(|e| e.2).sum();
        assert!((edge_sum - t.mutual_info_removed).abs() < 1e-9, "{name}");
        assert!(t.edges.len() < d.max(1), "{name}: a forest has < d edges");
        assert!(hj <= t.bits + 1e-9, "{name}: joint {hj} > tree {}", t.bits);
        assert!(t.bits <= m + 1e-9, "{name}: tree {} > marginal {m}", t.bits);
        // the tree is a maximum-weight one
        let kw = kruskal_mi_bits(&h);
        assert!(
            (t.mutual_info_removed - kw).abs() < 1e-9,
            "{name}: Prim removed {} bits, Kruskal's maximum tree {kw}",
            t.mutual_info_removed
        );
        // u64 counts give the same result
        let coact64: Vec<u64> = coact.iter().map(|&c| c as u64).collect();
        assert_eq!(tree_bits(&coact64, n as u64), t, "{name}");
        if name != "independent" {
            assert!(t.bits < m - 0.1, "{name}: no redundancy removed");
        }
    }
}

/// Two features: a tree on two vertices is the exact joint, so `tree_bits` is the brute-force
/// joint entropy (tests the 2×2 mutual information on its own).
#[test]
fn tree_bits_on_two_features_is_the_joint_entropy() {
    let mut rng = Rng(2);
    for &(p, q, flip) in &[
        (0.5, 0.5, 0.1),
        (0.3, 0.0, 0.0),
        (0.1, 0.9, 0.3),
        (0.02, 0.5, 0.5),
        (0.7, 0.2, 1.0),
    ] {
        let n = 1000 + rng.below(1000) as usize;
        let h = build(n, 2, |r| {
            r[0] = rng.bern(p);
            r[1] = if rng.bern(flip) { rng.bern(q) } else { r[0] };
        });
        let (_, coact) = counts_of(&h);
        let t = tree_bits(&coact, n as u64);
        let hj = joint_bits(&h);
        assert!(
            (t.bits - hj).abs() < 1e-9,
            "p={p} q={q} flip={flip}: tree {} vs joint {hj}",
            t.bits
        );
    }
    // constant and empty inputs: no edges, 0 bits
    let t = tree_bits(&[5u32, 5, 5, 5], 5);
    assert!(t.edges.is_empty() && t.bits == 0.0);
    let t = tree_bits::<u32>(&[], 10);
    assert!(t.edges.is_empty() && t.bits == 0.0);
}

/// Independent columns plus exact copies (and a complement): the tree removes every copy's
/// entropy, and for a Markov chain over the columns the tree is the chain.
#[test]
fn tree_removes_copies_and_recovers_a_chain() {
    let n = 2000u64;
    let mut rng = Rng(3);
    let ps = [0.5, 0.2, 0.35, 0.1, 0.6, 0.05, 0.8];
    // columns 0..7 independent; 7, 8 copies of 0; 9 copy of 3; 10 complement of 4
    let copies_idx = [7usize, 8, 9, 10];
    let h = build(n as usize, 11, |r| {
        for (j, &p) in ps.iter().enumerate() {
            r[j] = rng.bern(p);
        }
        r[7] = r[0];
        r[8] = r[0];
        r[9] = r[3];
        r[10] = !r[4];
    });
    let (diag, coact) = counts_of(&h);
    let t = tree_bits(&coact, n);
    let m = marginal_bits(&diag, n);
    let copies: f64 = copies_idx
        .iter()
        .map(|&c| marginal_bits(&diag[c..c + 1], n))
        .sum();
    let indep = marginal_bits(&diag[..7], n);
    println!(
        "copies: tree {:.6}, marginal {m:.6}, marginal of the independent columns {indep:.6}",
        t.bits
    );
    assert!(t.bits <= m - copies + 1e-9, "tree {} marginal {m}", t.bits);
    assert!(t.bits <= indep + 1e-9);
    assert!(t.bits >= joint_bits(&h) - 1e-9);

    let d = 8;
    let h = build(n as usize, d, |r| {
        r[0] = rng.bern(0.5);
        for j in 1..d {
            r[j] = r[j - 1] ^ rng.bern(0.1);
        }
    });
    let (_, coact) = counts_of(&h);
    let t = tree_bits(&coact, n);
    let mut edges: Vec<(usize, usize)> = t
        .edges
        .iter()
        .map(|&(a, b, _)| (a.min(b), a.max(b)))
        .collect();
    edges.sort_unstable();
    assert_eq!(edges, (0..d - 1).map(|j| (j, j + 1)).collect::<Vec<_>>());
}

/// Miller–Madow: over many small samples of one Bernoulli(p) column, its mean is closer to H(p)
/// than the plug-in's mean.
#[test]
fn miller_madow_reduces_small_sample_bias() {
    let mut rng = Rng(4);
    let draws = 20_000;
    for &n in &[20u64, 50] {
        for &p in &[0.1, 0.2, 0.3, 0.5] {
            let (mut s_pi, mut s_mm) = (0.0, 0.0);
            for _ in 0..draws {
                let c = (0..n).filter(|_| rng.bern(p)).count() as u64;
                s_pi += marginal_bits(&[c], n);
                s_mm += miller_madow_bits(&[c], n);
            }
            let truth = h2(p);
            let (b_pi, b_mm) = (s_pi / draws as f64 - truth, s_mm / draws as f64 - truth);
            println!(
                "n={n:2} p={p:.1}: H={truth:.4} bias plug-in {b_pi:+.4}, Miller-Madow {b_mm:+.4}"
            );
            assert!(b_pi < 0.0, "plug-in should be biased downwards");
            assert!(
                b_mm.abs() < b_pi.abs(),
                "n={n} p={p}: MM bias {b_mm} vs plug-in {b_pi}"
            );
        }
    }
    // constant features get no correction; a mixed one gets exactly 1/(2 n ln 2)
    assert_eq!(miller_madow_bits(&[0, 20], 20), 0.0);
    let c = miller_madow_bits(&[10], 20) - marginal_bits(&[10], 20);
    assert!((c - 1.0 / (40.0 * std::f64::consts::LN_2)).abs() < 1e-15);
}

/// Bootstrap: the 90 % interval over documents covers the true Σ H(p_j) at close to 90 %.
#[test]
fn bootstrap_interval_covers_at_nominal_rate() {
    let ps = [0.05, 0.1, 0.2, 0.3, 0.15, 0.08, 0.25, 0.4];
    let truth: f64 = ps.iter().map(|&p| h2(p)).sum();
    let (n, doc_len) = (2000usize, 10usize);
    let trials = 200;
    let mut rng = Rng(5);
    let mut covered = [0usize; 2];
    let mut width = [0.0f64; 2];
    for t in 0..trials {
        let h = build(n, ps.len(), |r| {
            for (j, &p) in ps.iter().enumerate() {
                r[j] = rng.bern(p);
            }
        });
        // document labels: scrambled ids, 10 rows each, rows of a document not contiguous
        let docs: Vec<u32> = (0..n)
            .map(|i| (((i % (n / doc_len)) as u32).wrapping_mul(2_654_435_761)) ^ 77)
            .collect();
        let rows: Vec<u32> = (0..n as u32).collect();
        for (k, groups) in [&docs, &rows].into_iter().enumerate() {
            let (lo, hi) = bootstrap_interval(&h, groups, 300, 1000 + t, 0.9, miller_madow_bits);
            assert!(lo <= hi);
            covered[k] += (lo <= truth && truth <= hi) as usize;
            width[k] += (hi - lo) / trials as f64;
        }
    }
    for (k, what) in ["documents", "rows"].iter().enumerate() {
        let rate = covered[k] as f64 / trials as f64;
        println!(
            "bootstrap over {what}: 90% interval covered Σ H(p_j) = {truth:.4} in {:.1}% of {trials} trials (mean width {:.4} bits)",
            100.0 * rate,
            width[k]
        );
        assert!((0.80..=0.97).contains(&rate), "{what}: coverage {rate}");
    }

    // deterministic in the seed, independent of the estimator's argument type
    let h = build(500, 4, |r| {
        for b in r.iter_mut() {
            *b = rng.bern(0.3);
        }
    });
    let g: Vec<u32> = (0..500).map(|i| i / 5).collect();
    let a = bootstrap_interval(&h, &g, 200, 7, 0.9, marginal_bits);
    assert_eq!(a, bootstrap_interval(&h, &g, 200, 7, 0.9, marginal_bits));
    assert_ne!(a, bootstrap_interval(&h, &g, 200, 8, 0.9, marginal_bits));
}

/// Whole documents of identical rows: resampling documents gives a wider (honest) interval than
/// resampling rows, which ignores the dependence.
#[test]
fn bootstrap_over_documents_sees_within_document_dependence() {
    let mut rng = Rng(6);
    let (docs, len) = (100usize, 20usize);
    let mut h = PackedRows::zeros(docs * len, 6);
    let mut groups = Vec::new();
    for doc in 0..docs {
        let r: Vec<bool> = (0..6).map(|_| rng.bern(0.2)).collect();
        for i in 0..len {
            for (j, &b) in r.iter().enumerate() {
                h.set(doc * len + i, j, b);
            }
            groups.push(doc as u32);
        }
    }
    let by_row: Vec<u32> = (0..(docs * len) as u32).collect();
    let (dl, dh) = bootstrap_interval(&h, &groups, 500, 1, 0.9, marginal_bits);
    let (rl, rh) = bootstrap_interval(&h, &by_row, 500, 1, 0.9, marginal_bits);
    println!("documents: [{dl:.4}, {dh:.4}], rows: [{rl:.4}, {rh:.4}]");
    assert!(dh - dl > 3.0 * (rh - rl));
}

/// `marginal_bits` agrees with the training formula `entropy_bits` away from 0 and 1 (the `ε`
/// changes each term by at most ~2ε/ln 2), and gives exactly 0 for constant features.
#[test]
fn marginal_bits_agrees_with_entropy_bits() {
    let mut rng = Rng(7);
    for _ in 0..50 {
        let n = 100 + rng.below(100_000);
        let d = 1 + rng.below(300) as usize;
        // rates in [0.01, 0.99]
        let lo = n / 100;
        let counts: Vec<u64> = (0..d).map(|_| lo + rng.below(n - 2 * lo + 1)).collect();
        let rates: Vec<f64> = counts.iter().map(|&c| c as f64 / n as f64).collect();
        let (a, b) = (marginal_bits(&counts, n), entropy_bits(&rates));
        assert!(
            (a - b).abs() <= d as f64 * 3e-10 + 1e-12 * a.abs(),
            "n={n} d={d}: {a} vs {b}"
        );
    }
    assert_eq!(marginal_bits(&[0, 7, 7], 7), 0.0);
    assert!(entropy_bits(&[0.0, 1.0]) < 0.0);
    assert_eq!(marginal_bits(&[1, 2], 0), 0.0);
}

/// Random consistent co-activation counts for `d` features over `n` rows (not from a real code:
/// each pair independently within its feasible range).
fn random_coact(d: usize, n: u64, rng: &mut Rng) -> Vec<u32> {
    let diag: Vec<u64> = (0..d).map(|_| rng.below(n + 1)).collect();
    let mut m = vec![0u32; d * d];
    for j in 0..d {
        m[j * d + j] = diag[j] as u32;
        for k in j + 1..d {
            let lo = (diag[j] + diag[k]).saturating_sub(n);
            let hi = diag[j].min(diag[k]);
            let v = (lo + rng.below(hi - lo + 1)) as u32;
            m[j * d + k] = v;
            m[k * d + j] = v;
        }
    }
    m
}

fn time_tree(d: usize) {
    let n = 100_000;
    let coact = random_coact(d, n, &mut Rng(8));
    let t0 = Instant::now();
    let t = tree_bits(&coact, n);
    let s = t0.elapsed().as_secs_f64();
    println!(
        "tree_bits d={d}: {s:.3} s ({} edges, {:.1} of {:.1} bits removed)",
        t.edges.len(),
        t.mutual_info_removed,
        t.marginal_bits
    );
    assert!(t.bits <= t.marginal_bits && t.bits >= 0.0);
    assert!(t.edges.len() < d);
}

/// Timing at d' = 2304 (printed with `--nocapture`, not asserted).
#[test]
fn tree_bits_timing() {
    time_tree(2304);
}

/// Timing at d' = 8192 (256 MiB of counts; run with `--ignored`).
#[test]
#[ignore]
fn tree_bits_timing_8192() {
    time_tree(8192);
}
