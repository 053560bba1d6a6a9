//! Every GPU kernel against its CPU twin (`bae-bits`, `bae-ref`) on fresh random inputs, ragged
//! sizes included, outputs poisoned before each launch; then a whole GPU step against
//! `bae_ref::step` + `Adam::step`, and a 200-step trajectory.
//!
//! Without a GPU (no driver, no device, or kernels not built) every test prints `SKIP: <reason>`
//! and passes; with `REQUIRE_GPU=1` a missing GPU fails. Inputs are fresh per run: the seed is
//! printed, and `BAE_TEST_SEED=<seed>` replays a run.
//!
//! Each check prints one line before its assert, `PARITY <name> max_err=<x> tol=<y> PASS|FAIL`,
//! which `scripts/gpu_session.sh` gathers into its summary (grouped by the name's part before the
//! first `/`). Exact checks print `tol=0` and, as `max_err`, the number of elements (or bits)
//! that differ. `BAE_PARITY_SMALL=1` drops the large shapes (a dimension of 2048 or more, or over
//! 10^6 elements in an n x width matrix), so that compute-sanitizer runs stay short.

use bae_bits::{CovarianceStats, PackedColumns, PackedRows};
use bae_gpu::cudarc::driver::CudaSlice;
use bae_gpu::ops::{self, DevCols, DevRows, DevSigns, EncodeOutputs, GradOutputs};
use bae_gpu::{GemmMode, GpuContext, GpuTrainer, TrainerConfig, gpu_or_skip};
use bae_ref::{Adam, AdamConfig, Arch, Estimator, Params};
use half::bf16;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// (n, d') pairs: tiny, word edges, and sizes off every multiple of 32/64/128.
const SHAPES: &[(usize, usize)] = &[
    (2, 1),
    (5, 63),
    (64, 64),
    (65, 130),
    (129, 200),
    (200, 333),
    (512, 1000),
];

fn rng(test: &str) -> ChaCha8Rng {
    let seed = std::env::var("BAE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            t.as_nanos() as u64 ^ 0x9E37_79B9_7F4A_7C15
        });
    println!("{test}: seed {seed} (BAE_TEST_SEED={seed} replays)");
    ChaCha8Rng::seed_from_u64(seed)
}

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    // Box-Muller
    let (u1, u2) = (rng.random::<f64>().max(1e-300), rng.random::<f64>());
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Pre-activations whose columns fire at varied rates: some never, some always, most in between;
/// with a few exact zeros and NaNs (which must give 0).
fn random_z(rng: &mut ChaCha8Rng, n: usize, dc: usize) -> Vec<f32> {
    let offsets: Vec<f32> = (0..dc)
        .map(|_| match rng.random_range(0..10) {
            0 => -100.0,
            1 => 100.0,
            _ => normal(rng) * 1.5,
        })
        .collect();
    let mut z: Vec<f32> = (0..n * dc).map(|i| normal(rng) + offsets[i % dc]).collect();
    for _ in 0..(n * dc / 50) {
        let i = rng.random_range(0..n * dc);
        z[i] = if rng.random::<bool>() { 0.0 } else { f32::NAN };
    }
    z
}

fn random_codes(rng: &mut ChaCha8Rng, n: usize, dc: usize) -> PackedRows {
    PackedRows::encode_positive(&random_z(rng, n, dc), n, dc)
}

fn uniform(rng: &mut ChaCha8Rng, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..len)
        .map(|_| lo + (hi - lo) * rng.random::<f32>())
        .collect()
}

fn dl<T: bae_gpu::cudarc::driver::DeviceRepr + Clone + Default>(
    gpu: &GpuContext,
    s: &CudaSlice<T>,
) -> Vec<T> {
    ops::download(gpu, s).expect("download")
}

fn up<T: bae_gpu::cudarc::driver::DeviceRepr>(gpu: &GpuContext, v: &[T]) -> CudaSlice<T> {
    ops::upload(gpu, v).expect("upload")
}

/// max |a - b| / (|b| + floor) over all elements, NaN = failure.
fn max_rel(a: &[f32], b: &[f32], floor: f32) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0f32, |m, (&x, &y)| {
        if x.is_nan() || y.is_nan() {
            return f32::INFINITY;
        }
        m.max((x - y).abs() / (y.abs() + floor))
    })
}

/// ||a - b|| / ||b|| in f64.
fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        num += (x as f64 - y as f64).powi(2);
        den += (y as f64).powi(2);
    }
    if num.is_nan() {
        return f64::INFINITY;
    }
    (num / den.max(1e-300)).sqrt()
}

// ------------------------------------------------------------------ reporting

/// `x` for a PARITY line: integers as such, anything else as `{:e}` (`inf` and `NaN` included).
fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:e}")
    }
}

/// Prints the check's PARITY line and returns `pass`, the test's own comparison (strict or not,
/// element by element or not); `max_err` and `tol` are what the line shows of it. Called before
/// the assert, so a failing check still reports.
fn report(name: &str, max_err: f64, tol: f64, pass: bool) -> bool {
    let verdict = if pass { "PASS" } else { "FAIL" };
    println!(
        "PARITY {name} max_err={} tol={} {verdict}",
        num(max_err),
        num(tol)
    );
    pass
}

/// `max_err <= tol` (NaN fails).
fn check(name: &str, max_err: f64, tol: f64) -> bool {
    report(name, max_err, tol, max_err <= tol)
}

/// `max_err < tol` (NaN fails).
fn check_below(name: &str, max_err: f64, tol: f64) -> bool {
    report(name, max_err, tol, max_err < tol)
}

/// An exact check of `ok(k)` for every `k < len`: `max_err` = how many fail, `tol=0`; panics
/// with `msg` of the first failure.
#[track_caller]
fn assert_all(name: &str, len: usize, ok: impl Fn(usize) -> bool, msg: impl Fn(usize) -> String) {
    let bad = (0..len).filter(|&k| !ok(k)).count();
    if !check(name, bad as f64, 0.0) {
        let k = (0..len).find(|&k| !ok(k)).unwrap();
        panic!("{} ({bad} of {len} differ)", msg(k));
    }
}

/// An exact check of two slices under `same`, lengths first.
#[track_caller]
fn assert_same<T: std::fmt::Debug>(
    name: &str,
    got: &[T],
    want: &[T],
    same: impl Fn(&T, &T) -> bool,
    what: &str,
) {
    if got.len() != want.len() {
        report(name, f64::INFINITY, 0.0, false);
        panic!("{what}: length gpu {} != cpu {}", got.len(), want.len());
    }
    assert_all(
        name,
        want.len(),
        |i| same(&got[i], &want[i]),
        |i| format!("{what}[{i}]: gpu {:?} != cpu {:?}", got[i], want[i]),
    );
}

/// Bit for bit (or equal: 0 == -0).
#[track_caller]
fn assert_bits_eq(name: &str, a: &[f32], b: &[f32], what: &str) {
    assert_same(
        name,
        a,
        b,
        |x, y| x.to_bits() == y.to_bits() || x == y,
        what,
    );
}

#[track_caller]
fn assert_exact<T: PartialEq + std::fmt::Debug>(name: &str, got: &[T], want: &[T], what: &str) {
    assert_same(name, got, want, |a, b| a == b, what);
}

/// Element-wise bounds: `err(k)` is (error, bound, within) of element `k`, `within` being the
/// test's own comparison. Prints the largest error / bound (NaN counts as infinite) against
/// `tol=1`; panics with `msg` of the first element out of bounds.
#[track_caller]
fn assert_bounded(
    name: &str,
    len: usize,
    err: impl Fn(usize) -> (f64, f64, bool),
    msg: impl Fn(usize) -> String,
) {
    let mut worst = 0.0f64;
    let mut first_bad = None;
    for k in 0..len {
        let (e, bound, within) = err(k);
        let r = e / bound;
        worst = worst.max(if r.is_nan() { f64::INFINITY } else { r });
        if !within && first_bad.is_none() {
            first_bad = Some(k);
        }
    }
    report(name, worst, 1.0, first_bad.is_none());
    if let Some(k) = first_bad {
        panic!("{}", msg(k));
    }
}

/// Bit matrices, compared word by word.
trait Bits: PartialEq {
    fn words(&self) -> &[u64];
    fn shape(&self) -> (usize, usize);
    /// (row, column) of bit `b` of word `w`
    fn at(&self, w: usize, b: u32) -> (usize, usize);
}

