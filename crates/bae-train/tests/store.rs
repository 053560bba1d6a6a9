//! The shard store reads an extract folder as one matrix and splits train/validation on a document boundary.

use bae_train::RowSource;
use bae_train::store::ShardStore;
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
    let manifest = serde_json::json!({
        "d": 2,
        "shards": [
            {"file": "shard-00000.safetensors", "rows": 6},
            {"file": "shard-00001.safetensors", "rows": 4},
        ],
    });
    std::fs::write(block.join("manifest.json"), manifest.to_string()).unwrap();

    // the extract root with a single block folder opens too
    let store = ShardStore::open(dir.path()).unwrap();
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

    // a manifest that disagrees with its shard is refused with the file named
    let bad =
        serde_json::json!({"d": 3, "shards": [{"file": "shard-00000.safetensors", "rows": 6}]});
    std::fs::write(block.join("manifest.json"), bad.to_string()).unwrap();
    let e = ShardStore::open(&block).err().unwrap();
    assert!(
        e.contains("shard-00000.safetensors") && e.contains("manifest says"),
        "{e}"
    );
}
