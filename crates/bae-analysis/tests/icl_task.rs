//! The in-context task of `bae entropy --by demonstrations` (bae_analysis::entropy::icl): the
//! shipped data, the seeded demonstrations and the prompts without the model; with the real
//! model (skipped unless `bash scripts/setup.sh` fetched it; a failure with REQUIRE_MODEL=1),
//! the hidden states against `Model::hidden_states` of the full prompt, the accuracy against
//! real greedy decoding, and in-context learning itself (accuracy with 8 demonstrations above
//! accuracy with none).

use bae_analysis::entropy::icl::{
    DEFAULT_TASK, IclOptions, IclTask, LEAD, PromptTokens, builtin_tasks, demonstrations,
    parse_task, prompt_text, run_icl, select_queries, task, task_names,
};
use bae_llm::{Model, Tokenizer};
use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;

/// A byte-level tokenizer without merges (one token per byte) and SmolLM2's `<|endoftext|>` at
/// id 0: enough to build prompts without the model file.
fn byte_tokenizer() -> Tokenizer {
    let mut tokens = vec![LEAD.to_string()];
    tokens.extend(
        bae_llm::tokenizer::byte_to_char()
            .iter()
            .map(|c| c.to_string()),
    );
    Tokenizer::new(tokens, &[]).expect("byte tokenizer")
}

#[test]
fn shipped_tasks_are_clean() {
    let tasks = builtin_tasks();
    assert_eq!(
        tasks.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        task_names()
    );
    assert_eq!(tasks[0].name, DEFAULT_TASK);
    for t in &tasks {
        assert!(t.pairs.len() >= 150, "{}: {} pairs", t.name, t.pairs.len());
        let queries: HashSet<&str> = t.pairs.iter().map(|(q, _)| q.as_str()).collect();
        assert_eq!(queries.len(), t.pairs.len(), "{}: repeated query", t.name);
        for (q, a) in &t.pairs {
            for s in [q, a] {
                assert!(!s.is_empty() && s.trim() == s, "{}: '{q}' -> '{a}'", t.name);
                assert!(
                    !s.contains(['\t', '\n', '\r']),
                    "{}: '{q}' -> '{a}'",
                    t.name
                );
            }
            assert!(!q.contains(':'), "{}: '{q}'", t.name);
        }
        assert_eq!(&task(&t.name).unwrap(), t);
    }
    // the default task has a few hundred pairs over a handful of answers
    let d = task(DEFAULT_TASK).unwrap();
    assert!(d.pairs.len() >= 300, "{} pairs", d.pairs.len());
    let answers: HashSet<&str> = d.pairs.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(answers.len(), 10, "{answers:?}");
    let err = task("no_such_task").unwrap_err();
    assert!(
        err.contains("word_category") && err.contains("antonym"),
        "{err}"
    );
}

#[test]
fn task_files_are_checked() {
    let ok = parse_task("t", "d", "# comment\na\tb\n\nc\td\r\n").unwrap();
    assert_eq!(
        ok.pairs,
        vec![("a".into(), "b".into()), ("c".into(), "d".into())]
    );
    for (text, needle) in [
        ("a\tb\na\tc\n", "repeated"),
        ("a b\nc\td\n", "expected query<TAB>answer"),
        ("a\tb\tc\nc\td\n", "expected query<TAB>answer"),
        ("a\t\nc\td\n", "empty answer"),
        ("a:x\tb\nc\td\n", "contains ':'"),
        ("a \tb\nc\td\n", "spaces"),
        ("a\tb\n", "at least 2"),
    ] {
        let err = parse_task("t", "d", text).unwrap_err();
        assert!(err.contains(needle), "{text:?}: {err}");
    }
}

