//! One full BAE training step on the GPU, equal in meaning to `bae_ref::step` followed by
//! `bae_ref::Adam::step`:
//!
//! ```text
//!  X --GEMM--> Z --encode_binarize--> codes (rows), H (0/1 f32 or bf16)
//!  H --GEMM--> X^ --mse_grad--> MSE, dL/dX^
//!  codes --transpose_bits--> columns --firing_counts--> c --entropy_terms--> H_b, coef
//!  columns, c --coactivation--> D, sign masks S --sign_times_counts--> q
//!  dL/dX^ --GEMM W_dec^T--> G --covariance_grad (+coef, +cov, estimator)--> dL/dH, dL/dZ
//!  X^T dL/dZ, H^T dL/dX^ (GEMMs), column sums --> gradients --adam_step--> params
//! ```
//!
//! The parameters, Adam moments and gradients each live in one device buffer (`W_enc | b_enc |
//! W_dec | b_dec`, each tensor starting on a 256-byte boundary in bf16 and f32, as cuBLASLt's
//! default alignment wants), so Adam is a single launch.
//! Batches are staged through two pinned host buffers and uploaded on the copy stream, so the
//! upload of batch t+1 overlaps the compute of batch t ([`GpuTrainer::stage`] /
//! [`GpuTrainer::run_staged`]).

use crate::blas::{Blas, GemmMode, GemmShape};
use crate::context::GpuContext;
use crate::error::{GpuError, Result};
use crate::ops::{self, DevCols, DevRows, DevSigns, EncodeOutputs, GradOutputs, dp, dpm};
use bae_bits::PackedRows;
use bae_ref::{AdamConfig, Arch, Estimator, Losses, Params, StepOptions};
use cudarc::driver::{CudaEvent, CudaSlice, PinnedHostSlice};
use half::bf16;
use std::collections::VecDeque;

/// What the trainer is asked to do.
#[derive(Clone, Copy, Debug)]
pub struct TrainerConfig {
    /// Must be `Arch::Bae` (the SAE baselines run on the CPU).
    pub arch: Arch,
    pub adam: AdamConfig,
    /// Largest batch (rows) a step will get; buffers are sized for it.
    pub max_batch: usize,
    /// GEMM precision: `F32` (fidelity), `Tf32` or `Bf16` (fast).
    pub mode: GemmMode,
    /// Bf16 mode: run the encoder GEMM as the hand-written tensor-core kernel with the binariser
    /// fused into its epilogue (`encode_gemm`) instead of cuBLASLt + `encode_binarize`. Ignored
    /// in the other modes and when d or d' is not a multiple of 8.
    pub fused_encode: bool,
    /// the FVU loss and the rate target (`bae_ref::step_with`'s additions)
    pub step: StepOptions,
}

impl TrainerConfig {
    /// The given model, Adam config, batch size and GEMM mode, without the fused encoder.
    pub fn new(arch: Arch, adam: AdamConfig, max_batch: usize, mode: GemmMode) -> Self {
        TrainerConfig {
            arch,
            adam,
            max_batch,
            mode,
            fused_encode: false,
            step: StepOptions::default(),
        }
    }
}

/// Offsets of the four tensors in the flat parameter buffers.
#[derive(Clone, Copy, Debug)]
struct Layout {
    d: usize,
    dc: usize,
    /// start of W_enc, b_enc, W_dec, b_dec
    off: [usize; 4],
    total: usize,
}

impl Layout {
    fn new(d: usize, dc: usize) -> Self {
        let lens = [d * dc, dc, dc * d, d];
        let mut off = [0; 4];
        let mut at = 0;
        for (o, len) in off.iter_mut().zip(lens) {
            *o = at;
            at = (at + len).next_multiple_of(TENSOR_ALIGN_ELEMS);
        }
        Layout {
            d,
            dc,
            off,
            total: at,
        }
    }

    fn lens(&self) -> [usize; 4] {
        [self.d * self.dc, self.dc, self.dc * self.d, self.d]
    }

    fn range(&self, t: usize) -> std::ops::Range<usize> {
        self.off[t]..self.off[t] + self.lens()[t]
    }

    fn flatten(&self, p: &Params<f32>) -> Vec<f32> {
        let mut flat = vec![0.0f32; self.total];
        for (t, src) in p.tensors().into_iter().enumerate() {
            flat[self.range(t)].copy_from_slice(src);
        }
        flat
    }

