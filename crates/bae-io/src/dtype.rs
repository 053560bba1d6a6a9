//! Element types of activation files and conversions between little-endian bytes and floats.
//!
//! The conversion functions never panic: they walk the shorter of the two slices. Callers
//! check lengths beforehand (`src.len() == dst.len() * size`).

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use std::fmt;

/// Floating-point element type of an activation file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE half precision (`'<f2'` in .npy, `F16` in safetensors).
    F16,
    /// bfloat16 (safetensors only; .npy has no standard code for it).
    BF16,
    /// IEEE single precision (`'<f4'`, `F32`).
    F32,
    /// IEEE double precision (`'<f8'`, `F64`); converted to f32 on read.
    F64,
}

impl DType {
    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F16 | DType::BF16 => 2,
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }

    /// The safetensors name: `"F16"`, `"BF16"`, `"F32"` or `"F64"`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::F32 => "F32",
            DType::F64 => "F64",
        }
    }

    /// Parses a safetensors dtype name (exact, upper case).
    pub fn from_name(name: &str) -> Option<DType> {
        match name {
            "F16" => Some(DType::F16),
            "BF16" => Some(DType::BF16),
            "F32" => Some(DType::F32),
            "F64" => Some(DType::F64),
            _ => None,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Elements converted per staging round (keeps the stack buffers small).
const STAGE: usize = 1024;

/// Decodes little-endian `src` of type `dtype` into `dst` (f32; F64 is rounded to nearest).
pub(crate) fn decode_f32(dtype: DType, src: &[u8], dst: &mut [f32]) {
    match dtype {
        DType::F32 => {
            for (d, b) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        DType::F16 => {
            // Stage into an aligned buffer so half's vectorised (F16C) conversion can run.
            let mut stage = [f16::ZERO; STAGE];
            for (s, d) in src.chunks(2 * STAGE).zip(dst.chunks_mut(STAGE)) {
                let k = d.len();
                for (h, b) in stage[..k].iter_mut().zip(s.chunks_exact(2)) {
                    *h = f16::from_bits(u16::from_le_bytes([b[0], b[1]]));
                }
                stage[..k].convert_to_f32_slice(d);
            }
        }
        DType::BF16 => {
            for (d, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
            }
        }
        DType::F64 => {
            for (d, b) in dst.iter_mut().zip(src.chunks_exact(8)) {
                *d = f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32;
            }
        }
    }
}

/// Reads element `i` of `src` as f64 exactly (used for error messages).
pub(crate) fn element_f64(dtype: DType, src: &[u8], i: usize) -> Option<f64> {
    let size = dtype.size_bytes();
    let b = src.get(i.checked_mul(size)?..i.checked_mul(size)?.checked_add(size)?)?;
    Some(match dtype {
        DType::F16 => f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f64(),
        DType::BF16 => bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f64(),
        DType::F32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        DType::F64 => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
    })
}

/// Appends `src` encoded as little-endian `dtype` to `out` (round to nearest even).
pub(crate) fn encode_f32(dtype: DType, src: &[f32], out: &mut Vec<u8>) {
    out.reserve(src.len() * dtype.size_bytes());
    match dtype {
        DType::F32 => {
            for v in src {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        DType::F16 => {
            let mut stage = [f16::ZERO; STAGE];
            for s in src.chunks(STAGE) {
                let st = &mut stage[..s.len()];
                st.convert_from_f32_slice(s);
                for h in st.iter() {
                    out.extend_from_slice(&h.to_bits().to_le_bytes());
                }
            }
        }
        DType::BF16 => {
            for v in src {
                out.extend_from_slice(&bf16::from_f32(*v).to_bits().to_le_bytes());
            }
        }
        DType::F64 => {
            for v in src {
                out.extend_from_slice(&f64::from(*v).to_le_bytes());
            }
        }
    }
}

/// Index of the first finite value of `src` that becomes infinite when stored as `dtype`.
pub(crate) fn first_overflow(dtype: DType, src: &[f32]) -> Option<usize> {
    match dtype {
        DType::F32 | DType::F64 => None,
        DType::F16 => src
            .iter()
            .position(|v| v.is_finite() && f16::from_f32(*v).is_infinite()),
        DType::BF16 => src
            .iter()
            .position(|v| v.is_finite() && bf16::from_f32(*v).is_infinite()),
    }
}

/// Index of the first NaN or ±Inf in `xs`, or `None` if every value is finite.
///
/// Scans in blocks with a branch-free reduction so the common all-finite case vectorises.
pub fn first_non_finite(xs: &[f32]) -> Option<usize> {
    const BLOCK: usize = 256;
    for (bi, block) in xs.chunks(BLOCK).enumerate() {
        let all_finite = block.iter().fold(true, |acc, v| acc & v.is_finite());
        if !all_finite {
            return block
                .iter()
                .position(|v| !v.is_finite())
                .map(|i| bi * BLOCK + i);
        }
    }
    None
}

/// Index of the first NaN or ±Inf in `xs` (f64 version of [`first_non_finite`]).
pub fn first_non_finite_f64(xs: &[f64]) -> Option<usize> {
    xs.iter().position(|v| !v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(dtype: DType, xs: &[f32]) -> Vec<f32> {
        let mut bytes = Vec::new();
        encode_f32(dtype, xs, &mut bytes);
        assert_eq!(bytes.len(), xs.len() * dtype.size_bytes());
        let mut out = vec![0.0f32; xs.len()];
        decode_f32(dtype, &bytes, &mut out);
        out
    }

    #[test]
    fn conversions_match_half() {
        let xs: Vec<f32> = (0..3000).map(|i| (i as f32 - 1500.0) * 0.37).collect();
        assert_eq!(roundtrip(DType::F32, &xs), xs);
        assert_eq!(roundtrip(DType::F64, &xs), xs);
        let f16s: Vec<f32> = xs.iter().map(|v| f16::from_f32(*v).to_f32()).collect();
        assert_eq!(roundtrip(DType::F16, &xs), f16s);
        let bf16s: Vec<f32> = xs.iter().map(|v| bf16::from_f32(*v).to_f32()).collect();
        assert_eq!(roundtrip(DType::BF16, &xs), bf16s);
    }

    #[test]
    fn finite_scan() {
        let mut xs = vec![1.0f32; 1000];
        assert_eq!(first_non_finite(&xs), None);
        xs[700] = f32::NEG_INFINITY;
        xs[900] = f32::NAN;
        assert_eq!(first_non_finite(&xs), Some(700));
        assert_eq!(first_non_finite(&[]), None);
        assert_eq!(first_non_finite_f64(&[0.0, f64::NAN]), Some(1));
    }

    #[test]
    fn overflow_detection() {
        assert_eq!(first_overflow(DType::F16, &[1.0, 70000.0]), Some(1));
        assert_eq!(first_overflow(DType::F16, &[f32::INFINITY, 1.0]), None);
        assert_eq!(first_overflow(DType::BF16, &[f32::MAX]), Some(0));
        assert_eq!(first_overflow(DType::F32, &[f32::MAX]), None);
    }

    #[test]
    fn element_read() {
        let mut bytes = Vec::new();
        encode_f32(DType::F64, &[1.5, -2.0], &mut bytes);
        assert_eq!(element_f64(DType::F64, &bytes, 1), Some(-2.0));
        assert_eq!(element_f64(DType::F64, &bytes, 2), None);
        assert_eq!(element_f64(DType::F64, &bytes, usize::MAX), None);
    }
}
