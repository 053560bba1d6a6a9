//! The deterministic part of the fuzzing, in `cargo test` (no libFuzzer): every in-code seed,
//! every file of the seed corpus (`crates/bae-fuzz/corpus/<target>/`, past crash inputs
//! included: `regress-*`, `known-*`) and every crash input libFuzzer found since
//! (`fuzz/regressions/<target>/`) is replayed through the same target functions the fuzz
//! targets call, in its one-buffer form as libFuzzer hands it over; none may panic or break the
//! contract. A few hundred structure-aware mutations per target (fixed seeds) run as well.

use bae_fuzz::input::Input;
use bae_fuzz::targets::{TARGETS, Verdict};
use bae_fuzz::{Runner, structured_mutation};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The files of a folder, recursively, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else if p.extension().is_none_or(|x| x != "py" && x != "md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn check(target: &str, what: &str, v: &Verdict) {
    if let Verdict::Bug(m) = v {
        panic!("{target}: {what}: contract violation: {m}");
    }
}

/// (in-code seeds accepted, corpus files replayed, accepted)
fn replay(target: &'static str) -> (usize, usize, usize) {
    let mut r = Runner::new(target).unwrap();
    let main = r.target().main_file();
    let seeds = r.target().seeds();
    assert!(!seeds.is_empty(), "{target}: no seeds");
    let mut seeds_ok = 0;
    for (i, s) in seeds.iter().enumerate() {
        let bytes = s.to_bytes(main);
        assert_eq!(&Input::from_bytes(&bytes, main), s, "{target}: seed {i}");
        let v = r.exec_bytes(&bytes);
        check(target, &format!("seed {i}"), &v);
        seeds_ok += matches!(v, Verdict::Ok(_)) as usize;
    }
    let (mut n, mut ok) = (0, 0);
    for dir in [
        root().join("crates/bae-fuzz/corpus").join(target),
        root().join("fuzz/regressions").join(target),
    ] {
        for f in files(&dir) {
            let v = r.exec_bytes(&std::fs::read(&f).unwrap());
            check(target, &f.display().to_string(), &v);
            n += 1;
            ok += matches!(v, Verdict::Ok(_)) as usize;
        }
    }
    // the structure-aware mutator on every seed, fixed seeds
    for (i, s) in seeds.iter().enumerate() {
        let mut data = s.to_bytes(main);
        for k in 0..40u32 {
            if let Some(m) = structured_mutation(target, &data, 1 << 16, k * 7919 + i as u32) {
                assert!(m.len() <= 1 << 16);
                let v = r.exec_bytes(&m);
                check(target, &format!("mutation {k} of seed {i}"), &v);
                data = m;
            }
        }
    }
    (seeds_ok, n, ok)
}

#[test]
fn every_target_replays_its_seeds_corpus_and_crash_inputs() {
    for &t in TARGETS {
        let (seeds_ok, n, ok) = replay(t);
        eprintln!("{t}: {seeds_ok} seeds accepted; {n} corpus files replayed, {ok} accepted");
        assert!(seeds_ok > 0, "{t}: no seed is accepted");
        if t != "codes" {
            assert!(n > 0, "{t}: empty corpus");
        }
    }
}

#[test]
fn every_in_code_seed_is_in_the_committed_corpus() {
    // libFuzzer starts from the files; `BAE_FUZZ_WRITE_SEEDS=1` (re)writes them.
    let write = std::env::var_os("BAE_FUZZ_WRITE_SEEDS").is_some();
    for &t in TARGETS {
        let r = Runner::new(t).unwrap();
        let main = r.target().main_file();
        let dir = root().join("crates/bae-fuzz/corpus").join(t);
        let ext = match Path::new(main).extension() {
            Some(_) if r.target().seeds().iter().all(|s| s.parts.len() == 1) => Path::new(main)
                .extension()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            _ => "files".into(),
        };
        for (i, s) in r.target().seeds().iter().enumerate() {
            let path = dir.join(format!("seed-{i:02}.{ext}"));
            let bytes = s.to_bytes(main);
            if write {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            }
            assert_eq!(
                std::fs::read(&path).ok().as_ref(),
                Some(&bytes),
                "{}: missing or stale (BAE_FUZZ_WRITE_SEEDS=1 cargo test -p bae-fuzz rewrites it)",
                path.display()
            );
        }
    }
}

#[test]
fn a_contract_violation_panics_in_the_fuzz_body() {
    // the libFuzzer body turns a Bug verdict into a panic (the crash libFuzzer saves); an
    // accepted and a refused input pass
    let r = Runner::new("npy").unwrap();
    let seed = r.target().seeds()[0].to_bytes("input.npy");
    bae_fuzz::fuzz_one("npy", &seed);
    bae_fuzz::fuzz_one("npy", b"not a file");
    let err = bae_fuzz::targets::not_one_line("two\nlines");
    assert!(err.is_some());
}
