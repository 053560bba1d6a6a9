//! One autoencoder step: forward (Z, codes, reconstruction), the loss terms, and the gradients of
//! every parameter, for the BAE (both estimators) and the SAE baselines. Matrix products go through
//! a multi-threaded GEMM; bit statistics (firing rates, entropy, covariance) through `bae-bits`.

use crate::{Arch, Estimator, Float, Params};
use bae_bits::{CovarianceTerm, PackedRows};
use rayon::prelude::*;

/// Result of the forward pass on a batch of `n` rows.
#[derive(Clone, Debug)]
pub struct Forward<T> {
    pub n: usize,
    /// pre-activation Z = X W_enc + b_enc, n x d'
    pub z: Vec<T>,
    /// decoder input, n x d': the 0/1 codes H for the BAE, the activations a for SAEs
    pub act: Vec<T>,
    /// which entries are active (H for the BAE, a != 0 for SAEs), row-packed
    pub codes: PackedRows,
    /// where dL/da reaches Z (SAEs only; equal to `codes` for the BAE)
    pub pass: PackedRows,
    /// reconstruction X^ = act W_dec + b_dec, n x d
    pub x_hat: Vec<T>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Losses {
    pub mse: f64,
    /// summed Bernoulli entropy of the batch's features, in bits (BAE)
    pub entropy: f64,
    /// sum_{j != k} |cov(H)_jk| (BAE)
    pub cov: f64,
    /// sum |a| (SAEs)
    pub l1: f64,
    /// batch FVU Σ‖x − x̂‖² / Σ‖x − x̄‖² (computed when `StepOptions::fvu_loss` asks for it)
    pub fvu: f64,
    /// (1/d') Σ_j KL(p* ‖ p_j) in nats (BAE with a rate target)
    pub rate_term: f64,
    /// the optimised objective, with the weights and the entropy switch applied
    pub total: f64,
}

/// Gradients and the intermediate upstream gradients of one step.
#[derive(Clone, Debug)]
pub struct Backward<T> {
    /// dL/dX^ = 2 (X^ - X) / (n d)
    pub dl_dxhat: Vec<T>,
    /// dL/d(decoder input): G = dL/dH for the BAE (all terms summed), dL/da for SAEs
    pub dl_dact: Vec<T>,
    /// dL/dZ after the estimator (BAE) or the activation's mask (SAEs)
    pub dl_dz: Vec<T>,
    pub grads: Params<T>,
}

/// Everything one training step computes before the optimiser.
#[derive(Clone, Debug)]
pub struct Step<T> {
    pub forward: Forward<T>,
    pub losses: Losses,
    /// firing rate of each feature on this batch
    pub rates: Vec<f64>,
    /// exact covariance term, its sign masks and firing counts (BAE with n >= 2)
    pub cov: Option<CovarianceTerm>,
    pub backward: Backward<T>,
}

/// `out[i, :] = bias` for every row, so a GEMM with beta = 1 adds the bias.
fn broadcast_rows<T: Float>(bias: &[T], rows: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(rows * bias.len());
    for _ in 0..rows {
        out.extend_from_slice(bias);
    }
    out
}

/// Sum over rows of a row-major `rows x cols` matrix. Partial sums over fixed blocks of rows are
/// combined in order, so the result is the same bit for bit whatever the thread count or scheduling.
pub fn column_sums<T: Float>(m: &[T], cols: usize) -> Vec<T> {
    let partials: Vec<Vec<T>> = m
        .par_chunks(cols * 64)
        .map(|block| {
            let mut acc = vec![T::ZERO; cols];
            for row in block.chunks(cols) {
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += v;
                }
            }
            acc
        })
        .collect();
    let mut out = vec![T::ZERO; cols];
    for p in partials {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
    out
}

/// Z = X W_enc + b_enc.
pub fn encode_pre<T: Float>(p: &Params<T>, x: &[T], n: usize) -> Vec<T> {
    assert_eq!(x.len(), n * p.d, "x must be n x d");
    let mut z = broadcast_rows(&p.b_enc, n);
    T::gemm(
        n,
        p.d,
        p.d_code,
        T::ONE,
        x,
        false,
        &p.w_enc,
        false,
        T::ONE,
        &mut z,
    );
    z
}

/// X^ = act W_dec + b_dec.
pub fn decode<T: Float>(p: &Params<T>, act: &[T], n: usize) -> Vec<T> {
    let mut x_hat = broadcast_rows(&p.b_dec, n);
    T::gemm(
        n,
        p.d_code,
        p.d,
        T::ONE,
        act,
        false,
        &p.w_dec,
        false,
        T::ONE,
        &mut x_hat,
    );
    x_hat
}

/// Apply the architecture's activation to Z: returns (act, active pattern, gradient mask).
pub fn activate<T: Float>(
    z: &[T],
    n: usize,
    dc: usize,
    arch: &Arch,
) -> (Vec<T>, PackedRows, PackedRows) {
    match *arch {
        Arch::Bae { .. } => {
            let codes = PackedRows::encode_positive(z, n, dc);
            // the decoder input H as 0/1 floats, straight from Z (same rule: strictly positive)
            let act = z
                .par_iter()
                .map(|&v| if v > T::ZERO { T::ONE } else { T::ZERO })
                .collect();
            (act, codes.clone(), codes)
        }
        Arch::ReluL1 { .. } => masked(z, n, dc, |_, v| v > T::ZERO),
        Arch::JumpRelu { theta, .. } => {
            let th = T::from_f64(theta);
            masked(z, n, dc, move |_, v| v > th)
        }
        Arch::TopK { k, .. } => {
            let k = k.clamp(1, dc);
            let kth: Vec<T> = z
                .par_chunks(dc)
                .map(|row| {
                    let mut r = row.to_vec();
                    // k-th largest: sort descending up to position k-1
                    let (_, v, _) =
                        r.select_nth_unstable_by(k - 1, |a, b| b.partial_cmp(a).expect("finite z"));
                    *v
                })
                .collect();
            masked(z, n, dc, move |i, v| v >= kth[i])
        }
    }
}

/// a = z where keep(row, z) else 0; the kept pattern is the gradient mask, a != 0 the active pattern.
fn masked<T: Float>(
    z: &[T],
    n: usize,
    dc: usize,
    keep: impl Fn(usize, T) -> bool + Sync,
) -> (Vec<T>, PackedRows, PackedRows) {
    let mut act = vec![T::ZERO; n * dc];
    let mut pass = vec![T::ZERO; n * dc];
    act.par_chunks_mut(dc)
        .zip(pass.par_chunks_mut(dc))
        .zip(z.par_chunks(dc))
        .enumerate()
        .for_each(|(i, ((a, m), zr))| {
            for j in 0..dc {
                if keep(i, zr[j]) {
                    a[j] = zr[j];
                    m[j] = T::ONE;
                }
            }
        });
    let codes = PackedRows::from_dense01(&act, n, dc);
    let pass = PackedRows::from_dense01(&pass, n, dc);
    (act, codes, pass)
}

pub fn forward<T: Float>(p: &Params<T>, x: &[T], n: usize, arch: &Arch) -> Forward<T> {
    let z = encode_pre(p, x, n);
    let (act, codes, pass) = activate(&z, n, p.d_code, arch);
    let x_hat = decode(p, &act, n);
    Forward {
        n,
        z,
        act,
        codes,
        pass,
        x_hat,
    }
}

/// Element-mean squared error, accumulated in f64 over fixed blocks combined in order (deterministic).
pub fn mse<T: Float>(x: &[T], x_hat: &[T]) -> f64 {
    let partials: Vec<f64> = x
        .par_chunks(4096)
        .zip(x_hat.par_chunks(4096))
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(&u, &v)| {
                    let e = v.to_f64() - u.to_f64();
                    e * e
                })
                .sum::<f64>()
        })
        .collect();
    partials.iter().sum::<f64>() / x.len() as f64
}

