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
use crate::kernels::{
    AttnShape, CachedAttnShape, MatRef, attention, attention_cached, matmul, rms_norm,
    rope_inplace_from, swiglu,
};

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

/// Rotated keys and values of one layer, [len, n_kv_heads * head_dim] each, row-major.
#[derive(Clone, Debug, Default)]
struct LayerKv {
    k: Vec<f32>,
    v: Vec<f32>,
}

/// The keys (after RoPE) and values of every token run so far through [`Model::extend`], per
/// layer, so that the next tokens need not recompute them.
///
/// Holds at most the model's context length of tokens ([`KvCache::capacity`]); extending
/// beyond it is an error. Memory grows with use: 2 x layers x len x n_kv_heads x head_dim f32
/// (SmolLM2-135M: 46 KiB per token). Clone it to branch from a shared prefix, or
/// [`KvCache::truncate`] it to go back to one.
#[derive(Clone, Debug)]
pub struct KvCache {
    layers: Vec<LayerKv>,
    len: usize,
    /// n_kv_heads * head_dim
    kv_width: usize,
    capacity: usize,
}

impl KvCache {
    /// Number of tokens cached (the position the next token will take).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most tokens the cache can hold: the model's context length.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keeps the first `n` tokens and drops the rest (no-op when `n >= len`), e.g. to reuse a
    /// shared prompt prefix for another continuation.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.len {
            return;
        }
        for l in &mut self.layers {
            l.k.truncate(n * self.kv_width);
            l.v.truncate(n * self.kv_width);
        }
        self.len = n;
    }

    /// Drops every token.
    pub fn clear(&mut self) {
        self.truncate(0);
    }
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

    /// An empty KV cache for [`Self::extend`].
    pub fn new_cache(&self) -> KvCache {
        KvCache {
            layers: vec![LayerKv::default(); self.layers.len()],
            len: 0,
            kv_width: self.cfg.n_kv_heads * self.cfg.head_dim,
            capacity: self.cfg.context_length,
        }
    }

    /// Runs `ids` as the next tokens of the sequence in `cache` (positions `cache.len()..`),
    /// appends their keys and values to it, and returns the logits [vocab] of the last of them.
    ///
    /// Each new token attends to every cached token and, causally, to the new ones before it,
    /// so running a sequence in one call or in any split gives the same logits as
    /// [`Self::logits`] at that position (up to float summation order). The final norm and the
    /// head run on the last token only. Needs all layers and the head loaded. Errors (nothing
    /// is changed) on an empty `ids`, an id outside the vocabulary, a cache of another model, or
    /// more tokens in all than the context length.
    pub fn extend(&self, cache: &mut KvCache, ids: &[u32]) -> Result<Vec<f32>> {
        self.check_full()?;
        let kv_w = self.cfg.n_kv_heads * self.cfg.head_dim;
        if cache.layers.len() != self.layers.len() || cache.kv_width != kv_w {
            return Err(LlmError::Input(
                "KV cache was made by another model (layers or width differ)".into(),
            ));
        }
        if ids.is_empty() {
            return Err(LlmError::Input(
                "no token ids to extend the cache with".into(),
            ));
        }
        let (past, n) = (cache.len, ids.len());
        let limit = self.cfg.context_length.min(cache.capacity);
        if past + n > limit {
            return Err(LlmError::Input(format!(
                "{past} cached + {n} new tokens exceed the context length {limit}"
            )));
        }
        let mut fwd = Forward::new(self, ids, 1, n)?;
        for (layer, kv) in self.layers.iter().zip(&mut cache.layers) {
            fwd.layer_cached(layer, kv, past);
        }
        cache.len = past + n;
        let d = self.cfg.d_model;
        Ok(self.head_logits_row(&fwd.x[(n - 1) * d..]))
    }

    /// The logit effect of a residual-stream direction: `W_U (norm_weight ⊙ dir)`, [vocab].
    ///
    /// The final RMSNorm's weight is applied elementwise but there is no normalisation (by the
    /// direction's or any stream's norm); `W_U` is the output head, or the token embedding when
    /// the head is tied. Needs the model loaded with its head.
    pub fn unembed_direction(&self, dir: &[f32]) -> Result<Vec<f32>> {
        let head = self
            .head
            .as_ref()
            .ok_or_else(|| LlmError::Input("model loaded without its output head".into()))?;
        let d = self.cfg.d_model;
        if dir.len() != d {
            return Err(LlmError::Input(format!(
                "direction has {} values, the model's width is {d}",
                dir.len()
            )));
        }
        let h: Vec<f32> = dir.iter().zip(&head.norm).map(|(x, w)| x * w).collect();
        Ok(self.unembed(&h))
    }

    /// [`Self::unembed_direction`] of `n` directions at once (`dirs` is [n, d_model] row-major):
    /// one matrix product instead of n passes over the unembedding. Returns [n, vocab].
    pub fn unembed_directions(&self, dirs: &[f32], n: usize) -> Result<Vec<f32>> {
        let head = self
            .head
            .as_ref()
            .ok_or_else(|| LlmError::Input("model loaded without its output head".into()))?;
        let d = self.cfg.d_model;
        if dirs.len() != n * d {
            return Err(LlmError::Input(format!(
                "{} values for {n} directions of width {d}",
                dirs.len()
            )));
        }
        let h: Vec<f32> = dirs
            .chunks(d)
            .flat_map(|row| row.iter().zip(&head.norm).map(|(x, w)| x * w))
            .collect();
        Ok(self.unembed_rows(&h, n))
    }

    /// `W_U h` for one row `h` [d_model].
    fn unembed(&self, h: &[f32]) -> Vec<f32> {
        self.unembed_rows(h, 1)
    }

    /// `W_U h` for each of the `n` rows of `h` [n, d_model].
    fn unembed_rows(&self, h: &[f32], n: usize) -> Vec<f32> {
        let head = self.head.as_ref().expect("checked by the caller");
        let (d, v) = (self.cfg.d_model, self.cfg.vocab_size);
        let w = head.weight.as_deref().unwrap_or(&self.embed);
        let mut logits = vec![0f32; n * v];
        matmul(
            &mut logits,
            v,
            MatRef::new(h, n, d),
            MatRef::new(w, v, d).t(),
            false,
            rayon::current_num_threads(),
        );
        logits
    }

    /// Final norm and head of one residual row [d_model].
    fn head_logits_row(&self, x: &[f32]) -> Vec<f32> {
        let head = self.head.as_ref().expect("checked by check_full");
        let mut h = vec![0f32; x.len()];
        rms_norm(x, &head.norm, self.cfg.rms_eps, &mut h);
        self.unembed(&h)
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
        self.project_qkv(l, 0);
        let shape = AttnShape {
            batch: self.batch,
            seq: self.seq,
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
        };
        attention(&self.qkv, &shape, &mut self.attn);
        self.finish_layer(l);
    }

    /// [`Self::layer`] for one sequence of new tokens at positions `past..`: `past` tokens are
    /// already in `kv`; the new rotated keys and values are appended to it and every new
    /// query attends to all cached positions and, causally, to the new ones.
    fn layer_cached(&mut self, l: &Layer, kv: &mut LayerKv, past: usize) {
        debug_assert_eq!(self.batch, 1);
        let c = &self.model.cfg;
        let (nh, nkv, hd) = (c.n_heads, c.n_kv_heads, c.head_dim);
        let qkv_w = (nh + 2 * nkv) * hd;
        let kv_w = nkv * hd;
        self.project_qkv(l, past);
        kv.k.truncate(past * kv_w);
        kv.v.truncate(past * kv_w);
        for row in self.qkv.chunks_exact(qkv_w) {
            kv.k.extend_from_slice(&row[nh * hd..nh * hd + kv_w]);
            kv.v.extend_from_slice(&row[nh * hd + kv_w..]);
        }
        let shape = CachedAttnShape {
            past,
            n_new: self.seq,
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: hd,
        };
        attention_cached(&self.qkv, qkv_w, &kv.k, &kv.v, &shape, &mut self.attn);
        self.finish_layer(l);
    }

    /// h = norm(x); qkv = h Wqkv; RoPE on Q (scaled) and K, row r at position `pos0 + r % seq`.
    fn project_qkv(&mut self, l: &Layer, pos0: usize) {
        let c = &self.model.cfg;
        let (m, d) = (self.batch * self.seq, c.d_model);
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
        rope_inplace_from(
            &mut self.qkv,
            qkv_w,
            self.seq,
            pos0,
            0,
            nh,
            hd,
            cos,
            sin,
            q_scale,
        );
        rope_inplace_from(
            &mut self.qkv,
            qkv_w,
            self.seq,
            pos0,
            nh * hd,
            nkv,
            hd,
            cos,
            sin,
            1.0,
        );
    }

    /// x += attn Wo; x += swiglu(norm(x) Wgate, norm(x) Wup) Wdown
    fn finish_layer(&mut self, l: &Layer) {
        let c = &self.model.cfg;
        let (m, d, f) = (self.batch * self.seq, c.d_model, c.d_ffn);
        let nh_hd = c.n_heads * c.head_dim;
        let th = rayon::current_num_threads();
        matmul(
            &mut self.x,
            d,
            MatRef::new(&self.attn, m, nh_hd),
            MatRef::new(&l.wo, nh_hd, d),
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
