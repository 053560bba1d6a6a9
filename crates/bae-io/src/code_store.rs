//! A code store: the binary codes of a corpus under one trained BAE, bit-packed, so that studies
//! over many subsets (entropy estimates, co-activation counts) read `d'/8` bytes per row instead
//! of `2·d` bytes of f16 activations and a forward pass.
//!
//! Layout of a code-store folder:
//!
//! * `codes.json` (the index, rewritten atomically after every shard):
//!   `{"format": "bae-codes", "version": 1, "n_bits": d', "words_per_row": ceil(d'/64),
//!   "settings": {...}, "n_rows": N, "shards": [{"file", "rows", "first_row", "bytes", "check"}],
//!   "complete": bool}`. `settings` is what a resumed writer must match exactly (the run folder,
//!   its arch, config and model checksum, the source extract folder and its row range, the LLM, the
//!   shard size); `check` is a 64-bit checksum (hex) of the shard file's bytes.
//! * `codes-NNNNN.safetensors`: tensors `codes` U64 `[rows, words_per_row]` (little-endian; bit `j`
//!   of a row is bit `j % 64` of word `j / 64`, LSB first, the padding bits of the last word 0 —
//!   `bae_bits::PackedRows`'s layout, so `PackedRows::from_words(rows, d', codes)` wraps it),
//!   `token_ids`, `doc_ids` and `positions` I32 `[rows]` (−1 where the source does not know
//!   them), and metadata `n_bits`, `first_row`, `run`, `model`.
//!
//! Shards are written whole to a temporary file and renamed, then the index is rewritten, so a
//! killed writer leaves the store at its last complete shard; [`CodeStoreWriter::open`] continues
//! from there. Everything read back is untrusted: every shape, length and checksum is checked,
//! and errors are one line naming the file.

use crate::atomic::write_atomic_with;
use crate::error::{IoError, Result};
use crate::safetensors_file::{EntrySpec, build_header, parse_header};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The index file of a code store.
pub const CODES_INDEX: &str = "codes.json";
/// The `format` field of the index.
pub const CODES_FORMAT: &str = "bae-codes";
/// The layout version written and accepted.
pub const CODES_VERSION: u64 = 1;
/// Largest index file read (a million shards' worth).
const MAX_INDEX_BYTES: u64 = 256 << 20;

/// 64-bit checksum of `bytes`: 8-byte little-endian words, each mixed by a bijective step, so any
/// change of one word (any single flipped bit or byte) changes the result.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0x243f_6a88_85a3_08d3 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h.rotate_left(23) ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h.rotate_left(23) ^ u64::from_le_bytes(tail)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
}

/// Words per row of `n_bits`-bit codes.
pub fn words_per_row(n_bits: usize) -> usize {
    n_bits.div_ceil(64)
}

/// One shard as listed in the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeShard {
    pub file: String,
    pub rows: usize,
    pub first_row: usize,
    /// file length in bytes
    pub bytes: u64,
    /// [`checksum`] of the file
    pub check: u64,
}

/// Per-row id columns of some rows (−1 where unknown).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodeIds {
    pub token_ids: Vec<i32>,
    pub doc_ids: Vec<i32>,
    pub positions: Vec<i32>,
}

/// Codes and ids of one shard, read and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardData {
    /// `rows * words_per_row` words
    pub codes: Vec<u64>,
    pub ids: CodeIds,
}

/// The shared part of reader and writer: the index.
#[derive(Clone, Debug)]
struct Index {
    n_bits: usize,
    settings: Value,
    shards: Vec<CodeShard>,
    complete: bool,
}

impl Index {
    fn n_rows(&self) -> usize {
        self.shards.last().map_or(0, |s| s.first_row + s.rows)
    }

    fn to_json(&self) -> Value {
        let shards: Vec<Value> = self
            .shards
            .iter()
            .map(|s| {
                json!({
                    "file": s.file,
                    "rows": s.rows,
                    "first_row": s.first_row,
                    "bytes": s.bytes,
                    "check": format!("{:016x}", s.check),
                })
            })
            .collect();
        json!({
            "format": CODES_FORMAT,
            "version": CODES_VERSION,
            "n_bits": self.n_bits,
            "words_per_row": words_per_row(self.n_bits),
            "settings": self.settings,
            "n_rows": self.n_rows(),
            "shards": shards,
            "complete": self.complete,
        })
    }

