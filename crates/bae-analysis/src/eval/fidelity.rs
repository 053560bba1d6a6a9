//! Downstream fidelity: what replacing the residual stream by the autoencoder's reconstruction
//! costs the language model. The LLM runs on held-out windows of the extract's own text; after the
//! autoencoder's block the stream is replaced at every position training kept (not the sink
//! positions 0 and 1, not rows with a norm above 10x the median) by the reconstruction, by zeros, or
//! by the mean activation, and the forward pass continues to the next-token distribution.
//!
//! Per scored position (every position from the first spliced one to the second last, predicting
//! the next token), averaged: cross-entropy of the true next token clean / spliced / ablated,
//! KL(clean ‖ variant) and JSD in nats, SAELens's `ce_loss_score` and `kl_div_score` (zero
//! ablation), and the paper's follow-up metric: mean JSD at the last position when only the last
//! token's stream is replaced.

use super::divergence::{ce_loss_score, jsd, kl, kl_div_score, log_softmax};
use bae_llm::{Manifest, Model};
use rayon::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Rows with a norm above this many times the median are not spliced (extraction drops them).
const OUTLIER_FACTOR: f32 = 10.0;

/// Held-out windows of an extract's text and how that extract cut and filtered it.
pub struct HeldOutText {
    pub block: usize,
    pub window: usize,
    /// leading positions of each window that training never saw (the attention sink)
    pub skip: usize,
    /// token ids of each window (at most `window` long)
    pub windows: Vec<Vec<u32>>,
    /// the documents they come from
    pub docs: Vec<String>,
}

