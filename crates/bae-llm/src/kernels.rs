//! CPU kernels of the forward pass on plain row-major f32 slices.
//!
//! Matrix products go straight to the `gemm` crate (the kernel candle's CPU matmul uses), with
//! its AVX-512 path enabled. Going through candle's op-by-op API instead cost ~30 % more here:
//! every intermediate is freshly allocated and zero-filled and every head split is a copy.
//! Element-wise work is split over rows with rayon.

use rayon::prelude::*;

/// A matrix view into a slice: element (r, c) is at `r * row_stride + c * col_stride`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols)
    }

    pub fn strided(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        Self::general(data, rows, cols, row_stride, 1)
    }

    pub fn general(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        let last = (rows.max(1) - 1) * row_stride + (cols.max(1) - 1) * col_stride;
        assert!(
            rows == 0 || cols == 0 || last < data.len(),
            "matrix view out of bounds"
        );
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
}

/// `dst = lhs @ rhs` (or `dst += lhs @ rhs` with `accumulate`); `dst` is row-major with
/// `dst_stride` between rows. `threads > 1` lets gemm split the work over rayon's pool.
pub fn matmul(
    dst: &mut [f32],
    dst_stride: usize,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    accumulate: bool,
    threads: usize,
) {
    let (m, n) = (lhs.rows, rhs.cols);
    assert!(
        m == 0 || n == 0 || (m - 1) * dst_stride + n <= dst.len(),
        "destination too small"
    );
    // SAFETY: the assert keeps the m x n destination inside `dst`, which is borrowed mutably.
    unsafe { matmul_raw(dst.as_mut_ptr(), dst_stride, lhs, rhs, accumulate, threads) }
}

/// [`matmul`] into a raw destination.
///
/// # Safety
/// `dst` must be valid for reads and writes of elements `r * dst_stride + c` for `r < lhs.rows`,
/// `c < rhs.cols`, and nothing else may access those elements during the call.
pub unsafe fn matmul_raw(
    dst: *mut f32,
    dst_stride: usize,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    accumulate: bool,
    threads: usize,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "inner dimensions differ");
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: MatRef's constructor checked that every element of lhs/rhs lies in its slice; the
    // caller vouches for dst.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        )
    }
}

/// `out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight`, row by row (as HF's LlamaRMSNorm, in f32).
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let d = weight.len();
    out.par_chunks_mut(d)
        .zip(x.par_chunks(d))
        .for_each(|(o, xr)| {
            let ms = xr.iter().map(|v| v * v).sum::<f32>() / d as f32;
            let inv = 1.0 / (ms + eps).sqrt();
            for ((o, &v), &w) in o.iter_mut().zip(xr).zip(weight) {
                *o = w * (v * inv);
            }
        });
}

/// Interleaved RoPE in place on the first `n_heads` heads of each row (row r is at position
/// `r % seq`), then multiplies by `scale`. `cos`/`sin` are [positions, head_dim / 2].
#[allow(clippy::too_many_arguments)]
pub fn rope_inplace(
    buf: &mut [f32],
    row_stride: usize,
    seq: usize,
    first_col: usize,
    n_heads: usize,
    head_dim: usize,
    cos: &[f32],
    sin: &[f32],
    scale: f32,
) {
    rope_inplace_from(
        buf, row_stride, seq, 0, first_col, n_heads, head_dim, cos, sin, scale,
    );
}

/// [`rope_inplace`] with row r at position `pos0 + r % seq`: new tokens appended after `pos0`
/// cached ones (the same arithmetic; `pos0 = 0` is `rope_inplace` bit for bit).
#[allow(clippy::too_many_arguments)]
pub fn rope_inplace_from(
    buf: &mut [f32],
    row_stride: usize,
    seq: usize,
    pos0: usize,
    first_col: usize,
    n_heads: usize,
    head_dim: usize,
    cos: &[f32],
    sin: &[f32],
    scale: f32,
) {
    let half = head_dim / 2;
    assert!(
        (pos0 + seq.min(buf.len() / row_stride.max(1))) * half <= cos.len(),
        "RoPE position beyond the cos/sin tables"
    );
    buf.par_chunks_mut(row_stride)
        .enumerate()
        .for_each(|(r, row)| {
            let pos = pos0 + r % seq;
            let (c, s) = (
                &cos[pos * half..(pos + 1) * half],
                &sin[pos * half..(pos + 1) * half],
            );
            for h in 0..n_heads {
                let head = &mut row[first_col + h * head_dim..first_col + (h + 1) * head_dim];
                for (pair, (&ci, &si)) in head.chunks_exact_mut(2).zip(c.iter().zip(s)) {
                    let (x0, x1) = (pair[0], pair[1]);
                    pair[0] = (x0 * ci - x1 * si) * scale;
                    pair[1] = (x0 * si + x1 * ci) * scale;
                }
            }
        });
}

