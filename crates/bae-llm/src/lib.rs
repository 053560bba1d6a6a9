//! # bae-llm: SmolLM2-135M hidden states on CPU
//!
//! Loads a llama-architecture GGUF model (SmolLM2-135M-Instruct Q4_1, fetched by
//! `bash scripts/setup.sh`) with candle's GGUF reader, dequantises the weights to f32, and runs a
//! forward pass written here that stops at the deepest requested block and returns the residual
//! stream. [`run_extract`] streams a text corpus through it into safetensors shards.
//!
//! * [`Gguf`]: metadata and weights; [`LlamaConfig`]: the hyper-parameters.
//! * [`Tokenizer`]: byte-level BPE rebuilt from the GGUF metadata (llama.cpp "smollm"
//!   pre-tokenizer: every digit alone, then the GPT-2 regex).
//! * [`Model`]: `hidden_states(ids, blocks)` and `logits(ids)`; incremental inference over a
//!   [`KvCache`] (`new_cache`, `extend`), `generate_greedy`, and `unembed_direction` (the logit
//!   effect of a residual direction). [`chat_prompt`] / [`chat_stop_ids`]: SmolLM2-Instruct's
//!   ChatML prompt and its stop tokens.
//!   **Block convention:** block `b` is the residual stream after layer `b` (0-based), i.e. after
//!   layers `0..=b`; block 15 is the output of the 16th of 30 layers.
//! * [`run_extract`] / [`ExtractOptions`]: resumable, memory-bounded extraction to
//!   `OUT/block<B>/shard-NNNNN.safetensors` + `manifest.json` (the store format of
//!   [`bae_io::extract_store`]); [`run_extract_with_progress`] reports progress through
//!   [`ExtractProgress`].
//!
//! Every error is an [`LlmError`] whose `Display` is one line.

pub mod corpus;
pub mod error;
pub mod extract;
pub mod generate;
pub mod gguf;
mod gguf_header;
pub mod kernels;
pub mod model;
mod pipeline;
pub mod shards;
pub mod tokenizer;

pub use bae_io::extract_store::{Manifest, OutDtype};
pub use error::LlmError;
pub use extract::{
    BlockSummary, DEFAULT_MODEL, ExtractOptions, ExtractProgress, ExtractSummary, NoProgress,
    SINK_POSITIONS, run_extract, run_extract_with_progress, tokenize_document,
};
pub use generate::{argmax, chat_prompt, chat_stop_ids};
pub use gguf::{Gguf, LlamaConfig};
pub use model::{KvCache, LoadOptions, Model};
pub use tokenizer::Tokenizer;
