//! The offline judge: SmolLM2-135M-Instruct (or any chat GGUF of the same family) run by the
//! project's own forward, greedy, with its chat template. Weak, but it needs nothing.
//!
//! Requests are answered one after the other; the computed prefix of the previous prompt is
//! kept, so a run of checks that share their instructions, examples and description only runs
//! the part that differs.

use super::judge::{Judge, JudgeError, Request};
use bae_llm::{KvCache, Model, Tokenizer};
use std::path::Path;
use std::sync::Mutex;

pub struct LocalJudge {
    model: Model,
    tok: Tokenizer,
    stop: Vec<u32>,
    name: String,
    /// the prompt whose tokens are in the cache, and the cache
    state: Mutex<(Vec<u32>, KvCache)>,
}

impl LocalJudge {
    pub fn load(path: &Path) -> Result<LocalJudge, String> {
        if !path.is_file() {
            return Err(format!(
                "{}: no such judge model file (bash scripts/setup.sh fetches the default)",
                path.display()
            ));
        }
        let mut gguf = bae_llm::Gguf::open(path).map_err(|e| e.to_string())?;
        let tok = bae_llm::Tokenizer::from_gguf(&gguf).map_err(|e| e.to_string())?;
        let model = Model::from_gguf(
            &mut gguf,
            bae_llm::LoadOptions {
                n_layers: None,
                head: true,
            },
        )
        .map_err(|e| e.to_string())?;
        // checks the chat tokens exist before any work
        bae_llm::chat_prompt(&tok, &[("user", "hi")])
            .map_err(|e| format!("{}: not a chat model: {e}", path.display()))?;
        let stop = bae_llm::chat_stop_ids(&tok);
        let cache = model.new_cache();
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Ok(LocalJudge {
            model,
            tok,
            stop,
            name,
            state: Mutex::new((Vec::new(), cache)),
        })
    }

    fn answer(&self, req: &Request) -> Result<String, JudgeError> {
        let messages: Vec<(&str, &str)> = req
            .messages
            .iter()
            .map(|m| (m.role.as_str(), m.content.as_str()))
            .collect();
        let ids = bae_llm::chat_prompt(&self.tok, &messages)
            .map_err(|e| JudgeError::Fatal(e.to_string()))?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (cached, cache) = &mut *state;
        // keep the shared prefix, always leaving at least one token to run
        let common = cached
            .iter()
            .zip(&ids)
            .take_while(|(a, b)| a == b)
            .count()
            .min(ids.len() - 1);
        cache.truncate(common);
        let out = self
            .model
            .generate_greedy(cache, &ids[common..], req.max_tokens, &self.stop)
            .map_err(|e| JudgeError::Failed(format!("local judge: {e}")))?;
        cache.truncate(ids.len());
        *cached = ids;
        Ok(self.tok.decode(&out))
    }
}

impl Judge for LocalJudge {
    fn id(&self) -> String {
        format!("local:{}", self.name)
    }

    fn complete(&self, requests: &[Request]) -> Vec<Result<String, JudgeError>> {
        requests.iter().map(|r| self.answer(r)).collect()
    }
}
