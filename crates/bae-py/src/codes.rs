//! `PackedCodes` (a bit-packed 0/1 matrix, one row per hidden state) and the statistics of the
//! bits crate on it: firing rates, entropy, co-activation counts, the covariance term and the
//! entropy estimators with bootstrap intervals.

use crate::arrays::{as_ndarray, matrix};
use crate::bae_err;
use bae_bits::PackedRows;
use bae_bits::set_entropy::{Estimate, EstimateOptions, estimate, groups_from_ids};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rayon::prelude::*;

/// Codes as bits: row `i` is one hidden state, bit `j` feature `j`, packed 64 to a `uint64` word
/// (least significant bit first, each row padded to whole words with zeros).
#[pyclass(module = "bae._native", frozen)]
pub struct PackedCodes {
    pub rows: PackedRows,
}

#[pymethods]
impl PackedCodes {
    /// Packs a 2-D array: bool, or any number type where a bit is set iff the value is > 0
    /// (so 0/1 integers and pre-activations both work). C- or F-ordered; numpy arrays and CPU
    /// torch tensors are read in place.
    #[staticmethod]
    fn from_dense(py: Python<'_>, array: &Bound<'_, PyAny>) -> PyResult<PackedCodes> {
        let arr = as_ndarray(array)?;
        if arr.ndim() != 2 {
            return Err(bae_err(format!(
                "from_dense: expected a 2-D array (rows x features), got {} dimensions",
                arr.ndim()
            )));
        }
        let kind: u8 = arr
            .dtype()
            .getattr("kind")?
            .extract::<String>()?
            .bytes()
            .next()
            .unwrap_or(0);
        let rows = if let Ok(a) = arr.cast::<PyArray2<bool>>() {
            pack_bools(py, a.readonly())
        } else if let Ok(a) = arr.cast::<PyArray2<u8>>() {
            pack(py, a.readonly(), |&v| v > 0)
        } else if let Ok(a) = arr.cast::<PyArray2<f32>>() {
            pack(py, a.readonly(), |&v| v > 0.0)
        } else if let Ok(a) = arr.cast::<PyArray2<f64>>() {
            pack(py, a.readonly(), |&v| v > 0.0)
        } else if matches!(kind, b'i' | b'u' | b'f') {
            // other widths: compare in numpy, then pack the bools
            let gt = arr.call_method1("__gt__", (0,))?;
            let a = gt.cast_into::<PyArray2<bool>>()?;
            pack(py, a.readonly(), |&v| v)
        } else {
            return Err(bae_err(format!(
                "from_dense: unsupported dtype {} (use bool, integers or floats)",
                arr.dtype()
            )));
        };
        Ok(PackedCodes { rows })
    }

    /// Rebuilds codes from `words` (`uint64`, `rows x ceil(cols/64)`, as `.words()` returns).
    #[staticmethod]
    fn from_words(words: &Bound<'_, PyAny>, cols: usize) -> PyResult<PackedCodes> {
        let arr = as_ndarray(words)?;
        let w = arr
            .cast::<PyArray2<u64>>()
            .map_err(|_| bae_err("from_words: words must be a 2-D uint64 array"))?;
        let (n, wpr) = (w.shape()[0], w.shape()[1]);
        if wpr != cols.div_ceil(64) {
            return Err(bae_err(format!(
                "from_words: {cols} columns need {} words per row, got {wpr}",
                cols.div_ceil(64)
            )));
        }
        let v: Vec<u64> = w.readonly().as_array().iter().copied().collect();
        let rows =
            PackedRows::from_words(n, cols, v).map_err(|e| bae_err(format!("from_words: {e}")))?;
        Ok(PackedCodes { rows })
    }

    /// Number of rows (hidden states).
    #[getter]
    fn rows(&self) -> usize {
        self.rows.n_rows()
    }

    /// Number of columns (features).
    #[getter]
    fn cols(&self) -> usize {
        self.rows.n_cols()
    }

