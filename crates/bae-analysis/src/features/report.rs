//! Static HTML report of a [`FeatureReport`]: one self-contained folder, readable offline (no
//! network, no CDN, no web fonts), written atomically.
//!
//! ```text
//! out/
//!   index.html          header (run, arch, model, corpus, counts) + the feature table
//!   index.js            draws, sorts and filters the table from the JSON embedded in index.html
//!   style.css           light/dark neutral styling shared by all pages
//!   report.json         the FeatureReport, serialised with serde_json
//!   features/f00123.html  one page per feature (every feature, also those with few samples)
//! ```
//!
//! The index table is rendered by `index.js` from a compact `<script type="application/json"
//! id="feature-data">` block (one array per feature: the index columns and the first sample's
//! token), so 8,192 features stay fast. Its state lives in the URL fragment, read on load and
//! rewritten on every change, so a view can be bookmarked or opened directly:
//!
//! ```text
//! index.html#sort=rare_rate&dir=asc&q=march&interp=1&min=0.01&max=1
//! ```
//!
//! `sort` is a column key (`feature`, `rate`, `rare_value`, `rare_rate`, `salience_density`,
//! `n_samples`, `comsem`, `detection`, `token`, `description`), `dir` is `asc` or `desc`, `q` a
//! case-insensitive substring of the description or the first sample's token, `interp=1` keeps
//! the interpretable features (at least [`MIN_SAMPLES`] samples), `min` / `max` bound the
//! rare-value rate in percent of tokens.
//!
//! Feature pages need no JavaScript. [`screenshot`] renders a page to PNG with headless chromium
//! (`bash scripts/chromium_setup.sh` installs it); [`headless`] runs chromium with a timeout.

use super::{FeatureEntry, FeatureReport, Histogram, MIN_SAMPLES, Sample};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What [`write_html`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HtmlSummary {
    /// the report folder (`out`)
    pub dir: PathBuf,
    /// HTML pages: the index and one page per feature
    pub pages: usize,
    /// all files written (pages, style.css, index.js, report.json)
    pub files: usize,
    /// their total size
    pub bytes: u64,
}

/// Page file name of a feature, relative to `features/`.
pub fn feature_file(feature: usize) -> String {
    format!("f{feature:05}.html")
}

/// Write the report folder `out` atomically: everything is built in the sibling
/// `out.tmp-<pid>`, then swapped in. An existing `out` is replaced only if it holds a
/// `report.json` (a report written before); anything else is refused. Errors are one line naming
/// the path.
pub fn write_html(report: &FeatureReport, out: &Path) -> Result<HtmlSummary, String> {
    let name = out
        .file_name()
        .ok_or_else(|| format!("{}: not a folder name for the report", out.display()))?
        .to_string_lossy()
        .into_owned();
    check_replaceable(out)?;
    let mut seen = HashSet::new();
    for f in &report.features {
        if !seen.insert(f.feature) {
            return Err(format!(
                "{}: feature {} appears twice in the report",
                out.display(),
                f.feature
            ));
        }
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|e| format!("{}: cannot create: {e}", parent.display()))?;
    let pid = std::process::id();
    let tmp = parent.join(format!("{name}.tmp-{pid}"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| format!("{}: cannot remove: {e}", tmp.display()))?;
    }
    let built = build_into(report, &tmp);
    let (files, bytes) = match built {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    // swap: old report aside, new one in, old one removed
    check_replaceable(out).inspect_err(|_| {
        let _ = fs::remove_dir_all(&tmp);
    })?;
    let old = parent.join(format!("{name}.old-{pid}"));
    let had_old = out.exists();
    if had_old {
        if old.exists() {
            fs::remove_dir_all(&old)
                .map_err(|e| format!("{}: cannot remove: {e}", old.display()))?;
        }
        fs::rename(out, &old).map_err(|e| {
            let _ = fs::remove_dir_all(&tmp);
            format!("{}: cannot move the old report aside: {e}", out.display())
        })?;
    }
    if let Err(e) = fs::rename(&tmp, out) {
        if had_old {
            let _ = fs::rename(&old, out);
        }
        let _ = fs::remove_dir_all(&tmp);
        return Err(format!(
            "{}: cannot move the report in place: {e}",
            out.display()
        ));
    }
    if had_old {
        fs::remove_dir_all(&old).map_err(|e| format!("{}: cannot remove: {e}", old.display()))?;
    }
    Ok(HtmlSummary {
        dir: out.to_path_buf(),
        pages: report.features.len() + 1,
        files,
        bytes,
    })
}

fn check_replaceable(out: &Path) -> Result<(), String> {
    match fs::symlink_metadata(out) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() && out.join("report.json").is_file() => Ok(()),
        Ok(_) => Err(format!(
            "{}: exists and is not a feature report folder (no report.json); refusing to replace it",
            out.display()
        )),
    }
}

/// Write every file into `dir` (created); returns (files, bytes).
fn build_into(report: &FeatureReport, dir: &Path) -> Result<(usize, u64), String> {
    let features_dir = dir.join("features");
    fs::create_dir_all(&features_dir)
        .map_err(|e| format!("{}: cannot create: {e}", features_dir.display()))?;
    let mut files = 0usize;
    let mut bytes = 0u64;
    let mut put = |path: PathBuf, data: &[u8]| -> Result<(), String> {
        fs::write(&path, data).map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        files += 1;
        bytes += data.len() as u64;
        Ok(())
    };
    put(dir.join("style.css"), STYLE_CSS.as_bytes())?;
    let js = INDEX_JS.replace("__MIN_SAMPLES__", &MIN_SAMPLES.to_string());
    put(dir.join("index.js"), js.as_bytes())?;
    let json = serde_json::to_vec(report).map_err(|e| {
        format!(
            "{}: cannot serialise: {e}",
            dir.join("report.json").display()
        )
    })?;
    put(dir.join("report.json"), &json)?;
    put(dir.join("index.html"), index_html(report).as_bytes())?;
    let present: HashSet<usize> = report.features.iter().map(|f| f.feature).collect();
    for (i, f) in report.features.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| report.features[j].feature);
        let next = report.features.get(i + 1).map(|g| g.feature);
        let page = feature_html(report, f, prev, next, &present);
        put(features_dir.join(feature_file(f.feature)), page.as_bytes())?;
    }
    Ok((files, bytes))
}

