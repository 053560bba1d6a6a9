//! GPU benchmarks: every kernel and the full training step (three GEMM modes) at
//! d=2048, d'=8192, n=512 and d=3072, d'=12288, n=512. Timed with CUDA events (criterion's
//! `iter_custom`); after criterion, a table with the median of 50 event-timed runs per item,
//! tokens/s, achieved TFLOP/s (GEMMs and steps) and GB/s (memory-bound kernels).
//!
//! Without a GPU it prints `SKIP: ...` and exits 0 (`REQUIRE_GPU=1` makes that a failure).
//! `BAE_BENCH_QUICK=1` runs only the smaller size.

use bae_bits::PackedRows;
use bae_gpu::cudarc::driver::sys::CUevent_flags;
use bae_gpu::ops::{self, DevCols, DevRows, DevSigns, EncodeOutputs, GradOutputs};
use bae_gpu::{GemmMode, GpuContext, GpuTrainer, Result, TrainerConfig, gpu_or_skip};
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

/// Median over `reps` single timed runs (after 3 warm-up runs), in ms.
fn median_ms(gpu: &GpuContext, reps: usize, f: &mut dyn FnMut() -> Result<()>) -> f64 {
    for _ in 0..3 {
        f().expect("warm-up");
    }
    gpu.synchronize().expect("sync");
    let mut v: Vec<f64> = (0..reps)
        .map(|_| time_events(gpu, 1, f).as_secs_f64() * 1e3)
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[reps / 2]
}

struct Row {
    name: String,
    ms: f64,
    flops: f64,
    bytes: f64,
}

struct Case {
    d: usize,
    dc: usize,
    n: usize,
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

fn bench_case(
    c: &mut Criterion,
    gpu: &GpuContext,
    case: &Case,
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
    // (name, flops or bit-ops, bytes moved at least) of each kernel, run by index below
    let items: [(&str, f64, f64); 12] = [
        (
            "encode_binarize",
            fn_ * fdc,
            fn_ * fdc * (4.0 + 2.0) + fn_ * fdc / 8.0,
        ),
        ("transpose_bits", 0.0, 2.0 * fn_ * fdc / 8.0),
        ("firing_counts", 0.0, fdc * wpc as f64 * 8.0),
        ("entropy_terms", 30.0 * fdc, 8.0 * fdc),
        (
            "coactivation",
            fdc * fdc / 2.0 * wpc as f64 * 2.0,
            2.0 * fdc * nb as f64 * 8.0,
        ),
        ("sign_times_counts", fdc * fdc, 2.0 * fdc * nb as f64 * 8.0),
        (
            "covariance_grad",
            fn_ * fdc * wpr as f64 * 4.0,
            fn_ * fdc * (4.0 + 4.0 + 4.0 + 2.0),
        ),
        ("mse_grad", 3.0 * fn_ * fd, fn_ * fd * 12.0),
        ("column_sums(dz)", fn_ * fdc, fn_ * fdc * 4.0),
        ("decode", fn_ * fdc * fd, fdc * fd * 4.0 + fn_ * fd * 4.0),
        ("adam_step", 12.0 * params as f64, params as f64 * 30.0),
        (
            "encode_gemm (bf16 mma + binarize)",
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
    for (i, (name, flops, bytes)) in items.iter().enumerate() {
        let mut f = || run(i);
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| time_events(gpu, iters, &mut f))
        });
        let ms = median_ms(gpu, 50, &mut f);
        table.push(Row {
            name: format!("{tag} {name}"),
            ms,
            flops: *flops,
            bytes: *bytes,
        });
    }
    group.finish();

    // full training steps
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
    let mut group = c.benchmark_group(format!("step_{tag}"));
    group.throughput(Throughput::Elements(n as u64));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
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
        let label = if fused {
            format!("{mode:?}+fused_encode")
        } else {
            format!("{mode:?}")
        };
        let mut tr = match GpuTrainer::new(gpu, &params, cfg) {
            Ok(t) => t,
            Err(e) => {
                println!("SKIP: step {label}: {e}");
                continue;
            }
        };
        tr.step(&batch, true)?;
        let flops = tr.gemm_flops(n);
        let mut f = || tr.rerun(true);
        group.bench_function(&label, |b| {
            b.iter_custom(|iters| time_events(gpu, iters, &mut f))
        });
        let ms = median_ms(gpu, 30, &mut f);
        table.push(Row {
            name: format!("{tag} step {label}"),
            ms,
            flops,
            bytes: 0.0,
        });
    }
    group.finish();
    Ok(())
}

fn main() {
    let Some(gpu) = gpu_or_skip("bae-gpu benches") else {
        return;
    };
    println!("{gpu:?}");
    let mut c = Criterion::default().configure_from_args();
    let mut cases = vec![Case {
        d: 2048,
        dc: 8192,
        n: 512,
    }];
    if std::env::var("BAE_BENCH_QUICK").is_err() {
        cases.push(Case {
            d: 3072,
            dc: 12288,
            n: 512,
        });
    }
    let mut table = Vec::new();
    for case in &cases {
        if let Err(e) = bench_case(&mut c, &gpu, case, &mut table) {
            panic!("bench d={} d'={} n={}: {e}", case.d, case.dc, case.n);
        }
    }
    c.final_summary();
    println!(
        "\n{:<40} {:>10} {:>12} {:>10} {:>9}",
        "item", "median ms", "tokens/s", "TFLOP/s", "GB/s"
    );
    for r in &table {
        let n = 512.0;
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
            "{:<40} {:>10.4} {:>12.0} {:>10} {:>9}",
            r.name,
            r.ms,
            n / (r.ms / 1e3),
            tflops,
            gbs
        );
    }
}
