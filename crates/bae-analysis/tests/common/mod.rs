//! Shared helpers of the analysis tests: the real model and corpus (or a skip), small extracts, a
//! seeded generator.
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
    let args = bae_llm::ExtractArgs {
        model: model.to_path_buf(),
        text: vec![corpus.to_path_buf()],
        blocks: vec![block],
        window: 64,
        tokens,
        out: out.to_path_buf(),
        quiet: true,
        ..bae_llm::ExtractArgs::default()
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
