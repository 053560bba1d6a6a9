//! Builders and lenient splitters for the safetensors and .npy containers, used to make seeds
//! and for structure-aware mutations (edit the header, keep the data).

use serde_json::{Map, Value};

/// Safetensors dtype names with their element size in bits (as the reference implementation).
pub const ST_DTYPES: &[(&str, usize)] = &[
    ("BOOL", 8),
    ("U8", 8),
    ("I8", 8),
    ("F8_E5M2", 8),
    ("F8_E4M3", 8),
    ("F8_E8M0", 8),
    ("F4", 4),
    ("F6_E2M3", 6),
    ("I16", 16),
    ("U16", 16),
    ("F16", 16),
    ("BF16", 16),
    ("I32", 32),
    ("U32", 32),
    ("F32", 32),
    ("I64", 64),
    ("U64", 64),
    ("F64", 64),
    ("C64", 64),
];

/// Bits per element of a safetensors dtype name, if known.
pub fn st_dtype_bits(name: &str) -> Option<usize> {
    ST_DTYPES.iter().find(|(n, _)| *n == name).map(|&(_, b)| b)
}

/// One tensor to put in a built safetensors file.
pub struct StTensor {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl StTensor {
    pub fn new(name: &str, dtype: &str, shape: &[usize], data: Vec<u8>) -> Self {
        StTensor {
            name: name.to_string(),
            dtype: dtype.to_string(),
            shape: shape.to_vec(),
            data,
        }
    }
}

/// A safetensors file: tensors stored back to back in the given order, header padded with
/// spaces to a multiple of 8 (as the reference writer does).
pub fn st_file(tensors: &[StTensor], metadata: &[(&str, &str)]) -> Vec<u8> {
    let mut map = Map::new();
    if !metadata.is_empty() {
        let m: Map<String, Value> = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        map.insert("__metadata__".into(), Value::Object(m));
    }
    let mut offset = 0usize;
    let mut data = Vec::new();
    for t in tensors {
        let end = offset + t.data.len();
        map.insert(
            t.name.clone(),
            serde_json::json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, end]}),
        );
        data.extend_from_slice(&t.data);
        offset = end;
    }
    st_join_text(&Value::Object(map).to_string(), &data, true)
}

/// Length prefix + header text (padded to 8 when `pad`) + data section.
pub fn st_join_text(json: &str, data: &[u8], pad: bool) -> Vec<u8> {
    let mut header = json.as_bytes().to_vec();
    while pad && !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + data.len());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out
}

/// Splits a safetensors file whose header parses as a JSON object: (header, data section).
pub fn st_split(bytes: &[u8]) -> Option<(Map<String, Value>, Vec<u8>)> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let end = 8usize.checked_add(usize::try_from(len).ok()?)?;
    let text = std::str::from_utf8(bytes.get(8..end)?).ok()?;
    match serde_json::from_str(text.trim_end_matches([' ', '\0'])) {
        Ok(Value::Object(m)) => Some((m, bytes[end..].to_vec())),
        _ => None,
    }
}

/// The parts of a .npy file: version, header dict text, data.
#[derive(Clone, Debug)]
pub struct NpyParts {
    pub major: u8,
    pub minor: u8,
    pub dict: Vec<u8>,
    pub data: Vec<u8>,
}

