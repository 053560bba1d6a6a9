//! Named tensors in safetensors files (parameters, checkpoints, golden vectors).

use crate::activations::open_error;
use crate::atomic::write_atomic_with;
use crate::dtype::{DType, decode_f32};
use crate::error::{IoError, Result, fmt_shape};
use crate::safetensors_file::{self as st, TensorEntry};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// A named f32 tensor: row-major data with `data.len() == shape.iter().product()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A named f64 tensor (values kept exactly as stored for F64 files).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor64 {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// Tensor map and `__metadata__` map of a safetensors file.
pub type TensorFile<T> = (BTreeMap<String, T>, BTreeMap<String, String>);

/// Reads a whole regular file (refusing directories, pipes and devices).
fn read_file(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| open_error(path, &e))?;
    if meta.is_dir() {
        return Err(IoError::new(path, "is a directory, not a file"));
    }
    if !meta.is_file() {
        return Err(IoError::new(
            path,
            "not a regular file (pipes and devices are not supported)",
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| open_error(path, &e))?;
    if bytes.is_empty() {
        return Err(IoError::new(path, "file is empty (0 bytes)"));
    }
    Ok(bytes)
}

fn load_with<T>(
    path: &Path,
    decode: impl Fn(&TensorEntry, &[u8]) -> Option<T>,
    supported: &str,
) -> Result<TensorFile<T>> {
    let bytes = read_file(path)?;
    if bytes.starts_with(crate::npy::MAGIC) {
        return Err(IoError::new(
            path,
            "is a .npy file; named tensors must be stored in a .safetensors file",
        ));
    }
    let header = st::parse_header(path, &bytes)?;
    let mut out = BTreeMap::new();
    for t in &header.tensors {
        // In bounds: parse_header checked start <= end <= file length.
        let raw = bytes.get(t.start..t.end).unwrap_or(&[]);
        let value = decode(t, raw).ok_or_else(|| {
            IoError::new(
                path,
                format!(
                    "tensor {:?} has unsupported dtype {} (supported: {supported})",
                    t.name, t.dtype
                ),
            )
        })?;
        out.insert(t.name.clone(), value);
    }
    Ok((out, header.metadata))
}

/// Loads every tensor of a safetensors file as f32 (F64, F32, F16 and BF16 are accepted;
/// F64 is rounded to nearest), plus the `__metadata__` map. Values are not checked for
/// NaN/Inf; use [`first_non_finite`](crate::first_non_finite) where that matters.
pub fn load_tensors(path: &Path) -> Result<TensorFile<Tensor>> {
    load_with(
        path,
        |t, raw| {
            let dtype = DType::from_name(&t.dtype)?;
            let mut data = vec![0.0f32; t.numel()];
            decode_f32(dtype, raw, &mut data);
            Some(Tensor {
                shape: t.shape.clone(),
                data,
            })
        },
        "F64, F32, F16, BF16; use load_tensors_f64 for integer tensors",
    )
}

/// Loads every tensor of a safetensors file as f64: F64 exactly, F32/F16/BF16 widened
/// exactly, I64/I32 converted (I64 beyond 2^53 rounds), plus the `__metadata__` map.
pub fn load_tensors_f64(path: &Path) -> Result<TensorFile<Tensor64>> {
    load_with(
        path,
        |t, raw| {
            let data = decode_f64(&t.dtype, raw)?;
            Some(Tensor64 {
                shape: t.shape.clone(),
                data,
            })
        },
        "F64, F32, F16, BF16, I64, I32",
    )
}

fn decode_f64(dtype: &str, raw: &[u8]) -> Option<Vec<f64>> {
    fn map<const N: usize>(raw: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
        raw.chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                f(a)
            })
            .collect()
    }
    Some(match dtype {
        "F64" => map(raw, f64::from_le_bytes),
        "F32" => map(raw, |b| f64::from(f32::from_le_bytes(b))),
        "F16" => map(raw, |b| half::f16::from_le_bytes(b).to_f64()),
        "BF16" => map(raw, |b| half::bf16::from_le_bytes(b).to_f64()),
        "I64" => map(raw, |b| i64::from_le_bytes(b) as f64),
        "I32" => map(raw, |b| f64::from(i32::from_le_bytes(b))),
        _ => return None,
    })
}