    fn read(path: &Path) -> Result<Index> {
        let meta =
            std::fs::metadata(path).map_err(|e| IoError::from_io(path, "cannot read", &e))?;
        if meta.len() > MAX_INDEX_BYTES {
            return Err(IoError::new(
                path,
                format!("index of {} bytes is too large", meta.len()),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| IoError::from_io(path, "cannot read", &e))?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            IoError::new(
                path,
                format!("not a bae code-store index (invalid JSON: {e})"),
            )
        })?;
        let bad = |what: String| IoError::new(path, format!("invalid code-store index: {what}"));
        let Value::Object(m) = v else {
            return Err(bad("not a JSON object".into()));
        };
        if m.get("format").and_then(Value::as_str) != Some(CODES_FORMAT) {
            return Err(bad(format!("\"format\" is not {CODES_FORMAT:?}")));
        }
        match m.get("version").and_then(Value::as_u64) {
            Some(CODES_VERSION) => {}
            Some(v) => {
                return Err(IoError::new(
                    path,
                    format!(
                        "code-store layout version {v}, this bae reads version {CODES_VERSION}"
                    ),
                ));
            }
            None => return Err(bad("no \"version\"".into())),
        }
        let uint = |m: &Map<String, Value>, k: &str, ctx: &str| -> Result<usize> {
            m.get(k)
                .and_then(Value::as_u64)
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| bad(format!("{ctx}\"{k}\" is not a non-negative integer")))
        };
        let n_bits = uint(&m, "n_bits", "")?;
        if n_bits == 0 || n_bits > 1 << 24 {
            return Err(bad(format!("n_bits {n_bits} is out of range 1..=16777216")));
        }
        let wpr = uint(&m, "words_per_row", "")?;
        if wpr != words_per_row(n_bits) {
            return Err(bad(format!(
                "words_per_row {wpr} does not fit n_bits {n_bits}"
            )));
        }
        let settings = m.get("settings").cloned().unwrap_or(Value::Null);
        if !settings.is_object() {
            return Err(bad("\"settings\" is not an object".into()));
        }
        let complete = m
            .get("complete")
            .and_then(Value::as_bool)
            .ok_or_else(|| bad("\"complete\" is not true or false".into()))?;
        let list = m
            .get("shards")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("\"shards\" is not a list".into()))?;
        let mut shards = Vec::with_capacity(list.len());
        let mut next = 0usize;
        for (k, s) in list.iter().enumerate() {
            let Value::Object(s) = s else {
                return Err(bad(format!("shard {k} is not an object")));
            };
            let ctx = format!("shard {k}: ");
            let file = s
                .get("file")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("{ctx}no \"file\"")))?;
            if !plain_name(file) {
                return Err(bad(format!(
                    "{ctx}{file:?} is not a plain file name in the folder"
                )));
            }
            let rows = uint(s, "rows", &ctx)?;
            let first_row = uint(s, "first_row", &ctx)?;
            if rows == 0 || first_row != next {
                return Err(bad(format!(
                    "{ctx}rows {rows} from row {first_row}: expected at least one row from row {next}"
                )));
            }
            next = next
                .checked_add(rows)
                .ok_or_else(|| bad(format!("{ctx}row count overflows")))?;
            let bytes = uint(s, "bytes", &ctx)? as u64;
            let check = s
                .get("check")
                .and_then(Value::as_str)
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad(format!("{ctx}\"check\" is not a hex checksum")))?;
            shards.push(CodeShard {
                file: file.to_string(),
                rows,
                first_row,
                bytes,
                check,
            });
        }
        if uint(&m, "n_rows", "")? != next {
            return Err(bad(format!(
                "\"n_rows\" is not the {next} rows its shards hold"
            )));
        }
        Ok(Index {
            n_bits,
            settings,
            shards,
            complete,
        })
    }
}

/// A name that stays inside its folder: not empty, no path separator, not `.` or `..`, no
/// control character.
pub(crate) fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('/')
        && !name.contains('\\')
        && name != "."
        && name != ".."
        && !name.chars().any(char::is_control)
}

/// The path of the `n`-th shard.
fn shard_name(n: usize) -> String {
    format!("codes-{n:05}.safetensors")
}

