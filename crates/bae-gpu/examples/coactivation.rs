//! Firing counts and co-activation counts of a packed code matrix through the GPU ops, checked
//! against the CPU (bae-bits). Prints one SKIP line and exits 0 without a GPU.
//!
//!     cargo run --release -p bae-gpu --example coactivation [n] [d']

use bae_bits::xorshift::XorShift64;
use bae_bits::{PackedRows, coactivation_counts, firing_counts};
use bae_gpu::ops::{self, DevCols, DevRows, DevSigns};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .map_or(default, |v| v.parse().expect("n and d' are integers"))
    };
    let (n, dc) = (arg(1, 4096), arg(2, 2304));
    let Some(gpu) = bae_gpu::gpu_or_skip("coactivation example") else {
        return Ok(());
    };
    let mut rng = XorShift64::new(11);
    let h: Vec<f32> = (0..n * dc)
        .map(|_| ((rng.next_u64() % 100) < 5) as u8 as f32)
        .collect();
    let rows = PackedRows::from_dense01(&h, n, dc);

    // upload the rows, transpose on the device, count
    let dev_rows = DevRows::upload(&gpu, &rows)?;
    let mut dev_cols = DevCols::zeros(&gpu, n, dc)?;
    ops::to_columns(&gpu, &dev_rows, &mut dev_cols)?;
    let mut counts = ops::zeros::<u32>(&gpu, dc)?;
    ops::firing_counts(&gpu, &dev_cols, &mut counts)?;
    let mut signs = DevSigns::filled(&gpu, dc, 0)?;
    let mut abs_sum = ops::zeros::<u64>(&gpu, 1)?;
    let mut coact = ops::zeros::<u32>(&gpu, dc * dc)?;
    ops::coactivation(
        &gpu,
        &dev_cols,
        &counts,
        &mut signs,
        &mut abs_sum,
        Some(&mut coact),
    )?;

    let cols = rows.to_columns();
    let same_counts = ops::download(&gpu, &counts)? == firing_counts(&cols);
    let same_coact = ops::download(&gpu, &coact)? == coactivation_counts(&cols);
    let term = 2.0 * ops::download(&gpu, &abs_sum)?[0] as f64 / (n as f64 * (n as f64 - 1.0));
    println!(
        "{n} x {dc}: firing counts equal the CPU's: {same_counts}; co-activation counts: {same_coact}; covariance term {term:.4}"
    );
    if !(same_counts && same_coact) {
        return Err("GPU and CPU counts differ".into());
    }
    Ok(())
}
