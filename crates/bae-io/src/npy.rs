//! The NumPy `.npy` format: header parsing (for untrusted input) and header writing.
//!
//! Layout: magic `\x93NUMPY`, major and minor version bytes, header length (u16 LE for
//! version 1.0, u32 LE for 2.0 and 3.0), then a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` padded with spaces and a
//! newline, then the raw array data.
//!
//! The dict is read by a small recursive-descent parser for Python literals with a depth
//! limit; it runs in time linear in the header length and never evaluates anything.

use crate::dtype::DType;
use crate::error::{IoError, Result};
use std::path::Path;

/// The 6 magic bytes every .npy file starts with.
pub(crate) const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Nesting limit for the header literal (real headers nest 2 deep).
const MAX_DEPTH: usize = 32;

/// A parsed, validated .npy header.
#[derive(Debug)]
pub(crate) struct NpyHeader {
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Offset of the first data byte.
    pub data_start: usize,
}

/// Parses the header of the .npy file `bytes` (the whole file). Checks dtype and layout but
/// not the shape's rank or the data length; the caller does that.
pub(crate) fn parse_header(path: &Path, bytes: &[u8]) -> Result<NpyHeader> {
    let err = |msg: String| IoError::new(path, msg);
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        if bytes.len() < 10 && MAGIC.starts_with(bytes) || bytes.starts_with(MAGIC) {
            return Err(err(format!(
                ".npy file truncated: only {} bytes, too short for the header",
                bytes.len()
            )));
        }
        return Err(err(
            "not a valid .npy file: missing the \\x93NUMPY magic bytes".to_string(),
        ));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (len_field, prefix): (usize, usize) = match (major, minor) {
        (1, 0) => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        (2, 0) | (3, 0) => {
            let Some(b) = bytes.get(8..12) else {
                return Err(err(format!(
                    ".npy file truncated: only {} bytes, too short for the header",
                    bytes.len()
                )));
            };
            let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            (usize::try_from(n).unwrap_or(usize::MAX), 12)
        }
        _ => {
            return Err(err(format!(
                "unsupported .npy format version {major}.{minor} (supported: 1.0, 2.0, 3.0)"
            )));
        }
    };
    let header_end = prefix.saturating_add(len_field);
    let Some(text) = bytes.get(prefix..header_end) else {
        return Err(err(format!(
            ".npy file truncated: header declares {len_field} bytes but only {} bytes follow",
            bytes.len() - prefix
        )));
    };

    let dict = Parser::new(text)
        .parse_header_dict()
        .map_err(|m| err(format!("not a valid .npy file: cannot parse header ({m})")))?;
    let Lit::Dict(entries) = dict else {
        return Err(err(
            "not a valid .npy file: header is not a dict".to_string()
        ));
    };
    let get = |key: &str| {
        entries.iter().find_map(|(k, v)| match k {
            Lit::Str(s) if s == key => Some(v),
            _ => None,
        })
    };
    let missing = |key: &str| {
        err(format!(
            "not a valid .npy file: header has no '{key}' entry"
        ))
    };

    let dtype = match get("descr").ok_or_else(|| missing("descr"))? {
        Lit::Str(descr) => parse_descr(descr).map_err(err)?,
        Lit::Seq(_) => {
            return Err(err(
                "unsupported dtype: structured (record) arrays are not supported; supported: '<f2', '<f4', '<f8'"
                    .to_string(),
            ));
        }
        _ => {
            return Err(err(
                "not a valid .npy file: 'descr' is not a string".to_string()
            ));
        }
    };
    match get("fortran_order").ok_or_else(|| missing("fortran_order"))? {
        Lit::Bool(false) => {}
        Lit::Bool(true) => {
            return Err(err(
                "fortran_order is True (column-major layout) which is not supported; save a C-ordered array (np.ascontiguousarray)"
                    .to_string(),
            ));
        }
        _ => {
            return Err(err(
                "not a valid .npy file: 'fortran_order' is not True or False".to_string(),
            ));
        }
    }
    let shape = match get("shape").ok_or_else(|| missing("shape"))? {
        Lit::Seq(items) => {
            let mut shape = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Lit::Int(v) => shape.push(usize::try_from(*v).map_err(|_| {
                        err(format!(
                            "not a valid .npy file: shape entry {v} is negative or too large"
                        ))
                    })?),
                    _ => {
                        return Err(err(
                            "not a valid .npy file: 'shape' must be a tuple of integers"
                                .to_string(),
                        ));
                    }
                }
            }
            shape
        }
        _ => {
            return Err(err(
                "not a valid .npy file: 'shape' is not a tuple".to_string()
            ));
        }
    };
    Ok(NpyHeader {
        dtype,
        shape,
        data_start: header_end,
    })
}