// ---------------------------------------------------------------- text helpers

/// Escape text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// Corpus text for a context cell: newlines as ⏎, other control characters as their visible
/// Unicode control pictures, then escaped. Spaces are kept (the cells are `white-space: pre`).
fn ctx(s: &str) -> String {
    let shown: String = s
        .chars()
        .filter(|&c| c != '\r')
        .map(|c| match c {
            '\n' => '⏎',
            '\t' => '⇥',
            c if (c as u32) < 0x20 => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
            '\u{7f}' => '␡',
            c => c,
        })
        .collect();
    esc(&shown)
}

/// A share as a percentage with enough digits to tell rare rates apart: 38 %, 0.38 %, 0.0012 %.
pub fn fmt_pct(x: f64) -> String {
    let v = x * 100.0;
    if !v.is_finite() {
        return format!("{v} %");
    }
    if v == 0.0 {
        return "0 %".to_string();
    }
    let a = v.abs();
    let decimals = if a >= 10.0 {
        1
    } else if a >= 0.1 {
        2
    } else {
        ((-a.log10()).ceil() as usize + 1).min(12)
    };
    format!("{v:.decimals$} %")
}

fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 1e-3 {
        format!("{x:.3}")
    } else {
        format!("{x:.2e}")
    }
}

fn fmt_count(n: u64) -> String {
    let s = n.to_string();
    let mut o = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            o.push(',');
        }
        o.push(ch);
    }
    o
}

fn rare_word(v: u8) -> &'static str {
    if v == 1 { "fires" } else { "silent" }
}

/// The share of tokens on which the feature takes its rare value.
fn event_rate(f: &FeatureEntry) -> f64 {
    if f.rare_value == 1 {
        f.rate
    } else {
        1.0 - f.rate
    }
}

/// JSON for embedding in a `<script>` element: `<`, `>` and `&` as \u escapes so no `</script>`
/// or comment opener can appear.
fn script_json(v: &serde_json::Value) -> String {
    let s = serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    let mut o = String::with_capacity(s.len() + 64);
    for c in s.chars() {
        match c {
            '<' => o.push_str("\\u003c"),
            '>' => o.push_str("\\u003e"),
            '&' => o.push_str("\\u0026"),
            '\u{2028}' => o.push_str("\\u2028"),
            '\u{2029}' => o.push_str("\\u2029"),
            _ => o.push(c),
        }
    }
    o
}

fn finite_or_null(x: f64) -> serde_json::Value {
    if x.is_finite() {
        serde_json::json!(x)
    } else {
        serde_json::Value::Null
    }
}

fn page_head(title: &str, css: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<link rel=\"stylesheet\" href=\"{css}\">\n",
        esc(title)
    )
}

// ---------------------------------------------------------------- index