impl Bits for PackedRows {
    fn words(&self) -> &[u64] {
        PackedRows::words(self)
    }
    fn shape(&self) -> (usize, usize) {
        (self.n_rows(), self.n_cols())
    }
    fn at(&self, w: usize, b: u32) -> (usize, usize) {
        let wpr = self.words_per_row();
        (w / wpr, (w % wpr) * 64 + b as usize)
    }
}

impl Bits for PackedColumns {
    fn words(&self) -> &[u64] {
        PackedColumns::words(self)
    }
    fn shape(&self) -> (usize, usize) {
        (self.n_rows(), self.n_cols())
    }
    fn at(&self, w: usize, b: u32) -> (usize, usize) {
        let wpc = self.words_per_col();
        ((w % wpc) * 64 + b as usize, w / wpc)
    }
}

/// An exact check of two bit matrices: `max_err` = the number of differing bits.
#[track_caller]
fn assert_bits_same<B: Bits>(name: &str, got: &B, want: &B, what: &str) {
    let same_shape = got.shape() == want.shape() && got.words().len() == want.words().len();
    let differ = if same_shape {
        let xor = got.words().iter().zip(want.words());
        xor.map(|(a, b)| (a ^ b).count_ones() as f64).sum()
    } else {
        f64::INFINITY
    };
    if !report(name, differ, 0.0, got == want) {
        if !same_shape {
            panic!(
                "{what}: shape gpu {:?} != cpu {:?}",
                got.shape(),
                want.shape()
            );
        }
        let w = (0..want.words().len())
            .find(|&w| got.words()[w] != want.words()[w])
            .unwrap();
        let (i, j) = got.at(w, (got.words()[w] ^ want.words()[w]).trailing_zeros());
        panic!("{what}: {differ} bits differ, the first at ({i}, {j})");
    }
}

/// An exact check of two parameter sets: `max_err` = the number of differing elements.
#[track_caller]
fn assert_params_eq(name: &str, got: &Params<f32>, want: &Params<f32>, what: &str) {
    let (g, w) = (got.tensors(), want.tensors());
    let differ = if (got.d, got.d_code) == (want.d, want.d_code)
        && g.iter().zip(&w).all(|(a, b)| a.len() == b.len())
    {
        let pairs = g.iter().zip(&w).flat_map(|(a, b)| a.iter().zip(b.iter()));
        pairs.filter(|(x, y)| x != y).count() as f64
    } else {
        f64::INFINITY
    };
    assert!(
        report(name, differ, 0.0, got == want),
        "{what}: {differ} elements differ"
    );
}

/// Lower-case name of a parameter tensor for a PARITY line.
fn key(name: &str) -> String {
    name.to_lowercase().replace(char::is_whitespace, "_")
}

