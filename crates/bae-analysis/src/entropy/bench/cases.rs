//! The benchmark's hidden bits: groups of bits with a known joint distribution, the cases built
//! from them, their exact entropies, and the generator of the synthetic rows (each hidden bit adds
//! its own random Gaussian direction, plus isotropic Gaussian noise, as `bae synth` does).

use bae_bits::PackedRows;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Bernoulli entropy in bits, `0·log 0 = 0`.
pub fn h2(p: f64) -> f64 {
    let t = |q: f64| if q > 0.0 { -q * q.log2() } else { 0.0 };
    t(p) + t(1.0 - p)
}

/// A group of hidden bits with a known joint distribution; groups are independent of each other.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Group {
    /// one bit, on with probability `p`
    Bit { p: f64 },
    /// two bits: the first on with probability `p`; the second copies it with probability `q`
    /// and is its negation otherwise
    Copy { p: f64, q: f64 },
    /// `m` bits, exactly one of them on, each equally likely
    OneHot { m: usize },
    /// a parent bit on with probability `p` and `k` children, each on with probability `on`
    /// when the parent is on and `off` when it is off, independently of each other given it
    Parent { p: f64, k: usize, on: f64, off: f64 },
    /// three bits: two fair bits and their exclusive or (pairwise independent, jointly 2 bits)
    Xor,
}

impl Group {
    /// Number of bits of the group.
    pub fn width(&self) -> usize {
        match *self {
            Group::Bit { .. } => 1,
            Group::Copy { .. } => 2,
            Group::OneHot { m } => m,
            Group::Parent { k, .. } => k + 1,
            Group::Xor => 3,
        }
    }

    /// The exact joint entropy of the group's bits in bits (closed form).
    pub fn entropy_bits(&self) -> f64 {
        match *self {
            Group::Bit { p } => h2(p),
            // the first bit, then whether the second copies it
            Group::Copy { p, q } => h2(p) + h2(q),
            Group::OneHot { m } => (m as f64).log2(),
            // the parent, then each child given the parent
            Group::Parent { p, k, on, off } => {
                h2(p) + k as f64 * (p * h2(on) + (1.0 - p) * h2(off))
            }
            Group::Xor => 2.0,
        }
    }

    /// The probability of every pattern of the group's bits, by enumeration of the generative
    /// model: entry `s` is P(bit j = bit j of `s` for every j), `2^width` entries.
    pub fn pattern_probs(&self) -> Vec<f64> {
        let w = self.width();
        assert!(w <= 20, "pattern_probs: group of {w} bits is too wide");
        let bern = |on: bool, p: f64| if on { p } else { 1.0 - p };
        (0..1usize << w)
            .map(|s| {
                let b = |j: usize| s >> j & 1 == 1;
                match *self {
                    Group::Bit { p } => bern(b(0), p),
                    Group::Copy { p, q } => bern(b(0), p) * bern(b(0) == b(1), q),
                    Group::OneHot { m } => {
                        if s.count_ones() == 1 {
                            1.0 / m as f64
                        } else {
                            0.0
                        }
                    }
                    Group::Parent { p, k, on, off } => {
                        let rate = if b(0) { on } else { off };
                        (1..=k).fold(bern(b(0), p), |acc, j| acc * bern(b(j), rate))
                    }
                    Group::Xor => {
                        if b(2) == (b(0) ^ b(1)) {
                            0.25
                        } else {
                            0.0
                        }
                    }
                }
            })
            .collect()
    }

    /// Draws one sample of the group's bits into `out` (`width` entries).
    pub fn sample(&self, rng: &mut ChaCha8Rng, out: &mut [bool]) {
        let mut u = || rng.random::<f64>();
        match *self {
            Group::Bit { p } => out[0] = u() < p,
            Group::Copy { p, q } => {
                out[0] = u() < p;
                out[1] = if u() < q { out[0] } else { !out[0] };
            }
            Group::OneHot { m } => {
                let k = ((u() * m as f64) as usize).min(m - 1);
                out.iter_mut().enumerate().for_each(|(j, b)| *b = j == k);
            }
            Group::Parent { p, k, on, off } => {
                out[0] = u() < p;
                let rate = if out[0] { on } else { off };
                for b in &mut out[1..=k] {
                    *b = u() < rate;
                }
            }
            Group::Xor => {
                out[0] = u() < 0.5;
                out[1] = u() < 0.5;
                out[2] = out[0] ^ out[1];
            }
        }
    }

    fn check(&self) -> Result<(), String> {
        let prob = |v: f64| (0.0..=1.0).contains(&v);
        let ok = match *self {
            Group::Bit { p } => prob(p),
            Group::Copy { p, q } => prob(p) && prob(q),
            Group::OneHot { m } => (2..=20).contains(&m),
            Group::Parent { p, k, on, off } => {
                prob(p) && prob(on) && prob(off) && (1..20).contains(&k)
            }
            Group::Xor => true,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("impossible group {self:?}"))
        }
    }
}

