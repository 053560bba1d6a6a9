//! `bae encode`: the stored codes of a tiny trained BAE equal `PackedRows::encode_positive(encode_pre(..))`
//! of the same rows in memory bit for bit (all rows and held-out rows of a two-shard extract folder,
//! with their token / document / position ids), an interrupted encode resumes and ends with identical
//! files, the code size is 1/4 of the f16 activations at d' = 4d, and bad inputs are one line.

mod common;
use bae_analysis::encode::{EncodeOptions, RowSelection, encode, read_codes};
use bae_bits::PackedRows;
use bae_io::ShardStore;
use bae_io::code_store::{CODES_INDEX, CodeStore};
use bae_train::{ArchKind, Device, RowSource, RunOptions, TrainConfig};
use common::Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const D: usize = 16;
const N: usize = 600;
/// rows of the two extract shards
const SHARDS: [usize; 2] = [350, 250];
/// rows per document
const DOC: usize = 50;

/// An extract folder of two shards (activations, doc / token ids, positions) and its manifest.
fn extract(root: &Path) -> PathBuf {
    let mut rng = Rng(11);
    let x: Vec<f32> = (0..N * D)
        .map(|_| (4.0 * rng.next() - 2.0) as f32)
        .collect();
    common::write_extract(root, &x, D, &SHARDS, DOC)
}

/// A tiny BAE (d' = 4d = 64 bits) trained on the extract.
fn train(root: &Path, data: &Path, arch: ArchKind, name: &str) -> PathBuf {
    let out = root.join(name);
    let cfg = TrainConfig {
        data: data.to_path_buf(),
        out: out.clone(),
        arch,
        expand: 4,
        steps: Some(40),
        batch_size: 64,
        eval_batch: 64,
        val_split: 0.25,
        lr: 0.003,
        ..TrainConfig::default()
    };
    let src = ShardStore::open(data).unwrap();
    let opts = RunOptions {
        show_progress: false,
        resume: false,
        stop: None,
        device: Device::Cpu,
    };
    bae_train::train(&cfg, &src, opts)
        .map_err(|e| e.to_string())
        .unwrap();
    out
}

/// Codes and ids of rows `range` computed in memory.
fn expected(
    run: &Path,
    data: &Path,
    range: std::ops::Range<usize>,
) -> (PackedRows, Vec<i32>, Vec<i32>, Vec<i32>) {
    let r = bae_analysis::TrainedRun::open(run).unwrap();
    let src = ShardStore::open(data).unwrap();
    let idx: Vec<usize> = range.clone().collect();
    let mut x = vec![0f32; idx.len() * D];
    src.gather(&idx, &mut x).unwrap();
    let z = bae_ref::encode_pre(&r.params, &x, idx.len());
    let codes = PackedRows::encode_positive(&z, idx.len(), r.d_code());
    let toks = idx
        .iter()
        .map(|&i| src.token_of(i).unwrap().0 as i32)
        .collect();
    let docs = idx.iter().map(|&i| src.doc_of(i) as i32).collect();
    let pos = idx
        .iter()
        .map(|&i| src.token_of(i).unwrap().1 as i32)
        .collect();
    (codes, toks, docs, pos)
}

