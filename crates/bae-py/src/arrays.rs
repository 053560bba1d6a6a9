//! numpy in and out: any array-like (numpy, torch through `__array__`, lists) becomes a numpy
//! array first; outputs are new numpy arrays.

use crate::bae_err;
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

/// `numpy.asarray(obj)` (no copy for numpy arrays and CPU torch tensors).
pub fn as_ndarray<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, numpy::PyUntypedArray>> {
    let np = obj.py().import("numpy")?;
    let arr = np.call_method1("asarray", (obj,))?;
    Ok(arr.cast_into::<numpy::PyUntypedArray>()?)
}

/// A 2-D float32 C-contiguous copy or view of `obj` (converted as numpy would), with its shape.
pub fn f32_matrix<'py>(
    obj: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<(numpy::PyReadonlyArray2<'py, f32>, usize, usize)> {
    let np = obj.py().import("numpy")?;
    let arr = as_ndarray(obj)?;
    if arr.ndim() != 2 {
        return Err(bae_err(format!(
            "{what}: expected a 2-D array (rows x columns), got {} dimensions",
            arr.ndim()
        )));
    }
    let c = np.call_method1("ascontiguousarray", (arr, "float32"))?;
    let c = c.cast_into::<PyArray2<f32>>()?;
    let (r, k) = (c.shape()[0], c.shape()[1]);
    Ok((c.readonly(), r, k))
}

/// A new `rows x cols` numpy array holding `v` (row-major).
pub fn matrix<'py, T: numpy::Element>(
    py: Python<'py>,
    v: Vec<T>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'py, PyArray2<T>>> {
    PyArray1::from_vec(py, v).reshape([rows, cols])
}
