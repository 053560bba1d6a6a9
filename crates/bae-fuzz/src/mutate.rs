//! Mutations: byte-level (bit flips, interesting bytes, integer fields set to boundary values,
//! truncation, insertion, deletion, duplication, splicing) and structure-aware (edits of the
//! safetensors JSON header, of JSON files, of the .npy header dict, of GGUF metadata and tensor
//! infos), stacked a few at a time, libFuzzer style.

use crate::formats::{self, NpyParts, ST_DTYPES, st_dtype_bits};
use crate::gguf::{Field, GFile, GGML_TYPES, GVal};
use crate::input::Input;
use crate::rng::Rng;
use serde_json::{Map, Value};

/// Container format of a part, from its file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Raw,
    Safetensors,
    Npy,
    Json,
    Gguf,
}

pub fn format_of(name: &str) -> Format {
    match name.rsplit('.').next() {
        Some("safetensors") => Format::Safetensors,
        Some("npy") => Format::Npy,
        Some("json") => Format::Json,
        Some("gguf") => Format::Gguf,
        _ => Format::Raw,
    }
}

/// Largest data section a structure-aware fix-up may create.
const MAX_FIXUP: usize = 256 << 10;

/// Boundary values for integer fields (negative values as two's complement).
const BOUNDARY: &[u64] = &[
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    16,
    31,
    32,
    64,
    127,
    128,
    255,
    256,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0001,
    1 << 30,
    (1 << 30) + 1,
    1 << 53,
    (1 << 53) + 1,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX - 1,
    u64::MAX,
];

const INTERESTING_BYTES: &[u8] = &[
    0, 0xff, 0x7f, 0x80, 1, 0xfe, 0x20, 0x0a, b'0', b'9', b'-', b'"', b'\'', b'{', b'}', b'[',
    b']', b',', b':', b'(', b')', b'\\',
];

/// Number tokens written verbatim into JSON or Python-literal text (many are out of range).
const RAW_NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "-0",
    "2",
    "3",
    "255",
    "65536",
    "2147483648",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999999999999",
    "1.5",
    "1e2",
    "1E400",
    "-1e400",
    "1.0",
    "00",
    "0x10",
    "NaN",
    "Infinity",
];

/// Strings that mean something to the parsers under test: dtype names, tensor and key names,
/// file names, metadata values.
const DICT: &[&str] = &[
    "F16",
    "BF16",
    "F32",
    "F64",
    "I32",
    "I64",
    "U8",
    "BOOL",
    "F4",
    "F8_E4M3",
    "f32",
    "",
    "activations",
    "doc_ids",
    "token_ids",
    "positions",
    "W_enc",
    "b_enc",
    "W_dec",
    "b_dec",
    "adam.m.W_enc",
    "adam.v.b_dec",
    "__metadata__",
    "dtype",
    "shape",
    "data_offsets",
    "format",
    "bae-checkpoint-1",
    "step",
    "adam_t",
    "d",
    "rows",
    "file",
    "shards",
    "shard-00000.safetensors",
    "shard-00001.safetensors",
    "manifest.json",
    ".",
    "..",
    "../shard-00000.safetensors",
    "a/b",
    "/dev/zero",
    "missing.safetensors",
    "18446744073709551615",
    "-1",
    "\n",
    "\u{7f}x\ty",
    "é",
];

/// Mutates `input` in place with 1 to 8 stacked mutations. `corpus` supplies splice partners.
pub fn mutate(rng: &mut Rng, input: &mut Input, corpus: &[Input], max_len: usize) {
    if input.parts.is_empty() {
        return;
    }
    let mut n_ops = 1;
    while n_ops < 8 && rng.one_in(2) {
        n_ops += 1;
    }
    for _ in 0..n_ops {
        let k = rng.below(input.parts.len());
        let format = format_of(&input.parts[k].name);
        let other: Option<Vec<u8>> = if corpus.is_empty() {
            None
        } else {
            let o = rng.pick(corpus);
            let same = o.parts.iter().find(|p| p.name == input.parts[k].name);
            same.or_else(|| o.parts.first()).map(|p| p.bytes.clone())
        };
        let bytes = &mut input.parts[k].bytes;
        let done = format != Format::Raw && rng.below(100) < 45 && structured(rng, format, bytes);
        if !done {
            let fields = known_fields(format, bytes);
            byte_op(rng, bytes, &fields, other.as_deref());
        }
        bytes.truncate(max_len);
    }
}

/// Integer fields at known offsets for the byte-level "set field" mutation.
fn known_fields(format: Format, b: &[u8]) -> Vec<Field> {
    let f = |offset, width| Field { offset, width };
    match format {
        Format::Safetensors => vec![f(0, 8)],
        Format::Npy => match b.get(6) {
            Some(1) => vec![f(6, 1), f(7, 1), f(8, 2)],
            _ => vec![f(6, 1), f(7, 1), f(8, 4)],
        },
        Format::Gguf => {
            let mut v = vec![f(4, 4)];
            if let Some((_, fields)) = GFile::parse(b) {
                v = fields;
            } else {
                v.extend([f(8, 8), f(16, 8)]);
            }
            v
        }
        Format::Raw | Format::Json => Vec::new(),
    }
}

