//! The picture of an entropy curve: each estimator's line with its bootstrap band, and below it
//! the figures measured beside the entropy (FVU of each block's BAE, accuracy on the in-context
//! task). SVG, written atomically.

use super::{Curve, Estimate, SetEntropy};
use plotters::prelude::*;
use std::path::Path;

/// The extra figures drawn in the lower panel.
const CHARTED: [&str; 3] = ["fvu", "accuracy", "first_token"];

const SERIES: [(&str, RGBColor); 3] = [
    ("marginal sum (paper)", RGBColor(31, 119, 180)),
    ("Miller-Madow", RGBColor(255, 127, 14)),
    ("Chow-Liu tree bound", RGBColor(44, 160, 44)),
];

fn pick(e: &SetEntropy, k: usize) -> &Estimate {
    match k {
        0 => &e.marginal,
        1 => &e.miller_madow,
        _ => &e.tree,
    }
}

fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.02).max(1e-3);
    ((lo - pad).max(0.0), hi + pad)
}

/// Draws `curve` to `path` (an .svg); `title` heads the upper panel.
pub fn curve_chart(path: &Path, curve: &Curve, title: &str) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: cannot draw: {e}", path.display());
    let tmp = path.with_extension("svg.tmp");
    let pts = &curve.points;
    // the lower panel holds the figures on a 0..1 scale (others, e.g. L0, stay in the table)
    let extra_keys: Vec<String> = pts
        .first()
        .map(|p| {
            p.extra
                .keys()
                .filter(|k| CHARTED.contains(&k.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let height = if extra_keys.is_empty() { 460 } else { 700 };
    {
        let root = SVGBackend::new(&tmp, (960, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let (top, bottom) = if extra_keys.is_empty() {
            (root.clone(), None)
        } else {
            let (t, b) = root.split_vertically(460);
            (t, Some(b))
        };
        let xs = || pts.iter().map(|p| p.x);
        let (x_lo, x_hi) = (
            xs().fold(f64::INFINITY, f64::min),
            xs().fold(f64::NEG_INFINITY, f64::max),
        );
        let x_pad = ((x_hi - x_lo) * 0.03).max(0.5);
        let x_range = (x_lo - x_pad)..(x_hi + x_pad);
        let (y_lo, y_hi) = span(pts.iter().flat_map(|p| {
            (0..3).flat_map(move |k| {
                let e = pick(&p.entropy, k);
                [Some(e.bits), e.lo, e.hi].into_iter().flatten()
            })
        }));
        let mut chart = ChartBuilder::on(&top)
            .caption(title, ("sans-serif", 19))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(62)
            .build_cartesian_2d(x_range.clone(), y_lo..y_hi)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(curve.x_label.as_str())
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .y_desc("entropy estimate (bits)")
            .draw()
            .map_err(|e| err(&e))?;
        for (k, (name, color)) in SERIES.iter().enumerate() {
            let band: Vec<(f64, f64, f64)> = pts
                .iter()
                .filter_map(|p| {
                    let e = pick(&p.entropy, k);
                    Some((p.x, e.lo?, e.hi?))
                })
                .collect();
            let banded = band.len() == pts.len() && !band.is_empty();
            if banded {
                let mut poly: Vec<(f64, f64)> = band.iter().map(|b| (b.0, b.1)).collect();
                poly.extend(band.iter().rev().map(|b| (b.0, b.2)));
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        poly,
                        color.mix(0.18).filled(),
                    )))
                    .map_err(|e| err(&e))?;
            }
            let line: Vec<(f64, f64)> = pts
                .iter()
                .map(|p| (p.x, pick(&p.entropy, k).bits))
                .collect();
            let c = *color;
            let width = if k == 1 { 1 } else { 3 };
            chart
                .draw_series(LineSeries::new(line.clone(), c.stroke_width(width)))
                .map_err(|e| err(&e))?
                .label(if banded {
                    format!("{name} (band: {:.0} % interval)", curve.level * 100.0)
                } else {
                    name.to_string()
                })
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3))
                });
            if pts.len() <= 40 {
                chart
                    .draw_series(
                        line.iter()
                            .map(|&(x, y)| Circle::new((x, y), 3, c.filled())),
                    )
                    .map_err(|e| err(&e))?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| err(&e))?;
        if let Some(bottom) = bottom {
            let (e_lo, e_hi) = (0.0, 1.0);
            let mut lower = ChartBuilder::on(&bottom)
                .margin(14)
                .x_label_area_size(40)
                .y_label_area_size(62)
                .build_cartesian_2d(x_range, e_lo..e_hi)
                .map_err(|e| err(&e))?;
            lower
                .configure_mesh()
                .x_desc(curve.x_label.as_str())
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| format!("{y:.1}"))
                .y_desc(extra_keys.join(", "))
                .draw()
                .map_err(|e| err(&e))?;
            let colors = [RGBColor(214, 39, 40), RGBColor(148, 103, 189), BLACK];
            for (i, key) in extra_keys.iter().enumerate() {
                let c = colors[i % colors.len()];
                let line: Vec<(f64, f64)> = pts
                    .iter()
                    .filter_map(|p| Some((p.x, *p.extra.get(key)?)))
                    .collect();
                lower
                    .draw_series(LineSeries::new(line.clone(), c.stroke_width(2)))
                    .map_err(|e| err(&e))?
                    .label(key.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3))
                    });
                lower
                    .draw_series(
                        line.iter()
                            .map(|&(x, y)| Circle::new((x, y), 3, c.filled())),
                    )
                    .map_err(|e| err(&e))?;
            }
            lower
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: cannot write: {e}", path.display()))
}
