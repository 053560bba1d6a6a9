//! The safetensors container: header parsing (for untrusted input) and header writing.
//!
//! Layout: 8-byte little-endian header length `H`, `H` bytes of UTF-8 JSON, then the data
//! section. The JSON maps tensor names to `{"dtype", "shape", "data_offsets": [begin, end]}`
//! (offsets relative to the data section) plus an optional `"__metadata__"` string map.
//!
//! Every declared size is checked against the real file length before anything is
//! allocated or read, and all arithmetic on declared values is checked.

use crate::error::{IoError, Result, fmt_shape};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Largest JSON header accepted (same limit as the reference implementation).
pub(crate) const MAX_HEADER_LEN: u64 = 100_000_000;

/// Name of the metadata entry in the header.
pub(crate) const METADATA_KEY: &str = "__metadata__";

/// One tensor of a parsed header.
#[derive(Debug, Clone)]
pub(crate) struct TensorEntry {
    pub name: String,
    /// The dtype string as written in the file (`"F32"`, `"I64"`, ...).
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Absolute byte range of the tensor's data in the file.
    pub start: usize,
    pub end: usize,
}

impl TensorEntry {
    /// Number of elements (1 for a scalar). Checked at parse time not to overflow.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A parsed and validated header.
#[derive(Debug)]
pub(crate) struct Header {
    /// Tensors sorted by name.
    pub tensors: Vec<TensorEntry>,
    pub metadata: BTreeMap<String, String>,
}

/// Element size in bits of a safetensors dtype, `None` if the dtype is unknown.
fn dtype_bits(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "F8_E4M3FNUZ"
        | "F8_E5M2FNUZ" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

/// Whether `bytes` plausibly start a safetensors file (length prefix fits, JSON object follows).
pub(crate) fn looks_like_safetensors(bytes: &[u8]) -> bool {
    let Some(prefix) = bytes.get(..8) else {
        return false;
    };
    let mut len = [0u8; 8];
    len.copy_from_slice(prefix);
    let n = u64::from_le_bytes(len);
    (2..=MAX_HEADER_LEN).contains(&n)
        && n <= (bytes.len() as u64 - 8)
        && bytes.get(8) == Some(&b'{')
}

/// Parses and validates the header of the safetensors file `bytes` (the whole file).
pub(crate) fn parse_header(path: &Path, bytes: &[u8]) -> Result<Header> {
    let err = |msg: String| IoError::new(path, msg);
    let file_len = bytes.len();
    let Some(prefix) = bytes.get(..8) else {
        return Err(err(format!(
            "not a valid safetensors file: only {file_len} bytes, too short for the 8-byte header length (file truncated?)"
        )));
    };
    let mut len = [0u8; 8];
    len.copy_from_slice(prefix);
    let header_len = u64::from_le_bytes(len);
    let available = (file_len - 8) as u64;
    if header_len > MAX_HEADER_LEN && header_len > available {
        return Err(err(format!(
            "not a valid safetensors file: header length field is {header_len} bytes but the file has only {file_len} bytes"
        )));
    }
    if header_len > available {
        return Err(err(format!(
            "safetensors file truncated: header declares {header_len} bytes of JSON but only {available} bytes follow the length field"
        )));
    }
    if header_len > MAX_HEADER_LEN {
        return Err(err(format!(
            "safetensors header of {header_len} bytes exceeds the {MAX_HEADER_LEN}-byte limit"
        )));
    }
    let header_end = 8 + header_len as usize;
    let json = &bytes[8..header_end];
    let json = std::str::from_utf8(json).map_err(|e| {
        err(format!(
            "not a valid safetensors file: header is not UTF-8 ({e})"
        ))
    })?;
    let value: Value = serde_json::from_str(json.trim_end_matches([' ', '\0'])).map_err(|e| {
        err(format!(
            "not a valid safetensors file: header is not valid JSON ({e})"
        ))
    })?;
    let Value::Object(map) = value else {
        return Err(err(
            "not a valid safetensors file: header is not a JSON object".to_string(),
        ));
    };
    let data_len = file_len - header_end;

    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::with_capacity(map.len());
    for (name, entry) in &map {
        if name == METADATA_KEY {
            metadata = parse_metadata(path, entry)?;
            continue;
        }
        tensors.push(parse_entry(path, name, entry, header_end, data_len)?);
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Header { tensors, metadata })
}

fn parse_metadata(path: &Path, entry: &Value) -> Result<BTreeMap<String, String>> {
    let Value::Object(m) = entry else {
        return Err(IoError::new(
            path,
            "invalid safetensors header: \"__metadata__\" is not a JSON object",
        ));
    };
    let mut out = BTreeMap::new();
    for (k, v) in m {
        match v {
            Value::String(s) => {
                out.insert(k.clone(), s.clone());
            }
            _ => {
                return Err(IoError::new(
                    path,
                    format!(
                        "invalid safetensors header: \"__metadata__\" entry {k:?} is not a string"
                    ),
                ));
            }
        }
    }
    Ok(out)
}

fn parse_entry(
    path: &Path,
    name: &str,
    entry: &Value,
    header_end: usize,
    data_len: usize,
) -> Result<TensorEntry> {
    let bad = |what: &str| {
        IoError::new(
            path,
            format!("invalid safetensors header: tensor {name:?}: {what}"),
        )
    };
    let Value::Object(fields) = entry else {
        return Err(bad("entry is not a JSON object"));
    };
    let dtype = match fields.get("dtype") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad("\"dtype\" is not a string")),
        None => return Err(bad("missing \"dtype\"")),
    };
    let shape = match fields.get("shape") {
        Some(Value::Array(dims)) => {
            let mut shape = Vec::with_capacity(dims.len());
            for d in dims {
                let d = d
                    .as_u64()
                    .and_then(|d| usize::try_from(d).ok())
                    .ok_or_else(|| bad("\"shape\" must be a list of non-negative integers"))?;
                shape.push(d);
            }
            shape
        }
        Some(_) => return Err(bad("\"shape\" is not a list")),
        None => return Err(bad("missing \"shape\"")),
    };
    let (begin, end) = offsets(fields).ok_or_else(|| {
        bad("\"data_offsets\" must be a list of two non-negative integers [begin, end]")
    })?;
    if begin > end {
        return Err(bad(&format!("data_offsets [{begin}, {end}] are reversed")));
    }
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(&format!("shape {} overflows", fmt_shape(&shape))))?;
    if end > data_len as u64 {
        return Err(IoError::new(
            path,
            format!(
                "safetensors file truncated: tensor {name:?} needs data bytes [{begin}, {end}) but the data section has only {data_len} bytes"
            ),
        ));
    }
    // Both offsets are now <= data_len, so they fit in usize.
    let (begin, end) = (begin as usize, end as usize);
    if let Some(bits) = dtype_bits(&dtype) {
        let needed = numel
            .checked_mul(bits)
            .map(|b| b.div_ceil(8))
            .ok_or_else(|| bad(&format!("shape {} overflows", fmt_shape(&shape))))?;
        if end - begin != needed {
            return Err(bad(&format!(
                "data_offsets [{begin}, {end}] span {} bytes but shape {} of dtype {dtype} needs {needed} bytes",
                end - begin,
                fmt_shape(&shape)
            )));
        }
    }
    Ok(TensorEntry {
        name: name.to_string(),
        dtype,
        shape,
        start: header_end + begin,
        end: header_end + end,
    })
}

