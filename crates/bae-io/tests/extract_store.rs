//! The extract store: today's manifests read through the typed definition and write back byte for
//! byte; the shard store reads a folder as one matrix; every malformed manifest or shard is
//! refused in one line naming the file.

mod common;

use bae_io::ShardStore;
use bae_io::extract_store::{
    Manifest, OutDtype, RunSettings, ShardEntry, TextPos, block_dir, read_columns,
};
use common::{assert_err, f32_bytes, st_file};
use safetensors::Dtype;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// `manifest.json` of a real `bae extract --blocks 15 --tokens 200000` (the main job's extract).
const REAL_MANIFEST: &[u8] = include_bytes!("fixtures/extract_manifest_block15.json");

#[test]
fn a_real_manifest_reads_typed_and_writes_back_byte_for_byte() {
    let path = Path::new("fixtures/extract_manifest_block15.json");
    let m = Manifest::from_slice(path, REAL_MANIFEST).unwrap();
    assert_eq!(
        (m.block, m.d, m.dtype, m.window),
        (15, 576, OutDtype::F16, 128)
    );
    assert_eq!(m.model, "SmolLM2-135M-Instruct.Q4_1.gguf");
    assert_eq!(m.shards.len(), 4);
    assert_eq!(m.tokens_total, 199_995);
    assert_eq!(m.shards[1].file, "shard-00001.safetensors");
    assert_eq!(
        m.shards[3].end,
        TextPos {
            doc: 42,
            token: 5746
        }
    );
    assert_eq!(m.shards[3].candidates_end, 200_000);
    assert_eq!(m.docs.len(), 43);
    assert!(m.complete && !m.exhausted);
    assert_eq!(m.settings.source, ["data/corpus/sotu"]);
    assert_eq!((m.settings.shard_rows, m.settings.batch), (65_536, 8));
    // the format is unchanged: serialising the typed manifest gives the same bytes
    assert_eq!(
        String::from_utf8(m.to_bytes()).unwrap(),
        String::from_utf8(REAL_MANIFEST.to_vec()).unwrap()
    );
    // and Manifest::write / read round-trip through a folder
    let dir = tempfile::tempdir().unwrap();
    m.write(dir.path()).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("manifest.json")).unwrap(),
        REAL_MANIFEST
    );
    assert_eq!(Manifest::read(dir.path()).unwrap(), Some(m));
    assert_eq!(Manifest::read(&dir.path().join("none")).unwrap(), None);
}

/// A complete manifest of shards (file, rows) of width `d`, as `bae extract` writes one.
fn manifest(d: usize, shards: &[(&str, usize)]) -> Manifest {
    let settings = RunSettings {
        model: "toy.gguf".into(),
        source: vec!["corpus".into()],
        window: 64,
        dtype: OutDtype::F32,
        keep_sink: false,
        shard_rows: 64,
        batch: 8,
    };
    let mut candidates = 0;
    let entries = shards
        .iter()
        .enumerate()
        .map(|(k, &(file, rows))| {
            candidates += rows as u64;
            ShardEntry {
                file: file.into(),
                rows,
                first_doc: k as i64,
                last_doc: k as i64 + 1,
                end: TextPos {
                    doc: k + 1,
                    token: 3,
                },
                candidates_end: candidates,
                dropped_outliers: 0,
            }
        })
        .collect();
    Manifest {
        model: settings.model.clone(),
        block: 3,
        d,
        dtype: OutDtype::F32,
        window: 64,
        tokens_total: candidates,
        shards: entries,
        complete: true,
        exhausted: true,
        tokens_budget: candidates,
        docs: vec!["a.txt".into(), "b.txt".into(), "c.txt".into()],
        tokenizer: "byte-level BPE".into(),
        settings,
    }
}

fn i32_bytes(v: impl IntoIterator<Item = i32>) -> Vec<u8> {
    v.into_iter().flat_map(i32::to_le_bytes).collect()
}

/// A shard of rows `first..first + rows` of width `d` (value of row i = [i, -i, ...]), document
/// = row / 4, token = 7 row, position = row mod 4; `columns` false leaves out token ids and positions.
fn shard(first: usize, rows: usize, d: usize, columns: bool) -> Vec<u8> {
    let r = first as i32..(first + rows) as i32;
    let act: Vec<f32> = r
        .clone()
        .flat_map(|i| (0..d).map(move |j| if j % 2 == 0 { i as f32 } else { -i as f32 }))
        .collect();
    let mut tensors = vec![
        ("activations", Dtype::F32, vec![rows, d], f32_bytes(&act)),
        (
            "doc_ids",
            Dtype::I32,
            vec![rows],
            i32_bytes(r.clone().map(|i| i / 4)),
        ),
    ];
    if columns {
        tensors.push((
            "token_ids",
            Dtype::I32,
            vec![rows],
            i32_bytes(r.clone().map(|i| 7 * i)),
        ));
        tensors.push((
            "positions",
            Dtype::I32,
            vec![rows],
            i32_bytes(r.map(|i| i % 4)),
        ));
    }
    st_file(&tensors)
}

