//! One safe wrapper per kernel, named after its CPU twin in `bae-bits` / `bae-ref`. Every
//! wrapper checks the shapes of its buffers, then enqueues the kernel on the compute stream
//! (asynchronous: results are ready after a download or `GpuContext::synchronize`). Outputs are
//! caller-owned buffers, so tests can poison them first and the trainer can reuse them.

use crate::context::{GpuContext, grid1, grid2};
use crate::error::{GpuError, Result};
use bae_bits::{PackedColumns, PackedRows, SignMasks};
use bae_ref::{AdamConfig, AdamScalars, Estimator};
use cudarc::driver::{
    CudaSlice, DevicePtr, DevicePtrMut, DeviceRepr, PushKernelArg, ValidAsZeroBits,
};
use half::bf16;

/// Enqueues kernel `$kernel` with launch config `$cfg` and the listed arguments (each bound to a
/// local that outlives the launch). Returns early with the launch error, if any.
macro_rules! launch {
    ($gpu:expr, $kernel:literal, $cfg:expr, [$($arg:expr),* $(,)?]) => {{
        let gpu: &GpuContext = $gpu;
        let stream = gpu.stream();
        let func = gpu.func($kernel);
        let mut builder = stream.launch_builder(func);
        $(
            let arg = $arg;
            builder.arg(&arg);
        )*
        // SAFETY: the argument list matches the kernel's C signature (see kernels/*.cu) and the
        // calling wrapper checked that every buffer holds what the launch shape addresses.
        unsafe { builder.launch($cfg) }?;
    }};
}

/// Raw device address of a buffer (for kernel arguments; no stream bookkeeping is active).
pub(crate) fn dp<T>(gpu: &GpuContext, s: &impl DevicePtr<T>) -> u64 {
    let (p, _guard) = s.device_ptr(gpu.stream());
    p
}

pub(crate) fn dpm<T>(gpu: &GpuContext, s: &mut impl DevicePtrMut<T>) -> u64 {
    let (p, _guard) = s.device_ptr_mut(gpu.stream());
    p
}

fn opt<T>(gpu: &GpuContext, s: Option<&dyn DevicePtr<T>>) -> u64 {
    s.map_or(0, |s| {
        let (p, _guard) = s.device_ptr(gpu.stream());
        p
    })
}

fn opt_mut<T>(gpu: &GpuContext, s: Option<&mut CudaSlice<T>>) -> u64 {
    s.map_or(0, |s| dpm(gpu, s))
}

fn check_len(what: &str, got: usize, need: usize) -> Result<()> {
    if got < need {
        return Err(GpuError::Invalid(format!(
            "{what}: buffer has {got} elements, needs {need}"
        )));
    }
    Ok(())
}

fn to_i32(what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| GpuError::Invalid(format!("{what} = {v} does not fit in i32")))
}

/// Estimator code shared with the kernels (`EST_SIGN_S`, `EST_STE` in kernels/common.cuh).
pub fn estimator_code(e: Estimator) -> i32 {
    match e {
        Estimator::SignS => 0,
        Estimator::Ste => 1,
    }
}

/// Uploads a host slice to a new device buffer.
pub fn upload<T: DeviceRepr>(gpu: &GpuContext, v: &[T]) -> Result<CudaSlice<T>> {
    Ok(gpu.stream().clone_htod(v)?)
}

/// Downloads a device buffer (waits for the compute stream).
pub fn download<T: DeviceRepr + Clone + Default>(
    gpu: &GpuContext,
    s: &impl DevicePtr<T>,
) -> Result<Vec<T>> {
    let v = gpu.stream().clone_dtoh(s)?;
    gpu.stream().synchronize()?;
    Ok(v)
}

/// A new device buffer of `len` copies of `value` (tests poison outputs with it).
pub fn filled<T: DeviceRepr + Clone>(
    gpu: &GpuContext,
    len: usize,
    value: T,
) -> Result<CudaSlice<T>> {
    upload(gpu, &vec![value; len])
}

/// A new zeroed device buffer.
pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(
    gpu: &GpuContext,
    len: usize,
) -> Result<CudaSlice<T>> {
    Ok(gpu.stream().alloc_zeros(len)?)
}

/// A host bit matrix whose words a device buffer mirrors: [`PackedRows`] or [`PackedColumns`].
pub trait HostBits: Sized {
    /// "rows" or "columns", for error messages
    const WHAT: &'static str;
    fn word_count(n_rows: usize, n_cols: usize) -> usize;
    fn shape(&self) -> (usize, usize);
    fn host_words(&self) -> &[u64];
    fn from_host_words(
        n_rows: usize,
        n_cols: usize,
        words: Vec<u64>,
    ) -> std::result::Result<Self, bae_bits::BitsError>;
}

