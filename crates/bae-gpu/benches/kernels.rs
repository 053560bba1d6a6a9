//! GPU benchmarks: every kernel and the full training step (f32, tf32 and bf16 GEMM modes, and
//! bf16 with the fused encoder) at d=576, d'=2304, n=512 and d=2048, d'=8192, n=512, each timed
//! with CUDA events (median of many single runs after warm-up) and set against its floor.
//!
//! The floor comes from two ceilings measured first, on the same device in the same run: a large
//! bf16 cuBLASLt GEMM (8192^3, random operands) and a large device-to-device copy (1 GiB, bytes
//! read plus bytes written). floor = max(FLOPs / GEMM rate, bytes / copy rate), where a step's
//! FLOPs are its five dense products (10 n d d') and its bytes the fewest a step must move
//! (X read once, the parameters and both Adam moments read and written once: 4 n d + 24 P for
//! P = 2 d d' + d + d' f32 parameters). For a kernel the FLOPs count only dense-product work
//! (`encode_gemm`, `decode`); the bit-op kernels are held to the copy rate alone.
//!
//! Greppable lines, printed as soon as measured (the session script parses them):
//!   `CEILING bf16_gemm m=.. n=.. k=.. median_ms=.. tflops=..`
//!   `CEILING dtod_copy bytes=.. median_ms=.. gbps=..`
//!   `KERNEL d=.. dc=.. n=.. name=.. median_ms=.. floor_ms=.. x_floor=..`
//!   `STEP d=.. dc=.. n=.. mode=f32|tf32|bf16|bf16+fused median_ms=.. min_ms=.. tok_s=..
//!    gemm_tflops=.. floor_ms=.. x_floor=..`
//! then a table of all of them.
//!
//! Without a GPU it prints `SKIP: ...` and exits 0 (`REQUIRE_GPU=1` makes that a failure).
//! Environment:
//! * `BAE_BENCH_QUICK=1`: the event-timed lines and table only, no criterion runs;
//! * `BAE_BENCH_CASES="d,d',n;d,d',n"`: other sizes (default `576,2304,512;2048,8192,512`);
//! * `BAE_BENCH_STEPS_ONLY=1`: the ceilings and the steps, no per-kernel items;
//! * `BAE_BENCH_REPS=N`: timed runs per median (default 100).

use bae_bits::PackedRows;
use bae_gpu::cudarc::driver::sys::CUevent_flags;
use bae_gpu::cudarc::driver::{DevicePtr, DevicePtrMut};
use bae_gpu::ops::{self, DevCols, DevRows, DevSigns, EncodeOutputs, GradOutputs};
use bae_gpu::{
    Blas, GemmMode, GemmShape, GpuContext, GpuTrainer, Result, TrainerConfig, gpu_or_skip,
};
use bae_ref::{AdamConfig, Arch, Estimator, Params};
use criterion::{Criterion, Throughput};
use half::bf16;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// Times `iters` back-to-back runs of `f` on the compute stream with CUDA events.
fn time_events(gpu: &GpuContext, iters: u64, f: &mut dyn FnMut() -> Result<()>) -> Duration {
    let ctx = gpu.cuda();
    let start = ctx
        .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
        .expect("event");
    let end = ctx
        .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
        .expect("event");
    start.record(gpu.stream()).expect("record");
    for _ in 0..iters {
        f().expect("launch");
    }
    end.record(gpu.stream()).expect("record");
    let ms = start.elapsed_ms(&end).expect("elapsed");
    Duration::from_secs_f64(ms as f64 / 1e3)
}

/// (median, min) over `reps` single event-timed runs after 3 warm-up runs, in ms.
fn median_ms(gpu: &GpuContext, reps: usize, f: &mut dyn FnMut() -> Result<()>) -> (f64, f64) {
    for _ in 0..3 {
        f().expect("warm-up");
    }
    gpu.synchronize().expect("sync");
    let mut v: Vec<f64> = (0..reps.max(1))
        .map(|_| time_events(gpu, 1, f).as_secs_f64() * 1e3)
        .collect();
    gpu.synchronize().expect("sync after timing");
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0])
}