fn boundary(rng: &mut Rng, current: u64, file_len: usize) -> u64 {
    match rng.below(10) {
        0 => current.wrapping_add(rng.range(1, 16) as u64),
        1 => current.wrapping_sub(rng.range(1, 16) as u64),
        2 => (file_len as u64)
            .wrapping_add(rng.range(0, 16) as u64)
            .wrapping_sub(8),
        3 => rng.next_u64(),
        4 => current.wrapping_mul(2),
        _ => *rng.pick(BOUNDARY),
    }
}

fn read_int(b: &[u8], at: usize, width: usize) -> u64 {
    let mut a = [0u8; 8];
    a[..width].copy_from_slice(&b[at..at + width]);
    u64::from_le_bytes(a)
}

fn write_int(b: &mut [u8], at: usize, width: usize, v: u64, big_endian: bool) {
    let le = v.to_le_bytes();
    for i in 0..width {
        b[at + i] = if big_endian { le[width - 1 - i] } else { le[i] };
    }
}

/// One byte-level mutation.
fn byte_op(rng: &mut Rng, b: &mut Vec<u8>, fields: &[Field], other: Option<&[u8]>) {
    let len = b.len();
    if len == 0 {
        let n = rng.small_len(32);
        b.extend(rng.bytes(n));
        return;
    }
    match rng.below(16) {
        0 | 1 => {
            let i = rng.below(len);
            b[i] ^= 1 << rng.below(8);
        }
        2 => {
            let i = rng.below(len);
            b[i] = *rng.pick(INTERESTING_BYTES);
        }
        3 => {
            let i = rng.below(len);
            b[i] = rng.byte();
        }
        4 | 5 => {
            // integer at a known field (or anywhere) set to a boundary value
            let (at, width) = match fields {
                [] => (rng.below(len), *rng.pick(&[1usize, 2, 4, 8])),
                _ if rng.one_in(4) => (rng.below(len), *rng.pick(&[1usize, 2, 4, 8])),
                _ => {
                    let f = rng.pick(fields);
                    (f.offset, f.width)
                }
            };
            if at + width <= len {
                let v = boundary(rng, read_int(b, at, width), len);
                write_int(b, at, width, v, rng.one_in(10));
            }
        }
        6 => {
            let width = *rng.pick(&[1usize, 2, 4, 8]);
            if width <= len {
                let at = rng.below(len - width + 1);
                let delta = rng.range(1, 35) as u64;
                let cur = read_int(b, at, width);
                let v = if rng.one_in(2) {
                    cur.wrapping_add(delta)
                } else {
                    cur.wrapping_sub(delta)
                };
                write_int(b, at, width, v, false);
            }
        }
        7 => {
            // truncate: anywhere, or close to the end
            let cut = if rng.one_in(2) {
                rng.below(len)
            } else {
                len.saturating_sub(rng.small_len(64))
            };
            b.truncate(cut);
        }
        8 => {
            let at = rng.below(len + 1);
            let n = rng.small_len(64);
            let ins = if rng.one_in(2) {
                rng.bytes(n)
            } else {
                vec![*rng.pick(INTERESTING_BYTES); n]
            };
            b.splice(at..at, ins);
        }
        9 => {
            let at = rng.below(len + 1);
            let tok = rng.pick(DICT).as_bytes().to_vec();
            b.splice(at..at, tok);
        }
        10 => {
            let at = rng.below(len);
            let n = rng.small_len(len - at);
            b.drain(at..at + n);
        }
        11 => {
            // duplicate a chunk somewhere
            let from = rng.below(len);
            let n = rng.small_len((len - from).min(256));
            let chunk = b[from..from + n].to_vec();
            let at = rng.below(len + 1);
            b.splice(at..at, chunk);
        }
        12 => {
            // copy a chunk over another place
            let from = rng.below(len);
            let n = rng.small_len(len - from);
            let to = rng.below(len);
            let chunk = b[from..from + n].to_vec();
            let n = n.min(len - to);
            b[to..to + n].copy_from_slice(&chunk[..n]);
        }
        13 => {
            // splice: our prefix + the other input's suffix
            if let Some(o) = other.filter(|o| !o.is_empty()) {
                let cut = rng.below(len + 1);
                let ocut = rng.below(o.len() + 1);
                b.truncate(cut);
                b.extend_from_slice(&o[ocut..]);
            } else {
                b.reverse();
            }
        }
        14 => replace_number_text(rng, b),
        _ => {
            let n = rng.small_len(128);
            b.extend(rng.bytes(n));
        }
    }
}