/// Layout of the fused QKV buffer for [`attention`].
pub struct AttnShape {
    pub batch: usize,
    pub seq: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

/// Causal grouped-query attention.
///
/// `qkv` is [batch * seq, (n_heads + 2 n_kv_heads) * head_dim] with Q (already rotated and
/// scaled), K (rotated) and V side by side; `out` is [batch * seq, n_heads * head_dim].
/// Query head h reads KV head h / (n_heads / n_kv_heads), as in HF's `repeat_kv`.
pub fn attention(qkv: &[f32], s: &AttnShape, out: &mut [f32]) {
    let (t, hd) = (s.seq, s.head_dim);
    let qkv_w = (s.n_heads + 2 * s.n_kv_heads) * hd;
    let out_w = s.n_heads * hd;
    let rep = s.n_heads / s.n_kv_heads;
    assert!(out.len() >= s.batch * t * out_w && qkv.len() >= s.batch * t * qkv_w);
    // One task per (window, head); each writes its own [seq, head_dim] block of `out`.
    let mut blocks: Vec<(usize, usize, HeadOut)> = Vec::with_capacity(s.batch * s.n_heads);
    let out_ptr = HeadOut(out.as_mut_ptr());
    for b in 0..s.batch {
        for h in 0..s.n_heads {
            blocks.push((b, h, out_ptr));
        }
    }
    blocks.into_par_iter().for_each_init(
        || vec![0f32; t * t],
        |scores, (b, h, dst)| {
            let g = h / rep;
            let base = b * t * qkv_w;
            let q = MatRef::strided(&qkv[base + h * hd..], t, hd, qkv_w);
            let k_off = base + (s.n_heads + g) * hd;
            let v_off = base + (s.n_heads + s.n_kv_heads + g) * hd;
            let k = MatRef::strided(&qkv[k_off..], t, hd, qkv_w);
            // Full seq x seq scores (the masked half is cheap at these sizes), then a causal
            // softmax that ignores everything right of the diagonal.
            matmul(scores, t, q, k.t(), false, 1);
            for (i, row) in scores.chunks_exact_mut(t).enumerate() {
                causal_softmax_row(row, i + 1);
            }
            let v = MatRef::strided(&qkv[v_off..], t, hd, qkv_w);
            let p = MatRef::new(scores, t, t);
            // SAFETY: task (b, h) writes only rows b*t..(b+1)*t, columns h*hd..(h+1)*hd of `out`
            // (in bounds by the assert above), disjoint from every other task's block, and
            // `out` is not otherwise touched until all tasks are done.
            unsafe { matmul_raw(dst.0.add(b * t * out_w + h * hd), out_w, p, v, false, 1) };
        },
    );
}

/// Layout for [`attention_cached`]: `n_new` queries at positions `past..past + n_new` of one
/// sequence, against the keys and values of positions `0..past + n_new`.
pub struct CachedAttnShape {
    pub past: usize,
    pub n_new: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

/// Causal grouped-query attention of new tokens over a KV cache (one sequence).
///
/// `q` holds the `n_new` query rows (rotated and scaled) with `q_stride` between rows, head h at
/// columns `h * head_dim..`; `k` and `v` are [past + n_new, n_kv_heads * head_dim] (rotated keys
/// and values of every position so far, the new ones last); `out` is
/// [n_new, n_heads * head_dim]. Query i (position `past + i`) sees keys `0..=past + i`.
/// One rayon task per head, as in [`attention`].
pub fn attention_cached(
    q: &[f32],
    q_stride: usize,
    k: &[f32],
    v: &[f32],
    s: &CachedAttnShape,
    out: &mut [f32],
) {
    let (n, hd) = (s.n_new, s.head_dim);
    let total = s.past + n;
    let kv_w = s.n_kv_heads * hd;
    let out_w = s.n_heads * hd;
    let rep = s.n_heads / s.n_kv_heads;
    if n == 0 {
        return;
    }
    assert!(
        out.len() >= n * out_w
            && q.len() >= (n - 1) * q_stride + out_w
            && k.len() >= total * kv_w
            && v.len() >= total * kv_w,
        "attention_cached: buffers too small"
    );
    let out_ptr = HeadOut(out.as_mut_ptr());
    (0..s.n_heads).into_par_iter().for_each_init(
        || vec![0f32; n * total],
        |scores, h| {
            let dst = out_ptr;
            let g = h / rep;
            let qm = MatRef::strided(&q[h * hd..], n, hd, q_stride);
            let km = MatRef::strided(&k[g * hd..], total, hd, kv_w);
            matmul(scores, total, qm, km.t(), false, 1);
            for (i, row) in scores.chunks_exact_mut(total).enumerate() {
                causal_softmax_row(row, s.past + i + 1);
            }
            let vm = MatRef::strided(&v[g * hd..], total, hd, kv_w);
            let p = MatRef::new(scores, n, total);
            // SAFETY: task h writes only columns h*hd..(h+1)*hd of the n rows of `out` (in
            // bounds by the assert above), disjoint from every other task's columns, and `out`
            // is not otherwise touched until all tasks are done.
            unsafe { matmul_raw(dst.0.add(h * hd), out_w, p, vm, false, 1) };
        },
    );
}

/// Raw output pointer shared by the attention tasks (each writes a disjoint block).
#[derive(Clone, Copy)]
struct HeadOut(*mut f32);
// SAFETY: see `attention`: the tasks write disjoint regions.
unsafe impl Send for HeadOut {}
unsafe impl Sync for HeadOut {}

/// Softmax over `row[..n]`; entries from `n` on are set to 0 (masked).
fn causal_softmax_row(row: &mut [f32], n: usize) {
    let (live, masked) = row.split_at_mut(n);
    let max = live.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    live.iter_mut().for_each(|v| *v = exp(*v - max));
    let sum: f32 = live.iter().sum();
    let inv = 1.0 / sum;
    live.iter_mut().for_each(|v| *v *= inv);
    masked.fill(0.0);
}

/// `out[r, j] = silu(gu[r, j]) * gu[r, f + j]` for gate and up projections side by side.
pub fn swiglu(gu: &[f32], f: usize, out: &mut [f32]) {
    out.par_chunks_mut(f)
        .zip(gu.par_chunks(2 * f))
        .for_each(|(o, row)| {
            let (gate, up) = row.split_at(f);
            for ((o, &g), &u) in o.iter_mut().zip(gate).zip(up) {
                *o = g / (1.0 + exp(-g)) * u;
            }
        });
}

/// e^x in f32 within 1 ulp (0.97 at worst on a fine grid of [-87, 88]), branch-free so that loops
/// over it vectorise (libm's `expf` is a scalar call: 8 % of the extraction's CPU time went there).
/// x = n ln2 + r with |r| <= ln2/2 (Cody-Waite, ln2 in two parts), e^r by a degree-7 polynomial,
/// times 2^n built in the exponent bits. Inputs are clamped to [-87.3, 88.3]: below, the result is
/// the smallest normal float instead of 0 (harmless inside a softmax or a sigmoid); above, it stays
/// finite.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // adding then subtracting 1.5 * 2^23 rounds to the nearest integer (|t| < 2^22)
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let shifted = x * LOG2E + ROUND;
    // the integer n sits in the low mantissa bits of `shifted`: no float-to-int conversion needed
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // minimax fit of (e^r - 1 - r) / r^2 on [-ln2/2, ln2/2] (the classic Cephes coefficients)
    let q = 1.987_569_2e-4;
    let q = q * r + 1.398_2e-3;
    let q = q * r + 8.333_452e-3;
    let q = q * r + 4.166_579_6e-2;
    let q = q * r + 0.166_666_65;
    let q = q * r + 0.5;
    let p = q * r * r + r + 1.0;
    p * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_is_within_one_and_a_half_ulp_of_the_true_value() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let got = super::exp(x) as f64;
            let want = (x as f64).exp();
            // one ulp of the true value, in f32
            let ulp = (want as f32).to_bits();
            let ulp = (f32::from_bits(ulp + 1) - f32::from_bits(ulp)) as f64;
            worst = worst.max((got - want).abs() / ulp);
            x += 0.000_37;
        }
        eprintln!("exp: worst error {worst:.2} ulp");
        assert!(worst <= 1.5, "worst error {worst} ulp");
        assert_eq!(super::exp(0.0), 1.0);
        assert!(super::exp(-1e4) >= 0.0 && super::exp(-1e4) < 1e-37);
        assert!(super::exp(1e4).is_finite());
    }
}