pub const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Splits a .npy file whose declared header length fits in the file.
pub fn npy_split(bytes: &[u8]) -> Option<NpyParts> {
    if !bytes.starts_with(NPY_MAGIC) {
        return None;
    }
    let (major, minor) = (*bytes.get(6)?, *bytes.get(7)?);
    let (len, prefix): (usize, usize) = if major == 1 {
        (
            usize::from(u16::from_le_bytes([*bytes.get(8)?, *bytes.get(9)?])),
            10,
        )
    } else {
        let b = bytes.get(8..12)?;
        (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
    };
    let end = prefix.checked_add(len)?;
    Some(NpyParts {
        major,
        minor,
        dict: bytes.get(prefix..end)?.to_vec(),
        data: bytes[end..].to_vec(),
    })
}

/// Joins a .npy file. With `pad`, the dict is trimmed and re-padded with spaces and a newline
/// so that the data starts at a multiple of 64, as numpy writes it. The length field is u16
/// for major version 1 and u32 otherwise (truncated if it does not fit).
pub fn npy_join(p: &NpyParts, pad: bool) -> Vec<u8> {
    let prefix = if p.major == 1 { 10 } else { 12 };
    let mut dict = p.dict.clone();
    if pad {
        while dict.last().is_some_and(|b| b.is_ascii_whitespace()) {
            dict.pop();
        }
        let total = (prefix + dict.len() + 1).div_ceil(64) * 64;
        dict.resize(total - prefix - 1, b' ');
        dict.push(b'\n');
    }
    let mut out = NPY_MAGIC.to_vec();
    out.push(p.major);
    out.push(p.minor);
    if p.major == 1 {
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(&dict);
    out.extend_from_slice(&p.data);
    out
}

/// A .npy file with the standard dict `{'descr': .., 'fortran_order': .., 'shape': .., }`.
pub fn npy_file(descr: &str, fortran: bool, shape: &[usize], major: u8, data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let fortran = if fortran { "True" } else { "False" };
    let dict =
        format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape_text}, }}");
    npy_join(
        &NpyParts {
            major,
            minor: 0,
            dict: dict.into_bytes(),
            data: data.to_vec(),
        },
        true,
    )
}

/// f32 to IEEE half bits (round toward zero; overflow to infinity; NaN kept).
pub fn f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        return sign | ((man | 0x80_0000) >> (14 - e)) as u16;
    }
    sign | ((e as u16) << 10) | (man >> 13) as u16
}

/// Little-endian bytes of values in a float dtype ("F16", "BF16", "F32", "F64"); other names
/// give F32 bytes.
pub fn float_bytes(dtype: &str, xs: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for &x in xs {
        match dtype {
            "F16" => out.extend_from_slice(&f16_bits(x).to_le_bytes()),
            "BF16" => out.extend_from_slice(&((x.to_bits() >> 16) as u16).to_le_bytes()),
            "F64" => out.extend_from_slice(&f64::from(x).to_le_bytes()),
            _ => out.extend_from_slice(&x.to_le_bytes()),
        }
    }
    out
}

pub fn i32_bytes(xs: &[i32]) -> Vec<u8> {
    xs.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn i64_bytes(xs: &[i64]) -> Vec<u8> {
    xs.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `n` deterministic values in (-scale, scale).
pub fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut r = crate::rng::Rng::new(seed);
    (0..n)
        .map(|_| ((r.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_bits() {
        assert_eq!(f16_bits(1.0), 0x3c00);
        assert_eq!(f16_bits(-2.0), 0xc000);
        assert_eq!(f16_bits(0.5), 0x3800);
        assert_eq!(f16_bits(65536.0), 0x7c00);
        assert_eq!(f16_bits(f32::NAN) & 0x7e00, 0x7e00);
        assert_eq!(f16_bits(2f32.powi(-24)), 1);
    }

    #[test]
    fn containers_roundtrip() {
        let f = st_file(
            &[StTensor::new(
                "a",
                "F32",
                &[2],
                float_bytes("F32", &[1.0, 2.0]),
            )],
            &[("k", "v")],
        );
        assert_eq!((u64::from_le_bytes(f[..8].try_into().unwrap()) % 8), 0);
        let (h, data) = st_split(&f).unwrap();
        assert_eq!(data.len(), 8);
        assert!(h.contains_key("__metadata__") && h.contains_key("a"));
        let n = npy_file("<f4", false, &[1, 2], 1, &float_bytes("F32", &[1.0, 2.0]));
        assert_eq!(n.len(), 128 + 8);
        let p = npy_split(&n).unwrap();
        assert_eq!(npy_join(&p, true), n);
        let n2 = npy_file("<f8", false, &[3], 2, &[0; 24]);
        assert_eq!(n2.len(), 128 + 24);
    }
}
