//! One writer per output folder: an exclusive `flock` on `DIR/.bae.lock`, held for the life of the
//! guard and released by the kernel if the process dies, so a killed run never leaves a stale lock.

use crate::error::{IoError, Result};
use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = ".bae.lock";

/// Held while a process writes a folder; dropping it unlocks.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
    path: PathBuf,
}

impl FolderLock {
    /// Creates `dir` if needed and locks it, or says in one line that another process holds it.
    pub fn acquire(dir: &Path) -> Result<FolderLock> {
        std::fs::create_dir_all(dir)
            .map_err(|e| IoError::from_io(dir, "cannot create folder", &e))?;
        let path = dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| IoError::from_io(&path, "cannot open the folder lock", &e))?;
        // SAFETY: a valid open descriptor; flock has no memory effects.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                IoError::new(
                    dir,
                    "another bae process is writing this folder; wait for it or choose another output folder",
                )
            } else {
                IoError::from_io(&path, "cannot lock the folder", &e)
            });
        }
        Ok(FolderLock { _file: file, path })
    }

    /// Locks `dir` when it exists (a command that reads and adds to a run folder); None when it
    /// does not, so the command's own "no such folder" error names it.
    pub fn acquire_existing(dir: &Path) -> Result<Option<FolderLock>> {
        dir.is_dir().then(|| FolderLock::acquire(dir)).transpose()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_writer_is_refused_until_the_first_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let first = FolderLock::acquire(&out).unwrap();
        let e = FolderLock::acquire(&out).unwrap_err().to_string();
        assert!(
            e.contains("another bae process") && e.contains("run"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        drop(first);
        let again = FolderLock::acquire(&out).unwrap();
        assert!(again.path().ends_with(LOCK_FILE));
    }
}
