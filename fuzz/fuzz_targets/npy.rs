#![no_main]
//! `npy`: `bae_io::ActivationFile` on a .npy activation file: open, read_rows, gather_rows, check_finite.
//! The body and the structure-aware mutations are `bae_fuzz`'s, replayed by `cargo test -p bae-fuzz`.

bae_fuzz::libfuzzer_target!("npy");
