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

use candle_core::Tensor;

use crate::error::{LlmError, Result};
use crate::gguf::{Gguf, LlamaConfig};
use crate::kernels::{AttnShape, MatRef, attention, matmul, rms_norm, rope_inplace, swiglu};

/// One transformer layer's weights as row-major f32, transposed to [in, out] and fused.
struct Layer {
    attn_norm: Vec<f32>,
    /// Q, K and V projections side by side: [d_model, (n_heads + 2 n_kv) * head_dim]
    wqkv: Vec<f32>,
    /// [d_model, d_model]
    wo: Vec<f32>,
    ffn_norm: Vec<f32>,
    /// gate and up projections side by side: [d_model, 2 d_ffn]
    w_gate_up: Vec<f32>,
    /// [d_ffn, d_model]
    w_down: Vec<f32>,
}

/// Final norm and output projection, only loaded for logits.
struct Head {
    norm: Vec<f32>,
    /// [vocab, d_model]; None when tied to the token embedding
    weight: Option<Vec<f32>>,
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
    /// [vocab, d_model]
    embed: Vec<f32>,
    layers: Vec<Layer>,
    head: Option<Head>,
    /// cos and sin tables [context_length, head_dim / 2]
    rope_cos: Vec<f32>,
    rope_sin: Vec<f32>,
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

/// Weights stacked along the output axis, then transposed to [in, out] row-major.
fn fuse_transposed(parts: &[&Tensor]) -> Result<Vec<f32>> {
    to_vec(&Tensor::cat(parts, 0)?.t()?.contiguous()?)
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
        let embed_t = g.tensor_f32("token_embd.weight", &[cfg.vocab_size, d])?;
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
                attn_norm: to_vec(&w("attn_norm.weight", &[d])?)?,
                ffn_norm: to_vec(&w("ffn_norm.weight", &[d])?)?,
                wqkv: fuse_transposed(&[&q, &k, &v])?,
                wo: fuse_transposed(&[&o])?,
                w_gate_up: fuse_transposed(&[&gate, &up])?,
                w_down: fuse_transposed(&[&down])?,
            });
        }
        let head = if opts.head {
            let norm = to_vec(&g.tensor_f32("output_norm.weight", &[d])?)?;
            let weight = if g.has_tensor("output.weight") {
                Some(to_vec(
                    &g.tensor_f32("output.weight", &[cfg.vocab_size, d])?,
                )?)
            } else {
                None // tied to the token embedding
            };
            Some(Head { norm, weight })
        } else {
            None
        };
        let (rope_cos, rope_sin) = rope_tables(cfg.context_length.max(1), hd, cfg.rope_theta);
        Ok(Self {
            embed: to_vec(&embed_t)?,
            cfg,
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

    /// Residual stream after each requested block, for `batch` windows of `seq` tokens.
    ///
    /// `ids` is [batch * seq] row-major. Returns one [batch * seq * d_model] vector per entry of
    /// `blocks`, in the same order. Stops after the deepest requested block.
    pub fn hidden_states(
        &self,
        ids: &[u32],
        batch: usize,
        seq: usize,
        blocks: &[usize],
    ) -> Result<Vec<Vec<f32>>> {
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
        let mut out: Vec<Option<Vec<f32>>> = vec![None; blocks.len()];
        let mut fwd = Forward::new(self, ids, batch, seq)?;
        for li in 0..=deepest {
            fwd.layer(&self.layers[li]);
            for (slot, &blk) in out.iter_mut().zip(blocks) {
                if blk == li {
                    *slot = Some(fwd.x.clone());
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|o| o.expect("every block filled"))
            .collect())
    }

    /// Logits [batch * seq * vocab] after all layers, the final norm and the output head.
    pub fn logits(&self, ids: &[u32], batch: usize, seq: usize) -> Result<Vec<f32>> {
        self.check_full()?;
        let mut fwd = Forward::new(self, ids, batch, seq)?;
        for layer in &self.layers {
            fwd.layer(layer);
        }
        Ok(self.head_logits(&mut fwd))
    }

    /// Continues a forward pass from a given residual stream: `residual` [batch * seq * d_model]
    /// stands for the stream after block `block` (as [`Self::hidden_states`] returns it, possibly
    /// edited: an autoencoder's reconstruction spliced in, zeros, a mean), and runs layers
    /// `block + 1..`, the final norm and the head. Returns the logits [batch * seq * vocab].
    /// With the unchanged residual this is exactly [`Self::logits`] (same operations, same order).
    pub fn logits_from_block(
        &self,
        residual: Vec<f32>,
        batch: usize,
        seq: usize,
        block: usize,
    ) -> Result<Vec<f32>> {
        self.check_full()?;
        if block >= self.layers.len() {
            return Err(LlmError::Input(format!(
                "block {block} out of range: the model has {} blocks",
                self.layers.len()
            )));
        }
        let mut fwd = Forward::from_residual(self, residual, batch, seq)?;
        for layer in &self.layers[block + 1..] {
            fwd.layer(layer);
        }
        Ok(self.head_logits(&mut fwd))
    }

    fn check_full(&self) -> Result<()> {
        if self.head.is_none() {
            return Err(LlmError::Input(
                "model loaded without its output head".into(),
            ));
        }
        if self.layers.len() != self.cfg.n_layers {
            return Err(LlmError::Input("logits need all layers loaded".into()));
        }
        Ok(())
    }

    /// Final norm and output projection of the stream in `fwd`.
    fn head_logits(&self, fwd: &mut Forward<'_>) -> Vec<f32> {
        let head = self.head.as_ref().expect("checked by check_full");
        let (m, d, v) = (fwd.batch * fwd.seq, self.cfg.d_model, self.cfg.vocab_size);
        rms_norm(&fwd.x, &head.norm, self.cfg.rms_eps, &mut fwd.h);
        let w = head.weight.as_deref().unwrap_or(&self.embed);
        let mut logits = vec![0f32; m * v];
        let th = rayon::current_num_threads();
        matmul(
            &mut logits,
            v,
            MatRef::new(&fwd.h, m, d),
            MatRef::new(w, v, d).t(),
            false,
            th,
        );
        logits
    }
}

/// Buffers of one forward pass; `x` is the residual stream [batch * seq, d_model].
struct Forward<'m> {
    model: &'m Model,
    batch: usize,
    seq: usize,
    x: Vec<f32>,
    h: Vec<f32>,
    qkv: Vec<f32>,
    attn: Vec<f32>,
    gu: Vec<f32>,
    act: Vec<f32>,
}

impl<'m> Forward<'m> {
    fn new(model: &'m Model, ids: &[u32], batch: usize, seq: usize) -> Result<Self> {
        let c = &model.cfg;
        let m = batch * seq;
        if ids.len() != m || m == 0 {
            return Err(LlmError::Input(format!(
                "expected {batch} x {seq} token ids, got {}",
                ids.len()
            )));
        }
        if seq > c.context_length {
            return Err(LlmError::Input(format!(
                "sequence of {seq} tokens exceeds the context length {}",
                c.context_length
            )));
        }
        let d = c.d_model;
        let mut x = Vec::with_capacity(m * d);
        for &id in ids {
            let id = id as usize;
            if id >= c.vocab_size {
                return Err(LlmError::Input(format!(
                    "token id {id} outside the vocabulary"
                )));
            }
            x.extend_from_slice(&model.embed[id * d..(id + 1) * d]);
        }
        Self::from_residual(model, x, batch, seq)
    }

    /// Buffers for a pass whose residual stream starts as `x` [batch * seq, d_model].
    fn from_residual(model: &'m Model, x: Vec<f32>, batch: usize, seq: usize) -> Result<Self> {
        let c = &model.cfg;
        let m = batch * seq;
        let d = c.d_model;
        if m == 0 || x.len() != m * d {
            return Err(LlmError::Input(format!(
                "expected a residual stream of {batch} x {seq} x {d} values, got {}",
                x.len()
            )));
        }
        if seq > c.context_length {
            return Err(LlmError::Input(format!(
                "sequence of {seq} tokens exceeds the context length {}",
                c.context_length
            )));
        }
        let qkv_w = (c.n_heads + 2 * c.n_kv_heads) * c.head_dim;
        Ok(Self {
            model,
            batch,
            seq,
            x,
            h: vec![0.0; m * d],
            qkv: vec![0.0; m * qkv_w],
            attn: vec![0.0; m * c.n_heads * c.head_dim],
            gu: vec![0.0; m * 2 * c.d_ffn],
            act: vec![0.0; m * c.d_ffn],
        })
    }

    /// x <- x + attn(norm(x)); x <- x + mlp(norm(x))
    fn layer(&mut self, l: &Layer) {
        let c = &self.model.cfg;
        let (m, d, f) = (self.batch * self.seq, c.d_model, c.d_ffn);
        let (nh, nkv, hd) = (c.n_heads, c.n_kv_heads, c.head_dim);
        let qkv_w = (nh + 2 * nkv) * hd;
        let th = rayon::current_num_threads();
        let (cos, sin) = (&self.model.rope_cos, &self.model.rope_sin);

        rms_norm(&self.x, &l.attn_norm, c.rms_eps, &mut self.h);
        matmul(
            &mut self.qkv,
            qkv_w,
            MatRef::new(&self.h, m, d),
            MatRef::new(&l.wqkv, d, qkv_w),
            false,
            th,
        );
        // Q gets the 1/sqrt(head_dim) score scale folded in (a power of two here: exact).
        let q_scale = 1.0 / (hd as f32).sqrt();
        rope_inplace(&mut self.qkv, qkv_w, self.seq, 0, nh, hd, cos, sin, q_scale);
        rope_inplace(
            &mut self.qkv,
            qkv_w,
            self.seq,
            nh * hd,
            nkv,
            hd,
            cos,
            sin,
            1.0,
        );
        let shape = AttnShape {
            batch: self.batch,
            seq: self.seq,
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: hd,
        };
        attention(&self.qkv, &shape, &mut self.attn);
        matmul(
            &mut self.x,
            d,
            MatRef::new(&self.attn, m, nh * hd),
            MatRef::new(&l.wo, nh * hd, d),
            true,
            th,
        );

        rms_norm(&self.x, &l.ffn_norm, c.rms_eps, &mut self.h);
        matmul(
            &mut self.gu,
            2 * f,
            MatRef::new(&self.h, m, d),
            MatRef::new(&l.w_gate_up, d, 2 * f),
            false,
            th,
        );
        swiglu(&self.gu, f, &mut self.act);
        matmul(
            &mut self.x,
            d,
            MatRef::new(&self.act, m, f),
            MatRef::new(&l.w_down, f, d),
            true,
            th,
        );
    }
}

/// cos/sin tables for interleaved RoPE: angle(p, i) = p * theta^(-2i / head_dim).
fn rope_tables(n_pos: usize, head_dim: usize, theta: f32) -> (Vec<f32>, Vec<f32>) {
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
    (cos, sin)
}
