//! `bae._native`: the Rust half of the `bae` Python package (python/). Everything heavy runs
//! here with the GIL released; python/bae/__init__.py adds the thin Python layer (memory maps of
//! activation shards, the SAELens registration).

use pyo3::prelude::*;

mod arrays;
mod codes;
mod model;
mod stores;

pyo3::create_exception!(
    _native,
    BaeError,
    pyo3::exceptions::PyValueError,
    "A file, folder or array bae cannot use; the message is the CLI's one-line error."
);

/// The CLI's one-line error as a Python exception.
pub(crate) fn bae_err(msg: impl std::fmt::Display) -> PyErr {
    BaeError::new_err(msg.to_string())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("BaeError", m.py().get_type::<BaeError>())?;
    codes::register(m)?;
    model::register(m)?;
    stores::register(m)?;
    Ok(())
}