macro_rules! host_bits {
    ($t:ty, $what:literal, |$r:ident, $c:ident| $words:expr) => {
        impl HostBits for $t {
            const WHAT: &'static str = $what;
            fn word_count($r: usize, $c: usize) -> usize {
                $words
            }
            fn shape(&self) -> (usize, usize) {
                (self.n_rows(), self.n_cols())
            }
            fn host_words(&self) -> &[u64] {
                self.words()
            }
            fn from_host_words(
                n_rows: usize,
                n_cols: usize,
                words: Vec<u64>,
            ) -> std::result::Result<Self, bae_bits::BitsError> {
                <$t>::from_words(n_rows, n_cols, words)
            }
        }
    };
}
host_bits!(PackedRows, "rows", |n_rows, n_cols| n_rows
    * n_cols.div_ceil(64));
host_bits!(PackedColumns, "columns", |n_rows, n_cols| n_cols
    * n_rows.div_ceil(64));

/// A packed bit matrix on the device, in the word layout of its host type `H`.
pub struct DevBits<H> {
    pub n_rows: usize,
    pub n_cols: usize,
    pub words: CudaSlice<u64>,
    layout: std::marker::PhantomData<H>,
}

/// Row-packed bit matrix on the device (layout of [`PackedRows`]).
pub type DevRows = DevBits<PackedRows>;
/// Column-packed bit matrix on the device (layout of [`PackedColumns`]).
pub type DevCols = DevBits<PackedColumns>;

impl<H: HostBits> DevBits<H> {
    /// All words set to `fill` (tests poison with `!0`).
    pub fn filled(gpu: &GpuContext, n_rows: usize, n_cols: usize, fill: u64) -> Result<Self> {
        let words = filled(gpu, H::word_count(n_rows, n_cols), fill)?;
        Ok(Self::from_parts(n_rows, n_cols, words))
    }

    pub fn zeros(gpu: &GpuContext, n_rows: usize, n_cols: usize) -> Result<Self> {
        let words = zeros(gpu, H::word_count(n_rows, n_cols))?;
        Ok(Self::from_parts(n_rows, n_cols, words))
    }

    pub fn upload(gpu: &GpuContext, h: &H) -> Result<Self> {
        let (n_rows, n_cols) = h.shape();
        Ok(Self::from_parts(
            n_rows,
            n_cols,
            upload(gpu, h.host_words())?,
        ))
    }

    pub fn download(&self, gpu: &GpuContext) -> Result<H> {
        let words = download(gpu, &self.words)?;
        H::from_host_words(self.n_rows, self.n_cols, words)
            .map_err(|e| GpuError::Invalid(format!("downloaded {}: {e}", H::WHAT)))
    }

    fn from_parts(n_rows: usize, n_cols: usize, words: CudaSlice<u64>) -> Self {
        DevBits {
            n_rows,
            n_cols,
            words,
            layout: std::marker::PhantomData,
        }
    }
}

impl DevRows {
    pub fn words_per_row(&self) -> usize {
        self.n_cols.div_ceil(64)
    }
}

impl DevCols {
    pub fn words_per_col(&self) -> usize {
        self.n_rows.div_ceil(64)
    }
}

/// Covariance sign masks on the device (layout of [`SignMasks`]: `d' x d'` row-packed).
pub struct DevSigns {
    pub pos: DevRows,
    pub neg: DevRows,
}

impl DevSigns {
    pub fn filled(gpu: &GpuContext, dc: usize, fill: u64) -> Result<Self> {
        Ok(DevSigns {
            pos: DevRows::filled(gpu, dc, dc, fill)?,
            neg: DevRows::filled(gpu, dc, dc, fill)?,
        })
    }

    pub fn upload(gpu: &GpuContext, s: &SignMasks) -> Result<Self> {
        Ok(DevSigns {
            pos: DevRows::upload(gpu, &s.pos)?,
            neg: DevRows::upload(gpu, &s.neg)?,
        })
    }

    pub fn download(&self, gpu: &GpuContext) -> Result<SignMasks> {
        Ok(SignMasks {
            pos: self.pos.download(gpu)?,
            neg: self.neg.download(gpu)?,
        })
    }

    pub fn n_cols(&self) -> usize {
        self.pos.n_cols
    }
}

// ---------------------------------------------------------------- encode_binarize.cu

/// Optional dense outputs of [`encode_binarize`].
#[derive(Default)]
pub struct EncodeOutputs<'a> {
    /// H as 0/1 f32, `n x d'`
    pub h_f32: Option<&'a mut CudaSlice<f32>>,
    /// H as 0/1 bf16, `n x d'`
    pub h_bf16: Option<&'a mut CudaSlice<bf16>>,
}

