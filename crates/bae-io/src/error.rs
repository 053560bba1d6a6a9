//! The crate's single error type: a path and a one-line problem description.

use std::fmt;
use std::path::{Path, PathBuf};

/// An error about one file. `Display` prints `"<path>: <problem>"` on a single line.
///
/// Control characters (newlines included) coming from the path or from untrusted
/// file contents are escaped, so the message always stays on one line.
#[derive(Debug)]
pub struct IoError {
    path: PathBuf,
    message: String,
}

/// `Result` with [`IoError`].
pub type Result<T> = std::result::Result<T, IoError>;

impl IoError {
    /// An error about `path`; `message` describes the problem (no path prefix needed).
    pub fn new(path: impl AsRef<Path>, message: impl fmt::Display) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            message: one_line(&message.to_string()),
        }
    }

    /// An error from a failed OS operation: `"<path>: <what>: <os error>"`.
    pub fn from_io(path: impl AsRef<Path>, what: &str, err: &std::io::Error) -> Self {
        Self::new(path, format_args!("{what}: {err}"))
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The problem, without the path prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            one_line(&self.path.display().to_string()),
            self.message
        )
    }
}

impl std::error::Error for IoError {}

/// Escapes control characters so that `s` prints on one line.
fn one_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Formats a shape as `[a, b, c]`.
pub(crate) fn fmt_shape(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line() {
        let e = IoError::new("/tmp/a\nb.npy", "bad\r\nthing");
        let s = e.to_string();
        assert!(!s.contains('\n') && !s.contains('\r'), "{s}");
        assert_eq!(s, "/tmp/a\\nb.npy: bad\\r\\nthing");
        assert_eq!(e.message(), "bad\\r\\nthing");
    }

    #[test]
    fn shape_format() {
        assert_eq!(fmt_shape(&[4, 16]), "[4, 16]");
        assert_eq!(fmt_shape(&[]), "[]");
    }
}
