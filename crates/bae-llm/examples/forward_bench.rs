//! Times the forward pass alone (8 windows x 128 tokens) up to blocks 8, 15 and 29, and prints
//! the model's next-token guess for a prompt as a sanity check.
//!
//! cargo run --release -p bae-llm --example forward_bench
use std::path::Path;
use std::time::Instant;

use bae_llm::{Gguf, LoadOptions, Model, Tokenizer};

fn main() -> Result<(), bae_llm::LlmError> {
    let mut g = Gguf::open(Path::new(bae_llm::DEFAULT_MODEL))?;
    let tok = Tokenizer::from_gguf(&g)?;
    let t0 = Instant::now();
    let model = Model::from_gguf(
        &mut g,
        LoadOptions {
            n_layers: None,
            head: true,
        },
    )?;
    println!(
        "loaded and dequantised in {:.2} s",
        t0.elapsed().as_secs_f64()
    );

    let prompt = "The capital of France is";
    let ids = tok.encode(prompt);
    let v = model.config().vocab_size;
    let logits = model.logits(&ids, 1, ids.len())?;
    let last = &logits[(ids.len() - 1) * v..];
    let best = (0..v)
        .max_by(|&a, &b| last[a].total_cmp(&last[b]))
        .unwrap_or(0);
    println!("{prompt:?} -> {:?}", tok.decode(&[best as u32]));

    let (batch, seq) = (8, 128);
    let ids: Vec<u32> = (0..batch * seq)
        .map(|i| (i * 7919 % 40_000) as u32 + 100)
        .collect();
    for block in [8, 15, 29] {
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            model.hidden_states(&ids, batch, seq, &[block])?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "block {block:2}: {:.0} tokens/s (best of 3)",
            (batch * seq) as f64 / best
        );
    }
    Ok(())
}