fn index_html(r: &FeatureReport) -> String {
    let n = r.features.len();
    let interpretable = r.features.iter().filter(|f| f.interpretable()).count();
    let interpreted: Vec<f64> = r
        .features
        .iter()
        .filter_map(|f| f.interpretation.as_ref().map(|i| i.comsem))
        .filter(|c| c.is_finite())
        .collect();
    let rows: Vec<serde_json::Value> = r
        .features
        .iter()
        .map(|f| {
            let (comsem, comsem_n, detection, description) = match &f.interpretation {
                Some(i) => (
                    finite_or_null(i.comsem),
                    serde_json::json!(i.comsem_n),
                    i.detection.map_or(serde_json::Value::Null, finite_or_null),
                    serde_json::json!(i.description),
                ),
                None => (
                    serde_json::Value::Null,
                    serde_json::Value::Null,
                    serde_json::Value::Null,
                    serde_json::Value::Null,
                ),
            };
            let token = f
                .samples
                .first()
                .or(f.strongest.first())
                .map_or(serde_json::Value::Null, |s| {
                    serde_json::json!(s.context.token)
                });
            serde_json::json!([
                f.feature,
                finite_or_null(f.rate),
                f.rare_value,
                finite_or_null(f.rare_rate),
                finite_or_null(f.salience_density),
                f.n_samples,
                comsem,
                comsem_n,
                detection,
                description,
                token,
            ])
        })
        .collect();
    let data = script_json(&serde_json::Value::Array(rows));

    let title = format!("Features of {} ({})", r.run, r.arch);
    let mut h = page_head(&title, "style.css");
    h.push_str("<script src=\"index.js\" defer></script>\n</head>\n<body class=\"index\">\n");
    let _ = writeln!(h, "<h1>{}</h1>", esc(&title));
    h.push_str("<dl class=\"meta\">\n");
    let meta: [(&str, String); 7] = [
        ("run", esc(&r.run)),
        ("architecture", esc(&r.arch)),
        ("model", esc(&r.model)),
        ("corpus", esc(&r.corpus)),
        ("rows", fmt_count(r.rows as u64)),
        ("top-k", r.top_k.to_string()),
        (
            "rescale",
            if r.rescale {
                "yes (baselines ranked by z-scored activation)".into()
            } else {
                "no".into()
            },
        ),
    ];
    for (k, v) in meta {
        let _ = writeln!(h, "<div><dt>{k}</dt><dd>{v}</dd></div>");
    }
    h.push_str("</dl>\n<p class=\"counts\">");
    let _ = write!(
        h,
        "<b>{}</b> features · <b>{}</b> interpretable (≥ {MIN_SAMPLES} samples)",
        fmt_count(n as u64),
        fmt_count(interpretable as u64)
    );
    if !interpreted.is_empty() {
        let mean = interpreted.iter().sum::<f64>() / interpreted.len() as f64;
        let _ = write!(
            h,
            " · mean ComSem <b>{mean:.3}</b> over {} interpreted",
            fmt_count(interpreted.len() as u64)
        );
    }
    h.push_str(" · <a href=\"report.json\">report.json</a></p>\n");
    h.push_str(
        "<noscript><p class=\"warn\">The table below is drawn by index.js: listing, sorting and \
         filtering the features need JavaScript. Each feature page (features/f00000.html …) \
         works without it.</p></noscript>\n",
    );
    h.push_str(
        "<form class=\"filters\" id=\"filters\" onsubmit=\"return false\">\n\
         <label>filter <input type=\"search\" id=\"q\" placeholder=\"description or token\" \
         size=\"28\"></label>\n\
         <label><input type=\"checkbox\" id=\"interp\"> interpretable only</label>\n\
         <label>rare-value rate from <input type=\"number\" id=\"min\" step=\"any\" min=\"0\" \
         max=\"100\" size=\"7\"> % to <input type=\"number\" id=\"max\" step=\"any\" min=\"0\" \
         max=\"100\" size=\"7\"> %</label>\n\
         <span id=\"count\" class=\"count\"></span>\n</form>\n",
    );
    h.push_str("<table class=\"features\" id=\"features\">\n<thead><tr>");
    let cols: [(&str, &str, &str); 10] = [
        ("feature", "feature", "num"),
        ("rate", "rate", "num"),
        ("rare_value", "rare value", ""),
        ("rare_rate", "rare-value rate", "num"),
        ("salience_density", "salience density", "num"),
        ("n_samples", "samples", "num"),
        ("comsem", "ComSem", "num"),
        ("detection", "detection", "num"),
        ("token", "first token", ""),
        ("description", "description", ""),
    ];
    for (key, label, class) in cols {
        let _ = write!(
            h,
            "<th data-key=\"{key}\" class=\"{class}\" tabindex=\"0\" \
             title=\"sort by {label}\">{label}<span class=\"arrow\"></span></th>"
        );
    }
    h.push_str("</tr></thead>\n<tbody id=\"rows\"></tbody>\n</table>\n");
    let _ = writeln!(
        h,
        "<script type=\"application/json\" id=\"feature-data\">{data}</script>"
    );
    h.push_str(
        "<p class=\"legend\">rate: share of tokens on which the feature fires · rare value: the \
         salient event (a BAE feature with rate &gt; 50 % is read by when it goes silent) · \
         salience density: share of tokens with the feature among their top-k by salience · \
         samples: all top-k hits over the corpus · ComSem / detection: the judge's scores \
         (bae interpret). Click a column header to sort; the view is kept in the URL \
         (#sort=…&amp;dir=…&amp;q=…&amp;interp=1&amp;min=…&amp;max=…).</p>\n</body>\n</html>\n",
    );
    h
}

// ---------------------------------------------------------------- feature page

