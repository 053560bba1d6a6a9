//! A pre-scan of the GGUF metadata that candle's `Content::read` trusts.
//!
//! candle divides by `general.alignment` after reading the metadata, so a file declaring an
//! alignment of 0 makes it panic. This scan walks the same bytes the same way (magic, version,
//! counts, then each key/value pair) without allocating, and reports the alignment candle would
//! use. It is lenient: anything it cannot follow (an unknown type, a truncated file) ends the
//! scan with `None`, and candle, which reads the same bytes, then fails with its own error.

use std::io::{Read, Seek, SeekFrom};

/// Deeper nesting than this ends the scan (candle refuses far shallower arrays of arrays).
const MAX_DEPTH: usize = 64;

/// The alignment candle will divide by, if the metadata sets one it reads as an integer
/// (`u8`/`u16`/`u32`, or a non-negative `i8`/`i16`/`i32`); `None` if the key is absent, has another
/// type, or the scan stopped before reaching it.
pub fn declared_alignment<R: Read + Seek>(r: &mut R) -> Option<u64> {
    let start = r.stream_position().ok()?;
    let end = r.seek(SeekFrom::End(0)).ok()?;
    r.seek(SeekFrom::Start(start)).ok()?;
    let found = Scan { r, pos: start, end }.header();
    r.seek(SeekFrom::Start(start)).ok()?;
    found.flatten()
}

/// A reader with its position and the file length, so skips are checked without system calls
/// (`seek_relative` keeps a `BufReader`'s buffer).
struct Scan<'a, R> {
    r: &'a mut R,
    pos: u64,
    end: u64,
}

impl<R: Read + Seek> Scan<'_, R> {
    fn header(&mut self) -> Option<Option<u64>> {
        let magic = self.u32_le()?;
        if magic != 0x4655_4747 && magic != 0x4747_5546 {
            return None;
        }
        let wide = match self.u32_le()? {
            1 => false,
            2 | 3 => true,
            _ => return None,
        };
        let _tensor_count = self.length(wide)?;
        let kv_count = self.length(wide)?;
        let mut alignment = None;
        for _ in 0..kv_count {
            let key_len = self.length(wide)?;
            let is_alignment = if key_len == KEY.len() as u64 {
                let mut key = [0u8; KEY.len()];
                self.read(&mut key)?;
                &key == KEY
            } else {
                self.skip(key_len)?;
                false
            };
            let ty = self.u32_le()?;
            if is_alignment {
                // the last occurrence wins, as in candle's map
                alignment = Some(self.integer(ty, wide)?);
            } else {
                self.skip_value(ty, wide, 0)?;
            }
        }
        Some(alignment.flatten())
    }

    /// Reads a value of type `ty`, returning it if candle would take it as the alignment.
    fn integer(&mut self, ty: u32, wide: bool) -> Option<Option<u64>> {
        let mut b = [0u8; 4];
        let v = match ty {
            0 | 1 => {
                self.read(&mut b[..1])?;
                if ty == 0 {
                    Some(b[0] as u64)
                } else {
                    u64::try_from(b[0] as i8).ok()
                }
            }
            2 | 3 => {
                self.read(&mut b[..2])?;
                let v = [b[0], b[1]];
                if ty == 2 {
                    Some(u16::from_le_bytes(v) as u64)
                } else {
                    u64::try_from(i16::from_le_bytes(v)).ok()
                }
            }
            4 => Some(self.u32_le()? as u64),
            5 => u64::try_from(self.u32_le()? as i32).ok(),
            _ => {
                self.skip_value(ty, wide, 0)?;
                None
            }
        };
        Some(v)
    }

    fn skip_value(&mut self, ty: u32, wide: bool, depth: usize) -> Option<()> {
        if let Some(n) = scalar_size(ty) {
            return self.skip(n);
        }
        match ty {
            8 => {
                let n = self.length(wide)?;
                self.skip(n)
            }
            9 if depth < MAX_DEPTH => {
                let elem = self.u32_le()?;
                let len = self.length(wide)?;
                match scalar_size(elem) {
                    Some(n) => self.skip(len.checked_mul(n)?),
                    None => {
                        // each element reads a length prefix, so the end of the file stops this
                        for _ in 0..len {
                            self.skip_value(elem, wide, depth + 1)?;
                        }
                        Some(())
                    }
                }
            }
            _ => None,
        }
    }

    /// Moves `n` bytes forward, failing past the end of the file.
    fn skip(&mut self, n: u64) -> Option<()> {
        let to = self.pos.checked_add(n).filter(|&to| to <= self.end)?;
        self.r.seek_relative(i64::try_from(n).ok()?).ok()?;
        self.pos = to;
        Some(())
    }

    fn read(&mut self, buf: &mut [u8]) -> Option<()> {
        self.r.read_exact(buf).ok()?;
        self.pos += buf.len() as u64;
        Some(())
    }

    fn u32_le(&mut self) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read(&mut b)?;
        Some(u32::from_le_bytes(b))
    }

    fn length(&mut self, wide: bool) -> Option<u64> {
        if wide {
            let mut b = [0u8; 8];
            self.read(&mut b)?;
            Some(u64::from_le_bytes(b))
        } else {
            self.u32_le().map(u64::from)
        }
    }
}