/// `Z += bias` (when given; written back to `z` when `write_z`), `codes = 1[Z > 0]` packed by rows,
/// plus the dense 0/1 decoder inputs asked for. Twin of [`PackedRows::encode_positive`].
pub fn encode_binarize(
    gpu: &GpuContext,
    z: &mut CudaSlice<f32>,
    bias: Option<&dyn DevicePtr<f32>>,
    write_z: bool,
    codes: &mut DevRows,
    out: EncodeOutputs<'_>,
) -> Result<()> {
    let (n, dc) = (codes.n_rows, codes.n_cols);
    check_len("z", z.len(), n * dc)?;
    check_len("codes", codes.words.len(), n * codes.words_per_row())?;
    if let Some(b) = bias {
        check_len("bias", b.len(), dc)?;
    }
    if let Some(h) = &out.h_f32 {
        check_len("h_f32", h.len(), n * dc)?;
    }
    if let Some(h) = &out.h_bf16 {
        check_len("h_bf16", h.len(), n * dc)?;
    }
    if n == 0 || dc == 0 {
        return Ok(());
    }
    let warps = n * codes.words_per_row();
    let zp = dpm(gpu, z);
    let z_out = if write_z { zp } else { 0 };
    launch!(
        gpu,
        "encode_binarize",
        grid1(warps.div_ceil(8), 256),
        [
            zp,
            opt(gpu, bias),
            to_i32("n", n)?,
            to_i32("d'", dc)?,
            z_out,
            dpm(gpu, &mut codes.words),
            opt_mut(gpu, out.h_f32),
            opt_mut(gpu, out.h_bf16),
        ]
    );
    Ok(())
}

/// Codes `1[z > 0]` of a row-major `n x d'` matrix into `codes` (twin of
/// `PackedRows::encode_positive`; `z` is not modified).
pub fn encode_positive(gpu: &GpuContext, z: &CudaSlice<f32>, codes: &mut DevRows) -> Result<()> {
    let (n, dc) = (codes.n_rows, codes.n_cols);
    check_len("z", z.len(), n * dc)?;
    check_len("codes", codes.words.len(), n * codes.words_per_row())?;
    if n == 0 || dc == 0 {
        return Ok(());
    }
    let warps = n * codes.words_per_row();
    launch!(
        gpu,
        "encode_binarize",
        grid1(warps.div_ceil(8), 256),
        [
            dp(gpu, z),
            0u64,
            to_i32("n", n)?,
            to_i32("d'", dc)?,
            0u64,
            dpm(gpu, &mut codes.words),
            0u64,
            0u64,
        ]
    );
    Ok(())
}

// ---------------------------------------------------------------- encode_gemm.cu

/// The encoder GEMM on bf16 tensor cores with the binariser in its epilogue: `Z = X W_enc +
/// b_enc` (f32 accumulation), `codes = 1[Z > 0]`, optional Z (f32) and H (bf16). `x` is `n x d`,
/// `w_enc` is `d x d'` (golden layout), both bf16 and 16-byte aligned; needs `d % 8 == 0` and
/// `d' % 8 == 0`. Twin: `bae_ref::encode_pre` + `PackedRows::encode_positive` on bf16-rounded
/// operands.
#[allow(clippy::too_many_arguments)]
pub fn encode_gemm(
    gpu: &GpuContext,
    x: &impl DevicePtr<bf16>,
    w_enc: &impl DevicePtr<bf16>,
    b_enc: &impl DevicePtr<f32>,
    d: usize,
    codes: &mut DevRows,
    z: Option<&mut CudaSlice<f32>>,
    h_bf16: Option<&mut CudaSlice<bf16>>,
) -> Result<()> {
    let (n, dc) = (codes.n_rows, codes.n_cols);
    if !encode_gemm_supported(d, dc) {
        return Err(GpuError::Invalid(format!(
            "encode_gemm needs d and d' multiples of 8 (d={d}, d'={dc})"
        )));
    }
    check_len("x", x.len(), n * d)?;
    check_len("w_enc", w_enc.len(), d * dc)?;
    check_len("b_enc", b_enc.len(), dc)?;
    check_len("codes", codes.words.len(), n * codes.words_per_row())?;
    if let Some(v) = &z {
        check_len("z", v.len(), n * dc)?;
    }
    if let Some(v) = &h_bf16 {
        check_len("h_bf16", v.len(), n * dc)?;
    }
    if n.div_ceil(128) > 65535 {
        return Err(GpuError::Invalid(
            "too many rows for encode_gemm's grid".into(),
        ));
    }
    let (xp, wp) = (dp(gpu, x), dp(gpu, w_enc));
    if xp % 16 != 0 || wp % 16 != 0 {
        return Err(GpuError::Invalid(
            "encode_gemm operands must be 16-byte aligned".into(),
        ));
    }
    if n == 0 {
        return Ok(());
    }
    launch!(
        gpu,
        "encode_gemm",
        grid2(dc.div_ceil(128), n.div_ceil(128), 256),
        [
            xp,
            wp,
            dp(gpu, b_enc),
            to_i32("n", n)?,
            to_i32("d", d)?,
            to_i32("d'", dc)?,
            dpm(gpu, &mut codes.words),
            opt_mut(gpu, z),
            opt_mut(gpu, h_bf16),
        ]
    );
    Ok(())
}

