//! The comparison chart: FVU against L0 (log scale), one labelled point per model, and the dead /
//! dense feature counts as grouped bars; the sweep charts (`sweep_chart`). SVG, written atomically.

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

/// Ten distinguishable colours (matplotlib's tab10), one per sweep point (repeating after ten).
const POINT_COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// `lo..hi` around `values` with a margin, at least `min_span` wide, never below `floor`.
fn padded(values: impl Iterator<Item = f64>, min_span: f64, floor: f64) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (floor, floor + min_span.max(1.0));
    }
    let span = (hi - lo).max(min_span);
    let mid = (lo + hi) / 2.0;
    let (lo, hi) = (mid - span * 0.6, mid + span * 0.6);
    if lo < floor {
        (floor, hi - lo + floor)
    } else {
        (lo, hi)
    }
}

/// A point's number, placed beside its marker where it overlaps no marker or label placed
/// before it (or, failing that, to the right).
struct Labels {
    boxes: Vec<(i32, i32, i32, i32)>,
}

impl Labels {
    fn new(markers: &[(i32, i32)]) -> Labels {
        Labels {
            boxes: markers
                .iter()
                .map(|&(x, y)| (x - 6, y - 6, x + 6, y + 6))
                .collect(),
        }
    }

    /// The top-left corner for a `w` x `h` label of the marker at (x, y).
    fn place(&mut self, (x, y): (i32, i32), w: i32, h: i32) -> (i32, i32) {
        let offsets = [
            (8, -h / 2),
            (-8 - w, -h / 2),
            (-w / 2, -8 - h),
            (-w / 2, 8),
            (7, -h - 5),
            (-7 - w, -h - 5),
            (7, 5),
            (-7 - w, 5),
            (20, -h / 2),
            (-20 - w, -h / 2),
            (-w / 2, -20 - h),
            (-w / 2, 20),
        ];
        let free = |b: &(i32, i32, i32, i32), boxes: &[(i32, i32, i32, i32)]| {
            boxes
                .iter()
                .all(|o| b.2 <= o.0 || b.0 >= o.2 || b.3 <= o.1 || b.1 >= o.3)
        };
        let pick = offsets
            .iter()
            .map(|&(dx, dy)| (x + dx, y + dy, x + dx + w, y + dy + h))
            .find(|b| free(b, &self.boxes))
            .unwrap_or((x + 8, y - h / 2, x + 8 + w, y + h / 2));
        self.boxes.push(pick);
        (pick.0, pick.1)
    }
}

/// A log-axis tick label: only at 1, 2 and 5 times a power of ten.
fn log_tick(v: f64) -> String {
    let e = v.log10().floor();
    let m = v / 10f64.powf(e);
    if [1.0, 2.0, 5.0].iter().any(|&t| (m - t).abs() < 1e-6 * t) {
        let digits = (-e).max(0.0) as usize;
        format!("{v:.digits$}")
    } else {
        String::new()
    }
}

