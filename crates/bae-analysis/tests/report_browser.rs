//! The static HTML feature report (`features::report::write_html`): files, escaping of corpus text,
//! report.json round trip, atomic replacement and refusal (no browser); then the real thing in
//! headless chromium over file:// URLs: the index table drawn by index.js (one row per feature),
//! sorting and filtering driven through the URL fragment, a feature page's contexts and
//! histogram, no console errors, and a screenshot.
//!
//! Without chromium the browser test prints one SKIP line and passes, unless REQUIRE_CHROMIUM=1
//! (`bash scripts/chromium_setup.sh` installs it).
//!
//! Console errors: `--enable-logging=stderr --v=0` puts every console message of a page on
//! stderr. Chromium 148 prints them all at INFO (`[...:INFO:CONSOLE:12] "Uncaught ...", source:
//! file:///... (12)`), older ones as `ERROR:CONSOLE(12)`, so the level cannot be told apart; the
//! report's pages log nothing, so any CONSOLE line (or any `Uncaught`) fails the test. A negative
//! control (a deliberately broken index.js) checks that the detector sees an error.

use bae_analysis::features::report::{
    chromium_path, feature_file, file_url, headless, screenshot, write_html,
};
use bae_analysis::features::{
    Coactive, Context, FeatureEntry, FeatureReport, Histogram, Interpretation, LogitEffect, Sample,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

const HOSTILE_SCRIPT: &str = "<script>alert(1)</script>";
const NON_ASCII: &str = "Größe — naïve 日本語 ünïcode";

fn sample(row: usize, before: &str, token: &str, after: &str, strength: f32) -> Sample {
    Sample {
        row,
        doc: (row / 100) as i64,
        position: (row % 100) as i64,
        token_id: 1000 + row as u32,
        salience: 0.5 + (row % 7) as f32 * 0.1,
        strength,
        context: Context {
            before: before.into(),
            token: token.into(),
            after: after.into(),
        },
    }
}

fn histogram(label: &str, threshold: Option<f64>, zeros: u64) -> Histogram {
    Histogram {
        lo: -4.0,
        hi: 3.0,
        counts: (0..28u64).map(|i| (i * 37 + 5) % 113 + i * i).collect(),
        zeros,
        label: label.into(),
        threshold,
    }
}

fn entry(
    feature: usize,
    rate: f64,
    rare_value: u8,
    n_samples: u64,
    n_shown: usize,
) -> FeatureEntry {
    let samples: Vec<Sample> = (0..n_shown)
        .map(|i| {
            sample(
                feature * 1000 + i * 37,
                " the annual message of",
                " March",
                " 1862, to the Congress",
                1.0 + i as f32 * 0.25,
            )
        })
        .collect();
    let mut strongest = samples.clone();
    strongest.reverse();
    FeatureEntry {
        feature,
        rate,
        rare_value,
        rare_rate: if rare_value == 1 { rate } else { 1.0 - rate },
        salience_density: rate * 0.5,
        n_samples,
        samples,
        strongest,
        histogram: histogram("pre-activation z (fires where z > 0)", Some(0.0), 0),
        promotes: vec![
            LogitEffect {
                token: " April".into(),
                value: 1.25,
            },
            LogitEffect {
                token: " May".into(),
                value: 0.75,
            },
        ],
        suppresses: vec![LogitEffect {
            token: " the".into(),
            value: -0.5,
        }],
        coactive: vec![],
        interpretation: None,
    }
}

/// Four features: 3 BAE-like with rare value 0 and hostile contexts, 7 interpreted ("dates in
/// March"), 12 with fewer than 6 samples (the rarest), 20 interpreted with a hostile description.
fn synthetic() -> FeatureReport {
    let mut f3 = entry(3, 0.97, 0, 250, 10);
    f3.samples[0] = sample(
        17,
        HOSTILE_SCRIPT,
        "&amp;",
        "\"quoted\" 'single'\nnext line",
        2.5,
    );
    f3.samples[1] = sample(42, "   leading spaces", "  two", " after", 2.0);
    f3.samples[2] = sample(99, NON_ASCII, "日本", " — fin", 1.5);
    f3.strongest[0] = sample(5, "x < y && y > z", "<b>", "</b> & more", 3.5);
    f3.promotes.push(LogitEffect {
        token: HOSTILE_SCRIPT.into(),
        value: 0.5,
    });
    f3.coactive = vec![
        Coactive {
            feature: 7,
            count: 120,
            jaccard: 0.25,
        },
        Coactive {
            feature: 4242, // not in this report: plain text, no dead link
            count: 3,
            jaccard: 0.001,
        },
    ];
    f3.histogram = histogram("pre-activation z (fires where z > 0)", Some(0.0), 0);

    let mut f7 = entry(7, 0.0038, 1, 80, 8);
    f7.interpretation = Some(Interpretation {
        description: "dates in March".into(),
        comsem: 0.75,
        comsem_n: 8,
        detection: Some(0.8125),
        detection_n: 16,
        malformed: 1,
        judge: "judge-model.gguf".into(),
    });
    f7.coactive = vec![Coactive {
        feature: 3,
        count: 120,
        jaccard: 0.25,
    }];

    let mut f12 = entry(12, 0.0001, 1, 3, 3);
    f12.histogram = Histogram {
        lo: 0.0,
        hi: 2.0,
        counts: vec![5, 0, 2, 1],
        zeros: 9_000,
        label: "activation".into(),
        threshold: Some(0.5),
    };

    let mut f20 = entry(20, 0.05, 1, 4000, 20);
    f20.interpretation = Some(Interpretation {
        description: format!("{HOSTILE_SCRIPT} & \"quotes\" {NON_ASCII}"),
        comsem: 0.5,
        comsem_n: 10,
        detection: None,
        detection_n: 0,
        malformed: 0,
        judge: "<judge>".into(),
    });

    FeatureReport {
        run: "runs/<main>".into(),
        arch: "bae".into(),
        model: "SmolLM2-135M-Instruct.Q4_1.gguf".into(),
        corpus: "data/activations/block15 rows 0..1000".into(),
        rows: 42_384,
        top_k: 10,
        rescale: false,
        features: vec![f3, f7, f12, f20],
    }
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn html_files(dir: &Path) -> Vec<PathBuf> {
    let mut v = vec![dir.join("index.html")];
    for e in fs::read_dir(dir.join("features")).unwrap() {
        v.push(e.unwrap().path());
    }
    v.sort();
    v
}

/// Every `href="..."` / `src="..."` value in `html`.
fn links(html: &str) -> Vec<String> {
    let mut out = vec![];
    for attr in ["href=\"", "src=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').unwrap();
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

#[test]
fn report_files_escaping_and_replacement() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("report");
    let report = synthetic();
    let summary = write_html(&report, &out).unwrap();
    assert_eq!(summary.pages, report.features.len() + 1);
    assert_eq!(summary.files, report.features.len() + 4);
    assert_eq!(summary.dir, out);

    // files
    for f in ["index.html", "index.js", "style.css", "report.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let mut total = 0;
    for p in html_files(&out)
        .into_iter()
        .chain(["index.js", "style.css", "report.json"].map(|f| out.join(f)))
    {
        total += fs::metadata(&p).unwrap().len();
    }
    assert_eq!(summary.bytes, total);
    for f in &report.features {
        assert!(out.join("features").join(feature_file(f.feature)).is_file());
    }
    assert_eq!(fs::read_dir(out.join("features")).unwrap().count(), 4);
    assert!(
        out.join("features/f00003.html").is_file(),
        "page names are f{{id:05}}"
    );

    // report.json round trip
    let back: FeatureReport = serde_json::from_slice(&fs::read(out.join("report.json")).unwrap())
        .expect("report.json parses as a FeatureReport");
    assert_eq!(back, report);

    // escaping: the hostile text never appears raw in any page or script
    for p in html_files(&out).iter().chain([&out.join("index.js")]) {
        let s = read(p);
        assert!(
            !s.contains("<script>alert"),
            "{}: raw <script>",
            p.display()
        );
        assert!(
            !s.contains("alert(1)</script"),
            "{}: raw </script>",
            p.display()
        );
        assert!(
            !s.contains("</b> & more"),
            "{}: raw </b> from the corpus",
            p.display()
        );
        assert!(!s.contains("<judge>"), "{}: raw <judge>", p.display());
        assert!(!s.contains("<main>"), "{}: raw run name", p.display());
        // offline: nothing fetched from the network
        for bad in [
            "src=\"http",
            "href=\"http",
            "url(http",
            "@import",
            "src=\"//",
            "href=\"//",
        ] {
            assert!(!s.contains(bad), "{}: {bad}", p.display());
        }
        // every local link resolves
        for l in links(&s) {
            if l.starts_with('#') {
                continue;
            }
            let target = p.parent().unwrap().join(l.split('#').next().unwrap());
            assert!(target.exists(), "{}: dead link {l}", p.display());
        }
    }
    let css = read(&out.join("style.css"));
    assert!(!css.contains("http"), "style.css fetches nothing");

    let p3 = read(&out.join("features/f00003.html"));
    assert!(p3.contains("<title>Feature 3 — goes silent on 3.00 % of tokens"));
    assert!(p3.contains("<h1>Feature 3 — goes silent on 3.00 % of tokens</h1>"));
    assert!(
        p3.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "context escaped"
    );
    assert!(p3.contains("<mark>&amp;amp;</mark>"), "token & escaped");
    assert!(
        p3.contains("&quot;quoted&quot; &#39;single&#39;⏎next line"),
        "quotes escaped, newline shown as ⏎"
    );
    assert!(
        p3.contains("<span>   leading spaces</span>"),
        "leading spaces kept"
    );
    assert!(p3.contains("<mark>  two</mark>"));
    assert!(p3.contains(NON_ASCII) && p3.contains("<mark>日本</mark>"));
    assert!(p3.contains("x &lt; y &amp;&amp; y &gt; z"));
    assert!(p3.contains("<mark>&lt;b&gt;</mark>"));
    assert!(p3.contains("Samples in corpus order") && p3.contains("Strongest samples"));
    assert!(
        p3.contains("Promotes") && p3.contains("Suppresses") && p3.contains("Co-activates with")
    );
    assert!(
        p3.contains("<a href=\"f00007.html\">7</a>"),
        "co-active link"
    );
    assert!(
        !p3.contains("f04242.html"),
        "no link to a feature absent from the report"
    );
    assert!(p3.contains("<svg class=\"histogram\""));
    assert!(p3.contains("class=\"threshold\""), "threshold line at 0");
    assert!(p3.contains("rel=\"next\" href=\"f00007.html\""));
    assert!(p3.contains("href=\"../index.html\""));
    assert!(p3.contains("No interpretation yet"));
    assert_eq!(
        p3.matches("<mark>").count(),
        20,
        "10 samples + 10 strongest"
    );

    let p7 = read(&out.join("features/f00007.html"));
    assert!(p7.contains("<h1>Feature 7 — fires on 0.38 % of tokens</h1>"));
    assert!(p7.contains("dates in March"));
    assert!(p7.contains("ComSem <b>0.750</b> (6 of 8"));
    assert!(p7.contains("detection <b>0.812</b>") || p7.contains("detection <b>0.813</b>"));
    assert!(p7.contains("rel=\"prev\" href=\"f00003.html\""));
    assert!(p7.contains("rel=\"next\" href=\"f00012.html\""));

    let p12 = read(&out.join("features/f00012.html"));
    assert!(
        p12.contains("Only 3 samples (fewer than 6)"),
        "few samples said"
    );
    assert!(p12.contains("not interpretable"));
    assert!(p12.contains("9,000"), "zeros count noted");
    assert!(p12.contains("Feature 12 — fires on 0.010 % of tokens"));

    let p20 = read(&out.join("features/f00020.html"));
    assert!(p20.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;"));
    assert!(p20.contains("detection not measured"));
    assert!(p20.contains("last →"));

    let index = read(&out.join("index.html"));
    assert!(index.contains("<noscript>") && index.contains("need JavaScript"));
    assert!(index.contains("<script type=\"application/json\" id=\"feature-data\">"));
    assert!(index.contains("\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"));
    assert_eq!(
        index.matches("</script>").count(),
        2,
        "index.js + data only"
    );
    assert!(index.contains("<b>4</b> features · <b>3</b> interpretable"));
    assert!(index.contains("mean ComSem <b>0.625</b>"));
    assert!(index.contains("runs/&lt;main&gt;"));
    assert!(index.contains("42,384"));
    // the embedded data parses and holds the index columns
    let start = index.find("id=\"feature-data\">").unwrap() + "id=\"feature-data\">".len();
    let end = start + index[start..].find("</script>").unwrap();
    let data: serde_json::Value = serde_json::from_str(&index[start..end]).unwrap();
    let rows = data.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0][0], 3);
    assert_eq!(rows[0][2], 0);
    assert_eq!(rows[0][10], "&amp;");
    assert_eq!(rows[1][9], "dates in March");
    assert_eq!(
        rows[3][9].as_str().unwrap(),
        report.features[3]
            .interpretation
            .as_ref()
            .unwrap()
            .description
    );

    // a second write replaces the folder (a page removed disappears), no temp folder left over
    let mut smaller = report.clone();
    smaller.features.remove(1);
    smaller.run = "second".into();
    let s2 = write_html(&smaller, &out).unwrap();
    assert_eq!(s2.pages, 4);
    assert!(!out.join("features/f00007.html").exists(), "old page gone");
    let back: FeatureReport =
        serde_json::from_slice(&fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(back, smaller);
    let left: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        vec!["report".to_string()],
        "only the report folder remains"
    );

    // a folder that is not a report is refused, one line naming it, left untouched
    let other = tmp.path().join("notes");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("keep.txt"), "mine").unwrap();
    let err = write_html(&report, &other).unwrap_err();
    assert!(!err.contains('\n'), "one line: {err}");
    assert!(
        err.contains(&other.display().to_string()) && err.contains("refusing"),
        "{err}"
    );
    assert_eq!(read(&other.join("keep.txt")), "mine");
    assert_eq!(fs::read_dir(&other).unwrap().count(), 1);
    // a plain file too
    let file = tmp.path().join("file.html");
    fs::write(&file, "x").unwrap();
    let err = write_html(&report, &file).unwrap_err();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert_eq!(read(&file), "x");
    // no temp siblings left by the refusals
    let mut left: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec!["file.html", "notes", "report"]);
}

// ---------------------------------------------------------------- browser

const TIMEOUT: Duration = Duration::from_secs(60);

/// Console messages and uncaught exceptions in chromium's stderr (see the module docs).
fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("CONSOLE(") || l.contains("Uncaught"))
        .collect()
}