/// `BAE_PARITY_SMALL=1` (the compute-sanitizer runs): only the small shapes run.
fn small_only() -> bool {
    std::env::var("BAE_PARITY_SMALL").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Whether the shape of `n` rows of these widths runs: always, unless `BAE_PARITY_SMALL` is set
/// and it is large (a dimension of 2048 or more, or an n x width matrix over 10^6 elements).
fn runs(test: &str, n: usize, widths: &[usize]) -> bool {
    let large = n >= 2048 || widths.iter().any(|&w| w >= 2048 || n * w > 1_000_000);
    if large && small_only() {
        println!("{test}: BAE_PARITY_SMALL set, n={n} widths {widths:?} not run");
        return false;
    }
    true
}

#[test]
fn kernels_compile_without_spills() {
    if !bae_gpu::kernels::KERNELS_BUILT {
        println!(
            "SKIP: kernels_compile_without_spills: {}",
            bae_gpu::kernels::NOT_BUILT_REASON
        );
        return;
    }
    print!("{}", bae_gpu::kernels::resources_table());
    for k in bae_gpu::kernels::KERNEL_RESOURCES {
        assert_eq!(
            (k.spill_store_bytes, k.spill_load_bytes),
            (0, 0),
            "{} spills",
            k.kernel
        );
    }
    for name in [
        "encode_binarize",
        "transpose_bits",
        "firing_counts",
        "firing_counts_rows",
        "entropy_terms",
        "coactivation",
        "sign_times_counts",
        "sign_product",
        "covariance_grad",
        "mse_grad",
        "apply_estimator",
        "column_sums_partial",
        "column_sums_final",
        "sum_f64",
        "decode",
        "adam_step",
        "f32_to_bf16",
    ] {
        assert!(
            bae_gpu::kernels::KERNEL_RESOURCES
                .iter()
                .any(|k| k.kernel == name),
            "kernel {name} missing"
        );
    }
}

#[test]
fn encode_binarize_matches_encode_positive() {
    let Some(gpu) = gpu_or_skip("encode_binarize") else {
        return;
    };
    let mut rng = rng("encode_binarize");
    for &(n, dc) in SHAPES
        .iter()
        .filter(|s| runs("encode_binarize", s.0, &[s.1]))
    {
        let tag = format!("n{n}_dc{dc}");
        let zraw = random_z(&mut rng, n, dc);
        let bias = uniform(&mut rng, dc, -0.5, 0.5);
        let z: Vec<f32> = zraw
            .iter()
            .enumerate()
            .map(|(i, &v)| v + bias[i % dc])
            .collect();
        let want = PackedRows::encode_positive(&z, n, dc);

        let mut zd = up(&gpu, &zraw);
        let bd = up(&gpu, &bias);
        let mut codes = DevRows::filled(&gpu, n, dc, !0).unwrap();
        let mut h = ops::filled(&gpu, n * dc, f32::NAN).unwrap();
        let mut hb = ops::filled(&gpu, n * dc, bf16::NAN).unwrap();
        ops::encode_binarize(
            &gpu,
            &mut zd,
            Some(&bd),
            true,
            &mut codes,
            EncodeOutputs {
                h_f32: Some(&mut h),
                h_bf16: Some(&mut hb),
            },
        )
        .unwrap();
        let got = codes.download(&gpu).expect("codes (tail bits must be 0)");
        assert_bits_same(
            &format!("encode_binarize/{tag}/codes"),
            &got,
            &want,
            &format!("codes n={n} d'={dc}"),
        );
        let z_name = format!("encode_binarize/{tag}/z");
        assert_bits_eq(&z_name, &dl(&gpu, &zd), &z, "z written back");
        let dense: Vec<f32> = want.to_dense();
        let h_name = format!("encode_binarize/{tag}/h_f32");
        assert_bits_eq(&h_name, &dl(&gpu, &h), &dense, "h_f32");
        let hb: Vec<f32> = dl(&gpu, &hb).iter().map(|v| v.to_f32()).collect();
        let hb_name = format!("encode_binarize/{tag}/h_bf16");
        assert_bits_eq(&hb_name, &hb, &dense, "h_bf16");

        // the bias-free twin
        let zd = up(&gpu, &z);
        let mut codes = DevRows::filled(&gpu, n, dc, !0).unwrap();
        ops::encode_positive(&gpu, &zd, &mut codes).unwrap();
        assert_bits_same(
            &format!("encode_positive/{tag}"),
            &codes.download(&gpu).unwrap(),
            &want,
            &format!("encode_positive n={n} d'={dc}"),
        );
    }
}

#[test]
fn encode_gemm_matches_reference() {
    let Some(gpu) = gpu_or_skip("encode_gemm") else {
        return;
    };
    let mut rng = rng("encode_gemm");
    for &(n, d, dc) in [
        (1usize, 8usize, 8usize),
        (37, 40, 72),
        (130, 72, 200),
        (513, 264, 1000),
        (512, 2048, 1024),
    ]
    .iter()
    .filter(|s| runs("encode_gemm", s.0, &[s.1, s.2]))
    {
        let tag = format!("n{n}_d{d}_dc{dc}");
        let xb: Vec<bf16> = (0..n * d)
            .map(|_| bf16::from_f32(normal(&mut rng)))
            .collect();
        let bound = 1.0 / (d as f32).sqrt();
        let wb: Vec<bf16> = uniform(&mut rng, d * dc, -bound, bound)
            .into_iter()
            .map(bf16::from_f32)
            .collect();
        let b = uniform(&mut rng, dc, -bound, bound);
        // f64 reference on the bf16-rounded operands, and the scale of each sum
        let mut z_ref = vec![0.0f64; n * dc];
        let mut mag = vec![0.0f64; n * dc];
        for i in 0..n {
            for k in 0..d {
                let xv = xb[i * d + k].to_f64();
                for j in 0..dc {
                    let t = xv * wb[k * dc + j].to_f64();
                    z_ref[i * dc + j] += t;
                    mag[i * dc + j] += t.abs();
                }
            }
            for j in 0..dc {
                z_ref[i * dc + j] += b[j] as f64;
                mag[i * dc + j] += b[j].abs() as f64;
            }
        }
        let mut codes = DevRows::filled(&gpu, n, dc, !0).unwrap();
        let mut z = ops::filled(&gpu, n * dc, f32::NAN).unwrap();
        let mut h = ops::filled(&gpu, n * dc, bf16::NAN).unwrap();
        ops::encode_gemm(
            &gpu,
            &up(&gpu, &xb),
            &up(&gpu, &wb),
            &up(&gpu, &b),
            d,
            &mut codes,
            Some(&mut z),
            Some(&mut h),
        )
        .unwrap();
        let codes = codes.download(&gpu).expect("codes (tail bits must be 0)");
        let (z, h) = (dl(&gpu, &z), dl(&gpu, &h));
        let tol = |k: usize| 1e-5 * mag[k] + 1e-6;
        let bit = |k: usize| codes.get(k / dc, k % dc);
        assert_bounded(
            &format!("encode_gemm/{tag}/z"),
            n * dc,
            |k| {
                let e = (z[k] as f64 - z_ref[k]).abs();
                (e, tol(k), e <= tol(k))
            },
            |k| format!("z[{k}] {} vs {} (n={n} d={d} d'={dc})", z[k], z_ref[k]),
        );
        assert_all(
            &format!("encode_gemm/{tag}/codes_vs_z"),
            n * dc,
            |k| bit(k) == (z[k] > 0.0),
            |k| format!("code vs its own Z at {k}: {} vs {}", bit(k), z[k]),
        );
        assert_all(
            &format!("encode_gemm/{tag}/h"),
            n * dc,
            |k| h[k].to_f32() == if bit(k) { 1.0 } else { 0.0 },
            |k| format!("H at {k}: {} with code {}", h[k], bit(k)),
        );
        // away from 0 (beyond the rounding distance), the code is the reference's
        assert_all(
            &format!("encode_gemm/{tag}/codes"),
            n * dc,
            |k| z_ref[k].abs() <= tol(k) || bit(k) == (z_ref[k] > 0.0),
            |k| {
                format!(
                    "code at {k} (n={n} d={d} d'={dc}): {} vs {}",
                    bit(k),
                    z_ref[k]
                )
            },
        );
        let near = (0..n * dc).filter(|&k| z_ref[k].abs() <= tol(k)).count();
        println!("encode_gemm n={n} d={d} d'={dc}: ok, {near} codes within rounding distance of 0");
    }
}

#[test]
fn transpose_bits_matches_to_columns() {
    let Some(gpu) = gpu_or_skip("transpose_bits") else {
        return;
    };
    let mut rng = rng("transpose_bits");
    let shapes = SHAPES.iter().chain(&[(1000, 7), (64, 1), (1, 64)]);
    for &(n, dc) in shapes.filter(|s| runs("transpose_bits", s.0, &[s.1])) {
        let rows = random_codes(&mut rng, n, dc);
        let want = rows.to_columns();
        let dr = DevRows::upload(&gpu, &rows).unwrap();
        let mut dcols = DevCols::filled(&gpu, n, dc, !0).unwrap();
        ops::to_columns(&gpu, &dr, &mut dcols).unwrap();
        assert_bits_same(
            &format!("transpose_bits/n{n}_dc{dc}/to_columns"),
            &dcols.download(&gpu).unwrap(),
            &want,
            &format!("to_columns n={n} d'={dc}"),
        );
        let mut back = DevRows::filled(&gpu, n, dc, !0).unwrap();
        ops::to_rows(&gpu, &dcols, &mut back).unwrap();
        assert_bits_same(
            &format!("transpose_bits/n{n}_dc{dc}/to_rows"),
            &back.download(&gpu).unwrap(),
            &rows,
            &format!("to_rows n={n} d'={dc}"),
        );
    }
}

#[test]
fn firing_counts_match() {
    let Some(gpu) = gpu_or_skip("firing_counts") else {
        return;
    };
    let mut rng = rng("firing_counts");
    let shapes = SHAPES.iter().chain(&[(3000, 70)]);
    for &(n, dc) in shapes.filter(|s| runs("firing_counts", s.0, &[s.1])) {
        let rows = random_codes(&mut rng, n, dc);
        let cols = rows.to_columns();
        let want = bae_bits::firing_counts(&cols);
        let mut c = ops::filled(&gpu, dc, u32::MAX).unwrap();
        ops::firing_counts(&gpu, &DevCols::upload(&gpu, &cols).unwrap(), &mut c).unwrap();
        assert_exact(
            &format!("firing_counts/n{n}_dc{dc}"),
            &dl(&gpu, &c),
            &want,
            &format!("firing_counts n={n} d'={dc}"),
        );
        let mut c = ops::filled(&gpu, dc, u32::MAX).unwrap();
        ops::firing_counts_rows(&gpu, &DevRows::upload(&gpu, &rows).unwrap(), &mut c).unwrap();
        assert_exact(
            &format!("firing_counts_rows/n{n}_dc{dc}"),
            &dl(&gpu, &c),
            &bae_bits::firing_counts_rows(&rows),
            &format!("firing_counts_rows n={n} d'={dc}"),
        );
    }
}

#[test]
fn entropy_terms_match() {
    let Some(gpu) = gpu_or_skip("entropy_terms") else {
        return;
    };
    let mut rng = rng("entropy_terms");
    let lambda = 0.37;
    let shapes = SHAPES.iter().chain(&[(512, 12288)]);
    for &(n, dc) in shapes.filter(|s| runs("entropy_terms", s.0, &[s.1])) {
        let mut counts: Vec<u32> = (0..dc).map(|_| rng.random_range(0..=n as u32)).collect();
        counts[0] = 0;
        counts[dc - 1] = n as u32;
        let rates: Vec<f64> = counts.iter().map(|&c| c as f64 / n as f64).collect();
        let h_want = bae_bits::entropy_bits(&rates);
        let coef_want: Vec<f32> = bae_bits::entropy_grad_coeffs(&rates, n)
            .iter()
            .map(|&c| (lambda * c) as f32)
            .collect();
        for on in [true, false] {
            let tag = format!("n{n}_dc{dc}_{}", if on { "on" } else { "off" });
            let cd = up(&gpu, &counts);
            let mut coef = ops::filled(&gpu, dc, f32::NAN).unwrap();
            let mut out = ops::filled(&gpu, 2, f64::NAN).unwrap();
            ops::entropy_terms(&gpu, &cd, n, lambda, on, Some(&mut coef), &mut out).unwrap();
            let out = dl(&gpu, &out);
            let scale = h_want.abs().max(1.0);
            let e = (out[0] - h_want).abs();
            assert!(
                report(
                    &format!("entropy_terms/{tag}/entropy"),
                    e / scale,
                    1e-12,
                    e <= 1e-12 * scale
                ),
                "entropy {} vs {h_want}",
                out[0]
            );
            let applied = on && h_want >= 0.0;
            let flag = if applied { 1.0 } else { 0.0 };
            assert!(
                report(
                    &format!("entropy_terms/{tag}/applied"),
                    (out[1] - flag).abs(),
                    0.0,
                    out[1] == flag
                ),
                "applied flag {} vs {flag} (n={n} d'={dc} on={on})",
                out[1]
            );
            let coef = dl(&gpu, &coef);
            let coef_name = format!("entropy_terms/{tag}/coef");
            if applied {
                // f64 log2 may differ in the last bit from the CPU's; f32 rounding hides it
                let r = max_rel(&coef, &coef_want, 1e-30);
                let tol = 2.0 * f32::EPSILON;
                assert!(
                    report(&coef_name, r as f64, tol as f64, r <= tol),
                    "coef n={n} d'={dc}: max rel err {r:e}"
                );
            } else {
                assert_all(
                    &coef_name,
                    dc,
                    |j| coef[j] == 0.0,
                    |j| {
                        format!(
                            "coef must be 0 when the term is off: coef[{j}] = {}",
                            coef[j]
                        )
                    },
                );
            }
        }
    }
    // every feature constant: the summed entropy is negative, nothing is applied
    let (n, dc) = (10, 5);
    let counts = up(&gpu, &[0u32, 10, 0, 10, 0]);
    let mut coef = ops::filled(&gpu, dc, f32::NAN).unwrap();
    let mut out = ops::filled(&gpu, 2, f64::NAN).unwrap();
    ops::entropy_terms(&gpu, &counts, n, 1.0, true, Some(&mut coef), &mut out).unwrap();
    let out = dl(&gpu, &out);
    let coef = dl(&gpu, &coef);
    let negative = out[0] < 0.0;
    let wrong = [!negative, out[1] != 0.0]
        .into_iter()
        .chain(coef.iter().map(|&c| c != 0.0))
        .filter(|&w| w)
        .count();
    assert!(
        check("entropy_terms/all_constant", wrong as f64, 0.0),
        "constant features: entropy {} (must be < 0), applied {} (must be 0), coef {coef:?}",
        out[0],
        out[1]
    );
}

/// GPU covariance statistics of `rows`: (coact, signs, abs_sum).
fn gpu_covariance(
    gpu: &GpuContext,
    rows: &PackedRows,
    want_coact: bool,
) -> (Option<Vec<u32>>, DevSigns, u64) {
    let (n, dc) = (rows.n_rows(), rows.n_cols());
    let cols = DevCols::upload(gpu, &rows.to_columns()).unwrap();
    let counts = up(gpu, &bae_bits::firing_counts_rows(rows));
    let mut signs = DevSigns::filled(gpu, dc, !0).unwrap();
    let mut abs = ops::zeros::<u64>(gpu, 1).unwrap();
    let mut coact = want_coact.then(|| ops::filled(gpu, dc * dc, u32::MAX).unwrap());
    let _ = n;
    ops::coactivation(gpu, &cols, &counts, &mut signs, &mut abs, coact.as_mut()).unwrap();
    (coact.map(|c| dl(gpu, &c)), signs, dl(gpu, &abs)[0])
}

#[test]
fn coactivation_matches_covariance_stats() {
    let Some(gpu) = gpu_or_skip("coactivation") else {
        return;
    };
    let mut rng = rng("coactivation");
    let shapes = SHAPES.iter().chain(&[(1000, 100), (70, 129)]);
    for &(n, dc) in shapes.filter(|s| runs("coactivation", s.0, &[s.1])) {
        let tag = format!("n{n}_dc{dc}");
        let rows = random_codes(&mut rng, n, dc);
        let stats = CovarianceStats::from_columns(&rows.to_columns()).unwrap();
        let (coact, signs, abs) = gpu_covariance(&gpu, &rows, true);
        assert_exact(
            &format!("coactivation/{tag}/counts"),
            &coact.unwrap(),
            &stats.coact,
            &format!("coactivation counts n={n} d'={dc}"),
        );
        let signs = signs.download(&gpu).unwrap();
        assert_bits_same(
            &format!("coactivation/{tag}/signs_pos"),
            &signs.pos,
            &stats.signs.pos,
            &format!("positive sign mask n={n} d'={dc}"),
        );
        assert_bits_same(
            &format!("coactivation/{tag}/signs_neg"),
            &signs.neg,
            &stats.signs.neg,
            &format!("negative sign mask n={n} d'={dc}"),
        );
        let term = (2 * abs as u128) as f64 / (n as u128 * (n as u128 - 1)) as f64;
        assert!(
            report(
                &format!("coactivation/{tag}/term"),
                (term - stats.term).abs(),
                0.0,
                term == stats.term
            ),
            "covariance term n={n} d'={dc}: gpu {term:e} != cpu {:e}",
            stats.term
        );
    }
}

#[test]
fn sign_product_matches() {
    let Some(gpu) = gpu_or_skip("sign_product") else {
        return;
    };
    let mut rng = rng("sign_product");
    for &(n, dc) in SHAPES.iter().filter(|s| runs("sign_product", s.0, &[s.1])) {
        let tag = format!("n{n}_dc{dc}");
        let rows = random_codes(&mut rng, n, dc);
        let stats = CovarianceStats::from_columns(&rows.to_columns()).unwrap();
        let want = bae_bits::sign_product(&rows, &stats.signs);
        let dr = DevRows::upload(&gpu, &rows).unwrap();
        let ds = DevSigns::upload(&gpu, &stats.signs).unwrap();
        let mut out = ops::filled(&gpu, n * dc, i32::MIN).unwrap();
        ops::sign_product(&gpu, &dr, &ds, &mut out).unwrap();
        assert_exact(
            &format!("sign_product/{tag}"),
            &dl(&gpu, &out),
            &want,
            &format!("sign_product n={n} d'={dc}"),
        );

        // also with arbitrary (non-covariance) masks: rows of random bits, overlapping pos/neg
        let pos = random_codes(&mut rng, dc, dc);
        let neg = random_codes(&mut rng, dc, dc);
        let masks = bae_bits::SignMasks { pos, neg };
        let want = bae_bits::sign_product(&rows, &masks);
        let ds = DevSigns::upload(&gpu, &masks).unwrap();
        let mut out = ops::filled(&gpu, n * dc, i32::MIN).unwrap();
        ops::sign_product(&gpu, &dr, &ds, &mut out).unwrap();
        assert_exact(
            &format!("sign_product/{tag}_random_masks"),
            &dl(&gpu, &out),
            &want,
            &format!("sign_product (random masks) n={n} d'={dc}"),
        );

        // q = S c
        let counts = bae_bits::firing_counts_rows(&rows);
        let q_want: Vec<i64> = (0..dc)
            .map(|k| {
                (0..dc)
                    .map(|j| stats.signs.sign(j, k) as i64 * counts[j] as i64)
                    .sum()
            })
            .collect();
        let ds = DevSigns::upload(&gpu, &stats.signs).unwrap();
        let mut q = ops::filled(&gpu, dc, i64::MIN).unwrap();
        ops::sign_times_counts(&gpu, &ds, &up(&gpu, &counts), &mut q).unwrap();
        assert_exact(
            &format!("sign_times_counts/{tag}"),
            &dl(&gpu, &q),
            &q_want,
            &format!("sign_times_counts n={n} d'={dc}"),
        );
    }
}

fn estimator_cpu(g: &[f32], e: Estimator) -> Vec<f32> {
    match e {
        Estimator::Ste => g.to_vec(),
        Estimator::SignS => g.iter().map(|&v| v * (1.0 - v)).collect(),
    }
}

#[test]
fn covariance_grad_and_estimator_match() {
    let Some(gpu) = gpu_or_skip("covariance_grad") else {
        return;
    };
    let mut rng = rng("covariance_grad");
    for &(n, dc) in SHAPES
        .iter()
        .filter(|s| runs("covariance_grad", s.0, &[s.1]))
    {
        let rows = random_codes(&mut rng, n, dc);
        let stats = CovarianceStats::from_columns(&rows.to_columns()).unwrap();
        let g0 = uniform(&mut rng, n * dc, -0.5, 0.5);
        let coef = uniform(&mut rng, dc, -1e-3, 1e-3);
        let weight = 0.731;
        for est in [Estimator::SignS, Estimator::Ste] {
            for with_coef in [true, false] {
                let coef_tag = if with_coef { "coef" } else { "nocoef" };
                let tag = format!("n{n}_dc{dc}_{}_{coef_tag}", est.name());
                // CPU: G += coef, G += weight dD/dH, dZ = estimator(G)
                let mut g = g0.clone();
                if with_coef {
                    for (i, v) in g.iter_mut().enumerate() {
                        *v += coef[i % dc];
                    }
                }
                stats.add_covariance_grad(&rows, weight, &mut g);
                let dz_want = estimator_cpu(&g, est);

                let dr = DevRows::upload(&gpu, &rows).unwrap();
                let ds = DevSigns::upload(&gpu, &stats.signs).unwrap();
                let counts = up(&gpu, &stats.firing);
                let mut q = ops::filled(&gpu, dc, i64::MIN).unwrap();
                ops::sign_times_counts(&gpu, &ds, &counts, &mut q).unwrap();
                let coef_d = up(&gpu, &coef);
                let mut gd = up(&gpu, &g0);
                let mut dz = ops::filled(&gpu, n * dc, f32::NAN).unwrap();
                let mut dzb = ops::filled(&gpu, n * dc, bf16::NAN).unwrap();
                ops::add_covariance_grad(
                    &gpu,
                    &dr,
                    &ds,
                    &q,
                    with_coef.then_some(&coef_d),
                    weight,
                    est,
                    &mut gd,
                    GradOutputs {
                        dz: Some(&mut dz),
                        dz_bf16: Some(&mut dzb),
                    },
                )
                .unwrap();
                let what = format!("n={n} d'={dc} {est:?} coef={with_coef}");
                assert_bits_eq(
                    &format!("covariance_grad/{tag}/g"),
                    &dl(&gpu, &gd),
                    &g,
                    &format!("G {what}"),
                );
                assert_bits_eq(
                    &format!("covariance_grad/{tag}/dz"),
                    &dl(&gpu, &dz),
                    &dz_want,
                    &format!("dZ {what}"),
                );
                let dzb: Vec<f32> = dl(&gpu, &dzb).iter().map(|v| v.to_f32()).collect();
                let dzb_want: Vec<f32> = dz_want
                    .iter()
                    .map(|&v| bf16::from_f32(v).to_f32())
                    .collect();
                assert_bits_eq(
                    &format!("covariance_grad/{tag}/dz_bf16"),
                    &dzb,
                    &dzb_want,
                    &format!("dZ bf16 {what}"),
                );

                // without the covariance term: entropy add + estimator only
                let mut g = g0.clone();
                if with_coef {
                    for (i, v) in g.iter_mut().enumerate() {
                        *v += coef[i % dc];
                    }
                }
                let dz_want = estimator_cpu(&g, est);
                let mut gd = up(&gpu, &g0);
                let mut dz = ops::filled(&gpu, n * dc, f32::NAN).unwrap();
                ops::apply_estimator(
                    &gpu,
                    &mut gd,
                    with_coef.then_some(&coef_d),
                    n,
                    dc,
                    est,
                    GradOutputs {
                        dz: Some(&mut dz),
                        dz_bf16: None,
                    },
                )
                .unwrap();
                assert_bits_eq(
                    &format!("apply_estimator/{tag}/g"),
                    &dl(&gpu, &gd),
                    &g,
                    &format!("apply_estimator G {what}"),
                );
                assert_bits_eq(
                    &format!("apply_estimator/{tag}/dz"),
                    &dl(&gpu, &dz),
                    &dz_want,
                    &format!("apply_estimator dZ {what}"),
                );
            }
        }
    }
}

#[test]
fn mse_grad_and_column_sums_match() {
    let Some(gpu) = gpu_or_skip("mse_grad") else {
        return;
    };
    let mut rng = rng("mse_grad");
    for &(n, d) in [
        (1usize, 1usize),
        (7, 100),
        (65, 129),
        (512, 2048),
        (300, 3072),
    ]
    .iter()
    .filter(|s| runs("mse_grad", s.0, &[s.1]))
    {
        let tag = format!("n{n}_d{d}");
        let x = uniform(&mut rng, n * d, -2.0, 2.0);
        let raw = uniform(&mut rng, n * d, -2.0, 2.0);
        let b = uniform(&mut rng, d, -0.1, 0.1);
        let xhat: Vec<f32> = raw.iter().enumerate().map(|(i, &v)| v + b[i % d]).collect();
        let scale = (2.0 / (n * d) as f64) as f32;
        let dx_want: Vec<f32> = xhat
            .iter()
            .zip(&x)
            .map(|(&h, &v)| scale * (h - v))
            .collect();
        let mse_want = bae_ref::mse(&x, &xhat);

        let xd = up(&gpu, &x);
        let bd = up(&gpu, &b);
        let mut xh = up(&gpu, &raw);
        let mut dx = ops::filled(&gpu, n * d, f32::NAN).unwrap();
        let mut dxb = ops::filled(&gpu, n * d, bf16::NAN).unwrap();
        let mut partial = ops::filled(&gpu, ops::MSE_BLOCKS, f64::NAN).unwrap();
        let mut sse = ops::filled(&gpu, 1, f64::NAN).unwrap();
        ops::mse_grad(
            &gpu,
            &xd,
            &mut xh,
            Some(&bd),
            n,
            d,
            &mut dx,
            Some(&mut dxb),
            &mut partial,
            &mut sse,
        )
        .unwrap();
        let what = format!("n={n} d={d}");
        assert_bits_eq(
            &format!("mse_grad/{tag}/xhat"),
            &dl(&gpu, &xh),
            &xhat,
            &format!("xhat + b_dec {what}"),
        );
        assert_bits_eq(
            &format!("mse_grad/{tag}/dx"),
            &dl(&gpu, &dx),
            &dx_want,
            &format!("dL/dX^ {what}"),
        );
        // the bf16 copy the fast GEMMs read: round-to-nearest-even of the f32 gradient
        let dxb_got = dl(&gpu, &dxb);
        assert_all(
            &format!("mse_grad/{tag}/dx_bf16"),
            n * d,
            |k| dxb_got[k].to_bits() == bf16::from_f32(dx_want[k]).to_bits(),
            |k| format!("bf16 dL/dX^ {what} [{k}]: {} vs {}", dxb_got[k], dx_want[k]),
        );
        let mse = dl(&gpu, &sse)[0] / (n * d) as f64;
        let e = (mse - mse_want).abs();
        assert!(
            report(
                &format!("mse_grad/{tag}/mse"),
                e / mse_want,
                1e-12,
                e <= 1e-12 * mse_want
            ),
            "mse {mse} vs {mse_want} ({what})"
        );

        // column sums (bit-identical to the CPU's blocked order)
        let want = bae_ref::column_sums(&dx_want, d);
        let mut partial = ops::filled(&gpu, n.div_ceil(ops::COLSUM_ROWS) * d, f32::NAN).unwrap();
        let mut out = ops::filled(&gpu, d, f32::NAN).unwrap();
        ops::column_sums(&gpu, &dx, n, d, &mut partial, &mut out).unwrap();
        assert_bits_eq(
            &format!("column_sums/{tag}"),
            &dl(&gpu, &out),
            &want,
            &format!("column_sums {what}"),
        );
    }
}

#[test]
fn decode_matches() {
    let Some(gpu) = gpu_or_skip("decode") else {
        return;
    };
    let mut rng = rng("decode");
    for &(n, dc, d) in [
        (1usize, 1usize, 1usize),
        (5, 63, 70),
        (65, 130, 129),
        (200, 333, 64),
        (512, 1000, 300),
    ]
    .iter()
    .filter(|s| runs("decode", s.0, &[s.1, s.2]))
    {
        let rows = random_codes(&mut rng, n, dc);
        let mut p = Params::<f32>::zeros(d, dc);
        p.w_dec = uniform(&mut rng, dc * d, -1.0, 1.0);
        p.b_dec = uniform(&mut rng, d, -1.0, 1.0);
        let want = bae_ref::decode(&p, &rows.to_dense::<f32>(), n);
        let mut out = ops::filled(&gpu, n * d, f32::NAN).unwrap();
        let (w, b) = (up(&gpu, &p.w_dec), up(&gpu, &p.b_dec));
        ops::decode(
            &gpu,
            &DevRows::upload(&gpu, &rows).unwrap(),
            &w,
            &b,
            d,
            &mut out,
        )
        .unwrap();
        let got = dl(&gpu, &out);
        // f32 sums in another order: relative to the sum of magnitudes
        let mag: Vec<f32> = {
            let abs = Params {
                w_dec: p.w_dec.iter().map(|v| v.abs()).collect(),
                b_dec: p.b_dec.iter().map(|v| v.abs()).collect(),
                ..p.clone()
            };
            bae_ref::decode(&abs, &rows.to_dense::<f32>(), n)
        };
        assert_bounded(
            &format!("decode/n{n}_dc{dc}_d{d}"),
            n * d,
            |i| {
                let (e, bound) = ((got[i] - want[i]).abs(), 1e-6 * mag[i] + 1e-30);
                (e as f64, bound as f64, e <= bound && !got[i].is_nan())
            },
            |i| {
                format!(
                    "decode n={n} d'={dc} d={d} [{i}]: {} vs {}",
                    got[i], want[i]
                )
            },
        );
    }
}

#[test]
fn adam_and_convert_match() {
    let Some(gpu) = gpu_or_skip("adam_step") else {
        return;
    };
    let mut rng = rng("adam_step");
    let (d, dc) = (13, 37);
    let len = d * dc;
    let mut p = Params::<f32>::zeros(d, dc);
    p.w_enc = uniform(&mut rng, len, -1.0, 1.0);
    let cfg = AdamConfig {
        lr: 1e-2,
        ..AdamConfig::default()
    };
    let mut adam = Adam::new(cfg, &p);
    let (mut pd, mut md, mut vd) = (
        up(&gpu, &p.w_enc),
        ops::zeros::<f32>(&gpu, len).unwrap(),
        ops::zeros::<f32>(&gpu, len).unwrap(),
    );
    let mut shadow = ops::filled(&gpu, len, bf16::NAN).unwrap();
    for t in 1..=25u64 {
        let mut g = Params::<f32>::zeros(d, dc);
        g.w_enc = uniform(&mut rng, len, -1.0, 1.0);
        if t % 5 == 0 {
            g.w_enc[0] = 0.0;
        }
        adam.step(&mut p, &g);
        ops::adam_step(
            &gpu,
            &mut pd,
            &mut md,
            &mut vd,
            &up(&gpu, &g.w_enc),
            t,
            &cfg,
            Some(&mut shadow),
        )
        .unwrap();
        assert_bits_eq(
            &format!("adam_step/t{t}/params"),
            &dl(&gpu, &pd),
            &p.w_enc,
            &format!("params after step {t}"),
        );
        assert_bits_eq(
            &format!("adam_step/t{t}/m"),
            &dl(&gpu, &md),
            &adam.m.w_enc,
            &format!("m after step {t}"),
        );
        assert_bits_eq(
            &format!("adam_step/t{t}/v"),
            &dl(&gpu, &vd),
            &adam.v.w_enc,
            &format!("v after step {t}"),
        );
    }
    let sh: Vec<u16> = dl(&gpu, &shadow).iter().map(|v| v.to_bits()).collect();
    let want: Vec<u16> = p
        .w_enc
        .iter()
        .map(|&v| bf16::from_f32(v).to_bits())
        .collect();
    assert_exact("adam_step/bf16_shadow", &sh, &want, "bf16 shadow");

    let src = uniform(&mut rng, 1001, -1e3, 1e3);
    let mut dst = ops::filled(&gpu, 1001, bf16::NAN).unwrap();
    ops::f32_to_bf16(&gpu, &up(&gpu, &src), &mut dst).unwrap();
    let got: Vec<u16> = dl(&gpu, &dst).iter().map(|v| v.to_bits()).collect();
    let want: Vec<u16> = src.iter().map(|&v| bf16::from_f32(v).to_bits()).collect();
    assert_exact("f32_to_bf16/n1001", &got, &want, "f32_to_bf16");
}

// ------------------------------------------------------------------ whole steps

/// A model and batch whose pre-activations all stay at least `margin` (relative to the sum of
/// the magnitudes of their terms) away from 0, so that f32 GEMMs in another summation order give
/// the same codes: the encoder bias of a column is nudged until none of its |z| is that close.
/// Panics if some column cannot be separated (`margin` too large for the batch).
fn separated_problem(
    rng: &mut ChaCha8Rng,
    n: usize,
    d: usize,
    dc: usize,
    margin: f64,
) -> (Params<f32>, Vec<f32>) {
    let mut p = Params::<f32>::init_linear(d, dc, || rng.random::<f64>());
    let x: Vec<f32> = (0..n * d).map(|_| normal(rng)).collect();
    if margin == 0.0 {
        return (p, x);
    }
    for j in 0..dc {
        let separated = |b: f32| {
            (0..n).all(|i| {
                let (mut z, mut mag) = (b as f64, b.abs() as f64);
                for k in 0..d {
                    let t = x[i * d + k] as f64 * p.w_enc[k * dc + j] as f64;
                    z += t;
                    mag += t.abs();
                }
                z.abs() > margin * mag.max(1e-6)
            })
        };
        let mut tries = 0;
        while !separated(p.b_enc[j]) {
            tries += 1;
            assert!(
                tries < 1000,
                "column {j}: no bias keeps every |z| {margin} away from 0"
            );
            p.b_enc[j] += (rng.random::<f32>() - 0.5) * 0.02;
        }
    }
    (p, x)
}

fn bae(estimator: Estimator, lambda_entropy: f64, lambda_cov: f64) -> Arch {
    Arch::Bae {
        estimator,
        lambda_entropy,
        lambda_cov,
    }
}

fn compare_step(
    gpu: &GpuContext,
    n: usize,
    d: usize,
    dc: usize,
    arch: Arch,
    entropy_on: bool,
    rng: &mut ChaCha8Rng,
) {
    let (p, x) = separated_problem(rng, n, d, dc, 1e-4);
    let cfg = TrainerConfig::new(arch, AdamConfig::default(), n, GemmMode::F32);
    let mut tr = GpuTrainer::new(gpu, &p, cfg).expect("trainer");
    let losses = tr.step(&x, entropy_on).expect("gpu step");
    let got = tr.step_tensors().unwrap();

    let s = bae_ref::step(&p, &x, n, &arch, entropy_on);
    let what = format!("n={n} d={d} d'={dc} {arch:?} entropy_on={entropy_on}");
    let case = match arch {
        Arch::Bae {
            estimator,
            lambda_entropy,
            lambda_cov,
        } => format!(
            "n{n}_d{d}_dc{dc}_{}_le{lambda_entropy:e}_lc{lambda_cov:e}",
            estimator.name()
        ),
        other => format!("n{n}_d{d}_dc{dc}_{}", other.name()),
    } + if entropy_on { "_on" } else { "_off" };
    let name = |part: &str| format!("whole_step/{case}/{part}");
    assert_bits_same(
        &name("codes"),
        &got.codes,
        &s.forward.codes,
        &format!("codes {what}"),
    );
    let ez = max_rel(&got.z, &s.forward.z, 1e-3);
    assert!(
        report(&name("z"), ez as f64, 1e-4, ez < 1e-4),
        "Z {what}: max rel err {ez:e}"
    );
    for (part, label, g, c) in [
        ("x_hat", "X^", &got.x_hat, &s.forward.x_hat),
        ("dl_dxhat", "dL/dX^", &got.dl_dxhat, &s.backward.dl_dxhat),
        ("dl_dact", "G", &got.dl_dact, &s.backward.dl_dact),
        ("dl_dz", "dL/dZ", &got.dl_dz, &s.backward.dl_dz),
    ] {
        let e = rel_l2(g, c);
        assert!(
            check_below(&name(part), e, 1e-5),
            "{label} {what}: rel err {e:e}"
        );
    }
    for (t, pname) in bae_ref::PARAM_NAMES.iter().enumerate() {
        let e = rel_l2(got.grads.tensors()[t], s.backward.grads.tensors()[t]);
        assert!(
            check_below(&name(&format!("grad_{}", key(pname))), e, 1e-5),
            "grad {pname} rel err {e:e} {what}"
        );
    }
    let l = s.losses;
    let e = (losses.mse - l.mse).abs();
    assert!(
        report(&name("mse"), e / l.mse, 1e-5, e <= 1e-5 * l.mse),
        "mse {} vs {} {what}",
        losses.mse,
        l.mse
    );
    let (e, scale) = ((losses.entropy - l.entropy).abs(), l.entropy.abs().max(1.0));
    assert!(
        report(&name("entropy"), e / scale, 1e-12, e <= 1e-12 * scale),
        "entropy {} vs {} {what}",
        losses.entropy,
        l.entropy
    );
    assert!(
        report(
            &name("cov"),
            (losses.cov - l.cov).abs(),
            0.0,
            losses.cov == l.cov
        ),
        "covariance term (exact) {} vs {} {what}",
        losses.cov,
        l.cov
    );
    let e = (losses.total - l.total).abs();
    assert!(
        report(
            &name("total"),
            e / l.total.abs(),
            1e-5,
            e <= 1e-5 * l.total.abs()
        ),
        "total {} vs {} {what}",
        losses.total,
        l.total
    );

    // Adam: the GPU's update equals the CPU twin's applied to the GPU's own gradients, bit for bit
    // (on the CPU's gradients an element whose gradient is ~0 could take a step of the other sign)
    let mut p_cpu = p.clone();
    let mut adam = Adam::new(AdamConfig::default(), &p_cpu);
    adam.step(&mut p_cpu, &got.grads);
    let p_gpu = tr.params().unwrap();
    for (t, pname) in bae_ref::PARAM_NAMES.iter().enumerate() {
        assert_bits_eq(
            &name(&format!("adam_{}", key(pname))),
            p_gpu.tensors()[t],
            p_cpu.tensors()[t],
            &format!("{pname} after Adam {what}"),
        );
    }
}

/// `tf32`, `bf16_fused`, ...: a GEMM mode in PARITY names.
fn mode_name(mode: GemmMode, fused: bool) -> String {
    format!("{mode:?}").to_lowercase() + if fused { "_fused" } else { "" }
}

#[test]
fn whole_step_matches_reference() {
    let Some(gpu) = gpu_or_skip("whole_step") else {
        return;
    };
    let mut rng = rng("whole_step");
    for est in [Estimator::SignS, Estimator::Ste] {
        // large lambdas so the entropy and covariance paths weigh in the gradients
        compare_step(&gpu, 64, 48, 200, bae(est, 1e-3, 1e-3), true, &mut rng);
        compare_step(&gpu, 100, 33, 130, bae(est, 1e-3, 1e-3), false, &mut rng);
    }
    // official weights, covariance off, single row
    compare_step(
        &gpu,
        130,
        64,
        256,
        bae(Estimator::SignS, 1e-7, 1e-7),
        true,
        &mut rng,
    );
    compare_step(
        &gpu,
        37,
        20,
        70,
        bae(Estimator::SignS, 1e-3, 0.0),
        true,
        &mut rng,
    );
    compare_step(
        &gpu,
        1,
        20,
        70,
        bae(Estimator::Ste, 1e-3, 1e-3),
        true,
        &mut rng,
    );
}

#[test]
fn fast_modes_track_f32() {
    let Some(gpu) = gpu_or_skip("fast_modes") else {
        return;
    };
    let mut rng = rng("fast_modes");
    let (n, d, dc) = (256, 128, 512);
    // codes near 0 flip under bf16/TF32 rounding: the checks below only bound the damage
    let (p, x) = separated_problem(&mut rng, n, d, dc, 0.0);
    let arch = bae(Estimator::SignS, 1e-3, 1e-3);
    let mut reference = None;
    for (mode, fused) in [
        (GemmMode::F32, false),
        (GemmMode::Tf32, false),
        (GemmMode::Bf16, false),
        (GemmMode::Bf16, true),
    ] {
        let cfg = TrainerConfig {
            fused_encode: fused,
            ..TrainerConfig::new(arch, AdamConfig::default(), n, mode)
        };
        let mut tr = GpuTrainer::new(&gpu, &p, cfg).expect("trainer");
        assert_eq!(tr.fused_encode(), fused);
        let l = tr.step(&x, true).unwrap();
        let t = tr.step_tensors().unwrap();
        assert!(
            l.total.is_finite() && t.grads.first_non_finite().is_none(),
            "{mode:?} not finite"
        );
        match &reference {
            None => reference = Some((l, t)),
            Some((l0, t0)) => {
                let m = mode_name(mode, fused);
                let tol = if mode == GemmMode::Bf16 { 3e-2 } else { 5e-3 };
                let e = (l.mse - l0.mse).abs();
                assert!(
                    report(
                        &format!("fast_modes/{m}_mse"),
                        e / l0.mse,
                        tol,
                        e <= tol * l0.mse
                    ),
                    "{mode:?} mse {} vs {}",
                    l.mse,
                    l0.mse
                );
                let flips = (0..n * dc)
                    .filter(|&k| t.codes.get(k / dc, k % dc) != t0.codes.get(k / dc, k % dc))
                    .count();
                println!(
                    "{mode:?}: mse {} vs f32 {}, code flips {flips} of {}",
                    l.mse,
                    l0.mse,
                    n * dc
                );
                assert!(
                    report(
                        &format!("fast_modes/{m}_flips"),
                        flips as f64,
                        (n * dc) as f64 / 1000.0,
                        flips * 1000 <= n * dc
                    ),
                    "{mode:?}: too many code flips ({flips})"
                );
                let e = rel_l2(&t.grads.w_dec, &t0.grads.w_dec);
                assert!(
                    check_below(&format!("fast_modes/{m}_grad_w_dec"), e, 10.0 * tol),
                    "{mode:?} dW_dec rel err {e}"
                );
            }
        }
    }
}

#[test]
fn staged_batches_equal_sequential_steps() {
    let Some(gpu) = gpu_or_skip("staged_batches") else {
        return;
    };
    let mut rng = rng("staged_batches");
    let (n, d, dc) = (96, 40, 150);
    let (p, _) = separated_problem(&mut rng, n, d, dc, 0.0);
    let batches: Vec<Vec<f32>> = (0..6)
        .map(|b| (0..(n - b) * d).map(|_| normal(&mut rng)).collect())
        .collect();
    let cfg = TrainerConfig::new(
        bae(Estimator::SignS, 1e-3, 1e-3),
        AdamConfig::default(),
        n,
        GemmMode::F32,
    );
    let mut seq = GpuTrainer::new(&gpu, &p, cfg).unwrap();
    let want: Vec<_> = batches.iter().map(|b| seq.step(b, true).unwrap()).collect();

    let mut piped = GpuTrainer::new(&gpu, &p, cfg).unwrap();
    piped.stage(&batches[0]).unwrap();
    let mut got = Vec::new();
    for b in 0..batches.len() {
        if b + 1 < batches.len() {
            piped.stage(&batches[b + 1]).unwrap(); // uploads while step b computes
        }
        piped.run_staged(true, true).unwrap();
        got.push(piped.losses().unwrap());
    }
    for (b, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            report(
                &format!("staged_batches/batch{b}_total"),
                (g.total - w.total).abs(),
                0.0,
                g.total.to_bits() == w.total.to_bits()
            ),
            "batch {b}: pipelined step differs: loss {} vs {}",
            g.total,
            w.total
        );
    }
    assert_params_eq(
        "staged_batches/params",
        &piped.params().unwrap(),
        &seq.params().unwrap(),
        "final params",
    );
}

