#![no_main]
//! `checkpoint`: `bae_train::checkpoint::load` and `bae_train::load_init`.
//! The body and the structure-aware mutations are `bae_fuzz`'s, replayed by `cargo test -p bae-fuzz`.

bae_fuzz::libfuzzer_target!("checkpoint");