fn offsets(fields: &Map<String, Value>) -> Option<(u64, u64)> {
    match fields.get("data_offsets")? {
        Value::Array(a) if a.len() == 2 => Some((a[0].as_u64()?, a[1].as_u64()?)),
        _ => None,
    }
}

/// One tensor to write: name, dtype name, shape and data length in bytes.
pub(crate) struct EntrySpec<'a> {
    pub name: &'a str,
    pub dtype: &'static str,
    pub shape: &'a [usize],
    pub n_bytes: usize,
}

/// Builds the length prefix and JSON header for tensors stored back to back in `specs` order.
/// The header is padded with spaces so that the data section starts at a multiple of 8.
pub(crate) fn build_header(
    path: &Path,
    specs: &[EntrySpec<'_>],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let mut map = Map::new();
    if !metadata.is_empty() {
        let m: Map<String, Value> = metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        map.insert(METADATA_KEY.to_string(), Value::Object(m));
    }
    let mut offset = 0usize;
    for s in specs {
        if s.name == METADATA_KEY {
            return Err(IoError::new(
                path,
                format!("cannot write a tensor named {METADATA_KEY:?} (reserved name)"),
            ));
        }
        let end = offset
            .checked_add(s.n_bytes)
            .ok_or_else(|| IoError::new(path, "total tensor size overflows"))?;
        let entry = serde_json::json!({
            "dtype": s.dtype,
            "shape": s.shape,
            "data_offsets": [offset, end],
        });
        if map.insert(s.name.to_string(), entry).is_some() {
            return Err(IoError::new(
                path,
                format!("cannot write two tensors named {:?}", s.name),
            ));
        }
        offset = end;
    }
    let mut json = Value::Object(map).to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data_len: usize) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.resize(v.len() + data_len, 0);
        v
    }

    #[test]
    fn parses_valid_header() {
        let f = file(
            r#"{"__metadata__":{"k":"v"},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"a":{"dtype":"I8","shape":[],"data_offsets":[0,1]}}"#,
            16,
        );
        let h = parse_header(Path::new("x"), &f).unwrap();
        assert_eq!(h.metadata.get("k").map(String::as_str), Some("v"));
        assert_eq!(h.tensors.len(), 2);
        assert_eq!(h.tensors[0].name, "a");
        assert_eq!(h.tensors[0].numel(), 1);
        assert_eq!(h.tensors[1].shape, vec![2]);
        assert_eq!(h.tensors[1].end - h.tensors[1].start, 8);
        assert!(looks_like_safetensors(&f));
    }

    #[test]
    fn rejects_bad_headers() {
        let p = Path::new("x.safetensors");
        let cases: &[(&str, usize, &str)] = &[
            (r#"[1]"#, 0, "not a JSON object"),
            (r#"{"a":1}"#, 0, "entry is not a JSON object"),
            (
                r#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#,
                4,
                "non-negative integers",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                8,
                "needs 12 bytes",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}"#,
                8,
                "truncated",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}"#,
                4,
                "overflows",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#,
                4,
                "reversed",
            ),
            (r#"{"__metadata__":{"k":1}}"#, 0, "is not a string"),
        ];
        for (h, n, want) in cases {
            let e = parse_header(p, &file(h, *n)).unwrap_err().to_string();
            assert!(e.starts_with("x.safetensors: "), "{e}");
            assert!(e.contains(want), "{h}: {e}");
        }
        let e = parse_header(p, &[1, 2, 3]).unwrap_err().to_string();
        assert!(e.contains("too short"), "{e}");
        let mut f = u64::MAX.to_le_bytes().to_vec();
        f.extend_from_slice(b"{}");
        let e = parse_header(p, &f).unwrap_err().to_string();
        assert!(e.contains("header length field"), "{e}");
    }

    #[test]
    fn header_is_padded_and_rejects_duplicates() {
        let p = Path::new("x");
        let specs = [EntrySpec {
            name: "w",
            dtype: "F32",
            shape: &[1, 3],
            n_bytes: 12,
        }];
        let h = build_header(p, &specs, &BTreeMap::new()).unwrap();
        assert_eq!(h.len() % 8, 0);
        let dup = [
            EntrySpec {
                name: "w",
                dtype: "F32",
                shape: &[1],
                n_bytes: 4,
            },
            EntrySpec {
                name: "w",
                dtype: "F32",
                shape: &[1],
                n_bytes: 4,
            },
        ];
        let e = build_header(p, &dup, &BTreeMap::new()).unwrap_err();
        assert!(e.to_string().contains("two tensors named \"w\""));
    }
}

/// Where one tensor of a safetensors file lies, for mapping it from elsewhere (numpy's memmap in
/// the Python package).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorLayout {
    pub name: String,
    /// as written in the file: "F32", "BF16", "I32", ...
    pub dtype: String,
    pub shape: Vec<usize>,
    /// absolute byte offset of the data in the file
    pub offset: usize,
    /// data length in bytes
    pub len: usize,
}

/// The tensors of the safetensors file at `path`, sorted by name, after the same checks every
/// reader of the crate makes.
pub fn tensor_layout(path: &Path) -> Result<Vec<TensorLayout>> {
    let map = crate::activations::map_file(path)?;
    let header = parse_header(path, &map)?;
    Ok(header
        .tensors
        .into_iter()
        .map(|t| TensorLayout {
            len: t.end - t.start,
            offset: t.start,
            name: t.name,
            dtype: t.dtype,
            shape: t.shape,
        })
        .collect())
}
