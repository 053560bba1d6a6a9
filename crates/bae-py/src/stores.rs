//! The on-disk stores: the activation shards of `bae extract` (memory-mapped by the Python layer
//! from the layout read here) and the bit-packed code shards of `bae encode`.

use crate::arrays::{f32_matrix, matrix};
use crate::bae_err;
use crate::codes::PackedCodes;
use bae_bits::PackedRows;
use bae_io::extract_store::OutDtype;
use bae_io::{CodeStore, ShardStore, StoreInfo, StoreWriter};
use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// An extract folder (`bae extract` output, or what `write_store` wrote), opened and checked as
/// the trainer opens it.
#[pyclass(module = "bae._native", frozen)]
pub struct ActivationShards {
    store: ShardStore,
}

/// Opens an extract block folder (or an extract folder with one block).
#[pyfunction]
fn open_shards(py: Python<'_>, path: PathBuf) -> PyResult<ActivationShards> {
    let store = py.detach(|| ShardStore::open(&path)).map_err(bae_err)?;
    Ok(ActivationShards { store })
}

#[pymethods]
impl ActivationShards {
    /// Rows in all shards.
    #[getter]
    fn rows(&self) -> usize {
        self.store.n_rows()
    }

    /// Row width d.
    #[getter]
    fn d(&self) -> usize {
        self.store.dim()
    }

    /// The block folder holding manifest.json.
    #[getter]
    fn dir(&self) -> PathBuf {
        self.store.dir().to_path_buf()
    }

    /// manifest.json as read and checked, as JSON text.
    #[getter]
    fn manifest_json(&self) -> PyResult<String> {
        serde_json::to_string(self.store.manifest()).map_err(bae_err)
    }

    /// Each non-empty shard as `(path, rows, {tensor: (dtype, shape, byte offset)})`.
    fn layout<'py>(&self, py: Python<'py>) -> PyResult<Vec<(PathBuf, usize, Bound<'py, PyDict>)>> {
        let mut out = Vec::new();
        for e in self.store.manifest().shards.iter().filter(|e| e.rows > 0) {
            let path = self.store.dir().join(&e.file);
            let tensors = PyDict::new(py);
            for t in bae_io::tensor_layout(&path).map_err(bae_err)? {
                tensors.set_item(&t.name, (t.dtype, t.shape, t.offset))?;
            }
            out.push((path, e.rows, tensors));
        }
        Ok(out)
    }

    /// The rows at `index` (global row numbers) as float32 [len(index), d], converted from the
    /// stored f16 / bf16 / f32.
    fn gather<'py>(&self, py: Python<'py>, index: Vec<i64>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let n = self.store.n_rows();
        let idx = index
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .filter(|&k| k < n)
                    .ok_or_else(|| bae_err(format!("gather: row {i} out of range 0..{n}")))
            })
            .collect::<PyResult<Vec<usize>>>()?;
        let d = self.store.dim();
        let mut out = vec![0f32; idx.len() * d];
        py.detach(|| self.store.gather_rows(&idx, &mut out))
            .map_err(bae_err)?;
        matrix(py, out, idx.len(), d)
    }
}

/// Reads a `bae encode` code store: `(codes, token_ids, doc_ids, positions, settings JSON,
/// complete)`; the codes stay packed (a quarter of f16 activations' size at d' = 4d).
#[pyfunction]
#[allow(clippy::type_complexity)]
fn read_codes<'py>(
    py: Python<'py>,
    path: PathBuf,
) -> PyResult<(
    PackedCodes,
    Bound<'py, PyArray1<i32>>,
    Bound<'py, PyArray1<i32>>,
    Bound<'py, PyArray1<i32>>,
    String,
    bool,
)> {
    let r = py.detach(|| -> Result<_, String> {
        let store = CodeStore::open(&path).map_err(|e| e.to_string())?;
        let n = store.n_rows();
        let words = store.rows(0..n).map_err(|e| e.to_string())?;
        let ids = store.ids(0..n).map_err(|e| e.to_string())?;
        let rows = PackedRows::from_words(n, store.n_bits(), words)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((rows, ids, store.settings().to_string(), store.is_complete()))
    });
    let (rows, ids, settings, complete) = r.map_err(bae_err)?;
    Ok((
        PackedCodes { rows },
        PyArray1::from_vec(py, ids.token_ids),
        PyArray1::from_vec(py, ids.doc_ids),
        PyArray1::from_vec(py, ids.positions),
        settings,
        complete,
    ))
}