    fn unflatten(&self, flat: &[f32]) -> Params<f32> {
        let mut p = Params::zeros(self.d, self.dc);
        for (t, dst) in p.tensors_mut().into_iter().enumerate() {
            dst.copy_from_slice(&flat[self.range(t)]);
        }
        p
    }
}

/// Tensor starts in the flat buffers: 128 elements are 256 bytes in the bf16 shadow (512 in f32),
/// cuBLASLt's default operand alignment (a 64-element start put W_dec's bf16 shadow on a 128-byte
/// boundary, e.g. at d = 48, d' = 192).
const TENSOR_ALIGN_ELEMS: usize = 128;

const W_ENC: usize = 0;
const B_ENC: usize = 1;
const W_DEC: usize = 2;
const B_DEC: usize = 3;

/// Everything the step computed on the last batch, downloaded (for comparisons with the CPU).
#[derive(Clone, Debug)]
pub struct StepTensors {
    pub n: usize,
    /// Z = X W_enc + b_enc, n x d'
    pub z: Vec<f32>,
    pub codes: PackedRows,
    pub x_hat: Vec<f32>,
    pub dl_dxhat: Vec<f32>,
    /// G = dL/dH (all terms), n x d'
    pub dl_dact: Vec<f32>,
    pub dl_dz: Vec<f32>,
    pub grads: Params<f32>,
}

/// Two pinned host buffers and the events that order their reuse.
struct Staging {
    pinned: [PinnedHostSlice<f32>; 2],
    /// recorded on the compute stream after the step that read device slot s (and once at the
    /// end of `new`, after the allocations and memsets of the slots)
    consumed: [CudaEvent; 2],
    /// recorded on the copy stream after the upload into device slot s
    uploaded: [CudaEvent; 2],
    book: SlotBook,
}

/// The last computed batch: its rows, device slot and entropy switch, and whether the slot still
/// holds it (a later `stage` into the same slot overwrites it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LastStep {
    pub n: usize,
    pub slot: usize,
    pub entropy_on: bool,
    pub intact: bool,
}

/// Which device slot holds which batch (pure bookkeeping, no CUDA: unit-tested on the CPU).
#[derive(Debug, Default)]
pub(crate) struct SlotBook {
    next: usize,
    /// staged (slot, rows), oldest first
    queue: VecDeque<(usize, usize)>,
    last: Option<LastStep>,
}

impl SlotBook {
    /// The slot for a new batch of `rows`; at most two batches wait at once.
    pub fn stage(&mut self, rows: usize) -> std::result::Result<usize, &'static str> {
        if self.queue.len() == 2 {
            return Err("two batches are already staged: run a step first");
        }
        let slot = self.next;
        if let Some(last) = self.last.as_mut().filter(|l| l.slot == slot) {
            last.intact = false;
        }
        self.queue.push_back((slot, rows));
        self.next ^= 1;
        Ok(slot)
    }

    /// The oldest staged batch (slot, rows), which the next step computes on.
    pub fn take(&mut self) -> Option<(usize, usize)> {
        self.queue.pop_front()
    }

    pub fn ran(&mut self, slot: usize, n: usize, entropy_on: bool) {
        self.last = Some(LastStep {
            n,
            slot,
            entropy_on,
            intact: true,
        });
    }

    pub fn last(&self) -> Option<LastStep> {
        self.last
    }

    /// The batch a rerun computes on: the last step's, if its slot was not restaged since.
    pub fn rerun(&self) -> std::result::Result<LastStep, &'static str> {
        match self.last {
            None => Err("no batch yet"),
            Some(l) if !l.intact => Err(
                "the last step's batch was overwritten by a later stage(): run that batch instead",
            ),
            Some(l) => Ok(l),
        }
    }
}

/// The five dense products of a step on `n` rows (row-major shapes).
#[derive(Clone, Copy, Debug)]
struct StepShapes {
    /// Z = X W_enc: n x d'
    encode: GemmShape,
    /// X^ = H W_dec: n x d
    decode: GemmShape,
    /// G = dL/dX^ W_dec^T: n x d'
    back: GemmShape,
    /// dW_enc = X^T dL/dZ: d x d'
    w_enc: GemmShape,
    /// dW_dec = H^T dL/dX^: d' x d
    w_dec: GemmShape,
}

impl StepShapes {
    fn new(n: usize, d: usize, dc: usize) -> Self {
        let g = |m, n, k, a_t, b_t| GemmShape { m, n, k, a_t, b_t };
        StepShapes {
            encode: g(n, dc, d, false, false),
            decode: g(n, d, dc, false, false),
            back: g(n, dc, d, false, true),
            w_enc: g(d, dc, n, true, false),
            w_dec: g(dc, d, n, true, false),
        }
    }

