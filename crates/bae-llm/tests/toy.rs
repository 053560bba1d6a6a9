//! Tests on a small random llama GGUF written by the test itself: they need no download.
//! The forward pass is checked against a naive f64 implementation written from the llama
//! equations, and extraction (shards, manifest, resume, errors) runs end to end.

mod common;

use std::path::{Path, PathBuf};

use bae_llm::{ExtractOptions, LoadOptions, Model, OutDtype, Tokenizer, run_extract};
use common::{NamedTensor, Toy, noise, write_toy_gguf, write_toy_gguf_with};

fn tensor<'a>(ts: &'a [(String, Vec<usize>, Vec<f32>)], name: &str) -> &'a [f32] {
    &ts.iter().find(|t| t.0 == name).unwrap().2
}

/// y = W x for W stored [out, in] (GGUF/candle order).
fn linear(w: &[f32], x: &[f64], out: usize) -> Vec<f64> {
    let inp = x.len();
    (0..out)
        .map(|o| (0..inp).map(|i| w[o * inp + i] as f64 * x[i]).sum())
        .collect()
}

fn rms(x: &[f64], w: &[f32], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let inv = 1.0 / (ms + eps).sqrt();
    x.iter().zip(w).map(|(v, &w)| v * inv * w as f64).collect()
}

/// Interleaved RoPE on one head vector at position `pos`.
fn rope(v: &mut [f64], pos: usize, theta: f64) {
    let hd = v.len();
    for i in 0..hd / 2 {
        let a = pos as f64 * theta.powf(-((2 * i) as f64) / hd as f64);
        let (x0, x1) = (v[2 * i], v[2 * i + 1]);
        v[2 * i] = x0 * a.cos() - x1 * a.sin();
        v[2 * i + 1] = x0 * a.sin() + x1 * a.cos();
    }
}

/// Naive forward of one sequence: residual stream after each layer, [layer][pos][d].
fn naive(ts: &[NamedTensor], toy: &Toy, ids: &[u32]) -> Vec<Vec<Vec<f64>>> {
    let d = toy.d;
    let emb = tensor(ts, "token_embd.weight");
    let x: Vec<Vec<f64>> = ids
        .iter()
        .map(|&id| {
            emb[id as usize * d..(id as usize + 1) * d]
                .iter()
                .map(|&v| v as f64)
                .collect()
        })
        .collect();
    naive_layers(ts, toy, x, 0)
}

