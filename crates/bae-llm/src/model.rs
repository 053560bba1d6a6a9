//! Llama forward pass written for this crate, on candle tensors (CPU, f32).
//!
//! Block convention: "block b" is the residual stream *after* transformer layer b (0-based), i.e.
//! after layers 0..=b. Block 15 of SmolLM2-135M is the output of its 16th layer; block 29 the last.
//! (HF `output_hidden_states[b + 1]`; `hidden_states[0]` is the embedding and has no block index.)
//!
//! RoPE: llama.cpp's converter permutes the rows of Q and K so that each rotary pair is two
//! *adjacent* channels (GPT-J style, `rope_i` in candle) instead of HF's two halves. Applying
//! interleaved RoPE to the GGUF weights is therefore the same computation as HF's rotate-half on
//! the original weights; the attention scores and everything after them are identical.

use std::path::Path;

use candle_core::{D, DType, Device, Tensor};

use crate::error::{LlmError, Result};
use crate::gguf::{Gguf, LlamaConfig};

/// One transformer layer's weights, stored transposed ([in, out]) and fused where possible.
struct Layer {
    attn_norm: Tensor,
    /// Q, K and V projections side by side: [d_model, (n_heads + 2 n_kv) * head_dim]
    wqkv: Tensor,
    /// [d_model, d_model]
    wo: Tensor,
    ffn_norm: Tensor,
    /// gate and up projections side by side: [d_model, 2 d_ffn]
    w_gate_up: Tensor,
    /// [d_ffn, d_model]
    w_down: Tensor,
}

/// Final norm and output projection (the head), only loaded for logits.
struct Head {
    norm: Tensor,
    /// [vocab, d_model]; the token embedding when the model ties them
    weight: Tensor,
}

/// What to load: fewer layers load faster and use less memory when only early blocks are wanted.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Load layers 0..n_layers only (None = all).
    pub n_layers: Option<usize>,
    /// Load the final norm and output head (needed for logits).
    pub head: bool,
}

pub struct Model {
    cfg: LlamaConfig,
    embed: Tensor,
    layers: Vec<Layer>,
    head: Option<Head>,
    /// cos and sin tables [context_length, head_dim / 2]
    rope_cos: Tensor,
    rope_sin: Tensor,
}

impl Model {
    /// Loads the model from a GGUF file, dequantising weights to f32.
    pub fn load(path: &Path, opts: LoadOptions) -> Result<Self> {
        let mut g = Gguf::open(path)?;
        Self::from_gguf(&mut g, opts)
    }