    /// `(rows, cols)`.
    #[getter]
    fn shape(&self) -> (usize, usize) {
        (self.rows.n_rows(), self.rows.n_cols())
    }

    fn __len__(&self) -> usize {
        self.rows.n_rows()
    }

    fn __repr__(&self) -> String {
        format!(
            "PackedCodes(rows={}, cols={})",
            self.rows.n_rows(),
            self.rows.n_cols()
        )
    }

    /// The packed words, a new `uint64` array `rows x ceil(cols/64)`.
    fn words<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<u64>>> {
        let r = &self.rows;
        matrix(py, r.words().to_vec(), r.n_rows(), r.words_per_row())
    }

    /// The codes as a `bool` array `rows x cols`.
    pub(crate) fn to_dense<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<bool>>> {
        let r = &self.rows;
        let (n, c) = (r.n_rows(), r.n_cols());
        let dense = py.detach(|| {
            let mut out = vec![false; n * c];
            out.par_chunks_mut(c.max(1)).enumerate().for_each(|(i, o)| {
                let row = r.row(i);
                for (j, v) in o.iter_mut().enumerate() {
                    *v = row[j / 64] >> (j % 64) & 1 == 1;
                }
            });
            out
        });
        matrix(py, dense, n, c)
    }

    /// The rows listed in `index` (any integer array-like; repeats allowed), as new codes.
    fn take(&self, index: Vec<i64>) -> PyResult<PackedCodes> {
        let r = &self.rows;
        let w = r.words_per_row();
        let mut words = Vec::with_capacity(index.len() * w);
        for &i in &index {
            let k = usize::try_from(i)
                .ok()
                .filter(|&k| k < r.n_rows())
                .ok_or_else(|| bae_err(format!("take: row {i} out of range 0..{}", r.n_rows())))?;
            words.extend_from_slice(r.row(k));
        }
        let rows = PackedRows::from_words(index.len(), r.n_cols(), words).map_err(bae_err)?;
        Ok(PackedCodes { rows })
    }

    fn __eq__(&self, other: &PackedCodes) -> bool {
        self.rows == other.rows
    }
}

/// Packs one row-major view, in parallel over rows (strided views are read in place).
fn pack<T: numpy::Element + Sync>(
    py: Python<'_>,
    a: PyReadonlyArray2<'_, T>,
    set: impl Fn(&T) -> bool + Sync,
) -> PackedRows {
    let view = a.as_array();
    let (n, c) = view.dim();
    let wpr = c.div_ceil(64);
    let mut words = vec![0u64; n * wpr];
    py.detach(|| {
        words
            .par_chunks_mut(wpr.max(1))
            .enumerate()
            .for_each(|(i, out)| {
                let row = view.row(i);
                match row.as_slice() {
                    // contiguous rows: 64 elements to a word, branch-free (vectorised compares)
                    Some(r) => {
                        for (o, chunk) in out.iter_mut().zip(r.chunks(64)) {
                            *o = (chunk.iter().enumerate())
                                .fold(0, |w, (b, v)| w | (u64::from(set(v)) << b));
                        }
                    }
                    None => {
                        for (j, v) in row.iter().enumerate() {
                            if set(v) {
                                out[j / 64] |= 1 << (j % 64);
                            }
                        }
                    }
                }
            });
    });
    PackedRows::from_words(n, c, words).expect("packed shape")
}

