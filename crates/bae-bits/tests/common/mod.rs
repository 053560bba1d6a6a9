//! Shared test helpers: a small deterministic RNG, random code matrices with the awkward column
//! kinds (constant, duplicate, complementary), and plain dense reference implementations.
#![allow(dead_code)]

/// splitmix64: deterministic, dependency-free.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// uniform in [0, 1)
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Random dense 0/1 matrix (row-major `n x cols`, as f64) with per-column densities drawn from
/// a wide range, and a sprinkling of special columns: all 0, all 1, a copy of an earlier
/// column, the complement of an earlier column, a single 1, all but one.
pub fn random_codes(rng: &mut Rng, n: usize, cols: usize) -> Vec<f64> {
    let mut h = vec![0.0; n * cols];
    for j in 0..cols {
        let kind = if j < 6 { j } else { 6 + rng.below(14) };
        let src = if j > 0 { rng.below(j) } else { 0 };
        let p = match rng.below(4) {
            0 => rng.f64() * 0.05,
            1 => 1.0 - rng.f64() * 0.05,
            _ => rng.f64(),
        };
        let one_at = rng.below(n.max(1));
        for i in 0..n {
            let v = match kind {
                0 => 0.0,
                1 => 1.0,
                2 if j > 0 => h[i * cols + src],
                3 if j > 0 => 1.0 - h[i * cols + src],
                4 => (i == one_at) as u8 as f64,
                5 => (i != one_at) as u8 as f64,
                _ => (rng.f64() < p) as u8 as f64,
            };
            h[i * cols + j] = v;
        }
    }
    h
}

pub fn naive_counts(h: &[f64], n: usize, cols: usize) -> Vec<i64> {
    (0..cols)
        .map(|j| (0..n).map(|i| h[i * cols + j] as i64).sum())
        .collect()
}

pub fn naive_coact(h: &[f64], n: usize, cols: usize) -> Vec<i64> {
    let mut out = vec![0i64; cols * cols];
    for i in 0..n {
        let r = &h[i * cols..(i + 1) * cols];
        for j in 0..cols {
            if r[j] != 0.0 {
                for k in 0..cols {
                    out[j * cols + k] += r[k] as i64;
                }
            }
        }
    }
    out
}

/// Unbiased sample covariance of the columns, the textbook way (centre, multiply, divide by n-1).
pub fn naive_cov(h: &[f64], n: usize, cols: usize) -> Vec<f64> {
    let mean: Vec<f64> = naive_counts(h, n, cols)
        .iter()
        .map(|&c| c as f64 / n as f64)
        .collect();
    let mut c = vec![0.0; cols * cols];
    for i in 0..n {
        for j in 0..cols {
            let a = h[i * cols + j] - mean[j];
            for k in 0..cols {
                c[j * cols + k] += a * (h[i * cols + k] - mean[k]);
            }
        }
    }
    c.iter_mut().for_each(|v| *v /= (n - 1) as f64);
    c
}

/// `S_jk = sign(C_jk)` for j != k, decided exactly with integers; 0 on the diagonal.
pub fn naive_signs(h: &[f64], n: usize, cols: usize) -> Vec<i64> {
    let c = naive_counts(h, n, cols);
    let nn = naive_coact(h, n, cols);
    let mut s = vec![0i64; cols * cols];
    for j in 0..cols {
        for k in 0..cols {
            if j != k {
                s[j * cols + k] = (n as i64 * nn[j * cols + k] - c[j] * c[k]).signum();
            }
        }
    }
    s
}

/// `H S` with dense integer arithmetic.
pub fn naive_hs(h: &[f64], n: usize, cols: usize, s: &[i64]) -> Vec<i64> {
    let mut out = vec![0i64; n * cols];
    for i in 0..n {
        for j in 0..cols {
            if h[i * cols + j] != 0.0 {
                for k in 0..cols {
                    out[i * cols + k] += s[j * cols + k];
                }
            }
        }
    }
    out
}

/// `(2/(n-1)) (H - 1 pᵀ) S` in plain f64.
pub fn naive_cov_grad(h: &[f64], n: usize, cols: usize, s: &[i64]) -> Vec<f64> {
    let p: Vec<f64> = naive_counts(h, n, cols)
        .iter()
        .map(|&c| c as f64 / n as f64)
        .collect();
    let mut out = vec![0.0; n * cols];
    for i in 0..n {
        for j in 0..cols {
            let a = h[i * cols + j] - p[j];
            for k in 0..cols {
                out[i * cols + k] += a * s[j * cols + k] as f64;
            }
        }
    }
    let f = 2.0 / (n - 1) as f64;
    out.iter_mut().for_each(|v| *v *= f);
    out
}

/// max |a - b| / max(max |b|, tiny)
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// Ragged shapes: around word edges, tiny, and one that needs several word chunks (n > 4096).
pub const SHAPES: &[(usize, usize)] = &[
    (2, 1),
    (2, 5),
    (3, 64),
    (63, 65),
    (64, 64),
    (65, 63),
    (127, 130),
    (128, 127),
    (200, 129),
    (300, 127),
    (5, 300),
    (512, 70),
    (4200, 67),
];
