//! `bae interpret`'s scoring against a scripted judge whose answers are known: ComSem, the random
//! floor and detection computed by hand, vague descriptions rejected, failures counted, and a
//! second run answered from the cache alone.

use bae_analysis::features::{
    Context, FeatureEntry, FeatureReport, FeatureSet, Histogram, Sample, SampleOptions,
};
use bae_analysis::interpret::cache::AnswerCache;
use bae_analysis::interpret::judge::{Judge, JudgeError, Request};
use bae_analysis::interpret::{InterpretOptions, Selection, interpret, planned_requests};
use std::sync::atomic::{AtomicUsize, Ordering};

fn sample(row: usize, token: &str) -> Sample {
    Sample {
        row,
        doc: 0,
        position: row as i64,
        token_id: 0,
        salience: 1.0,
        strength: 1.0,
        context: Context {
            before: "we saw the ".into(),
            token: token.into(),
            after: " again".into(),
        },
    }
}

fn feature(j: usize, tokens: &[&str]) -> FeatureEntry {
    FeatureEntry {
        feature: j,
        rate: 0.01,
        rare_value: 1,
        rare_rate: 0.01,
        salience_density: 0.01,
        n_samples: tokens.len() as u64,
        samples: tokens
            .iter()
            .enumerate()
            .map(|(i, t)| sample(100 * j + i, t))
            .collect(),
        strongest: Vec::new(),
        histogram: Histogram {
            lo: 0.0,
            hi: 1.0,
            counts: vec![1],
            zeros: 0,
            label: String::new(),
            threshold: None,
        },
        promotes: Vec::new(),
        suppresses: Vec::new(),
        coactive: Vec::new(),
        interpretation: None,
    }
}

/// Describes a feature as "the word T" (T = the first snippet's marked token; "words" when T is
/// "vague", a failure when T is "fail") and says Yes when the marked token is T.
struct Scripted {
    calls: AtomicUsize,
}

fn marked(text: &str) -> &str {
    let a = text.rfind("<<").expect("a marked token") + 2;
    let b = a + text[a..].find(">>").expect("closed");
    &text[a..b]
}

impl Judge for Scripted {
    fn id(&self) -> String {
        "test:scripted".into()
    }
    fn complete(&self, requests: &[Request]) -> Vec<Result<String, JudgeError>> {
        requests
            .iter()
            .map(|r| {
                self.calls.fetch_add(1, Ordering::SeqCst);
                let last = &r.messages.last().unwrap().content;
                if let Some(rest) = last.strip_prefix("Description: the word ") {
                    let want = rest.lines().next().unwrap();
                    let yes = marked(last) == want;
                    return Ok(if yes { "Yes." } else { "No" }.to_string());
                }
                if last.starts_with("Description:") {
                    return Ok("Perhaps".into()); // neither yes nor no: malformed
                }
                let first = last.lines().nth(1).expect("first snippet");
                match marked(first) {
                    "fail" => Err(JudgeError::Failed("scripted failure".into())),
                    "vague" => Ok("Words.".into()),
                    "odd" => Ok("odd things".into()),
                    t => Ok(format!("\"the word {t}.\"")),
                }
            })
            .collect()
    }
}

fn set() -> FeatureSet {
    let cat = ["cat"; 13];
    let mut half = vec!["bird"; 5];
    half.extend([
        "bird", "fish", "bird", "fish", "bird", "fish", "bird", "fish",
    ]);
    let features = vec![
        feature(0, &cat),
        feature(1, &half),
        feature(2, &["cat"; 5]),
        feature(3, &["vague"; 13]),
        feature(4, &["fail"; 13]),
        feature(5, &["odd"; 13]),
    ];
    // random tokens: "cat" carries feature 0's event (never a negative of 0), "bird" is free
    let mut pool = Vec::new();
    let mut pool_events = Vec::new();
    for i in 0..10 {
        let t = if i % 2 == 0 { "cat" } else { "bird" };
        pool.push(sample(1000 + i, t));
        pool_events.push(if t == "cat" { vec![0u32] } else { vec![] });
    }
    FeatureSet {
        report: FeatureReport {
            run: "runs/x".into(),
            arch: "bae".into(),
            model: "m.gguf".into(),
            corpus: "test".into(),
            rows: 1000,
            top_k: 10,
            rescale: false,
            features,
        },
        options: SampleOptions::default(),
        asked_data: None,
        asked_rows: None,
        asked_model: "m.gguf".into(),
        pool,
        pool_events,
    }
}