/// A ragged shape whose bf16 W_dec shadow started on a 128-byte boundary before the 256-byte
/// layout (d = 48, d' = 192): every mode runs it, tracks the CPU reference, and is bit-reproducible run to run
/// (two trainers from the same start on the same batches; GPU resume relies on it).
#[test]
fn ragged_shape_all_modes_reproducible() {
    let Some(gpu) = gpu_or_skip("ragged_modes") else {
        return;
    };
    let mut rng = rng("ragged_modes");
    let (n, d, dc) = (77, 48, 192);
    let (p, _) = separated_problem(&mut rng, n, d, dc, 0.0);
    let batches: Vec<Vec<f32>> = [n, n, 31]
        .iter()
        .map(|&m| (0..m * d).map(|_| normal(&mut rng)).collect())
        .collect();
    let arch = bae(Estimator::SignS, 1e-3, 1e-3);
    // every mode's first-step MSE against the CPU reference (f32 tightly, the fast modes loosely)
    let reference = bae_ref::step(&p, &batches[0], n, &arch, true).losses.mse;
    for (mode, fused) in [
        (GemmMode::F32, false),
        (GemmMode::Tf32, false),
        (GemmMode::Bf16, false),
        (GemmMode::Bf16, true),
    ] {
        let cfg = TrainerConfig {
            fused_encode: fused,
            ..TrainerConfig::new(arch, AdamConfig::default(), n, mode)
        };
        let run = || {
            let mut tr = GpuTrainer::new(&gpu, &p, cfg).expect("trainer");
            let l: Vec<_> = batches.iter().map(|b| tr.step(b, true).unwrap()).collect();
            (l, tr.params().unwrap())
        };
        let (l1, p1) = run();
        let (l2, p2) = run();
        let m = mode_name(mode, fused);
        assert_params_eq(
            &format!("ragged_modes/{m}_rerun_params"),
            &p1,
            &p2,
            &format!("{mode:?} fused={fused}: two runs differ"),
        );
        let (t1, t2) = (l1[2].total, l2[2].total);
        assert!(
            report(
                &format!("ragged_modes/{m}_rerun_total"),
                (t1 - t2).abs(),
                0.0,
                t1.to_bits() == t2.to_bits()
            ),
            "{mode:?} fused={fused}: last loss of two runs {t1} vs {t2}"
        );
        let mse = l1[0].mse;
        let tol = match mode {
            GemmMode::F32 => 1e-5,
            GemmMode::Tf32 => 5e-3,
            GemmMode::Bf16 => 3e-2,
        };
        println!("{mode:?} fused={fused}: first-step mse {mse} (CPU {reference})");
        let e = (mse - reference).abs();
        assert!(
            report(
                &format!("ragged_modes/{m}_mse"),
                e / reference,
                tol,
                e <= tol * reference
            ),
            "{mode:?} mse {mse} vs {reference}"
        );
    }
}