/// Reads and checks one shard file against its index entry.
fn read_shard(dir: &Path, n_bits: usize, s: &CodeShard) -> Result<ShardData> {
    let path = dir.join(&s.file);
    let bytes = std::fs::read(&path).map_err(|e| IoError::from_io(&path, "cannot read", &e))?;
    if bytes.len() as u64 != s.bytes {
        return Err(IoError::new(
            &path,
            format!(
                "shard is {} bytes, the index {CODES_INDEX} says {} (truncated or replaced?)",
                bytes.len(),
                s.bytes
            ),
        ));
    }
    if checksum(&bytes) != s.check {
        return Err(IoError::new(
            &path,
            format!("shard checksum does not match the index {CODES_INDEX} (file corrupted)"),
        ));
    }
    let header = parse_header(&path, &bytes)?;
    let wpr = words_per_row(n_bits);
    let rows = s.rows;
    let find = |name: &str, dtype: &str, shape: &[usize]| -> Result<&[u8]> {
        let t = header
            .tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| IoError::new(&path, format!("shard has no tensor {name:?}")))?;
        if t.dtype != dtype || t.shape != shape {
            return Err(IoError::new(
                &path,
                format!(
                    "tensor {name:?} is {} {:?}, expected {dtype} {shape:?}",
                    t.dtype, t.shape
                ),
            ));
        }
        Ok(&bytes[t.start..t.end])
    };
    let codes: Vec<u64> = find("codes", "U64", &[rows, wpr])?
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let i32s = |name: &str| -> Result<Vec<i32>> {
        Ok(find(name, "I32", &[rows])?
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    };
    let token_ids = i32s("token_ids")?;
    let doc_ids = i32s("doc_ids")?;
    let positions = i32s("positions")?;
    if header.metadata.get("n_bits").map(String::as_str) != Some(n_bits.to_string().as_str()) {
        return Err(IoError::new(
            &path,
            format!("shard metadata n_bits is not the index's {n_bits}"),
        ));
    }
    check_padding(&path, &codes, n_bits)?;
    Ok(ShardData {
        codes,
        ids: CodeIds {
            token_ids,
            doc_ids,
            positions,
        },
    })
}

/// The padding bits past `n_bits` in each row's last word must be 0.
fn check_padding(path: &Path, codes: &[u64], n_bits: usize) -> Result<()> {
    let wpr = words_per_row(n_bits);
    let tail = n_bits % 64;
    if tail == 0 || wpr == 0 {
        return Ok(());
    }
    let mask = !0u64 << tail;
    if let Some(r) = codes
        .chunks_exact(wpr)
        .position(|row| row[wpr - 1] & mask != 0)
    {
        return Err(IoError::new(
            path,
            format!("row {r} has bits set past bit {n_bits} (not a code of {n_bits} bits)"),
        ));
    }
    Ok(())
}

/// Writes a code store shard by shard; resumable.
#[derive(Debug)]
pub struct CodeStoreWriter {
    dir: PathBuf,
    index: Index,
    /// rows present when this writer was opened
    resumed_rows: usize,
}

impl CodeStoreWriter {
    /// Opens `dir` for writing `n_bits`-bit codes under `settings` (a JSON object). A folder that
    /// already holds an index continues after its last listed shard, provided `n_bits` and
    /// `settings` are exactly those recorded (else a one-line refusal naming the first difference).
    /// The caller holds the folder lock.
    pub fn open(dir: &Path, n_bits: usize, settings: Value) -> Result<CodeStoreWriter> {
        if n_bits == 0 {
            return Err(IoError::new(dir, "codes need at least one bit"));
        }
        if !settings.is_object() {
            return Err(IoError::new(
                dir,
                "code-store settings must be a JSON object",
            ));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| IoError::from_io(dir, "cannot create folder", &e))?;
        let ipath = dir.join(CODES_INDEX);
        let index = if ipath.exists() {
            let old = Index::read(&ipath)?;
            if old.n_bits != n_bits {
                return Err(IoError::new(
                    &ipath,
                    format!(
                        "holds {}-bit codes, these are {n_bits}-bit: choose another output folder",
                        old.n_bits
                    ),
                ));
            }
            if let Some(diff) = first_difference(&old.settings, &settings, "") {
                return Err(IoError::new(
                    &ipath,
                    format!(
                        "was written with other settings ({diff}); choose another output folder or remove it"
                    ),
                ));
            }
            // every listed shard must still be there, whole
            for s in &old.shards {
                read_shard(dir, n_bits, s)?;
            }
            old
        } else {
            Index {
                n_bits,
                settings,
                shards: Vec::new(),
                complete: false,
            }
        };
        let resumed_rows = index.n_rows();
        let w = CodeStoreWriter {
            dir: dir.to_path_buf(),
            index,
            resumed_rows,
        };
        if !ipath.exists() {
            w.write_index()?;
        }
        Ok(w)
    }

    /// Rows stored so far (listed in the index).
    pub fn n_rows(&self) -> usize {
        self.index.n_rows()
    }

    /// Rows that were already there when the writer was opened.
    pub fn resumed_rows(&self) -> usize {
        self.resumed_rows
    }