/// The DOM after the page's scripts ran, and chromium's stderr.
fn dump(url: &str) -> (String, String) {
    let h = headless(
        &[
            "--virtual-time-budget=3000".into(),
            "--dump-dom".into(),
            url.to_string(),
        ],
        TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (h.stdout, h.stderr)
}

/// Dump `url`, failing on any console message.
fn dom(url: &str) -> String {
    let (dom, stderr) = dump(url);
    let errs = console_errors(&stderr);
    assert!(
        errs.is_empty(),
        "console errors on {url}:\n{}",
        errs.join("\n")
    );
    dom
}

/// `data-feature` ids of the rendered rows, in order.
fn rows(dom: &str) -> Vec<usize> {
    let mut v = vec![];
    let mut rest = dom;
    while let Some(i) = rest.find("<tr data-feature=\"") {
        rest = &rest[i + "<tr data-feature=\"".len()..];
        let end = rest.find('"').unwrap();
        v.push(rest[..end].parse().unwrap());
    }
    v
}

fn shown_count(dom: &str) -> String {
    let i = dom.find("id=\"count\"").expect("count element");
    let rest = &dom[i..];
    let a = rest.find('>').unwrap() + 1;
    let b = rest.find("</span>").unwrap();
    rest[a..b].to_string()
}

#[test]
fn report_in_headless_chromium() {
    if chromium_path().is_none() {
        if std::env::var("REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!(
                "REQUIRE_CHROMIUM=1 but chromium is not installed (bash scripts/chromium_setup.sh)"
            );
        }
        println!(
            "SKIP report_browser: chromium not installed (bash scripts/chromium_setup.sh installs it)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("report dir #1"); // a space and a '#' in the path: URLs encoded
    let report = synthetic();
    write_html(&report, &out).unwrap();
    let index = file_url(&out.join("index.html")).unwrap();

    // the table drawn by index.js: a row per feature, default order by id
    let d = dom(&index);
    assert_eq!(rows(&d), vec![3, 7, 12, 20], "rows rendered by index.js");
    assert_eq!(shown_count(&d), "4 of 4 features shown");
    assert!(
        d.contains("aria-sort=\"ascending\""),
        "sorted column marked"
    );
    assert!(
        !d.contains("<script>alert"),
        "description escaped by the JS too"
    );
    assert!(d.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));

    // the first feature link, followed
    let tbody = &d[d.find("<tbody id=\"rows\">").unwrap()..];
    let href = links(tbody)
        .into_iter()
        .find(|l| l.starts_with("features/f"))
        .expect("a feature link in the table");
    assert_eq!(href, "features/f00003.html");
    let page = dom(&file_url(&out.join(&href)).unwrap());
    assert!(page.contains("<h1>Feature 3 — goes silent on 3.00 % of tokens</h1>"));
    assert_eq!(
        page.matches("<mark>").count(),
        20,
        "contexts with marked tokens"
    );
    assert!(page.contains("<mark>&amp;amp;</mark>"));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains("<script>alert"));
    assert!(page.contains("<svg class=\"histogram\""), "histogram svg");
    assert!(
        page.matches("class=\"bar\"").count() >= report.features[0].histogram.counts.len(),
        "histogram bars"
    );

    // sorting through the fragment
    let d = dom(&format!("{index}#sort=rare_rate&dir=asc"));
    assert_eq!(rows(&d)[0], 12, "rarest first");
    assert_eq!(rows(&d), vec![12, 7, 3, 20]);
    let th = &d[d.find("data-key=\"rare_rate\"").unwrap()..];
    let th = &th[..th.find("</th>").unwrap()];
    assert!(
        th.contains("aria-sort=\"ascending\"") && th.contains('▲'),
        "{th}"
    );
    let d = dom(&format!("{index}#sort=rare_rate&dir=desc"));
    assert_eq!(rows(&d), vec![20, 3, 7, 12]);
    let d = dom(&format!("{index}#sort=comsem&dir=desc"));
    assert_eq!(rows(&d), vec![7, 20, 3, 12], "missing ComSem last");
    let d = dom(&format!("{index}#sort=description&dir=asc"));
    assert_eq!(rows(&d)[..2], [20, 7], "text sort (`<` before `d`)");

    // filtering through the fragment
    let d = dom(&format!("{index}#q=DATES%20in"));
    assert_eq!(rows(&d), vec![7], "description substring, case-insensitive");
    assert_eq!(shown_count(&d), "1 of 4 features shown");
    let d = dom(&format!("{index}#q=march"));
    assert_eq!(
        rows(&d),
        vec![7, 12, 20],
        "first token ` March` (3's is `&amp;`)"
    );
    let d = dom(&format!("{index}#q=%26amp%3B"));
    assert_eq!(rows(&d), vec![3], "first token substring");
    let d = dom(&format!("{index}#interp=1"));
    assert_eq!(rows(&d), vec![3, 7, 20], "interpretable only");
    let d = dom(&format!("{index}#min=0.1&max=4"));
    assert_eq!(rows(&d), vec![3, 7], "rare-value rate in [0.1 %, 4 %]");
    assert_eq!(shown_count(&d), "2 of 4 features shown");

    // a screenshot
    let png = tmp.path().join("shots/index.png");
    screenshot(&out.join("index.html"), &png, 1280, 800).unwrap();
    let bytes = fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert!(bytes.len() > 10_000, "a real page, {} bytes", bytes.len());

    // negative control: the detector sees a broken index.js
    let broken = tmp.path().join("broken");
    write_html(&report, &broken).unwrap();
    let js = read(&broken.join("index.js"));
    let bad = js.replace("render();\n})();", "render(;\n})();");
    assert_ne!(bad, js);
    fs::write(broken.join("index.js"), bad).unwrap();
    let (d, stderr) = dump(&file_url(&broken.join("index.html")).unwrap());
    assert!(rows(&d).is_empty(), "broken JS draws no rows");
    let errs = console_errors(&stderr);
    assert!(
        errs.iter().any(|l| l.contains("Uncaught SyntaxError")),
        "the detector must see the broken script; stderr:\n{stderr}"
    );
    let thrown = tmp.path().join("thrown");
    write_html(&report, &thrown).unwrap();
    let js = read(&thrown.join("index.js"));
    let bad = js.replace(
        "  readHash();\n  render();",
        "  readHash();\n  render();\n  notDefined();",
    );
    assert_ne!(bad, js);
    fs::write(thrown.join("index.js"), bad).unwrap();
    let (_, stderr) = dump(&file_url(&thrown.join("index.html")).unwrap());
    assert!(
        console_errors(&stderr)
            .iter()
            .any(|l| l.contains("Uncaught ReferenceError")),
        "the detector must see a runtime error; stderr:\n{stderr}"
    );
}