fn feature_html(
    r: &FeatureReport,
    f: &FeatureEntry,
    prev: Option<usize>,
    next: Option<usize>,
    present: &HashSet<usize>,
) -> String {
    let verb = if f.rare_value == 1 {
        "fires on"
    } else {
        "goes silent on"
    };
    let title = format!(
        "Feature {} — {verb} {} of tokens",
        f.feature,
        fmt_pct(event_rate(f))
    );
    let mut h = page_head(&format!("{title} · {}", r.run), "../style.css");
    h.push_str("</head>\n<body class=\"feature\">\n");
    let nav = nav_html(prev, next);
    h.push_str(&nav);
    let _ = writeln!(h, "<h1>{}</h1>", esc(&title));
    let _ = writeln!(
        h,
        "<p class=\"sub\">run {} ({}) · rate {} · rare value {} ({}) · rare-value rate {} · \
         salience density {} · {} samples (top-{} hits)</p>",
        esc(&r.run),
        esc(&r.arch),
        fmt_pct(f.rate),
        f.rare_value,
        rare_word(f.rare_value),
        fmt_pct(f.rare_rate),
        fmt_pct(f.salience_density),
        fmt_count(f.n_samples),
        r.top_k
    );
    if !f.interpretable() {
        let _ = writeln!(
            h,
            "<p class=\"warn few\">Only {} sample{} (fewer than {MIN_SAMPLES}): this feature is \
             not interpretable by the ComSem pipeline; the samples below are all there are.</p>",
            f.n_samples,
            if f.n_samples == 1 { "" } else { "s" }
        );
    }
    match &f.interpretation {
        Some(i) => {
            h.push_str("<section class=\"interp\">\n<h2>Interpretation</h2>\n");
            let _ = writeln!(h, "<p class=\"desc\">{}</p>", esc(&i.description));
            let yes = (i.comsem * i.comsem_n as f64).round() as u64;
            let _ = write!(
                h,
                "<p>ComSem <b>{:.3}</b> ({yes} of {} verification samples judged Yes)",
                i.comsem, i.comsem_n
            );
            match i.detection {
                Some(d) => {
                    let _ = write!(
                        h,
                        " · detection <b>{d:.3}</b> (balanced accuracy over {})",
                        i.detection_n
                    );
                }
                None => h.push_str(" · detection not measured"),
            }
            if i.malformed > 0 {
                let _ = write!(h, " · {} malformed answers not counted", i.malformed);
            }
            let _ = writeln!(h, " · judge {}</p>\n</section>", esc(&i.judge));
        }
        None => {
            h.push_str("<p class=\"muted\">No interpretation yet (bae interpret writes one).</p>\n")
        }
    }

    h.push_str("<section class=\"hist\">\n<h2>Distribution</h2>\n");
    h.push_str(&histogram_html(&f.histogram));
    h.push_str("</section>\n");

    let _ = writeln!(
        h,
        "<section>\n<h2>Samples in corpus order</h2>\n<p class=\"muted\">{} shown of {} \
         (the first tokens of the corpus with this feature among their top-{} by salience)</p>",
        f.samples.len(),
        fmt_count(f.n_samples),
        r.top_k
    );
    h.push_str(&samples_html(&f.samples));
    h.push_str("</section>\n<section>\n<h2>Strongest samples</h2>\n");
    let _ = writeln!(
        h,
        "<p class=\"muted\">{} shown, strongest first (strength: the pre-activation signed \
         towards the rare value for a BAE, the activation for a baseline)</p>",
        f.strongest.len()
    );
    h.push_str(&samples_html(&f.strongest));
    h.push_str("</section>\n");

    h.push_str("<section class=\"logits\">\n<div>\n<h2>Promotes</h2>\n");
    h.push_str(&logit_table(&f.promotes));
    h.push_str("</div>\n<div>\n<h2>Suppresses</h2>\n");
    h.push_str(&logit_table(&f.suppresses));
    h.push_str("</div>\n</section>\n");

    h.push_str("<section>\n<h2>Co-activates with</h2>\n");
    if f.coactive.is_empty() {
        h.push_str("<p class=\"muted\">none recorded</p>\n");
    } else {
        h.push_str(
            "<table class=\"coactive\"><thead><tr><th>feature</th><th class=\"num\">tokens \
             together</th><th class=\"num\">Jaccard</th></tr></thead><tbody>\n",
        );
        for c in &f.coactive {
            let link = if present.contains(&c.feature) {
                format!("<a href=\"{}\">{}</a>", feature_file(c.feature), c.feature)
            } else {
                c.feature.to_string()
            };
            let _ = writeln!(
                h,
                "<tr><td>{link}</td><td class=\"num\">{}</td><td class=\"num\">{:.3}</td></tr>",
                fmt_count(c.count),
                c.jaccard
            );
        }
        h.push_str("</tbody></table>\n");
    }
    h.push_str("</section>\n");
    h.push_str(&nav);
    h.push_str("</body>\n</html>\n");
    h
}

fn nav_html(prev: Option<usize>, next: Option<usize>) -> String {
    let mut h = String::from("<nav>");
    match prev {
        Some(p) => {
            let _ = write!(
                h,
                "<a rel=\"prev\" href=\"{}\">← feature {p}</a>",
                feature_file(p)
            );
        }
        None => h.push_str("<span class=\"muted\">← first</span>"),
    }
    h.push_str(" · <a href=\"../index.html\">index</a> · ");
    match next {
        Some(n) => {
            let _ = write!(
                h,
                "<a rel=\"next\" href=\"{}\">feature {n} →</a>",
                feature_file(n)
            );
        }
        None => h.push_str("<span class=\"muted\">last →</span>"),
    }
    h.push_str("</nav>\n");
    h
}

fn samples_html(samples: &[Sample]) -> String {
    if samples.is_empty() {
        return "<p class=\"muted\">none</p>\n".into();
    }
    let mut h = String::from(
        "<table class=\"samples\"><thead><tr><th>doc · position</th><th class=\"num\">salience\
         </th><th class=\"num\">strength</th><th class=\"before\">before</th><th>token</th>\
         <th>after</th></tr></thead><tbody>\n",
    );
    for s in samples {
        let _ = writeln!(
            h,
            "<tr><td class=\"where\" title=\"row {}, token id {}\">doc {} · {}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"before\"><span>{}</span></td><td class=\"tok\"><mark>{}</mark></td>\
             <td class=\"after\">{}</td></tr>",
            s.row,
            s.token_id,
            s.doc,
            s.position,
            fmt_num(s.salience as f64),
            fmt_num(s.strength as f64),
            ctx(&s.context.before),
            ctx(&s.context.token),
            ctx(&s.context.after),
        );
    }
    h.push_str("</tbody></table>\n");
    h
}

fn logit_table(effects: &[super::LogitEffect]) -> String {
    if effects.is_empty() {
        return "<p class=\"muted\">none recorded</p>\n".into();
    }
    let mut h = String::from(
        "<table class=\"logit\"><thead><tr><th>token</th><th class=\"num\">logit effect</th>\
         </tr></thead><tbody>\n",
    );
    for e in effects {
        let _ = writeln!(
            h,
            "<tr><td class=\"tokcell\">{}</td><td class=\"num\">{:+.3}</td></tr>",
            ctx(&e.token),
            e.value
        );
    }
    h.push_str("</tbody></table>\n");
    h
}

// ---------------------------------------------------------------- histogram