/// Replaces a run of ASCII digits with a boundary number token (works on headers that no
/// longer parse, where the JSON/dict-aware edits cannot).
fn replace_number_text(rng: &mut Rng, b: &mut Vec<u8>) {
    let runs: Vec<(usize, usize)> = {
        let mut runs = Vec::new();
        let mut i = 0;
        while i < b.len() && runs.len() < 64 {
            if b[i].is_ascii_digit() {
                let s = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                runs.push((s, i));
            } else {
                i += 1;
            }
        }
        runs
    };
    if runs.is_empty() {
        return;
    }
    let (s, e) = *rng.pick(&runs);
    let tok = rng.pick(RAW_NUMBERS).as_bytes().to_vec();
    b.splice(s..e, tok);
}

/// A structure-aware mutation; false if the part does not parse as its format.
fn structured(rng: &mut Rng, format: Format, b: &mut Vec<u8>) -> bool {
    match format {
        Format::Safetensors => safetensors_op(rng, b),
        Format::Json => json_file_op(rng, b),
        Format::Npy => npy_op(rng, b),
        Format::Gguf => gguf_op(rng, b),
        Format::Raw => false,
    }
}

// ---------------------------------------------------------------------------------------------
// JSON

/// Serialises `v`, replacing placeholder strings by the raw tokens in `raws`.
fn json_text(v: &Value, raws: &[&str], pretty: bool) -> String {
    let mut s = if pretty {
        serde_json::to_string_pretty(v).unwrap_or_default()
    } else {
        v.to_string()
    };
    for (i, raw) in raws.iter().enumerate() {
        s = s.replace(&format!("\"\\u0001RAW{i}\\u0001\""), raw);
    }
    s
}

fn raw_placeholder(rng: &mut Rng, raws: &mut Vec<&'static str>) -> Value {
    let i = raws.len();
    raws.push(*rng.pick(RAW_NUMBERS));
    Value::String(format!("\u{1}RAW{i}\u{1}"))
}

fn random_scalar(rng: &mut Rng, raws: &mut Vec<&'static str>) -> Value {
    match rng.below(8) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => Value::from(*rng.pick(BOUNDARY)),
        3 => raw_placeholder(rng, raws),
        4 => Value::Array(Vec::new()),
        5 => Value::Object(Map::new()),
        6 => Value::from(rng.below(10)),
        _ => Value::String(rng.pick(DICT).to_string()),
    }
}

