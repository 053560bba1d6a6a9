//! The code store (`bae encode`'s output): round trips of ragged code widths and shard sizes,
//! resume after the last complete shard, refusal of other settings, and truncated or corrupted
//! shards and indexes giving one-line errors naming the file (never a panic).

use bae_io::code_store::{CODES_INDEX, CodeIds, CodeStore, CodeStoreWriter, words_per_row};
use serde_json::{Value, json};
use std::path::Path;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `rows` random codes of `n_bits` bits (padding bits 0) and ids.
fn random_rows(rng: &mut Rng, rows: usize, n_bits: usize, first: usize) -> (Vec<u64>, CodeIds) {
    let wpr = words_per_row(n_bits);
    let mut words: Vec<u64> = (0..rows * wpr).map(|_| rng.next()).collect();
    if !n_bits.is_multiple_of(64) {
        let mask = (1u64 << (n_bits % 64)) - 1;
        for r in 0..rows {
            words[r * wpr + wpr - 1] &= mask;
        }
    }
    let ids = CodeIds {
        token_ids: (0..rows).map(|i| (first + i) as i32 * 3 - 1).collect(),
        doc_ids: (0..rows).map(|i| ((first + i) / 5) as i32).collect(),
        positions: (0..rows).map(|i| ((first + i) % 64) as i32).collect(),
    };
    (words, ids)
}

fn settings(tag: &str) -> Value {
    json!({"run": "runs/test", "model": "SmolLM2", "tag": tag, "source_rows": [0, 100]})
}

/// Writes shards of `sizes` rows; returns all words and ids written.
fn write(dir: &Path, n_bits: usize, sizes: &[usize], seed: u64) -> (Vec<u64>, CodeIds) {
    let mut rng = Rng(seed);
    let mut w = CodeStoreWriter::open(dir, n_bits, settings("a")).unwrap();
    let mut all = Vec::new();
    let mut ids = CodeIds::default();
    for &s in sizes {
        let (words, i) = random_rows(&mut rng, s, n_bits, w.n_rows());
        w.append(&words, &i).unwrap();
        all.extend_from_slice(&words);
        ids.token_ids.extend(i.token_ids);
        ids.doc_ids.extend(i.doc_ids);
        ids.positions.extend(i.positions);
    }
    w.finish().unwrap();
    (all, ids)
}

#[test]
fn round_trip_ragged_widths_and_shards() {
    for (n_bits, sizes) in [
        (70usize, vec![1usize, 7, 64, 3]),
        (128, vec![5, 5, 1]),
        (2304, vec![13, 2, 40]),
        (1, vec![9]),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("codes");
        let (words, ids) = write(&dir, n_bits, &sizes, n_bits as u64 + 1);
        let st = CodeStore::open(&dir).unwrap();
        let n: usize = sizes.iter().sum();
        let wpr = words_per_row(n_bits);
        assert_eq!(st.n_rows(), n);
        assert_eq!(st.n_bits(), n_bits);
        assert!(st.is_complete());
        assert_eq!(st.shards().len(), sizes.len());
        assert_eq!(st.rows(0..n).unwrap(), words);
        assert_eq!(st.ids(0..n).unwrap(), ids);
        // every sub-range, across shard boundaries
        for a in (0..n).step_by(3) {
            for b in (a..=n).step_by(5) {
                assert_eq!(st.rows(a..b).unwrap(), words[a * wpr..b * wpr], "{a}..{b}");
                let i = st.ids(a..b).unwrap();
                assert_eq!(i.token_ids, ids.token_ids[a..b]);
                assert_eq!(i.doc_ids, ids.doc_ids[a..b]);
                assert_eq!(i.positions, ids.positions[a..b]);
            }
        }
        let e = st.rows(0..n + 1).unwrap_err().to_string();
        assert!(e.contains("out of range") && e.contains(CODES_INDEX), "{e}");
    }
}

#[test]
fn reopen_appends_after_the_last_shard_and_ends_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let (words, ids) = write(&whole, 70, &[4, 6, 3], 9);

    let part = tmp.path().join("part");
    let mut rng = Rng(9);
    {
        let mut w = CodeStoreWriter::open(&part, 70, settings("a")).unwrap();
        let (c, i) = random_rows(&mut rng, 4, 70, 0);
        w.append(&c, &i).unwrap();
        // dropped without finish: an interrupted writer
    }
    let st = CodeStore::open(&part).unwrap();
    assert!(!st.is_complete());
    assert_eq!(st.n_rows(), 4);
    let mut w = CodeStoreWriter::open(&part, 70, settings("a")).unwrap();
    assert_eq!(w.resumed_rows(), 4);
    for s in [6, 3] {
        let (c, i) = random_rows(&mut rng, s, 70, w.n_rows());
        w.append(&c, &i).unwrap();
    }
    w.finish().unwrap();
    let e = w.append(&[0, 0], &ids_of(1)).unwrap_err().to_string();
    assert!(e.contains("complete"), "{e}");
    let st = CodeStore::open(&part).unwrap();
    assert_eq!(st.rows(0..13).unwrap(), words);
    assert_eq!(st.ids(0..13).unwrap(), ids);
    for k in 0..3 {
        let name = format!("codes-{k:05}.safetensors");
        assert_eq!(
            std::fs::read(part.join(&name)).unwrap(),
            std::fs::read(whole.join(&name)).unwrap(),
            "{name}"
        );
    }
}