/// Maps a numpy type string to a [`DType`], with a precise message when unsupported.
fn parse_descr(descr: &str) -> std::result::Result<DType, String> {
    const SUPPORTED: &str = "supported: '<f2', '<f4', '<f8'";
    let (order, code) = match descr.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &descr[1..]),
        _ => ('=', descr),
    };
    let dtype = match code {
        "f2" | "e" => DType::F16,
        "f4" | "f" => DType::F32,
        "f8" | "d" => DType::F64,
        _ => return Err(format!("unsupported dtype {descr:?} ({SUPPORTED})")),
    };
    let big_endian = order == '>' || (order == '=' && cfg!(target_endian = "big"));
    if big_endian {
        return Err(format!(
            "big-endian dtype {descr:?} is not supported; convert with arr.astype('<{code}') ({SUPPORTED})"
        ));
    }
    Ok(dtype)
}

/// The numpy type string written for `dtype`, or `None` if .npy cannot store it.
pub(crate) fn descr_of(dtype: DType) -> Option<&'static str> {
    match dtype {
        DType::F16 => Some("<f2"),
        DType::F32 => Some("<f4"),
        DType::F64 => Some("<f8"),
        DType::BF16 => None,
    }
}

/// Builds magic, version, length and the padded header dict for a C-ordered array.
/// The total is a multiple of 64 bytes, as numpy writes it.
pub(crate) fn build_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    let build = |prefix: usize| {
        let unpadded = prefix + dict.len() + 1;
        let total = unpadded.div_ceil(64) * 64;
        let mut text = dict.clone().into_bytes();
        text.resize(total - prefix - 1, b' ');
        text.push(b'\n');
        text
    };
    let text = build(10);
    let mut out = MAGIC.to_vec();
    if let Ok(len) = u16::try_from(text.len()) {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&text);
    } else {
        let text = build(12);
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(&text);
    }
    out
}