    fn all(&self) -> [GemmShape; 5] {
        [self.encode, self.decode, self.back, self.w_enc, self.w_dec]
    }
}

pub struct GpuTrainer {
    gpu: GpuContext,
    blas: Blas,
    layout: Layout,
    max_n: usize,
    estimator: Estimator,
    lambda_entropy: f64,
    lambda_cov: f64,
    adam: AdamConfig,
    t: u64,
    mode: GemmMode,
    fused_encode: bool,

    params: CudaSlice<f32>,
    m: CudaSlice<f32>,
    v: CudaSlice<f32>,
    grads: CudaSlice<f32>,
    /// bf16 copy of the parameters (Bf16 mode)
    shadow: Option<CudaSlice<bf16>>,

    x: [CudaSlice<f32>; 2],
    x_bf: Option<CudaSlice<bf16>>,
    staging: Staging,

    z: CudaSlice<f32>,
    codes: DevRows,
    cols: DevCols,
    h: Option<CudaSlice<f32>>,
    h_bf: Option<CudaSlice<bf16>>,
    xhat: CudaSlice<f32>,
    dxhat: CudaSlice<f32>,
    dxhat_bf: Option<CudaSlice<bf16>>,
    g: CudaSlice<f32>,
    dz: CudaSlice<f32>,
    dz_bf: Option<CudaSlice<bf16>>,
    counts: CudaSlice<u32>,
    coef: CudaSlice<f32>,
    entropy_out: CudaSlice<f64>,
    signs: DevSigns,
    q: CudaSlice<i64>,
    abs_sum: CudaSlice<u64>,
    mse_partial: CudaSlice<f64>,
    sse: CudaSlice<f64>,
    colsum_partial: CudaSlice<f32>,

    /// biases kept at their initial value (`--no-enc-bias` / `--no-dec-bias`)
    frozen: [bool; 2],
    step_opts: StepOptions,
    /// Σ‖x − x̄‖² of the batch in each slot (FVU loss), and of the last computed batch
    slot_var: [f64; 2],
    last_var: f64,
}

