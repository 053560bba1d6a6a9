//! What `bae entropy-bench` prints and writes: the progress line of a case, the aligned table,
//! `entropy_bench.json` and `entropy_bench.svg`.

use super::{BENCH_JSON, BENCH_SVG, BenchReport, CaseResult, chart};
use std::path::Path;

/// A one-line summary of a case (the progress line).
pub fn case_line(c: &CaseResult) -> String {
    let mut s = format!("{} (r {}, truth {:.2} bits):", c.case.name, c.bits, c.truth);
    for code in &c.codes {
        s += &format!(" {} tree {:.2}", code.code, code.estimates.tree.bits);
        if let Some(f) = code.fvu {
            s += &format!(" (FVU {f:.3})");
        }
        s.push(';');
    }
    s.pop();
    s + &format!(" [{:.1} s]", c.seconds)
}

/// The results as an aligned markdown table: per case a row for the true bits and one per BAE.
pub fn table(report: &BenchReport) -> String {
    let pct = (report.options.level * 100.0).round();
    let head = [
        "case".to_string(),
        "r".into(),
        "truth".into(),
        "code".into(),
        "FVU".into(),
        "L0".into(),
        "dead".into(),
        "copies (bits)".into(),
        format!(
            "joint plug-in (≤ {:.1})",
            (report.options.held_out_rows as f64).log2()
        ),
        "marginal".into(),
        "Miller–Madow".into(),
        format!("tree [{pct} % interval]"),
        "tree ÷ truth".into(),
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for c in &report.cases {
        for (k, code) in c.codes.iter().enumerate() {
            let e = &code.estimates;
            let first = k == 0;
            rows.push(vec![
                if first {
                    c.case.name.clone()
                } else {
                    String::new()
                },
                if first {
                    c.bits.to_string()
                } else {
                    String::new()
                },
                if first {
                    format!("{:.2}", c.truth)
                } else {
                    String::new()
                },
                code.code.clone(),
                code.fvu.map_or("–".into(), |f| format!("{f:.3}")),
                format!("{:.2}", e.l0),
                code.dead.to_string(),
                if first {
                    "–".into()
                } else {
                    format!("{} ({}/{})", code.copies, code.bits_copied, c.bits)
                },
                format!("{:.2}", e.joint_plugin),
                format!("{:.2}", e.marginal.bits),
                format!("{:.2}", e.miller_madow.bits),
                format!("{:.2} [{:.2}, {:.2}]", e.tree.bits, e.tree.lo, e.tree.hi),
                format!("{:.2}", e.tree.bits / c.truth),
            ]);
        }
    }
    let widths: Vec<usize> = (0..head.len())
        .map(|j| {
            rows.iter()
                .map(|r| r[j].chars().count())
                .chain([head[j].chars().count()])
                .max()
                .unwrap_or(0)
                .max(3)
        })
        .collect();
    // text columns left, numbers right
    let left = |j: usize| j == 0 || j == 3;
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (j, c) in cells.iter().enumerate() {
            let pad = " ".repeat(widths[j] - c.chars().count());
            if left(j) {
                s += &format!(" {c}{pad} |");
            } else {
                s += &format!(" {pad}{c} |");
            }
        }
        s + "\n"
    };
    let mut s = line(&head);
    s.push('|');
    for (j, w) in widths.iter().enumerate() {
        let dashes = "-".repeat(*w);
        s += &if left(j) {
            format!(" {dashes} |")
        } else {
            format!(" {}: |", &dashes[1..])
        };
    }
    s.push('\n');
    for r in &rows {
        s += &line(r);
    }
    s
}

/// Writes `entropy_bench.json` and `entropy_bench.svg` into `dir` (atomically).
pub fn write_outputs(dir: &Path, report: &BenchReport) -> Result<(), String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("{}: cannot create the folder: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    bae_io::write_atomic(&dir.join(BENCH_JSON), json.as_bytes()).map_err(|e| e.to_string())?;
    let svg = chart::ratio_chart(report)?;
    bae_io::write_atomic(&dir.join(BENCH_SVG), svg.as_bytes()).map_err(|e| e.to_string())
}
