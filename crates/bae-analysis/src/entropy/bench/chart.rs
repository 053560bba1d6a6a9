//! `entropy_bench.svg`: each estimate divided by the true joint entropy, per case (log scale),
//! the tree bound with its bootstrap interval; 1 is the truth.

use super::BenchReport;
use plotters::prelude::*;

/// (code index in a case's `codes`, estimator: 0 marginal / 2 tree) of each series, its name and
/// colour. The Miller–Madow sum is left out: at these row counts it lies on the marginal sum.
fn series(report: &BenchReport) -> Vec<(usize, usize, String, RGBColor)> {
    let colours = [
        RGBColor(90, 90, 90),
        RGBColor(214, 39, 40),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
    ];
    let names: Vec<String> = report
        .cases
        .first()
        .map(|c| c.codes.iter().map(|k| k.code.clone()).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let c = colours[i % colours.len()];
        let who = if i == 0 {
            name.clone()
        } else {
            format!("BAE {name}")
        };
        out.push((i, 0, format!("{who}: marginal sum"), lighter(c)));
        out.push((i, 2, format!("{who}: tree bound (with interval)"), c));
    }
    out
}

/// `c` halfway to white.
fn lighter(c: RGBColor) -> RGBColor {
    let f = |v: u8| v + (255 - v) / 2;
    RGBColor(f(c.0), f(c.1), f(c.2))
}

/// The chart as SVG text.
pub fn ratio_chart(report: &BenchReport) -> Result<String, String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: cannot draw: {e}", super::BENCH_SVG);
    let cases = &report.cases;
    let series = series(report);
    let pick = |ci: usize, code: usize, est: usize| {
        let c = &cases[ci];
        let e = &c.codes[code].estimates;
        let i = if est == 0 { &e.marginal } else { &e.tree };
        (i.bits / c.truth, i.lo / c.truth, i.hi / c.truth)
    };
    let mut lo = 0.5f64;
    let mut hi = 2.0f64;
    for ci in 0..cases.len() {
        for &(code, est, _, _) in &series {
            let (v, a, b) = pick(ci, code, est);
            for x in [v, a, b].into_iter().filter(|x| x.is_finite() && *x > 0.0) {
                lo = lo.min(x);
                hi = hi.max(x);
            }
        }
    }
    let (lo, hi) = (lo / 1.2, hi * 1.2);
    let width = (160 + 95 * cases.len()).max(700) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let names: Vec<String> = cases.iter().map(|c| c.case.name.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "entropy estimate ÷ true joint entropy, held-out rows (1 = exact)",
                ("sans-serif", 18),
            )
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..cases.len() as f64, (lo..hi).log_scale())
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(cases.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let g = x.floor() as usize;
                if (x - g as f64 - 0.5).abs() < 0.26 && g < names.len() {
                    names[g].clone()
                } else {
                    String::new()
                }
            })
            .y_labels(12)
            .y_desc("estimate ÷ truth (log scale)")
            .y_label_formatter(&|v| format!("{v:.2}"))
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 1.0), (cases.len() as f64, 1.0)],
                BLACK.stroke_width(1),
            ))
            .map_err(|e| err(&e))?;
        let k = series.len().max(1) as f64;
        for (s, (code, est, name, colour)) in series.iter().enumerate() {
            let colour = *colour;
            let dx = 0.12 + 0.76 * (s as f64 + 0.5) / k;
            let pts: Vec<(f64, f64, f64, f64)> = (0..cases.len())
                .map(|ci| {
                    let (v, a, b) = pick(ci, *code, *est);
                    (ci as f64 + dx, v, a, b)
                })
                .filter(|p| p.1.is_finite() && p.1 > 0.0)
                .collect();
            if *est == 2 {
                chart
                    .draw_series(pts.iter().map(|&(x, _, a, b)| {
                        PathElement::new(
                            vec![(x, a.max(lo)), (x, b.max(lo))],
                            colour.stroke_width(2),
                        )
                    }))
                    .map_err(|e| err(&e))?;
                chart
                    .draw_series(
                        pts.iter()
                            .map(|&(x, v, _, _)| Circle::new((x, v), 5, colour.filled())),
                    )
                    .map_err(|e| err(&e))?
                    .label(name.clone())
                    .legend(move |(x, y)| Circle::new((x + 5, y), 5, colour.filled()));
            } else {
                chart
                    .draw_series(
                        pts.iter()
                            .map(|&(x, v, _, _)| TriangleMarker::new((x, v), 5, colour.filled())),
                    )
                    .map_err(|e| err(&e))?
                    .label(name.clone())
                    .legend(move |(x, y)| TriangleMarker::new((x + 5, y), 5, colour.filled()));
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}
