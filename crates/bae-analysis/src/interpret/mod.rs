//! `bae interpret`: ComSem and detection scores of features, from any judge model.
//!
//! For each chosen feature with enough samples (the paper's pipeline, method.md):
//! 1. description: the judge reads the first 5 samples (corpus order) and names them in a phrase;
//! 2. ComSem: it answers Yes/No for each of up to 8 further samples; score = share of Yes;
//! 3. detection (stricter, as SAEBench / delphi): the same question on as many random corpus
//!    tokens on which the feature does *not* take its salient value; score = balanced accuracy
//!    (Yes rate on the feature's samples + No rate on the others) / 2. Each snippet is asked on
//!    its own, so their order cannot matter.
//!
//! The Yes rate on the random tokens is the random floor: what a description scores on text it
//! was not written for. A judge that says Yes to everything scores ComSem 1, floor 1, detection 0.5.

pub mod cache;
pub mod judge;
pub mod local;
pub mod openai;
pub mod prompts;

use crate::features::{FeatureSet, Interpretation, MIN_SAMPLES, Sample};
use cache::{AnswerCache, CacheStats};
use judge::{Judge, Request};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Which features to score.
#[derive(Clone, Debug, PartialEq)]
pub enum Selection {
    /// N features drawn at random (seeded) from all of them, so counts estimate the whole set
    Random(usize),
    All,
    List(Vec<usize>),
}

#[derive(Clone, Debug)]
pub struct InterpretOptions {
    pub features: Selection,
    /// samples the description is written from (the paper: 5)
    pub describe_n: usize,
    /// further samples verified (the paper: up to 8)
    pub verify_n: usize,
    /// random tokens without the feature's event, for detection and the floor
    pub negatives_n: usize,
    /// a feature is interpretable when its score reaches this
    pub threshold: f64,
    pub seed: u64,
    /// requests handed to the judge at once (each chunk's answers are saved before the next)
    pub chunk: usize,
}

impl Default for InterpretOptions {
    fn default() -> Self {
        InterpretOptions {
            features: Selection::Random(50),
            describe_n: 5,
            verify_n: 8,
            negatives_n: 8,
            threshold: 0.75,
            seed: 0,
            chunk: 32,
        }
    }
}