/// The pairwise statistics a group's distribution implies: rates `P(j)` and `P(j, k)`.
fn moments(probs: &[f64], w: usize) -> (Vec<f64>, Vec<f64>) {
    let mut rate = vec![0.0; w];
    let mut both = vec![0.0; w * w];
    for (s, &p) in probs.iter().enumerate() {
        for j in 0..w {
            if s >> j & 1 == 1 {
                rate[j] += p;
                for k in 0..w {
                    if s >> k & 1 == 1 {
                        both[j * w + k] += p;
                    }
                }
            }
        }
    }
    (rate, both)
}

/// Mutual information in bits of two bits with rates `a`, `b` and `P(both) = c`.
fn pair_mi(a: f64, b: f64, c: f64) -> f64 {
    let cells = [
        (c, a, b),
        (a - c, a, 1.0 - b),
        (b - c, 1.0 - a, b),
        (1.0 - a - b + c, 1.0 - a, 1.0 - b),
    ];
    cells
        .iter()
        .map(|&(pxy, px, py)| {
            if pxy > 1e-300 {
                pxy * (pxy / (px * py)).log2()
            } else {
                0.0
            }
        })
        .sum::<f64>()
        .max(0.0)
}

/// A benchmark case: a named list of independent groups (the hidden bits are the groups' bits,
/// in order).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Case {
    pub name: String,
    pub description: String,
    pub groups: Vec<Group>,
}

impl Case {
    pub fn new(name: &str, description: &str, groups: Vec<Group>) -> Result<Case, String> {
        if groups.is_empty() {
            return Err(format!("case {name}: no groups"));
        }
        for g in &groups {
            g.check().map_err(|e| format!("case {name}: {e}"))?;
        }
        Ok(Case {
            name: name.into(),
            description: description.into(),
            groups,
        })
    }

    /// r, the number of hidden bits.
    pub fn bits(&self) -> usize {
        self.groups.iter().map(Group::width).sum()
    }

    /// The exact joint entropy of the hidden bits, bits.
    pub fn true_entropy_bits(&self) -> f64 {
        self.groups.iter().map(Group::entropy_bits).sum()
    }

    /// P(bit i is on) of every hidden bit, in order.
    pub fn rates(&self) -> Vec<f64> {
        self.groups
            .iter()
            .flat_map(|g| moments(&g.pattern_probs(), g.width()).0)
            .collect()
    }

    /// What the marginal sum converges to on the hidden bits: `Σ_i H(P(bit i))`.
    pub fn limit_marginal_bits(&self) -> f64 {
        self.rates().into_iter().map(h2).sum()
    }

    /// What the Chow–Liu tree bound converges to on the hidden bits: per group, the marginal sum
    /// less the mutual information along the maximum-weight spanning tree of its bits (bits of
    /// different groups are independent).
    pub fn limit_tree_bits(&self) -> f64 {
        self.groups
            .iter()
            .map(|g| {
                let w = g.width();
                let (rate, both) = moments(&g.pattern_probs(), w);
                let marginal: f64 = rate.iter().map(|&p| h2(p)).sum();
                let mi = |j: usize, k: usize| pair_mi(rate[j], rate[k], both[j * w + k]);
                // Prim's algorithm on the w bits
                let mut in_tree = vec![false; w];
                let mut best: Vec<f64> = (0..w).map(|k| mi(0, k)).collect();
                in_tree[0] = true;
                let mut removed = 0.0;
                for _ in 1..w {
                    let next = (0..w)
                        .filter(|&k| !in_tree[k])
                        .max_by(|&a, &b| best[a].total_cmp(&best[b]))
                        .expect("a bit is left");
                    removed += best[next];
                    in_tree[next] = true;
                    for k in 0..w {
                        if !in_tree[k] {
                            best[k] = best[k].max(mi(next, k));
                        }
                    }
                }
                marginal - removed
            })
            .sum()
    }
}