/// [`pack`] for bool arrays: a contiguous row is read 8 bools (bytes 0 or 1) at a time as a u64
/// and gathered into 8 bits with one multiply — each byte's bit lands in the top byte at its own
/// place (byte i at bit 56 + i), and no two partial products collide, so nothing carries.
fn pack_bools(py: Python<'_>, a: PyReadonlyArray2<'_, bool>) -> PackedRows {
    const GATHER: u64 = 0x0102_0408_1020_4080;
    let view = a.as_array();
    let (n, c) = view.dim();
    if view.as_slice().is_none() {
        return pack(py, a, |&v| v);
    }
    let wpr = c.div_ceil(64);
    let mut words = vec![0u64; n * wpr];
    py.detach(|| {
        (words.par_chunks_mut(wpr.max(1)).enumerate())
            .with_min_len(64)
            .for_each(|(i, out)| {
                let row = view.row(i);
                let row = row.as_slice().expect("C-contiguous");
                // SAFETY: a bool is one byte holding 0 or 1, so the row reads as bytes
                let row = unsafe { std::slice::from_raw_parts(row.as_ptr().cast::<u8>(), c) };
                // groups of 8 bools as u64 (the last one zero-padded), then 0 past the row's end
                let whole = row.chunks_exact(8);
                let tail = (!whole.remainder().is_empty()).then(|| {
                    let mut b = [0u8; 8];
                    b[..whole.remainder().len()].copy_from_slice(whole.remainder());
                    u64::from_le_bytes(b)
                });
                let mut groups =
                    (whole.map(|g| u64::from_le_bytes(g.try_into().expect("8")))).chain(tail);
                for o in out.iter_mut() {
                    let mut w = 0u64;
                    for g in 0..8 {
                        let x = groups.next().unwrap_or(0);
                        w |= (x.wrapping_mul(GATHER) >> 56) << (8 * g);
                    }
                    *o = w;
                }
            });
    });
    PackedRows::from_words(n, c, words).expect("packed shape")
}

/// Firing counts as u64 (what the estimators take).
fn counts(codes: &PackedCodes) -> Vec<u64> {
    bae_bits::firing_counts_rows(&codes.rows)
        .into_iter()
        .map(u64::from)
        .collect()
}

/// Firing counts per feature (`uint64`, length cols).
#[pyfunction]
fn firing_counts<'py>(py: Python<'py>, codes: &PackedCodes) -> Bound<'py, PyArray1<u64>> {
    let c = py.detach(|| counts(codes));
    PyArray1::from_vec(py, c)
}

/// Firing rate of each feature, `count / rows` (`float64`, length cols; 0 when there are no rows).
#[pyfunction]
fn firing_rates<'py>(py: Python<'py>, codes: &PackedCodes) -> Bound<'py, PyArray1<f64>> {
    let n = codes.rows.n_rows().max(1) as f64;
    let r: Vec<f64> = py.detach(|| counts(codes).into_iter().map(|c| c as f64 / n).collect());
    PyArray1::from_vec(py, r)
}

/// The paper's entropy in bits: `Σ_j H(p_j)` with the official ε inside the logarithms
/// (`per_feature=True`: the `float64` array of `H(p_j)` instead of the sum).
#[pyfunction]
#[pyo3(signature = (codes, per_feature = false))]
fn entropy_bits<'py>(
    py: Python<'py>,
    codes: &PackedCodes,
    per_feature: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let n = codes.rows.n_rows().max(1) as f64;
    let rates: Vec<f64> = py.detach(|| counts(codes).into_iter().map(|c| c as f64 / n).collect());
    if per_feature {
        Ok(PyArray1::from_vec(py, bae_bits::entropy_per_feature(&rates)).into_any())
    } else {
        Ok(bae_bits::entropy_bits(&rates).into_pyobject(py)?.into_any())
    }
}

/// Pairwise co-activation counts `N_jk = #rows with both j and k set` (`uint32`, cols x cols;
/// the diagonal holds the firing counts). Exact: AND + popcount, no floating point.
#[pyfunction]
fn coactivation_counts<'py>(
    py: Python<'py>,
    codes: &PackedCodes,
) -> PyResult<Bound<'py, PyArray2<u32>>> {
    let c = codes.rows.n_cols();
    let counts = py.detach(|| bae_bits::coactivation_counts(&codes.rows.to_columns()));
    matrix(py, counts, c, c)
}

