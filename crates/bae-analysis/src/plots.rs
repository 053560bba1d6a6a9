//! The comparison chart: FVU against L0 (log scale), one labelled point per model, and the dead /
//! dense feature counts as grouped bars. SVG, written atomically.

use crate::compare::CompareRow;
use plotters::prelude::*;
use std::path::Path;

pub fn compare_chart(path: &Path, rows: &[CompareRow]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: cannot draw: {e}", path.display());
    let tmp = path.with_extension("svg.tmp");
    {
        let root = SVGBackend::new(&tmp, (1000, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let (left, right) = root.split_horizontally(500);
        let pts: Vec<(f64, f64, &str)> = rows
            .iter()
            .map(|r| {
                let l0 = r.eval.features.l0.max(1e-3).log10();
                (l0, r.eval.reconstruction.fvu, r.arch.as_str())
            })
            .collect();
        let x_lo = pts
            .iter()
            .map(|p| p.0)
            .fold(f64::INFINITY, f64::min)
            .floor();
        let x_hi = pts
            .iter()
            .map(|p| p.0)
            .fold(f64::NEG_INFINITY, f64::max)
            .ceil();
        let y_hi = pts.iter().map(|p| p.1).fold(0.0, f64::max).max(0.05) * 1.15;
        let (x_lo, x_hi) = if x_lo.is_finite() && x_hi > x_lo {
            (x_lo, x_hi)
        } else {
            (0.0, 4.0)
        };
        let mut chart = ChartBuilder::on(&left)
            .caption("FVU against L0 (held-out rows)", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(38)
            .y_label_area_size(50)
            .build_cartesian_2d(x_lo..x_hi, 0.0..y_hi)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("log10 L0 (active features per token)")
            .y_desc("FVU (lower is better)")
            .draw()
            .map_err(|e| err(&e))?;
        let colors = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
        // a legend names the points: labels beside them collide when two models land together
        for (i, &(x, y, name)) in pts.iter().enumerate() {
            let c = colors[i % colors.len()];
            chart
                .draw_series(std::iter::once(Circle::new((x, y), 6, c.filled())))
                .map_err(|e| err(&e))?
                .label(format!("{name}: L0 {:.1}, FVU {y:.3}", 10f64.powf(x)))
                .legend(move |(lx, ly)| Circle::new((lx + 5, ly), 5, c.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| err(&e))?;

        let groups = ["dead", "dense by rate >10%", "dense by rare value >10%"];
        let counts: Vec<[usize; 3]> = rows
            .iter()
            .map(|r| {
                let f = &r.eval.features;
                [f.dead, f.dense_rate_10, f.dense_rare_10]
            })
            .collect();
        let top = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64 * 1.15;
        let n = rows.len().max(1) as f64;
        let mut bars = ChartBuilder::on(&right)
            .caption("features (of d') per model", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(38)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..groups.len() as f64, 0.0..top)
            .map_err(|e| err(&e))?;
        bars.configure_mesh()
            .disable_x_mesh()
            .x_labels(groups.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let g = x.floor() as usize;
                if (x - g as f64 - 0.5).abs() < 0.26 && g < groups.len() {
                    groups[g].to_string()
                } else {
                    String::new()
                }
            })
            .y_desc("features")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(|e| err(&e))?;
        for (i, (c, name)) in counts.iter().zip(rows.iter().map(|r| &r.arch)).enumerate() {
            let color = colors[i % colors.len()];
            let w = 0.8 / n;
            bars.draw_series((0..groups.len()).map(|g| {
                let x0 = g as f64 + 0.1 + i as f64 * w;
                Rectangle::new(
                    [(x0, 0.0), (x0 + w * 0.9, c[g] as f64)],
                    color.mix(0.7).filled(),
                )
            }))
            .map_err(|e| err(&e))?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        }
        bars.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| err(&e))
}