    pub fn n_shards(&self) -> usize {
        self.index.shards.len()
    }

    pub fn is_complete(&self) -> bool {
        self.index.complete
    }

    pub fn n_bits(&self) -> usize {
        self.index.n_bits
    }

    /// Bytes of the code words listed so far (`rows · words_per_row · 8`).
    pub fn code_bytes(&self) -> u64 {
        self.n_rows() as u64 * words_per_row(self.index.n_bits) as u64 * 8
    }

    /// Bytes of the shard files listed so far plus the index.
    pub fn bytes(&self) -> u64 {
        let index = std::fs::metadata(self.dir.join(CODES_INDEX)).map_or(0, |m| m.len());
        self.index.shards.iter().map(|s| s.bytes).sum::<u64>() + index
    }

    /// Appends one shard: `codes` holds `rows * words_per_row` words (padding bits 0), the id
    /// columns `rows` values each. The shard file is written atomically, then the index.
    pub fn append(&mut self, codes: &[u64], ids: &CodeIds) -> Result<()> {
        let n_bits = self.index.n_bits;
        let wpr = words_per_row(n_bits);
        let rows = codes.len() / wpr;
        let name = shard_name(self.index.shards.len());
        let path = self.dir.join(&name);
        if self.index.complete {
            return Err(IoError::new(
                self.dir.join(CODES_INDEX),
                "the code store is complete; nothing can be added",
            ));
        }
        if rows == 0
            || codes.len() != rows * wpr
            || ids.token_ids.len() != rows
            || ids.doc_ids.len() != rows
            || ids.positions.len() != rows
        {
            return Err(IoError::new(
                &path,
                format!(
                    "a shard needs rows x {wpr} code words and one id per row: got {} words, {} / {} / {} ids",
                    codes.len(),
                    ids.token_ids.len(),
                    ids.doc_ids.len(),
                    ids.positions.len()
                ),
            ));
        }
        check_padding(&path, codes, n_bits)?;
        let first_row = self.n_rows();
        let mut metadata = BTreeMap::new();
        metadata.insert("n_bits".to_string(), n_bits.to_string());
        metadata.insert("first_row".to_string(), first_row.to_string());
        for key in ["run", "model"] {
            if let Some(v) = self.index.settings.get(key) {
                let s = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                metadata.insert(key.to_string(), s);
            }
        }
        let specs = [
            EntrySpec {
                name: "codes",
                dtype: "U64",
                shape: &[rows, wpr],
                n_bytes: codes.len() * 8,
            },
            EntrySpec {
                name: "token_ids",
                dtype: "I32",
                shape: &[rows],
                n_bytes: rows * 4,
            },
            EntrySpec {
                name: "doc_ids",
                dtype: "I32",
                shape: &[rows],
                n_bytes: rows * 4,
            },
            EntrySpec {
                name: "positions",
                dtype: "I32",
                shape: &[rows],
                n_bytes: rows * 4,
            },
        ];
        let mut bytes = build_header(&path, &specs, &metadata)?;
        bytes.reserve(codes.len() * 8 + rows * 12);
        bytes.extend(codes.iter().flat_map(|w| w.to_le_bytes()));
        bytes.extend(ids.token_ids.iter().flat_map(|v| v.to_le_bytes()));
        bytes.extend(ids.doc_ids.iter().flat_map(|v| v.to_le_bytes()));
        bytes.extend(ids.positions.iter().flat_map(|v| v.to_le_bytes()));
        write_atomic_with(&path, |w| w.write_all(&bytes))?;
        self.index.shards.push(CodeShard {
            file: name,
            rows,
            first_row,
            bytes: bytes.len() as u64,
            check: checksum(&bytes),
        });
        self.write_index()
    }

    /// Marks the store complete (no shard can be added after this).
    pub fn finish(&mut self) -> Result<()> {
        self.index.complete = true;
        self.write_index()
    }

    fn write_index(&self) -> Result<()> {
        let path = self.dir.join(CODES_INDEX);
        let mut text = serde_json::to_string_pretty(&self.index.to_json())
            .map_err(|e| IoError::new(&path, format!("cannot serialise the index: {e}")))?;
        text.push('\n');
        write_atomic_with(&path, |w| w.write_all(text.as_bytes()))
    }
}

/// The first place where two settings objects differ, as `key: old -> new`.
fn first_difference(old: &Value, new: &Value, prefix: &str) -> Option<String> {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|k| {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                first_difference(
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    &p,
                )
            })
        }
        _ if old == new => None,
        _ => {
            let short = |v: &Value| {
                let s = v.to_string();
                if s.chars().count() > 80 {
                    format!("{}...", s.chars().take(80).collect::<String>())
                } else {
                    s
                }
            };
            Some(format!("{prefix}: {} -> {}", short(old), short(new)))
        }
    }
}

