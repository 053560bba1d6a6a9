#![no_main]
//! `codes`: `bae_io::CodeStore` (the codes of `bae encode`): open, rows, ids, shard; `CodeStoreWriter::open` resuming it.
//! The input is a folder in one buffer: `=== file NAME` + newline before each file
//! (`bae_fuzz::input::Input::from_bytes`).
//! The body and the structure-aware mutations are `bae_fuzz`'s, replayed by `cargo test -p bae-fuzz`.

bae_fuzz::libfuzzer_target!("codes");