/// Whether [`encode_gemm`] takes these widths (16-byte rows for its async copies).
pub fn encode_gemm_supported(d: usize, dc: usize) -> bool {
    d > 0 && dc > 0 && d.is_multiple_of(8) && dc.is_multiple_of(8)
}

// ---------------------------------------------------------------- transpose_bits.cu

fn transpose(
    gpu: &GpuContext,
    src: &CudaSlice<u64>,
    n_major: usize,
    n_minor: usize,
    dst: &mut CudaSlice<u64>,
) -> Result<()> {
    check_len("transpose input", src.len(), n_major * n_minor.div_ceil(64))?;
    check_len(
        "transpose output",
        dst.len(),
        n_minor * n_major.div_ceil(64),
    )?;
    if n_major == 0 || n_minor == 0 {
        return Ok(());
    }
    let warps = n_major.div_ceil(64) * n_minor.div_ceil(64);
    launch!(
        gpu,
        "transpose_bits",
        grid1(warps.div_ceil(8), 256),
        [
            dp(gpu, src),
            to_i32("n_major", n_major)?,
            to_i32("n_minor", n_minor)?,
            dpm(gpu, dst),
        ]
    );
    Ok(())
}

/// Twin of [`PackedRows::to_columns`].
pub fn to_columns(gpu: &GpuContext, rows: &DevRows, cols: &mut DevCols) -> Result<()> {
    if (rows.n_rows, rows.n_cols) != (cols.n_rows, cols.n_cols) {
        return Err(GpuError::Invalid("to_columns: shapes differ".into()));
    }
    transpose(gpu, &rows.words, rows.n_rows, rows.n_cols, &mut cols.words)
}

/// Twin of [`PackedColumns::to_rows`].
pub fn to_rows(gpu: &GpuContext, cols: &DevCols, rows: &mut DevRows) -> Result<()> {
    if (rows.n_rows, rows.n_cols) != (cols.n_rows, cols.n_cols) {
        return Err(GpuError::Invalid("to_rows: shapes differ".into()));
    }
    transpose(gpu, &cols.words, cols.n_cols, cols.n_rows, &mut rows.words)
}

// ---------------------------------------------------------------- firing_entropy.cu

/// Twin of [`bae_bits::firing_counts`].
pub fn firing_counts(gpu: &GpuContext, cols: &DevCols, counts: &mut CudaSlice<u32>) -> Result<()> {
    check_len("counts", counts.len(), cols.n_cols)?;
    if cols.n_cols == 0 {
        return Ok(());
    }
    launch!(
        gpu,
        "firing_counts",
        grid1(cols.n_cols.div_ceil(8), 256),
        [
            dp(gpu, &cols.words),
            to_i32("d'", cols.n_cols)?,
            to_i32("wpc", cols.words_per_col())?,
            dpm(gpu, counts),
        ]
    );
    Ok(())
}

/// Twin of [`bae_bits::firing_counts_rows`].
pub fn firing_counts_rows(
    gpu: &GpuContext,
    rows: &DevRows,
    counts: &mut CudaSlice<u32>,
) -> Result<()> {
    check_len("counts", counts.len(), rows.n_cols)?;
    if rows.n_cols == 0 {
        return Ok(());
    }
    launch!(
        gpu,
        "firing_counts_rows",
        grid1(rows.n_cols.div_ceil(256), 256),
        [
            dp(gpu, &rows.words),
            to_i32("n", rows.n_rows)?,
            to_i32("d'", rows.n_cols)?,
            dpm(gpu, counts),
        ]
    );
    Ok(())
}

