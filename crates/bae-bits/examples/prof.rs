use bae_bits::*;
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args[1].clone();
    let cols: usize = args[2].parse().unwrap();
    let iters: usize = args[3].parse().unwrap();
    let b = match args.get(4).map(|s| s.as_str()) {
        Some("popcnt") => Backend::Popcnt,
        Some("scalar") => Backend::Scalar,
        _ => Backend::detect(),
    };
    let n = 512;
    let mut s = 12345u64;
    let z: Vec<f32> = (0..n * cols)
        .map(|x| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                + ((x % cols) as f32 / cols as f32 - 0.5) * 0.8
        })
        .collect();
    let rows = PackedRows::encode_positive(&z, n, cols);
    let pc = rows.to_columns();
    let st = CovarianceTerm::from_columns(&pc).unwrap();
    let mut out = vec![0f32; n * cols];
    let t = Instant::now();
    for _ in 0..iters {
        match what.as_str() {
            "term" => {
                std::hint::black_box(CovarianceTerm::from_columns_with(b, &pc).unwrap());
            }
            "coact" => {
                std::hint::black_box(coactivation_counts_with(b, &pc));
            }
            "hs" => {
                std::hint::black_box(sign_product_with(b, &rows, &st.signs));
            }
            "grad" => {
                st.add_covariance_grad_with(b, &rows, 1e-7, &mut out);
            }
            "tocols" => {
                std::hint::black_box(rows.to_columns());
            }
            "pack" => {
                std::hint::black_box(PackedRows::encode_positive_with(b, &z, n, cols));
            }
            _ => panic!(),
        }
    }
    let dt = t.elapsed().as_secs_f64() / iters as f64;
    println!("{what} cols={cols} {b:?}: {:.3} ms", dt * 1e3);
}