/// Every case of the benchmark, in order: independent fair bits (the paper's check), sparse
/// independent bits, and correlated groups.
pub fn all_cases() -> Vec<Case> {
    let fair = |r: usize| {
        Case::new(
            &format!("fair-{r}"),
            &format!("{r} independent fair bits (p = 0.5)"),
            vec![Group::Bit { p: 0.5 }; r],
        )
    };
    let sparse = |p: f64| {
        Case::new(
            &format!("sparse-{p}"),
            &format!("16 independent bits with p = {p}"),
            vec![Group::Bit { p }; 16],
        )
    };
    [
        fair(4),
        fair(8),
        fair(16),
        fair(32),
        sparse(0.005),
        sparse(0.02),
        sparse(0.1),
        Case::new(
            "copy",
            "8 pairs: a fair bit and a copy of it that flips with probability 0.1",
            vec![Group::Copy { p: 0.5, q: 0.9 }; 8],
        ),
        Case::new(
            "one-hot",
            "4 groups of 4 bits, exactly one bit of each group on",
            vec![Group::OneHot { m: 4 }; 4],
        ),
        Case::new(
            "parent",
            "4 groups: a fair parent bit and 3 children, each on with p 0.8 if the parent is on, 0.1 if off",
            vec![
                Group::Parent {
                    p: 0.5,
                    k: 3,
                    on: 0.8,
                    off: 0.1
                };
                4
            ],
        ),
        Case::new(
            "xor",
            "5 triples: two fair bits and their exclusive or",
            vec![Group::Xor; 5],
        ),
    ]
    .into_iter()
    .map(|c| c.expect("the built-in cases are valid"))
    .collect()
}

/// The cases of `--quick`.
pub const QUICK_CASES: &[&str] = &["fair-4", "sparse-0.1", "copy", "one-hot"];

/// The cases named in `list` ("a,b,c"; "all": every case; also the families "fair", "sparse",
/// "correlated"), in the benchmark's order; an unknown name is one line naming the known ones.
pub fn select_cases(list: &str) -> Result<Vec<Case>, String> {
    let all = all_cases();
    let mut keep = vec![false; all.len()];
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let hits: Vec<usize> = match name {
            "all" => (0..all.len()).collect(),
            "fair" | "sparse" => (0..all.len())
                .filter(|&i| all[i].name.starts_with(&format!("{name}-")))
                .collect(),
            "correlated" => (0..all.len())
                .filter(|&i| {
                    !all[i].name.starts_with("fair-") && !all[i].name.starts_with("sparse-")
                })
                .collect(),
            _ => (0..all.len()).filter(|&i| all[i].name == name).collect(),
        };
        if hits.is_empty() {
            let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
            return Err(format!(
                "--cases: unknown case '{name}' (known: {}, or all, fair, sparse, correlated)",
                names.join(", ")
            ));
        }
        hits.into_iter().for_each(|i| keep[i] = true);
    }
    let cases: Vec<Case> = all
        .into_iter()
        .zip(keep)
        .filter_map(|(c, k)| k.then_some(c))
        .collect();
    if cases.is_empty() {
        return Err("--cases: no case named".into());
    }
    Ok(cases)
}

/// Synthetic rows of a case and the hidden bits behind them.
pub struct SynthRows {
    /// input width
    pub d: usize,
    /// `n × d`, row-major
    pub x: Vec<f32>,
    /// the hidden bits, `n × r`
    pub bits: PackedRows,
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u = rng.random::<f64>().max(1e-300);
    let v = rng.random::<f64>();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// `n` rows of width `d`: each hidden bit that is on adds its own direction (entries i.i.d.
/// N(0, 1), drawn once per case), then every entry gets N(0, `noise`²). With `center` every row
/// starts at minus the rows' expected value `Σ_i P(bit i) u_i` (exact, not estimated), so the
/// rows have mean 0; without it the rows are `bae synth`'s, around `Σ_i P(bit i) u_i`. Seeded.
pub fn generate(case: &Case, n: usize, d: usize, noise: f64, center: bool, seed: u64) -> SynthRows {
    let r = case.bits();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dirs: Vec<f32> = (0..r * d).map(|_| normal(&mut rng) as f32).collect();
    let mut origin = vec![0f64; d];
    if center {
        for (k, p) in case.rates().into_iter().enumerate() {
            for (o, &u) in origin.iter_mut().zip(&dirs[k * d..(k + 1) * d]) {
                *o -= p * u as f64;
            }
        }
    }
    let origin: Vec<f32> = origin.into_iter().map(|v| v as f32).collect();
    let mut x: Vec<f32> = origin.iter().copied().cycle().take(n * d).collect();
    let mut bits = PackedRows::zeros(n, r);
    let mut on = vec![false; r];
    for (i, row) in x.chunks_mut(d).enumerate() {
        let mut at = 0;
        for g in &case.groups {
            let w = g.width();
            g.sample(&mut rng, &mut on[at..at + w]);
            at += w;
        }
        for (j, _) in on.iter().enumerate().filter(|(_, b)| **b) {
            bits.set(i, j, true);
            for (v, &u) in row.iter_mut().zip(&dirs[j * d..(j + 1) * d]) {
                *v += u;
            }
        }
        for v in row.iter_mut() {
            *v += (noise * normal(&mut rng)) as f32;
        }
    }
    SynthRows { d, x, bits }
}