/// Entropy of the batch and its gradient coefficients (twin of [`bae_bits::entropy_bits`],
/// [`bae_bits::entropy_train_bits`] and `lambda *` [`bae_bits::entropy_grad_coeffs`]):
/// `out[0]` = summed entropy in bits, `out[1]` = 1.0 when the gradient was applied;
/// `coef[j]` = f32(lambda * dH_b/dH_ij) when `entropy_on`, the entropy is >= 0 and lambda != 0,
/// else 0.
pub fn entropy_terms(
    gpu: &GpuContext,
    counts: &CudaSlice<u32>,
    n: usize,
    lambda: f64,
    entropy_on: bool,
    coef: Option<&mut CudaSlice<f32>>,
    out: &mut CudaSlice<f64>,
) -> Result<()> {
    let dc = counts.len();
    if let Some(c) = &coef {
        check_len("coef", c.len(), dc)?;
    }
    check_len("out", out.len(), 2)?;
    if n == 0 {
        return Err(GpuError::Invalid("entropy of an empty batch".into()));
    }
    launch!(
        gpu,
        "entropy_terms",
        grid1(1, 1024),
        [
            dp(gpu, counts),
            to_i32("d'", dc)?,
            to_i32("n", n)?,
            lambda,
            entropy_on as i32,
            opt_mut(gpu, coef),
            dpm(gpu, out),
        ]
    );
    Ok(())
}

// ---------------------------------------------------------------- rate_target.cu

/// Rate-target coefficients (twin of `lambda *` [`bae_bits::rate_target_grad_coeffs`]) written to
/// `coef`, or added to what it holds when `accumulate` (the entropy coefficients).
pub fn rate_target_coef(
    gpu: &GpuContext,
    counts: &CudaSlice<u32>,
    n: usize,
    target: f64,
    lambda: f64,
    accumulate: bool,
    coef: &mut CudaSlice<f32>,
) -> Result<()> {
    let dc = counts.len();
    check_len("coef", coef.len(), dc)?;
    if n == 0 {
        return Err(GpuError::Invalid("rate target of an empty batch".into()));
    }
    launch!(
        gpu,
        "rate_target_coef",
        grid1(dc.div_ceil(256), 256),
        [
            dp(gpu, counts),
            to_i32("d'", dc)?,
            to_i32("n", n)?,
            target,
            lambda,
            accumulate as i32,
            dpm(gpu, coef),
        ]
    );
    Ok(())
}

// ---------------------------------------------------------------- coactivation.cu

/// Co-activation pass (twin of [`bae_bits::CovarianceStats::from_columns`] given the firing
/// counts): sign masks into `signs`, `abs_sum[0] += sum_{j<k} |n N_jk - c_j c_k|` (zero it first
/// for a fresh sum; the covariance term is `2 abs_sum / (n (n-1))`) and, when given, the full
/// co-activation count matrix (`d' x d'`, twin of [`bae_bits::coactivation_counts`]).
pub fn coactivation(
    gpu: &GpuContext,
    cols: &DevCols,
    counts: &CudaSlice<u32>,
    signs: &mut DevSigns,
    abs_sum: &mut CudaSlice<u64>,
    coact: Option<&mut CudaSlice<u32>>,
) -> Result<()> {
    let (n, dc) = (cols.n_rows, cols.n_cols);
    let nb = dc.div_ceil(64);
    check_len("counts", counts.len(), dc)?;
    check_len("pos", signs.pos.words.len(), dc * nb)?;
    check_len("neg", signs.neg.words.len(), dc * nb)?;
    check_len("abs_sum", abs_sum.len(), 1)?;
    if signs.pos.n_cols != dc || signs.neg.n_cols != dc {
        return Err(GpuError::Invalid("sign masks must be d' x d'".into()));
    }
    if let Some(c) = &coact {
        check_len("coact", c.len(), dc * dc)?;
    }
    if nb > 65535 {
        return Err(GpuError::Invalid(format!(
            "d' = {dc} too wide for the 2-D grid"
        )));
    }
    if dc == 0 {
        return Ok(());
    }
    launch!(
        gpu,
        "coactivation",
        grid2(nb, nb, 256),
        [
            dp(gpu, &cols.words),
            dp(gpu, counts),
            to_i32("d'", dc)?,
            to_i32("wpc", cols.words_per_col())?,
            to_i32("n", n)?,
            dpm(gpu, &mut signs.pos.words),
            dpm(gpu, &mut signs.neg.words),
            opt_mut(gpu, coact),
            dpm(gpu, abs_sum),
        ]
    );
    Ok(())
}

// ---------------------------------------------------------------- sign_product.cu

/// `q_k = sum_j c_j S_jk` (exact; the masks must be symmetric, as covariance signs are).
pub fn sign_times_counts(
    gpu: &GpuContext,
    signs: &DevSigns,
    counts: &CudaSlice<u32>,
    q: &mut CudaSlice<i64>,
) -> Result<()> {
    let dc = signs.n_cols();
    check_len("counts", counts.len(), dc)?;
    check_len("q", q.len(), dc)?;
    if dc == 0 {
        return Ok(());
    }
    launch!(
        gpu,
        "sign_times_counts",
        grid1(dc.div_ceil(8), 256),
        [
            dp(gpu, &signs.pos.words),
            dp(gpu, &signs.neg.words),
            dp(gpu, counts),
            to_i32("d'", dc)?,
            dpm(gpu, q),
        ]
    );
    Ok(())
}

