#![no_main]
//! `npy`: `bae_io::ActivationFile` on a .npy activation file: open, read_rows, gather_rows, check_finite.
//! The body and the structure-aware mutations are `bae_fuzz`'s, replayed by `cargo test -p bae-fuzz`.

use libfuzzer_sys::{fuzz_mutator, fuzz_target, fuzzer_mutate};

const TARGET: &str = "npy";

fuzz_target!(|data: &[u8]| bae_fuzz::fuzz_one(TARGET, data));

// half of the mutations are this crate's structure-aware ones, half libFuzzer's own
fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    if seed & 1 == 0
        && let Some(m) = bae_fuzz::structured_mutation(TARGET, &data[..size], max_size, seed >> 1)
    {
        data[..m.len()].copy_from_slice(&m);
        return m.len();
    }
    fuzzer_mutate(data, size, max_size)
});
