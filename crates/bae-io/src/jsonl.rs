//! Buffered JSON Lines writer for per-step metrics.

use crate::error::{IoError, Result};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes one JSON value per line, buffered. Call [`flush`](JsonlWriter::flush) to push
/// lines to the OS (e.g. at logging intervals); dropping the writer also flushes, ignoring
/// errors.
#[derive(Debug)]
pub struct JsonlWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl JsonlWriter {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|e| IoError::from_io(path, "cannot create", &e))?;
        Ok(Self::wrap(path, file))
    }

    /// Opens `path` for appending, creating it if needed (for resumed runs).
    pub fn append(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| IoError::from_io(path, "cannot open for appending", &e))?;
        Ok(Self::wrap(path, file))
    }

    fn wrap(path: &Path, file: File) -> Self {
        Self {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(64 * 1024, file),
        }
    }

    /// Appends `value` as one line (serde_json escapes any newline inside strings).
    pub fn write(&mut self, value: &serde_json::Value) -> Result<()> {
        serde_json::to_writer(&mut self.out, value)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|e| IoError::from_io(&self.path, "cannot write", &e))
    }

    /// Flushes buffered lines to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .map_err(|e| IoError::from_io(&self.path, "cannot write", &e))
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
