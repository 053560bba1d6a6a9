//! One error type for the crate; every variant prints as a single line.

use std::path::{Path, PathBuf};

/// Errors from loading the model, tokenising or extracting. `Display` is always one line.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// A model or corpus path that does not exist (the message says how to fetch it).
    #[error("{path}: not found; run `bash scripts/setup.sh` to fetch the model and corpus")]
    Missing { path: PathBuf },
    /// A GGUF file that cannot be used: bad magic, wrong architecture, missing tensor, ...
    #[error("{path}: {msg}")]
    BadModel { path: PathBuf, msg: String },
    /// Wrong user input (block out of range, empty text, bad flag values).
    #[error("{0}")]
    Input(String),
    /// File-system trouble (unreadable text, unwritable output folder).
    #[error("{path}: {msg}")]
    Io { path: PathBuf, msg: String },
    /// Writing an output file failed (message from bae-io names the file).
    #[error("{0}")]
    Output(String),
    /// A tensor operation failed (should not happen with a valid model).
    #[error("tensor error: {0}")]
    Tensor(String),
}

impl LlmError {
    pub(crate) fn bad_model(path: &Path, msg: impl std::fmt::Display) -> Self {
        LlmError::BadModel {
            path: path.to_path_buf(),
            msg: one_line(&msg.to_string()),
        }
    }

    pub(crate) fn io(path: &Path, msg: impl std::fmt::Display) -> Self {
        LlmError::Io {
            path: path.to_path_buf(),
            msg: one_line(&msg.to_string()),
        }
    }
}

impl From<candle_core::Error> for LlmError {
    fn from(e: candle_core::Error) -> Self {
        LlmError::Tensor(one_line(&e.to_string()))
    }
}

/// Keeps only the first line of a message (candle errors may append a backtrace).
pub(crate) fn one_line(s: &str) -> String {
    // the first line, with any other control character (\r, VT, FF, NEL, LS, PS...) from file
    // contents shown as a space so the message stays on one line
    let first = s.split('\n').next().unwrap_or("");
    first
        .chars()
        .map(|c| {
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                ' '
            } else {
                c
            }
        })
        .collect::<String>()
        .trim()
        .to_string()
}

pub type Result<T, E = LlmError> = std::result::Result<T, E>;