/// Naive layers `first..` on a residual stream [pos][d]: the stream after each of them.
fn naive_layers(
    ts: &[NamedTensor],
    toy: &Toy,
    mut x: Vec<Vec<f64>>,
    first: usize,
) -> Vec<Vec<Vec<f64>>> {
    let (d, f, nh, nkv) = (toy.d, toy.f, toy.n_heads, toy.n_kv);
    let hd = d / nh;
    let mut per_layer = Vec::new();
    for l in first..toy.n_layers {
        let w = |n: &str| tensor(ts, &format!("blk.{l}.{n}"));
        let h: Vec<Vec<f64>> = x
            .iter()
            .map(|r| rms(r, w("attn_norm.weight"), toy.eps as f64))
            .collect();
        let mut q: Vec<Vec<f64>> = h.iter().map(|r| linear(w("attn_q.weight"), r, d)).collect();
        let mut k: Vec<Vec<f64>> = h
            .iter()
            .map(|r| linear(w("attn_k.weight"), r, nkv * hd))
            .collect();
        let v: Vec<Vec<f64>> = h
            .iter()
            .map(|r| linear(w("attn_v.weight"), r, nkv * hd))
            .collect();
        for (p, (qr, kr)) in q.iter_mut().zip(k.iter_mut()).enumerate() {
            qr.chunks_mut(hd).for_each(|c| rope(c, p, toy.theta as f64));
            kr.chunks_mut(hd).for_each(|c| rope(c, p, toy.theta as f64));
        }
        let mut attn = vec![vec![0.0; d]; x.len()];
        for head in 0..nh {
            let g = head / (nh / nkv);
            for i in 0..x.len() {
                let qi = &q[i][head * hd..(head + 1) * hd];
                let s: Vec<f64> = (0..=i)
                    .map(|j| {
                        qi.iter()
                            .zip(&k[j][g * hd..(g + 1) * hd])
                            .map(|(a, b)| a * b)
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for (j, ej) in e.iter().enumerate() {
                    for c in 0..hd {
                        attn[i][head * hd + c] += ej / z * v[j][g * hd + c];
                    }
                }
            }
        }
        for (xr, ar) in x.iter_mut().zip(&attn) {
            let o = linear(w("attn_output.weight"), ar, d);
            xr.iter_mut().zip(o).for_each(|(a, b)| *a += b);
            let h = rms(xr, w("ffn_norm.weight"), toy.eps as f64);
            let g = linear(w("ffn_gate.weight"), &h, f);
            let u = linear(w("ffn_up.weight"), &h, f);
            let act: Vec<f64> = g
                .iter()
                .zip(&u)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let dn = linear(w("ffn_down.weight"), &act, d);
            xr.iter_mut().zip(dn).for_each(|(a, b)| *a += b);
        }
        per_layer.push(x.clone());
    }
    per_layer
}

fn toy_model(dir: &Path) -> (PathBuf, Toy, Vec<NamedTensor>) {
    let toy = Toy::default();
    let path = dir.join("toy.gguf");
    let ts = write_toy_gguf(&path, &toy);
    (path, toy, ts)
}

#[test]
fn forward_matches_naive_llama() {
    let dir = tempfile::tempdir().unwrap();
    let (path, toy, ts) = toy_model(dir.path());
    let model = Model::load(
        &path,
        LoadOptions {
            n_layers: None,
            head: true,
        },
    )
    .unwrap();
    let (batch, seq) = (3, 20);
    let vocab = model.config().vocab_size as u32;
    let ids: Vec<u32> = noise(batch * seq, 7, 1.0)
        .iter()
        .map(|v| ((v + 1.0) * 1000.0) as u32 % vocab)
        .collect();
    let states = model.hidden_states(&ids, batch, seq, &[2, 0]).unwrap();
    assert_eq!(states.len(), 2);
    for b in 0..batch {
        let want = naive(&ts, &toy, &ids[b * seq..(b + 1) * seq]);
        for (got, layer) in states.iter().zip([2usize, 0]) {
            assert_eq!(got.len(), batch * seq * toy.d);
            for p in 0..seq {
                let g = &got[(b * seq + p) * toy.d..(b * seq + p + 1) * toy.d];
                let w = &want[layer][p];
                let err = g
                    .iter()
                    .zip(w)
                    .map(|(a, b)| (*a as f64 - b).abs())
                    .fold(0.0, f64::max);
                let scale = w.iter().map(|v| v.abs()).fold(0.0, f64::max);
                assert!(
                    err <= 1e-4 * scale.max(1.0),
                    "window {b} pos {p} block {layer}: err {err}"
                );
            }
        }
    }
    // Logits (tied head) have the right size and are finite.
    let logits = model.logits(&ids[..seq], 1, seq).unwrap();
    assert_eq!(logits.len(), seq * vocab as usize);
    assert!(logits.iter().all(|v| v.is_finite()));
}

/// Naive logits of one position: final norm, then the tied head (the token embedding).
fn naive_logits(ts: &[NamedTensor], toy: &Toy, x: &[f64]) -> Vec<f64> {
    let h = rms(x, tensor(ts, "output_norm.weight"), toy.eps as f64);
    let vocab = tensor(ts, "token_embd.weight").len() / toy.d;
    linear(tensor(ts, "token_embd.weight"), &h, vocab)
}

/// `logits_from_block` continues from an edited residual stream exactly as the llama equations
/// say (against the naive f64 forward), and from the unchanged stream it is `logits` bit for bit.
#[test]
fn forward_continues_from_a_spliced_residual() {
    let dir = tempfile::tempdir().unwrap();
    let (path, toy, ts) = toy_model(dir.path());
    let full = LoadOptions {
        n_layers: None,
        head: true,
    };
    let model = Model::load(&path, full).unwrap();
    let (batch, seq, block, d) = (2, 12, 0, toy.d);
    let vocab = model.config().vocab_size;
    let ids: Vec<u32> = (0..batch * seq).map(|i| (i * 37 % vocab) as u32).collect();
    let residual = model
        .hidden_states(&ids, batch, seq, &[block])
        .unwrap()
        .remove(0);
    let same = model
        .logits_from_block(residual.clone(), batch, seq, block)
        .unwrap();
    assert_eq!(same, model.logits(&ids, batch, seq).unwrap());

    // edit: zeros at positions 2.., a scaled row at position 1
    let mut edited = residual.clone();
    for b in 0..batch {
        for p in 0..seq {
            let row = &mut edited[(b * seq + p) * d..(b * seq + p + 1) * d];
            match p {
                0 => {}
                1 => row.iter_mut().for_each(|v| *v *= 0.5),
                _ => row.fill(0.0),
            }
        }
    }
    let got = model
        .logits_from_block(edited.clone(), batch, seq, block)
        .unwrap();
    for b in 0..batch {
        let x: Vec<Vec<f64>> = (0..seq)
            .map(|p| {
                edited[(b * seq + p) * d..(b * seq + p + 1) * d]
                    .iter()
                    .map(|&v| v as f64)
                    .collect()
            })
            .collect();
        let after = naive_layers(&ts, &toy, x, block + 1);
        let last = after.last().unwrap();
        for p in 0..seq {
            let want = naive_logits(&ts, &toy, &last[p]);
            let g = &got[(b * seq + p) * vocab..(b * seq + p + 1) * vocab];
            let scale = want.iter().map(|v| v.abs()).fold(1.0, f64::max);
            let err = g
                .iter()
                .zip(&want)
                .map(|(a, w)| (*a as f64 - w).abs())
                .fold(0.0, f64::max);
            assert!(err <= 1e-4 * scale, "window {b} pos {p}: err {err}");
        }
    }
    // causal: the untouched position 0 keeps its clean logits exactly
    assert_eq!(&got[..vocab], &same[..vocab]);
    let e = model
        .logits_from_block(vec![0.0; 5], batch, seq, block)
        .unwrap_err()
        .to_string();
    assert!(e.contains("residual stream"), "{e}");
    let e = model
        .logits_from_block(residual, batch, seq, toy.n_layers)
        .unwrap_err()
        .to_string();
    assert!(e.contains("out of range"), "{e}");
}

#[test]
fn toy_tokenizer_merges_by_rank() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = toy_model(dir.path());
    let g = bae_llm::Gguf::open(&path).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let ids = tok.encode("the theme 42");
    let strs: Vec<&str> = ids.iter().map(|&i| tok.token_str(i).unwrap()).collect();
    assert_eq!(strs, ["t", "he", "Ġthe", "m", "e", "Ġ", "4", "2"]);
    assert_eq!(tok.decode(&ids), "the theme 42");
}

fn args(model: &Path, text: &Path, out: &Path) -> ExtractOptions {
    ExtractOptions {
        model: model.to_path_buf(),
        text: vec![text.to_path_buf()],
        blocks: vec![2, 0],
        window: 16,
        tokens: 150,
        dtype: OutDtype::F32,
        keep_sink: false,
        shard_rows: 40,
        out: out.to_path_buf(),
        batch: 2,
    }
}

fn corpus(dir: &Path) -> PathBuf {
    let c = dir.join("corpus");
    std::fs::create_dir_all(c.join("sub")).unwrap();
    let para = "the theme of the year 1790 was the union; the people met. ";
    std::fs::write(c.join("a.txt"), para.repeat(4)).unwrap();
    std::fs::write(c.join("b.txt"), "   \n").unwrap(); // blank: skipped
    std::fs::write(c.join("sub/c.txt"), "short").unwrap(); // too short for one kept row
    let jl = format!(
        "{{\"text\": \"{}\"}}\n\n{{\"text\": \"{}\"}}\n",
        para.repeat(3),
        "Über naïve café — 東京 ".repeat(5)
    );
    std::fs::write(c.join("d.jsonl"), jl).unwrap();
    c
}

type ShardContent = (String, Vec<(String, Vec<u8>)>, Vec<(String, String)>);

/// Every shard's tensors and metadata, sorted (file bytes differ: metadata order is a HashMap's).
fn shard_contents(dir: &Path) -> Vec<ShardContent> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).unwrap();
            let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
            let mut md: Vec<(String, String)> = meta
                .metadata()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect();
            md.sort();
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let mut ts: Vec<(String, Vec<u8>)> = st
                .tensors()
                .into_iter()
                .map(|(n, v)| (n, v.data().to_vec()))
                .collect();
            ts.sort();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                ts,
                md,
            )
        })
        .collect()
}