/// `step(a); stage(b); stage(c); rerun()` must not read `c` half-written over `a`.
#[test]
fn rerun_refuses_restaged_batch() {
    let Some(gpu) = gpu_or_skip("rerun") else {
        return;
    };
    let mut rng = rng("rerun");
    let (n, d, dc) = (40, 16, 64);
    let (p, x) = separated_problem(&mut rng, n, d, dc, 0.0);
    let cfg = TrainerConfig::new(
        bae(Estimator::SignS, 1e-3, 1e-3),
        AdamConfig::default(),
        n,
        GemmMode::F32,
    );
    let mut tr = GpuTrainer::new(&gpu, &p, cfg).unwrap();
    let first = tr.forward_backward(&x, true).unwrap();
    tr.rerun(false).unwrap();
    let again = tr.losses().unwrap().total;
    assert!(
        report(
            "rerun/total",
            (again - first.total).abs(),
            0.0,
            again.to_bits() == first.total.to_bits()
        ),
        "rerun loss {again} vs the step's {}",
        first.total
    );
    tr.stage(&x).unwrap();
    tr.stage(&x).unwrap();
    let r = tr.rerun(false).map_err(|e| e.to_string());
    let refused = r.as_ref().is_err_and(|e| e.contains("overwritten"));
    assert!(
        check("rerun/refuses_restaged", (!refused) as u8 as f64, 0.0),
        "rerun after two stages must fail with 'overwritten': {r:?}"
    );
}

