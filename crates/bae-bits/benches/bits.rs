//! Throughput of the bit kernels at the training batch size (n = 512) and code widths 2304 and
//! 8192, plus firing counts over a large evaluation set. Byte throughputs count packed bits
//! (`n * words_per_row * 8`); co-activation throughputs count column pairs `j <= k`; the sign
//! product and the covariance gradient count `n * cols * cols` bit products (the multiply-adds of
//! the dense `H S` they replace).

use bae_bits::xorshift::XorShift64;
use bae_bits::{
    Backend, CovarianceStats, CovarianceTerm, PackedRows, coactivation_counts, firing_counts,
    firing_counts_rows, sign_product,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

/// Pre-activations with a spread of per-feature biases, so firing rates range over (0, 1).
fn random_z(n: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = XorShift64::new(seed);
    let mut next = move || (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
    let bias: Vec<f32> = (0..cols).map(|_| next() * 0.8).collect();
    (0..n * cols).map(|x| next() + bias[x % cols]).collect()
}

/// Random bits (density 1/2) straight into packed words.
fn random_rows(n: usize, cols: usize, seed: u64) -> PackedRows {
    let wpr = cols.div_ceil(64);
    let mut rng = XorShift64::new(seed);
    let tail = if cols.is_multiple_of(64) {
        !0
    } else {
        (1u64 << (cols % 64)) - 1
    };
    let words = (0..n * wpr)
        .map(|x| {
            let s = rng.next_u64();
            if x % wpr == wpr - 1 { s & tail } else { s }
        })
        .collect();
    PackedRows::from_words(n, cols, words).unwrap()
}

fn config<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500));
    g
}

fn bench_bits(c: &mut Criterion) {
    let n = 512;
    let sizes = [2304usize, 8192];
    let data: Vec<(usize, Vec<f32>, PackedRows)> = sizes
        .iter()
        .map(|&cols| {
            let z = random_z(n, cols, 0x1234_5678 + cols as u64);
            let rows = PackedRows::encode_positive(&z, n, cols);
            (cols, z, rows)
        })
        .collect();
    eprintln!("bae-bits back end: {:?}", Backend::detect());

    let mut g = config(c, "pack_f32");
    for (cols, z, rows) in &data {
        g.throughput(Throughput::Bytes((rows.words().len() * 8) as u64));
        g.bench_with_input(BenchmarkId::new("encode_positive", cols), z, |b, z| {
            b.iter(|| PackedRows::encode_positive(black_box(z), n, *cols))
        });
    }
    g.finish();

    let mut g = config(c, "to_columns");
    for (cols, _, rows) in &data {
        g.throughput(Throughput::Bytes((rows.words().len() * 8) as u64));
        g.bench_with_input(BenchmarkId::from_parameter(cols), rows, |b, r| {
            b.iter(|| black_box(r).to_columns())
        });
    }
    g.finish();

    let mut g = config(c, "firing_counts");
    for (cols, _, rows) in &data {
        let pc = rows.to_columns();
        g.throughput(Throughput::Bytes((pc.words().len() * 8) as u64));
        g.bench_with_input(BenchmarkId::new("columns", cols), &pc, |b, h| {
            b.iter(|| firing_counts(black_box(h)))
        });
        g.bench_with_input(BenchmarkId::new("rows", cols), rows, |b, h| {
            b.iter(|| firing_counts_rows(black_box(h)))
        });
    }
    // an evaluation-set sized matrix: 2^18 tokens x 2304 features (72 MiB packed), random bits
    let big_n = 1 << 18;
    let big = random_rows(big_n, 2304, 99);
    let big_c = big.to_columns();
    g.throughput(Throughput::Bytes((big.words().len() * 8) as u64));
    g.bench_function(BenchmarkId::new("columns", "262144x2304"), |b| {
        b.iter(|| firing_counts(black_box(&big_c)))
    });
    g.bench_function(BenchmarkId::new("rows", "262144x2304"), |b| {
        b.iter(|| firing_counts_rows(black_box(&big)))
    });
    g.finish();
    drop((big, big_c));

    let mut g = config(c, "coactivation");
    for (cols, _, rows) in &data {
        let pc = rows.to_columns();
        g.throughput(Throughput::Elements((cols * (cols + 1) / 2) as u64));
        g.bench_with_input(BenchmarkId::new("counts", cols), &pc, |b, h| {
            b.iter(|| coactivation_counts(black_box(h)))
        });
        g.bench_with_input(BenchmarkId::new("stats_from_columns", cols), &pc, |b, h| {
            b.iter(|| CovarianceStats::from_columns(black_box(h)).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("term_from_columns", cols), &pc, |b, h| {
            b.iter(|| CovarianceTerm::from_columns(black_box(h)).unwrap())
        });
        let mut reused = CovarianceTerm::from_columns(&pc).unwrap();
        g.bench_with_input(BenchmarkId::new("term_update", cols), &pc, |b, h| {
            b.iter(|| reused.update(black_box(h)).unwrap())
        });
        if *cols == 2304 && Backend::Popcnt.available() {
            g.bench_with_input(
                BenchmarkId::new("term_from_columns_portable", cols),
                &pc,
                |b, h| {
                    b.iter(|| {
                        CovarianceTerm::from_columns_with(Backend::Popcnt, black_box(h)).unwrap()
                    })
                },
            );
        }
    }
    g.finish();

    let mut g = config(c, "sign_product");
    for (cols, _, rows) in &data {
        let st = CovarianceTerm::from_columns(&rows.to_columns()).unwrap();
        g.throughput(Throughput::Elements((n * cols * cols) as u64));
        g.bench_with_input(BenchmarkId::new("hs", cols), rows, |b, r| {
            b.iter(|| sign_product(black_box(r), &st.signs))
        });
        let mut out = vec![0f32; n * cols];
        g.bench_with_input(
            BenchmarkId::new("add_covariance_grad", cols),
            rows,
            |b, r| b.iter(|| st.add_covariance_grad(black_box(r), 1e-7, &mut out)),
        );
        if *cols == 2304 && Backend::Popcnt.available() {
            g.bench_with_input(
                BenchmarkId::new("add_covariance_grad_portable", cols),
                rows,
                |b, r| {
                    b.iter(|| {
                        st.add_covariance_grad_with(Backend::Popcnt, black_box(r), 1e-7, &mut out)
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench_bits);
criterion_main!(benches);
