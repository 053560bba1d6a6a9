//! Memory-mapped activation matrices `[n, d]` in .safetensors or .npy files.

use crate::atomic::write_atomic_with;
use crate::dtype::{DType, decode_f32, element_f64, encode_f32, first_non_finite, first_overflow};
use crate::error::{IoError, Result, fmt_shape};
use crate::{npy, safetensors_file as st};
use memmap2::Mmap;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the tensor holding activations in a safetensors file.
pub const ACTIVATIONS_TENSOR: &str = "activations";

/// Container format of an activation file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Safetensors,
    Npy,
}

impl FileFormat {
    /// Format implied by the file extension (case-insensitive), if any.
    pub fn from_extension(path: &Path) -> Option<FileFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "safetensors" => Some(FileFormat::Safetensors),
            "npy" => Some(FileFormat::Npy),
            _ => None,
        }
    }

    /// Format recognised from the first bytes of the file, if any.
    fn sniff(bytes: &[u8]) -> Option<FileFormat> {
        if bytes.starts_with(npy::MAGIC) {
            Some(FileFormat::Npy)
        } else if st::looks_like_safetensors(bytes) {
            Some(FileFormat::Safetensors)
        } else {
            None
        }
    }
}

const SUPPORTED_EXTENSIONS: &str = "supported: .safetensors, .npy";

/// Rows converted per round by [`ActivationFile::check_finite`] (in elements).
const SCAN_ELEMENTS: usize = 1 << 20;

/// A 2-D activation matrix `[n, d]` in a file, memory-mapped; rows are converted to f32 on read.
///
/// The file is validated on [`open`](ActivationFile::open): every declared size is checked
/// against the real file length, so reads never go out of bounds. Values are checked for
/// NaN/Inf as they are read. `ActivationFile` is `Send + Sync`; reads take `&self`.
///
/// As with any memory map, the file must not be truncated by another process while open.
#[derive(Debug)]
pub struct ActivationFile {
    path: PathBuf,
    map: Mmap,
    format: FileFormat,
    dtype: DType,
    n: usize,
    d: usize,
    /// Byte offset of row 0 in the file.
    data_start: usize,
    metadata: BTreeMap<String, String>,
}

impl ActivationFile {
    /// Opens and validates an activation file.
    ///
    /// * `.safetensors`: the tensor named `"activations"`, or the file's only tensor if there
    ///   is exactly one; 2-D `[n, d]`, dtype F16, BF16, F32 or F64.
    /// * `.npy`: format version 1.0/2.0/3.0, dtype `'<f2'`, `'<f4'` or `'<f8'` (`'|'`/`'='`
    ///   byte-order markers accepted on little-endian hosts), `fortran_order` False, 2-D.
    ///
    /// The format is chosen by the file's magic bytes when they are recognisable, otherwise
    /// by its extension.
    pub fn open(path: &Path) -> Result<Self> {
        let map = map_file(path)?;
        let format = match (FileFormat::sniff(&map), FileFormat::from_extension(path)) {
            (Some(f), _) | (None, Some(f)) => f,
            (None, None) => {
                let ext = path
                    .extension()
                    .map(|e| format!("extension '.{}'", e.to_string_lossy()))
                    .unwrap_or_else(|| "no extension".to_string());
                return Err(IoError::new(
                    path,
                    format!(
                        "unsupported activation file: {ext} and the content is neither .npy nor safetensors ({SUPPORTED_EXTENSIONS})"
                    ),
                ));
            }
        };
        let layout = match format {
            FileFormat::Npy => npy_layout(path, &map)?,
            FileFormat::Safetensors => safetensors_layout(path, &map)?,
        };
        Ok(Self {
            path: path.to_path_buf(),
            map,
            format,
            dtype: layout.dtype,
            n: layout.n,
            d: layout.d,
            data_start: layout.data_start,
            metadata: layout.metadata,
        })
    }

    /// Number of rows `n`.
    pub fn n_rows(&self) -> usize {
        self.n
    }

    /// Row length `d`.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// Element type stored in the file.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The path given to [`open`](ActivationFile::open).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Container format.
    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// The safetensors `__metadata__` map (empty for .npy files).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Raw bytes of rows `[start, start + count)`; the caller has checked the range.
    fn row_bytes(&self, start: usize, count: usize) -> &[u8] {
        let row = self.d * self.dtype.size_bytes();
        let from = self.data_start + start * row;
        // In bounds: open() checked data_start + n * row <= file length.
        self.map.get(from..from + count * row).unwrap_or(&[])
    }

    fn err(&self, msg: impl std::fmt::Display) -> IoError {
        IoError::new(&self.path, msg)
    }

    /// Error for the first non-finite value of `out` (rows starting at `first_row`), if any.
    fn check_converted(&self, first_row: usize, src: &[u8], out: &[f32]) -> Result<()> {
        let Some(i) = first_non_finite(out) else {
            return Ok(());
        };
        let (row, col) = (first_row + i / self.d, i % self.d);
        let original = element_f64(self.dtype, src, i).unwrap_or(f64::from(out[i]));
        if original.is_finite() {
            return Err(self.err(format!(
                "value {original:e} at row {row}, column {col} is outside the f32 range"
            )));
        }
        Err(self.err(format!(
            "non-finite value {original} at row {row}, column {col}"
        )))
    }

