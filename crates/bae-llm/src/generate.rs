//! Greedy generation over a KV cache and SmolLM2-Instruct's chat prompt.
//!
//! ```no_run
//! # use bae_llm::{Gguf, LoadOptions, Model, Tokenizer, chat_prompt, chat_stop_ids};
//! # fn main() -> Result<(), bae_llm::LlmError> {
//! let mut g = Gguf::open(std::path::Path::new(bae_llm::DEFAULT_MODEL))?;
//! let tok = Tokenizer::from_gguf(&g)?;
//! let model = Model::from_gguf(&mut g, LoadOptions { n_layers: None, head: true })?;
//! let prompt = chat_prompt(&tok, &[("user", "What is the capital of France?")])?;
//! let mut cache = model.new_cache();
//! let ids = model.generate_greedy(&mut cache, &prompt, 16, &chat_stop_ids(&tok))?;
//! println!("{}", tok.decode(&ids));
//! # Ok(()) }
//! ```

use crate::error::{LlmError, Result};
use crate::model::{KvCache, Model};
use crate::tokenizer::Tokenizer;

/// Start of a chat turn (one special token in SmolLM2's vocabulary).
pub const IM_START: &str = "<|im_start|>";
/// End of a chat turn; the instruct model emits it when its answer is done.
pub const IM_END: &str = "<|im_end|>";
/// The system message SmolLM2-Instruct's chat template (GGUF `tokenizer.chat_template`) inserts
/// when the first message is not a system message.
pub const SMOLLM2_DEFAULT_SYSTEM: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// Index of the largest value; ties go to the lowest index, NaN never wins (0 for all-NaN or
/// empty input).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best as u32
}

impl Model {
    /// Greedy decoding: runs `prompt` after the tokens already in `cache`, then appends the
    /// arg-max token (ties: the lower id) one at a time until it is one of `stop` or `max_new`
    /// tokens were produced. Returns the generated ids, the stop id excluded.
    ///
    /// On return the cache holds its earlier tokens, `prompt` and every returned id (a stop id
    /// is not fed back), so a conversation can continue from it; [`KvCache::truncate`] to the
    /// length before the call reuses the prefix for another prompt. Generation also ends when
    /// the context is full (the last returned id is then the one not in the cache). `prompt`
    /// must not be empty (the logits of the last cached token are not kept).
    pub fn generate_greedy(
        &self,
        cache: &mut KvCache,
        prompt: &[u32],
        max_new: usize,
        stop: &[u32],
    ) -> Result<Vec<u32>> {
        if prompt.is_empty() {
            return Err(LlmError::Input(
                "generate_greedy needs at least one prompt token".into(),
            ));
        }
        let mut logits = self.extend(cache, prompt)?;
        let mut out = Vec::new();
        while out.len() < max_new {
            let next = argmax(&logits);
            if stop.contains(&next) {
                break;
            }
            out.push(next);
            if cache.len() >= cache.capacity().min(self.config().context_length) {
                // no room to feed it back: the context is full
                break;
            }
            logits = self.extend(cache, &[next])?;
        }
        Ok(out)
    }
}

/// SmolLM2-Instruct's ChatML prompt with the generation prompt, as its chat template renders
/// it: the default system message first when the first message is not a system one, then
/// `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then `<|im_start|>assistant\n`.
///
/// `<|im_start|>` and `<|im_end|>` are single special-token ids (an error if the vocabulary
/// lacks them); the text between them is encoded with [`Tokenizer::encode`], each stretch on
/// its own, as Hugging Face's tokenizer splits on special tokens first. No BOS is added (the
/// template has none).
pub fn chat_prompt(tok: &Tokenizer, messages: &[(&str, &str)]) -> Result<Vec<u32>> {
    let start = special_id(tok, IM_START)?;
    let end = special_id(tok, IM_END)?;
    let mut ids = Vec::new();
    let mut turn = |role: &str, content: &str| {
        ids.push(start);
        ids.extend(tok.encode(&format!("{role}\n{content}")));
        ids.push(end);
        ids.extend(tok.encode("\n"));
    };
    if messages.first().is_some_and(|(role, _)| *role != "system") {
        turn("system", SMOLLM2_DEFAULT_SYSTEM);
    }
    for (role, content) in messages {
        turn(role, content);
    }
    ids.push(start);
    ids.extend(tok.encode("assistant\n"));
    Ok(ids)
}

/// Ids that end a chat answer: `<|im_end|>` (when the vocabulary has it) and the EOS id, without
/// duplicates.
pub fn chat_stop_ids(tok: &Tokenizer) -> Vec<u32> {
    let mut ids: Vec<u32> = tok.token_id(IM_END).into_iter().collect();
    if let Some(eos) = tok.eos_id
        && !ids.contains(&eos)
    {
        ids.push(eos);
    }
    ids
}

fn special_id(tok: &Tokenizer, s: &str) -> Result<u32> {
    tok.token_id(s).ok_or_else(|| {
        LlmError::Input(format!(
            "the vocabulary has no {s} token: not a ChatML (SmolLM2-Instruct) model"
        ))
    })
}