#[test]
fn demonstrations_are_seeded_distinct_and_never_the_query() {
    for t in builtin_tasks() {
        let n = t.pairs.len();
        let mut differs = 0;
        for q in 0..n {
            let d = demonstrations(&t, q, 8, 7);
            assert_eq!(d.len(), 8);
            assert!(
                !d.contains(&q),
                "{}: query {q} among its demonstrations",
                t.name
            );
            assert!(d.iter().all(|&i| i < n));
            assert_eq!(d.iter().collect::<HashSet<_>>().len(), 8, "repeated demo");
            // deterministic; k demonstrations are the first k of a longer draw
            assert_eq!(demonstrations(&t, q, 8, 7), d);
            assert_eq!(demonstrations(&t, q, 3, 7), d[..3]);
            differs += usize::from(demonstrations(&t, q, 8, 8) != d);
        }
        assert!(differs > n * 9 / 10, "the seed changes the draws");
        // every pair but the query can be drawn
        let all = demonstrations(&t, 0, n + 5, 1);
        assert_eq!(all.len(), n - 1);
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), n - 1);
    }
    // different queries get different draws
    let t = task(DEFAULT_TASK).unwrap();
    assert_ne!(demonstrations(&t, 0, 8, 0), demonstrations(&t, 1, 8, 0));
}

#[test]
fn query_subsets_are_seeded() {
    let t = task(DEFAULT_TASK).unwrap();
    let n = t.pairs.len();
    assert_eq!(select_queries(&t, 0, 3), (0..n).collect::<Vec<_>>());
    assert_eq!(select_queries(&t, n + 1, 3), (0..n).collect::<Vec<_>>());
    let s = select_queries(&t, 50, 3);
    assert_eq!(s.len(), 50);
    assert!(s.windows(2).all(|w| w[0] < w[1]), "increasing, distinct");
    assert_eq!(select_queries(&t, 50, 3), s);
    assert_ne!(select_queries(&t, 50, 4), s);
}

/// Token-level prefix extension: the k-demonstration prompt is the (k-1) one with the k-th
/// demonstration line inserted before the query line.
fn check_prefix_extension(enc: &PromptTokens, t: &IclTask, q: usize, demos: &[usize]) {
    let query_len = enc.prompt_ids(q, &[]).len() - 1;
    for k in 1..=demos.len() {
        let (before, after) = (
            enc.prompt_ids(q, &demos[..k - 1]),
            enc.prompt_ids(q, &demos[..k]),
        );
        let cut = before.len() - query_len;
        assert_eq!(after[..cut], before[..cut], "{}: query {q} k {k}", t.name);
        let line = enc.demo_ids(demos[k - 1]);
        assert_eq!(after[cut..cut + line.len()], line[..]);
        assert_eq!(after[cut + line.len()..], before[cut..]);
    }
}

#[test]
fn prompts_are_prefix_extensions() {
    let tok = byte_tokenizer();
    for t in builtin_tasks() {
        let enc = PromptTokens::new(&tok, &t).unwrap();
        for q in [0, 1, t.pairs.len() / 2, t.pairs.len() - 1] {
            let demos = demonstrations(&t, q, 8, 0);
            check_prefix_extension(&enc, &t, q, &demos);
            // the text the tokens spell
            for k in 0..=8 {
                let text = prompt_text(&t, q, &demos[..k]);
                let ids = enc.prompt_ids(q, &demos[..k]);
                assert_eq!(ids[0], 0, "the lead token");
                assert_eq!(LEAD.to_string() + &tok.decode(&ids[1..]), text);
                assert!(text.ends_with(&format!("\n{}:", t.pairs[q].0)) || k == 0);
            }
        }
    }
    let t = task("country_capital").unwrap();
    assert_eq!(
        prompt_text(&t, 2, &[0, 1]),
        "<|endoftext|>Afghanistan: Kabul\nAlbania: Tirana\nAlgeria:"
    );
}

// ---- with the real model ----

static MODEL: OnceLock<Option<(Model, Tokenizer)>> = OnceLock::new();

/// The real model with its head, or None after printing SKIP (a failure with REQUIRE_MODEL=1).
fn real_model(test: &str) -> Option<&'static (Model, Tokenizer)> {
    let loaded = MODEL.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(bae_llm::DEFAULT_MODEL);
        if !path.is_file() {
            return None;
        }
        let mut g = bae_llm::Gguf::open(&path).expect("open model");
        let tok = Tokenizer::from_gguf(&g).expect("tokenizer");
        let opts = bae_llm::LoadOptions {
            n_layers: None,
            head: true,
        };
        Some((Model::from_gguf(&mut g, opts).expect("load model"), tok))
    });
    if loaded.is_none() {
        assert!(
            std::env::var("REQUIRE_MODEL").as_deref() != Ok("1"),
            "{test}: REQUIRE_MODEL=1 but {} is missing: run bash scripts/setup.sh",
            bae_llm::DEFAULT_MODEL
        );
        eprintln!(
            "SKIP: {test}: model {} missing (run scripts/setup.sh)",
            bae_llm::DEFAULT_MODEL
        );
    }
    loaded.as_ref()
}