#[test]
fn scores_match_the_scripted_answers() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AnswerCache::open(dir.path()).unwrap();
    let judge = Scripted {
        calls: AtomicUsize::new(0),
    };
    let opts = InterpretOptions {
        features: Selection::All,
        negatives_n: 4,
        ..InterpretOptions::default()
    };
    let set = set();
    let (r, stats) = interpret(&set, &judge, &cache, &opts, &mut |_| {}).unwrap();
    let by = |j: usize| r.features.iter().find(|s| s.feature == j).unwrap();

    // feature 0: all 8 checks Yes; its negatives are "bird" tokens only (the "cat" pool tokens
    // carry its event), so the floor is 0 and detection 1
    let f0 = by(0).interpretation.as_ref().unwrap();
    assert_eq!(f0.description, "the word cat");
    assert_eq!((f0.comsem, f0.comsem_n), (1.0, 8));
    assert_eq!(by(0).floor, Some(0.0));
    assert_eq!(f0.detection, Some(1.0));
    assert_eq!(f0.detection_n, 12);

    // feature 1: "the word bird"; its checks are 4 bird / 4 fish -> 0.5; negatives drawn from
    // all 10 pool tokens (5 cat, 5 bird) -> floor = share of bird among the 4 drawn
    let f1 = by(1).interpretation.as_ref().unwrap();
    assert_eq!(f1.description, "the word bird");
    assert_eq!(f1.comsem, 0.5);
    let floor = by(1).floor.unwrap();
    assert!((0.0..=1.0).contains(&floor) && (floor * 4.0).fract() == 0.0);
    assert_eq!(f1.detection, Some((0.5 + 1.0 - floor) / 2.0));

    // feature 2: 5 samples, fewer than 6: not interpretable, no request sent for it
    assert!(by(2).interpretation.is_none());
    assert!(by(2).why_not.as_ref().unwrap().contains("5 samples"));
    // feature 3: a vague answer is no description; 4: the judge failed; 5: malformed verdicts
    assert!(
        by(3)
            .why_not
            .as_ref()
            .unwrap()
            .contains("no specific description")
    );
    assert!(by(4).why_not.as_ref().unwrap().contains("failed"));
    let f5 = by(5).interpretation.as_ref().unwrap();
    assert_eq!(f5.description, "odd things");
    assert_eq!((f5.comsem_n, f5.malformed), (0, 12));

    let h = &r.headline;
    assert_eq!(h.scored, 6);
    assert_eq!(h.described, 3);
    assert_eq!(h.interpretable_comsem, 1);
    assert_eq!(h.judge_failures, 1);
    assert_eq!(h.malformed_answers, 12 + 1);
    assert_eq!(h.estimated_total_comsem, 1.0);
    // 5 descriptions asked (feature 2 has too few samples), 3 x 12 checks
    assert_eq!(judge.calls.load(Ordering::SeqCst), 5 + 36);
    assert_eq!(stats.asked, 5 + 36 - 1);

    // the estimate before a rerun: the cached descriptions give the real checks (all cached);
    // the vague one plans no checks, the failed one a stand-in's 12
    let planned = planned_requests(&set, &opts, &cache, "test:scripted").unwrap();
    let cached = planned
        .iter()
        .filter(|q| cache.get("test:scripted", q).is_some())
        .count();
    assert_eq!((planned.len(), cached), (5 + 36 + 12, 4 + 36));

    // a second run asks only what failed before (feature 4's description)
    let (again, stats2) = interpret(&set, &judge, &cache, &opts, &mut |_| {}).unwrap();
    assert_eq!(again, r);
    assert_eq!(stats2.asked, 0);
    assert_eq!(stats2.failed, 1);
    assert_eq!(judge.calls.load(Ordering::SeqCst), 5 + 36 + 1);
}

#[test]
fn random_selection_is_seeded_and_lists_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AnswerCache::open(dir.path()).unwrap();
    let judge = Scripted {
        calls: AtomicUsize::new(0),
    };
    let pick = |seed| {
        let opts = InterpretOptions {
            features: Selection::Random(3),
            seed,
            ..InterpretOptions::default()
        };
        let (r, _) = interpret(&set(), &judge, &cache, &opts, &mut |_| {}).unwrap();
        r.features.iter().map(|s| s.feature).collect::<Vec<_>>()
    };
    assert_eq!(pick(1), pick(1));
    assert_eq!(pick(1).len(), 3);
    let opts = InterpretOptions {
        features: Selection::List(vec![1, 9]),
        ..InterpretOptions::default()
    };
    let e = interpret(&set(), &judge, &cache, &opts, &mut |_| {}).unwrap_err();
    assert_eq!(e, "--features: feature 9 does not exist (the run has 6)");
}