/// A Python literal value as it appears in .npy headers.
#[derive(Debug, PartialEq)]
enum Lit {
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    /// A tuple or a list.
    Seq(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

type PResult<T> = std::result::Result<T, String>;

impl<'a> Parser<'a> {
    fn new(s: &'a [u8]) -> Self {
        Self {
            s,
            pos: 0,
            depth: 0,
        }
    }

    /// Parses the whole header: one literal followed only by whitespace.
    fn parse_header_dict(&mut self) -> PResult<Lit> {
        let v = self.value()?;
        self.skip_ws();
        if self.pos != self.s.len() {
            return Err(format!("unexpected text at byte {}", self.pos));
        }
        Ok(v)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: u8) -> PResult<()> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.pos))
        }
    }

    fn value(&mut self) -> PResult<Lit> {
        self.skip_ws();
        match self.peek() {
            Some(b'{') => self.nested(|p| p.dict()),
            Some(b'(') => self.nested(|p| p.seq(b'(', b')')),
            Some(b'[') => self.nested(|p| p.seq(b'[', b']')),
            Some(q @ (b'\'' | b'"')) => self.string(q),
            Some(b'-' | b'0'..=b'9') => self.int(),
            Some(c) if c.is_ascii_alphabetic() => self.word(),
            Some(_) => Err(format!("unexpected character at byte {}", self.pos)),
            None => Err("unexpected end of header".to_string()),
        }
    }

    fn nested(&mut self, f: impl FnOnce(&mut Self) -> PResult<Lit>) -> PResult<Lit> {
        if self.depth >= MAX_DEPTH {
            return Err("nested too deeply".to_string());
        }
        self.depth += 1;
        let v = f(self);
        self.depth -= 1;
        v
    }

    fn dict(&mut self) -> PResult<Lit> {
        self.expect(b'{')?;
        let mut entries = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(Lit::Dict(entries));
            }
            let k = self.value()?;
            self.expect(b':')?;
            let v = self.value()?;
            entries.push((k, v));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return Err(format!("expected ',' or '}}' at byte {}", self.pos)),
            }
        }
    }

    fn seq(&mut self, open: u8, close: u8) -> PResult<Lit> {
        self.expect(open)?;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(Lit::Seq(items));
            }
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {}
                _ => {
                    return Err(format!(
                        "expected ',' or '{}' at byte {}",
                        close as char, self.pos
                    ));
                }
            }
        }
    }

    fn string(&mut self, quote: u8) -> PResult<Lit> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err("unterminated string".to_string()),
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c) => out.push(c),
                        None => return Err("unterminated string".to_string()),
                    }
                }
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(Lit::Str(String::from_utf8_lossy(&out).into_owned()));
                }
                Some(c) => out.push(c),
            }
            self.pos += 1;
        }
    }

    fn int(&mut self) -> PResult<Lit> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let start = self.pos;
        let mut v: i128 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(i128::from(c - b'0')))
                .ok_or_else(|| format!("integer too large at byte {start}"))?;
            self.pos += 1;
        }
        if self.pos == start {
            return Err(format!("expected a digit at byte {start}"));
        }
        // Python 2 long suffix.
        if matches!(self.peek(), Some(b'L' | b'l')) {
            self.pos += 1;
        }
        Ok(Lit::Int(if negative { -v } else { v }))
    }

    fn word(&mut self) -> PResult<Lit> {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
            self.pos += 1;
        }
        match &self.s[start..self.pos] {
            b"True" => Ok(Lit::Bool(true)),
            b"False" => Ok(Lit::Bool(false)),
            b"None" => Ok(Lit::None),
            w => Err(format!(
                "unexpected word {:?} at byte {start}",
                String::from_utf8_lossy(w)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_literals() {
        let mut p = Parser::new(b"{'a': (3, 4), \"b\": [True, None, -2L], 'c': 'x\\'y', }  \n");
        let v = p.parse_header_dict().unwrap();
        assert_eq!(
            v,
            Lit::Dict(vec![
                (
                    Lit::Str("a".into()),
                    Lit::Seq(vec![Lit::Int(3), Lit::Int(4)])
                ),
                (
                    Lit::Str("b".into()),
                    Lit::Seq(vec![Lit::Bool(true), Lit::None, Lit::Int(-2)])
                ),
                (Lit::Str("c".into()), Lit::Str("x'y".into())),
            ])
        );
        for bad in [
            &b"{'a': (3, 4)"[..],
            b"{'a' 3}",
            b"{'a': 3} x",
            b"{'a': 99999999999999999999999999999999999999999}",
            b"{'a': import}",
            b"",
            b"'unterminated",
        ] {
            assert!(Parser::new(bad).parse_header_dict().is_err());
        }
        let deep = "(".repeat(100_000);
        let e = Parser::new(deep.as_bytes())
            .parse_header_dict()
            .unwrap_err();
        assert!(e.contains("nested too deeply"));
    }

    #[test]
    fn descr_mapping() {
        assert_eq!(parse_descr("<f4"), Ok(DType::F32));
        assert_eq!(parse_descr("|f2"), Ok(DType::F16));
        assert_eq!(parse_descr("=f8"), Ok(DType::F64));
        assert_eq!(parse_descr("f4"), Ok(DType::F32));
        assert!(parse_descr(">f4").unwrap_err().contains("big-endian"));
        assert!(
            parse_descr("<i4")
                .unwrap_err()
                .contains("unsupported dtype \"<i4\"")
        );
        assert!(parse_descr("").is_err());
    }

    #[test]
    fn header_roundtrip() {
        let h = build_header("<f4", &[3, 5]);
        assert_eq!(h.len() % 64, 0);
        assert_eq!(h[6], 1);
        let mut file = h.clone();
        file.resize(h.len() + 60, 0);
        let parsed = parse_header(Path::new("a.npy"), &file).unwrap();
        assert_eq!(parsed.dtype, DType::F32);
        assert_eq!(parsed.shape, vec![3, 5]);
        assert_eq!(parsed.data_start, h.len());
        let h1 = build_header("<f2", &[7]);
        assert!(String::from_utf8_lossy(&h1).contains("'shape': (7,)"));
    }
}
