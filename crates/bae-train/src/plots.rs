//! Charts people would rather look at than read: the feature-density histogram (log10 firing rate,
//! and the same by salience) and the training curves (loss terms and L0 per step), as SVG files.

use plotters::prelude::*;
use std::path::Path;

const LOG_FLOOR: f64 = -6.0;

fn log10_bins(values: &[f64], bins: usize) -> (Vec<u32>, u32) {
    let mut h = vec![0u32; bins];
    let mut zeros = 0;
    for &v in values {
        if v <= 0.0 {
            zeros += 1;
            continue;
        }
        let x = v.log10().max(LOG_FLOOR);
        let b = (((x - LOG_FLOOR) / -LOG_FLOOR) * bins as f64).floor() as usize;
        h[b.min(bins - 1)] += 1;
    }
    (h, zeros)
}

/// Histogram of log10(firing rate) and, if given, log10(salience share), one panel each.
pub fn density_histogram(path: &Path, rates: &[f64], salience: &[f64]) -> Result<(), String> {
    let mut panels: Vec<(&str, &[f64])> = vec![("firing rate", rates)];
    if !salience.is_empty() {
        panels.push(("salience share (top-10 by |h - mu|)", salience));
    }
    log10_histograms(path, &panels)
}

/// One log10 histogram panel per (name, values), side by side, written atomically as SVG.
pub fn log10_histograms(path: &Path, panels: &[(&str, &[f64])]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: cannot draw: {e}", path.display());
    let tmp = path.with_extension("svg.tmp");
    {
        let root =
            SVGBackend::new(&tmp, (450 * panels.len().max(1) as u32, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let areas = root.split_evenly((1, panels.len()));
        for (area, &(name, values)) in areas.iter().zip(panels) {
            let bins = 48;
            let (h, zeros) = log10_bins(values, bins);
            let top = *h.iter().max().unwrap_or(&1) as f64 * 1.1 + 1.0;
            let mut chart = ChartBuilder::on(area)
                .caption(
                    format!("features by log10 {name} ({zeros} at 0)"),
                    ("sans-serif", 16),
                )
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(45)
                .build_cartesian_2d(LOG_FLOOR..0.0, 0.0..top)
                .map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .x_desc("log10 share of tokens")
                .y_desc("features")
                .y_label_formatter(&|v| format!("{v:.0}"))
                .draw()
                .map_err(|e| err(&e))?;
            let w = -LOG_FLOOR / bins as f64;
            chart
                .draw_series(h.iter().enumerate().map(|(i, &c)| {
                    let x0 = LOG_FLOOR + i as f64 * w;
                    Rectangle::new([(x0, 0.0), (x0 + w, c as f64)], BLUE.mix(0.6).filled())
                }))
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| err(&e))
}

/// Training curves from metrics.jsonl: MSE, entropy (bits), covariance term and L0 against the step.
pub fn training_curves(path: &Path, metrics_jsonl: &Path) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: cannot draw: {e}", path.display());
    let text = std::fs::read_to_string(metrics_jsonl)
        .map_err(|e| format!("{}: {e}", metrics_jsonl.display()))?;
    let rows: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let series = |key: &str| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| Some((r["step"].as_f64()?, r[key].as_f64()?)))
            .filter(|(_, v)| v.is_finite())
            .collect()
    };
    let tmp = path.with_extension("svg.tmp");
    {
        let root = SVGBackend::new(&tmp, (1000, 640)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let areas = root.split_evenly((2, 2));
        for (area, (key, title)) in areas.iter().zip([
            ("mse", "reconstruction MSE"),
            ("entropy", "minibatch entropy (bits, summed)"),
            ("cov", "covariance term"),
            ("l0", "L0 (active bits per token)"),
        ]) {
            let s = series(key);
            if s.is_empty() {
                continue;
            }
            let x_max = s.last().map(|p| p.0).unwrap_or(1.0).max(1.0);
            let (lo, hi) = s
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                    (a.min(p.1), b.max(p.1))
                });
            let pad = ((hi - lo) * 0.05).max(1e-12);
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..x_max, (lo - pad)..(hi + pad))
                .map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .x_desc("step")
                .draw()
                .map_err(|e| err(&e))?;
            chart
                .draw_series(LineSeries::new(s, &RED))
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| err(&e))
}
