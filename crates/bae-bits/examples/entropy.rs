//! Entropy and co-activation counts of a packed code matrix on the CPU, with this crate alone.
//!
//!     cargo run --release -p bae-bits --example entropy [n] [d']
//!
//! Packs random codes (each feature fires at its own rate), then prints the paper's entropy, the
//! estimates with bootstrap intervals, and a corner of the exact co-activation counts.

use bae_bits::set_entropy::{EstimateOptions, estimate, groups_from_ids};
use bae_bits::xorshift::XorShift64;
use bae_bits::{PackedRows, coactivation_counts, entropy_bits, firing_rates};

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .map_or(default, |v| v.parse().expect("n and d' are integers"))
    };
    let (n, dc) = (arg(1, 4096), arg(2, 2304));
    // pre-activations: a bias per feature sets its firing rate; codes are z > 0
    let mut rng = XorShift64::new(7);
    let mut uniform = move || (rng.next_u64() >> 11) as f32 / (1u64 << 53) as f32;
    let bias: Vec<f32> = (0..dc).map(|_| -0.5 - 0.45 * uniform()).collect();
    let z: Vec<f32> = (0..n * dc).map(|i| uniform() + bias[i % dc]).collect();
    let rows = PackedRows::encode_positive(&z, n, dc);
    println!(
        "{n} x {dc} codes, {} KiB packed",
        rows.words().len() * 8 / 1024
    );

    let cols = rows.to_columns();
    let rates = firing_rates(&cols);
    println!(
        "entropy Σ_j H(p_j) = {:.2} bits (mean rate {:.3})",
        entropy_bits(&rates),
        rates.iter().sum::<f64>() / dc as f64
    );

    // documents of 256 rows each: the bootstrap resamples whole documents
    let docs: Vec<i32> = (0..n).map(|i| (i / 256) as i32).collect();
    let positions: Vec<i32> = (0..n).map(|i| (i % 256) as i32).collect();
    let (groups, unit) = groups_from_ids(&docs, &positions, 128);
    let e = estimate(&rows, &groups, unit, &EstimateOptions::default());
    println!(
        "marginal {}  Miller–Madow {}  tree {}  ({} {unit})",
        e.marginal.show(),
        e.miller_madow.show(),
        e.tree.show(),
        e.groups
    );

    let t = std::time::Instant::now();
    let coact = coactivation_counts(&cols);
    println!(
        "co-activation counts in {:.1} ms; N[0..4, 0..4]:",
        t.elapsed().as_secs_f64() * 1e3
    );
    for j in 0..4.min(dc) {
        println!("  {:?}", &coact[j * dc..j * dc + 4.min(dc)]);
    }
}
