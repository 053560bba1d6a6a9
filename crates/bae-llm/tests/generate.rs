//! KV-cached inference, greedy generation, the chat prompt and `unembed_direction` on the toy
//! llama of `common` (no download needed). The cached path is checked against the full forward
//! pass `Model::logits`, which `toy.rs` checks against a naive f64 llama.

mod common;

use std::path::Path;

use bae_llm::generate::{IM_END, IM_START, SMOLLM2_DEFAULT_SYSTEM};
use bae_llm::{KvCache, LoadOptions, Model, Tokenizer, argmax, chat_prompt, chat_stop_ids};
use common::{NamedTensor, Toy, noise, toy_vocab, write_toy_gguf};

/// Relative tolerance of the cached path against the full forward pass: the max abs difference
/// over the vocabulary, divided by max(1, max |logit|). Both are f32 with the same operations;
/// only the summation order inside the matrix products differs (different matrix shapes).
const REL_TOL: f64 = 3e-5;

const FULL: LoadOptions = LoadOptions {
    n_layers: None,
    head: true,
};

fn toy(dir: &Path, toy: &Toy) -> (Model, Vec<NamedTensor>) {
    let path = dir.join("toy.gguf");
    let ts = write_toy_gguf(&path, toy);
    (Model::load(&path, FULL).unwrap(), ts)
}

fn ids(n: usize, seed: u64, vocab: usize) -> Vec<u32> {
    noise(n, seed, 1.0)
        .iter()
        .map(|v| ((v + 1.0) * 10_007.0) as u32 % vocab as u32)
        .collect()
}

/// Logits of every position of one sequence, by the full forward pass.
fn full_logits(m: &Model, ids: &[u32]) -> Vec<Vec<f32>> {
    let v = m.config().vocab_size;
    m.logits(ids, 1, ids.len())
        .unwrap()
        .chunks(v)
        .map(|c| c.to_vec())
        .collect()
}

fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().map(|v| v.abs() as f64).fold(1.0, f64::max);
    got.iter()
        .zip(want)
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .fold(0.0, f64::max)
        / scale
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    let e = rel_err(got, want);
    assert!(e <= REL_TOL, "{what}: relative error {e:.3e} > {REL_TOL:e}");
}

/// Extends the cache chunk by chunk; returns the logits after each chunk.
fn extend_chunks(m: &Model, cache: &mut KvCache, ids: &[u32], sizes: &[usize]) -> Vec<Vec<f32>> {
    let mut at = 0;
    let mut out = Vec::new();
    for &s in sizes {
        out.push(m.extend(cache, &ids[at..at + s]).unwrap());
        at += s;
        assert_eq!(cache.len(), at);
    }
    assert_eq!(at, ids.len(), "chunk sizes must cover the sequence");
    out
}

#[test]
fn extend_in_any_split_matches_the_full_forward_pass() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = toy(dir.path(), &Toy::default());
    let v = m.config().vocab_size;
    let seq = ids(40, 11, v);
    let want = full_logits(&m, &seq);
    let last = &want[seq.len() - 1];
    // sanity: the logits are not trivially equal across positions
    assert!(rel_err(&want[38], last) > 1e-2);

    let mut cache = m.new_cache();
    assert!(cache.is_empty() && cache.capacity() == 64);
    let one = m.extend(&mut cache, &seq).unwrap();
    assert_eq!(one.len(), v);
    assert_close(&one, last, "one call");

    let mut cache = m.new_cache();
    let chunks = extend_chunks(&m, &mut cache, &seq, &[1, 5, 34]);
    assert_close(&chunks[0], &want[0], "chunk 1 (position 0)");
    assert_close(&chunks[1], &want[5], "chunk 1+5 (position 5)");
    assert_close(&chunks[2], last, "chunks 1+5+34");

    // one token at a time: the logits at every position
    let mut cache = m.new_cache();
    let steps = extend_chunks(&m, &mut cache, &seq, &[1; 40]);
    for (p, (got, w)) in steps.iter().zip(&want).enumerate() {
        assert_close(got, w, &format!("token by token, position {p}"));
    }
    let worst = steps
        .iter()
        .zip(&want)
        .map(|(g, w)| rel_err(g, w))
        .fold(0.0, f64::max);
    eprintln!("token by token: worst relative error {worst:.2e}");
}

