//! Atomic file replacement: write a temporary file next to the target, fsync, rename.

use crate::error::{IoError, Result};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temporary files of concurrent writers within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically; see [`write_atomic_with`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Atomically replaces `path` with what `write` produces.
///
/// A temporary file `.<name>.<pid>-<k>.tmp` is created in the target's directory, filled
/// through a buffered writer, flushed and fsynced, then renamed over the target, and
/// finally the directory is fsynced (best effort: some file systems refuse directory
/// fsync). Readers see either the old or the new content, never a mix. On any error
/// (or a panic inside `write`) the temporary file is removed and the target is untouched.
/// Errors name the target path, e.g. `"<path>: cannot write: No space left on device (os error 28)"`.
pub fn write_atomic_with<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> std::io::Result<()>,
{
    let Some(name) = path.file_name() else {
        return Err(IoError::new(path, "cannot write: not a file path"));
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (file, temp) = create_temp(path, &dir, name)?;
    let guard = TempGuard {
        path: Some(temp.clone()),
    };

    let mut out = BufWriter::with_capacity(1 << 20, file);
    write(&mut out).map_err(|e| IoError::from_io(path, "cannot write", &e))?;
    let file = out
        .into_inner()
        .map_err(|e| IoError::from_io(path, "cannot write", e.error()))?;
    file.sync_all()
        .map_err(|e| IoError::from_io(path, "cannot write (fsync)", &e))?;
    drop(file);

    std::fs::rename(&temp, path).map_err(|e| {
        IoError::from_io(path, &format!("cannot replace with {}", temp.display()), &e)
    })?;
    guard.disarm();
    // Make the rename durable. Errors are ignored: the new content is already in place and
    // some file systems do not support fsync on directories.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates a fresh temporary file next to the target.
fn create_temp(target: &Path, dir: &Path, name: &std::ffi::OsStr) -> Result<(File, PathBuf)> {
    let pid = std::process::id();
    let mut last_err = None;
    for _ in 0..16 {
        let k = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut temp_name = OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{pid}-{k}.tmp"));
        let temp = dir.join(temp_name);
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(f) => return Ok((f, temp)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(IoError::new(
                    target,
                    format!("cannot write: directory {} does not exist", dir.display()),
                ));
            }
            Err(e) => {
                return Err(IoError::from_io(
                    target,
                    &format!("cannot create a temporary file in {}", dir.display()),
                    &e,
                ));
            }
        }
    }
    let e = last_err.unwrap_or_else(|| std::io::Error::other("too many attempts"));
    Err(IoError::from_io(
        target,
        &format!("cannot create a temporary file in {}", dir.display()),
        &e,
    ))
}

/// Removes the temporary file on drop unless disarmed (covers errors and panics).
struct TempGuard {
    path: Option<PathBuf>,
}

impl TempGuard {
    fn disarm(mut self) {
        self.path = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        std::fs::write(&target, b"old").unwrap();
        let e = write_atomic_with(&target, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("disk on fire"))
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: cannot write: disk on fire", target.display())
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn panicking_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        let r = std::panic::catch_unwind(|| {
            let _ = write_atomic_with(&target, |_| panic!("boom"));
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