const KEY: &[u8; 17] = b"general.alignment";

/// Bytes of a fixed-size scalar type, `None` for strings, arrays and unknown types.
fn scalar_size(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn header(kvs: &[(&str, u32, Vec<u8>)]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0x4655_4747u32.to_le_bytes());
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
        for (k, ty, v) in kvs {
            b.extend_from_slice(&(k.len() as u64).to_le_bytes());
            b.extend_from_slice(k.as_bytes());
            b.extend_from_slice(&ty.to_le_bytes());
            b.extend_from_slice(v);
        }
        b
    }

    fn string(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn scan_of(b: Vec<u8>) -> Option<u64> {
        let mut c = Cursor::new(b);
        c.set_position(0);
        let a = declared_alignment(&mut c);
        assert_eq!(c.position(), 0, "the reader is put back where it was");
        a
    }

    #[test]
    fn finds_the_alignment_after_other_values() {
        // an array of strings, then a u32 alignment of 0
        let mut arr = 8u32.to_le_bytes().to_vec();
        arr.extend_from_slice(&2u64.to_le_bytes());
        arr.extend(string("ab"));
        arr.extend(string(""));
        let b = header(&[
            ("general.name", 8, string("x")),
            ("tokenizer.ggml.tokens", 9, arr),
            ("general.alignment", 4, 0u32.to_le_bytes().to_vec()),
        ]);
        assert_eq!(scan_of(b), Some(0));
    }

    #[test]
    fn last_occurrence_wins_and_types_follow_candle() {
        let b = header(&[
            ("general.alignment", 4, 0u32.to_le_bytes().to_vec()),
            ("general.alignment", 2, 64u16.to_le_bytes().to_vec()),
        ]);
        assert_eq!(scan_of(b), Some(64));
        // a negative i32 or a u64 is not taken as the alignment by candle (default 32)
        let b = header(&[("general.alignment", 5, (-4i32).to_le_bytes().to_vec())]);
        assert_eq!(scan_of(b), None);
        let b = header(&[("general.alignment", 10, 0u64.to_le_bytes().to_vec())]);
        assert_eq!(scan_of(b), None);
    }

    #[test]
    fn truncated_or_unknown_ends_the_scan() {
        let mut b = header(&[("general.alignment", 4, 0u32.to_le_bytes().to_vec())]);
        b.truncate(b.len() - 1);
        assert_eq!(scan_of(b), None);
        let b = header(&[
            ("k", 99, vec![]),
            ("general.alignment", 4, 0u32.to_le_bytes().to_vec()),
        ]);
        assert_eq!(scan_of(b), None);
        // an array claiming more elements than the file holds
        let mut arr = 4u32.to_le_bytes().to_vec();
        arr.extend_from_slice(&u64::MAX.to_le_bytes());
        let b = header(&[
            ("a", 9, arr),
            ("general.alignment", 4, 0u32.to_le_bytes().to_vec()),
        ]);
        assert_eq!(scan_of(b), None);
    }

    #[test]
    fn open_refuses_alignment_zero_with_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        let b = header(&[
            ("general.architecture", 8, string("llama")),
            ("general.alignment", 4, 0u32.to_le_bytes().to_vec()),
        ]);
        std::fs::write(&path, b).unwrap();
        let e = crate::Gguf::open(&path)
            .err()
            .expect("alignment 0 is refused");
        let m = e.to_string();
        assert!(
            m.contains("m.gguf") && m.contains("general.alignment is 0"),
            "{m}"
        );
        assert!(!m.contains('\n'), "{m}");
        // the same file with alignment 64 opens
        let b = header(&[("general.alignment", 4, 64u32.to_le_bytes().to_vec())]);
        std::fs::write(&path, b).unwrap();
        assert!(crate::Gguf::open(&path).is_ok());
    }
}