#[test]
fn truncate_then_reextend_equals_a_fresh_computation() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = toy(dir.path(), &Toy::default());
    let v = m.config().vocab_size;
    let a = ids(24, 21, v);
    let b = ids(13, 22, v);
    let mut cache = m.new_cache();
    m.extend(&mut cache, &a[..10]).unwrap();
    m.extend(&mut cache, &a[10..]).unwrap();
    let branch_point = cache.clone();
    cache.truncate(8);
    assert_eq!(cache.len(), 8);
    let got = m.extend(&mut cache, &b).unwrap();
    assert_eq!(cache.len(), 21);

    let fresh_ids: Vec<u32> = a[..8].iter().chain(&b).copied().collect();
    let mut fresh = m.new_cache();
    let fresh_logits = m.extend(&mut fresh, &fresh_ids).unwrap();
    assert_close(
        &got,
        &fresh_logits,
        "truncated + re-extended vs fresh cache",
    );
    let full = full_logits(&m, &fresh_ids);
    assert_close(&got, &full[20], "truncated + re-extended vs full forward");
    // the old continuation would give something else (the test can tell them apart)
    let old = full_logits(&m, &a);
    assert!(rel_err(&got, &old[23]) > 1e-2);

    // the clone taken before truncating still continues the original sequence
    let mut branch = branch_point;
    assert_eq!(branch.len(), 24);
    let c = ids(3, 23, v);
    let cont = m.extend(&mut branch, &c).unwrap();
    let ac: Vec<u32> = a.iter().chain(&c).copied().collect();
    assert_close(
        &cont,
        &full_logits(&m, &ac)[26],
        "clone continues the original",
    );

    // truncate beyond the length is a no-op; clear empties
    branch.truncate(100);
    assert_eq!(branch.len(), 27);
    branch.clear();
    assert!(branch.is_empty());
    let again = m.extend(&mut branch, &fresh_ids).unwrap();
    assert_close(&again, &fresh_logits, "after clear");
}

/// Greedy decoding by brute force: the full forward pass recomputed for each new token.
fn brute_force_greedy(m: &Model, prompt: &[u32], max_new: usize, stop: &[u32]) -> Vec<u32> {
    let v = m.config().vocab_size;
    let mut seq = prompt.to_vec();
    let mut out = Vec::new();
    while out.len() < max_new {
        let logits = m.logits(&seq, 1, seq.len()).unwrap();
        let next = argmax(&logits[(seq.len() - 1) * v..]);
        if stop.contains(&next) {
            break;
        }
        out.push(next);
        seq.push(next);
    }
    out
}

#[test]
fn greedy_generation_equals_brute_force_argmax() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = toy(dir.path(), &Toy::default());
    let v = m.config().vocab_size;
    // seed 32: a prompt on which the toy model's greedy output changes token several times
    // ([66, 39, 213, 213, 213, 96, 61, 61, ...] when this was written)
    let prompt = ids(6, 32, v);
    let want = brute_force_greedy(&m, &prompt, 14, &[]);
    assert_eq!(want.len(), 14);
    let distinct: std::collections::HashSet<u32> = want.iter().copied().collect();
    assert!(distinct.len() >= 4, "a degenerate prompt: {want:?}");
    let mut cache = m.new_cache();
    let got = m.generate_greedy(&mut cache, &prompt, 14, &[]).unwrap();
    assert_eq!(got, want);
    // the cache holds the prompt and every returned token
    assert_eq!(cache.len(), prompt.len() + 14);
    // deterministic
    let mut cache2 = m.new_cache();
    assert_eq!(
        m.generate_greedy(&mut cache2, &prompt, 14, &[]).unwrap(),
        got
    );

    // a stop id ends generation and is not returned: stop at the last first occurrence of a
    // token (index 6 above)
    let k = (1..want.len())
        .rfind(|&i| !want[..i].contains(&want[i]))
        .unwrap();
    eprintln!("greedy toy output {want:?}, stop at index {k}");
    let stop = [want[k], 9999];
    let mut cache = m.new_cache();
    let cut = m.generate_greedy(&mut cache, &prompt, 14, &stop).unwrap();
    assert_eq!(cut, want[..k]);
    assert_eq!(cut, brute_force_greedy(&m, &prompt, 14, &stop));
    assert_eq!(cache.len(), prompt.len() + k, "the stop id is not fed back");

    // a prefix reused for another prompt, after truncating back to it
    let mut cache = m.new_cache();
    m.extend(&mut cache, &prompt[..3]).unwrap();
    let base = cache.len();
    m.generate_greedy(&mut cache, &prompt[3..], 5, &[]).unwrap();
    cache.truncate(base);
    let other = ids(4, 32, v);
    let got = m.generate_greedy(&mut cache, &other, 8, &[]).unwrap();
    let full_prompt: Vec<u32> = prompt[..3].iter().chain(&other).copied().collect();
    assert_eq!(got, brute_force_greedy(&m, &full_prompt, 8, &[]));

    // max_new = 0 only runs the prompt
    let mut cache = m.new_cache();
    assert!(
        m.generate_greedy(&mut cache, &prompt, 0, &[])
            .unwrap()
            .is_empty()
    );
    assert_eq!(cache.len(), prompt.len());
}