/// Ticks at 1, 2 or 5 × 10^k covering [lo, hi], about `n` of them.
fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let usable = lo.is_finite() && hi.is_finite() && hi > lo;
    if !usable {
        return vec![lo];
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

fn tick_label(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-4 || v.abs() >= 1e7 {
        return format!("{v:.2e}");
    }
    let s = format!("{:.6}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

fn histogram_html(hg: &Histogram) -> String {
    let total: u64 = hg.counts.iter().sum();
    let usable = hg.lo.is_finite() && hg.hi.is_finite() && hg.hi > hg.lo;
    if hg.counts.is_empty() || !usable {
        return format!(
            "<p class=\"muted\">no histogram ({} values, range [{}, {}]); exact zeros: {}</p>\n",
            total,
            tick_label(hg.lo),
            tick_label(hg.hi),
            fmt_count(hg.zeros)
        );
    }
    let (w, hgt) = (760.0f64, 240.0f64);
    let (ml, mr, mt, mb) = (64.0, 16.0, 14.0, 46.0);
    let (pw, ph) = (w - ml - mr, hgt - mt - mb);
    let nb = hg.counts.len() as f64;
    let bw = pw / nb;
    let gap = if bw > 4.0 { 1.0 } else { 0.0 };
    let max = hg.counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let xpos = |v: f64| ml + (v - hg.lo) / (hg.hi - hg.lo) * pw;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<input type=\"checkbox\" id=\"logy\"><label for=\"logy\"> log count axis</label>\n\
         <figure><svg class=\"histogram\" xmlns=\"http://www.w3.org/2000/svg\" \
         viewBox=\"0 0 {w} {hgt}\" width=\"{w}\" height=\"{hgt}\" role=\"img\" \
         aria-label=\"histogram of {}\">",
        esc(&hg.label)
    );
    // two y scales, toggled by the checkbox (CSS only)
    for (class, logy) in [("lin", false), ("log", true)] {
        let scale = |c: f64| {
            if logy {
                (1.0 + c).log10() / (1.0 + max).log10()
            } else {
                c / max
            }
        };
        let _ = writeln!(s, "<g class=\"{class}\">");
        for (i, &c) in hg.counts.iter().enumerate() {
            let bh = scale(c as f64) * ph;
            let x = ml + i as f64 * bw;
            let a = hg.lo + (hg.hi - hg.lo) * i as f64 / nb;
            let b = hg.lo + (hg.hi - hg.lo) * (i + 1) as f64 / nb;
            let _ = write!(
                s,
                "<rect class=\"bar\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\">",
                mt + ph - bh,
                (bw - gap).max(0.5),
            );
            // the tooltip once (the linear bars), the log bars stay plain
            if !logy {
                let _ = write!(
                    s,
                    "<title>[{}, {}): {}</title>",
                    tick_label(a),
                    tick_label(b),
                    fmt_count(c)
                );
            }
            s.push_str("</rect>\n");
        }
        let yt: Vec<f64> = if logy {
            let mut v = vec![0.0];
            let mut p = 1.0;
            while p <= max {
                v.push(p);
                p *= 10.0;
            }
            v
        } else {
            nice_ticks(0.0, max, 4)
        };
        for t in yt {
            let y = mt + ph - scale(t) * ph;
            let _ = writeln!(
                s,
                "<line class=\"tick\" x1=\"{:.2}\" x2=\"{ml}\" y1=\"{y:.2}\" y2=\"{y:.2}\"/>\
                 <text class=\"ylab\" x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"end\">{}</text>",
                ml - 4.0,
                ml - 6.0,
                y + 4.0,
                fmt_count(t as u64)
            );
        }
        s.push_str("</g>\n");
    }
    // axes
    let _ = writeln!(
        s,
        "<line class=\"axis\" x1=\"{ml}\" x2=\"{ml}\" y1=\"{mt}\" y2=\"{:.2}\"/>\
         <line class=\"axis\" x1=\"{ml}\" x2=\"{:.2}\" y1=\"{:.2}\" y2=\"{:.2}\"/>",
        mt + ph,
        ml + pw,
        mt + ph,
        mt + ph
    );
    for t in nice_ticks(hg.lo, hg.hi, 8) {
        let x = xpos(t);
        let _ = writeln!(
            s,
            "<line class=\"tick\" x1=\"{x:.2}\" x2=\"{x:.2}\" y1=\"{:.2}\" y2=\"{:.2}\"/>\
             <text class=\"xlab\" x=\"{x:.2}\" y=\"{:.2}\" text-anchor=\"middle\">{}</text>",
            mt + ph,
            mt + ph + 4.0,
            mt + ph + 16.0,
            tick_label(t)
        );
    }
    let _ = writeln!(
        s,
        "<text class=\"axlabel\" x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"middle\">{}</text>\
         <text class=\"axlabel\" transform=\"translate(14 {:.2}) rotate(-90)\" \
         text-anchor=\"middle\">tokens</text>",
        ml + pw / 2.0,
        hgt - 6.0,
        esc(&hg.label),
        mt + ph / 2.0
    );
    let mut note = String::new();
    if let Some(t) = hg.threshold {
        if t >= hg.lo && t <= hg.hi {
            let x = xpos(t);
            let _ = writeln!(
                s,
                "<line class=\"threshold\" x1=\"{x:.2}\" x2=\"{x:.2}\" y1=\"{mt}\" y2=\"{:.2}\"/>\
                 <text class=\"thrlab\" x=\"{:.2}\" y=\"{:.2}\">threshold {}</text>",
                mt + ph,
                x + 4.0,
                mt + 10.0,
                tick_label(t)
            );
        } else {
            let _ = write!(
                note,
                " · threshold {} lies outside the plotted range",
                tick_label(t)
            );
        }
    }
    s.push_str("</svg></figure>\n");
    let _ = writeln!(
        s,
        "<p class=\"muted\">{} values in {} bins over [{}, {}] · exact zeros (not in the bins): \
         {}{note}</p>",
        fmt_count(total),
        hg.counts.len(),
        tick_label(hg.lo),
        tick_label(hg.hi),
        fmt_count(hg.zeros)
    );
    s
}

// ---------------------------------------------------------------- headless chromium

/// The chromium binary: `/usr/bin/chromium`, else `chromium` or `chromium-browser` on PATH.
pub fn chromium_path() -> Option<PathBuf> {
    let fixed = Path::new("/usr/bin/chromium");
    if fixed.is_file() {
        return Some(fixed.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// A `file://` URL for a local path (made absolute, reserved bytes percent-encoded).
pub fn file_url(path: &Path) -> Result<String, String> {
    let abs = fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut url = String::from("file://");
    for &b in abs.to_string_lossy().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            url.push(b as char);
        } else {
            let _ = write!(url, "%{b:02X}");
        }
    }
    Ok(url)
}

/// What a headless chromium run printed.
#[derive(Clone, Debug)]
pub struct Headless {
    pub stdout: String,
    pub stderr: String,
}

/// Run headless chromium with `args` after the fixed flags (no sandbox: root in CI; no network
/// services; a fresh profile in a temp folder; `--enable-logging=stderr --v=0`, which puts the
/// pages' console messages on stderr as `...:CONSOLE...] "message", source: url (line)`).
/// Killed (its whole process group) after `timeout`, which is then an error.
pub fn headless(args: &[String], timeout: Duration) -> Result<Headless, String> {
    use std::os::unix::process::CommandExt;
    let chromium = chromium_path().ok_or_else(|| {
        "chromium not installed (bash scripts/chromium_setup.sh installs it)".to_string()
    })?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let work = std::env::temp_dir().join(format!(
        "bae-chromium-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let profile = work.join("profile");
    fs::create_dir_all(&profile).map_err(|e| format!("{}: cannot create: {e}", work.display()))?;
    let result = (|| {
        let out_path = work.join("stdout");
        let err_path = work.join("stderr");
        let out_f = fs::File::create(&out_path)
            .map_err(|e| format!("{}: cannot create: {e}", out_path.display()))?;
        let err_f = fs::File::create(&err_path)
            .map_err(|e| format!("{}: cannot create: {e}", err_path.display()))?;
        let mut cmd = Command::new(&chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(out_f)
        .stderr(err_f)
        .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{}: cannot start: {e}", chromium.display()))?;
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if Instant::now() >= deadline => {
                    // the browser and its helpers share the process group we gave it
                    let _ = Command::new("kill")
                        .args(["-KILL", "--", &format!("-{}", child.id())])
                        .stderr(Stdio::null())
                        .status();
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{}: no result after {} s, killed ({})",
                        chromium.display(),
                        timeout.as_secs(),
                        args.join(" ")
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(format!("{}: {e}", chromium.display())),
            }
        };
        let stdout = String::from_utf8_lossy(&fs::read(&out_path).unwrap_or_default()).into_owned();
        let stderr = String::from_utf8_lossy(&fs::read(&err_path).unwrap_or_default()).into_owned();
        if !status.success() {
            let last = stderr.lines().last().unwrap_or("").to_string();
            return Err(format!(
                "{}: exited with {status} ({}): {last}",
                chromium.display(),
                args.join(" ")
            ));
        }
        Ok(Headless { stdout, stderr })
    })();
    let _ = fs::remove_dir_all(&work);
    result
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Render `html` (a page of the report, or any local page) to `png` at `width`×`height` CSS
/// pixels with headless chromium (60 s timeout), e.g. for the README:
///
/// ```no_run
/// # use std::path::Path;
/// use bae_analysis::features::report::screenshot;
/// screenshot(Path::new("runs/main/report/index.html"), Path::new("docs/report_index.png"), 1280, 900)?;
/// # Ok::<(), String>(())
/// ```
pub fn screenshot(html: &Path, png: &Path, width: u32, height: u32) -> Result<(), String> {
    let url = file_url(html)?;
    if let Some(dir) = png.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    }
    // chromium resolves a relative --screenshot path against its own working directory
    let target = if png.is_absolute() {
        png.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("{}: {e}", png.display()))?
            .join(png)
    };
    let _ = fs::remove_file(&target);
    headless(
        &[
            format!("--screenshot={}", target.display()),
            format!("--window-size={width},{height}"),
            "--hide-scrollbars".into(),
            "--virtual-time-budget=3000".into(),
            url,
        ],
        Duration::from_secs(60),
    )?;
    match fs::metadata(&target) {
        Ok(m) if m.len() > 0 => Ok(()),
        _ => Err(format!(
            "{}: chromium wrote no screenshot of {}",
            png.display(),
            html.display()
        )),
    }
}

// ---------------------------------------------------------------- static assets

const STYLE_CSS: &str = r#":root {
  color-scheme: light dark;
  --bg: #fbfbfa; --fg: #1f2328; --muted: #6a717a; --border: #d8dadd; --stripe: #f1f2f3;
  --link: #0a58b8; --mark: #ffe27a; --mark-fg: #111; --bar: #5a82b4; --thr: #c2372b;
  --warn-bg: #fff4d6; --warn-fg: #5c4300;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #16181b; --fg: #e3e5e8; --muted: #9aa1a9; --border: #33373c; --stripe: #1d2024;
    --link: #7cb4ff; --mark: #8a6a00; --mark-fg: #fff; --bar: #6f9bd3; --thr: #ff7466;
    --warn-bg: #3a3016; --warn-fg: #f3dc9a;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0 auto; padding: 16px 24px 40px; max-width: 1260px;
  background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
a { color: var(--link); text-decoration: none; }
a:hover { text-decoration: underline; }
h1 { font-size: 22px; margin: 8px 0 4px; }
h2 { font-size: 16px; margin: 22px 0 6px; }
.muted { color: var(--muted); }
.warn { background: var(--warn-bg); color: var(--warn-fg); padding: 6px 10px; border-radius: 4px; }
.sub { color: var(--muted); margin: 0 0 10px; }
dl.meta { display: flex; flex-wrap: wrap; gap: 4px 22px; margin: 6px 0; }
dl.meta div { display: flex; gap: 6px; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
.counts { margin: 6px 0 10px; }
form.filters { display: flex; flex-wrap: wrap; gap: 8px 18px; align-items: center; margin: 8px 0;
  position: sticky; top: 0; background: var(--bg); padding: 6px 0; z-index: 2; }
form.filters input[type=number] { width: 7em; }
.count { color: var(--muted); margin-left: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 3px 8px; border-bottom: 1px solid var(--border); text-align: left; vertical-align: top; }
th { font-weight: 600; white-space: nowrap; }
tbody tr:nth-child(even) { background: var(--stripe); }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.features th { white-space: normal; vertical-align: bottom; cursor: pointer; user-select: none; position: sticky; top: 44px; background: var(--bg); }
table.features th .arrow { display: inline-block; width: 1em; color: var(--muted); }
table.features td.tok, td.tokcell { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; white-space: pre; }
table.features td.desc { min-width: 12em; overflow-wrap: anywhere; }
table.samples { table-layout: fixed; font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; }
table.samples th { font-family: system-ui, sans-serif; font-size: 13px; }
table.samples th:nth-child(1) { width: 10em; }
table.samples th:nth-child(2), table.samples th:nth-child(3) { width: 6em; }
table.samples th:nth-child(5) { width: 9em; }
table.samples td { white-space: pre; overflow: hidden; }
table.samples td.where { font-family: system-ui, sans-serif; color: var(--muted); }
table.samples td.before { direction: rtl; text-align: right; padding-right: 0; }
table.samples td.before span { direction: ltr; unicode-bidi: embed; }
table.samples td.tok { padding: 3px 0; text-align: center; text-overflow: ellipsis; }
table.samples td.after { padding-left: 0; }
mark { background: var(--mark); color: var(--mark-fg); border-radius: 2px; padding: 0 1px; white-space: pre; }
section.logits { display: flex; gap: 32px; flex-wrap: wrap; }
section.logits > div { flex: 1 1 300px; }
table.coactive { max-width: 480px; }
section.interp .desc { font-size: 16px; margin: 4px 0; }
nav { margin: 6px 0; }
figure { margin: 4px 0; }
svg.histogram { max-width: 100%; height: auto; font: 11px system-ui, sans-serif; }
svg.histogram text { fill: var(--fg); }
svg.histogram .bar { fill: var(--bar); }
svg.histogram .axis, svg.histogram .tick { stroke: var(--muted); stroke-width: 1; }
svg.histogram .threshold { stroke: var(--thr); stroke-width: 2; stroke-dasharray: 5 3; }
svg.histogram .thrlab { fill: var(--thr); }
svg.histogram .log { display: none; }
#logy:checked ~ figure .lin { display: none; }
#logy:checked ~ figure .log { display: inline; }
"#;

const INDEX_JS: &str = r##""use strict";
// The feature table of index.html: rows come from the JSON in <script id="feature-data">, one
// array per feature: [feature, rate, rare_value, rare_rate, salience_density, n_samples, comsem,
// comsem_n, detection, description, first token]. The view lives in the URL fragment:
//   #sort=<key>&dir=asc|desc&q=<text>&interp=1&min=<percent>&max=<percent>
// sort keys: feature rate rare_value rare_rate salience_density n_samples comsem detection token
// description; q matches the description or the first token (case-insensitive substring);
// interp=1 keeps features with at least MIN_SAMPLES samples; min/max bound the rare-value rate
// in percent of tokens. The fragment is read on load (and on hashchange) and rewritten on changes.
(function () {
  var MIN_SAMPLES = __MIN_SAMPLES__;
  var COL = { feature: 0, rate: 1, rare_value: 2, rare_rate: 3, salience_density: 4,
    n_samples: 5, comsem: 6, detection: 8, description: 9, token: 10 };
  var TEXT = { description: true, token: true };
  var data = JSON.parse(document.getElementById("feature-data").textContent);
  var state = { sort: "feature", dir: "asc", q: "", interp: false, min: "", max: "" };
  var tbody = document.getElementById("rows");
  var count = document.getElementById("count");
  var q = document.getElementById("q");
  var interp = document.getElementById("interp");
  var minIn = document.getElementById("min");
  var maxIn = document.getElementById("max");
  var heads = document.querySelectorAll("table.features th[data-key]");

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" }[c];
    });
  }
  function shown(s) {
    return String(s).replace(/\r/g, "").replace(/\n/g, "\u23ce").replace(/\t/g, "\u21e5");
  }
  function pct(x) {
    if (x === null || x === undefined) return "";
    var v = x * 100;
    if (v === 0) return "0 %";
    var a = Math.abs(v);
    var d = a >= 10 ? 1 : a >= 0.1 ? 2 : Math.min(12, Math.ceil(-Math.log10(a)) + 1);
    return v.toFixed(d) + " %";
  }
  function fix(x, d) { return x === null || x === undefined ? "" : x.toFixed(d); }
  function pad(n) { var s = String(n); while (s.length < 5) s = "0" + s; return s; }
  function num(s) {
    if (s === "" || s === null || s === undefined) return null;
    var v = parseFloat(s);
    return isNaN(v) ? null : v;
  }

  function readHash() {
    var h = location.hash.replace(/^#/, "");
    h.split("&").forEach(function (kv) {
      if (!kv) return;
      var i = kv.indexOf("=");
      var k = decodeURIComponent(i < 0 ? kv : kv.slice(0, i));
      var v = i < 0 ? "" : decodeURIComponent(kv.slice(i + 1).replace(/\+/g, " "));
      if (k === "sort" && COL.hasOwnProperty(v)) state.sort = v;
      else if (k === "dir") state.dir = v === "desc" ? "desc" : "asc";
      else if (k === "q") state.q = v;
      else if (k === "interp") state.interp = v === "1" || v === "true";
      else if (k === "min") state.min = v;
      else if (k === "max") state.max = v;
    });
    q.value = state.q;
    interp.checked = state.interp;
    minIn.value = state.min;
    maxIn.value = state.max;
  }
  function writeHash() {
    var parts = ["sort=" + state.sort, "dir=" + state.dir];
    if (state.q) parts.push("q=" + encodeURIComponent(state.q));
    if (state.interp) parts.push("interp=1");
    if (state.min !== "") parts.push("min=" + encodeURIComponent(state.min));
    if (state.max !== "") parts.push("max=" + encodeURIComponent(state.max));
    try { history.replaceState(null, "", "#" + parts.join("&")); } catch (e) { /* file:// */ }
  }

  function compare(a, b) {
    var c = COL[state.sort], x = a[c], y = b[c];
    var xn = x === null || x === undefined, yn = y === null || y === undefined;
    if (xn || yn) {
      if (xn && yn) return a[0] - b[0];
      return xn ? 1 : -1; // missing values last in both directions
    }
    var r = TEXT[state.sort] ? String(x).localeCompare(String(y)) : x - y;
    if (r === 0) r = a[0] - b[0];
    return state.dir === "desc" ? -r : r;
  }

  function row(d) {
    var interpretable = d[5] >= MIN_SAMPLES;
    return "<tr data-feature=\"" + d[0] + "\"" + (interpretable ? "" : " class=\"few\"") + ">" +
      "<td class=\"num\"><a href=\"features/f" + pad(d[0]) + ".html\">" + d[0] + "</a></td>" +
      "<td class=\"num\">" + pct(d[1]) + "</td>" +
      "<td>" + (d[2] === 1 ? "fires" : "silent") + "</td>" +
      "<td class=\"num\">" + pct(d[3]) + "</td>" +
      "<td class=\"num\">" + pct(d[4]) + "</td>" +
      "<td class=\"num\">" + d[5] + "</td>" +
      "<td class=\"num\"" + (d[7] === null ? "" : " title=\"over " + d[7] + " samples\"") + ">" +
      fix(d[6], 3) + "</td>" +
      "<td class=\"num\">" + fix(d[8], 3) + "</td>" +
      "<td class=\"tok\">" + (d[10] === null ? "" : esc(shown(d[10]))) + "</td>" +
      "<td class=\"desc\">" + (d[9] === null ? "" : esc(d[9])) + "</td></tr>";
  }

  function render() {
    var needle = state.q.toLowerCase();
    var lo = num(state.min), hi = num(state.max);
    var rows = data.filter(function (d) {
      if (state.interp && d[5] < MIN_SAMPLES) return false;
      var r = d[3] === null ? null : d[3] * 100;
      if (lo !== null && (r === null || r < lo)) return false;
      if (hi !== null && (r === null || r > hi)) return false;
      if (needle) {
        var hay = ((d[9] || "") + "\n" + (d[10] || "")).toLowerCase();
        if (hay.indexOf(needle) < 0) return false;
      }
      return true;
    });
    rows.sort(compare);
    tbody.innerHTML = rows.map(row).join("");
    count.textContent = rows.length + " of " + data.length + " features shown";
    for (var i = 0; i < heads.length; i++) {
      var th = heads[i], on = th.getAttribute("data-key") === state.sort;
      th.querySelector(".arrow").textContent = on ? (state.dir === "asc" ? "\u25b2" : "\u25bc") : "";
      if (on) th.setAttribute("aria-sort", state.dir === "asc" ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
  }
  function update() { writeHash(); render(); }

  function sortBy(key) {
    if (state.sort === key) state.dir = state.dir === "asc" ? "desc" : "asc";
    else { state.sort = key; state.dir = TEXT[key] || key === "feature" ? "asc" : "desc"; }
    update();
  }
  for (var i = 0; i < heads.length; i++) {
    (function (th) {
      th.addEventListener("click", function () { sortBy(th.getAttribute("data-key")); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(th.getAttribute("data-key")); }
      });
    })(heads[i]);
  }
  q.addEventListener("input", function () { state.q = q.value; update(); });
  interp.addEventListener("change", function () { state.interp = interp.checked; update(); });
  minIn.addEventListener("input", function () { state.min = minIn.value; update(); });
  maxIn.addEventListener("input", function () { state.max = maxIn.value; update(); });
  window.addEventListener("hashchange", function () { readHash(); render(); });

  readHash();
  render();
})();
"##;