    /// Copies rows `[start, start + count)` as f32 into `out` (length `count * d`).
    /// Fails, naming the file, row and column, if any value is NaN or ±Inf.
    pub fn read_rows(&self, start: usize, count: usize, out: &mut [f32]) -> Result<()> {
        let end = start
            .checked_add(count)
            .filter(|&e| e <= self.n)
            .ok_or_else(|| {
                self.err(format!(
                    "rows [{start}, {start}+{count}) out of range (the file has {} rows)",
                    self.n
                ))
            })?;
        debug_assert!(end <= self.n);
        let want = count * self.d;
        if out.len() != want {
            return Err(self.err(format!(
                "output buffer holds {} values but {count} rows of dimension {} need {want}",
                out.len(),
                self.d
            )));
        }
        let src = self.row_bytes(start, count);
        decode_f32(self.dtype, src, out);
        self.check_converted(start, src, out)
    }

    /// Gathers arbitrary rows: `out[r*d..(r+1)*d]` = row `idx[r]`, with the same NaN/Inf check.
    pub fn gather_rows(&self, idx: &[usize], out: &mut [f32]) -> Result<()> {
        let want = idx.len().saturating_mul(self.d);
        if out.len() != want {
            return Err(self.err(format!(
                "output buffer holds {} values but {} rows of dimension {} need {want}",
                out.len(),
                idx.len(),
                self.d
            )));
        }
        for (&row, dst) in idx.iter().zip(out.chunks_exact_mut(self.d)) {
            if row >= self.n {
                return Err(self.err(format!(
                    "row index {row} out of range (the file has {} rows)",
                    self.n
                )));
            }
            let src = self.row_bytes(row, 1);
            decode_f32(self.dtype, src, dst);
            self.check_converted(row, src, dst)?;
        }
        Ok(())
    }

    /// Scans the whole file for NaN/Inf (and F64 values outside the f32 range); the error
    /// names the first bad row and column.
    pub fn check_finite(&self) -> Result<()> {
        let rows_per_chunk = (SCAN_ELEMENTS / self.d).clamp(1, self.n);
        let mut buf = vec![0.0f32; rows_per_chunk * self.d];
        let mut start = 0;
        while start < self.n {
            let count = rows_per_chunk.min(self.n - start);
            self.read_rows(start, count, &mut buf[..count * self.d])?;
            start += count;
        }
        Ok(())
    }
}

/// Where the matrix lives inside a validated file.
struct Layout {
    dtype: DType,
    n: usize,
    d: usize,
    data_start: usize,
    metadata: BTreeMap<String, String>,
}

/// Opens `path` as a non-empty regular file and maps it read-only.
pub(crate) fn map_file(path: &Path) -> Result<Mmap> {
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
    if meta.len() == 0 {
        return Err(IoError::new(path, "file is empty (0 bytes)"));
    }
    let file = File::open(path).map_err(|e| open_error(path, &e))?;
    // SAFETY: the map is read-only and only read through bounds-checked slices. Mutation or
    // truncation of the file by another process while mapped is outside this crate's control
    // (documented on ActivationFile).
    let map = unsafe { Mmap::map(&file) }.map_err(|e| IoError::from_io(path, "cannot map", &e))?;
    if map.is_empty() {
        return Err(IoError::new(path, "file is empty (0 bytes)"));
    }
    Ok(map)
}

pub(crate) fn open_error(path: &Path, e: &std::io::Error) -> IoError {
    if e.kind() == std::io::ErrorKind::NotFound {
        IoError::new(path, "file not found")
    } else {
        IoError::from_io(path, "cannot open", e)
    }
}

/// Checks a 2-D shape and that the data fits in the file; returns `(n, d)`.
fn check_matrix(
    path: &Path,
    shape: &[usize],
    shape_text: &str,
    dtype: DType,
    data_start: usize,
    file_len: usize,
    what: &str,
) -> Result<(usize, usize)> {
    let &[n, d] = shape else {
        return Err(IoError::new(
            path,
            format!(
                "{what} has {} dimension(s) (shape {shape_text}); expected a 2-D matrix [n, d]",
                shape.len()
            ),
        ));
    };
    if n == 0 || d == 0 {
        return Err(IoError::new(
            path,
            format!("{what} is empty (shape {shape_text}); need n > 0 rows and d > 0 columns"),
        ));
    }
    let needed = n
        .checked_mul(d)
        .and_then(|e| e.checked_mul(dtype.size_bytes()))
        .ok_or_else(|| IoError::new(path, format!("{what} shape {shape_text} overflows")))?;
    let available = file_len.saturating_sub(data_start);
    if needed > available {
        return Err(IoError::new(
            path,
            format!(
                "file truncated: {what} of shape {shape_text} and dtype {dtype} needs {needed} bytes of data but only {available} bytes follow the header"
            ),
        ));
    }
    Ok((n, d))
}

