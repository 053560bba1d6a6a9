use bae_llm::*;
use candle_core::{Device, Tensor};
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
    println!("load {:?} cfg {:?}", t0.elapsed(), m.config());
    for s in ["The capital of France is", "Berlin is the capital of"] {
        let ids = tok.encode(s);
        println!("{s:?} -> {ids:?}");
        let t = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let lg = m.logits(&t).unwrap();
        let last = lg
            .get(0)
            .unwrap()
            .get(ids.len() - 1)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut idx: Vec<usize> = (0..last.len()).collect();
        idx.sort_by(|a, b| last[*b].partial_cmp(&last[*a]).unwrap());
        for &i in &idx[..5] {
            println!("  {:?} {}", tok.decode(&[i as u32]), last[i]);
        }
    }
    let ids: Vec<u32> = (0..8 * 128)
        .map(|i| (i * 37 % 49000) as u32 + 100)
        .collect();
    let t = Tensor::from_vec(ids, (8, 128), &Device::Cpu).unwrap();
    for _ in 0..3 {
        let t0 = std::time::Instant::now();
        let hs = m.hidden_states(&t, &[15]).unwrap();
        let el = t0.elapsed().as_secs_f64();
        println!("block15: {:.0} tok/s {:?}", 1024.0 / el, hs[0].dims());
    }
}
