//! Byte-level BPE tokenizer rebuilt from GGUF metadata (`tokenizer.ggml.tokens`, `.merges`).
//!
//! Pre-tokenisation follows llama.cpp's "smollm" type: first every numeric character becomes its
//! own piece (`\p{N}`), then the GPT-2 pattern
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)` splits the rest.
//! The `regex` crate has no look-ahead, so `\s+(?!\S)` is emulated: a whitespace run of two or
//! more characters followed by a non-space gives its last character back to the next piece.
//! Each piece is mapped byte-wise to GPT-2's printable alphabet and merged by merge rank.
//! Special tokens in the text are not parsed: `<|endoftext|>` in a document is plain text.

use std::collections::HashMap;
use std::sync::Mutex;

use regex::Regex;

use crate::error::{LlmError, Result};
use crate::gguf::Gguf;

/// GPT-2 pattern without the look-ahead alternative (emulated in [`split_gpt2`]).
const GPT2_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+";

/// Pieces longer than this skip the cache (rare; keeps the cache small).
const CACHE_MAX_PIECE: usize = 64;
const CACHE_MAX_ENTRIES: usize = 200_000;

pub struct Tokenizer {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
    /// (left id, right id) -> (rank, merged id)
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// id of the single-character token for each byte value; SmolLM2's vocabulary lacks a few
    /// (six control characters and bytes that never occur in UTF-8), which are dropped, as the
    /// Hugging Face tokenizer does
    byte_ids: [Option<u32>; 256],
    /// reverse of GPT-2's byte -> char map
    char_bytes: HashMap<char, u8>,
    pattern: Regex,
    cache: Mutex<HashMap<String, Vec<u32>>>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
}

/// GPT-2's reversible map from bytes to printable characters: printable Latin-1 bytes map to
/// themselves, the other 68 bytes to U+0100 onwards in byte order.
pub fn byte_to_char() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        out[b as usize] = if printable {
            b as char
        } else {
            let c = char::from_u32(next).expect("U+0100..U+0143 are valid chars");
            next += 1;
            c
        };
    }
    out
}

impl Tokenizer {
    /// Builds the tokenizer from a GGUF file's metadata.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let bad = |msg: String| LlmError::bad_model(g.path(), msg);
        let model = g.meta_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(bad(format!(
                "tokenizer model '{model}' is not byte-level BPE (gpt2)"
            )));
        }
        if let Ok(pre) = g.meta_str("tokenizer.ggml.pre")
            && pre != "smollm"
        {
            return Err(bad(format!(
                "pre-tokenizer '{pre}' is not supported (only smollm)"
            )));
        }
        let tokens = g.meta_str_array("tokenizer.ggml.tokens")?;
        let merges = g.meta_str_array("tokenizer.ggml.merges")?;
        let mut tok = Self::new(tokens, &merges).map_err(bad)?;
        tok.bos_id = g
            .meta_usize("tokenizer.ggml.bos_token_id")
            .ok()
            .map(|x| x as u32);
        tok.eos_id = g
            .meta_usize("tokenizer.ggml.eos_token_id")
            .ok()
            .map(|x| x as u32);
        Ok(tok)
    }

    /// Builds the tokenizer from a vocabulary and merges written as "left right".
    pub fn new(tokens: Vec<String>, merges: &[String]) -> Result<Self, String> {
        let ids: HashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let b2c = byte_to_char();
        let mut byte_ids = [None; 256];
        for (b, c) in b2c.iter().enumerate() {
            byte_ids[b] = ids.get(&c.to_string()).copied();
        }
        if byte_ids[b'a' as usize].is_none() || byte_ids[b' ' as usize].is_none() {
            return Err("vocabulary is not byte-level (no token for 'a' or ' ')".into());
        }
        let char_bytes = b2c.iter().enumerate().map(|(b, c)| (*c, b as u8)).collect();
        let mut merge_map = HashMap::with_capacity(merges.len());
        for (rank, m) in merges.iter().enumerate() {
            let (l, r) = m
                .split_once(' ')
                .ok_or_else(|| format!("merge {rank} '{m}' has no space"))?;
            let (Some(&li), Some(&ri)) = (ids.get(l), ids.get(r)) else {
                return Err(format!("merge {rank} '{m}' names an unknown token"));
            };
            let Some(&mi) = ids.get(&format!("{l}{r}")) else {
                return Err(format!("merge {rank} '{m}' produces an unknown token"));
            };
            // Keep the first (best) rank if a pair repeats.
            merge_map.entry((li, ri)).or_insert((rank as u32, mi));
        }
        Ok(Self {
            tokens,
            ids,
            merges: merge_map,
            byte_ids,
            char_bytes,
            pattern: Regex::new(GPT2_PATTERN).expect("static pattern compiles"),
            cache: Mutex::new(HashMap::new()),
            bos_id: None,
            eos_id: None,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The token's text in GPT-2's byte alphabet (e.g. "Ġthe").
    pub fn token_str(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(|s| s.as_str())
    }

    pub fn token_id(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    /// Encodes text to token ids (no BOS is added).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        for piece in pre_tokenize(&self.pattern, text) {
            self.encode_piece(piece, &mut out);
        }
        out
    }

    /// Decodes ids back to text; invalid UTF-8 (a split multi-byte char) becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let Some(tok) = self.tokens.get(id as usize) else {
                continue;
            };
            for c in tok.chars() {
                match self.char_bytes.get(&c) {
                    Some(&b) => bytes.push(b),
                    None => {
                        let mut buf = [0u8; 4];
                        bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn encode_piece(&self, piece: &str, out: &mut Vec<u32>) {
        let cacheable = piece.len() <= CACHE_MAX_PIECE;
        if cacheable && let Some(ids) = self.cache.lock().expect("cache lock").get(piece) {
            out.extend_from_slice(ids);
            return;
        }
        let ids = self.bpe(piece.as_bytes());
        out.extend_from_slice(&ids);
        if cacheable {
            let mut cache = self.cache.lock().expect("cache lock");
            if cache.len() >= CACHE_MAX_ENTRIES {
                cache.clear();
            }
            cache.insert(piece.to_string(), ids);
        }
    }

    /// Merges the lowest-ranked adjacent pair until none is left (leftmost first on ties).
    fn bpe(&self, bytes: &[u8]) -> Vec<u32> {
        let mut syms: Vec<u32> = bytes
            .iter()
            .filter_map(|&b| self.byte_ids[b as usize])
            .collect();
        loop {
            let mut best: Option<(u32, usize, u32)> = None; // (rank, index, merged id)
            for i in 0..syms.len().saturating_sub(1) {
                if let Some(&(rank, merged)) = self.merges.get(&(syms[i], syms[i + 1]))
                    && best.is_none_or(|(r, _, _)| rank < r)
                {
                    best = Some((rank, i, merged));
                }
            }
            let Some((_, i, merged)) = best else { break };
            syms[i] = merged;
            syms.remove(i + 1);
        }
        syms
    }
}

/// Splits text into pre-tokens: every numeric char alone, then the GPT-2 pattern on the rest.
pub fn pre_tokenize<'a>(pattern: &Regex, text: &'a str) -> Vec<&'a str> {
    let mut pieces = Vec::new();
    let mut seg_start = 0;
    for (i, c) in text.char_indices() {
        if c.is_numeric() {
            split_gpt2(pattern, &text[seg_start..i], &mut pieces);
            pieces.push(&text[i..i + c.len_utf8()]);
            seg_start = i + c.len_utf8();
        }
    }
    split_gpt2(pattern, &text[seg_start..], &mut pieces);
    pieces
}

/// Applies the GPT-2 pattern to a segment, emulating the `\s+(?!\S)` look-ahead.
fn split_gpt2<'a>(pattern: &Regex, seg: &'a str, out: &mut Vec<&'a str>) {
    let mut pos = 0;
    while pos < seg.len() {
        let Some(m) = pattern.find_at(seg, pos) else {
            out.push(&seg[pos..]);
            break;
        };
        if m.start() > pos {
            out.push(&seg[pos..m.start()]); // unmatched text stays a piece (cannot happen here)
        }
        let mut end = m.end();
        let piece = &seg[m.start()..end];
        // A whitespace-only match of 2+ chars followed by a non-space: leave the last char for
        // the next piece, as `\s+(?!\S)` would.
        if end < seg.len() && piece.chars().all(char::is_whitespace) {
            let mut chars = piece.char_indices();
            if let (Some(_), Some((last_idx, _))) = (chars.next(), chars.next_back()) {
                end = m.start() + last_idx;
            }
        }
        out.push(&seg[m.start()..end]);
        pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<&str> {
        let re = Regex::new(GPT2_PATTERN).unwrap();
        pre_tokenize(&re, text)
    }

    #[test]
    fn digits_split_and_gpt2_pieces() {
        assert_eq!(pieces("in 2024!"), vec!["in", " ", "2", "0", "2", "4", "!"]);
        assert_eq!(pieces("Hello world"), vec!["Hello", " world"]);
        assert_eq!(pieces("it's  ok"), vec!["it", "'s", " ", " ok"]);
        assert_eq!(pieces("a\n\nb"), vec!["a", "\n", "\n", "b"]);
        assert_eq!(pieces("a   "), vec!["a", "   "]);
        assert_eq!(pieces("x \ty"), vec!["x", " ", "\t", "y"]);
    }

    #[test]
    fn byte_map_is_a_bijection() {
        let m = byte_to_char();
        let set: std::collections::HashSet<char> = m.iter().copied().collect();
        assert_eq!(set.len(), 256);
        assert_eq!(m[b' ' as usize], 'Ġ');
        assert_eq!(m[b'\n' as usize], 'Ċ');
    }
}