fn npy_layout(path: &Path, bytes: &[u8]) -> Result<Layout> {
    let h = npy::parse_header(path, bytes)?;
    let dims: Vec<String> = h.shape.iter().map(usize::to_string).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let (n, d) = check_matrix(
        path,
        &h.shape,
        &shape_text,
        h.dtype,
        h.data_start,
        bytes.len(),
        "array",
    )?;
    Ok(Layout {
        dtype: h.dtype,
        n,
        d,
        data_start: h.data_start,
        metadata: BTreeMap::new(),
    })
}

fn safetensors_layout(path: &Path, bytes: &[u8]) -> Result<Layout> {
    let h = st::parse_header(path, bytes)?;
    let entry = match h.tensors.iter().find(|t| t.name == ACTIVATIONS_TENSOR) {
        Some(t) => t,
        None => match h.tensors.as_slice() {
            [only] => only,
            [] => return Err(IoError::new(path, "safetensors file contains no tensors")),
            many => {
                let mut names: Vec<String> = many
                    .iter()
                    .take(5)
                    .map(|t| format!("{:?}", t.name))
                    .collect();
                if many.len() > 5 {
                    names.push(format!("... ({} more)", many.len() - 5));
                }
                return Err(IoError::new(
                    path,
                    format!(
                        "{} tensors and none named \"{ACTIVATIONS_TENSOR}\" (found {}); name the activation tensor \"{ACTIVATIONS_TENSOR}\"",
                        many.len(),
                        names.join(", ")
                    ),
                ));
            }
        },
    };
    let what = format!("tensor {:?}", entry.name);
    let dtype = DType::from_name(&entry.dtype).ok_or_else(|| {
        IoError::new(
            path,
            format!(
                "{what} has unsupported dtype {} (supported: F16, BF16, F32, F64)",
                entry.dtype
            ),
        )
    })?;
    let (n, d) = check_matrix(
        path,
        &entry.shape,
        &fmt_shape(&entry.shape),
        dtype,
        entry.start,
        entry.end,
        &what,
    )?;
    Ok(Layout {
        dtype,
        n,
        d,
        data_start: entry.start,
        metadata: h.metadata,
    })
}

/// Writes an `[n, d]` f32 matrix atomically: `.safetensors` (tensor `"activations"`, dtype
/// F32, F16, BF16 or F64, with `metadata` as `__metadata__`) or `.npy` (`'<f4'`, `'<f2'` or
/// `'<f8'`; `metadata` is not stored), chosen by extension. Values are rounded to nearest
/// even; a finite value that would overflow to infinity in the target dtype is an error.
pub fn write_activations(
    path: &Path,
    n: usize,
    d: usize,
    data: &[f32],
    dtype: DType,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let err = |msg: String| IoError::new(path, msg);
    let format = FileFormat::from_extension(path).ok_or_else(|| {
        err(format!(
            "cannot write activations: unknown extension ({SUPPORTED_EXTENSIONS})"
        ))
    })?;
    if n == 0 || d == 0 {
        return Err(err(format!(
            "cannot write an empty activation matrix [{n}, {d}]"
        )));
    }
    let numel = n
        .checked_mul(d)
        .filter(|&e| e == data.len())
        .ok_or_else(|| {
            err(format!(
                "cannot write activations: shape [{n}, {d}] does not match {} values",
                data.len()
            ))
        })?;
    if let Some(i) = first_overflow(dtype, data) {
        return Err(err(format!(
            "cannot write activations: value {:e} at row {}, column {} overflows {dtype}",
            data[i],
            i / d,
            i % d
        )));
    }
    let n_bytes = numel
        .checked_mul(dtype.size_bytes())
        .ok_or_else(|| err("activation matrix too large".to_string()))?;
    let header = match format {
        FileFormat::Safetensors => st::build_header(
            path,
            &[st::EntrySpec {
                name: ACTIVATIONS_TENSOR,
                dtype: dtype.name(),
                shape: &[n, d],
                n_bytes,
            }],
            metadata,
        )?,
        FileFormat::Npy => {
            let descr = npy::descr_of(dtype).ok_or_else(|| {
                err(format!(
                    "cannot write {dtype} to .npy (numpy has no {dtype} type); use F16, F32 or F64, or a .safetensors file"
                ))
            })?;
            npy::build_header(descr, &[n, d])
        }
    };
    write_atomic_with(path, |w| {
        w.write_all(&header)?;
        write_encoded(w, dtype, data)
    })
}

/// Streams `data` encoded as `dtype` in bounded chunks.
pub(crate) fn write_encoded(w: &mut dyn Write, dtype: DType, data: &[f32]) -> std::io::Result<()> {
    let mut buf = Vec::new();
    for chunk in data.chunks(1 << 16) {
        buf.clear();
        encode_f32(dtype, chunk, &mut buf);
        w.write_all(&buf)?;
    }
    Ok(())
}