fn ids_of(rows: usize) -> CodeIds {
    CodeIds {
        token_ids: vec![0; rows],
        doc_ids: vec![0; rows],
        positions: vec![0; rows],
    }
}

#[test]
fn other_settings_are_refused_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("codes");
    write(&dir, 128, &[3], 1);
    let e = CodeStoreWriter::open(&dir, 128, settings("b"))
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n'), "{e}");
    assert!(
        e.contains(CODES_INDEX) && e.contains("tag") && e.contains("other settings"),
        "{e}"
    );
    let e = CodeStoreWriter::open(&dir, 64, settings("a"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("128-bit") && e.contains("64-bit"), "{e}");
    // bad appends: wrong lengths, padding bits set
    let dir2 = tmp.path().join("c2");
    let mut w = CodeStoreWriter::open(&dir2, 70, settings("a")).unwrap();
    let e = w.append(&[0, 0, 0], &ids_of(1)).unwrap_err().to_string();
    assert!(e.contains("code words"), "{e}");
    let e = w.append(&[0, 1 << 6], &ids_of(1)).unwrap_err().to_string();
    assert!(e.contains("past bit 70"), "{e}");
}

/// Open + read everything; Ok(()) or the error line.
fn read_all(dir: &Path) -> Result<(), String> {
    let st = CodeStore::open(dir).map_err(|e| e.to_string())?;
    st.rows(0..st.n_rows()).map_err(|e| e.to_string())?;
    st.ids(0..st.n_rows()).map_err(|e| e.to_string())?;
    Ok(())
}

#[test]
fn truncated_or_corrupted_shards_fail_in_one_line_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("codes");
    write(&dir, 70, &[5, 4], 3);
    let shard = dir.join("codes-00001.safetensors");
    let good = std::fs::read(&shard).unwrap();
    assert!(read_all(&dir).is_ok());
    for len in 0..good.len() {
        std::fs::write(&shard, &good[..len]).unwrap();
        let e = read_all(&dir).unwrap_err();
        assert!(
            !e.contains('\n') && e.contains("codes-00001.safetensors"),
            "{len}: {e}"
        );
    }
    for pos in 0..good.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = good.clone();
            b[pos] ^= flip;
            std::fs::write(&shard, &b).unwrap();
            let e = read_all(&dir).unwrap_err();
            assert!(
                !e.contains('\n') && e.contains("codes-00001.safetensors"),
                "{pos}: {e}"
            );
        }
    }
    std::fs::write(&shard, &good).unwrap();
    std::fs::remove_file(&shard).unwrap();
    let e = read_all(&dir).unwrap_err();
    assert!(e.contains("codes-00001.safetensors"), "{e}");
}

#[test]
fn truncated_or_corrupted_index_never_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("codes");
    write(&dir, 70, &[5, 4], 3);
    let index = dir.join(CODES_INDEX);
    let good = std::fs::read(&index).unwrap();
    // the line names the index or the shard file (its name as the damaged index says it)
    let prefix = dir.display().to_string();
    let one_line = |e: &str| {
        assert!(!e.contains('\n'), "{e}");
        assert!(e.starts_with(&prefix), "{e}");
    };
    for len in 0..good.len() - 1 {
        std::fs::write(&index, &good[..len]).unwrap();
        let e = read_all(&dir).unwrap_err();
        one_line(&e);
    }
    let mut failed = 0;
    for pos in 0..good.len() {
        for flip in [0x01u8, 0x20, 0xff] {
            let mut b = good.clone();
            b[pos] ^= flip;
            std::fs::write(&index, &b).unwrap();
            // a flip inside a settings string can leave a valid index; all else must fail cleanly
            if let Err(e) = read_all(&dir) {
                one_line(&e);
                failed += 1;
            }
        }
    }
    assert!(
        failed > good.len(),
        "{failed} of {} flips failed",
        3 * good.len()
    );
    // a hand-edited index that lies about shapes
    let mut v: Value = serde_json::from_slice(&good).unwrap();
    v["shards"][1]["rows"] = json!(5);
    v["n_rows"] = json!(10);
    std::fs::write(&index, serde_json::to_vec(&v).unwrap()).unwrap();
    let e = read_all(&dir).unwrap_err();
    one_line(&e);
    std::fs::remove_file(&index).unwrap();
    let e = CodeStore::open(&dir).unwrap_err().to_string();
    assert!(e.contains("not a `bae encode` folder"), "{e}");
}