/// The two rates every floor is measured against.
#[derive(Clone, Copy)]
struct Ceilings {
    gemm_tflops: f64,
    copy_gbps: f64,
}

impl Ceilings {
    /// max(FLOPs / GEMM rate, bytes / copy rate), in ms.
    fn floor_ms(&self, flops: f64, bytes: f64) -> f64 {
        (flops / (self.gemm_tflops * 1e9)).max(bytes / (self.copy_gbps * 1e6))
    }
}

/// Measures the bf16 cuBLASLt GEMM rate and the device-to-device copy rate.
fn measure_ceilings(gpu: &GpuContext, reps: usize) -> Result<Ceilings> {
    let mut rng = ChaCha8Rng::seed_from_u64(0xCE11);
    // bf16 GEMM, 8192^3, random operands (zeros run faster than real data)
    let k = 8192usize;
    let host: Vec<bf16> = (0..k * k)
        .map(|_| bf16::from_f32(rng.random::<f32>() * 2.0 - 1.0))
        .collect();
    let a = ops::upload(gpu, &host)?;
    let b = ops::upload(
        gpu,
        &host[k..]
            .iter()
            .chain(&host[..k])
            .copied()
            .collect::<Vec<_>>(),
    )?;
    drop(host);
    let mut c = ops::zeros::<f32>(gpu, k * k)?;
    let blas = Blas::new(gpu)?;
    let shape = GemmShape {
        m: k,
        n: k,
        k,
        a_t: false,
        b_t: false,
    };
    let (pa, _ga) = a.device_ptr(gpu.stream());
    let (pb, _gb) = b.device_ptr(gpu.stream());
    let (pc, _gc) = c.device_ptr_mut(gpu.stream());
    let mut gemm = || -> Result<()> {
        // SAFETY: a, b are k x k bf16, c is k x k f32, all live for the closure, c apart from both.
        unsafe { blas.gemm(GemmMode::Bf16, shape, pa, pb, pc, 0.0) }
    };
    let (gemm_ms, _) = median_ms(gpu, reps.min(30), &mut gemm);
    let gemm_tflops = shape.flops() / gemm_ms / 1e9;
    println!("CEILING bf16_gemm m={k} n={k} k={k} median_ms={gemm_ms:.4} tflops={gemm_tflops:.1}");
    drop((_ga, _gb, _gc));
    drop((a, b, c, blas));

    // device-to-device copy of 1 GiB, filled with random data
    let chunk_len = 16usize << 20; // 64 MiB of f32
    let chunks = 16;
    let chunk: Vec<f32> = (0..chunk_len).map(|_| rng.random::<f32>()).collect();
    let chunk = ops::upload(gpu, &chunk)?;
    let mut src = ops::zeros::<f32>(gpu, chunk_len * chunks)?;
    for i in 0..chunks {
        let mut view = src.slice_mut(i * chunk_len..(i + 1) * chunk_len);
        gpu.stream().memcpy_dtod(&chunk, &mut view)?;
    }
    let mut dst = ops::zeros::<f32>(gpu, chunk_len * chunks)?;
    let stream = gpu.stream().clone();
    let mut copy = || -> Result<()> { Ok(stream.memcpy_dtod(&src, &mut dst)?) };
    let (copy_ms, _) = median_ms(gpu, reps.min(30), &mut copy);
    let bytes = 2.0 * (chunk_len * chunks * 4) as f64;
    let copy_gbps = bytes / copy_ms / 1e6;
    println!(
        "CEILING dtod_copy bytes={bytes:.0} median_ms={copy_ms:.4} gbps={copy_gbps:.0} \
         (bytes read + written)"
    );
    Ok(Ceilings {
        gemm_tflops,
        copy_gbps,
    })
}