/// Every tensor of a safetensors file as float64 arrays (exact for F32 and F64 files) (name -> array of its shape).
#[pyfunction]
fn read_tensors<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let (map, _) = py
        .detach(|| bae_io::load_tensors_f64(&path))
        .map_err(bae_err)?;
    let out = PyDict::new(py);
    for (name, t) in map {
        let arr = PyArray1::from_vec(py, t.data).reshape(t.shape)?;
        out.set_item(name, arr)?;
    }
    Ok(out)
}

/// Appends `activations` (2-D, any float dtype, converted to float32 then stored as `dtype`) to the
/// store at `path` in shards of `shard_rows`, in the format of `bae extract`; returns the rows the
/// store holds afterwards. The id columns default to doc 0, positions 0.., token -1.
#[pyfunction]
#[pyo3(signature = (path, activations, token_ids = None, doc_ids = None, positions = None,
    model = String::from("unknown"), block = 0, tokenizer = String::new(), window = 0,
    docs = Vec::new(), metadata = BTreeMap::new(), dtype = "f16", shard_rows = 65536, complete = true))]
#[allow(clippy::too_many_arguments)]
fn write_store(
    py: Python<'_>,
    path: PathBuf,
    activations: &Bound<'_, PyAny>,
    token_ids: Option<Vec<i32>>,
    doc_ids: Option<Vec<i32>>,
    positions: Option<Vec<i32>>,
    model: String,
    block: usize,
    tokenizer: String,
    window: usize,
    docs: Vec<String>,
    metadata: BTreeMap<String, String>,
    dtype: &str,
    shard_rows: usize,
    complete: bool,
) -> PyResult<u64> {
    let (acts, n, d) = f32_matrix(activations, "activations")?;
    let acts = acts.as_slice()?;
    let dtype = match dtype {
        "f16" => OutDtype::F16,
        "bf16" => OutDtype::Bf16,
        "f32" => OutDtype::F32,
        other => {
            return Err(bae_err(format!(
                "dtype must be f16, bf16 or f32, got {other:?}"
            )));
        }
    };
    if shard_rows == 0 {
        return Err(bae_err("shard_rows must be at least 1"));
    }
    let column = |name: &str, v: Option<Vec<i32>>, default: &dyn Fn(usize) -> i32| match v {
        Some(v) if v.len() != n => Err(bae_err(format!(
            "{name} has {} entries for {n} rows",
            v.len()
        ))),
        Some(v) => Ok(v),
        None => Ok((0..n).map(default).collect()),
    };
    let tok = column("token_ids", token_ids, &|_| -1)?;
    let doc = column("doc_ids", doc_ids, &|_| 0)?;
    let pos = column("positions", positions, &|i| i as i32)?;
    let info = StoreInfo {
        model,
        block,
        tokenizer,
        window,
        docs,
        metadata,
    };
    py.detach(|| -> bae_io::Result<u64> {
        let mut w = StoreWriter::open(&path, d, dtype, info)?;
        for start in (0..n).step_by(shard_rows) {
            let end = (start + shard_rows).min(n);
            w.append(
                &acts[start * d..end * d],
                &tok[start..end],
                &doc[start..end],
                &pos[start..end],
            )?;
        }
        if complete {
            w.finish()?;
        }
        Ok(w.n_rows())
    })
    .map_err(bae_err)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(write_store, m)?)?;
    m.add_function(wrap_pyfunction!(read_tensors, m)?)?;
    m.add_class::<ActivationShards>()?;
    m.add_function(wrap_pyfunction!(open_shards, m)?)?;
    m.add_function(wrap_pyfunction!(read_codes, m)?)?;
    Ok(())
}
