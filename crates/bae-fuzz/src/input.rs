//! A fuzz input: one or more named files (a parser of a folder, such as the shard store, reads
//! several), written to a work folder before each execution, saved on a crash, loaded from a corpus.

use crate::rng::fnv1a;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

/// One file of an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// File name inside the work folder (no path separators).
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The files a target reads in one execution.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Input {
    pub parts: Vec<Part>,
}

impl Input {
    pub fn single(name: &str, bytes: Vec<u8>) -> Self {
        Input {
            parts: vec![Part {
                name: name.to_string(),
                bytes,
            }],
        }
    }

    pub fn with_parts(parts: Vec<(&str, Vec<u8>)>) -> Self {
        Input {
            parts: parts
                .into_iter()
                .map(|(name, bytes)| Part {
                    name: name.to_string(),
                    bytes,
                })
                .collect(),
        }
    }

    /// The one-buffer form libFuzzer mutates: a lone file named `main` is its bytes; otherwise
    /// every file is [`FILE_MARK`] + name + `\n` + bytes, the first without the leading `\n`.
    pub fn to_bytes(&self, main: &str) -> Vec<u8> {
        if let [only] = self.parts.as_slice()
            && only.name == main
            && !only.bytes.starts_with(&FILE_MARK[1..])
        {
            return only.bytes.clone();
        }
        let mut out = Vec::new();
        for (i, p) in self.parts.iter().enumerate() {
            out.extend_from_slice(if i == 0 { &FILE_MARK[1..] } else { FILE_MARK });
            out.extend_from_slice(p.name.as_bytes());
            out.push(b'\n');
            out.extend_from_slice(&p.bytes);
        }
        out
    }