/// `rate_target_coef` against its CPU twin, bit for bit, writing and accumulating.
#[test]
fn rate_target_coef_matches() {
    let Some(gpu) = gpu_or_skip("rate_target_coef") else {
        return;
    };
    let mut rng = rng("rate_target_coef");
    for (n, dc) in [(512usize, 2304usize), (7, 5), (77, 193)] {
        let mut counts: Vec<u32> = (0..dc).map(|_| rng.random_range(0..=n as u32)).collect();
        counts[0] = 0;
        counts[1] = n as u32;
        let rates: Vec<f64> = counts.iter().map(|&c| c as f64 / n as f64).collect();
        let (target, lambda) = (0.005, 2.0);
        let want: Vec<f32> = bae_bits::rate_target_grad_coeffs(&rates, target, n)
            .iter()
            .map(|&c| (lambda * c) as f32)
            .collect();
        let base = uniform(&mut rng, dc, -1.0, 1.0);
        let c = up(&gpu, &counts);
        let mut coef = up(&gpu, &vec![f32::NAN; dc]);
        ops::rate_target_coef(&gpu, &c, n, target, lambda, false, &mut coef).unwrap();
        let mut acc = up(&gpu, &base);
        ops::rate_target_coef(&gpu, &c, n, target, lambda, true, &mut acc).unwrap();
        let (got, got_acc) = (dl(&gpu, &coef), dl(&gpu, &acc));
        let name = format!("rate_target_coef/n{n}_dc{dc}");
        assert_all(
            &name,
            dc,
            |j| got[j].to_bits() == want[j].to_bits(),
            |j| format!("coef {j}: {} vs {}", got[j], want[j]),
        );
        assert_all(
            &format!("{name}/accumulate"),
            dc,
            |j| got_acc[j] == base[j] + want[j],
            |j| format!("accumulated coef {j}"),
        );
    }
}