/// `root/block3` with two shards (6 + 4 rows, d = 2) and their manifest; returns the block folder.
fn folder(root: &Path) -> PathBuf {
    let block = root.join("block3");
    std::fs::create_dir_all(&block).unwrap();
    std::fs::write(block.join("shard-00000.safetensors"), shard(0, 6, 2, true)).unwrap();
    std::fs::write(block.join("shard-00001.safetensors"), shard(6, 4, 2, false)).unwrap();
    two_shards().write(&block).unwrap();
    block
}

/// The manifest of [`folder`].
fn two_shards() -> Manifest {
    manifest(
        2,
        &[
            ("shard-00000.safetensors", 6),
            ("shard-00001.safetensors", 4),
        ],
    )
}

#[test]
fn store_reads_the_shards_in_order_as_one_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let block = folder(dir.path());
    // the extract root with a single block folder opens too
    let store = ShardStore::open(dir.path()).unwrap();
    assert_eq!(store.dir(), block);
    assert_eq!((store.n_rows(), store.dim()), (10, 2));
    assert_eq!(store.manifest(), &Manifest::read(&block).unwrap().unwrap());
    let mut out = vec![0f32; 3 * 2];
    store.gather_rows(&[9, 0, 6], &mut out).unwrap();
    assert_eq!(out, vec![9.0, -9.0, 0.0, -0.0, 6.0, -6.0]);
    assert_eq!(
        (0..10).map(|r| store.doc_of(r)).collect::<Vec<_>>(),
        [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    );
    assert_eq!(store.token_of(5), Some((35, 1)));
    assert_eq!(store.token_of(6), None, "the second shard has no token ids");
    assert_err(
        store.gather_rows(&[10], &mut out[..2]),
        &block,
        &["row 10 out of range"],
    );
    assert_err(
        store.gather_rows(&[0], &mut out),
        &block,
        &["output buffer"],
    );
    // an empty shard listed in the manifest is skipped without opening its file
    let mut m = Manifest::read(&block).unwrap().unwrap();
    m.shards.insert(
        0,
        ShardEntry {
            file: "absent.safetensors".into(),
            rows: 0,
            ..m.shards[0].clone()
        },
    );
    m.write(&block).unwrap();
    assert_eq!(ShardStore::open(&block).unwrap().n_rows(), 10);
    let [docs, toks, pos] = read_columns(&block.join("shard-00001.safetensors"), 4).unwrap();
    assert_eq!((docs, toks.len(), pos.len()), (vec![1, 1, 2, 2], 0, 0));
}

/// Writes `m` (a JSON value) as the manifest of the folder and opens it; the error must name the
/// manifest in one line and contain every phrase.
fn refused(block: &Path, m: &Value, phrases: &[&str]) -> String {
    std::fs::write(block.join("manifest.json"), m.to_string()).unwrap();
    let path = block.join("manifest.json");
    let msg = assert_err(ShardStore::open(block), &path, phrases);
    // the typed manifest reader (the extractor's and the analysis commands') says the same
    assert_eq!(Manifest::read(block).unwrap_err().to_string(), msg);
    msg
}

/// The manifest of [`folder`] as a JSON value, to break.
fn good_json() -> Value {
    serde_json::to_value(two_shards()).unwrap()
}

#[test]
fn a_manifest_without_a_field_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let block = folder(dir.path());
    for field in ["tokens_total", "model", "docs", "settings", "d", "shards"] {
        let mut m = good_json();
        m.as_object_mut().unwrap().remove(field);
        refused(
            &block,
            &m,
            &[
                "not a valid extract manifest",
                &format!("missing field `{field}`"),
            ],
        );
    }
    // inside a shard entry and inside the settings too
    let mut m = good_json();
    m["shards"][1]
        .as_object_mut()
        .unwrap()
        .remove("candidates_end");
    refused(&block, &m, &["missing field `candidates_end`"]);
    let mut m = good_json();
    m["settings"].as_object_mut().unwrap().remove("keep_sink");
    refused(&block, &m, &["missing field `keep_sink`"]);
    // the minimal manifest the untyped reader accepted
    let m = json!({"d": 2, "shards": [{"file": "shard-00000.safetensors", "rows": 6}]});
    refused(&block, &m, &["missing field"]);
}