fn check_store(out: &Path, run: &Path, data: &Path, range: std::ops::Range<usize>) {
    let st = CodeStore::open(out).unwrap();
    assert!(st.is_complete());
    assert_eq!(st.n_rows(), range.len());
    assert_eq!(st.n_bits(), 4 * D);
    let (codes, toks, docs, pos) = expected(run, data, range.clone());
    let got = read_codes(&st, 0..st.n_rows()).unwrap();
    assert_eq!(
        got, codes,
        "codes differ from encode_positive(encode_pre(..))"
    );
    // the codes are not trivial
    let ones = got.words().iter().map(|w| w.count_ones()).sum::<u32>() as usize;
    assert!(
        ones > range.len() && ones < range.len() * 4 * D - range.len(),
        "{ones}"
    );
    let ids = st.ids(0..st.n_rows()).unwrap();
    assert_eq!(ids.token_ids, toks);
    assert_eq!(ids.doc_ids, docs);
    assert_eq!(ids.positions, pos);
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn stored_codes_equal_the_in_memory_encoder_and_resume_is_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let data = extract(root);
    let run = train(root, &data, ArchKind::Bae, "run");

    // all rows, a shard size the batch does not divide, shard boundaries off the extract's
    let all = root.join("codes-all");
    let mut o = EncodeOptions::new(&run, &all);
    o.shard_rows = 128;
    o.batch = 50;
    let mut calls = 0;
    let s = encode(&o, &mut |done, total| {
        assert!(done <= total && total == N);
        calls += 1;
    })
    .unwrap();
    assert!(calls > 12);
    assert!(
        s.complete && s.rows == N && s.shards == 5 && s.n_bits == 64,
        "{s:?}"
    );
    assert_eq!(s.code_bytes, (N * 8) as u64);
    assert_eq!(s.f16_activation_bytes, (N * D * 2) as u64);
    assert!(s.ratio <= 0.25 + 1e-12 && s.ratio >= 0.2, "{s:?}");
    assert!(!s.line().contains('\n'));
    check_store(&all, &run, &data, 0..N);

    // held-out rows: the run's validation split, on a document boundary (rows 450..600)
    let held = root.join("codes-held");
    let mut o2 = EncodeOptions::new(&run, &held);
    o2.rows = RowSelection::HeldOut;
    o2.shard_rows = 64;
    let s = encode(&o2, &mut |_, _| {}).unwrap();
    assert_eq!(s.rows, 150, "{s:?}");
    assert!(s.rows_from.contains("450..600"), "{}", s.rows_from);
    check_store(&held, &run, &data, 450..N);

    // interrupted after two shards, then resumed: identical files
    let part = root.join("codes-part");
    let mut o3 = o.clone();
    o3.out = part.clone();
    o3.stop_after_shards = Some(2);
    let s = encode(&o3, &mut |_, _| {}).unwrap();
    assert!(!s.complete && s.rows == 256 && s.shards == 2, "{s:?}");
    assert!(!CodeStore::open(&part).unwrap().is_complete());
    o3.stop_after_shards = None;
    let s = encode(&o3, &mut |_, _| {}).unwrap();
    assert!(s.complete && s.rows == N && s.rows_resumed == 256, "{s:?}");
    assert_eq!(files(&part), files(&all));

    // deleting the last shard and its index entry (a kill between shard and index) resumes too
    let ipath = part.join(CODES_INDEX);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&ipath).unwrap()).unwrap();
    let last = v["shards"].as_array_mut().unwrap().pop().unwrap();
    std::fs::remove_file(part.join(last["file"].as_str().unwrap())).unwrap();
    v["n_rows"] = serde_json::json!(512);
    v["complete"] = serde_json::json!(false);
    std::fs::write(&ipath, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
    let s = encode(&o3, &mut |_, _| {}).unwrap();
    assert!(s.complete && s.rows_resumed == 512, "{s:?}");
    assert_eq!(files(&part), files(&all));

    // a complete store: encoding again writes nothing and reports the same
    let s = encode(&o3, &mut |_, _| {}).unwrap();
    assert!(s.complete && s.rows_resumed == N, "{s:?}");
    assert_eq!(files(&part), files(&all));

    // other settings on the same folder: one line, nothing changed
    let mut o4 = o3.clone();
    o4.shard_rows = 100;
    let e = encode(&o4, &mut |_, _| {}).unwrap_err();
    assert!(
        !e.contains('\n') && e.contains(CODES_INDEX) && e.contains("shard_rows"),
        "{e}"
    );
    o4.shard_rows = 128;
    o4.rows = RowSelection::HeldOut;
    let e = encode(&o4, &mut |_, _| {}).unwrap_err();
    assert!(e.contains("other settings"), "{e}");
    assert_eq!(files(&part), files(&all));

    // the folder lock: a second writer is refused in one line
    let lock = bae_io::FolderLock::acquire(&held).unwrap();
    let e = encode(&o2, &mut |_, _| {}).unwrap_err();
    assert!(e.contains("another bae process"), "{e}");
    drop(lock);
}

#[test]
fn bad_inputs_are_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let data = extract(root);
    let sae = train(root, &data, ArchKind::ReluL1, "sae");
    let e = encode(&EncodeOptions::new(&sae, &root.join("c")), &mut |_, _| {}).unwrap_err();
    assert!(
        !e.contains('\n') && e.contains("relu-l1") && e.contains("BAE only"),
        "{e}"
    );
    assert!(!root.join("c").exists());
    let e = encode(
        &EncodeOptions::new(&root.join("nope"), &root.join("c")),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(!e.contains('\n') && e.contains("nope"), "{e}");
    let mut o = EncodeOptions::new(&sae, &root.join("c"));
    o.shard_rows = 0;
    assert!(
        encode(&o, &mut |_, _| {})
            .unwrap_err()
            .contains("shard-rows")
    );
}
