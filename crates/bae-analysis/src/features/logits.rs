//! The tokens a feature's event promotes and suppresses, as the dashboards' logit tables: its
//! decoder row (signed towards the salient event: a BAE feature that rarely goes silent removes
//! its row when it does) through the LLM's final norm weight and unembedding.

use super::{FeatureEntry, LogitEffect};
use bae_llm::{Model, Tokenizer};
use bae_ref::Params;

/// Features pushed through the unembedding at once ([chunk, vocab] logits in memory).
const CHUNK: usize = 128;

pub fn fill(
    features: &mut [FeatureEntry],
    params: &Params<f32>,
    model: &Model,
    tok: &Tokenizer,
    top: usize,
) -> Result<(), String> {
    let d = params.d;
    for group in features.chunks_mut(CHUNK) {
        let mut dirs = Vec::with_capacity(group.len() * d);
        for f in group.iter() {
            let sign = if f.rare_value == 1 { 1.0 } else { -1.0 };
            let row = &params.w_dec[f.feature * d..(f.feature + 1) * d];
            dirs.extend(row.iter().map(|&w| sign * w));
        }
        let logits = model
            .unembed_directions(&dirs, group.len())
            .map_err(|e| e.to_string())?;
        let vocab = logits.len() / group.len().max(1);
        for (f, l) in group.iter_mut().zip(logits.chunks(vocab)) {
            let (promotes, suppresses) = extremes(l, top);
            let name = |(id, v): (usize, f32)| LogitEffect {
                token: tok
                    .token_str(id as u32)
                    .map_or_else(|| format!("<{id}>"), |_| tok.decode(&[id as u32])),
                value: v,
            };
            f.promotes = promotes.into_iter().map(name).collect();
            f.suppresses = suppresses.into_iter().map(name).collect();
        }
    }
    Ok(())
}

/// Token ids with their logit effect.
pub type Ranked = Vec<(usize, f32)>;

/// The `top` largest (descending) and smallest (ascending) entries of `l`, ties to the lower id.
pub fn extremes(l: &[f32], top: usize) -> (Ranked, Ranked) {
    let mut ids: Vec<usize> = (0..l.len()).collect();
    let hi: Vec<usize> = bae_train::eval::select_top(&mut ids, top, |i| l[i] as f64).to_vec();
    let lo: Vec<usize> = bae_train::eval::select_top(&mut ids, top, |i| -(l[i] as f64)).to_vec();
    let sorted = |mut v: Vec<usize>, desc: bool| {
        v.sort_by(|&a, &b| {
            let o = l[a].total_cmp(&l[b]);
            (if desc { o.reverse() } else { o }).then(a.cmp(&b))
        });
        v.into_iter().map(|i| (i, l[i])).collect::<Ranked>()
    };
    (sorted(hi, true), sorted(lo, false))
}

#[cfg(test)]
mod tests {
    use super::extremes;

    #[test]
    fn extremes_sorted_with_ties_to_lower_id() {
        let l = [0.5, -2.0, 3.0, 3.0, -2.0, 0.0];
        let (hi, lo) = extremes(&l, 2);
        assert_eq!(hi, vec![(2, 3.0), (3, 3.0)]);
        assert_eq!(lo, vec![(1, -2.0), (4, -2.0)]);
        let (hi, lo) = extremes(&l, 10);
        assert_eq!(hi.len(), 6);
        assert_eq!(hi[4..], [(1, -2.0), (4, -2.0)]);
        assert_eq!(lo[0], (1, -2.0));
    }
}
