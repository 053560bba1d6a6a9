#![no_main]
//! `store`: `bae_io::ShardStore::open` (extract manifest + shards), gather, doc_of, train_rows; `bae_llm::Manifest::read`.
//! The input is a folder in one buffer: `=== file NAME` + newline before each file
//! (`bae_fuzz::input::Input::from_bytes`).
//! The body and the structure-aware mutations are `bae_fuzz`'s, replayed by `cargo test -p bae-fuzz`.

bae_fuzz::libfuzzer_target!("store");
