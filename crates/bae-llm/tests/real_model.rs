//! Tests on the real SmolLM2-135M GGUF. Without data/models/... they print SKIP and pass, unless
//! REQUIRE_MODEL=1 (then they fail). Fetch the model with `bash scripts/setup.sh`.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use bae_llm::generate::SMOLLM2_DEFAULT_SYSTEM;
use bae_llm::{
    ExtractOptions, Gguf, LoadOptions, Model, Tokenizer, argmax, chat_prompt, chat_stop_ids,
};

/// The model, loaded once for all tests.
struct Real {
    path: PathBuf,
    tok: Tokenizer,
    model: Model,
}

type Test = (&'static str, fn(&Real));

/// A plain runner (harness = false) so that a SKIP line is visible: libtest would capture it.
/// Closes with the "N passed, N failed" line; arguments not starting with '-' filter by name.
fn main() {
    let tests: &[Test] = &[
        ("config_matches_smollm2_135m", config_matches_smollm2_135m),
        ("digits_are_split_one_by_one", digits_are_split_one_by_one),
        ("encode_decode_round_trips", encode_decode_round_trips),
        ("paris_is_the_next_token", paris_is_the_next_token),
        (
            "hidden_states_shapes_determinism_norms_and_sink",
            hidden_states_shapes_determinism_norms_and_sink,
        ),
        (
            "extract_small_slice_of_the_corpus",
            extract_small_slice_of_the_corpus,
        ),
        (
            "chat_prompt_matches_the_gguf_template",
            chat_prompt_matches_the_gguf_template,
        ),
        (
            "greedy_chat_answer_names_paris",
            greedy_chat_answer_names_paris,
        ),
        (
            "unembed_direction_matches_a_plain_computation",
            unembed_direction_matches_a_plain_computation,
        ),
        (
            "kv_cache_prefill_and_decode_timing",
            kv_cache_prefill_and_decode_timing,
        ),
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        tests.iter().for_each(|(name, _)| println!("{name}: test"));
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&Test> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    if selected.is_empty() {
        return;
    }
    println!("\nrunning {} real-model tests", selected.len());
    let Some(path) = common::real_model("real-model tests") else {
        println!("0 passed, 0 failed, {} skipped", selected.len());
        return;
    };
    let mut g = Gguf::open(&path).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let model = Model::from_gguf(
        &mut g,
        LoadOptions {
            n_layers: None,
            head: true,
        },
    )
    .unwrap();
    let real = Real { path, tok, model };
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in selected {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(&real))).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if ok {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

fn norms(x: &[f32], d: usize) -> Vec<f32> {
    x.chunks(d)
        .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
        .collect()
}

fn config_matches_smollm2_135m(r: &Real) {
    let c = r.model.config();
    assert_eq!((c.n_layers, c.d_model, c.d_ffn), (30, 576, 1536));
    assert_eq!(
        (c.n_heads, c.n_kv_heads, c.head_dim, c.vocab_size),
        (9, 3, 64, 49152)
    );
    assert_eq!(r.tok.vocab_size(), 49152);
    assert_eq!((r.tok.bos_id, r.tok.eos_id), (Some(1), Some(2)));
}

fn digits_are_split_one_by_one(r: &Real) {
    let ids = r.tok.encode("2024");
    assert_eq!(ids.len(), 4);
    let digits: Vec<String> = ids.iter().map(|&i| r.tok.decode(&[i])).collect();
    assert_eq!(digits, ["2", "0", "2", "4"]);
    let ids = r.tok.encode("in 1790, 13 states");
    let pieces: Vec<String> = ids.iter().map(|&i| r.tok.decode(&[i])).collect();
    assert_eq!(
        pieces,
        ["in", " ", "1", "7", "9", "0", ",", " ", "1", "3", " states"]
    );
}

fn encode_decode_round_trips(r: &Real) {
    let samples = [
        "Hello, world! It's a test.",
        "Fellow-Citizens of the Senate and House of Representatives:\n\n\tI embrace with great satisfaction",
        "spaces   inside  and trailing   ",
        "\n\n\n  leading whitespace and \r\n windows lines",
        "Ünïcödé: naïve café, Straße, 東京, Привет мир, مرحبا, 🙂🚀 emoji",
        "numbers 3.14159 and 1,000,000 and ¹²³ and ٣",
        "code: fn main() { let x = a[i] + b >> 2; } // <|endoftext|> stays text",
        "don't we'll they've I'm she'd it's 'quoted' ''",
        "",
        " ",
    ];
    for s in samples {
        let ids = r.tok.encode(s);
        assert_eq!(r.tok.decode(&ids), s, "round trip of {s:?} via {ids:?}");
    }
    // Known ids (agree with Hugging Face's tokenizer for this model).
    assert_eq!(
        r.tok.encode("The capital of France is"),
        [504, 3575, 282, 4649, 314]
    );
}

fn paris_is_the_next_token(r: &Real) {
    let ids = r.tok.encode("The capital of France is");
    let v = r.model.config().vocab_size;
    let logits = r.model.logits(&ids, 1, ids.len()).unwrap();
    let last = &logits[(ids.len() - 1) * v..];
    let best = (0..v).max_by(|&a, &b| last[a].total_cmp(&last[b])).unwrap();
    assert_eq!(r.tok.decode(&[best as u32]), " Paris");
}

fn hidden_states_shapes_determinism_norms_and_sink(r: &Real) {
    let text = "Fellow-Citizens of the Senate and House of Representatives: I embrace with great \
                satisfaction the opportunity which now presents itself of congratulating you on the \
                present favorable prospects of our public affairs. The recent accession of the \
                important State of North Carolina to the Constitution of the United States";
    let ids = r.tok.encode(text);
    let seq = 24;
    assert!(ids.len() >= 2 * seq);
    let batch_ids = &ids[..2 * seq];
    let a = r.model.hidden_states(batch_ids, 2, seq, &[15, 8]).unwrap();
    let b = r.model.hidden_states(batch_ids, 2, seq, &[15, 8]).unwrap();
    assert_eq!(a.len(), 2);
    assert!(a.iter().all(|s| s.len() == 2 * seq * 576));
    assert_eq!(a, b, "two runs must be bit-identical");
    // A window alone gives the same states as inside a batch (windows are independent).
    let single = r
        .model
        .hidden_states(&batch_ids[seq..], 1, seq, &[15])
        .unwrap();
    let in_batch = &a[0][seq * 576..];
    let diff = single[0]
        .iter()
        .zip(in_batch)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-3, "window alone vs in batch: {diff}");

    let n = norms(&a[0], 576);
    for w in 0..2 {
        let win = &n[w * seq..(w + 1) * seq];
        let mut rest: Vec<f32> = win[2..].to_vec();
        rest.sort_by(f32::total_cmp);
        let median = rest[rest.len() / 2];
        assert!(
            (50.0..500.0).contains(&median),
            "block-15 median norm {median}"
        );
        assert!(rest.iter().all(|x| x.is_finite() && *x < 10.0 * median));
        // The attention sink: position 0 carries a massive activation.
        assert!(
            win[0] > 20.0 * median,
            "sink norm {} vs median {median}",
            win[0]
        );
    }
    // Block 8 norms are smaller than block 15 ones but sane too.
    let n8 = norms(&a[1], 576);
    let mut rest8: Vec<f32> = n8[2..seq].to_vec();
    rest8.sort_by(f32::total_cmp);
    assert!((20.0..400.0).contains(&rest8[rest8.len() / 2]));
}

fn extract_small_slice_of_the_corpus(r: &Real) {
    let Some(corpus) = common::real_corpus() else {
        println!(
            "SKIP extract_small_slice_of_the_corpus: corpus missing (run bash scripts/setup.sh)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let args = ExtractOptions {
        model: r.path.clone(),
        text: vec![corpus],
        blocks: vec![15],
        tokens: 600,
        shard_rows: 512,
        out: dir.path().to_path_buf(),
        ..ExtractOptions::default()
    };
    let s = bae_llm::run_extract(&args).unwrap();
    assert!(s.complete);
    assert_eq!(s.candidates_total, 600);
    assert_eq!(
        s.blocks[0].shards, 2,
        "512-row shards hold whole batches of 126-row windows"
    );
    let m = bae_llm::Manifest::read(&dir.path().join("block15"))
        .unwrap()
        .unwrap();
    assert_eq!((m.d, m.window, m.dtype), (576, 128, bae_llm::OutDtype::F16));
    let f =
        bae_io::ActivationFile::open(&dir.path().join("block15/shard-00000.safetensors")).unwrap();
    assert_eq!(f.dim(), 576);
    f.check_finite().unwrap();
    let mut rows = vec![0f32; f.n_rows() * 576];
    f.read_rows(0, f.n_rows(), &mut rows).unwrap();
    let n = norms(&rows, 576);
    let max = n.iter().cloned().fold(0.0f32, f32::max);
    assert!(max < 1000.0, "sink rows must be gone, max norm {max}");
}

const FRANCE: &str = "What is the capital of France?";

fn chat_prompt_matches_the_gguf_template(r: &Real) {
    let g = Gguf::open(&r.path).unwrap();
    let template = g.meta_str("tokenizer.chat_template").unwrap();
    // the pieces chat_prompt reproduces, as the Jinja template spells them
    for piece in [
        "{% if loop.first and messages[0]['role'] != 'system' %}",
        &format!("{{{{ '<|im_start|>system\n{SMOLLM2_DEFAULT_SYSTEM}<|im_end|>\n' }}}}"),
        "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}",
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    ] {
        assert!(
            template.contains(piece),
            "template lacks {piece:?}:\n{template}"
        );
    }
    let start = r.tok.token_id("<|im_start|>").unwrap();
    let end = r.tok.token_id("<|im_end|>").unwrap();
    assert_eq!(
        (start, end),
        (1, 2),
        "SmolLM2's ids for <|im_start|>, <|im_end|>"
    );
    let ids = chat_prompt(&r.tok, &[("user", FRANCE)]).unwrap();
    assert_eq!(
        r.tok.decode(&ids),
        format!(
            "<|im_start|>system\n{SMOLLM2_DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\n{FRANCE}\
             <|im_end|>\n<|im_start|>assistant\n"
        )
    );
    assert_eq!(ids.iter().filter(|&&i| i == start).count(), 3);
    assert_eq!(ids[0], start);
    let gen_prompt: Vec<u32> = std::iter::once(start)
        .chain(r.tok.encode("assistant\n"))
        .collect();
    assert!(ids.ends_with(&gen_prompt), "{ids:?}");
    println!("  chat prompt: {} tokens {ids:?}", ids.len());
    assert_eq!(
        chat_stop_ids(&r.tok),
        vec![2],
        "<|im_end|> is also the EOS id"
    );
}

fn greedy_chat_answer_names_paris(r: &Real) {
    let prompt = chat_prompt(&r.tok, &[("user", FRANCE)]).unwrap();
    let stop = chat_stop_ids(&r.tok);
    let mut cache = r.model.new_cache();
    let t = Instant::now();
    let out = r
        .model
        .generate_greedy(&mut cache, &prompt, 16, &stop)
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let text = r.tok.decode(&out);
    println!(
        "  greedy answer ({} tokens, {secs:.2} s): {text:?} {out:?}",
        out.len()
    );
    assert!(text.contains("Paris"), "{text:?}");
    // it ended on <|im_end|> well before the limit ("The capital of France is Paris." when this
    // was written)
    assert!(out.len() < 16, "no stop token: {text:?}");
    let mut again = r.model.new_cache();
    assert_eq!(
        r.model
            .generate_greedy(&mut again, &prompt, 16, &stop)
            .unwrap(),
        out
    );
    // the first tokens equal the brute-force argmax of the full forward pass
    let v = r.model.config().vocab_size;
    let mut seq = prompt.clone();
    for (i, &tok) in out.iter().take(6).enumerate() {
        let logits = r.model.logits(&seq, 1, seq.len()).unwrap();
        assert_eq!(argmax(&logits[(seq.len() - 1) * v..]), tok, "token {i}");
        seq.push(tok);
    }
    // and the cache went on to hold the prompt and the answer
    assert_eq!(cache.len(), prompt.len() + out.len());
}

fn unembed_direction_matches_a_plain_computation(r: &Real) {
    let mut g = Gguf::open(&r.path).unwrap();
    let (v, d) = (r.model.config().vocab_size, r.model.config().d_model);
    let embed = g.tensor_f32("token_embd.weight", &[v, d]).unwrap();
    let embed = embed.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let norm = g.tensor_f32("output_norm.weight", &[d]).unwrap();
    let norm = norm.to_vec1::<f32>().unwrap();
    assert!(!g.has_tensor("output.weight"), "SmolLM2's head is tied");
    let paris = r.tok.encode(" Paris");
    assert_eq!(paris.len(), 1);
    let p = paris[0] as usize;
    let dir = &embed[p * d..(p + 1) * d];
    let got = r.model.unembed_direction(dir).unwrap();
    assert_eq!(got.len(), v);
    let want: Vec<f64> = (0..v)
        .map(|t| {
            (0..d)
                .map(|j| embed[t * d + j] as f64 * norm[j] as f64 * dir[j] as f64)
                .sum()
        })
        .collect();
    let scale = want.iter().map(|x| x.abs()).fold(1.0, f64::max);
    let err = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0.0, f64::max);
    assert!(err <= 1e-5 * scale, "err {err} scale {scale}");
    let top: Vec<String> = {
        let mut idx: Vec<usize> = (0..v).collect();
        idx.sort_by(|&a, &b| got[b].total_cmp(&got[a]));
        idx[..5]
            .iter()
            .map(|&i| r.tok.decode(&[i as u32]))
            .collect()
    };
    println!("  unembed(embed(' Paris')) top 5: {top:?} (max err {err:.2e}, scale {scale:.1})");

    // the head on the final residual row, written as unembed_direction of the normalised row,
    // gives the model's logits
    let ids = r.tok.encode("The capital of France is");
    let n = ids.len();
    let x = r.model.hidden_states(&ids, 1, n, &[29]).unwrap().remove(0);
    let last = &x[(n - 1) * d..];
    let eps = r.model.config().rms_eps;
    let inv = 1.0 / (last.iter().map(|v| v * v).sum::<f32>() / d as f32 + eps).sqrt();
    let scaled: Vec<f32> = last.iter().map(|v| v * inv).collect();
    let via_dir = r.model.unembed_direction(&scaled).unwrap();
    let logits = r.model.logits(&ids, 1, n).unwrap();
    let want = &logits[(n - 1) * v..];
    let scale = want.iter().map(|x| x.abs()).fold(1.0, f32::max);
    let err = via_dir
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(err <= 1e-4 * scale, "err {err} scale {scale}");
    assert_eq!(r.tok.decode(&[argmax(&via_dir)]), " Paris");
}

fn kv_cache_prefill_and_decode_timing(r: &Real) {
    let text = "Fellow-Citizens of the Senate and House of Representatives: I embrace with great \
                satisfaction the opportunity which now presents itself of congratulating you on the \
                present favorable prospects of our public affairs. The recent accession of the \
                important State of North Carolina to the Constitution of the United States (of \
                which official information has been received), the rising credit and respectability \
                of our country, the general and increasing good will toward the Government of the \
                Union, and the concord, peace, and plenty with which we are blessed are \
                circumstances auspicious in an eminent degree to our national prosperity. ";
    let ids: Vec<u32> = r.tok.encode(&text.repeat(6));
    assert!(ids.len() >= 400);
    let ids = &ids[..400];
    let v = r.model.config().vocab_size;
    let th = rayon::current_num_threads();

    let mut prefill = f64::INFINITY;
    let mut cache = r.model.new_cache();
    let mut last = Vec::new();
    for _ in 0..2 {
        cache.clear();
        let t = Instant::now();
        last = r.model.extend(&mut cache, ids).unwrap();
        prefill = prefill.min(t.elapsed().as_secs_f64());
    }
    let t = Instant::now();
    let full = r.model.logits(ids, 1, 400).unwrap();
    let full_secs = t.elapsed().as_secs_f64();
    let want = &full[399 * v..];
    let scale = want.iter().map(|x| x.abs()).fold(1.0, f32::max);
    let err = last
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        err <= 1e-4 * scale,
        "prefill vs full logits: err {err} scale {scale}"
    );

    // decode 32 tokens after the 400-token prefix
    let n_dec = 32;
    let t = Instant::now();
    let mut next = argmax(&last);
    for _ in 0..n_dec {
        let l = r.model.extend(&mut cache, &[next]).unwrap();
        next = argmax(&l);
    }
    let per_tok = t.elapsed().as_secs_f64() / n_dec as f64;
    assert_eq!(cache.len(), 400 + n_dec);
    // after truncating back to the prompt, the same first decode step again
    cache.truncate(400);
    let again = r.model.extend(&mut cache, &[argmax(&last)]).unwrap();
    let mut seq = ids.to_vec();
    seq.push(argmax(&last));
    let full2 = r.model.logits(&seq, 1, 401).unwrap();
    let want2 = &full2[400 * v..];
    let err2 = again
        .iter()
        .zip(want2)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(err2 <= 1e-4 * scale, "decode after truncate: err {err2}");
    println!(
        "  {th} threads: prefill of 400 tokens {:.0} ms (best of 2; Model::logits over the same \
         400 tokens {:.0} ms), decode {:.1} ms/token ({:.1} tokens/s) at positions 400..432; \
         max |diff| vs full logits {err:.2e} (max |logit| {scale:.1})",
        prefill * 1e3,
        full_secs * 1e3,
        per_tok * 1e3,
        1.0 / per_tok
    );
}