fn check_rows_signs(rows: &DevRows, signs: &DevSigns) -> Result<()> {
    let dc = rows.n_cols;
    if signs.pos.n_rows != dc
        || signs.pos.n_cols != dc
        || signs.neg.n_rows != dc
        || signs.neg.n_cols != dc
    {
        return Err(GpuError::Invalid(
            "sign masks must be d' x d' with d' the codes' width".into(),
        ));
    }
    check_len(
        "codes",
        rows.words.len(),
        rows.n_rows * rows.words_per_row(),
    )?;
    check_len("pos", signs.pos.words.len(), dc * dc.div_ceil(64))?;
    check_len("neg", signs.neg.words.len(), dc * dc.div_ceil(64))?;
    if rows.n_rows.div_ceil(64) > 65535 {
        return Err(GpuError::Invalid("too many rows for the 2-D grid".into()));
    }
    Ok(())
}

/// Twin of [`bae_bits::sign_product`]: `(H S)_ik`, `n x d'` row-major.
pub fn sign_product(
    gpu: &GpuContext,
    rows: &DevRows,
    signs: &DevSigns,
    out: &mut CudaSlice<i32>,
) -> Result<()> {
    check_rows_signs(rows, signs)?;
    let (n, dc) = (rows.n_rows, rows.n_cols);
    check_len("out", out.len(), n * dc)?;
    if n == 0 || dc == 0 {
        return Ok(());
    }
    launch!(
        gpu,
        "sign_product",
        grid2(dc.div_ceil(64), n.div_ceil(64), 256),
        [
            dp(gpu, &rows.words),
            dp(gpu, &signs.pos.words),
            dp(gpu, &signs.neg.words),
            to_i32("n", n)?,
            to_i32("d'", dc)?,
            dpm(gpu, out),
        ]
    );
    Ok(())
}

/// Where the fused backward of H writes dL/dZ.
#[derive(Default)]
pub struct GradOutputs<'a> {
    pub dz: Option<&'a mut CudaSlice<f32>>,
    pub dz_bf16: Option<&'a mut CudaSlice<bf16>>,
}

/// Twin of `CovarianceTerm::add_covariance_grad` fused with the rest of the backward of H:
/// `G += coef` (entropy, optional), `G += weight * 2/(n(n-1)) * (n (H S) - q)` with `q` from
/// [`sign_times_counts`], then `dL/dZ` by the estimator into `out`. `G` is updated in place.
#[allow(clippy::too_many_arguments)]
pub fn add_covariance_grad(
    gpu: &GpuContext,
    rows: &DevRows,
    signs: &DevSigns,
    q: &CudaSlice<i64>,
    coef: Option<&CudaSlice<f32>>,
    weight: f64,
    estimator: Estimator,
    g: &mut CudaSlice<f32>,
    out: GradOutputs<'_>,
) -> Result<()> {
    check_rows_signs(rows, signs)?;
    let (n, dc) = (rows.n_rows, rows.n_cols);
    check_len("q", q.len(), dc)?;
    check_len("g", g.len(), n * dc)?;
    if let Some(c) = coef {
        check_len("coef", c.len(), dc)?;
    }
    if let Some(v) = &out.dz {
        check_len("dz", v.len(), n * dc)?;
    }
    if let Some(v) = &out.dz_bf16 {
        check_len("dz_bf16", v.len(), n * dc)?;
    }
    if n < 2 {
        return Err(GpuError::Invalid("the covariance term needs n >= 2".into()));
    }
    if dc == 0 {
        return Ok(());
    }
    let scale = weight * 2.0 / (n as f64 * (n as f64 - 1.0));
    launch!(
        gpu,
        "covariance_grad",
        grid2(dc.div_ceil(64), n.div_ceil(64), 256),
        [
            dp(gpu, &rows.words),
            dp(gpu, &signs.pos.words),
            dp(gpu, &signs.neg.words),
            dp(gpu, q),
            opt(gpu, coef.map(|c| c as &dyn DevicePtr<f32>)),
            to_i32("n", n)?,
            to_i32("d'", dc)?,
            scale,
            estimator_code(estimator),
            dpm(gpu, g),
            opt_mut(gpu, out.dz),
            opt_mut(gpu, out.dz_bf16),
        ]
    );
    Ok(())
}

// ---------------------------------------------------------------- backward.cu