/// 8,192 features (the size of a real dictionary): every page written and the index table drawn
/// in the browser within the timeout. With BAE_REPORT_SHOTS=<dir>, also screenshots of the index
/// and one feature page there (to look at the styling).
#[test]
fn large_report_in_headless_chromium() {
    if chromium_path().is_none() {
        return; // report_in_headless_chromium says SKIP (or fails under REQUIRE_CHROMIUM=1)
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("report");
    let base = synthetic();
    let mut report = base.clone();
    report.features = (0..8192)
        .map(|i| {
            let mut f = base.features[i % 4].clone();
            f.feature = i;
            f.rate = ((i * 7919) % 8192) as f64 / 8192.0 * 0.02 + 1e-5;
            f.rare_rate = f.rate;
            f.rare_value = 1;
            f.samples.truncate(4);
            f.strongest.truncate(4);
            f.coactive = vec![Coactive {
                feature: (i + 1) % 8192,
                count: 10,
                jaccard: 0.1,
            }];
            f
        })
        .collect();
    let t = std::time::Instant::now();
    let s = write_html(&report, &out).unwrap();
    let write_s = t.elapsed().as_secs_f64();
    assert_eq!(s.pages, 8193);
    let t = std::time::Instant::now();
    let d = dom(&format!(
        "{}#sort=rate&dir=asc",
        file_url(&out.join("index.html")).unwrap()
    ));
    let browse_s = t.elapsed().as_secs_f64();
    let r = rows(&d);
    assert_eq!(r.len(), 8192);
    assert_eq!(r[0], 0, "rate sort over 8,192 rows");
    println!(
        "8192 features: wrote {} files, {:.1} MB in {write_s:.1} s; index dumped in {browse_s:.1} s",
        s.files,
        s.bytes as f64 / 1e6
    );
    if let Some(dir) = std::env::var_os("BAE_REPORT_SHOTS") {
        let dir = PathBuf::from(dir);
        screenshot(&out.join("index.html"), &dir.join("index.png"), 1280, 900).unwrap();
        screenshot(
            &out.join("features").join(feature_file(3)),
            &dir.join("feature.png"),
            1280,
            1800,
        )
        .unwrap();
        let small = dir.join("small");
        write_html(&base, &small).unwrap();
        screenshot(
            &small.join("index.html"),
            &dir.join("small_index.png"),
            1280,
            700,
        )
        .unwrap();
        screenshot(
            &small.join("features/f00012.html"),
            &dir.join("few.png"),
            1280,
            1000,
        )
        .unwrap();
    }
}