/// The sparse objective (FVU loss + rate target) on the GPU against `bae_ref::step_with`.
#[test]
fn sparse_step_matches_reference() {
    let Some(gpu) = gpu_or_skip("sparse_step") else {
        return;
    };
    let mut rng = rng("sparse_step");
    let (n, d, dc) = (200, 48, 192);
    let (p, x) = separated_problem(&mut rng, n, d, dc, 1e-4);
    let arch = bae(Estimator::SignS, 0.0, 0.0);
    let opts = bae_ref::StepOptions {
        fvu_loss: true,
        rate_target: Some((0.05, 2.0)),
    };
    let cfg = TrainerConfig {
        step: opts,
        ..TrainerConfig::new(arch, AdamConfig::default(), n, GemmMode::F32)
    };
    let mut tr = GpuTrainer::new(&gpu, &p, cfg).expect("trainer");
    let l = tr.forward_backward(&x, true).unwrap();
    let got = tr.step_tensors().unwrap();
    let s = bae_ref::step_with(&p, &x, n, &arch, true, &opts);
    let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-30);
    for (part, a, b) in [
        ("fvu", l.fvu, s.losses.fvu),
        ("rate_term", l.rate_term, s.losses.rate_term),
        ("total", l.total, s.losses.total),
    ] {
        let e = rel(a, b);
        assert!(
            check(&format!("sparse_step/{part}"), e, 1e-5),
            "{part}: {a} vs {b}"
        );
    }
    for (part, g, c) in [
        ("dl_dxhat", &got.dl_dxhat, &s.backward.dl_dxhat),
        ("dl_dz", &got.dl_dz, &s.backward.dl_dz),
        ("grad_w_enc", &got.grads.w_enc, &s.backward.grads.w_enc),
        ("grad_w_dec", &got.grads.w_dec, &s.backward.grads.w_dec),
    ] {
        let e = rel_l2(g, c);
        assert!(
            check_below(&format!("sparse_step/{part}"), e, 1e-5),
            "{part}: rel err {e:e}"
        );
    }
}