/// `G += coef` (optional) and `dL/dZ` by the estimator (the step's backward of H when the
/// covariance term is off). `g` is `n x d'`.
pub fn apply_estimator(
    gpu: &GpuContext,
    g: &mut CudaSlice<f32>,
    coef: Option<&CudaSlice<f32>>,
    n: usize,
    dc: usize,
    estimator: Estimator,
    out: GradOutputs<'_>,
) -> Result<()> {
    check_len("g", g.len(), n * dc)?;
    if let Some(c) = coef {
        check_len("coef", c.len(), dc)?;
    }
    if let Some(v) = &out.dz {
        check_len("dz", v.len(), n * dc)?;
    }
    if let Some(v) = &out.dz_bf16 {
        check_len("dz_bf16", v.len(), n * dc)?;
    }
    if n * dc == 0 {
        return Ok(());
    }
    launch!(
        gpu,
        "apply_estimator",
        grid1((n * dc).div_ceil(256), 256),
        [
            dpm(gpu, g),
            opt(gpu, coef.map(|c| c as &dyn DevicePtr<f32>)),
            to_i32("n", n)?,
            to_i32("d'", dc)?,
            estimator_code(estimator),
            opt_mut(gpu, out.dz),
            opt_mut(gpu, out.dz_bf16),
        ]
    );
    Ok(())
}

/// Blocks of `mse_grad`: fixed, so its partial sums (and the MSE) are deterministic.
pub const MSE_BLOCKS: usize = 264;

/// Reconstruction loss and its gradient (twin of `bae_ref::mse` and the `dl_dxhat` of
/// `bae_ref::step`): `xhat += b_dec` (when given, in place), `dxhat = f32(2/(n d)) (xhat - x)`
/// (+ bf16 copy), `sse[0] = sum (xhat - x)^2` in f64 via `partial` (`MSE_BLOCKS` doubles).
#[allow(clippy::too_many_arguments)]
pub fn mse_grad(
    gpu: &GpuContext,
    x: &impl DevicePtr<f32>,
    xhat: &mut CudaSlice<f32>,
    b_dec: Option<&dyn DevicePtr<f32>>,
    n: usize,
    d: usize,
    dxhat: &mut CudaSlice<f32>,
    dxhat_bf16: Option<&mut CudaSlice<bf16>>,
    partial: &mut CudaSlice<f64>,
    sse: &mut CudaSlice<f64>,
) -> Result<()> {
    mse_grad_scaled(
        gpu, x, xhat, b_dec, n, d, dxhat, dxhat_bf16, partial, sse, None,
    )
}

/// [`mse_grad`] with dL/dX^ = scale (X^ − X) (the FVU loss: 2 / Σ‖x − x̄‖²); None: 2 / (n d).
#[allow(clippy::too_many_arguments)]
pub fn mse_grad_scaled(
    gpu: &GpuContext,
    x: &impl DevicePtr<f32>,
    xhat: &mut CudaSlice<f32>,
    b_dec: Option<&dyn DevicePtr<f32>>,
    n: usize,
    d: usize,
    dxhat: &mut CudaSlice<f32>,
    dxhat_bf16: Option<&mut CudaSlice<bf16>>,
    partial: &mut CudaSlice<f64>,
    sse: &mut CudaSlice<f64>,
    scale: Option<f32>,
) -> Result<()> {
    check_len("x", x.len(), n * d)?;
    check_len("xhat", xhat.len(), n * d)?;
    check_len("dxhat", dxhat.len(), n * d)?;
    if let Some(b) = b_dec {
        check_len("b_dec", b.len(), d)?;
    }
    if let Some(v) = &dxhat_bf16 {
        check_len("dxhat_bf16", v.len(), n * d)?;
    }
    check_len("partial", partial.len(), MSE_BLOCKS)?;
    check_len("sse", sse.len(), 1)?;
    if n * d == 0 {
        return Err(GpuError::Invalid("MSE of an empty batch".into()));
    }
    let scale = scale.unwrap_or((2.0 / (n * d) as f64) as f32);
    let xh = dpm(gpu, xhat);
    launch!(
        gpu,
        "mse_grad",
        grid1(MSE_BLOCKS, 256),
        [
            dp(gpu, x),
            xh,
            opt(gpu, b_dec),
            to_i32("n", n)?,
            to_i32("d", d)?,
            scale,
            xh,
            dpm(gpu, dxhat),
            opt_mut(gpu, dxhat_bf16),
            dpm(gpu, partial),
        ]
    );
    launch!(
        gpu,
        "sum_f64",
        grid1(1, 32),
        [dp(gpu, partial), MSE_BLOCKS as i32, dpm(gpu, sse)]
    );
    Ok(())
}

/// Rows per partial sum of `column_sums` (the CPU twin's block).
pub const COLSUM_ROWS: usize = 64;

