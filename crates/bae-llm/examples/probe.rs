use bae_llm::*;
use std::path::Path;
fn main() {
    let p = Path::new("data/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let t0 = std::time::Instant::now();
    let mut g = Gguf::open(p).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let m = Model::from_gguf(
        &mut g,
        LoadOptions {
            n_layers: None,
            head: true,
        },
    )
    .unwrap();
    println!("load {:?}", t0.elapsed());
    let v = m.config().vocab_size;
    for s in ["The capital of France is", "Berlin is the capital of"] {
        let ids = tok.encode(s);
        let lg = m.logits(&ids, 1, ids.len()).unwrap();
        let last = &lg[(ids.len() - 1) * v..];
        let mut idx: Vec<usize> = (0..v).collect();
        idx.sort_by(|a, b| last[*b].partial_cmp(&last[*a]).unwrap());
        for &i in &idx[..3] {
            println!("  {s}: {:?} {}", tok.decode(&[i as u32]), last[i]);
        }
    }
    let ids: Vec<u32> = (0..8 * 128)
        .map(|i| (i * 37 % 49000) as u32 + 100)
        .collect();
    for blk in [15usize, 8, 29] {
        for _ in 0..2 {
            let t0 = std::time::Instant::now();
            let hs = m.hidden_states(&ids, 8, 128, &[blk]).unwrap();
            let el = t0.elapsed().as_secs_f64();
            println!("block{blk}: {:.0} tok/s {}", 1024.0 / el, hs[0].len());
        }
    }
}