#[test]
fn trajectory_200_steps_tracks_reference() {
    let Some(gpu) = gpu_or_skip("trajectory") else {
        return;
    };
    let mut rng = rng("trajectory");
    let (n, d, dc) = (64, 32, 128);
    let (p0, _) = separated_problem(&mut rng, n, d, dc, 0.0);
    // a fixed pool of batches, visited in order (as an epoch loop would)
    let pool: Vec<Vec<f32>> = (0..8)
        .map(|_| (0..n * d).map(|_| normal(&mut rng)).collect())
        .collect();
    let arch = bae(Estimator::SignS, 1e-4, 1e-4);
    let cfg = TrainerConfig::new(arch, AdamConfig::default(), n, GemmMode::F32);
    let mut tr = GpuTrainer::new(&gpu, &p0, cfg).unwrap();
    let mut p = p0.clone();
    let mut adam = Adam::new(AdamConfig::default(), &p);
    let mut worst = 0.0f64;
    for step in 0..200 {
        let x = &pool[step % pool.len()];
        let entropy_on = step >= 100;
        let s = bae_ref::step(&p, x, n, &arch, entropy_on);
        adam.step(&mut p, &s.backward.grads);
        let l = tr.step(x, entropy_on).unwrap();
        let rel = (l.total - s.losses.total).abs() / s.losses.total.abs();
        worst = worst.max(rel);
        // one line for the worst step below; a failing step prints its own first
        let ok = rel < 1e-3;
        if !ok {
            check_below(&format!("trajectory/loss_step{step}"), rel, 1e-3);
        }
        assert!(
            ok,
            "step {step}: gpu loss {} vs cpu {}",
            l.total, s.losses.total
        );
    }
    println!("worst per-step relative loss difference {worst:e}");
    assert!(
        check_below("trajectory/loss", worst, 1e-3),
        "worst per-step relative loss difference {worst:e}"
    );
    let pg = tr.params().unwrap();
    for (t, name) in bae_ref::PARAM_NAMES.iter().enumerate() {
        let e = rel_l2(pg.tensors()[t], p.tensors()[t]);
        println!("{name}: rel L2 distance after 200 steps {e:e}");
        assert!(
            check_below(&format!("trajectory/{}", key(name)), e, 1e-3),
            "{name} drifted: {e:e}"
        );
    }
}

/// The columns twin is consistent with the rows twin (guards the test helpers themselves).
#[test]
fn helpers_are_consistent() {
    let mut rng = rng("helpers");
    let rows = random_codes(&mut rng, 70, 129);
    let cols: PackedColumns = rows.to_columns();
    assert_eq!(
        bae_bits::firing_counts(&cols),
        bae_bits::firing_counts_rows(&rows)
    );
}