impl GpuTrainer {
    pub fn new(gpu: &GpuContext, params: &Params<f32>, cfg: TrainerConfig) -> Result<Self> {
        let Arch::Bae {
            estimator,
            lambda_entropy,
            lambda_cov,
        } = cfg.arch
        else {
            return Err(GpuError::Invalid(format!(
                "the GPU trainer runs the BAE only, not {}",
                cfg.arch.name()
            )));
        };
        let (d, dc, max_n) = (params.d, params.d_code, cfg.max_batch);
        if d == 0 || dc == 0 || max_n == 0 {
            return Err(GpuError::Invalid("empty model or batch".into()));
        }
        let layout = Layout::new(d, dc);
        let blas = Blas::new(gpu)?;
        let bf = cfg.mode == GemmMode::Bf16;
        let stream = gpu.stream();
        let flat = layout.flatten(params);
        let p = ops::upload(gpu, &flat)?;
        let mut shadow = None;
        if bf {
            let mut s = stream.alloc_zeros::<bf16>(layout.total)?;
            ops::f32_to_bf16(gpu, &p, &mut s)?;
            shadow = Some(s);
        }
        let opt_bf = |len: usize| -> Result<Option<CudaSlice<bf16>>> {
            Ok(if bf {
                Some(stream.alloc_zeros::<bf16>(len)?)
            } else {
                None
            })
        };
        let ctx = gpu.cuda();
        // SAFETY: pinned buffers are written by the host before every upload.
        let pinned = unsafe {
            [
                ctx.alloc_pinned::<f32>(max_n * d)?,
                ctx.alloc_pinned::<f32>(max_n * d)?,
            ]
        };
        let staging = Staging {
            pinned,
            consumed: [ctx.new_event(None)?, ctx.new_event(None)?],
            uploaded: [ctx.new_event(None)?, ctx.new_event(None)?],
            book: SlotBook::default(),
        };
        let trainer = GpuTrainer {
            blas,
            layout,
            max_n,
            estimator,
            lambda_entropy,
            lambda_cov,
            adam: cfg.adam,
            t: 0,
            mode: cfg.mode,
            fused_encode: cfg.fused_encode && bf && ops::encode_gemm_supported(d, dc),
            params: p,
            m: stream.alloc_zeros(layout.total)?,
            v: stream.alloc_zeros(layout.total)?,
            grads: stream.alloc_zeros(layout.total)?,
            shadow,
            x: [
                stream.alloc_zeros(max_n * d)?,
                stream.alloc_zeros(max_n * d)?,
            ],
            x_bf: opt_bf(max_n * d)?,
            staging,
            z: stream.alloc_zeros(max_n * dc)?,
            codes: DevRows::zeros(gpu, max_n, dc)?,
            cols: DevCols::zeros(gpu, max_n, dc)?,
            h: if bf {
                None
            } else {
                Some(stream.alloc_zeros(max_n * dc)?)
            },
            h_bf: opt_bf(max_n * dc)?,
            xhat: stream.alloc_zeros(max_n * d)?,
            dxhat: stream.alloc_zeros(max_n * d)?,
            dxhat_bf: opt_bf(max_n * d)?,
            g: stream.alloc_zeros(max_n * dc)?,
            dz: stream.alloc_zeros(max_n * dc)?,
            dz_bf: opt_bf(max_n * dc)?,
            counts: stream.alloc_zeros(dc)?,
            coef: stream.alloc_zeros(dc)?,
            entropy_out: stream.alloc_zeros(2)?,
            signs: DevSigns {
                pos: DevRows::zeros(gpu, dc, dc)?,
                neg: DevRows::zeros(gpu, dc, dc)?,
            },
            q: stream.alloc_zeros(dc)?,
            abs_sum: stream.alloc_zeros(1)?,
            mse_partial: stream.alloc_zeros(ops::MSE_BLOCKS)?,
            sse: stream.alloc_zeros(1)?,
            colsum_partial: stream.alloc_zeros(max_n.div_ceil(ops::COLSUM_ROWS) * d.max(dc))?,
            frozen: [false; 2],
            step_opts: cfg.step,
            slot_var: [1.0; 2],
            last_var: 1.0,
            gpu: gpu.clone(),
        };
        // cuBLASLt plans for the full batch now: a heuristic that finds no algorithm fails here
        // (and `--device auto` falls back to the CPU), not at the first step
        for shape in StepShapes::new(max_n, d, dc).all() {
            trainer.blas.prepare(trainer.mode, shape)?;
        }
        // the slots were allocated and zeroed on the compute stream (stream-ordered); the first
        // upload on the copy stream waits on these events, so it lands after the memsets
        for ev in &trainer.staging.consumed {
            ev.record(stream)?;
        }
        Ok(trainer)
    }

    pub fn gpu(&self) -> &GpuContext {
        &self.gpu
    }

    pub fn mode(&self) -> GemmMode {
        self.mode
    }

    /// Whether the encoder runs as the fused tensor-core kernel (`encode_gemm`).
    pub fn fused_encode(&self) -> bool {
        self.fused_encode
    }

    /// Adam updates done so far.
    pub fn adam_steps(&self) -> u64 {
        self.t
    }

    /// Continues from saved Adam state (a checkpoint): the moments `m`, `v` and the update count.
    pub fn set_adam_state(&mut self, m: &Params<f32>, v: &Params<f32>, t: u64) -> Result<()> {
        let shape = (self.layout.d, self.layout.dc);
        if (m.d, m.d_code) != shape || (v.d, v.d_code) != shape {
            return Err(GpuError::Invalid(format!(
                "Adam moments are {}x{}, the model is {}x{}",
                m.d, m.d_code, shape.0, shape.1
            )));
        }
        self.m = ops::upload(&self.gpu, &self.layout.flatten(m))?;
        self.v = ops::upload(&self.gpu, &self.layout.flatten(v))?;
        self.t = t;
        Ok(())
    }

    /// Keeps b_enc and/or b_dec where they are: their gradients are zeroed before each Adam
    /// update, as the CPU trainer does (Adam then leaves them unchanged).
    pub fn freeze_biases(&mut self, b_enc: bool, b_dec: bool) {
        self.frozen = [b_enc, b_dec];
    }