    pub fn from_gguf(g: &mut Gguf, opts: LoadOptions) -> Result<Self> {
        let cfg = g.llama_config()?;
        let n_load = opts.n_layers.unwrap_or(cfg.n_layers).min(cfg.n_layers);
        let (d, f, hd) = (cfg.d_model, cfg.d_ffn, cfg.head_dim);
        let kv = cfg.n_kv_heads * hd;
        let embed = g.tensor_f32("token_embd.weight", &[cfg.vocab_size, d])?;
        let mut layers = Vec::with_capacity(n_load);
        for i in 0..n_load {
            let mut w =
                |name: &str, shape: &[usize]| g.tensor_f32(&format!("blk.{i}.{name}"), shape);
            let q = w("attn_q.weight", &[d, d])?;
            let k = w("attn_k.weight", &[kv, d])?;
            let v = w("attn_v.weight", &[kv, d])?;
            let o = w("attn_output.weight", &[d, d])?;
            let gate = w("ffn_gate.weight", &[f, d])?;
            let up = w("ffn_up.weight", &[f, d])?;
            let down = w("ffn_down.weight", &[d, f])?;
            layers.push(Layer {
                attn_norm: w("attn_norm.weight", &[d])?,
                ffn_norm: w("ffn_norm.weight", &[d])?,
                wqkv: Tensor::cat(&[&q, &k, &v], 0)?.t()?.contiguous()?,
                wo: o.t()?.contiguous()?,
                w_gate_up: Tensor::cat(&[&gate, &up], 0)?.t()?.contiguous()?,
                w_down: down.t()?.contiguous()?,
            });
        }
        let head = if opts.head {
            let norm = g.tensor_f32("output_norm.weight", &[d])?;
            let weight = if g.has_tensor("output.weight") {
                g.tensor_f32("output.weight", &[cfg.vocab_size, d])?
            } else {
                embed.clone() // tied embeddings
            };
            Some(Head { norm, weight })
        } else {
            None
        };
        let (rope_cos, rope_sin) = rope_tables(cfg.context_length.max(1), hd, cfg.rope_theta)?;
        Ok(Self {
            cfg,
            embed,
            layers,
            head,
            rope_cos,
            rope_sin,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// Number of layers loaded (blocks 0..loaded_layers() can be requested).
    pub fn loaded_layers(&self) -> usize {
        self.layers.len()
    }

    /// Residual stream after each requested block, for a batch of equal-length windows.
    ///
    /// `ids` is [batch, seq] (u32). Returns one [batch, seq, d_model] f32 tensor per entry of
    /// `blocks`, in the same order. Stops after the deepest requested block.
    pub fn hidden_states(&self, ids: &Tensor, blocks: &[usize]) -> Result<Vec<Tensor>> {
        let deepest = *blocks
            .iter()
            .max()
            .ok_or_else(|| LlmError::Input("no block requested".into()))?;
        if deepest >= self.layers.len() {
            return Err(LlmError::Input(format!(
                "block {deepest} out of range: {} blocks loaded (0..{})",
                self.layers.len(),
                self.layers.len().saturating_sub(1)
            )));
        }
        let (b, t) = ids.dims2()?;
        let mut out: Vec<Option<Tensor>> = vec![None; blocks.len()];
        let mut x = self.embed_ids(ids)?;
        let mask = causal_mask(t, self.cfg.n_heads / self.cfg.n_kv_heads)?;
        for (li, layer) in self.layers[..=deepest].iter().enumerate() {
            x = self.layer_forward(layer, &x, b, t, &mask)?;
            for (slot, &blk) in out.iter_mut().zip(blocks) {
                if blk == li {
                    *slot = Some(x.reshape((b, t, self.cfg.d_model))?);
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|o| o.expect("every block filled"))
            .collect())
    }

    /// Logits [batch, seq, vocab] after all layers, the final norm and the output head.
    pub fn logits(&self, ids: &Tensor) -> Result<Tensor> {
        let head = self
            .head
            .as_ref()
            .ok_or_else(|| LlmError::Input("model loaded without its output head".into()))?;
        if self.layers.len() != self.cfg.n_layers {
            return Err(LlmError::Input("logits need all layers loaded".into()));
        }
        let (b, t) = ids.dims2()?;
        let mut x = self.embed_ids(ids)?;
        let mask = causal_mask(t, self.cfg.n_heads / self.cfg.n_kv_heads)?;
        for layer in &self.layers {
            x = self.layer_forward(layer, &x, b, t, &mask)?;
        }
        let h = candle_nn::ops::rms_norm(&x, &head.norm, self.cfg.rms_eps)?;
        let logits = h.matmul(&head.weight.t()?)?;
        Ok(logits.reshape((b, t, self.cfg.vocab_size))?)
    }

    /// Token embeddings, flattened to [batch * seq, d_model].
    fn embed_ids(&self, ids: &Tensor) -> Result<Tensor> {
        let flat = ids.flatten_all()?.to_dtype(DType::U32)?;
        if let Some(&max) = flat.to_vec1::<u32>()?.iter().max()
            && max as usize >= self.cfg.vocab_size
        {
            return Err(LlmError::Input(format!(
                "token id {max} outside the vocabulary"
            )));
        }
        Ok(self.embed.index_select(&flat, 0)?)
    }

    /// x: [batch * seq, d_model] -> same shape, after one transformer layer.
    fn layer_forward(
        &self,
        l: &Layer,
        x: &Tensor,
        b: usize,
        t: usize,
        mask: &Tensor,
    ) -> Result<Tensor> {
        let c = &self.cfg;
        let (nh, nkv, hd) = (c.n_heads, c.n_kv_heads, c.head_dim);
        let rep = nh / nkv;

        // Attention: one fused projection, then split heads as [b, heads, t, hd].
        let h = candle_nn::ops::rms_norm(x, &l.attn_norm, c.rms_eps)?;
        let qkv = h
            .matmul(&l.wqkv)?
            .reshape((b, t, nh + 2 * nkv, hd))?
            .transpose(1, 2)?
            .contiguous()?;
        let cos = self.rope_cos.narrow(0, 0, t)?;
        let sin = self.rope_sin.narrow(0, 0, t)?;
        let q = candle_nn::rotary_emb::rope_i(&qkv.narrow(1, 0, nh)?.contiguous()?, &cos, &sin)?;
        let k = candle_nn::rotary_emb::rope_i(&qkv.narrow(1, nh, nkv)?.contiguous()?, &cos, &sin)?;
        let v = qkv.narrow(1, nh + nkv, nkv)?.contiguous()?;
        // Grouped-query attention without copying K/V: query heads h*rep..(h+1)*rep share KV head
        // h, so stack those query heads along the sequence axis: [b, nkv, rep * t, hd].
        let q = (q * (1.0 / (hd as f64).sqrt()))?.reshape((b, nkv, rep * t, hd))?;
        let scores = q.matmul(&k.t()?)?.broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let attn = probs
            .matmul(&v)?
            .reshape((b, nh, t, hd))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * t, nh * hd))?;
        let x = (x + attn.matmul(&l.wo)?)?;

        // SwiGLU MLP: silu(gate) * up, then down.
        let h = candle_nn::ops::rms_norm(&x, &l.ffn_norm, c.rms_eps)?;
        let gu = h.matmul(&l.w_gate_up)?;
        let act = candle_nn::ops::swiglu(&gu)?;
        Ok((x + act.matmul(&l.w_down)?)?)
    }
}

/// cos/sin tables for interleaved RoPE: angle(p, i) = p * theta^(-2i / head_dim).
fn rope_tables(n_pos: usize, head_dim: usize, theta: f32) -> Result<(Tensor, Tensor)> {
    let half = head_dim / 2;
    let mut cos = Vec::with_capacity(n_pos * half);
    let mut sin = Vec::with_capacity(n_pos * half);
    for p in 0..n_pos {
        for i in 0..half {
            let inv_freq = (theta as f64).powf(-((2 * i) as f64) / head_dim as f64);
            let a = p as f64 * inv_freq;
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    Ok((
        Tensor::from_vec(cos, (n_pos, half), &Device::Cpu)?,
        Tensor::from_vec(sin, (n_pos, half), &Device::Cpu)?,
    ))
}

/// Additive causal mask for `rep` query heads stacked along the sequence: [rep * t, t].
fn causal_mask(t: usize, rep: usize) -> Result<Tensor> {
    let mut m = Vec::with_capacity(rep * t * t);
    for r in 0..rep * t {
        let pos = r % t;
        m.extend((0..t).map(|c| if c <= pos { 0.0f32 } else { f32::NEG_INFINITY }));
    }
    Ok(Tensor::from_vec(m, (rep * t, t), &Device::Cpu)?)
}

/// Per-row L2 norms of a [n, d] tensor.
pub fn row_norms(x: &Tensor) -> Result<Vec<f32>> {
    Ok(x.sqr()?.sum(D::Minus1)?.sqrt()?.to_vec1::<f32>()?)
}