#[test]
fn extraction_writes_shards_manifest_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (model_path, toy, _) = toy_model(dir.path());
    let text = corpus(dir.path());
    let out = dir.path().join("acts");
    let a = args(&model_path, &text, &out);
    let s = run_extract(&a).unwrap();
    assert!(s.complete);
    assert_eq!(s.candidates_total, 150);
    assert_eq!(s.blocks.len(), 2);
    assert_eq!(s.blocks[0].block, 0); // sorted

    let model = Model::load(&model_path, LoadOptions::default()).unwrap();
    let g = bae_llm::Gguf::open(&model_path).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    for b in &s.blocks {
        let m = bae_llm::Manifest::read(&b.dir).unwrap().unwrap();
        assert!(m.complete && !m.exhausted);
        assert_eq!((m.d, m.window, m.block), (toy.d, 16, b.block));
        assert_eq!(m.tokens_total, b.rows);
        assert!(m.shards.len() >= 4, "150 rows at <= 40 per shard");
        assert_eq!(
            m.shards.iter().map(|s| s.rows as u64).sum::<u64>(),
            m.tokens_total
        );
        assert_eq!(m.shards.last().unwrap().candidates_end, 150);
        assert!(m.docs[0].ends_with("a.txt"));
        for sh in &m.shards {
            assert!(sh.rows <= 40);
            let f = bae_io::ActivationFile::open(&b.dir.join(&sh.file)).unwrap();
            assert_eq!((f.n_rows(), f.dim()), (sh.rows, toy.d));
            assert_eq!(f.metadata().get("block").unwrap(), &b.block.to_string());
            assert_eq!(f.metadata().get("dtype").unwrap(), "f32");
        }
        // First shard, first window: rows are positions 2.. of the first 16 tokens of a.txt.
        let st = safetensors::SafeTensors::deserialize(
            &std::fs::read(b.dir.join("shard-00000.safetensors")).unwrap(),
        )
        .unwrap()
        .tensor("positions")
        .unwrap()
        .data()
        .to_vec();
        let pos: Vec<i32> = st
            .chunks(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(&pos[..14], &(2..16).collect::<Vec<i32>>()[..]);
        assert!(pos.iter().all(|&p| (2..16).contains(&p)));
        let a_ids = tok.encode(&std::fs::read_to_string(text.join("a.txt")).unwrap());
        let f = bae_io::ActivationFile::open(&b.dir.join("shard-00000.safetensors")).unwrap();
        let mut rows = vec![0f32; 14 * toy.d];
        f.read_rows(0, 14, &mut rows).unwrap();
        let want = model
            .hidden_states(&a_ids[..16], 1, 16, &[b.block])
            .unwrap();
        assert_eq!(&rows[..], &want[0][2 * toy.d..16 * toy.d]);
    }

    // Re-running a complete extraction does nothing.
    let again = run_extract(&a).unwrap();
    assert_eq!(again.tokens_run, 0);
    assert!(again.complete);

    // Simulate a kill after the second shard: later shards gone from the manifest, a stray
    // temporary file and an unlisted shard left behind. The rerun must redo the same rows.
    let full: Vec<_> = s.blocks.iter().map(|b| shard_contents(&b.dir)).collect();
    for b in &s.blocks {
        let mut m = bae_llm::Manifest::read(&b.dir).unwrap().unwrap();
        m.shards.truncate(2);
        m.tokens_total = m.shards.iter().map(|s| s.rows as u64).sum();
        m.complete = false;
        m.write(&b.dir).unwrap();
        std::fs::write(b.dir.join(".shard-00002.safetensors.123-0.tmp"), b"partial").unwrap();
        std::fs::remove_file(b.dir.join("shard-00003.safetensors")).unwrap();
    }
    // One block one shard further behind (killed between manifest writes).
    let mut m0 = bae_llm::Manifest::read(&s.blocks[0].dir).unwrap().unwrap();
    m0.shards.truncate(1);
    m0.tokens_total = m0.shards[0].rows as u64;
    m0.write(&s.blocks[0].dir).unwrap();
    let resumed = run_extract(&a).unwrap();
    assert_eq!(resumed.resumed_shards, 1);
    assert!(resumed.complete && resumed.tokens_run > 0);
    for (b, before) in s.blocks.iter().zip(&full) {
        let after = shard_contents(&b.dir);
        assert!(&after == before, "block {} differs after resume", b.block);
        assert!(
            !std::fs::read_dir(&b.dir).unwrap().any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp"))
        );
    }

    // A larger budget continues to the end of the text.
    let more = run_extract(&ExtractOptions {
        tokens: 1_000_000,
        ..a.clone()
    })
    .unwrap();
    assert!(more.complete && more.exhausted && more.candidates_total > 150);
    let m = bae_llm::Manifest::read(&more.blocks[1].dir)
        .unwrap()
        .unwrap();
    let names: Vec<String> = m
        .docs
        .iter()
        .map(|d| d.rsplit(['/', '\\']).next().unwrap().to_string())
        .collect();
    // Sorted walk; blank documents (b.txt, the empty JSONL line) take no id.
    assert_eq!(names, ["a.txt", "d.jsonl:1", "d.jsonl:3", "c.txt"]);

    // Other settings in the same folder are refused.
    let err = run_extract(&ExtractOptions {
        window: 8,
        ..a.clone()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("other settings") && err.contains("window"),
        "{err}"
    );
}

/// The manifest `run_extract` writes is the store format of bae-io: its bytes are the typed
/// manifest's serialisation, and the shard store opens the folder with every row.
#[test]
fn the_written_store_reads_through_the_typed_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (model_path, toy, _) = toy_model(dir.path());
    let text = corpus(dir.path());
    let out = dir.path().join("acts");
    let s = run_extract(&args(&model_path, &text, &out)).unwrap();
    for b in &s.blocks {
        let bytes = std::fs::read(b.dir.join("manifest.json")).unwrap();
        let m = bae_io::extract_store::Manifest::from_slice(&b.dir.join("manifest.json"), &bytes)
            .unwrap();
        assert_eq!(
            m.to_bytes(),
            bytes,
            "the manifest round-trips byte for byte"
        );
        // every field the extractor writes, nothing more: the JSON keys are the typed fields
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v, serde_json::to_value(&m).unwrap());
        assert_eq!(m.settings.batch, 2);
        assert_eq!(m.dtype, OutDtype::F32);
        let store = bae_io::ShardStore::open(&b.dir).unwrap();
        assert_eq!((store.n_rows() as u64, store.dim()), (b.rows, toy.d));
        assert_eq!(store.manifest(), &m);
        // token ids and positions come back with each row
        let (_, pos) = store.token_of(0).unwrap();
        assert_eq!(pos, 2);
        let last = store.n_rows() - 1;
        assert_eq!(store.doc_of(last), m.shards.last().unwrap().last_doc);
    }
    // a manifest the typed reader refuses stops a resume, in one line naming it
    let block0 = &s.blocks[0].dir;
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(block0.join("manifest.json")).unwrap()).unwrap();
    v["shards"][0]["file"] = serde_json::json!("../shard-00000.safetensors");
    std::fs::write(block0.join("manifest.json"), v.to_string()).unwrap();
    let e = err_of(&args(&model_path, &text, &out));
    assert!(
        e.contains("manifest.json")
            && e.contains("not a plain file name")
            && e.contains("remove the folder to start over"),
        "{e}"
    );
}