/// sweep.svg: FVU against the mean rare-value rate (log x), and the number of features whose rare
/// value occurs on at most 1 % of tokens (specific + constant, filled; specific alone, hollow)
/// against FVU; each point numbered on the charts and named, with its figures, in the legend below
/// them.
pub fn sweep_chart(path: &Path, rows: &[crate::sweep::SweepRow]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: cannot draw: {e}", path.display());
    let tmp = path.with_extension("svg.tmp");
    let n = rows.len();
    let names: Vec<String> = rows
        .iter()
        .map(|r| {
            r.values
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
                + &format!(
                    ": FVU {:.4}, rare rate {}, below 1 % {} ({} specific)",
                    r.eval.reconstruction.fvu,
                    crate::sweep::fmt_rate(r.mean_rare_rate),
                    r.rare_below_1,
                    r.eval.features.specific
                )
        })
        .collect();
    // two columns when the entries fit in half the width (about 6.5 px a character)
    let longest = names.iter().map(|s| s.chars().count()).max().unwrap_or(0);
    let cols = if n > 3 && longest * 13 / 2 + 30 < 500 {
        2
    } else {
        1
    };
    let line_h = 20;
    let legend_h = (n.div_ceil(cols) as u32) * line_h + 16;
    let chart_h = 340;
    {
        let root = SVGBackend::new(&tmp, (1000, chart_h + legend_h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let (top, legend) = root.split_vertically(chart_h);
        let (left, right) = top.split_horizontally(500);
        let color = |i: usize| POINT_COLORS[i % POINT_COLORS.len()];
        let font = ("sans-serif", 13);

        // left: FVU against the mean rare-value rate, log x, at least one decade wide
        let rare: Vec<f64> = rows.iter().map(|r| r.mean_rare_rate.max(1e-6)).collect();
        let fvu: Vec<f64> = rows.iter().map(|r| r.eval.reconstruction.fvu).collect();
        // from just below a power of ten (plotters puts log ticks only from the first power of ten
        // inside the range up)
        let lo = rare.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = rare.iter().copied().fold(0.0, f64::max);
        let lx0 = (lo.log10() - 0.05).floor();
        let lx1 = (hi.log10() + 0.12).max(lx0 + 0.5);
        let (y0, y1) = padded(fvu.iter().copied(), 0.02, 0.0);
        let mut chart = ChartBuilder::on(&left)
            .caption("FVU against the mean rare-value rate", ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(
                (10f64.powf(lx0) * 0.999..10f64.powf(lx1)).log_scale(),
                y0..y1,
            )
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_labels(40)
            .max_light_lines(0)
            .x_label_formatter(&|v| log_tick(*v))
            .x_desc("mean over features of min(p, 1 − p) (log scale)")
            .y_desc("FVU (lower is better)")
            .y_label_formatter(&|v| format!("{v:.3}"))
            .draw()
            .map_err(|e| err(&e))?;
        let mut px = Vec::new();
        for (i, (&x, &y)) in rare.iter().zip(&fvu).enumerate() {
            chart
                .draw_series(std::iter::once(Circle::new((x, y), 6, color(i).filled())))
                .map_err(|e| err(&e))?;
            px.push(chart.backend_coord(&(x, y)));
        }
        let mut labels = Labels::new(&px);
        for (i, &p) in px.iter().enumerate() {
            let s = (i + 1).to_string();
            let (x, y) = labels.place(p, 8 * s.len() as i32 + 2, 14);
            root.draw(&Text::new(s, (x + 1, y), font.into_font().color(&color(i))))
                .map_err(|e| err(&e))?;
        }

        // right: features with a rare value below 1 % against FVU
        let all: Vec<f64> = rows.iter().map(|r| r.rare_below_1 as f64).collect();
        let spec: Vec<f64> = rows
            .iter()
            .map(|r| r.eval.features.specific as f64)
            .collect();
        let c_hi = all.iter().copied().fold(0.0, f64::max).max(1.0) * 1.15;
        let (x0, x1) = padded(fvu.iter().copied(), 0.02, 0.0);
        let mut chart = ChartBuilder::on(&right)
            .caption(
                "features with a rare value below 1 % against FVU",
                ("sans-serif", 17),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(x0..x1, 0.0..c_hi)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .max_light_lines(2)
            .x_desc("FVU (lower is better)")
            .x_label_formatter(&|v| format!("{v:.3}"))
            .y_desc("features (● specific + constant, ○ specific)")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(|e| err(&e))?;
        let mut px = Vec::new();
        for (i, ((&x, &a), &s)) in fvu.iter().zip(&all).zip(&spec).enumerate() {
            let c = color(i);
            if a > s {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x, s), (x, a)],
                        c.mix(0.5).stroke_width(1),
                    )))
                    .map_err(|e| err(&e))?;
            }
            chart
                .draw_series([
                    Circle::new((x, s), 6, c.stroke_width(2)),
                    Circle::new((x, a), 6, c.filled()),
                ])
                .map_err(|e| err(&e))?;
            px.push(chart.backend_coord(&(x, a)));
        }
        let hollow: Vec<(i32, i32)> = fvu
            .iter()
            .zip(&spec)
            .map(|(&x, &s)| chart.backend_coord(&(x, s)))
            .collect();
        let mut labels = Labels::new(&[px.clone(), hollow].concat());
        for (i, &p) in px.iter().enumerate() {
            let s = (i + 1).to_string();
            let (x, y) = labels.place(p, 8 * s.len() as i32 + 2, 14);
            root.draw(&Text::new(s, (x + 1, y), font.into_font().color(&color(i))))
                .map_err(|e| err(&e))?;
        }

        // the legend: number, colour, settings and figures of every point
        let col_w = 1000 / cols as i32;
        let per_col = n.div_ceil(cols);
        for (i, name) in names.iter().enumerate() {
            let (cx, cy) = (
                20 + (i / per_col) as i32 * col_w,
                8 + (i % per_col) as i32 * line_h as i32,
            );
            legend
                .draw(&Circle::new((cx + 5, cy + 9), 5, color(i).filled()))
                .map_err(|e| err(&e))?;
            legend
                .draw(&Text::new(
                    format!("{}  {name}", i + 1),
                    (cx + 16, cy + 2),
                    font.into_font().color(&BLACK),
                ))
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| err(&e))
}