/// A code store read back: the index checked, every shard's header, shapes and checksum checked
/// when it is read.
#[derive(Debug)]
pub struct CodeStore {
    dir: PathBuf,
    index: Index,
}

impl CodeStore {
    /// Opens the store in `dir` and checks every shard (size, checksum, tensors, shapes).
    pub fn open(dir: &Path) -> Result<CodeStore> {
        let ipath = dir.join(CODES_INDEX);
        if !ipath.is_file() {
            return Err(IoError::new(
                &ipath,
                "no code-store index here (not a `bae encode` folder)",
            ));
        }
        let index = Index::read(&ipath)?;
        let store = CodeStore {
            dir: dir.to_path_buf(),
            index,
        };
        for s in &store.index.shards {
            let path = store.dir.join(&s.file);
            let len = std::fs::metadata(&path)
                .map_err(|e| IoError::from_io(&path, "cannot read", &e))?
                .len();
            if len != s.bytes {
                return Err(IoError::new(
                    &path,
                    format!(
                        "shard is {len} bytes, the index {CODES_INDEX} says {} (truncated or replaced?)",
                        s.bytes
                    ),
                ));
            }
        }
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn n_rows(&self) -> usize {
        self.index.n_rows()
    }

    /// Bits per row (d').
    pub fn n_bits(&self) -> usize {
        self.index.n_bits
    }

    pub fn words_per_row(&self) -> usize {
        words_per_row(self.index.n_bits)
    }

    /// Whether the writer finished (all rows of its source range are here).
    pub fn is_complete(&self) -> bool {
        self.index.complete
    }

    /// What the store was written from (run, model, source folder and rows, ...).
    pub fn settings(&self) -> &Value {
        &self.index.settings
    }

    pub fn shards(&self) -> &[CodeShard] {
        &self.index.shards
    }

    /// Reads and checks shard `k`.
    pub fn shard(&self, k: usize) -> Result<ShardData> {
        let s = self.index.shards.get(k).ok_or_else(|| {
            IoError::new(
                self.dir.join(CODES_INDEX),
                format!("no shard {k} (the store has {})", self.index.shards.len()),
            )
        })?;
        read_shard(&self.dir, self.index.n_bits, s)
    }

    fn check_range(&self, rows: &Range<usize>) -> Result<()> {
        if rows.start > rows.end || rows.end > self.n_rows() {
            return Err(IoError::new(
                self.dir.join(CODES_INDEX),
                format!(
                    "rows {}..{} out of range: the store holds {} rows",
                    rows.start,
                    rows.end,
                    self.n_rows()
                ),
            ));
        }
        Ok(())
    }

    /// Calls `f(shard data, rows within the shard, first global row)` for each shard overlapping `rows`.
    fn each(
        &self,
        rows: &Range<usize>,
        mut f: impl FnMut(&ShardData, Range<usize>, usize),
    ) -> Result<()> {
        self.check_range(rows)?;
        for (k, s) in self.index.shards.iter().enumerate() {
            let (a, b) = (s.first_row, s.first_row + s.rows);
            if b <= rows.start || a >= rows.end {
                continue;
            }
            let data = self.shard(k)?;
            let lo = rows.start.max(a) - a;
            let hi = rows.end.min(b) - a;
            f(&data, lo..hi, a);
        }
        Ok(())
    }

    /// The code words of `rows` (`rows.len() * words_per_row`, `bae_bits::PackedRows`'s layout:
    /// `PackedRows::from_words(rows.len(), n_bits, words)`).
    pub fn rows(&self, rows: Range<usize>) -> Result<Vec<u64>> {
        let wpr = self.words_per_row();
        let mut out = Vec::with_capacity(rows.len().saturating_mul(wpr).min(1 << 28));
        self.each(&rows, |d, r, _| {
            out.extend_from_slice(&d.codes[r.start * wpr..r.end * wpr])
        })?;
        Ok(out)
    }

    /// The id columns of `rows`.
    pub fn ids(&self, rows: Range<usize>) -> Result<CodeIds> {
        let mut out = CodeIds::default();
        self.each(&rows, |d, r, _| {
            out.token_ids.extend_from_slice(&d.ids.token_ids[r.clone()]);
            out.doc_ids.extend_from_slice(&d.ids.doc_ids[r.clone()]);
            out.positions.extend_from_slice(&d.ids.positions[r]);
        })?;
        Ok(out)
    }
}