#[test]
fn a_manifest_field_of_the_wrong_type_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let block = folder(dir.path());
    let cases: [(&str, Value); 6] = [
        ("complete", json!("yes")),
        ("dtype", json!("f64")),
        ("d", json!(-2)),
        ("docs", json!("a.txt")),
        ("tokens_budget", json!(1.5)),
        ("shards", json!({"file": "shard-00000.safetensors"})),
    ];
    for (field, value) in cases {
        let mut m = good_json();
        m[field] = value;
        refused(&block, &m, &["not a valid extract manifest"]);
    }
    let mut m = good_json();
    m["shards"][0]["rows"] = json!("6");
    refused(&block, &m, &["invalid type"]);
    let mut m = good_json();
    m["shards"][0]["end"]["doc"] = json!(null);
    refused(&block, &m, &["invalid type"]);
    refused(&block, &json!([1, 2]), &["invalid type"]);
    std::fs::write(block.join("manifest.json"), b"{\"d\": 2,\n").unwrap();
    assert_err(
        ShardStore::open(&block),
        &block.join("manifest.json"),
        &["not a valid extract manifest", "EOF"],
    );
}

#[test]
fn a_shard_name_that_leaves_the_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let block = folder(dir.path());
    // a real shard one level up, reachable through `..`
    std::fs::write(dir.path().join("up.safetensors"), shard(0, 6, 2, true)).unwrap();
    for name in [
        "../up.safetensors",
        "..",
        "..\\up.safetensors",
        "shard..x",
        "/etc/passwd",
        "",
        "a\nb",
    ] {
        let mut m = good_json();
        m["shards"][0]["file"] = json!(name);
        let msg = refused(&block, &m, &["is not a plain file name in the folder"]);
        assert!(msg.contains(&format!("{name:?}")), "{msg}");
    }
}

#[test]
fn a_manifest_that_disagrees_with_its_shards_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let block = folder(dir.path());
    let shard0 = block.join("shard-00000.safetensors");
    // tokens_total is not the sum of the rows
    let mut m = good_json();
    m["tokens_total"] = json!(11);
    refused(
        &block,
        &m,
        &["tokens_total is 11 but the shards hold 10 rows"],
    );
    // width and row count against the shard's activations: the shard is named
    for (d, rows) in [(3, 6), (2, 5)] {
        let mut m = good_json();
        m["d"] = json!(d);
        m["shards"][0]["rows"] = json!(rows);
        m["tokens_total"] = json!(rows + 4);
        std::fs::write(block.join("manifest.json"), m.to_string()).unwrap();
        assert_err(
            ShardStore::open(&block),
            &shard0,
            &[&format!("holds [6, 2], the manifest says [{rows}, {d}]")],
        );
    }
    // a listed shard that is missing
    let mut m = good_json();
    m["shards"][1]["file"] = json!("shard-00007.safetensors");
    std::fs::write(block.join("manifest.json"), m.to_string()).unwrap();
    assert_err(
        ShardStore::open(&block),
        &block.join("shard-00007.safetensors"),
        &[],
    );
    // columns: doc_ids required, every column [rows]
    let good = std::fs::read(&shard0).unwrap();
    let act = f32_bytes(&[0.5; 12]);
    let without_docs = st_file(&[("activations", Dtype::F32, vec![6, 2], act.clone())]);
    let short_docs = st_file(&[
        ("activations", Dtype::F32, vec![6, 2], act.clone()),
        ("doc_ids", Dtype::I32, vec![5], i32_bytes(0..5)),
    ]);
    let long_positions = st_file(&[
        ("activations", Dtype::F32, vec![6, 2], act),
        ("doc_ids", Dtype::I32, vec![6], i32_bytes(0..6)),
        ("positions", Dtype::I32, vec![7], i32_bytes(0..7)),
    ]);
    std::fs::write(block.join("manifest.json"), good_json().to_string()).unwrap();
    for (bytes, phrase) in [
        (without_docs, "missing tensor doc_ids"),
        (short_docs, "doc_ids has shape [5], expected [6]"),
        (long_positions, "positions has shape [7], expected [6]"),
    ] {
        std::fs::write(&shard0, bytes).unwrap();
        assert_err(ShardStore::open(&block), &shard0, &[phrase]);
    }
    std::fs::write(&shard0, good).unwrap();
    // no rows at all
    let mut m = good_json();
    for s in m["shards"].as_array_mut().unwrap() {
        s["rows"] = json!(0);
    }
    m["tokens_total"] = json!(0);
    std::fs::write(block.join("manifest.json"), m.to_string()).unwrap();
    assert_err(
        ShardStore::open(&block),
        &block.join("manifest.json"),
        &["the manifest lists no rows"],
    );
}

#[test]
fn a_folder_without_exactly_one_block_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert_err(
        block_dir(dir.path()),
        dir.path(),
        &["no manifest.json here or in a block folder (not a bae extract folder)"],
    );
    assert_err(
        ShardStore::open(&dir.path().join("absent")),
        &dir.path().join("absent"),
        &["cannot read folder"],
    );
    folder(dir.path());
    let b8 = dir.path().join("block8");
    std::fs::create_dir(&b8).unwrap();
    std::fs::copy(
        dir.path().join("block3/manifest.json"),
        b8.join("manifest.json"),
    )
    .unwrap();
    assert_err(
        ShardStore::open(dir.path()),
        dir.path(),
        &[
            "holds several blocks",
            "block3",
            "block8",
            "pass one of them",
        ],
    );
}
