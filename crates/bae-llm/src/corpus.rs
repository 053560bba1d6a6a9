//! Streams documents from text files, folders of `.txt`/`.jsonl` files and `.jsonl` files (one
//! document per line, in its "text" field), one document at a time, in a stable order.
//! Blank documents are skipped and take no document index.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::error::{LlmError, Result};

/// One document: a stable name (file path, or `path:line` for JSONL) and its text.
#[derive(Debug, Clone)]
pub struct Doc {
    pub name: String,
    pub text: String,
}

/// Expands the given paths into the ordered list of files to read.
pub fn list_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if !p.exists() {
            return Err(LlmError::Missing { path: p.clone() });
        }
        if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found)?;
            found.sort();
            if found.is_empty() {
                return Err(LlmError::Input(format!(
                    "empty text: {} holds no .txt or .jsonl files",
                    p.display()
                )));
            }
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() {
        return Err(LlmError::Input("empty text: no --text path given".into()));
    }
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| LlmError::io(dir, e))?;
    for entry in rd {
        let path = entry.map_err(|e| LlmError::io(dir, e))?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if is_jsonl(&path) || path.extension().is_some_and(|e| e == "txt") {
            out.push(path);
        }
    }
    Ok(())
}

fn is_jsonl(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "jsonl")
}

/// Lazy iterator over the documents of a file list; reads one file (or JSONL line) at a time.
pub struct DocStream {
    files: std::vec::IntoIter<PathBuf>,
    jsonl: Option<(PathBuf, std::io::Lines<BufReader<File>>, usize)>,
}

impl DocStream {
    pub fn new(files: Vec<PathBuf>) -> Self {
        Self {
            files: files.into_iter(),
            jsonl: None,
        }
    }

    /// Next non-blank document, or None at the end.
    pub fn next_doc(&mut self) -> Result<Option<Doc>> {
        loop {
            if let Some((path, lines, line_no)) = &mut self.jsonl {
                match lines.next() {
                    Some(line) => {
                        *line_no += 1;
                        let line = line.map_err(|e| LlmError::io(path, e))?;
                        if line.trim().is_empty() {
                            continue;
                        }
                        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| {
                            LlmError::io(path, format!("line {line_no}: invalid JSON ({e})"))
                        })?;
                        let Some(text) = v.get("text").and_then(|t| t.as_str()) else {
                            return Err(LlmError::io(
                                path,
                                format!("line {line_no}: no string field \"text\""),
                            ));
                        };
                        if text.trim().is_empty() {
                            continue;
                        }
                        return Ok(Some(Doc {
                            name: format!("{}:{line_no}", path.display()),
                            text: text.to_string(),
                        }));
                    }
                    None => self.jsonl = None,
                }
            }
            let Some(path) = self.files.next() else {
                return Ok(None);
            };
            if is_jsonl(&path) {
                let f = File::open(&path).map_err(|e| LlmError::io(&path, e))?;
                self.jsonl = Some((path, BufReader::new(f).lines(), 0));
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| LlmError::io(&path, e))?;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if text.trim().is_empty() {
                continue;
            }
            return Ok(Some(Doc {
                name: path.display().to_string(),
                text,
            }));
        }
    }
}

/// Splits huge texts into chunks of about `target` bytes at points where tokenisation cannot
/// change: right after a lone newline (non-space before it, non-space after it). That newline is
/// a whitespace piece of its own and the next character starts a new piece, so encoding the
/// chunks one by one gives the same ids as encoding the whole text.
pub fn safe_chunks(text: &str, target: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while text.len() - start > target {
        let mut from = start + target;
        while !text.is_char_boundary(from) {
            from += 1;
        }
        let mut prev = text[..from].chars().next_back();
        let mut cut = None;
        let mut it = text[from..].char_indices().peekable();
        while let Some((i, c)) = it.next() {
            let next = it.peek().map(|&(_, n)| n);
            if c == '\n'
                && prev.is_some_and(|p| !p.is_whitespace())
                && next.is_some_and(|n| !n.is_whitespace())
            {
                cut = Some(from + i + 1);
                break;
            }
            prev = Some(c);
        }
        match cut {
            Some(cut) => {
                out.push(&text[start..cut]);
                start = cut;
            }
            None => break,
        }
    }
    out.push(&text[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_text() {
        let text = "alpha beta\ngamma 12\n\ndelta\n epsilon\nzeta".repeat(50);
        let chunks = safe_chunks(&text, 64);
        assert!(chunks.len() > 5);
        assert_eq!(chunks.concat(), text);
        for c in &chunks[..chunks.len() - 1] {
            assert!(c.ends_with('\n'));
        }
    }
}