/// Up to `max_windows` windows of the extract's documents `first_doc..`, re-read from the text
/// sources its manifest names and cut as extraction cut them.
pub fn held_out_text(
    block_dir: &Path,
    tokenizer: &bae_llm::Tokenizer,
    first_doc: usize,
    max_windows: usize,
) -> Result<HeldOutText, String> {
    let m = Manifest::read(block_dir)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{}: no manifest.json", block_dir.display()))?;
    let sources: Vec<PathBuf> = m.settings.source.iter().map(PathBuf::from).collect();
    let files = bae_llm::corpus::list_files(&sources).map_err(|e| {
        format!("{e} (the extract's text source, needed for downstream fidelity; --no-downstream skips it)")
    })?;
    let mut stream = bae_llm::corpus::DocStream::new(files);
    let skip = if m.settings.keep_sink {
        0
    } else {
        bae_llm::SINK_POSITIONS
    };
    let mut text = HeldOutText {
        block: m.block,
        window: m.window,
        skip,
        windows: Vec::new(),
        docs: Vec::new(),
    };
    let mut index = 0usize;
    while text.windows.len() < max_windows {
        let Some(doc) = stream.next_doc().map_err(|e| e.to_string())? else {
            break;
        };
        if let Some(name) = m.docs.get(index).filter(|n| **n != doc.name) {
            return Err(format!(
                "{}: document {index} was {name}, the text now gives {} (the corpus changed since extraction)",
                block_dir.display(),
                doc.name
            ));
        }
        index += 1;
        if index <= first_doc || index > m.docs.len() {
            continue; // training documents, or text extraction never reached
        }
        let ids = bae_llm::tokenize_document(tokenizer, &doc.text);
        for w in ids.chunks(m.window) {
            if w.len() >= skip + 2 && text.windows.len() < max_windows {
                text.windows.push(w.to_vec());
            }
        }
        text.docs.push(doc.name);
    }
    if text.windows.is_empty() {
        return Err(format!(
            "{}: no held-out document (from document {first_doc} on) has a window of more than {} tokens",
            block_dir.display(),
            skip + 1
        ));
    }
    Ok(text)
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Fidelity {
    pub model: String,
    pub block: usize,
    pub windows: usize,
    /// positions whose next-token prediction is scored
    pub scored_positions: usize,
    /// positions whose residual was replaced
    pub spliced_positions: usize,
    pub ce_clean: f64,
    pub ce_spliced: f64,
    pub ce_zero_ablated: f64,
    pub ce_mean_ablated: f64,
    pub kl_spliced: f64,
    pub kl_zero_ablated: f64,
    pub kl_mean_ablated: f64,
    pub jsd_spliced: f64,
    pub jsd_zero_ablated: f64,
    pub jsd_mean_ablated: f64,
    /// (CE_zero − CE_spliced) / (CE_zero − CE_clean)
    pub ce_loss_score: f64,
    /// (KL_zero − KL_spliced) / KL_zero
    pub kl_div_score: f64,
    /// the same two scores against mean ablation
    pub ce_loss_score_mean: f64,
    pub kl_div_score_mean: f64,
    /// mean JSD at the last position when only the last token's stream is replaced
    pub last_token_jsd: f64,
}

/// Sums over scored positions of one comparison against the clean run.
#[derive(Clone, Copy, Default)]
struct Tally {
    ce: f64,
    kl: f64,
    jsd: f64,
}

/// Runs the comparisons; `reconstruct(rows, n)` maps n residual rows to their reconstructions.
pub fn fidelity(
    model: &Model,
    model_name: &str,
    text: &HeldOutText,
    reconstruct: &(dyn Fn(&[f32], usize) -> Vec<f32> + Sync),
    mean_row: &[f32],
    batch: usize,
    progress: &indicatif::ProgressBar,
) -> Result<Fidelity, String> {
    let d = model.config().d_model;
    let vocab = model.config().vocab_size;
    if mean_row.len() != d {
        return Err(format!(
            "mean activation has {} values, the model is {d} wide",
            mean_row.len()
        ));
    }
    let t = text.window;
    let pad = 0u32;
    let mut tallies = [Tally::default(); 4]; // clean, spliced, zero, mean
    let (mut scored, mut spliced, mut last_jsd, mut last_n) = (0usize, 0usize, 0.0, 0usize);
    let err = |e: bae_llm::LlmError| e.to_string();
    for group in text.windows.chunks(batch.max(1)) {
        let b = group.len();
        let mut ids = Vec::with_capacity(b * t);
        for w in group {
            ids.extend_from_slice(w);
            ids.extend(std::iter::repeat_n(pad, t - w.len()));
        }
        let clean_res = model
            .hidden_states(&ids, b, t, &[text.block])
            .map_err(err)?
            .remove(0);
        let mask = splice_mask(&clean_res, group, t, d, text.skip);
        spliced += mask.iter().filter(|&&m| m).count();
        let rows: Vec<usize> = (0..b * t).filter(|&r| mask[r]).collect();
        let recon = reconstruct_rows(&clean_res, &rows, d, reconstruct);
        let replace = |with: &dyn Fn(usize, &mut [f32]), only: &dyn Fn(usize) -> bool| {
            let mut r = clean_res.clone();
            for (k, &row) in rows.iter().enumerate() {
                if only(row) {
                    with(k, &mut r[row * d..(row + 1) * d]);
                }
            }
            r
        };
        let all = |_: usize| true;
        let spliced_res = replace(
            &|k, dst| dst.copy_from_slice(&recon[k * d..(k + 1) * d]),
            &all,
        );
        let zero_res = replace(&|_, dst| dst.fill(0.0), &all);
        let mean_res = replace(&|_, dst| dst.copy_from_slice(mean_row), &all);
        let last_rows: Vec<usize> = (0..b).map(|i| i * t + group[i].len() - 1).collect();
        let last_res = replace(
            &|k, dst| dst.copy_from_slice(&recon[k * d..(k + 1) * d]),
            &|row| last_rows.contains(&row),
        );

        let clean = model
            .logits_from_block(clean_res.clone(), b, t, text.block)
            .map_err(err)?;
        // scored positions: from the first spliced position to the second last of each window
        let score: Vec<(usize, u32)> = (0..b)
            .flat_map(|i| {
                let w = &group[i];
                (text.skip..w.len() - 1).map(move |p| (i * t + p, w[p + 1]))
            })
            .collect();
        scored += score.len();
        tallies[0].ce += score
            .par_iter()
            .map(|&(row, next)| -log_softmax(&clean[row * vocab..(row + 1) * vocab])[next as usize])
            .sum::<f64>();
        for (slot, res) in [(1, spliced_res), (2, zero_res), (3, mean_res)] {
            let logits = model
                .logits_from_block(res, b, t, text.block)
                .map_err(err)?;
            let part = compare(&clean, &logits, vocab, &score);
            let tl = &mut tallies[slot];
            tl.ce += part.ce;
            tl.kl += part.kl;
            tl.jsd += part.jsd;
        }
        let logits = model
            .logits_from_block(last_res, b, t, text.block)
            .map_err(err)?;
        let last_scored: Vec<(usize, u32)> = last_rows
            .iter()
            .filter(|&&r| mask[r])
            .map(|&r| (r, 0))
            .collect();
        last_jsd += compare(&clean, &logits, vocab, &last_scored).jsd;
        last_n += last_scored.len();
        progress.inc(b as u64);
    }
    let mean = |v: f64| v / scored.max(1) as f64;
    let [c, s, z, m] = tallies;
    Ok(Fidelity {
        model: model_name.to_string(),
        block: text.block,
        windows: text.windows.len(),
        scored_positions: scored,
        spliced_positions: spliced,
        ce_clean: mean(c.ce),
        ce_spliced: mean(s.ce),
        ce_zero_ablated: mean(z.ce),
        ce_mean_ablated: mean(m.ce),
        kl_spliced: mean(s.kl),
        kl_zero_ablated: mean(z.kl),
        kl_mean_ablated: mean(m.kl),
        jsd_spliced: mean(s.jsd),
        jsd_zero_ablated: mean(z.jsd),
        jsd_mean_ablated: mean(m.jsd),
        ce_loss_score: ce_loss_score(mean(c.ce), mean(s.ce), mean(z.ce)),
        kl_div_score: kl_div_score(mean(s.kl), mean(z.kl)),
        ce_loss_score_mean: ce_loss_score(mean(c.ce), mean(s.ce), mean(m.ce)),
        kl_div_score_mean: kl_div_score(mean(s.kl), mean(m.kl)),
        last_token_jsd: last_jsd / last_n.max(1) as f64,
    })
}

/// Which rows of a batch are spliced: real (not padded) positions from `skip` on whose norm is at
/// most 10x the median norm of those candidates (the rows extraction keeps).
fn splice_mask(res: &[f32], group: &[Vec<u32>], t: usize, d: usize, skip: usize) -> Vec<bool> {
    let norm = |row: usize| {
        res[row * d..(row + 1) * d]
            .iter()
            .map(|v| v * v)
            .sum::<f32>()
            .sqrt()
    };
    let candidates: Vec<usize> = group
        .iter()
        .enumerate()
        .flat_map(|(i, w)| (skip..w.len()).map(move |p| i * t + p))
        .collect();
    let mut norms: Vec<f32> = candidates.iter().map(|&r| norm(r)).collect();
    let limit = if skip == 0 {
        f32::INFINITY // --keep-sink extracts keep every row
    } else {
        norms.sort_by(f32::total_cmp);
        OUTLIER_FACTOR * norms.get(norms.len() / 2).copied().unwrap_or(f32::INFINITY)
    };
    let mut mask = vec![false; group.len() * t];
    for r in candidates {
        mask[r] = norm(r) <= limit;
    }
    mask
}

fn reconstruct_rows(
    res: &[f32],
    rows: &[usize],
    d: usize,
    reconstruct: &(dyn Fn(&[f32], usize) -> Vec<f32> + Sync),
) -> Vec<f32> {
    let mut x = Vec::with_capacity(rows.len() * d);
    for &r in rows {
        x.extend_from_slice(&res[r * d..(r + 1) * d]);
    }
    if rows.is_empty() {
        return x;
    }
    reconstruct(&x, rows.len())
}

/// CE of the true next token under `other`, KL(clean ‖ other) and JSD, summed over `score`.
fn compare(clean: &[f32], other: &[f32], vocab: usize, score: &[(usize, u32)]) -> Tally {
    score
        .par_iter()
        .map(|&(row, next)| {
            let lc = log_softmax(&clean[row * vocab..(row + 1) * vocab]);
            let lo = log_softmax(&other[row * vocab..(row + 1) * vocab]);
            Tally {
                ce: -lo[next as usize],
                kl: kl(&lc, &lo),
                jsd: jsd(&lc, &lo),
            }
        })
        .reduce(Tally::default, |a, b| Tally {
            ce: a.ce + b.ce,
            kl: a.kl + b.kl,
            jsd: a.jsd + b.jsd,
        })
}
