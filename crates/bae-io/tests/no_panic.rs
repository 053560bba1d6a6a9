//! Deterministic robustness check: every truncation and many single-byte mutations of small
//! valid files, plus pseudo-random garbage, must give `Ok` or `Err`, never a panic.

mod common;

use bae_io::{ActivationFile, DType, load_tensors, load_tensors_f64, write_activations};
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

#[derive(Default, Debug)]
struct Outcomes {
    ok: usize,
    err: usize,
}

/// Runs every reader on `path`; panics (failing the test) if any reader panics.
fn exercise(path: &Path, what: &str, outcomes: &mut Outcomes) {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut all_ok = true;
        match ActivationFile::open(path) {
            Ok(f) => {
                let (n, d) = (f.n_rows(), f.dim());
                let mut buf = vec![0.0f32; n * d];
                all_ok &= f.read_rows(0, n, &mut buf).is_ok();
                let mut two = vec![0.0f32; 2 * d];
                all_ok &= f.gather_rows(&[n - 1, 0], &mut two).is_ok();
                all_ok &= f.check_finite().is_ok();
                // One line per error, always.
                if let Err(e) = f.read_rows(n, 1, &mut buf[..d]) {
                    assert!(!e.to_string().contains('\n'));
                }
            }
            Err(e) => {
                assert!(!e.to_string().contains('\n'), "{e}");
                all_ok = false;
            }
        }
        all_ok &= load_tensors(path).is_ok();
        all_ok &= load_tensors_f64(path).is_ok();
        all_ok
    }));
    match result {
        Ok(true) => outcomes.ok += 1,
        Ok(false) => outcomes.err += 1,
        Err(_) => panic!("a reader panicked on {what}"),
    }
}

/// Feeds every truncation and byte mutation of `valid` (stored under `name`) to the readers.
fn mutate_all(valid: &[u8], name: &str) -> Outcomes {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let mut outcomes = Outcomes::default();
    for len in 0..valid.len() {
        std::fs::write(&path, &valid[..len]).unwrap();
        exercise(
            &path,
            &format!("{name} truncated to {len} bytes"),
            &mut outcomes,
        );
    }
    let mut bytes = valid.to_vec();
    for i in 0..valid.len() {
        let orig = valid[i];
        let mut replacements = vec![
            0x00,
            0xff,
            orig ^ 0x01,
            orig ^ 0x80,
            orig.wrapping_add(1),
            b'9',
        ];
        replacements.retain(|&b| b != orig);
        replacements.dedup();
        for b in replacements {
            bytes[i] = b;
            std::fs::write(&path, &bytes).unwrap();
            exercise(
                &path,
                &format!("{name} with byte {i} set to {b:#04x}"),
                &mut outcomes,
            );
        }
        bytes[i] = orig;
    }
    outcomes
}

fn small_matrix() -> Vec<f32> {
    vec![0.5, -1.25, 3.0, f32::MIN_POSITIVE, 100.0, -0.0]
}

#[test]
fn mutated_safetensors_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.safetensors");
    let mut meta = BTreeMap::new();
    meta.insert("k".to_string(), "v".to_string());
    write_activations(&p, 3, 2, &small_matrix(), DType::F16, &meta).unwrap();
    let valid = std::fs::read(&p).unwrap();
    assert!(valid.len() < 300, "keep the fuzz input small");
    let out = mutate_all(&valid, "m.safetensors");
    // Some mutations (e.g. in data bytes or metadata text) keep the file valid.
    assert!(out.ok > 0 && out.err > 0, "{out:?}");
}

#[test]
fn mutated_npy_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.npy");
    write_activations(&p, 3, 2, &small_matrix(), DType::F32, &BTreeMap::new()).unwrap();
    let valid = std::fs::read(&p).unwrap();
    assert_eq!(valid.len(), 128 + 24);
    let out = mutate_all(&valid, "m.npy");
    assert!(out.err > 0, "{out:?}");
    // load_tensors always rejects .npy, so "ok" is never counted; opening must still work for
    // padding mutations, which is covered by exercise() not panicking.
}

#[test]
fn mutated_tensor_file_never_panics() {
    let t = |name| {
        (
            name,
            safetensors::Dtype::F32,
            vec![2],
            common::f32_bytes(&[1.0, 2.0]),
        )
    };
    let valid = common::st_file(&[t("a"), t("bb")]);
    assert!(valid.len() < 300);
    let out = mutate_all(&valid, "t.safetensors");
    assert!(out.err > 0, "{out:?}");
}

#[test]
fn random_garbage_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let prefixes: [&[u8]; 4] = [
        b"",
        b"\x93NUMPY\x01\x00",
        b"\x93NUMPY\x01\x00\x40\x00{'descr': '<f4', ",
        b"\x20\x00\x00\x00\x00\x00\x00\x00{\"activations\": {\"dtype\": \"F32\", ",
    ];
    let mut outcomes = Outcomes::default();
    for round in 0..400 {
        let prefix = prefixes[round % prefixes.len()];
        let len = (next() % 200) as usize;
        let mut bytes = prefix.to_vec();
        bytes.extend((0..len).map(|_| next() as u8));
        let name = ["g.npy", "g.safetensors", "g.bin"][round % 3];
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        exercise(&path, &format!("garbage round {round}"), &mut outcomes);
    }
    assert_eq!(
        outcomes.ok, 0,
        "random bytes should never form a valid file"
    );
}