    /// Copies a row-major `n x d` batch into the next pinned buffer and starts its upload on the
    /// copy stream (overlapping whatever the compute stream is doing). At most two batches can
    /// be staged ahead of [`Self::run_staged`].
    pub fn stage(&mut self, x: &[f32]) -> Result<()> {
        let d = self.layout.d;
        if x.is_empty() || !x.len().is_multiple_of(d) || x.len() / d > self.max_n {
            return Err(GpuError::Invalid(format!(
                "batch of {} values is not n x {d} with 1 <= n <= {}",
                x.len(),
                self.max_n
            )));
        }
        let st = &mut self.staging;
        let slot = st
            .book
            .stage(x.len() / d)
            .map_err(|e| GpuError::Invalid(e.into()))?;
        // the previous upload from this pinned buffer must be finished before the host rewrites it
        // (cudarc's own pinned-buffer events are inactive: event tracking is off)
        st.uploaded[slot].synchronize()?;
        st.pinned[slot].as_mut_slice()?[..x.len()].copy_from_slice(x);
        if self.step_opts.fvu_loss {
            // the FVU loss's denominator, from the host copy (as bae_ref::step_with computes it)
            self.slot_var[slot] =
                bae_ref::batch_variance_sum(x, x.len() / d, d).max(f64::MIN_POSITIVE);
        }
        let copy = self.gpu.copy_stream();
        // the device slot must not be overwritten before the step that reads it is done
        copy.wait(&st.consumed[slot])?;
        // only the rows given: a short last batch uploads its own size, not the whole buffer
        let rows = &st.pinned[slot].as_slice()?[..x.len()];
        copy.memcpy_htod(rows, &mut self.x[slot].slice_mut(..x.len()))?;
        st.uploaded[slot].record(copy)?;
        Ok(())
    }

    /// One step (forward, losses, backward, Adam when `adam`) on the oldest staged batch.
    /// Asynchronous: read the losses with [`Self::losses`].
    pub fn run_staged(&mut self, entropy_on: bool, adam: bool) -> Result<()> {
        let (slot, n) = self
            .staging
            .book
            .take()
            .ok_or_else(|| GpuError::Invalid("no staged batch".into()))?;
        self.gpu.stream().wait(&self.staging.uploaded[slot])?;
        self.compute(slot, n, entropy_on)?;
        self.staging.consumed[slot].record(self.gpu.stream())?;
        if adam {
            self.apply_adam()?;
        }
        Ok(())
    }

    /// Runs the step again on the batch of the last step (benchmarks: no upload). Refused when
    /// that batch's slot was restaged since (`step(a); stage(b); stage(c)` overwrites `a`).
    pub fn rerun(&mut self, adam: bool) -> Result<()> {
        let last = self
            .staging
            .book
            .rerun()
            .map_err(|e| GpuError::Invalid(e.into()))?;
        let (n, slot, entropy_on) = (last.n, last.slot, last.entropy_on);
        self.gpu.stream().wait(&self.staging.uploaded[slot])?;
        self.compute(slot, n, entropy_on)?;
        self.staging.consumed[slot].record(self.gpu.stream())?;
        if adam {
            self.apply_adam()?;
        }
        Ok(())
    }

    /// The whole step on `x` (`n x d`, row-major): upload, forward, backward, Adam; returns the
    /// losses (waits for the GPU).
    pub fn step(&mut self, x: &[f32], entropy_on: bool) -> Result<Losses> {
        self.stage(x)?;
        self.run_staged(entropy_on, true)?;
        self.losses()
    }

    /// Forward and backward only (no Adam): the gradients are then [`Self::grads`].
    pub fn forward_backward(&mut self, x: &[f32], entropy_on: bool) -> Result<Losses> {
        self.stage(x)?;
        self.run_staged(entropy_on, false)?;
        self.losses()
    }

    fn gemm(&self, s: GemmShape, a: u64, b: u64, c: u64) -> Result<()> {
        // SAFETY: every call below passes buffers sized for the shape at the trainer's max batch
        // (checked: n <= max_n), of the element type of the mode.
        unsafe { self.blas.gemm(self.mode, s, a, b, c, 0.0) }
    }