#[test]
fn the_context_length_bounds_the_cache_with_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = toy(dir.path(), &Toy::default());
    let v = m.config().vocab_size;
    let seq = ids(64, 41, v);
    let mut cache = m.new_cache();
    m.extend(&mut cache, &seq[..60]).unwrap();
    let e = m.extend(&mut cache, &seq[..5]).unwrap_err().to_string();
    assert!(
        e.contains("60 cached + 5 new") && e.contains("context length 64"),
        "{e}"
    );
    assert_eq!(cache.len(), 60, "a refused extend changes nothing");
    let last = m.extend(&mut cache, &seq[60..]).unwrap();
    assert_close(
        &last,
        &full_logits(&m, &seq)[63],
        "filled to the context length",
    );
    assert!(m.extend(&mut cache, &seq[..1]).is_err());

    // generation stops at the end of the context: 60 + 4 fed, a 5th returned but not fed
    let mut cache = m.new_cache();
    let out = m.generate_greedy(&mut cache, &seq[..60], 10, &[]).unwrap();
    assert_eq!(out.len(), 5);
    assert_eq!(cache.len(), 64);
    assert_eq!(out, brute_force_greedy(&m, &seq[..60], 5, &[]));

    // other refusals
    let mut cache = m.new_cache();
    let e = m.extend(&mut cache, &[]).unwrap_err().to_string();
    assert!(e.contains("no token ids"), "{e}");
    let e = m.extend(&mut cache, &[v as u32]).unwrap_err().to_string();
    assert!(e.contains("outside the vocabulary"), "{e}");
    assert!(cache.is_empty());
    assert!(m.generate_greedy(&mut cache, &[], 3, &[]).is_err());

    let other_dir = tempfile::tempdir().unwrap();
    let (m2, _) = toy(
        other_dir.path(),
        &Toy {
            n_layers: 2,
            ..Toy::default()
        },
    );
    let e = m2
        .extend(&mut m.new_cache(), &seq[..2])
        .unwrap_err()
        .to_string();
    assert!(e.contains("another model"), "{e}");

    let path = dir.path().join("toy.gguf");
    let headless = Model::load(
        &path,
        LoadOptions {
            n_layers: None,
            head: false,
        },
    )
    .unwrap();
    let e = headless
        .extend(&mut headless.new_cache(), &seq[..2])
        .unwrap_err()
        .to_string();
    assert!(e.contains("head"), "{e}");
    assert!(headless.unembed_direction(&[0.0; 32]).is_err());
    let partial = Model::load(
        &path,
        LoadOptions {
            n_layers: Some(2),
            head: true,
        },
    )
    .unwrap();
    assert!(partial.extend(&mut partial.new_cache(), &seq[..2]).is_err());
}

