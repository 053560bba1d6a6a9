//! What `bae interpret` needs from a judge model: chat messages in, text out.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct ChatMessage {
    /// "system", "user" or "assistant"
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// One completion request: the conversation and the most tokens to generate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct Request {
    pub messages: Vec<ChatMessage>,
    pub max_tokens: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JudgeError {
    /// cannot go on at all (unreachable server after retries, missing key, HTTP 401/404): one line
    Fatal(String),
    /// this request failed after its retries; the caller counts it and goes on
    Failed(String),
}

impl std::fmt::Display for JudgeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JudgeError::Fatal(m) | JudgeError::Failed(m) => f.write_str(m),
        }
    }
}

/// A judge: greedy (temperature 0) completions of chat requests.
pub trait Judge: Send + Sync {
    /// Names the judge and its model, e.g. `openai:http://127.0.0.1:8080/v1:smollm2` or
    /// `local:SmolLM2-135M-Instruct.Q4_1.gguf`; part of the cache key.
    fn id(&self) -> String;

    /// Completes every request; results in the order of `requests`. Implementations batch or
    /// run requests concurrently as suits them.
    fn complete(&self, requests: &[Request]) -> Vec<Result<String, JudgeError>>;
}
