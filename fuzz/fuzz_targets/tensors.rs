#![no_main]
//! `tensors`: `bae_io::load_tensors`, `load_tensors_f64`, `load_tensors_f64_only`, `take_tensor` (model / checkpoint / `--init` files).
//! The body and the structure-aware mutations are `bae_fuzz`'s, replayed by `cargo test -p bae-fuzz`.

bae_fuzz::libfuzzer_target!("tensors");
