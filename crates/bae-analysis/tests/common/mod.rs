//! Shared helpers of the analysis tests: the real model and corpus (or a skip), small extracts
//! (real, or written by hand without the model), a seeded generator.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The real model and corpus of `bash scripts/setup.sh`, or None after printing SKIP (a failure
/// with REQUIRE_MODEL=1, which scripts/test.sh sets).
pub fn real_model_and_corpus(test: &str) -> Option<(PathBuf, PathBuf)> {
    let model = root().join(bae_llm::DEFAULT_MODEL);
    let corpus = root().join("data/corpus/sotu");
    if model.is_file() && corpus.is_dir() {
        return Some((model, corpus));
    }
    assert!(
        std::env::var("REQUIRE_MODEL").as_deref() != Ok("1"),
        "{test}: REQUIRE_MODEL=1 but {} or {} is missing: run bash scripts/setup.sh",
        model.display(),
        corpus.display()
    );
    eprintln!("SKIP {test}: model or corpus missing (bash scripts/setup.sh)");
    None
}

/// A small extract of `block` (window 64) into `out`; returns the block folder.
pub fn small_extract(
    model: &Path,
    corpus: &Path,
    out: &Path,
    block: usize,
    tokens: u64,
) -> PathBuf {
    let args = bae_llm::ExtractOptions {
        model: model.to_path_buf(),
        text: vec![corpus.to_path_buf()],
        blocks: vec![block],
        window: 64,
        tokens,
        out: out.to_path_buf(),
        ..bae_llm::ExtractOptions::default()
    };
    bae_llm::run_extract(&args).expect("extract");
    out.join(format!("block{block}"))
}

/// xorshift64*: U[0, 1) draws, seeded (the synthetic rows and weights of the tests).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-12), self.next());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

fn le_bytes<T: Copy, const K: usize>(v: &[T], f: impl Fn(T) -> [u8; K]) -> Vec<u8> {
    v.iter().flat_map(|&x| f(x)).collect()
}

/// Writes by hand, in the layout `bae extract` writes, the f32 extract folder `root/extract/block3`
/// of the rows `x` [n, d]: shards of `shards` rows each, document id = row / `doc_rows`, token id =
/// 7 row mod 1000, position = row mod `doc_rows`, and a complete manifest. Returns `root/extract`.
pub fn write_extract(
    root: &Path,
    x: &[f32],
    d: usize,
    shards: &[usize],
    doc_rows: usize,
) -> PathBuf {
    use bae_io::extract_store::{Manifest, OutDtype, RunSettings, ShardEntry, TextPos};
    use safetensors::Dtype;
    use safetensors::tensor::TensorView;
    let n = x.len() / d;
    assert_eq!(
        shards.iter().sum::<usize>(),
        n,
        "shard sizes must cover the rows"
    );
    let block = root.join("extract").join("block3");
    std::fs::create_dir_all(&block).unwrap();
    let mut entries = Vec::new();
    let mut first = 0;
    for (k, &rows) in shards.iter().enumerate() {
        let r: Vec<i32> = (first as i32..(first + rows) as i32).collect();
        let column = |f: &dyn Fn(i32) -> i32| {
            le_bytes(
                &r.iter().map(|&i| f(i)).collect::<Vec<_>>(),
                i32::to_le_bytes,
            )
        };
        let act = le_bytes(&x[first * d..(first + rows) * d], f32::to_le_bytes);
        let (docs, toks, pos) = (
            column(&|i| i / doc_rows as i32),
            column(&|i| (i * 7) % 1000),
            column(&|i| i % doc_rows as i32),
        );
        let tensors = vec![
            (
                "activations",
                TensorView::new(Dtype::F32, vec![rows, d], &act).unwrap(),
            ),
            (
                "doc_ids",
                TensorView::new(Dtype::I32, vec![rows], &docs).unwrap(),
            ),
            (
                "token_ids",
                TensorView::new(Dtype::I32, vec![rows], &toks).unwrap(),
            ),
            (
                "positions",
                TensorView::new(Dtype::I32, vec![rows], &pos).unwrap(),
            ),
        ];
        let file = format!("shard-{k:05}.safetensors");
        safetensors::serialize_to_file(tensors, None, &block.join(&file)).unwrap();
        entries.push(ShardEntry {
            file,
            rows,
            first_doc: (first / doc_rows) as i64,
            last_doc: ((first + rows - 1) / doc_rows) as i64,
            end: TextPos {
                doc: (first + rows) / doc_rows,
                token: 0,
            },
            candidates_end: (first + rows) as u64,
            dropped_outliers: 0,
        });
        first += rows;
    }
    let settings = RunSettings {
        model: "SmolLM2-135M-Instruct.Q4_1.gguf".into(),
        source: vec!["corpus".into()],
        window: 64,
        dtype: OutDtype::F32,
        keep_sink: false,
        shard_rows: shards[0],
        batch: 8,
    };
    let manifest = Manifest {
        model: settings.model.clone(),
        block: 3,
        d,
        dtype: OutDtype::F32,
        window: 64,
        tokens_total: n as u64,
        shards: entries,
        complete: true,
        exhausted: true,
        tokens_budget: n as u64,
        docs: (0..n.div_ceil(doc_rows))
            .map(|i| format!("doc{i}"))
            .collect(),
        tokenizer: "test".into(),
        settings,
    };
    manifest.write(&block).unwrap();
    root.join("extract")
}
