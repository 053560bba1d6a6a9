//! A small GGUF model (writer and lenient reader) for seeds and structure-aware mutations.
//!
//! Layout (v2/v3; v1 uses u32 for counts and lengths): magic `GGUF`, u32 version, u64 tensor
//! count, u64 metadata count, metadata `(string key, u32 type, value)`, tensor infos
//! `(string name, u32 n_dims, u64 dims[n_dims] (innermost first), u32 ggml type, u64 offset)`,
//! padding to `general.alignment` (default 32), tensor data.

/// A metadata value; arrays carry their declared element type (items may disagree: that is a
/// malformed file, which is what a fuzzer wants to be able to write).
#[derive(Clone, Debug, PartialEq)]
pub enum GVal {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    /// The raw byte (0/1 are valid).
    Bool(u8),
    Str(Vec<u8>),
    Arr(u32, Vec<GVal>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl GVal {
    pub fn type_id(&self) -> u32 {
        match self {
            GVal::U8(_) => 0,
            GVal::I8(_) => 1,
            GVal::U16(_) => 2,
            GVal::I16(_) => 3,
            GVal::U32(_) => 4,
            GVal::I32(_) => 5,
            GVal::F32(_) => 6,
            GVal::Bool(_) => 7,
            GVal::Str(_) => 8,
            GVal::Arr(..) => 9,
            GVal::U64(_) => 10,
            GVal::I64(_) => 11,
            GVal::F64(_) => 12,
        }
    }

    pub fn str(s: &str) -> GVal {
        GVal::Str(s.as_bytes().to_vec())
    }

    pub fn strs(items: &[String]) -> GVal {
        GVal::Arr(8, items.iter().map(|s| GVal::str(s)).collect())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct GTensor {
    pub name: Vec<u8>,
    /// GGUF order (innermost dimension first).
    pub dims: Vec<u64>,
    pub dtype: u32,
    pub offset: u64,
}

/// Where an integer field sits in the bytes of a parsed file (for boundary-value mutations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub offset: usize,
    pub width: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GFile {
    pub version: u32,
    pub kvs: Vec<(Vec<u8>, GVal)>,
    pub tensors: Vec<GTensor>,
    /// Alignment used to pad the header when writing (0: no padding).
    pub align: u64,
    /// Tensor data, starting at the aligned end of the header.
    pub data: Vec<u8>,
}

/// ggml type ids with (block size in elements, block size in bytes), as candle knows them.
pub const GGML_TYPES: &[(u32, u64, u64)] = &[
    (0, 1, 4),      // F32
    (1, 1, 2),      // F16
    (2, 32, 18),    // Q4_0
    (3, 32, 20),    // Q4_1
    (6, 32, 22),    // Q5_0
    (7, 32, 24),    // Q5_1
    (8, 32, 34),    // Q8_0
    (9, 32, 36),    // Q8_1
    (10, 256, 84),  // Q2_K
    (11, 256, 110), // Q3_K
    (12, 256, 144), // Q4_K
    (13, 256, 176), // Q5_K
    (14, 256, 210), // Q6_K
    (15, 256, 292), // Q8_K
    (30, 1, 2),     // BF16
];

/// Bytes of a tensor of `n` elements of ggml type `dtype`, if known and a whole number of blocks.
pub fn ggml_size(dtype: u32, n: u64) -> Option<u64> {
    let &(_, block, bytes) = GGML_TYPES.iter().find(|t| t.0 == dtype)?;
    n.is_multiple_of(block).then(|| n / block * bytes)
}

impl GFile {
    fn put_len(&self, out: &mut Vec<u8>, n: u64) {
        if self.version == 1 {
            out.extend_from_slice(&(n as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&n.to_le_bytes());
        }
    }

    fn put_str(&self, out: &mut Vec<u8>, s: &[u8]) {
        self.put_len(out, s.len() as u64);
        out.extend_from_slice(s);
    }

    fn put_val(&self, out: &mut Vec<u8>, v: &GVal) {
        match v {
            GVal::U8(x) => out.push(*x),
            GVal::I8(x) => out.push(*x as u8),
            GVal::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
            GVal::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
            GVal::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
            GVal::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
            GVal::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
            GVal::Bool(x) => out.push(*x),
            GVal::Str(s) => self.put_str(out, s),
            GVal::Arr(t, items) => {
                out.extend_from_slice(&t.to_le_bytes());
                self.put_len(out, items.len() as u64);
                for it in items {
                    self.put_val(out, it);
                }
            }
            GVal::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
            GVal::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
            GVal::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        self.put_len(&mut out, self.tensors.len() as u64);
        self.put_len(&mut out, self.kvs.len() as u64);
        for (k, v) in &self.kvs {
            self.put_str(&mut out, k);
            out.extend_from_slice(&v.type_id().to_le_bytes());
            self.put_val(&mut out, v);
        }
        for t in &self.tensors {
            self.put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for &d in &t.dims {
                if self.version == 1 {
                    out.extend_from_slice(&(d as u32).to_le_bytes());
                } else {
                    out.extend_from_slice(&d.to_le_bytes());
                }
            }
            out.extend_from_slice(&t.dtype.to_le_bytes());
            out.extend_from_slice(&t.offset.to_le_bytes());
        }
        if self.align > 0 && self.align <= 4096 {
            while !(out.len() as u64).is_multiple_of(self.align) {
                out.push(0);
            }
        }
        out.extend_from_slice(&self.data);
        out
    }

    /// Parses `bytes` leniently (any declared size is checked against what is left, nesting is
    /// limited). Returns the model and the integer fields seen, or `None` if the structure
    /// breaks before the end of the tensor infos.
    pub fn parse(bytes: &[u8]) -> Option<(GFile, Vec<Field>)> {
        let mut r = Reader {
            b: bytes,
            pos: 0,
            fields: Vec::new(),
            v1: false,
        };
        if bytes.get(..4)? != b"GGUF" {
            return None;
        }
        r.pos = 4;
        let version = r.u32()? as u32;
        r.v1 = version == 1;
        let n_tensors = r.len()?;
        let n_kvs = r.len()?;
        if n_tensors > r.left() as u64 || n_kvs > r.left() as u64 {
            return None;
        }
        let mut kvs = Vec::new();
        for _ in 0..n_kvs {
            let k = r.string()?;
            let t = r.u32()? as u32;
            kvs.push((k, r.value(t, 0)?));
        }
        let mut tensors = Vec::new();
        for _ in 0..n_tensors {
            let name = r.string()?;
            let n = r.u32()?;
            if n > 8 {
                return None;
            }
            let mut dims = Vec::new();
            for _ in 0..n {
                dims.push(if r.v1 { r.u32()? } else { r.u64()? });
            }
            let dtype = r.u32()? as u32;
            let offset = r.u64()?;
            tensors.push(GTensor {
                name,
                dims,
                dtype,
                offset,
            });
        }
        let align = kvs
            .iter()
            .find(|(k, _)| k == b"general.alignment")
            .map(|(_, v)| match v {
                GVal::U8(x) => u64::from(*x),
                GVal::U16(x) => u64::from(*x),
                GVal::U32(x) => u64::from(*x),
                _ => 32,
            })
            .unwrap_or(32);
        let start = if align > 0 && align <= 4096 {
            (r.pos as u64).div_ceil(align) * align
        } else {
            r.pos as u64
        };
        let data = bytes.get(start as usize..).unwrap_or(&[]).to_vec();
        Some((
            GFile {
                version,
                kvs,
                tensors,
                align,
                data,
            },
            r.fields,
        ))
    }

    pub fn get(&self, key: &str) -> Option<&GVal> {
        self.kvs
            .iter()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v)
    }

    pub fn set(&mut self, key: &str, v: GVal) {
        match self.kvs.iter_mut().find(|(k, _)| k == key.as_bytes()) {
            Some(kv) => kv.1 = v,
            None => self.kvs.push((key.as_bytes().to_vec(), v)),
        }
    }

    pub fn remove(&mut self, key: &str) {
        self.kvs.retain(|(k, _)| k != key.as_bytes());
    }

    /// Appends a tensor with data (padded to 32 bytes) and a consistent offset.
    pub fn push_tensor(&mut self, name: &str, dims: &[u64], dtype: u32, data: &[u8]) {
        while !self.data.len().is_multiple_of(32) {
            self.data.push(0);
        }
        self.tensors.push(GTensor {
            name: name.as_bytes().to_vec(),
            dims: dims.to_vec(),
            dtype,
            offset: self.data.len() as u64,
        });
        self.data.extend_from_slice(data);
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    fields: Vec<Field>,
    v1: bool,
}

impl Reader<'_> {
    fn left(&self) -> usize {
        self.b.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    fn int(&mut self, width: usize) -> Option<u64> {
        let offset = self.pos;
        let s = self.take(width)?;
        let mut a = [0u8; 8];
        a[..width].copy_from_slice(s);
        self.fields.push(Field { offset, width });
        Some(u64::from_le_bytes(a))
    }

    fn u32(&mut self) -> Option<u64> {
        self.int(4)
    }

    fn u64(&mut self) -> Option<u64> {
        self.int(8)
    }

    fn len(&mut self) -> Option<u64> {
        if self.v1 { self.u32() } else { self.u64() }
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        let n = self.len()?;
        if n > self.left() as u64 {
            return None;
        }
        Some(self.take(n as usize)?.to_vec())
    }

    fn value(&mut self, t: u32, depth: usize) -> Option<GVal> {
        Some(match t {
            0 => GVal::U8(self.int(1)? as u8),
            1 => GVal::I8(self.int(1)? as u8 as i8),
            2 => GVal::U16(self.int(2)? as u16),
            3 => GVal::I16(self.int(2)? as u16 as i16),
            4 => GVal::U32(self.int(4)? as u32),
            5 => GVal::I32(self.int(4)? as u32 as i32),
            6 => GVal::F32(f32::from_bits(self.int(4)? as u32)),
            7 => GVal::Bool(self.int(1)? as u8),
            8 => GVal::Str(self.string()?),
            9 => {
                // deeper than candle's limit (64), so that every file candle reads parses here
                if depth > 65 {
                    return None;
                }
                let et = self.u32()? as u32;
                let n = self.len()?;
                if n > self.left() as u64 {
                    return None;
                }
                // Only the first few elements' fields are worth mutating; keep the list short.
                let mark = self.fields.len();
                let mut items = Vec::with_capacity(n as usize);
                for i in 0..n {
                    items.push(self.value(et, depth + 1)?);
                    if i == 3 {
                        self.fields.truncate(mark + 8);
                    }
                }
                if n > 4 {
                    self.fields.truncate(mark + 8);
                }
                GVal::Arr(et, items)
            }
            10 => GVal::U64(self.int(8)?),
            11 => GVal::I64(self.int(8)? as i64),
            12 => GVal::F64(f64::from_bits(self.int(8)?)),
            _ => return None,
        })
    }
}

/// Byte-level BPE vocabulary: `<|endoftext|>`, GPT-2 byte characters for the bytes of `alphabet`,
/// and the merges `Ġ t`, `h e`, `Ġt he` (with their products).
pub fn toy_vocab(alphabet: &[u8]) -> (Vec<String>, Vec<String>) {
    let b2c = bae_llm::tokenizer::byte_to_char();
    let mut tokens = vec!["<|endoftext|>".to_string()];
    tokens.extend(alphabet.iter().map(|&b| b2c[b as usize].to_string()));
    tokens.extend(["Ġt", "he", "Ġthe"].map(String::from));
    let merges = ["Ġ t", "h e", "Ġt he"].map(String::from).to_vec();
    (tokens, merges)
}

/// Options of the toy llama GGUF seeds.
pub struct Toy {
    pub version: u32,
    pub d: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub alphabet: Vec<u8>,
}

impl Default for Toy {
    fn default() -> Self {
        let mut alphabet: Vec<u8> = b" \nabcdefghijklmnopqrstuvwxyz0123456789!.,'".to_vec();
        alphabet.extend_from_slice(b"HTW");
        Toy {
            version: 3,
            d: 8,
            heads: 2,
            kv_heads: 1,
            alphabet,
        }
    }
}

/// A small valid llama GGUF: the metadata `bae_llm::Gguf::llama_config` and
/// `bae_llm::Tokenizer::from_gguf` read, plus a few tiny tensors of different ggml types.
pub fn toy_gguf(t: &Toy) -> GFile {
    let (tokens, merges) = toy_vocab(&t.alphabet);
    let vocab = tokens.len() as u64;
    let mut g = GFile {
        version: t.version,
        kvs: Vec::new(),
        tensors: Vec::new(),
        align: 32,
        data: Vec::new(),
    };
    g.set("general.architecture", GVal::str("llama"));
    g.set("general.name", GVal::str("toy"));
    g.set("general.alignment", GVal::U32(32));
    g.set("llama.block_count", GVal::U32(1));
    g.set("llama.context_length", GVal::U32(64));
    g.set("llama.embedding_length", GVal::U32(t.d as u32));
    g.set("llama.feed_forward_length", GVal::U32(2 * t.d as u32));
    g.set("llama.attention.head_count", GVal::U32(t.heads as u32));
    g.set(
        "llama.attention.head_count_kv",
        GVal::U32(t.kv_heads as u32),
    );
    g.set("llama.attention.layer_norm_rms_epsilon", GVal::F32(1e-5));
    g.set("llama.rope.freq_base", GVal::F32(10_000.0));
    g.set("tokenizer.ggml.model", GVal::str("gpt2"));
    g.set("tokenizer.ggml.pre", GVal::str("smollm"));
    g.set("tokenizer.ggml.tokens", GVal::strs(&tokens));
    g.set(
        "tokenizer.ggml.token_type",
        GVal::Arr(
            5,
            (0..vocab).map(|i| GVal::I32(1 + (i == 0) as i32)).collect(),
        ),
    );
    g.set("tokenizer.ggml.merges", GVal::strs(&merges));
    g.set("tokenizer.ggml.bos_token_id", GVal::U32(0));
    g.set("tokenizer.ggml.eos_token_id", GVal::U32(0));
    let emb = crate::formats::values((vocab * t.d) as usize, 1, 0.5);
    let emb: Vec<u8> = emb
        .iter()
        .flat_map(|&v| crate::formats::f16_bits(v).to_le_bytes())
        .collect();
    g.push_tensor("token_embd.weight", &[t.d, vocab], 1, &emb);
    let norm = crate::formats::float_bytes("F32", &vec![1.0; t.d as usize]);
    g.push_tensor("output_norm.weight", &[t.d], 0, &norm);
    g.push_tensor(
        "blk.0.attn_norm.weight",
        &[t.d],
        30,
        &vec![0x3f; 2 * t.d as usize],
    );
    // One block of each quantised layout the real model uses or candle supports.
    let mut q8 = vec![0x00, 0x3c]; // scale 1.0 (f16)
    q8.extend((0..32).map(|i| (i as u8).wrapping_sub(16)));
    g.push_tensor("blk.0.ffn_up.weight", &[32], 8, &q8);
    let mut q41 = vec![0x00, 0x38, 0x00, 0xbc]; // scale 0.5, min -1.0
    q41.extend((0..16).map(|i| (i as u8) * 17));
    g.push_tensor("blk.0.attn_q.weight", &[32], 3, &q41);
    g.push_tensor("blk.0.ffn_down.weight", &[256], 14, &[0x11; 210]);
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toy_roundtrips_and_reports_fields() {
        for version in [1, 2, 3] {
            let g = toy_gguf(&Toy {
                version,
                ..Toy::default()
            });
            let bytes = g.to_bytes();
            let (back, fields) = GFile::parse(&bytes).expect("parses");
            assert_eq!(back, g);
            assert_eq!(back.to_bytes(), bytes);
            assert!(fields.len() > 20, "{}", fields.len());
            assert!(fields.iter().all(|f| f.offset + f.width <= bytes.len()));
        }
        assert!(GFile::parse(b"GGUF\x03\0\0\0").is_none());
        assert_eq!(ggml_size(14, 512), Some(420));
        assert_eq!(ggml_size(8, 33), None);
    }
}