#[test]
fn real_tokenizer_prompts_are_the_whole_texts() {
    let Some((_, tok)) = real_model("real_tokenizer_prompts_are_the_whole_texts") else {
        return;
    };
    let colon = tok.encode(":");
    assert_eq!(colon.len(), 1);
    for t in builtin_tasks() {
        let enc = PromptTokens::new(tok, &t).unwrap();
        for q in 0..t.pairs.len() {
            let demos = demonstrations(&t, q, 8, 0);
            check_prefix_extension(&enc, &t, q, &demos);
            // piece by piece = the whole text at once (the lead is a special token: apart)
            let ids = enc.prompt_ids(q, &demos);
            let text = prompt_text(&t, q, &demos);
            let body = text.strip_prefix(LEAD).unwrap();
            assert_eq!(ids[1..], tok.encode(body)[..], "{}: {text:?}", t.name);
            // the last token is the ':' right before the answer
            assert_eq!(ids.last(), colon.last(), "{}: query {q}", t.name);
            // the demonstration's answer tokens are the ones scored
            let line = enc.demo_ids(q);
            let answer = enc.answer_ids(q);
            assert_eq!(
                line[line.len() - answer.len() - 1..line.len() - 1],
                answer[..]
            );
        }
        if t.name == DEFAULT_TASK {
            let multi: Vec<_> = (0..t.pairs.len())
                .filter(|&i| enc.answer_ids(i).len() != 1)
                .collect();
            assert!(multi.is_empty(), "answers of several tokens: {multi:?}");
        }
    }
}

#[test]
fn real_states_equal_the_full_prompt_forward_and_answers_equal_greedy_decoding() {
    let Some((model, tok)) = real_model("real_states_equal_the_full_prompt_forward") else {
        return;
    };
    let t = task("country_capital").unwrap(); // answers of one to several tokens
    let opts = IclOptions {
        block: 9,
        max_k: 3,
        queries: 5,
        seed: 11,
        batch: 3,
    };
    let mut calls = Vec::new();
    let r = run_icl(model, tok, &t, &opts, &mut |done, total| {
        calls.push((done, total))
    })
    .unwrap();
    assert_eq!(calls.last(), Some(&(20, 20)));
    assert_eq!(r.levels.len(), 4);
    assert_eq!(r.queries, select_queries(&t, 5, 11));
    let d = r.d_model;
    let enc = PromptTokens::new(tok, &t).unwrap();
    let stop = bae_llm::chat_stop_ids(tok);
    let mut worst = 0f32;
    for (qi, &q) in r.queries.iter().enumerate() {
        assert_eq!(r.demos[qi], demonstrations(&t, q, 3, 11));
        for level in &r.levels {
            let ids = enc.prompt_ids(q, &r.demos[qi][..level.k]);
            assert_eq!(level.positions[qi], ids.len() - 1);
            let full = model.hidden_states(&ids, 1, ids.len(), &[9]).unwrap();
            let want = &full[0][(ids.len() - 1) * d..];
            let got = &level.states[qi * d..(qi + 1) * d];
            let norm = want.iter().map(|v| v * v).sum::<f32>().sqrt();
            let diff = want
                .iter()
                .zip(got)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            worst = worst.max(diff / norm);
            assert!(
                diff <= 1e-5 * norm,
                "query {q} k {}: max |diff| {diff} (norm {norm})",
                level.k
            );
            // the verdict against real greedy decoding over the KV cache, until a new line
            let mut cache = model.new_cache();
            // (the answer's tokens and two more show a departure or the new line after it)
            let max_new = enc.answer_ids(q).len() + 2;
            let out = model
                .generate_greedy(&mut cache, &ids, max_new, &stop)
                .unwrap();
            let text = tok.decode(&out);
            let line = text.split('\n').next().unwrap();
            // ended by a new line, or by an end-of-text token (stopped early)
            let ended = text.contains('\n') || out.len() < max_new;
            let greedy_right = ended && line.trim() == t.pairs[q].1;
            assert_eq!(
                level.correct[qi], greedy_right,
                "query {q} k {}: greedy {text:?}, predicted {:?}",
                level.k, level.predicted[qi]
            );
            if level.correct[qi] {
                assert_eq!(level.predicted[qi], t.pairs[q].1);
            }
            let first = tok.decode(&out[..1.min(out.len())]);
            assert!(
                level.predicted[qi].is_empty() || text.trim_start().starts_with(first.trim()),
                "{text:?} vs {:?}",
                level.predicted[qi]
            );
        }
    }
    eprintln!("largest |difference| / norm against the full-prompt forward: {worst:e}");
    // batching (and its padding) changes nothing
    let one = run_icl(
        model,
        tok,
        &t,
        &IclOptions { batch: 1, ..opts },
        &mut |_, _| {},
    )
    .unwrap();
    for (a, b) in one.levels.iter().zip(&r.levels) {
        let diff = a
            .states
            .iter()
            .zip(&b.states)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(diff <= 1e-3, "k {}: {diff}", a.k);
        assert_eq!(a.correct, b.correct);
    }
}