/// Progress goes to the caller's `ExtractProgress`: the budget once, counts that only grow up
/// to the budget, then the end.
#[test]
fn progress_is_reported_through_the_trait() {
    #[derive(Default)]
    struct Record {
        start: Vec<(u64, u64)>,
        updates: Vec<u64>,
        finished: usize,
    }
    impl bae_llm::ExtractProgress for Record {
        fn start(&mut self, done: u64, budget: u64) {
            self.start.push((done, budget));
        }
        fn update(&mut self, done: u64) {
            assert_eq!(self.finished, 0, "update after finish");
            self.updates.push(done);
        }
        fn finish(&mut self) {
            self.finished += 1;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (model_path, _, _) = toy_model(dir.path());
    let text = corpus(dir.path());
    let out = dir.path().join("acts");
    let a = args(&model_path, &text, &out);
    let mut r = Record::default();
    let s = bae_llm::run_extract_with_progress(&a, &mut r).unwrap();
    assert_eq!(r.start, [(0, 150)]);
    assert!(r.updates.windows(2).all(|w| w[0] < w[1]), "{:?}", r.updates);
    assert_eq!(r.updates.last(), Some(&150));
    assert_eq!(r.finished, 1);
    assert_eq!(s.candidates_total, 150);
    // a larger budget resumes from the rows already there
    let mut r = Record::default();
    let more = ExtractOptions {
        tokens: 200,
        ..a.clone()
    };
    bae_llm::run_extract_with_progress(&more, &mut r).unwrap();
    assert_eq!(r.start, [(150, 200)]);
    // nothing left to do: no report at all
    let mut r = Record::default();
    bae_llm::run_extract_with_progress(&more, &mut r).unwrap();
    assert!(r.start.is_empty() && r.updates.is_empty() && r.finished == 0);
}

#[test]
fn keep_sink_keeps_every_position_and_f16_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let (model_path, _, _) = toy_model(dir.path());
    let text = corpus(dir.path());
    let out = dir.path().join("acts");
    let a = ExtractOptions {
        keep_sink: true,
        dtype: OutDtype::F16,
        blocks: vec![1],
        tokens: 64,
        ..args(&model_path, &text, &out)
    };
    let s = run_extract(&a).unwrap();
    assert_eq!(s.dropped_sink_rows, 0);
    assert_eq!(s.blocks[0].rows, 64);
    let f = bae_io::ActivationFile::open(&out.join("block1/shard-00000.safetensors")).unwrap();
    assert_eq!(f.dtype(), bae_io::DType::F16);
}

fn err_of(a: &ExtractOptions) -> String {
    let e = run_extract(a).unwrap_err().to_string();
    assert!(!e.contains('\n'), "error is not one line: {e}");
    e
}

#[test]
fn errors_are_one_line_and_helpful() {
    let dir = tempfile::tempdir().unwrap();
    let (model_path, _, _) = toy_model(dir.path());
    let text = corpus(dir.path());
    let out = dir.path().join("acts");
    let base = args(&model_path, &text, &out);

    let e = err_of(&ExtractOptions {
        model: dir.path().join("nope.gguf"),
        ..base.clone()
    });
    assert!(
        e.contains("nope.gguf") && e.contains("scripts/setup.sh"),
        "{e}"
    );

    let e = err_of(&ExtractOptions {
        text: vec![dir.path().join("no-corpus")],
        ..base.clone()
    });
    assert!(
        e.contains("no-corpus") && e.contains("scripts/setup.sh"),
        "{e}"
    );

    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"this is not a gguf file at all").unwrap();
    let e = err_of(&ExtractOptions {
        model: junk,
        ..base.clone()
    });
    assert!(e.contains("junk.gguf") && e.contains("GGUF"), "{e}");

    let gpt2 = dir.path().join("gpt2.gguf");
    write_toy_gguf_with(&gpt2, &Toy::default(), "gpt2", &[]);
    let e = err_of(&ExtractOptions {
        model: gpt2,
        ..base.clone()
    });
    assert!(e.contains("gpt2.gguf") && e.contains("architecture"), "{e}");

    let holey = dir.path().join("holey.gguf");
    write_toy_gguf_with(&holey, &Toy::default(), "llama", &["blk.1.ffn_up.weight"]);
    let e = err_of(&ExtractOptions {
        model: holey,
        ..base.clone()
    });
    assert!(
        e.contains("holey.gguf") && e.contains("missing tensor blk.1.ffn_up.weight"),
        "{e}"
    );

    let e = err_of(&ExtractOptions {
        blocks: vec![3],
        ..base.clone()
    });
    assert!(
        e.contains("block 3 out of range") && e.contains("3 blocks (0..2)"),
        "{e}"
    );

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("x.txt"), "").unwrap();
    let e = err_of(&ExtractOptions {
        text: vec![empty.clone()],
        ..base.clone()
    });
    assert!(e.contains("empty text"), "{e}");
    std::fs::remove_file(empty.join("x.txt")).unwrap();
    let e = err_of(&ExtractOptions {
        text: vec![empty],
        ..base.clone()
    });
    assert!(e.contains("empty text"), "{e}");

    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let e = err_of(&ExtractOptions {
        out: file.join("sub"),
        ..base.clone()
    });
    assert!(e.contains("cannot create output folder"), "{e}");
}