    /// The inverse of [`Self::to_bytes`] on any bytes: a buffer that does not start with the
    /// marker is the file `main`; a part whose name is not a plain file name (empty, `.`, `..`, a
    /// separator or a control character, over 64 bytes) is dropped; a repeated name keeps the last.
    pub fn from_bytes(data: &[u8], main: &str) -> Input {
        let Some(rest) = data.strip_prefix(&FILE_MARK[1..]) else {
            return Input::single(main, data.to_vec());
        };
        let mut parts: Vec<Part> = Vec::new();
        for chunk in split_on(rest, FILE_MARK) {
            let (name, bytes) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], &chunk[i + 1..]),
                None => (chunk, &[][..]),
            };
            let Ok(name) = std::str::from_utf8(name) else {
                continue;
            };
            if name.is_empty()
                || name.len() > 64
                || name == "."
                || name == ".."
                || name.contains(['/', '\\'])
                || name.chars().any(char::is_control)
            {
                continue;
            }
            parts.retain(|p| p.name != name);
            parts.push(Part {
                name: name.to_string(),
                bytes: bytes.to_vec(),
            });
        }
        Input { parts }
    }

    pub fn total_len(&self) -> usize {
        self.parts.iter().map(|p| p.bytes.len()).sum()
    }

    pub fn hash(&self) -> u64 {
        let mut h = 0u64;
        for p in &self.parts {
            h = h.rotate_left(17) ^ fnv1a(p.name.as_bytes()) ^ fnv1a(&p.bytes).rotate_left(5);
        }
        h
    }

    /// Writes every part into `dir`, and removes the files of the previous input (`written`)
    /// that this one does not have, so that each execution sees exactly this input.
    pub fn write_to(&self, dir: &Path, written: &mut Vec<String>) -> io::Result<()> {
        for old in written.iter() {
            if !self.parts.iter().any(|p| &p.name == old) {
                match std::fs::remove_file(dir.join(old)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        written.clear();
        for p in &self.parts {
            std::fs::write(dir.join(&p.name), &p.bytes)?;
            written.push(p.name.clone());
        }
        Ok(())
    }

    /// Saves the input as `base` + the extension of its file (one part) or as the folder `base`
    /// holding its files (several parts). Returns the path written.
    pub fn save(&self, base: &Path) -> io::Result<PathBuf> {
        if let [only] = self.parts.as_slice() {
            let mut path = base.as_os_str().to_owned();
            if let Some(ext) = Path::new(&only.name).extension() {
                path.push(".");
                path.push(ext);
            }
            let path = PathBuf::from(path);
            std::fs::write(&path, &only.bytes)?;
            return Ok(path);
        }
        std::fs::create_dir_all(base)?;
        for p in &self.parts {
            std::fs::write(base.join(&p.name), &p.bytes)?;
        }
        Ok(base.to_path_buf())
    }

    /// Loads a saved input: a file becomes one part named `default_name`; a folder gives one part
    /// per file in it (sorted by name).
    pub fn load(path: &Path, default_name: &str) -> io::Result<Input> {
        if path.is_dir() {
            let mut names: Vec<PathBuf> = std::fs::read_dir(path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            names.sort();
            let mut parts = Vec::new();
            for p in names {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                parts.push(Part {
                    name,
                    bytes: std::fs::read(&p)?,
                });
            }
            return Ok(Input { parts });
        }
        Ok(Input::single(default_name, std::fs::read(path)?))
    }

    /// Hex dump of every part (at most `max` bytes each), for crash reports.
    pub fn dump(&self, max: usize) -> String {
        let mut out = String::new();
        for p in &self.parts {
            let _ = writeln!(out, "--- {} ({} bytes)", p.name, p.bytes.len());
            out.push_str(&hexdump(&p.bytes, max));
        }
        out
    }
}

/// Starts each file after the first in the one-buffer form of a multi-file input.
pub const FILE_MARK: &[u8] = b"\n=== file ";

fn split_on<'a>(mut hay: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some(i) = hay.windows(sep.len()).position(|w| w == sep) {
        out.push(&hay[..i]);
        hay = &hay[i + sep.len()..];
    }
    out.push(hay);
    out
}

/// Classic 16-bytes-per-line hex dump with an ASCII column; elides after `max` bytes.
pub fn hexdump(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    for (i, line) in bytes[..bytes.len().min(max)].chunks(16).enumerate() {
        let _ = write!(out, "{:08x}  ", i * 16);
        for k in 0..16 {
            match line.get(k) {
                Some(b) => {
                    let _ = write!(out, "{b:02x} ");
                }
                None => out.push_str("   "),
            }
        }
        out.push(' ');
        out.extend(line.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        out.push('\n');
    }
    if bytes.len() > max {
        let _ = writeln!(out, "... ({} more bytes)", bytes.len() - max);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_roundtrip() {
        let dir = std::env::temp_dir().join(format!("bae-fuzz-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let one = Input::single("x.npy", b"abc".to_vec());
        let p = one.save(&dir.join("c1")).unwrap();
        assert_eq!(p, dir.join("c1.npy"));
        assert_eq!(Input::load(&p, "x.npy").unwrap(), one);
        let two = Input::with_parts(vec![("a.json", b"{}".to_vec()), ("b.bin", vec![0, 1])]);
        let p = two.save(&dir.join("c2")).unwrap();
        assert_eq!(Input::load(&p, "unused").unwrap(), two);
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let mut written = Vec::new();
        two.write_to(&work, &mut written).unwrap();
        one.write_to(&work, &mut written).unwrap();
        assert!(!work.join("a.json").exists() && work.join("x.npy").exists());
        assert_eq!(Input::from_bytes(&two.to_bytes("a.json"), "a.json"), two);
        assert_eq!(one.to_bytes("x.npy"), b"abc");
        assert_eq!(Input::from_bytes(b"abc", "x.npy"), one);
        let odd = Input::from_bytes(b"=== file ../x\nA\n=== file b\nB\n=== file b\nC", "m");
        assert_eq!(odd, Input::with_parts(vec![("b", b"C".to_vec())]));
        assert!(hexdump(&[0x41; 20], 16).contains("4 more bytes"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
