//! An extract folder as training rows: read as one matrix, split train/validation on a document
//! boundary (the store's own checks are tested in bae-io).

use bae_io::extract_store::{Manifest, OutDtype, RunSettings, ShardEntry, TextPos};
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use std::path::Path;

fn write_shard(path: &Path, rows: &[(i32, Vec<f32>)]) {
    let d = rows[0].1.len();
    let act: Vec<u8> = rows
        .iter()
        .flat_map(|(_, r)| r.iter().flat_map(|v| v.to_le_bytes()))
        .collect();
    let docs: Vec<u8> = rows.iter().flat_map(|(doc, _)| doc.to_le_bytes()).collect();
    let tensors = vec![
        (
            "activations",
            TensorView::new(Dtype::F32, vec![rows.len(), d], &act).unwrap(),
        ),
        (
            "doc_ids",
            TensorView::new(Dtype::I32, vec![rows.len()], &docs).unwrap(),
        ),
    ];
    safetensors::serialize_to_file(tensors, None, path).unwrap();
}

#[test]
fn store_reads_shards_in_order_and_splits_by_document() {
    let dir = tempfile::tempdir().unwrap();
    let block = dir.path().join("block3");
    std::fs::create_dir(&block).unwrap();
    // 10 rows, d = 2, value = global row index; documents: rows 0-3 doc 0, 4-8 doc 1, 9 doc 2
    let doc_of = |i: usize| {
        if i < 4 {
            0
        } else if i < 9 {
            1
        } else {
            2
        }
    };
    let row = |i: usize| (doc_of(i), vec![i as f32, -(i as f32)]);
    write_shard(
        &block.join("shard-00000.safetensors"),
        &(0..6).map(row).collect::<Vec<_>>(),
    );
    write_shard(
        &block.join("shard-00001.safetensors"),
        &(6..10).map(row).collect::<Vec<_>>(),
    );
    manifest(&[6, 4]).write(&block).unwrap();

    // the extract root with a single block folder opens too
    let store = bae_train::store::open_source(dir.path()).unwrap();
    assert_eq!(store.n_rows(), 10);
    assert_eq!(store.dim(), 2);
    let mut out = vec![0f32; 3 * 2];
    store.gather(&[9, 0, 6], &mut out).unwrap();
    assert_eq!(out, vec![9.0, -9.0, 0.0, -0.0, 6.0, -6.0]);
    // 20% of 10 rows -> row split at 8, inside doc 1 -> moved back to its first row, 4
    assert_eq!(store.train_rows(0.2), 4);
    assert_eq!(store.train_rows(0.0), 10);
    assert!(
        store
            .gather(&[10], &mut out[..2])
            .unwrap_err()
            .contains("out of range")
    );

    assert_eq!(store.describe(), block.display().to_string());

    // the untyped minimal manifest of earlier tests is no extract manifest
    let minimal =
        serde_json::json!({"d": 2, "shards": [{"file": "shard-00000.safetensors", "rows": 6}]});
    std::fs::write(block.join("manifest.json"), minimal.to_string()).unwrap();
    let e = bae_train::store::open_source(&block).err().unwrap();
    assert!(
        e.contains("manifest.json") && e.contains("missing field"),
        "{e}"
    );
}

/// The manifest `bae extract` would write for shards of these row counts (d = 2, f32).
fn manifest(rows: &[usize]) -> Manifest {
    let settings = RunSettings {
        model: "toy.gguf".into(),
        source: vec!["corpus".into()],
        window: 8,
        dtype: OutDtype::F32,
        keep_sink: false,
        shard_rows: 8,
        batch: 1,
    };
    let total: usize = rows.iter().sum();
    let shards = rows
        .iter()
        .enumerate()
        .map(|(k, &rows)| ShardEntry {
            file: format!("shard-{k:05}.safetensors"),
            rows,
            first_doc: 0,
            last_doc: 2,
            end: TextPos::default(),
            candidates_end: total as u64,
            dropped_outliers: 0,
        })
        .collect();
    Manifest {
        model: settings.model.clone(),
        block: 3,
        d: 2,
        dtype: OutDtype::F32,
        window: 8,
        tokens_total: total as u64,
        shards,
        complete: true,
        exhausted: true,
        tokens_budget: total as u64,
        docs: vec!["a".into(), "b".into(), "c".into()],
        tokenizer: "test".into(),
        settings,
    }
}