/// Paths (object keys / array indices) of up to 256 nodes of `v`, root first.
fn json_paths(v: &Value) -> Vec<Vec<PathStep>> {
    fn walk(v: &Value, path: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
        if out.len() >= 256 {
            return;
        }
        out.push(path.clone());
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    path.push(PathStep::Key(k.clone()));
                    walk(c, path, out);
                    path.pop();
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate().take(64) {
                    path.push(PathStep::Index(i));
                    walk(c, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

#[derive(Clone, Debug)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn at_path<'a>(v: &'a mut Value, path: &[PathStep]) -> Option<&'a mut Value> {
    let mut cur = v;
    for step in path {
        cur = match step {
            PathStep::Key(k) => cur.as_object_mut()?.get_mut(k)?,
            PathStep::Index(i) => cur.as_array_mut()?.get_mut(*i)?,
        };
    }
    Some(cur)
}

/// One edit of a random node of `root` (numbers to boundary values, strings to dictionary
/// words, arrays and objects grown, shrunk or reordered, types swapped).
fn json_edit(rng: &mut Rng, root: &mut Value, raws: &mut Vec<&'static str>) {
    let paths = json_paths(root);
    let path = rng.pick(&paths).clone();
    let Some(node) = at_path(root, &path) else {
        return;
    };
    if rng.one_in(8) {
        *node = random_scalar(rng, raws);
        return;
    }
    match node {
        Value::Number(n) => {
            let cur = n.as_u64().unwrap_or(0);
            *node = match rng.below(6) {
                0 => raw_placeholder(rng, raws),
                1 => Value::from(cur.wrapping_add(1)),
                2 => Value::from(cur.wrapping_sub(1)),
                3 => Value::from(cur.wrapping_mul(2)),
                4 => Value::from(-(rng.range(1, 3) as i64)),
                _ => Value::from(*rng.pick(BOUNDARY)),
            };
        }
        Value::String(s) => {
            *s = match rng.below(5) {
                0 => String::new(),
                1 => format!("{s}{}", rng.pick(DICT)),
                2 => "A".repeat(rng.range(1, 300)),
                _ => rng.pick(DICT).to_string(),
            };
        }
        Value::Array(a) => match rng.below(7) {
            0 if !a.is_empty() => {
                let i = rng.below(a.len());
                let c = a[i].clone();
                a.insert(rng.below(a.len() + 1), c);
            }
            1 if !a.is_empty() => {
                a.remove(rng.below(a.len()));
            }
            2 if a.len() >= 2 => {
                let (i, j) = (rng.below(a.len()), rng.below(a.len()));
                a.swap(i, j);
            }
            3 => a.clear(),
            4 => a.push(Value::from(*rng.pick(&[
                0u64,
                1,
                2,
                3,
                8,
                1 << 32,
                u64::MAX,
            ]))),
            5 => a.push(raw_placeholder(rng, raws)),
            _ => a.reverse(),
        },
        Value::Object(m) => match rng.below(4) {
            0 if !m.is_empty() => {
                let k = m
                    .keys()
                    .nth(rng.below(m.len()))
                    .cloned()
                    .unwrap_or_default();
                m.remove(&k);
            }
            1 if !m.is_empty() => {
                // copy an entry under another (meaningful) name
                let k = m
                    .keys()
                    .nth(rng.below(m.len()))
                    .cloned()
                    .unwrap_or_default();
                let v = m[&k].clone();
                m.insert(rng.pick(DICT).to_string(), v);
            }
            2 if !m.is_empty() => {
                // rename an entry
                let k = m
                    .keys()
                    .nth(rng.below(m.len()))
                    .cloned()
                    .unwrap_or_default();
                if let Some(v) = m.remove(&k) {
                    m.insert(rng.pick(DICT).to_string(), v);
                }
            }
            _ => {
                let v = random_scalar(rng, raws);
                m.insert(rng.pick(DICT).to_string(), v);
            }
        },
        Value::Bool(_) | Value::Null => *node = random_scalar(rng, raws),
    }
}

fn json_file_op(rng: &mut Rng, b: &mut Vec<u8>) -> bool {
    let Ok(mut v) = serde_json::from_slice::<Value>(b) else {
        return false;
    };
    let mut raws = Vec::new();
    for _ in 0..rng.range(1, 3) {
        json_edit(rng, &mut v, &mut raws);
    }
    *b = json_text(&v, &raws, rng.one_in(2)).into_bytes();
    true
}

// ---------------------------------------------------------------------------------------------
// safetensors

fn safetensors_op(rng: &mut Rng, b: &mut Vec<u8>) -> bool {
    let Some((mut header, data)) = formats::st_split(b) else {
        return false;
    };
    let mut raws = Vec::new();
    let tensor_names: Vec<String> = header
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    let mut fixup = rng.one_in(3);
    match rng.below(10) {
        0..=4 => {
            let mut v = Value::Object(header);
            for _ in 0..rng.range(1, 2) {
                json_edit(rng, &mut v, &mut raws);
            }
            match v {
                Value::Object(m) => header = m,
                other => {
                    // the header is no longer an object: write it as it is
                    let text = json_text(&other, &raws, false);
                    *b = formats::st_join_text(&text, &data, true);
                    return true;
                }
            }
        }
        5 if !tensor_names.is_empty() => {
            // another dtype, with offsets and data made consistent most of the time
            let name = rng.pick(&tensor_names).clone();
            if let Some(Value::Object(e)) = header.get_mut(&name) {
                let dtype = if rng.one_in(8) {
                    rng.pick(DICT).to_string()
                } else {
                    rng.pick(ST_DTYPES).0.to_string()
                };
                e.insert("dtype".into(), Value::String(dtype));
            }
            fixup = !rng.one_in(4);
        }
        6 if !tensor_names.is_empty() => {
            // another shape
            let name = rng.pick(&tensor_names).clone();
            if let Some(Value::Object(e)) = header.get_mut(&name) {
                let mut shape: Vec<u64> = e
                    .get("shape")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default();
                match rng.below(6) {
                    0 => shape.push(rng.range(1, 4) as u64),
                    1 => {
                        shape.pop();
                    }
                    2 if !shape.is_empty() => {
                        let i = rng.below(shape.len());
                        shape[i] = rng.below(9) as u64;
                    }
                    3 => shape.reverse(),
                    4 if !shape.is_empty() => {
                        let i = rng.below(shape.len());
                        shape[i] = *rng.pick(BOUNDARY);
                    }
                    _ => shape = vec![rng.range(1, 5) as u64, rng.range(1, 9) as u64],
                }
                e.insert("shape".into(), Value::from(shape));
            }
            fixup = !rng.one_in(4);
        }
        7 => {
            // add a tensor (a copy of one, or a fresh one) under a meaningful name
            let name = rng.pick(DICT).to_string();
            let entry = match tensor_names.as_slice() {
                [] => serde_json::json!({"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}),
                names => header[rng.pick(names)].clone(),
            };
            header.insert(name, entry);
            fixup = !rng.one_in(4);
        }
        8 if !tensor_names.is_empty() => {
            header.remove(rng.pick(&tensor_names));
        }
        _ => {
            // metadata edits
            let m = header
                .entry("__metadata__")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = m {
                let k = rng.pick(DICT).to_string();
                if rng.one_in(3) {
                    m.remove(&k);
                } else {
                    m.insert(k, Value::String(rng.pick(DICT).to_string()));
                }
            } else {
                *m = random_scalar(rng, &mut raws);
            }
        }
    }
    let data = if fixup {
        st_fixup(rng, &mut header, &data).unwrap_or(data)
    } else {
        data
    };
    let text = json_text(&Value::Object(header), &raws, rng.one_in(5));
    let mut out = formats::st_join_text(&text, &data, !rng.one_in(5));
    if rng.one_in(10) {
        // a length field that disagrees with the header
        let v = boundary(rng, read_int(&out, 0, 8), out.len());
        write_int(&mut out, 0, 8, v, false);
    }
    *b = out;
    true
}

/// Lays the tensors out back to back with sizes matching dtype and shape (so that the file is
/// consistent and deeper code runs), filling data from the old section or with patterns.
/// `None` if a tensor has an unusable entry or the data would be too large.
fn st_fixup(rng: &mut Rng, header: &mut Map<String, Value>, old: &[u8]) -> Option<Vec<u8>> {
    let fill = rng.below(5);
    let mut data = Vec::new();
    for (name, entry) in header.iter_mut() {
        if name == "__metadata__" {
            continue;
        }
        let e = entry.as_object_mut()?;
        let bits = st_dtype_bits(e.get("dtype")?.as_str()?)?;
        let mut numel = 1usize;
        for d in e.get("shape")?.as_array()? {
            numel = numel.checked_mul(usize::try_from(d.as_u64()?).ok()?)?;
        }
        let n = numel.checked_mul(bits)?.div_ceil(8);
        if data.len() + n > MAX_FIXUP {
            return None;
        }
        let start = data.len();
        for i in 0..n {
            data.push(match fill {
                0 if !old.is_empty() => old[i % old.len()],
                1 => rng.byte(),
                2 => 0,
                3 => 0xff,
                _ => [0x00, 0x3c, 0x80, 0x3f][i % 4],
            });
        }
        e.insert(
            "data_offsets".into(),
            Value::from(vec![start as u64, data.len() as u64]),
        );
    }
    Some(data)
}

// ---------------------------------------------------------------------------------------------
// .npy

/// Byte range of the value of `key` in a Python dict literal (lenient, textual).
fn dict_value(dict: &[u8], key: &str) -> Option<(usize, usize)> {
    let pos = [format!("'{key}'"), format!("\"{key}\"")]
        .iter()
        .find_map(|k| find(dict, k.as_bytes()).map(|p| p + k.len()))?;
    let mut i = pos;
    while i < dict.len() && matches!(dict[i], b' ' | b':') {
        i += 1;
    }
    let start = i;
    match dict.get(i)? {
        q @ (b'\'' | b'"') => {
            let q = *q;
            i += 1;
            while i < dict.len() && dict[i] != q {
                i += 1;
            }
            Some((start, (i + 1).min(dict.len())))
        }
        b'(' | b'[' => {
            let mut depth = 0;
            while i < dict.len() {
                match dict[i] {
                    b'(' | b'[' => depth += 1,
                    b')' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some((start, i + 1));
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            Some((start, i))
        }
        _ => {
            while i < dict.len() && !matches!(dict[i], b',' | b'}') {
                i += 1;
            }
            Some((start, i))
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

const NPY_DESCRS: &[&str] = &[
    "'<f4'",
    "'<f2'",
    "'<f8'",
    "'|f2'",
    "'=f8'",
    "'f4'",
    "'e'",
    "'d'",
    "'>f4'",
    "'<i4'",
    "'|u1'",
    "'|b1'",
    "'<c8'",
    "'<f16'",
    "'O'",
    "''",
    "'<'",
    "[('a', '<f4')]",
    "None",
    "4",
];

fn npy_shape_text(rng: &mut Rng) -> String {
    const DIMS: &[&str] = &[
        "0",
        "1",
        "2",
        "3",
        "4",
        "8",
        "16",
        "1000",
        "2147483648",
        "4294967296",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "-1",
        "3L",
        "2.0",
        "None",
        "'3'",
        "()",
    ];
    let rank = *rng.pick(&[0usize, 1, 2, 2, 2, 2, 3, 4]);
    let dims: Vec<&str> = (0..rank)
        .map(|_| {
            if rng.one_in(2) {
                *rng.pick(&DIMS[..7])
            } else {
                *rng.pick(DIMS)
            }
        })
        .collect();
    let body = dims.join(", ");
    match (rng.below(6), rank) {
        (0, _) => format!("[{body}]"),
        (_, 1) => format!("({body},)"),
        _ => format!("({body})"),
    }
}

fn npy_op(rng: &mut Rng, b: &mut Vec<u8>) -> bool {
    let Some(mut p) = formats::npy_split(b) else {
        return false;
    };
    let replace = |p: &mut NpyParts, key: &str, text: &str| {
        if let Some((s, e)) = dict_value(&p.dict, key) {
            p.dict.splice(s..e, text.bytes());
        }
    };
    match rng.below(9) {
        0 => {
            let d = *rng.pick(NPY_DESCRS);
            replace(&mut p, "descr", d);
        }
        1 => {
            let v = rng.pick(&["True", "False", "None", "1", "'False'", "false"]);
            replace(&mut p, "fortran_order", v);
        }
        2 | 3 => {
            let s = npy_shape_text(rng);
            replace(&mut p, "shape", &s);
        }
        4 => {
            // drop, duplicate or add a key
            let key = *rng.pick(&["descr", "fortran_order", "shape"]);
            if let Some((s, e)) = dict_value(&p.dict, key) {
                let kstart = find(&p.dict, key.as_bytes()).unwrap_or(s).saturating_sub(1);
                let entry = p.dict[kstart..e].to_vec();
                match rng.below(3) {
                    0 => {
                        p.dict.drain(kstart..e);
                    }
                    1 => {
                        let mut dup = entry;
                        dup.extend_from_slice(b", ");
                        p.dict.splice(kstart..kstart, dup);
                    }
                    _ => {
                        let at = 1.min(p.dict.len());
                        p.dict
                            .splice(at..at, b"'extra': (1, [2, {3: 'x'}]), ".iter().copied());
                    }
                }
            }
        }
        5 => {
            (p.major, p.minor) = *rng.pick(&[(1, 0), (2, 0), (3, 0), (4, 0), (1, 1), (0, 0)]);
        }
        6 => {
            // make the data length match the declared shape (or miss by a little)
            let dims = dict_value(&p.dict, "shape").map(|(s, e)| {
                String::from_utf8_lossy(&p.dict[s..e])
                    .split(|c: char| !c.is_ascii_digit())
                    .filter_map(|t| t.parse::<usize>().ok())
                    .collect::<Vec<_>>()
            });
            let size = if find(&p.dict, b"f2").is_some() {
                2
            } else if find(&p.dict, b"f8").is_some() {
                8
            } else {
                4
            };
            let want = dims
                .and_then(|d| d.iter().try_fold(size, |a: usize, &x| a.checked_mul(x)))
                .filter(|&n| n <= MAX_FIXUP);
            if let Some(n) = want {
                let n = match rng.below(4) {
                    0 => n.saturating_sub(1),
                    1 => n + 1,
                    _ => n,
                };
                let fill = *rng.pick(&[0u8, 0x3f, 0x7f, 0xff]);
                p.data.resize(n, fill);
            }
        }
        7 => {
            let at = rng.below(p.dict.len() + 1);
            let tok = *rng.pick(&[
                "{", "}", "(", ")", "[", "]", ",", ":", "'", "\"", "\\", "True", "L", "-", " ",
                "\n", "\0", "é",
            ]);
            p.dict.splice(at..at, tok.bytes());
        }
        _ => {
            let shape = npy_shape_text(rng);
            let descr = rng.pick(NPY_DESCRS);
            let order = if rng.one_in(6) { "True" } else { "False" };
            p.dict = format!("{{'descr': {descr}, 'fortran_order': {order}, 'shape': {shape}, }}")
                .into_bytes();
        }
    }
    *b = formats::npy_join(&p, !rng.one_in(6));
    true
}

// ---------------------------------------------------------------------------------------------
// GGUF

const GGUF_KEYS: &[&str] = &[
    "general.architecture",
    "general.alignment",
    "llama.block_count",
    "llama.context_length",
    "llama.embedding_length",
    "llama.feed_forward_length",
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.attention.layer_norm_rms_epsilon",
    "llama.rope.freq_base",
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
];

const GGUF_STRINGS: &[&str] = &[
    "llama",
    "gpt2",
    "smollm",
    "llama3",
    "",
    "a",
    "Ġ",
    "Ġt",
    "he",
    "Ġ t",
    "h e",
    "a b",
    "nospace",
    " ",
    "<|endoftext|>",
    "llama\nx",
    "\u{0}",
    "é",
];

const GGUF_TENSORS: &[&str] = &[
    "token_embd.weight",
    "output_norm.weight",
    "blk.0.attn_norm.weight",
    "blk.0.ffn_up.weight",
    "blk.0.attn_q.weight",
];

fn random_gval(rng: &mut Rng) -> GVal {
    let v = *rng.pick(BOUNDARY);
    match rng.below(14) {
        0 => GVal::U8(v as u8),
        1 => GVal::I8(v as i8),
        2 => GVal::U16(v as u16),
        3 => GVal::I16(v as i16),
        4 => GVal::U32(v as u32),
        5 => GVal::I32(v as i32),
        6 => GVal::F32(*rng.pick(&[0.0, -1.0, 1e-5, f32::NAN, f32::INFINITY, 1e38])),
        7 => GVal::Bool(*rng.pick(&[0u8, 1, 2, 0xff])),
        8 | 9 => {
            let s = *rng.pick(GGUF_STRINGS);
            GVal::str(s)
        }
        10 => GVal::U64(v),
        11 => GVal::I64(v as i64),
        12 => GVal::F64(*rng.pick(&[0.0, 1e6, -1.0, f64::NAN, 1e300])),
        _ => GVal::Arr(
            *rng.pick(&[0u32, 4, 8, 9, 13]),
            (0..rng.below(4)).map(|_| GVal::U8(rng.byte())).collect(),
        ),
    }
}

/// A value of the same type as `v`, set to a boundary value.
fn boundary_like(rng: &mut Rng, v: &GVal, file_len: usize) -> GVal {
    let cur = match v {
        GVal::U8(x) => u64::from(*x),
        GVal::U16(x) => u64::from(*x),
        GVal::U32(x) => u64::from(*x),
        GVal::U64(x) => *x,
        GVal::I8(x) => *x as u64,
        GVal::I16(x) => *x as u64,
        GVal::I32(x) => *x as u64,
        GVal::I64(x) => *x as u64,
        _ => return random_gval(rng),
    };
    let n = boundary(rng, cur, file_len);
    match v {
        GVal::U8(_) => GVal::U8(n as u8),
        GVal::U16(_) => GVal::U16(n as u16),
        GVal::U32(_) => GVal::U32(n as u32),
        GVal::I8(_) => GVal::I8(n as i8),
        GVal::I16(_) => GVal::I16(n as i16),
        GVal::I32(_) => GVal::I32(n as i32),
        GVal::I64(_) => GVal::I64(n as i64),
        _ => GVal::U64(n),
    }
}

fn edit_string_array(rng: &mut Rng, items: &mut Vec<GVal>, elem_type: &mut u32) {
    let len = items.len();
    match rng.below(9) {
        0 if len > 0 => {
            items.remove(rng.below(len));
        }
        1 => {
            let s = if len > 1 && rng.one_in(2) {
                // a merge of two existing tokens (the product may not exist)
                let a = match &items[rng.below(len)] {
                    GVal::Str(s) => String::from_utf8_lossy(s).into_owned(),
                    _ => String::new(),
                };
                let b = match &items[rng.below(len)] {
                    GVal::Str(s) => String::from_utf8_lossy(s).into_owned(),
                    _ => String::new(),
                };
                format!("{a} {b}")
            } else {
                rng.pick(GGUF_STRINGS).to_string()
            };
            items.insert(rng.below(len + 1), GVal::str(&s));
        }
        2 if len > 0 => {
            let i = rng.below(len);
            items[i] = random_gval(rng);
        }
        3 if len > 1 => {
            let (i, j) = (rng.below(len), rng.below(len));
            items.swap(i, j);
        }
        4 => *elem_type = *rng.pick(&[0u32, 4, 5, 9, 12, 13, 0xffff_ffff]),
        5 => items.truncate(rng.below(len + 1)),
        6 if len > 0 => {
            let i = rng.below(len);
            let c = items[i].clone();
            items.insert(rng.below(len + 1), c);
        }
        7 => items.push(GVal::Str(vec![b'A'; rng.range(1, 2000)])),
        _ if len > 0 => {
            let i = rng.below(len);
            if let GVal::Str(s) = &mut items[i] {
                if s.is_empty() || rng.one_in(2) {
                    s.push(*rng.pick(&[b' ', b'a', 0xc4, 0xa0, 0]));
                } else {
                    s.pop();
                }
            }
        }
        _ => items.clear(),
    }
}

fn gguf_op(rng: &mut Rng, b: &mut Vec<u8>) -> bool {
    let Some((mut g, fields)) = GFile::parse(b) else {
        return false;
    };
    let len = b.len();
    match rng.below(13) {
        0 | 1 if !fields.is_empty() => {
            // an integer field of the raw layout (count, length, type, dim, offset, value)
            let f = rng.pick(&fields);
            let v = boundary(rng, read_int(b, f.offset, f.width), len);
            write_int(b, f.offset, f.width, v, false);
            return true;
        }
        2 if !g.kvs.is_empty() => {
            let i = rng.below(g.kvs.len());
            g.kvs[i].1 = if rng.one_in(2) {
                boundary_like(rng, &g.kvs[i].1, len)
            } else {
                random_gval(rng)
            };
        }
        3 if !g.kvs.is_empty() => {
            g.kvs.remove(rng.below(g.kvs.len()));
        }
        4 if !g.kvs.is_empty() => {
            let i = rng.below(g.kvs.len());
            let mut kv = g.kvs[i].clone();
            if rng.one_in(2) {
                kv.1 = random_gval(rng);
            }
            g.kvs.push(kv);
        }
        5 => {
            let key = rng.pick(GGUF_KEYS);
            let v = if *key == "general.alignment" {
                match rng.below(3) {
                    0 => GVal::U32(*rng.pick(&[0, 1, 3, 8, 64, 4096, 1 << 31, u32::MAX])),
                    1 => GVal::U8(*rng.pick(&[0, 1, 7, 16])),
                    _ => GVal::I32(*rng.pick(&[0, -1, 16])),
                }
            } else {
                random_gval(rng)
            };
            g.set(key, v);
        }
        6 | 7 => {
            let key = if rng.one_in(2) {
                "tokenizer.ggml.tokens"
            } else {
                "tokenizer.ggml.merges"
            };
            match g.kvs.iter_mut().find(|(k, _)| k == key.as_bytes()) {
                Some((_, GVal::Arr(t, items))) => edit_string_array(rng, items, t),
                _ => return false,
            }
        }
        8 if !g.tensors.is_empty() => {
            let i = rng.below(g.tensors.len());
            let dims = &mut g.tensors[i].dims;
            match rng.below(6) {
                0 => dims.clear(),
                1 => dims.push(*rng.pick(&[0u64, 1, 2, 32, 1 << 32, u64::MAX])),
                2 => {
                    dims.pop();
                }
                3 if !dims.is_empty() => {
                    let j = rng.below(dims.len());
                    dims[j] = *rng.pick(BOUNDARY);
                }
                4 => *dims = vec![1 << 32; rng.range(2, 4)],
                _ => dims.reverse(),
            }
        }
        9 if !g.tensors.is_empty() => {
            let i = rng.below(g.tensors.len());
            let t = &mut g.tensors[i];
            if rng.one_in(2) {
                t.dtype = if rng.one_in(4) {
                    rng.below(40) as u32
                } else {
                    rng.pick(GGML_TYPES).0
                };
            } else {
                t.offset = boundary(rng, t.offset, len);
            }
        }
        10 if !g.tensors.is_empty() => {
            let i = rng.below(g.tensors.len());
            match rng.below(3) {
                0 => {
                    g.tensors.remove(i);
                }
                1 => {
                    let t = g.tensors[i].clone();
                    g.tensors.push(t);
                }
                _ => g.tensors[i].name = rng.pick(GGUF_TENSORS).as_bytes().to_vec(),
            }
        }
        11 => g.version = *rng.pick(&[0u32, 1, 2, 3, 4, u32::MAX]),
        _ => {
            let n = g.data.len();
            match rng.below(3) {
                0 => g.data.truncate(rng.below(n + 1)),
                1 => {
                    let n = rng.small_len(64);
                    g.data.extend(rng.bytes(n));
                }
                _ if n > 0 => {
                    let i = rng.below(n);
                    g.data[i] = *rng.pick(&[0x00, 0xff, 0x7c, 0x7e]);
                }
                _ => {}
            }
        }
    }
    *b = g.to_bytes();
    true
}

/// Re-fits a code store's index to its shard files as they are now: each listed shard present in
/// the input gets its `bytes` and `check` (the store's checksum) recomputed, so that mutations of
/// a shard get past the size and checksum checks into the shard parser.
pub fn refit_code_index(input: &mut Input) {
    let index = bae_io::code_store::CODES_INDEX;
    let Some(k) = input.parts.iter().position(|p| p.name == index) else {
        return;
    };
    let Ok(mut v) = serde_json::from_slice::<Value>(&input.parts[k].bytes) else {
        return;
    };
    let Some(shards) = v.get_mut("shards").and_then(Value::as_array_mut) else {
        return;
    };
    for s in shards.iter_mut() {
        let Some(file) = s.get("file").and_then(Value::as_str) else {
            continue;
        };
        let Some(part) = input.parts.iter().find(|p| p.name == file) else {
            continue;
        };
        let (len, check) = (
            part.bytes.len() as u64,
            bae_io::code_store::checksum(&part.bytes),
        );
        if let Some(o) = s.as_object_mut() {
            o.insert("bytes".into(), Value::from(len));
            o.insert("check".into(), Value::from(format!("{check:016x}")));
        }
    }
    input.parts[k].bytes = serde_json::to_vec_pretty(&v).unwrap_or_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_stay_bounded_and_vary() {
        let st = formats::st_file(
            &[formats::StTensor::new(
                "activations",
                "F32",
                &[2, 2],
                vec![0; 16],
            )],
            &[("k", "v")],
        );
        let npy = formats::npy_file("<f4", false, &[2, 2], 1, &[0; 16]);
        let gguf = crate::gguf::toy_gguf(&crate::gguf::Toy::default()).to_bytes();
        let json = br#"{"d": 2, "shards": [{"file": "a.safetensors", "rows": 2}]}"#.to_vec();
        let seeds = vec![
            Input::single("x.safetensors", st),
            Input::single("x.npy", npy),
            Input::single("x.gguf", gguf),
            Input::single("m.json", json),
            Input::single("raw.bin", vec![]),
        ];
        let mut rng = Rng::new(3);
        let mut changed = 0;
        for i in 0..4000 {
            let base = &seeds[i % seeds.len()];
            let mut x = base.clone();
            mutate(&mut rng, &mut x, &seeds, 4096);
            assert!(x.parts[0].bytes.len() <= 4096);
            changed += usize::from(&x != base);
        }
        assert!(changed > 3500, "{changed}");
    }

    #[test]
    fn dict_value_ranges() {
        let d = b"{'descr': '<f4', 'fortran_order': False, 'shape': (3, (4,)), }";
        let r = |k| dict_value(d, k).map(|(s, e)| String::from_utf8_lossy(&d[s..e]).into_owned());
        assert_eq!(r("descr").as_deref(), Some("'<f4'"));
        assert_eq!(r("fortran_order").as_deref(), Some("False"));
        assert_eq!(r("shape").as_deref(), Some("(3, (4,))"));
        assert_eq!(r("nope"), None);
    }

    #[test]
    fn json_raw_numbers_are_spliced() {
        let mut raws = vec!["18446744073709551616"];
        let v = serde_json::json!({"a": "\u{1}RAW0\u{1}"});
        raws.truncate(1);
        assert_eq!(json_text(&v, &raws, false), r#"{"a":18446744073709551616}"#);
    }
}
