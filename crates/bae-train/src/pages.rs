//! Feature pages: for a few features, the tokens on which they take their rare value (1 for a
//! feature firing on under half of the tokens, 0 for an "inverted" one), spread over the rows.

use crate::data::RowSource;
use bae_ref::Params;
use serde::Serialize;
use std::ops::Range;

#[derive(Clone, Debug, Serialize)]
pub struct FeaturePage {
    pub feature: usize,
    /// firing rate on the evaluation rows
    pub rate: f64,
    /// the value that is the feature's salient event (1 = fires, 0 = goes silent)
    pub rare_value: u8,
    /// rows (global indices) where it takes that value, in corpus order
    pub rows: Vec<usize>,
}

/// Pick `n_features` features whose rare value occurs on at least `min_samples` rows, preferring the
/// rarest (most specific), and collect up to `per_feature` rows for each, spread over `rows`.
///
/// A feature's rare value comes in runs of neighbouring tokens, so the first `per_feature` hits would
/// often be one phrase of the first document. Instead `rows` is cut into `per_feature` equal slices
/// and each page takes the first hit of each slice (a slice without a hit lets a later one take more);
/// a page still short is then topped up in corpus order. Deterministic; rows in corpus order.
pub fn feature_pages(
    params: &Params<f32>,
    src: &dyn RowSource,
    rows: Range<usize>,
    rates: &[f64],
    n_features: usize,
    per_feature: usize,
    batch: usize,
) -> Result<Vec<FeaturePage>, String> {
    let n = rows.len() as f64;
    let min_share = (per_feature as f64 / n).max(1e-4);
    let mut chosen: Vec<usize> = (0..rates.len())
        .filter(|&j| rates[j].min(1.0 - rates[j]) >= min_share)
        .collect();
    chosen.sort_by(|&a, &b| {
        rates[a]
            .min(1.0 - rates[a])
            .total_cmp(&rates[b].min(1.0 - rates[b]))
    });
    chosen.truncate(n_features);
    let mut pages: Vec<FeaturePage> = chosen
        .iter()
        .map(|&j| FeaturePage {
            feature: j,
            rate: rates[j],
            rare_value: u8::from(rates[j] <= 0.5),
            rows: Vec::new(),
        })
        .collect();
    let d = params.d;
    let idx: Vec<usize> = rows.collect();
    if idx.is_empty() || per_feature == 0 {
        return Ok(pages);
    }
    let mut x = vec![0f32; batch * d];
    // add to every page holding fewer than `quota` rows its hits among `span`, in order
    let mut collect = |pages: &mut [FeaturePage], span: &[usize], quota: usize| {
        for chunk in span.chunks(batch) {
            if pages.iter().all(|p| p.rows.len() >= quota) {
                break;
            }
            let m = chunk.len();
            src.gather(chunk, &mut x[..m * d])?;
            let z = bae_ref::encode_pre(params, &x[..m * d], m);
            let codes = bae_bits::PackedRows::encode_positive(&z, m, params.d_code);
            for (i, &row) in chunk.iter().enumerate() {
                for p in pages.iter_mut() {
                    if p.rows.len() < quota
                        && u8::from(codes.get(i, p.feature)) == p.rare_value
                        && !p.rows.contains(&row)
                    {
                        p.rows.push(row);
                    }
                }
            }
        }
        Ok::<(), String>(())
    };
    for (s, slice) in idx.chunks(idx.len().div_ceil(per_feature)).enumerate() {
        // after slice s a page holds at most s + 1 rows
        collect(&mut pages, slice, (s + 1).min(per_feature))?;
    }
    collect(&mut pages, &idx, per_feature)?;
    for p in &mut pages {
        p.rows.sort_unstable();
    }
    Ok(pages)
}
