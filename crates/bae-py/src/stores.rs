//! The on-disk stores: the activation shards of `bae extract` (memory-mapped by the Python layer
//! from the layout read here) and the bit-packed code shards of `bae encode`.

use crate::arrays::matrix;
use crate::bae_err;
use crate::codes::PackedCodes;
use bae_bits::PackedRows;
use bae_io::{CodeStore, ShardStore};
use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;
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

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(read_tensors, m)?)?;
    m.add_class::<ActivationShards>()?;
    m.add_function(wrap_pyfunction!(open_shards, m)?)?;
    m.add_function(wrap_pyfunction!(read_codes, m)?)?;
    Ok(())
}