/// Additions to the official objective; the default adds nothing (`step` is the official step).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepOptions {
    /// Scale-free reconstruction: the MSE term becomes the batch FVU Σ‖x − x̂‖² / Σ‖x − x̄‖²
    /// (the denominator held constant), so the other weights mean the same at any activation scale.
    pub fvu_loss: bool,
    /// BAE only: `(p*, λ)` adds λ · (1/d') Σ_j KL(p* ‖ p_j), pulling every firing rate towards p*.
    pub rate_target: Option<(f64, f64)>,
}

/// Forward, loss terms and gradients of one step. `entropy_on` is the official entropy-start switch.
pub fn step<T: Float>(p: &Params<T>, x: &[T], n: usize, arch: &Arch, entropy_on: bool) -> Step<T> {
    step_with(p, x, n, arch, entropy_on, &StepOptions::default())
}

/// Σ over rows of ‖x − x̄‖², x̄ the batch mean (f64): the FVU loss's denominator.
pub fn batch_variance_sum<T: Float>(x: &[T], n: usize, d: usize) -> f64 {
    let mut sum = vec![0.0f64; d];
    let mut sq = vec![0.0f64; d];
    for row in x.chunks(d).take(n) {
        for ((s, q), &v) in sum.iter_mut().zip(sq.iter_mut()).zip(row) {
            let v = v.to_f64();
            *s += v;
            *q += v * v;
        }
    }
    sum.iter().zip(&sq).map(|(s, q)| q - s * s / n as f64).sum()
}