#[test]
fn unembed_direction_is_the_head_applied_to_the_weighted_direction() {
    let dir = tempfile::tempdir().unwrap();
    let t = Toy::default();
    let (m, ts) = toy(dir.path(), &t);
    let get = |n: &str| &ts.iter().find(|x| x.0 == n).unwrap().2;
    let (emb, norm) = (get("token_embd.weight"), get("output_norm.weight"));
    let (v, d) = (m.config().vocab_size, t.d);
    let dir_v = noise(d, 51, 3.0);
    let got = m.unembed_direction(&dir_v).unwrap();
    assert_eq!(got.len(), v);
    let want: Vec<f32> = (0..v)
        .map(|r| {
            (0..d)
                .map(|j| emb[r * d + j] as f64 * norm[j] as f64 * dir_v[j] as f64)
                .sum::<f64>() as f32
        })
        .collect();
    assert_close(&got, &want, "unembed_direction vs f64 loop");
    // linear, not normalised: twice the direction gives twice the logits
    let twice: Vec<f32> = dir_v.iter().map(|x| 2.0 * x).collect();
    let got2 = m.unembed_direction(&twice).unwrap();
    let doubled: Vec<f32> = got.iter().map(|x| 2.0 * x).collect();
    assert_close(&got2, &doubled, "linearity");
    let e = m.unembed_direction(&[1.0; 5]).unwrap_err().to_string();
    assert!(e.contains("width is 32"), "{e}");
    // three at once: the same rows as one at a time
    let dirs: Vec<f32> = [dir_v.clone(), twice.clone(), noise(d, 52, 1.0)].concat();
    let batch = m.unembed_directions(&dirs, 3).unwrap();
    for (k, row) in dirs.chunks(d).enumerate() {
        let one = m.unembed_direction(row).unwrap();
        assert_close(&batch[k * v..(k + 1) * v], &one, "unembed_directions row");
    }
    assert!(m.unembed_directions(&dirs, 2).is_err());
}

#[test]
fn argmax_takes_the_lower_id_on_ties_and_skips_nan() {
    assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
    assert_eq!(argmax(&[f32::NAN, -1.0, -1.0]), 1);
    assert_eq!(argmax(&[-5.0, f32::NEG_INFINITY, 7.5]), 2);
    assert_eq!(argmax(&[]), 0);
}

/// The toy vocabulary plus the two ChatML special tokens.
fn chat_tokenizer() -> Tokenizer {
    let (mut tokens, merges) = toy_vocab();
    tokens.push(IM_START.into());
    tokens.push(IM_END.into());
    let mut tok = Tokenizer::new(tokens, &merges).unwrap();
    tok.eos_id = Some(0);
    tok
}

#[test]
fn chat_prompt_renders_chatml_with_the_default_system_message() {
    let tok = chat_tokenizer();
    let (start, end) = (
        tok.token_id(IM_START).unwrap(),
        tok.token_id(IM_END).unwrap(),
    );
    let ids = chat_prompt(&tok, &[("user", "the theme?")]).unwrap();
    assert_eq!(
        tok.decode(&ids),
        format!(
            "<|im_start|>system\n{SMOLLM2_DEFAULT_SYSTEM}<|im_end|>\n\
             <|im_start|>user\nthe theme?<|im_end|>\n<|im_start|>assistant\n"
        )
    );
    assert_eq!(ids[0], start);
    assert_eq!(ids.iter().filter(|&&i| i == start).count(), 3);
    assert_eq!(ids.iter().filter(|&&i| i == end).count(), 2);
    // the text between the specials is encoded on its own: "user\nthe theme?" as a whole
    let at = |t: u32| -> Vec<usize> { (0..ids.len()).filter(|&i| ids[i] == t).collect() };
    let (starts, ends) = (at(start), at(end));
    assert_eq!(&ids[starts[1] + 1..ends[1]], tok.encode("user\nthe theme?"));
    assert_eq!(&ids[ends[1] + 1..starts[2]], tok.encode("\n"));

    // an explicit system message replaces the default; several turns follow in order
    let ids = chat_prompt(
        &tok,
        &[
            ("system", "be brief"),
            ("user", "hi"),
            ("assistant", "hello"),
            ("user", "the end"),
        ],
    )
    .unwrap();
    assert_eq!(
        tok.decode(&ids),
        "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n\
         <|im_start|>assistant\nhello<|im_end|>\n<|im_start|>user\nthe end<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    // no messages: only the generation prompt (the template's loop inserts the default)
    assert_eq!(
        tok.decode(&chat_prompt(&tok, &[]).unwrap()),
        "<|im_start|>assistant\n"
    );
    assert_eq!(chat_stop_ids(&tok), vec![end, 0]);

    // a vocabulary without the specials is refused
    let (tokens, merges) = toy_vocab();
    let plain = Tokenizer::new(tokens, &merges).unwrap();
    let e = chat_prompt(&plain, &[("user", "x")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("<|im_start|>"), "{e}");
    assert!(chat_stop_ids(&plain).is_empty());
}