    fn compute(&mut self, slot: usize, n: usize, entropy_on: bool) -> Result<()> {
        let (d, dc) = (self.layout.d, self.layout.dc);
        let gpu = self.gpu.clone();
        let gpu = &gpu;
        let bf = self.mode == GemmMode::Bf16;
        let shapes = StepShapes::new(n, d, dc);
        self.codes.n_rows = n;
        self.cols.n_rows = n;

        // GEMM operands: f32 buffers, or their bf16 copies
        let pbase = dp(gpu, &self.params);
        let (x_op, wenc_op, wdec_op) = if bf {
            let x_bf = self.x_bf.as_mut().expect("bf16 buffers");
            ops::f32_to_bf16(
                gpu,
                &self.x[slot].slice(..n * d),
                &mut x_bf.slice_mut(..n * d),
            )?;
            let sbase = dp(gpu, self.shadow.as_ref().expect("bf16 shadow"));
            (
                dp(gpu, x_bf),
                sbase + 2 * self.layout.off[W_ENC] as u64,
                sbase + 2 * self.layout.off[W_DEC] as u64,
            )
        } else {
            let f = |t: usize| pbase + 4 * self.layout.off[t] as u64;
            (dp(gpu, &self.x[slot]), f(W_ENC), f(W_DEC))
        };

        // forward: Z = X W_enc + b_enc, codes, H
        let b_enc = self.params.slice(self.layout.range(B_ENC));
        if self.fused_encode {
            let shadow = self.shadow.as_ref().expect("bf16 shadow");
            ops::encode_gemm(
                gpu,
                &self.x_bf.as_ref().expect("bf16 buffers").slice(..n * d),
                &shadow.slice(self.layout.range(W_ENC)),
                &b_enc,
                d,
                &mut self.codes,
                Some(&mut self.z),
                self.h_bf.as_mut(),
            )?;
        } else {
            let out_ptr = dpm(gpu, &mut self.z);
            self.gemm(shapes.encode, x_op, wenc_op, out_ptr)?;
            ops::encode_binarize(
                gpu,
                &mut self.z,
                Some(&b_enc),
                true,
                &mut self.codes,
                EncodeOutputs {
                    h_f32: self.h.as_mut(),
                    h_bf16: self.h_bf.as_mut(),
                },
            )?;
        }
        let h_op = if bf {
            dp(gpu, self.h_bf.as_ref().expect("bf16"))
        } else {
            dp(gpu, self.h.as_ref().expect("f32 H"))
        };

        // X^ = H W_dec (+ b_dec in mse_grad), MSE and dL/dX^
        let out_ptr = dpm(gpu, &mut self.xhat);
        self.gemm(shapes.decode, h_op, wdec_op, out_ptr)?;
        let b_dec = self.params.slice(self.layout.range(B_DEC));
        self.last_var = self.slot_var[slot];
        let fvu_scale = self
            .step_opts
            .fvu_loss
            .then(|| (2.0 / self.last_var) as f32);
        ops::mse_grad_scaled(
            gpu,
            &self.x[slot].slice(..n * d),
            &mut self.xhat,
            Some(&b_dec),
            n,
            d,
            &mut self.dxhat,
            self.dxhat_bf.as_mut(),
            &mut self.mse_partial,
            &mut self.sse,
            fvu_scale,
        )?;

        // bit statistics: columns, firing counts, entropy, covariance signs
        ops::to_columns(gpu, &self.codes, &mut self.cols)?;
        ops::firing_counts(gpu, &self.cols, &mut self.counts)?;
        ops::entropy_terms(
            gpu,
            &self.counts,
            n,
            self.lambda_entropy,
            entropy_on,
            Some(&mut self.coef),
            &mut self.entropy_out,
        )?;
        // entropy_terms wrote coef (zeros when the term is off); the rate target adds its own
        let rate = self.step_opts.rate_target;
        if let Some((target, lambda)) = rate {
            ops::rate_target_coef(gpu, &self.counts, n, target, lambda, true, &mut self.coef)?;
        }
        let use_coef = (entropy_on && self.lambda_entropy != 0.0) || rate.is_some();
        let cov_on = n >= 2;
        if cov_on {
            gpu.stream().memset_zeros(&mut self.abs_sum)?;
            ops::coactivation(
                gpu,
                &self.cols,
                &self.counts,
                &mut self.signs,
                &mut self.abs_sum,
                None,
            )?;
        }

        // G = dL/dX^ W_dec^T, then the entropy and covariance terms and the estimator
        let dx_op = if bf {
            dp(gpu, self.dxhat_bf.as_ref().expect("bf16"))
        } else {
            dp(gpu, &self.dxhat)
        };
        let out_ptr = dpm(gpu, &mut self.g);
        self.gemm(shapes.back, dx_op, wdec_op, out_ptr)?;
        let coef = use_coef.then_some(&self.coef);
        let out = GradOutputs {
            dz: Some(&mut self.dz),
            dz_bf16: self.dz_bf.as_mut(),
        };
        if cov_on && self.lambda_cov != 0.0 {
            ops::sign_times_counts(gpu, &self.signs, &self.counts, &mut self.q)?;
            ops::add_covariance_grad(
                gpu,
                &self.codes,
                &self.signs,
                &self.q,
                coef,
                self.lambda_cov,
                self.estimator,
                &mut self.g,
                out,
            )?;
        } else {
            ops::apply_estimator(gpu, &mut self.g, coef, n, dc, self.estimator, out)?;
        }

        // parameter gradients
        let gbase = dpm(gpu, &mut self.grads);
        let gp = |t: usize| gbase + 4 * self.layout.off[t] as u64;
        let dz_op = if bf {
            dp(gpu, self.dz_bf.as_ref().expect("bf16"))
        } else {
            dp(gpu, &self.dz)
        };
        self.gemm(shapes.w_enc, x_op, dz_op, gp(W_ENC))?;
        self.gemm(shapes.w_dec, h_op, dx_op, gp(W_DEC))?;
        let (r_benc, r_bdec) = (self.layout.range(B_ENC), self.layout.range(B_DEC));
        ops::column_sums(
            gpu,
            &self.dz.slice(..n * dc),
            n,
            dc,
            &mut self.colsum_partial,
            &mut self.grads.slice_mut(r_benc),
        )?;
        ops::column_sums(
            gpu,
            &self.dxhat.slice(..n * d),
            n,
            d,
            &mut self.colsum_partial,
            &mut self.grads.slice_mut(r_bdec),
        )?;

        self.staging.book.ran(slot, n, entropy_on);
        Ok(())
    }