/// The covariance (independence) term `Σ_{j≠k} |cov(H)_jk|` with the unbiased covariance, as
/// `torch.cov(h.T)`; computed exactly from popcounts. Needs at least 2 rows.
#[pyfunction]
fn covariance_term(py: Python<'_>, codes: &PackedCodes) -> PyResult<f64> {
    let t = py.detach(|| bae_bits::CovarianceTerm::from_columns(&codes.rows.to_columns()));
    Ok(t.map_err(|e| bae_err(format!("covariance_term: {e}")))?
        .term)
}

fn estimate_dict<'py>(py: Python<'py>, e: &Estimate) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("bits", e.bits)?;
    d.set_item("lo", e.lo)?;
    d.set_item("hi", e.hi)?;
    Ok(d)
}

/// Every entropy estimate of the set of codes, in bits, as `bae entropy` prints them: the marginal
/// sum (plug-in, the paper's), its Miller–Madow correction and the Chow–Liu tree bound, each a
/// dict `{bits, lo, hi}` with a basic bootstrap interval at `level` over documents (`doc_ids`; with
/// fewer than 20 documents the 128-token windows found from `positions`; without ids blocks of
/// 128 rows). `reps`/`tree_reps` = 0 skip the intervals.
#[pyfunction]
#[pyo3(signature = (codes, doc_ids = None, positions = None, reps = 200, tree_reps = 30, level = 0.9, seed = 0))]
#[allow(clippy::too_many_arguments)]
fn entropy_estimates<'py>(
    py: Python<'py>,
    codes: &PackedCodes,
    doc_ids: Option<Vec<i32>>,
    positions: Option<Vec<i32>>,
    reps: usize,
    tree_reps: usize,
    level: f64,
    seed: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let n = codes.rows.n_rows();
    if n == 0 {
        return Err(bae_err("entropy_estimates: no rows"));
    }
    if !(level > 0.0 && level < 1.0) {
        return Err(bae_err(format!(
            "entropy_estimates: level must be in (0, 1), got {level}"
        )));
    }
    let docs = doc_ids.unwrap_or_else(|| vec![-1; n]);
    let pos = positions.unwrap_or_else(|| vec![-1; n]);
    for (name, v) in [("doc_ids", &docs), ("positions", &pos)] {
        if v.len() != n {
            return Err(bae_err(format!(
                "entropy_estimates: {name} has {} entries for {n} rows",
                v.len()
            )));
        }
    }
    let opts = EstimateOptions {
        reps,
        tree_reps,
        level,
        seed,
    };
    let e = py.detach(|| {
        let (groups, unit) = groups_from_ids(&docs, &pos, 128);
        estimate(&codes.rows, &groups, unit, &opts)
    });
    let d = PyDict::new(py);
    d.set_item("rows", e.rows)?;
    d.set_item("groups", e.groups)?;
    d.set_item("group_unit", &e.group_unit)?;
    d.set_item("features", e.features)?;
    d.set_item("varying_features", e.varying_features)?;
    d.set_item("marginal", estimate_dict(py, &e.marginal)?)?;
    d.set_item("miller_madow", estimate_dict(py, &e.miller_madow)?)?;
    d.set_item("tree", estimate_dict(py, &e.tree)?)?;
    d.set_item("tree_mutual_info", e.tree_mutual_info)?;
    d.set_item("log2_rows", e.log2_rows)?;
    Ok(d)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PackedCodes>()?;
    m.add_function(wrap_pyfunction!(firing_counts, m)?)?;
    m.add_function(wrap_pyfunction!(firing_rates, m)?)?;
    m.add_function(wrap_pyfunction!(entropy_bits, m)?)?;
    m.add_function(wrap_pyfunction!(coactivation_counts, m)?)?;
    m.add_function(wrap_pyfunction!(covariance_term, m)?)?;
    m.add_function(wrap_pyfunction!(entropy_estimates, m)?)?;
    Ok(())
}