/// [`step`] with the additions of `opts`.
pub fn step_with<T: Float>(
    p: &Params<T>,
    x: &[T],
    n: usize,
    arch: &Arch,
    entropy_on: bool,
    opts: &StepOptions,
) -> Step<T> {
    let (d, dc) = (p.d, p.d_code);
    let fwd = forward(p, x, n, arch);
    let columns = fwd.codes.to_columns();
    let rates = bae_bits::firing_rates(&columns);
    let mut losses = Losses {
        mse: mse(x, &fwd.x_hat),
        ..Losses::default()
    };

    // dL/dX^ = 2 (X^ - X) / (n d), in the working precision as torch computes it; for the FVU
    // loss 2 (X^ - X) / Σ‖x − x̄‖²
    let (recon, scale) = if opts.fvu_loss {
        let var = batch_variance_sum(x, n, d).max(f64::MIN_POSITIVE);
        losses.fvu = losses.mse * (n * d) as f64 / var;
        (losses.fvu, T::from_f64(2.0 / var))
    } else {
        (losses.mse, T::from_f64(2.0 / (n * d) as f64))
    };
    let dl_dxhat: Vec<T> = fwd
        .x_hat
        .iter()
        .zip(x)
        .map(|(&xh, &xv)| scale * (xh - xv))
        .collect();

    // upstream gradient at the decoder input: dL/dX^ W_dec^T
    let mut g = vec![T::ZERO; n * dc];
    T::gemm(
        n,
        d,
        dc,
        T::ONE,
        &dl_dxhat,
        false,
        &p.w_dec,
        true,
        T::ZERO,
        &mut g,
    );

    let mut cov = None;
    let dl_dz = match *arch {
        Arch::Bae {
            estimator,
            lambda_entropy,
            lambda_cov,
        } => {
            let (entropy_train, entropy_active) = bae_bits::entropy_train_bits(&rates);
            losses.entropy = bae_bits::entropy_bits(&rates);
            let entropy_weight = if entropy_on { lambda_entropy } else { 0.0 };
            if entropy_on && entropy_active && lambda_entropy != 0.0 {
                let coef: Vec<T> = bae_bits::entropy_grad_coeffs(&rates, n)
                    .iter()
                    .map(|&c| T::from_f64(lambda_entropy * c))
                    .collect();
                g.par_chunks_mut(dc).for_each(|row| {
                    for (v, &c) in row.iter_mut().zip(&coef) {
                        *v += c;
                    }
                });
            }
            let mut rate_weighted = 0.0;
            if let Some((target, lambda)) = opts.rate_target {
                losses.rate_term = bae_bits::rate_target_term(&rates, target, n);
                rate_weighted = lambda * losses.rate_term;
                let coef: Vec<T> = bae_bits::rate_target_grad_coeffs(&rates, target, n)
                    .iter()
                    .map(|&c| T::from_f64(lambda * c))
                    .collect();
                g.par_chunks_mut(dc).for_each(|row| {
                    for (v, &c) in row.iter_mut().zip(&coef) {
                        *v += c;
                    }
                });
            }
            if n >= 2 {
                let stats = CovarianceTerm::from_columns(&columns).expect("n >= 2");
                losses.cov = stats.term;
                if lambda_cov != 0.0 {
                    stats.add_covariance_grad(&fwd.codes, lambda_cov, &mut g);
                }
                cov = Some(stats);
            }
            losses.total =
                recon + entropy_weight * entropy_train + lambda_cov * losses.cov + rate_weighted;
            match estimator {
                Estimator::Ste => g.clone(),
                Estimator::SignS => g.par_iter().map(|&v| v * (T::ONE - v)).collect(),
            }
        }
        Arch::ReluL1 { l1 } | Arch::TopK { l1, .. } | Arch::JumpRelu { l1, .. } => {
            losses.l1 = fwd.act.iter().map(|v| v.to_f64().abs()).sum();
            losses.total = recon + l1 * losses.l1;
            if l1 != 0.0 {
                // d|a|/da = sign(a), with sign(0) = 0 as torch's abs backward
                let w = T::from_f64(l1);
                g.par_iter_mut().zip(&fwd.act).for_each(|(v, &a)| {
                    if a > T::ZERO {
                        *v += w;
                    } else if a < T::ZERO {
                        *v -= w;
                    }
                });
            }
            let mut dz = g.clone();
            dz.par_chunks_mut(dc).enumerate().for_each(|(i, row)| {
                for (j, v) in row.iter_mut().enumerate() {
                    if !fwd.pass.get(i, j) {
                        *v = T::ZERO;
                    }
                }
            });
            dz
        }
    };

    let mut grads = Params::zeros(d, dc);
    T::gemm(
        d,
        n,
        dc,
        T::ONE,
        x,
        true,
        &dl_dz,
        false,
        T::ZERO,
        &mut grads.w_enc,
    );
    grads.b_enc = column_sums(&dl_dz, dc);
    T::gemm(
        dc,
        n,
        d,
        T::ONE,
        &fwd.act,
        true,
        &dl_dxhat,
        false,
        T::ZERO,
        &mut grads.w_dec,
    );
    grads.b_dec = column_sums(&dl_dxhat, d);

    Step {
        forward: fwd,
        losses,
        rates,
        cov,
        backward: Backward {
            dl_dxhat,
            dl_dact: g,
            dl_dz,
            grads,
        },
    }
}