struct Row {
    name: String,
    n: usize,
    ms: f64,
    flops: f64,
    bytes: f64,
    floor_ms: Option<f64>,
}

#[derive(Clone, Copy)]
struct Case {
    d: usize,
    dc: usize,
    n: usize,
}

impl Case {
    /// (dense FLOPs, fewest bytes) of one training step: see the module docs.
    fn step_work(&self) -> (f64, f64) {
        let (d, dc, n) = (self.d as f64, self.dc as f64, self.n as f64);
        let params = 2.0 * d * dc + d + dc;
        (10.0 * n * d * dc, 4.0 * n * d + 24.0 * params)
    }
}

fn random_codes(rng: &mut ChaCha8Rng, n: usize, dc: usize) -> PackedRows {
    // rates spread over (0, 1) like a trained BAE's (mean ~0.5)
    let rates: Vec<f32> = (0..dc).map(|_| rng.random::<f32>()).collect();
    let z: Vec<f32> = (0..n * dc)
        .map(|i| rates[i % dc] - rng.random::<f32>())
        .collect();
    PackedRows::encode_positive(&z, n, dc)
}

fn uniform(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()
}

struct Opts {
    criterion: bool,
    kernels: bool,
    reps: usize,
}

fn bench_kernels(
    c: &mut Criterion,
    gpu: &GpuContext,
    case: &Case,
    ceil: Option<Ceilings>,
    opts: &Opts,
    table: &mut Vec<Row>,
) -> Result<()> {
    let (d, dc, n) = (case.d, case.dc, case.n);
    let tag = format!("d{d}_dc{dc}_n{n}");
    let mut rng = ChaCha8Rng::seed_from_u64(0xBAE);
    let rows = random_codes(&mut rng, n, dc);
    let (wpr, wpc, nb) = (dc.div_ceil(64), n.div_ceil(64), dc.div_ceil(64));
    let stats = bae_bits::CovarianceTerm::from_columns(&rows.to_columns()).expect("stats");

    let mut z = ops::upload(gpu, &uniform(&mut rng, n * dc))?;
    let b_enc = ops::upload(gpu, &uniform(&mut rng, dc))?;
    let mut codes = DevRows::upload(gpu, &rows)?;
    let mut cols = DevCols::upload(gpu, &rows.to_columns())?;
    let mut h_bf = ops::zeros::<bf16>(gpu, n * dc)?;
    let mut counts = ops::upload(gpu, &stats.firing)?;
    let mut coef = ops::zeros::<f32>(gpu, dc)?;
    let mut ent = ops::zeros::<f64>(gpu, 2)?;
    let mut signs = DevSigns::upload(gpu, &stats.signs)?;
    let mut abs = ops::zeros::<u64>(gpu, 1)?;
    let mut q = ops::zeros::<i64>(gpu, dc)?;
    let g0 = uniform(&mut rng, n * dc);
    let mut g = ops::upload(gpu, &g0)?;
    let mut dz = ops::zeros::<f32>(gpu, n * dc)?;
    let mut dz_bf = ops::zeros::<bf16>(gpu, n * dc)?;
    let x = ops::upload(gpu, &uniform(&mut rng, n * d))?;
    let mut xhat = ops::upload(gpu, &uniform(&mut rng, n * d))?;
    let mut dxhat = ops::zeros::<f32>(gpu, n * d)?;
    let mut decoded = ops::zeros::<f32>(gpu, n * d)?;
    let b_dec = ops::upload(gpu, &uniform(&mut rng, d))?;
    let w_dec = ops::upload(gpu, &uniform(&mut rng, dc * d))?;
    let mut partial = ops::zeros::<f64>(gpu, ops::MSE_BLOCKS)?;
    let mut sse = ops::zeros::<f64>(gpu, 1)?;
    let mut colp = ops::zeros::<f32>(gpu, n.div_ceil(64) * dc)?;
    let mut colout = ops::zeros::<f32>(gpu, dc)?;
    let params = 2 * d * dc + d + dc;
    let mut p = ops::upload(gpu, &uniform(&mut rng, params))?;
    let mut m = ops::zeros::<f32>(gpu, params)?;
    let mut v = ops::zeros::<f32>(gpu, params)?;
    let pg = ops::upload(gpu, &uniform(&mut rng, params))?;
    let mut shadow = ops::zeros::<bf16>(gpu, params)?;
    let adam = AdamConfig::default();
    let x_bf = ops::upload(
        gpu,
        &uniform(&mut rng, n * d)
            .into_iter()
            .map(bf16::from_f32)
            .collect::<Vec<_>>(),
    )?;
    let w_bf = ops::upload(
        gpu,
        &uniform(&mut rng, d * dc)
            .into_iter()
            .map(bf16::from_f32)
            .collect::<Vec<_>>(),
    )?;
    let mut codes2 = DevRows::upload(gpu, &rows)?;

    let (fn_, fdc, fd) = (n as f64, dc as f64, d as f64);
    // (name, flops or bit-ops, dense-product flops held to the GEMM rate, bytes moved at least)
    // of each kernel, run by index below
    let items: [(&str, f64, f64, f64); 12] = [
        (
            "encode_binarize",
            fn_ * fdc,
            0.0,
            fn_ * fdc * (4.0 + 2.0) + fn_ * fdc / 8.0,
        ),
        ("transpose_bits", 0.0, 0.0, 2.0 * fn_ * fdc / 8.0),
        ("firing_counts", 0.0, 0.0, fdc * wpc as f64 * 8.0),
        ("entropy_terms", 30.0 * fdc, 0.0, 8.0 * fdc),
        (
            "coactivation",
            fdc * fdc / 2.0 * wpc as f64 * 2.0,
            0.0,
            2.0 * fdc * nb as f64 * 8.0,
        ),
        (
            "sign_times_counts",
            fdc * fdc,
            0.0,
            2.0 * fdc * nb as f64 * 8.0,
        ),
        (
            "covariance_grad",
            fn_ * fdc * wpr as f64 * 4.0,
            0.0,
            fn_ * fdc * (4.0 + 4.0 + 4.0 + 2.0),
        ),
        ("mse_grad", 3.0 * fn_ * fd, 0.0, fn_ * fd * 12.0),
        ("column_sums_dz", fn_ * fdc, 0.0, fn_ * fdc * 4.0),
        (
            "decode",
            fn_ * fdc * fd,
            fn_ * fdc * fd,
            fdc * fd * 4.0 + fn_ * fd * 4.0,
        ),
        ("adam_step", 12.0 * params as f64, 0.0, params as f64 * 30.0),
        (
            "encode_gemm_bf16_mma",
            2.0 * fn_ * fd * fdc,
            2.0 * fn_ * fd * fdc,
            2.0 * (fn_ * fd + fd * fdc) + fn_ * fdc * 2.0,
        ),
    ];
    let mut run = |i: usize| -> Result<()> {
        match i {
            0 => ops::encode_binarize(
                gpu,
                &mut z,
                Some(&b_enc),
                false,
                &mut codes,
                EncodeOutputs {
                    h_f32: None,
                    h_bf16: Some(&mut h_bf),
                },
            ),
            1 => ops::to_columns(gpu, &codes, &mut cols),
            2 => ops::firing_counts(gpu, &cols, &mut counts),
            3 => ops::entropy_terms(gpu, &counts, n, 1e-7, true, Some(&mut coef), &mut ent),
            4 => {
                gpu.stream().memset_zeros(&mut abs)?;
                ops::coactivation(gpu, &cols, &counts, &mut signs, &mut abs, None)
            }
            5 => ops::sign_times_counts(gpu, &signs, &counts, &mut q),
            6 => ops::add_covariance_grad(
                gpu,
                &codes,
                &signs,
                &q,
                Some(&coef),
                1e-7,
                Estimator::SignS,
                &mut g,
                GradOutputs {
                    dz: Some(&mut dz),
                    dz_bf16: Some(&mut dz_bf),
                },
            ),
            7 => ops::mse_grad(
                gpu,
                &x,
                &mut xhat,
                None,
                n,
                d,
                &mut dxhat,
                None,
                &mut partial,
                &mut sse,
            ),
            8 => ops::column_sums(gpu, &dz, n, dc, &mut colp, &mut colout),
            9 => ops::decode(gpu, &codes, &w_dec, &b_dec, d, &mut decoded),
            10 => ops::adam_step(
                gpu,
                &mut p,
                &mut m,
                &mut v,
                &pg,
                1,
                &adam,
                Some(&mut shadow),
            ),
            _ => ops::encode_gemm(
                gpu,
                &x_bf,
                &w_bf,
                &b_enc,
                d,
                &mut codes2,
                None,
                Some(&mut h_bf),
            ),
        }
    };
    let mut group = c.benchmark_group(format!("kernels_{tag}"));
    group.throughput(Throughput::Elements(n as u64));
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (i, (name, flops, tc_flops, bytes)) in items.iter().enumerate() {
        let mut f = || run(i);
        if opts.criterion {
            group.bench_function(*name, |b| {
                b.iter_custom(|iters| time_events(gpu, iters, &mut f))
            });
        }
        let (ms, _) = median_ms(gpu, opts.reps, &mut f);
        let floor_ms = ceil.map(|c| c.floor_ms(*tc_flops, *bytes));
        println!(
            "KERNEL d={d} dc={dc} n={n} name={name} median_ms={ms:.5} floor_ms={} x_floor={}",
            fmt_opt(floor_ms, 5),
            fmt_opt(floor_ms.map(|f| ms / f), 1)
        );
        table.push(Row {
            name: format!("{tag} {name}"),
            n,
            ms,
            flops: *flops,
            bytes: *bytes,
            floor_ms,
        });
    }
    group.finish();
    Ok(())
}