/// Twin of [`bae_ref::column_sums`] (bit-identical: same blocks, same order): `out[k] = sum_i
/// m[i, k]` of a row-major `rows x cols` matrix; `partial` holds `ceil(rows/64) * cols` floats.
pub fn column_sums(
    gpu: &GpuContext,
    m: &impl DevicePtr<f32>,
    rows: usize,
    cols: usize,
    partial: &mut CudaSlice<f32>,
    out: &mut impl DevicePtrMut<f32>,
) -> Result<()> {
    let blocks = rows.div_ceil(COLSUM_ROWS);
    check_len("m", m.len(), rows * cols)?;
    check_len("partial", partial.len(), blocks * cols)?;
    check_len("out", out.len(), cols)?;
    if cols == 0 {
        return Ok(());
    }
    if blocks > 65535 {
        return Err(GpuError::Invalid("too many rows for column_sums".into()));
    }
    let (r, c) = (to_i32("rows", rows)?, to_i32("cols", cols)?);
    launch!(
        gpu,
        "column_sums_partial",
        grid2(cols.div_ceil(256), blocks, 256),
        [dp(gpu, m), r, c, dpm(gpu, partial)]
    );
    launch!(
        gpu,
        "column_sums_final",
        grid1(cols.div_ceil(256), 256),
        [dp(gpu, partial), blocks as i32, c, dpm(gpu, out)]
    );
    Ok(())
}

// ---------------------------------------------------------------- decode.cu

/// Twin of [`bae_ref::decode`] for the BAE (act = H): `xhat = H W_dec + b_dec` from packed codes.
pub fn decode(
    gpu: &GpuContext,
    codes: &DevRows,
    w_dec: &impl DevicePtr<f32>,
    b_dec: &impl DevicePtr<f32>,
    d: usize,
    xhat: &mut CudaSlice<f32>,
) -> Result<()> {
    let (n, dc) = (codes.n_rows, codes.n_cols);
    check_len("codes", codes.words.len(), n * codes.words_per_row())?;
    check_len("w_dec", w_dec.len(), dc * d)?;
    check_len("b_dec", b_dec.len(), d)?;
    check_len("xhat", xhat.len(), n * d)?;
    if n == 0 || d == 0 {
        return Ok(());
    }
    if n.div_ceil(64) > 65535 {
        return Err(GpuError::Invalid("too many rows for decode's grid".into()));
    }
    launch!(
        gpu,
        "decode",
        grid2(d.div_ceil(64), n.div_ceil(64), 256),
        [
            dp(gpu, &codes.words),
            dp(gpu, w_dec),
            dp(gpu, b_dec),
            to_i32("n", n)?,
            to_i32("d'", dc)?,
            to_i32("d", d)?,
            dpm(gpu, xhat),
        ]
    );
    Ok(())
}

// ---------------------------------------------------------------- adam.cu, convert.cu

/// One Adam update (twin of `bae_ref::Adam::step` for one tensor; `t` is the step number after
/// the increment, >= 1), with the scalars rounded as the twin does. `shadow` receives bf16 copies
/// of the updated parameters.
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    gpu: &GpuContext,
    p: &mut CudaSlice<f32>,
    m: &mut CudaSlice<f32>,
    v: &mut CudaSlice<f32>,
    g: &CudaSlice<f32>,
    t: u64,
    c: &AdamConfig,
    shadow: Option<&mut CudaSlice<bf16>>,
) -> Result<()> {
    let len = p.len();
    check_len("m", m.len(), len)?;
    check_len("v", v.len(), len)?;
    check_len("g", g.len(), len)?;
    if let Some(s) = &shadow {
        check_len("shadow", s.len(), len)?;
    }
    if t == 0 {
        return Err(GpuError::Invalid("Adam step number starts at 1".into()));
    }
    let s = AdamScalars::<f32>::new(c, t);
    let blocks = len.div_ceil(256).min(gpu.sm_count() as usize * 8);
    launch!(
        gpu,
        "adam_step",
        grid1(blocks, 256),
        [
            dpm(gpu, p),
            dpm(gpu, m),
            dpm(gpu, v),
            dp(gpu, g),
            len as i64,
            s.step_size,
            s.bc2_sqrt,
            s.w1,
            s.b2,
            s.w2,
            s.eps,
            opt_mut(gpu, shadow),
        ]
    );
    Ok(())
}

/// bf16 copy (round to nearest even) of an f32 buffer.
pub fn f32_to_bf16(
    gpu: &GpuContext,
    src: &impl DevicePtr<f32>,
    dst: &mut impl DevicePtrMut<bf16>,
) -> Result<()> {
    let len = src.len();
    check_len("dst", dst.len(), len)?;
    if len == 0 {
        return Ok(());
    }
    let blocks = len.div_ceil(256).min(gpu.sm_count() as usize * 8);
    launch!(
        gpu,
        "f32_to_bf16",
        grid1(blocks, 256),
        [dp(gpu, src), len as i64, dpm(gpu, dst)]
    );
    Ok(())
}