    /// The last computed batch, or an error before the first step.
    fn last(&self) -> Result<LastStep> {
        self.staging
            .book
            .last()
            .ok_or_else(|| GpuError::Invalid("no step yet".into()))
    }

    fn apply_adam(&mut self) -> Result<()> {
        for (frozen, t) in self.frozen.into_iter().zip([B_ENC, B_DEC]) {
            if frozen {
                let range = self.layout.range(t);
                self.gpu
                    .stream()
                    .memset_zeros(&mut self.grads.slice_mut(range))?;
            }
        }
        self.t += 1;
        let gpu = self.gpu.clone();
        ops::adam_step(
            &gpu,
            &mut self.params,
            &mut self.m,
            &mut self.v,
            &self.grads,
            self.t,
            &self.adam,
            self.shadow.as_mut(),
        )
    }

    /// Losses of the last step (waits for the GPU), as `bae_ref::step` reports them.
    pub fn losses(&self) -> Result<Losses> {
        let LastStep { n, entropy_on, .. } = self.last()?;
        let gpu = &self.gpu;
        let sse = ops::download(gpu, &self.sse)?[0];
        let ent = ops::download(gpu, &self.entropy_out)?;
        let cov = if n >= 2 {
            let abs = ops::download(gpu, &self.abs_sum)?[0];
            (2 * abs as u128) as f64 / (n as u128 * (n as u128 - 1)) as f64
        } else {
            0.0
        };
        let entropy = ent[0];
        let entropy_train = if entropy < 0.0 { 0.0 } else { entropy };
        let entropy_weight = if entropy_on { self.lambda_entropy } else { 0.0 };
        let mse = sse / (n * self.layout.d) as f64;
        let fvu = if self.step_opts.fvu_loss {
            sse / self.last_var
        } else {
            0.0
        };
        let recon = if self.step_opts.fvu_loss { fvu } else { mse };
        let (rate_term, rate_weighted) = match self.step_opts.rate_target {
            Some((target, lambda)) => {
                let counts = ops::download(gpu, &self.counts)?;
                let rates: Vec<f64> = counts.iter().map(|&c| c as f64 / n as f64).collect();
                let term = bae_bits::rate_target_term(&rates, target, n);
                (term, lambda * term)
            }
            None => (0.0, 0.0),
        };
        Ok(Losses {
            mse,
            entropy,
            cov,
            l1: 0.0,
            fvu,
            rate_term,
            total: recon + entropy_weight * entropy_train + self.lambda_cov * cov + rate_weighted,
        })
    }

    /// Mean number of active codes per row in the last step (from the firing counts).
    pub fn mean_l0(&self) -> Result<f64> {
        let n = self.last()?.n;
        let counts = ops::download(&self.gpu, &self.counts)?;
        Ok(counts.iter().map(|&c| c as f64).sum::<f64>() / n as f64)
    }

    /// Current parameters.
    pub fn params(&self) -> Result<Params<f32>> {
        Ok(self
            .layout
            .unflatten(&ops::download(&self.gpu, &self.params)?))
    }