fn bench_steps(
    c: &mut Criterion,
    gpu: &GpuContext,
    case: &Case,
    ceil: Option<Ceilings>,
    opts: &Opts,
    table: &mut Vec<Row>,
) -> Result<()> {
    let (d, dc, n) = (case.d, case.dc, case.n);
    let tag = format!("d{d}_dc{dc}_n{n}");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let params = Params::<f32>::init_linear(d, dc, || rng.random::<f64>());
    let batch: Vec<f32> = (0..n * d)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect();
    let arch = Arch::Bae {
        estimator: Estimator::SignS,
        lambda_entropy: 1e-7,
        lambda_cov: 1e-7,
    };
    let (step_flops, step_bytes) = case.step_work();
    let floor_ms = ceil.map(|c| c.floor_ms(step_flops, step_bytes));
    let mut group = c.benchmark_group(format!("step_{tag}"));
    group.throughput(Throughput::Elements(n as u64));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (mode, fused, label) in [
        (GemmMode::F32, false, "f32"),
        (GemmMode::Tf32, false, "tf32"),
        (GemmMode::Bf16, false, "bf16"),
        (GemmMode::Bf16, true, "bf16+fused"),
    ] {
        let cfg = TrainerConfig {
            fused_encode: fused,
            ..TrainerConfig::new(arch, AdamConfig::default(), n, mode)
        };
        let mut tr = match GpuTrainer::new(gpu, &params, cfg) {
            Ok(t) => t,
            Err(e) => {
                println!("SKIP: step d={d} dc={dc} n={n} mode={label}: {e}");
                continue;
            }
        };
        if fused && !tr.fused_encode() {
            println!("SKIP: step d={d} dc={dc} n={n} mode={label}: fused encoder not available");
            continue;
        }
        tr.step(&batch, true)?;
        let flops = tr.gemm_flops(n);
        let mut f = || tr.rerun(true);
        if opts.criterion {
            group.bench_function(label, |b| {
                b.iter_custom(|iters| time_events(gpu, iters, &mut f))
            });
        }
        let (ms, min) = median_ms(gpu, opts.reps, &mut f);
        println!(
            "STEP d={d} dc={dc} n={n} mode={label} median_ms={ms:.4} min_ms={min:.4} \
             tok_s={:.0} gemm_tflops={:.1} floor_ms={} x_floor={}",
            n as f64 / (ms / 1e3),
            flops / ms / 1e9,
            fmt_opt(floor_ms, 4),
            fmt_opt(floor_ms.map(|f| ms / f), 1)
        );
        table.push(Row {
            name: format!("{tag} step {label}"),
            n,
            ms,
            flops,
            bytes: step_bytes,
            floor_ms,
        });
    }
    group.finish();
    Ok(())
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "-".into(),
    }
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `d,d',n;d,d',n` (the default when unset).
fn cases() -> Vec<Case> {
    let spec = std::env::var("BAE_BENCH_CASES")
        .unwrap_or_else(|_| "576,2304,512;2048,8192,512".to_string());
    spec.split(';')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let v: Vec<usize> = s
                .split(',')
                .map(|t| {
                    t.trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("BAE_BENCH_CASES: bad number in {s:?}"))
                })
                .collect();
            assert!(v.len() == 3, "BAE_BENCH_CASES: want d,d',n; got {s:?}");
            Case {
                d: v[0],
                dc: v[1],
                n: v[2],
            }
        })
        .collect()
}