/// One scored feature.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Scored {
    pub feature: usize,
    pub n_samples: u64,
    /// None: too few samples, the judge failed, or its description was empty or vague
    pub interpretation: Option<Interpretation>,
    /// Yes rate on random tokens without the feature's event
    pub floor: Option<f64>,
    pub why_not: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Headline {
    pub features_total: usize,
    pub scored: usize,
    pub with_samples: usize,
    pub described: usize,
    pub threshold: f64,
    /// ComSem ≥ threshold
    pub interpretable_comsem: usize,
    /// detection ≥ threshold
    pub interpretable_detection: usize,
    pub mean_comsem: f64,
    pub mean_detection: f64,
    /// mean Yes rate of the descriptions on random tokens
    pub mean_floor: f64,
    /// interpretable_comsem / scored × features_total (a random selection estimates the set)
    pub estimated_total_comsem: f64,
    pub estimated_total_detection: f64,
    pub judge_failures: usize,
    pub malformed_answers: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InterpretResult {
    pub run: String,
    pub arch: String,
    pub judge: String,
    pub corpus: String,
    pub headline: Headline,
    pub features: Vec<Scored>,
}

pub const INTERPRET_JSON: &str = "interpret.json";

fn choose(set: &FeatureSet, sel: &Selection, seed: u64) -> Result<Vec<usize>, String> {
    let dc = set.report.features.len();
    let mut ids: Vec<usize> = match sel {
        Selection::All => (0..dc).collect(),
        Selection::Random(n) => {
            let mut all: Vec<usize> = (0..dc).collect();
            all.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
            all.truncate(*n);
            all
        }
        Selection::List(l) => {
            if let Some(&bad) = l.iter().find(|&&j| j >= dc) {
                return Err(format!(
                    "--features: feature {bad} does not exist (the run has {dc})"
                ));
            }
            l.clone()
        }
    };
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Random pool tokens without feature `j`'s event, seeded per feature.
fn negatives(set: &FeatureSet, j: usize, n: usize, seed: u64) -> Vec<Sample> {
    let mut idx: Vec<usize> = (0..set.pool.len())
        .filter(|&i| set.pool_events[i].binary_search(&(j as u32)).is_err())
        .collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(
        seed ^ (j as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
    ));
    idx.truncate(n);
    idx.into_iter().map(|i| set.pool[i].clone()).collect()
}

/// The requests a run will send at most, for the estimate printed before it starts: the checks
/// use the description `judge` gave before when `cache` holds it, else a stand-in.
pub fn planned_requests(
    set: &FeatureSet,
    opts: &InterpretOptions,
    cache: &AnswerCache,
    judge: &str,
) -> Result<Vec<Request>, String> {
    let ids = choose(set, &opts.features, opts.seed)?;
    let min = MIN_SAMPLES.max(opts.describe_n.max(1) + 1);
    let mut out = Vec::new();
    for j in ids {
        let f = &set.report.features[j];
        if f.samples.len() < min {
            continue;
        }
        let describe = prompts::describe(&f.samples[..opts.describe_n]);
        let known = cache.get(judge, &describe);
        out.push(describe);
        let desc = match known.as_deref().map(prompts::parse_description) {
            Some(None) => continue, // answered before, without a usable description: no checks
            Some(Some(d)) => d,
            None => "a short description of the feature".to_string(),
        };
        out.extend(checks_of(set, j, &desc, opts).0);
    }
    Ok(out)
}

/// The Yes/No requests of feature `j` under `desc`: its verification samples, then random tokens
/// without its event; with the two counts.
fn checks_of(
    set: &FeatureSet,
    j: usize,
    desc: &str,
    opts: &InterpretOptions,
) -> (Vec<Request>, usize, usize) {
    let f = &set.report.features[j];
    let end = (opts.describe_n + opts.verify_n).min(f.samples.len());
    let pos = &f.samples[opts.describe_n.min(end)..end];
    let neg = negatives(set, j, opts.negatives_n, opts.seed);
    let requests = pos
        .iter()
        .chain(&neg)
        .map(|s| prompts::verify(desc, s))
        .collect();
    (requests, pos.len(), neg.len())
}

/// Yes, answered (Yes or No) and malformed among `verdicts`.
fn tally(verdicts: &[Option<String>]) -> (usize, usize, usize) {
    let parsed: Vec<Option<bool>> = verdicts
        .iter()
        .map(|v| v.as_deref().and_then(prompts::parse_yes_no))
        .collect();
    let yes = parsed.iter().filter(|p| **p == Some(true)).count();
    let answered = parsed.iter().filter(|p| p.is_some()).count();
    (yes, answered, parsed.len() - answered)
}

/// A described feature's scores from the verdicts on its samples and on the random tokens.
fn interpretation(
    description: &str,
    on_samples: &[Option<String>],
    on_random: &[Option<String>],
    judge: &str,
) -> (Interpretation, Option<f64>) {
    let (yes_pos, ans_pos, bad_pos) = tally(on_samples);
    let (yes_neg, ans_neg, bad_neg) = tally(on_random);
    let rate = |y: usize, a: usize| (a > 0).then(|| y as f64 / a as f64);
    let comsem = rate(yes_pos, ans_pos);
    let floor = rate(yes_neg, ans_neg);
    let i = Interpretation {
        description: description.to_string(),
        comsem: comsem.unwrap_or(0.0),
        comsem_n: ans_pos,
        detection: comsem.zip(floor).map(|(tpr, fpr)| (tpr + 1.0 - fpr) / 2.0),
        detection_n: ans_pos + ans_neg,
        malformed: bad_pos + bad_neg,
        judge: judge.to_string(),
    };
    (i, floor)
}

/// The requests of every feature's description, then (knowing the descriptions) its checks.
pub fn interpret(
    set: &FeatureSet,
    judge: &dyn Judge,
    cache: &AnswerCache,
    opts: &InterpretOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<(InterpretResult, CacheStats), String> {
    let ids = choose(set, &opts.features, opts.seed)?;
    let min = MIN_SAMPLES.max(opts.describe_n.max(1) + 1);
    let judge_id = judge.id();
    let mut stats = CacheStats::default();
    let feats = &set.report.features;
    let ready: Vec<usize> = ids
        .iter()
        .copied()
        .filter(|&j| feats[j].samples.len() >= min)
        .collect();
    let describe: Vec<Request> = ready
        .iter()
        .map(|&j| prompts::describe(&feats[j].samples[..opts.describe_n]))
        .collect();
    let answers = cache.ask(judge, &describe, opts.chunk, &mut stats, progress)?;
    let descriptions: Vec<Option<String>> = answers
        .iter()
        .map(|a| a.as_deref().and_then(prompts::parse_description))
        .collect();

    // checks: per described feature, its positives then its negatives
    let mut checks = Vec::new();
    let mut spans = Vec::new();
    for (&j, desc) in ready.iter().zip(&descriptions) {
        let Some(desc) = desc else {
            spans.push((0, 0, 0));
            continue;
        };
        let (requests, n_pos, n_neg) = checks_of(set, j, desc, opts);
        spans.push((checks.len(), n_pos, n_neg));
        checks.extend(requests);
    }
    let verdicts = cache.ask(judge, &checks, opts.chunk, &mut stats, progress)?;

    let mut scored = Vec::new();
    let mut malformed_total = 0;
    let by_id: std::collections::HashMap<usize, usize> =
        ready.iter().enumerate().map(|(k, &j)| (j, k)).collect();
    for &j in &ids {
        let f = &feats[j];
        let mut s = Scored {
            feature: j,
            n_samples: f.n_samples,
            interpretation: None,
            floor: None,
            why_not: None,
        };
        let Some(&k) = by_id.get(&j) else {
            s.why_not = Some(format!(
                "{} samples (fewer than {min}: not interpretable)",
                f.samples.len()
            ));
            scored.push(s);
            continue;
        };
        let Some(desc) = &descriptions[k] else {
            s.why_not = Some(match &answers[k] {
                None => "the judge failed to describe it".into(),
                Some(a) => format!("no specific description in the answer {a:?}"),
            });
            malformed_total += usize::from(answers[k].is_some());
            scored.push(s);
            continue;
        };
        let (start, n_pos, n_neg) = spans[k];
        let (i, floor) = interpretation(
            desc,
            &verdicts[start..start + n_pos],
            &verdicts[start + n_pos..start + n_pos + n_neg],
            &judge_id,
        );
        malformed_total += i.malformed;
        s.floor = floor;
        s.interpretation = Some(i);
        scored.push(s);
    }
    let headline = headline(
        feats.len(),
        &scored,
        opts.threshold,
        &stats,
        malformed_total,
    );
    let report = &set.report;
    Ok((
        InterpretResult {
            run: report.run.clone(),
            arch: report.arch.clone(),
            judge: judge_id,
            corpus: report.corpus.clone(),
            headline,
            features: scored,
        },
        stats,
    ))
}

fn headline(
    total: usize,
    scored: &[Scored],
    threshold: f64,
    stats: &CacheStats,
    malformed: usize,
) -> Headline {
    let interp: Vec<&Interpretation> = scored
        .iter()
        .filter_map(|s| s.interpretation.as_ref())
        .collect();
    let mean = |v: Vec<f64>| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let n = scored.len();
    let ok_comsem = interp.iter().filter(|i| i.comsem >= threshold).count();
    let ok_detect = interp
        .iter()
        .filter(|i| i.detection.is_some_and(|d| d >= threshold))
        .count();
    let scale = |k: usize| {
        if n == 0 {
            0.0
        } else {
            k as f64 / n as f64 * total as f64
        }
    };
    Headline {
        features_total: total,
        scored: n,
        with_samples: scored
            .iter()
            .filter(|s| s.n_samples as usize >= MIN_SAMPLES)
            .count(),
        described: interp.len(),
        threshold,
        interpretable_comsem: ok_comsem,
        interpretable_detection: ok_detect,
        mean_comsem: mean(interp.iter().map(|i| i.comsem).collect()),
        mean_detection: mean(interp.iter().filter_map(|i| i.detection).collect()),
        mean_floor: mean(scored.iter().filter_map(|s| s.floor).collect()),
        estimated_total_comsem: scale(ok_comsem),
        estimated_total_detection: scale(ok_detect),
        judge_failures: stats.failed,
        malformed_answers: malformed,
    }
}

/// Copies the interpretations of `result` into the report's features (for the HTML report).
pub fn merge_into(report: &mut crate::features::FeatureReport, result: &InterpretResult) {
    for s in &result.features {
        if let Some(f) = report.features.get_mut(s.feature) {
            f.interpretation = s.interpretation.clone();
        }
    }
}

/// Markdown table of several results (a `bae compare` folder: one row per architecture).
pub fn table(results: &[InterpretResult]) -> String {
    let mut s = String::from(
        "| model | scored | ≥6 samples | described | ComSem ≥ t | detection ≥ t | mean ComSem | mean detection | random floor | est. interpretable (ComSem / detection) |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let h = &r.headline;
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.0} / {:.0} of {} |\n",
            r.arch,
            h.scored,
            h.with_samples,
            h.described,
            h.interpretable_comsem,
            h.interpretable_detection,
            h.mean_comsem,
            h.mean_detection,
            h.mean_floor,
            h.estimated_total_comsem,
            h.estimated_total_detection,
            h.features_total
        ));
    }
    s
}