#[test]
fn real_model_learns_the_default_task_in_context() {
    let Some((model, tok)) = real_model("real_model_learns_the_default_task_in_context") else {
        return;
    };
    let t = task(DEFAULT_TASK).unwrap();
    let opts = IclOptions {
        queries: 40,
        ..IclOptions::default()
    };
    let r = run_icl(model, tok, &t, &opts, &mut |_, _| {}).unwrap();
    let acc: Vec<f64> = r.levels.iter().map(|l| l.accuracy()).collect();
    eprintln!("{DEFAULT_TASK}, 40 queries, accuracy by k: {acc:.2?}");
    assert_eq!(r.levels.len(), 9);
    assert!(r.levels.iter().all(|l| l.states.len() == 40 * r.d_model));
    assert!(
        acc[8] >= acc[0] + 0.3,
        "no in-context learning: accuracy by k {acc:?}"
    );
}

/// The table of the report: accuracy by k for every shipped task over all its queries, and the
/// time of each run (`cargo test --release -p bae-analysis --test icl_task -- --ignored
/// --nocapture`; ICL_TASKS=a,b picks tasks, ICL_BATCH the prompts per pass).
#[test]
#[ignore]
fn accuracy_table() {
    let Some((model, tok)) = real_model("accuracy_table") else {
        return;
    };
    let names = std::env::var("ICL_TASKS").unwrap_or_else(|_| task_names().join(","));
    let batch = std::env::var("ICL_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(IclOptions::default().batch);
    // the machine's speed now, for comparison: a plain forward of 8 windows of 128 tokens
    let text: String = task(DEFAULT_TASK).unwrap().pairs[..60]
        .iter()
        .map(|(q, a)| format!("{q}: {a}\n"))
        .collect();
    let ids: Vec<u32> = tok.encode(&text).into_iter().cycle().take(1024).collect();
    let start = std::time::Instant::now();
    model.hidden_states(&ids, 8, 128, &[29]).unwrap();
    println!(
        "plain forward, all layers, 8 x 128 tokens: {:.0} tokens/s",
        1024.0 / start.elapsed().as_secs_f64()
    );
    for name in names.split(',') {
        let t = task(name).unwrap();
        let opts = IclOptions {
            batch,
            ..IclOptions::default()
        };
        let enc = PromptTokens::new(tok, &t).unwrap();
        let tokens: usize = (0..t.pairs.len())
            .map(|q| {
                let demos = demonstrations(&t, q, opts.max_k, opts.seed);
                (0..=opts.max_k)
                    .map(|k| enc.prompt_ids(q, &demos[..k]).len() + enc.answer_ids(q).len())
                    .sum::<usize>()
            })
            .sum();
        let start = std::time::Instant::now();
        let r = run_icl(model, tok, &t, &opts, &mut |_, _| {}).unwrap();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{name}: {} queries, k = 0..={}, batch {batch}: {secs:.1} s ({tokens} tokens, {:.0} tokens/s)",
            r.queries.len(),
            opts.max_k,
            tokens as f64 / secs
        );
        for l in &r.levels {
            println!(
                "  k={}  accuracy {:.3} ({}/{})  first token {:.3}",
                l.k,
                l.accuracy(),
                l.n_correct(),
                l.n(),
                l.n_first_token() as f64 / l.n() as f64
            );
        }
    }
}