    /// Gradients of the last step.
    pub fn grads(&self) -> Result<Params<f32>> {
        Ok(self
            .layout
            .unflatten(&ops::download(&self.gpu, &self.grads)?))
    }

    /// Adam moments (m, v).
    pub fn adam_moments(&self) -> Result<(Params<f32>, Params<f32>)> {
        Ok((
            self.layout.unflatten(&ops::download(&self.gpu, &self.m)?),
            self.layout.unflatten(&ops::download(&self.gpu, &self.v)?),
        ))
    }

    /// Everything the last step computed (forward tensors, upstream gradients, parameter
    /// gradients), downloaded.
    pub fn step_tensors(&self) -> Result<StepTensors> {
        let n = self.last()?.n;
        let (d, dc) = (self.layout.d, self.layout.dc);
        let gpu = &self.gpu;
        Ok(StepTensors {
            n,
            z: ops::download(gpu, &self.z.slice(..n * dc))?,
            codes: DevRows::download_rows(&self.codes, gpu, n)?,
            x_hat: ops::download(gpu, &self.xhat.slice(..n * d))?,
            dl_dxhat: ops::download(gpu, &self.dxhat.slice(..n * d))?,
            dl_dact: ops::download(gpu, &self.g.slice(..n * dc))?,
            dl_dz: ops::download(gpu, &self.dz.slice(..n * dc))?,
            grads: self.grads()?,
        })
    }

    /// FLOPs of the five dense GEMMs of one step on `n` rows (10 n d d').
    pub fn gemm_flops(&self, n: usize) -> f64 {
        10.0 * n as f64 * self.layout.d as f64 * self.layout.dc as f64
    }
}

impl Drop for GpuTrainer {
    fn drop(&mut self) {
        // uploads may still read the pinned buffers and kernels the device buffers: finish them
        // before anything is freed
        let _ = self.gpu.synchronize();
    }
}

impl DevRows {
    /// The first `n` rows, downloaded.
    fn download_rows(&self, gpu: &GpuContext, n: usize) -> Result<PackedRows> {
        let wpr = self.words_per_row();
        let words = ops::download(gpu, &self.words.slice(..n * wpr))?;
        PackedRows::from_words(n, self.n_cols, words)
            .map_err(|e| GpuError::Invalid(format!("downloaded codes: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tensor_starts_on_256_bytes_in_bf16_and_f32() {
        for (d, dc) in [
            (48, 192),
            (8, 32),
            (576, 2304),
            (33, 65),
            (1, 1),
            (2048, 8192),
        ] {
            let l = Layout::new(d, dc);
            for (t, off) in l.off.iter().enumerate() {
                assert_eq!(
                    (off * 2) % 256,
                    0,
                    "d={d} d'={dc} tensor {t} at element {off}"
                );
                assert!(l.range(t).end <= l.total);
            }
            let p = Params::<f32>::zeros(d, dc);
            assert_eq!(l.unflatten(&l.flatten(&p)), p);
        }
    }

    #[test]
    fn rerun_refuses_a_restaged_slot() {
        // step(a); stage(b); stage(c); rerun() would read c half-written over a
        let mut b = SlotBook::default();
        let a = b.stage(10).unwrap();
        assert_eq!(b.take(), Some((a, 10)));
        b.ran(a, 10, true);
        assert_eq!(b.rerun().unwrap().n, 10);
        b.stage(7).unwrap(); // the other slot: a stays intact
        assert_eq!(b.rerun().unwrap().slot, a);
        assert_eq!(b.stage(5).unwrap(), a);
        assert!(b.rerun().unwrap_err().contains("overwritten"));
        assert!(b.stage(1).is_err(), "a third batch waits for a step");
        assert_eq!(b.take(), Some((a ^ 1, 7)));
        assert_eq!(b.take(), Some((a, 5)));
        assert_eq!(b.take(), None);
    }

    #[test]
    fn rerun_before_any_step_is_an_error() {
        assert_eq!(SlotBook::default().rerun().unwrap_err(), "no batch yet");
    }

    #[test]
    fn step_shapes_cover_the_five_products() {
        let s = StepShapes::new(77, 48, 192);
        let flops: f64 = s.all().iter().map(|g| g.flops()).sum();
        assert_eq!(flops, 10.0 * 77.0 * 48.0 * 192.0);
        assert_eq!((s.w_dec.m, s.w_dec.n, s.w_dec.k), (192, 48, 77));
    }
}