fn take_checked<T>(
    map: &mut BTreeMap<String, T>,
    path: &Path,
    name: &str,
    expected: &[usize],
    shape_of: impl Fn(&T) -> &[usize],
) -> Result<T> {
    let Some(t) = map.remove(name) else {
        return Err(IoError::new(path, format!("missing tensor {name}")));
    };
    let shape = shape_of(&t);
    if shape != expected {
        let msg = format!(
            "tensor {name} has shape {}, expected {}",
            fmt_shape(shape),
            fmt_shape(expected)
        );
        map.insert(name.to_string(), t);
        return Err(IoError::new(path, msg));
    }
    Ok(t)
}

/// Removes tensor `name` from `map` and returns its data if its shape is `shape`.
/// Errors: `"<path>: missing tensor b_dec"`,
/// `"<path>: tensor W_enc has shape [4, 16], expected [64, 256]"` (the map is left unchanged).
pub fn take_tensor(
    map: &mut BTreeMap<String, Tensor>,
    path: &Path,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f32>> {
    take_checked(map, path, name, shape, |t| &t.shape).map(|t| t.data)
}

/// [`take_tensor`] for f64 tensors.
pub fn take_tensor_f64(
    map: &mut BTreeMap<String, Tensor64>,
    path: &Path,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f64>> {
    take_checked(map, path, name, shape, |t| &t.shape).map(|t| t.data)
}

fn save_with<T>(
    path: &Path,
    tensors: &[(&str, &[usize], &[T])],
    metadata: &BTreeMap<String, String>,
    dtype: &'static str,
    write_values: impl Fn(&mut dyn Write, &[T]) -> std::io::Result<()>,
) -> Result<()> {
    let mut specs = Vec::with_capacity(tensors.len());
    for (name, shape, data) in tensors {
        let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if numel != Some(data.len()) {
            return Err(IoError::new(
                path,
                format!(
                    "cannot save tensor {name}: shape {} does not match {} values",
                    fmt_shape(shape),
                    data.len()
                ),
            ));
        }
        specs.push(st::EntrySpec {
            name,
            dtype,
            shape,
            n_bytes: std::mem::size_of_val(*data),
        });
    }
    let header = st::build_header(path, &specs, metadata)?;
    write_atomic_with(path, |w| {
        w.write_all(&header)?;
        for (_, _, data) in tensors {
            write_values(w, data)?;
        }
        Ok(())
    })
}

/// Saves f32 tensors (in the given order) as an F32 safetensors file with `metadata` as
/// `__metadata__`, atomically. Names must be distinct and not `"__metadata__"`.
pub fn save_tensors(
    path: &Path,
    tensors: &[(&str, &[usize], &[f32])],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    save_with(path, tensors, metadata, "F32", |w, data| {
        crate::activations::write_encoded(w, DType::F32, data)
    })
}

/// Saves f64 tensors as an F64 safetensors file, atomically (see [`save_tensors`]).
pub fn save_tensors_f64(
    path: &Path,
    tensors: &[(&str, &[usize], &[f64])],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    save_with(path, tensors, metadata, "F64", |w, data| {
        let mut buf = Vec::with_capacity(8 << 13);
        for chunk in data.chunks(1 << 13) {
            buf.clear();
            for v in chunk {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            w.write_all(&buf)?;
        }
        Ok(())
    })
}

/// Loads only the named tensors (as f64, like [`load_tensors_f64`]) through a memory map, so the
/// rest of a large file (a shard's activations) is never read. Missing names are simply absent.
pub fn load_tensors_f64_only(path: &Path, names: &[&str]) -> Result<TensorFile<Tensor64>> {
    let map = crate::activations::map_file(path)?;
    let header = st::parse_header(path, &map)?;
    let mut out = BTreeMap::new();
    for t in header
        .tensors
        .iter()
        .filter(|t| names.contains(&t.name.as_str()))
    {
        let raw = map.get(t.start..t.end).unwrap_or(&[]);
        let data = decode_f64(&t.dtype, raw).ok_or_else(|| {
            IoError::new(
                path,
                format!("tensor {:?} has unsupported dtype {}", t.name, t.dtype),
            )
        })?;
        out.insert(
            t.name.clone(),
            Tensor64 {
                shape: t.shape.clone(),
                data,
            },
        );
    }
    Ok((out, header.metadata))
}
