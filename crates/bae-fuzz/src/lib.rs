//! # bae-fuzz: a deterministic mutation fuzzer for the parsers of untrusted files
//!
//! Stable Rust has no libFuzzer/sanitizer coverage, so this is the coverage-less equivalent:
//! seeds (valid files generated in code plus `corpus/<target>/`), stacked byte-level and
//! structure-aware mutations ([`mutate`]), one execution per input through the public API under
//! [`std::panic::catch_unwind`], a watchdog for hangs and a capped counting allocator
//! ([`alloc::CapAlloc`]) for unbounded allocations. Inputs with a new outcome (a new error
//! message, numbers blanked) join the corpus, so mutations build on inputs that reached new
//! checks. Everything follows one seed: the same command gives the same executions.
//!
//! Targets ([`targets::TARGETS`]): `safetensors` and `npy` (`bae_io::ActivationFile`),
//! `tensors` (`bae_io::load_tensors*`), `store` (`bae_io::ShardStore` and
//! `bae_llm::Manifest`), `checkpoint` (`bae_train::checkpoint::load`, `bae_train::load_init`),
//! `gguf` (`bae_llm::Gguf`, `llama_config`, `Tokenizer::from_gguf`, tensor reads).
//!
//! Run: `cargo run --release -p bae-fuzz -- TARGET --iters N --seed S` (see `--help`).

pub mod alloc;
pub mod formats;
pub mod gguf;
pub mod input;
pub mod mutate;
pub mod rng;
pub mod runner;
pub mod seeds;
pub mod targets;
