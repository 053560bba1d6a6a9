//! Shared test helpers: locating the real model (or skipping) and writing a toy llama GGUF.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

/// The real model, or None (after printing SKIP) when it is absent and REQUIRE_MODEL is not 1.
pub fn real_model(test: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = root.join(bae_llm::DEFAULT_MODEL);
    if p.exists() {
        return Some(p);
    }
    if std::env::var("REQUIRE_MODEL").as_deref() == Ok("1") {
        panic!(
            "{test}: model {} missing and REQUIRE_MODEL=1; run bash scripts/setup.sh",
            p.display()
        );
    }
    eprintln!(
        "SKIP {test}: {} not found (run bash scripts/setup.sh)",
        p.display()
    );
    None
}

/// Corpus folder of the real setup, if present.
pub fn real_corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/corpus/sotu");
    p.exists().then_some(p)
}

/// A tensor of the toy model: name, shape (GGUF/candle order), values.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

pub struct Toy {
    pub n_layers: usize,
    pub d: usize,
    pub f: usize,
    pub n_heads: usize,
    pub n_kv: usize,
    pub ctx: usize,
    pub theta: f32,
    pub eps: f32,
}

impl Default for Toy {
    fn default() -> Self {
        Self {
            n_layers: 3,
            d: 32,
            f: 48,
            n_heads: 4,
            n_kv: 2,
            ctx: 64,
            theta: 10_000.0,
            eps: 1e-5,
        }
    }
}

/// Deterministic pseudo-random numbers in [-scale, scale).
pub fn noise(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Vocabulary: the 256 byte tokens plus a few merges ("Ġt", "he", "Ġthe").
pub fn toy_vocab() -> (Vec<String>, Vec<String>) {
    let mut tokens: Vec<String> = vec!["<|endoftext|>".into()];
    tokens.extend(
        bae_llm::tokenizer::byte_to_char()
            .iter()
            .map(|c| c.to_string()),
    );
    tokens.extend(["Ġt", "he", "Ġthe"].map(String::from));
    let merges = ["Ġ t", "h e", "Ġt he"].map(String::from).to_vec();
    (tokens, merges)
}

/// Writes a random llama-architecture GGUF (F32 weights) and returns its tensors by name.
pub fn write_toy_gguf(path: &Path, toy: &Toy) -> Vec<NamedTensor> {
    write_toy_gguf_with(path, toy, "llama", &[])
}

/// Like [`write_toy_gguf`] with another architecture name and some tensors left out.
pub fn write_toy_gguf_with(path: &Path, toy: &Toy, arch: &str, omit: &[&str]) -> Vec<NamedTensor> {
    let (tokens, merges) = toy_vocab();
    let vocab = tokens.len();
    let hd = toy.d / toy.n_heads;
    let (d, f, kv) = (toy.d, toy.f, toy.n_kv * hd);
    let mut specs: Vec<(String, Vec<usize>, f32)> =
        vec![("token_embd.weight".into(), vec![vocab, d], 1.0)];
    for i in 0..toy.n_layers {
        let l = |n: &str| format!("blk.{i}.{n}");
        specs.push((l("attn_norm.weight"), vec![d], 1.0));
        specs.push((l("attn_q.weight"), vec![d, d], 0.3));
        specs.push((l("attn_k.weight"), vec![kv, d], 0.3));
        specs.push((l("attn_v.weight"), vec![kv, d], 0.3));
        specs.push((l("attn_output.weight"), vec![d, d], 0.3));
        specs.push((l("ffn_norm.weight"), vec![d], 1.0));
        specs.push((l("ffn_gate.weight"), vec![f, d], 0.3));
        specs.push((l("ffn_up.weight"), vec![f, d], 0.3));
        specs.push((l("ffn_down.weight"), vec![d, f], 0.3));
    }
    specs.push(("output_norm.weight".into(), vec![d], 1.0));
    let mut out = Vec::new();
    let mut qts = Vec::new();
    for (k, (name, shape, scale)) in specs.into_iter().enumerate() {
        if omit.contains(&name.as_str()) {
            continue;
        }
        let mut v = noise(shape.iter().product(), k as u64 + 1, scale);
        if name.ends_with("norm.weight") {
            v.iter_mut().for_each(|x| *x = 1.0 + 0.2 * *x);
        }
        let t = Tensor::from_vec(v.clone(), shape.clone(), &Device::Cpu).unwrap();
        qts.push((name.clone(), QTensor::quantize(&t, GgmlDType::F32).unwrap()));
        out.push((name, shape, v));
    }
    let strs = |v: &[String]| Value::Array(v.iter().map(|s| Value::String(s.clone())).collect());
    let meta: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String(arch.into())),
        ("llama.block_count", Value::U32(toy.n_layers as u32)),
        ("llama.embedding_length", Value::U32(d as u32)),
        ("llama.feed_forward_length", Value::U32(f as u32)),
        ("llama.attention.head_count", Value::U32(toy.n_heads as u32)),
        ("llama.attention.head_count_kv", Value::U32(toy.n_kv as u32)),
        (
            "llama.attention.layer_norm_rms_epsilon",
            Value::F32(toy.eps),
        ),
        ("llama.rope.freq_base", Value::F32(toy.theta)),
        ("llama.context_length", Value::U32(toy.ctx as u32)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("smollm".into())),
        ("tokenizer.ggml.tokens", strs(&tokens)),
        ("tokenizer.ggml.merges", strs(&merges)),
        ("tokenizer.ggml.eos_token_id", Value::U32(0)),
    ];
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = qts.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut file, &meta_refs, &t_refs).unwrap();
    out
}