fn main() {
    let Some(gpu) = gpu_or_skip("bae-gpu benches") else {
        return;
    };
    println!("{gpu:?}");
    let opts = Opts {
        criterion: !env_flag("BAE_BENCH_QUICK"),
        kernels: !env_flag("BAE_BENCH_STEPS_ONLY"),
        reps: std::env::var("BAE_BENCH_REPS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(100),
    };
    let mut c = Criterion::default().configure_from_args();
    let ceil = match measure_ceilings(&gpu, opts.reps) {
        Ok(c) => Some(c),
        Err(e) => {
            println!("SKIP: ceilings (no floors): {e}");
            None
        }
    };
    let mut table = Vec::new();
    for case in &cases() {
        let what = format!("d={} d'={} n={}", case.d, case.dc, case.n);
        if opts.kernels
            && let Err(e) = bench_kernels(&mut c, &gpu, case, ceil, &opts, &mut table)
        {
            panic!("bench kernels {what}: {e}");
        }
        if let Err(e) = bench_steps(&mut c, &gpu, case, ceil, &opts, &mut table) {
            panic!("bench steps {what}: {e}");
        }
    }
    if opts.criterion {
        c.final_summary();
    }
    if let Some(c) = ceil {
        println!(
            "\nceilings: bf16 GEMM {:.1} TFLOP/s, device copy {:.0} GB/s; \
             floor = max(dense FLOPs / GEMM rate, bytes / copy rate)",
            c.gemm_tflops, c.copy_gbps
        );
    }
    println!(
        "\n{:<44} {:>10} {:>12} {:>9} {:>8} {:>10} {:>8}",
        "item", "median ms", "tokens/s", "TFLOP/s", "GB/s", "floor ms", "x floor"
    );
    for r in &table {
        let n = r.n as f64;
        let tflops = if r.flops > 0.0 {
            format!("{:.1}", r.flops / r.ms / 1e9)
        } else {
            "-".into()
        };
        let gbs = if r.bytes > 0.0 {
            format!("{:.0}", r.bytes / r.ms / 1e6)
        } else {
            "-".into()
        };
        println!(
            "{:<44} {:>10.4} {:>12.0} {:>9} {:>8} {:>10} {:>8}",
            r.name,
            r.ms,
            n / (r.ms / 1e3),
            tflops,
            gbs,
            fmt_opt(r.floor_ms, 4),
            fmt_opt(r.floor_ms.map(|f| r.ms / f), 1)
        );
    }
}
