#![no_main]
//! `gguf`: `bae_llm::Gguf::open`, `llama_config`, `Tokenizer::from_gguf` (+ encode/decode), `meta_*`, `tensor_f32`.
//! The body and the structure-aware mutations are `bae_fuzz`'s, replayed by `cargo test -p bae-fuzz`.

bae_fuzz::libfuzzer_target!("gguf");
