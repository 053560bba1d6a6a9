//! Valid (and a few deliberately odd) seed inputs, generated in code.

use crate::formats::{StTensor, float_bytes, i32_bytes, i64_bytes, npy_file, st_file, values};
use crate::gguf::{GVal, Toy, toy_gguf};
use crate::input::Input;

/// Width and code width of the models in the checkpoint seeds (what the target loads).
pub const CKPT_D: usize = 4;
pub const CKPT_D_CODE: usize = 8;

fn activations(dtype: &str, n: usize, d: usize, seed: u64) -> StTensor {
    StTensor::new(
        "activations",
        dtype,
        &[n, d],
        float_bytes(dtype, &values(n * d, seed, 3.0)),
    )
}

/// Activation matrices in safetensors files.
pub fn safetensors() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let meta = [("model", "toy"), ("block", "3")];
    for (i, dtype) in ["F16", "BF16", "F32", "F64"].iter().enumerate() {
        for (k, (n, d)) in [(3, 2), (1, 1), (2, 5)].into_iter().enumerate() {
            let m: &[(&str, &str)] = if k == 0 { &meta } else { &[] };
            out.push(st_file(&[activations(dtype, n, d, (i * 3 + k) as u64)], m));
        }
    }
    let bad = |dtype: &str, v: f32| {
        let mut xs = values(6, 9, 1.0);
        xs[3] = v;
        st_file(
            &[StTensor::new(
                "activations",
                dtype,
                &[3, 2],
                float_bytes(dtype, &xs),
            )],
            &[],
        )
    };
    out.push(bad("F32", f32::NAN));
    out.push(bad("F16", f32::INFINITY));
    out.push(bad("BF16", f32::NEG_INFINITY));
    // an F64 value outside the f32 range
    let mut f64s = float_bytes("F64", &[1.0, 2.0, 3.0, 4.0]);
    f64s[8..16].copy_from_slice(&1e300f64.to_le_bytes());
    out.push(st_file(
        &[StTensor::new("activations", "F64", &[2, 2], f64s)],
        &[],
    ));
    out.push(shard("F16", 4, 3, 0, true));
    out.push(st_file(
        &[StTensor::new(
            "x",
            "F32",
            &[2, 2],
            float_bytes("F32", &[1.0; 4]),
        )],
        &[],
    ));
    out.push(st_file(
        &[
            StTensor::new("a", "F32", &[1, 2], float_bytes("F32", &[1.0; 2])),
            StTensor::new("b", "F16", &[2, 1], float_bytes("F16", &[1.0; 2])),
        ],
        &[],
    ));
    out.push(st_file(
        &[StTensor::new(
            "activations",
            "F32",
            &[6],
            float_bytes("F32", &[1.0; 6]),
        )],
        &[],
    ));
    out.push(st_file(
        &[StTensor::new(
            "activations",
            "F32",
            &[1, 2, 3],
            float_bytes("F32", &[1.0; 6]),
        )],
        &[],
    ));
    out.push(st_file(
        &[StTensor::new(
            "activations",
            "I32",
            &[2, 2],
            i32_bytes(&[1, 2, 3, 4]),
        )],
        &[],
    ));
    out.push(st_file(
        &[StTensor::new("activations", "F32", &[0, 4], Vec::new())],
        &[],
    ));
    // header padded with NULs instead of spaces, no padding at all
    let json = r#"{"activations":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}}"#;
    let mut nul = json.as_bytes().to_vec();
    nul.extend_from_slice(&[0; 5]);
    let mut f = (nul.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(&nul);
    f.extend_from_slice(&float_bytes("F32", &[0.5, -0.5]));
    out.push(f);
    out.push(crate::formats::st_join_text(
        json,
        &float_bytes("F32", &[0.5, -0.5]),
        false,
    ));
    out
}

/// An extract shard: activations `[rows, d]` plus i32 columns and string metadata, laid out as
/// `bae extract` writes them (columns first).
pub fn shard(dtype: &str, rows: usize, d: usize, first_doc: i32, all_columns: bool) -> Vec<u8> {
    let docs: Vec<i32> = (0..rows as i32).map(|i| first_doc + i / 2).collect();
    let mut tensors = vec![StTensor::new("doc_ids", "I32", &[rows], i32_bytes(&docs))];
    if all_columns {
        let pos: Vec<i32> = (0..rows as i32).map(|i| 1 + i % 3).collect();
        let tok: Vec<i32> = (0..rows as i32).map(|i| 100 + i).collect();
        tensors.push(StTensor::new("positions", "I32", &[rows], i32_bytes(&pos)));
        tensors.push(StTensor::new("token_ids", "I32", &[rows], i32_bytes(&tok)));
    }
    tensors.push(activations(dtype, rows, d, rows as u64));
    let d_text = d.to_string();
    st_file(
        &tensors,
        &[
            ("block", "3"),
            ("d", &d_text),
            ("dtype", &dtype.to_ascii_lowercase()),
            ("model", "toy.gguf"),
            ("shard", "0"),
            ("window", "128"),
        ],
    )
}

/// Activation matrices in .npy files.
pub fn npy() -> Vec<Vec<u8>> {
    let f4 = |xs: &[f32]| float_bytes("F32", xs);
    let v = values(6, 5, 2.0);
    let mut out = vec![
        npy_file("<f4", false, &[3, 2], 1, &f4(&v)),
        npy_file("<f2", false, &[2, 3], 1, &float_bytes("F16", &v)),
        npy_file("<f8", false, &[6, 1], 1, &float_bytes("F64", &v)),
        npy_file("|f2", false, &[1, 6], 1, &float_bytes("F16", &v)),
        npy_file("=f8", false, &[3, 2], 1, &float_bytes("F64", &v)),
        npy_file("f4", false, &[2, 3], 1, &f4(&v)),
        npy_file("<f4", false, &[3, 2], 2, &f4(&v)),
        npy_file("<f4", false, &[3, 2], 3, &f4(&v)),
        npy_file("<f4", true, &[3, 2], 1, &f4(&v)),
        npy_file("<f4", false, &[6], 1, &f4(&v)),
        npy_file("<f4", false, &[1, 2, 3], 1, &f4(&v)),
        npy_file("<f4", false, &[0, 2], 1, &[]),
        npy_file(">f4", false, &[3, 2], 1, &f4(&v)),
        npy_file("<i4", false, &[3, 2], 1, &i32_bytes(&[1, 2, 3, 4, 5, 6])),
    ];
    let mut nan = v.clone();
    nan[4] = f32::NAN;
    out.push(npy_file("<f4", false, &[3, 2], 1, &f4(&nan)));
    let mut big = float_bytes("F64", &v);
    big[16..24].copy_from_slice(&(-1e200f64).to_le_bytes());
    out.push(npy_file("<f8", false, &[3, 2], 1, &big));
    // unusual but valid dict spellings
    for dict in [
        "{'shape': (3, 2), 'fortran_order': False, 'descr': '<f4'}",
        "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (3L, 2L)}",
        "{'descr':'<f4','fortran_order':False,'shape':[3,2],'extra':None}",
    ] {
        out.push(crate::formats::npy_join(
            &crate::formats::NpyParts {
                major: 1,
                minor: 0,
                dict: dict.as_bytes().to_vec(),
                data: f4(&v),
            },
            true,
        ));
    }
    out
}

/// The autoencoder parameter tensors (golden layout) for width `d`, code width `dc`.
fn params(prefix: &str, dtype: &str, d: usize, dc: usize, seed: u64) -> Vec<StTensor> {
    let shapes: [(&str, Vec<usize>); 4] = [
        ("W_enc", vec![d, dc]),
        ("b_enc", vec![dc]),
        ("W_dec", vec![dc, d]),
        ("b_dec", vec![d]),
    ];
    shapes
        .iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let n = shape.iter().product();
            let xs = values(n, seed + i as u64, 0.5);
            StTensor::new(
                &format!("{prefix}{name}"),
                dtype,
                shape,
                float_bytes(dtype, &xs),
            )
        })
        .collect()
}

/// A checkpoint as `bae_train::checkpoint::save` writes it (weights, Adam moments, metadata).
pub fn checkpoint_file(dtype: &str, step: &str, adam_t: &str, nan_in_v: bool) -> Vec<u8> {
    let (d, dc) = (CKPT_D, CKPT_D_CODE);
    let mut tensors = params("", dtype, d, dc, 1);
    tensors.extend(params("adam.m.", dtype, d, dc, 10));
    let mut v = params("adam.v.", dtype, d, dc, 20);
    if nan_in_v {
        v[1].data = float_bytes(dtype, &[f32::NAN; CKPT_D_CODE]);
    }
    tensors.extend(v);
    st_file(
        &tensors,
        &[
            ("format", "bae-checkpoint-1"),
            ("step", step),
            ("adam_t", adam_t),
        ],
    )
}

/// Checkpoints and model files (both go to `checkpoint::load` and `load_init`).
pub fn checkpoint() -> Vec<Vec<u8>> {
    let (d, dc) = (CKPT_D, CKPT_D_CODE);
    vec![
        checkpoint_file("F32", "7", "7", false),
        checkpoint_file("F64", "0", "0", false),
        checkpoint_file("F16", "18446744073709551615", "3", false),
        checkpoint_file("F32", "5", "5", true),
        checkpoint_file("F32", "x", "5", false),
        st_file(&params("", "F32", d, dc, 3), &[("arch", "bae")]),
        st_file(&params("", "BF16", d, dc, 4), &[]),
        // transposed W_enc, and another width
        st_file(&params("", "F32", dc, d, 5), &[]),
        st_file(&params("", "F32", d, 2 * dc, 6), &[]),
    ]
}

/// Named tensors of every dtype the loaders know (and some they do not).
pub fn tensors() -> Vec<Vec<u8>> {
    let mut out = checkpoint();
    out.truncate(2);
    out.push(st_file(&params("", "F16", 3, 5, 7), &[("k", "v")]));
    out.push(st_file(
        &[
            StTensor::new("doc_ids", "I32", &[3], i32_bytes(&[0, 1, -1])),
            StTensor::new("token_ids", "I64", &[3], i64_bytes(&[7, 1 << 60, -5])),
            StTensor::new("positions", "I32", &[3], i32_bytes(&[1, 2, 3])),
            StTensor::new("scalar", "F64", &[], float_bytes("F64", &[2.5])),
            StTensor::new("empty", "F32", &[0], Vec::new()),
            StTensor::new("W_enc", "BF16", &[1, 2], float_bytes("BF16", &[1.0, -1.0])),
        ],
        &[],
    ));
    out.push(st_file(
        &[
            StTensor::new("u8", "U8", &[4], vec![1, 2, 3, 4]),
            StTensor::new("f8", "F8_E4M3", &[2], vec![0x38, 0xb8]),
            StTensor::new("f4", "F4", &[3], vec![0x12, 0x03]),
            StTensor::new("b", "BOOL", &[1], vec![1]),
        ],
        &[],
    ));
    out.push(st_file(&[], &[("only", "metadata")]));
    out.push(shard("F32", 2, 2, 0, true));
    out
}

fn manifest(d: usize, shards: &[(&str, usize)]) -> Vec<u8> {
    let total: usize = shards.iter().map(|s| s.1).sum();
    let entries: Vec<serde_json::Value> = shards
        .iter()
        .enumerate()
        .map(|(i, (file, rows))| {
            serde_json::json!({
                "file": file, "rows": rows, "first_doc": i, "last_doc": i + 1,
                "end": {"doc": i + 1, "token": 3}, "candidates_end": rows, "dropped_outliers": 0
            })
        })
        .collect();
    let m = serde_json::json!({
        "model": "toy.gguf", "block": 3, "d": d, "dtype": "f16", "window": 128,
        "tokens_total": total, "shards": entries, "complete": true, "exhausted": false,
        "tokens_budget": total, "docs": ["a.txt", "b.txt", "c.txt"],
        "tokenizer": "byte-level BPE", "settings": {
            "model": "toy.gguf", "source": ["corpus"], "window": 128, "dtype": "f16",
            "keep_sink": false, "shard_rows": 65536, "batch": 8
        }
    });
    serde_json::to_vec_pretty(&m).unwrap_or_default()
}

pub const SHARD0: &str = "shard-00000.safetensors";
pub const SHARD1: &str = "shard-00001.safetensors";

/// Extract folders: `manifest.json` plus shards.
pub fn store() -> Vec<Input> {
    vec![
        Input::with_parts(vec![
            ("manifest.json", manifest(3, &[(SHARD0, 4)])),
            (SHARD0, shard("F16", 4, 3, 0, true)),
        ]),
        Input::with_parts(vec![
            ("manifest.json", manifest(2, &[(SHARD0, 3), (SHARD1, 2)])),
            (SHARD0, shard("F32", 3, 2, 0, true)),
            (SHARD1, shard("BF16", 2, 2, 1, false)),
        ]),
        Input::with_parts(vec![
            ("manifest.json", manifest(2, &[(SHARD0, 0), (SHARD1, 5)])),
            (SHARD1, shard("F16", 5, 2, 4, true)),
        ]),
        Input::with_parts(vec![
            (
                "manifest.json",
                br#"{"d": 1, "shards": [{"file": "shard-00000.safetensors", "rows": 2}]}"#.to_vec(),
            ),
            (SHARD0, shard("F32", 2, 1, 0, false)),
        ]),
    ]
}

/// Llama GGUF files with the metadata the loader and tokenizer read.
pub fn gguf() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let base = toy_gguf(&Toy::default());
    out.push(base.to_bytes());
    for version in [1, 2] {
        out.push(
            toy_gguf(&Toy {
                version,
                ..Toy::default()
            })
            .to_bytes(),
        );
    }
    out.push(
        toy_gguf(&Toy {
            d: 12,
            heads: 4,
            kv_heads: 2,
            ..Toy::default()
        })
        .to_bytes(),
    );
    let variants: Vec<fn(&mut crate::gguf::GFile)> = vec![
        // integer keys of other widths and signedness, float keys as F64, optional keys absent
        |g| {
            g.set("llama.block_count", GVal::U64(1));
            g.set("llama.embedding_length", GVal::I32(8));
            g.set("llama.attention.head_count", GVal::U8(2));
            g.set("llama.attention.head_count_kv", GVal::I64(1));
            g.set("llama.rope.freq_base", GVal::F64(500_000.0));
            g.set("llama.attention.layer_norm_rms_epsilon", GVal::F64(1e-6));
            g.remove("llama.context_length");
            g.remove("tokenizer.ggml.pre");
        },
        |g| {
            g.remove("llama.rope.freq_base");
            g.set("tokenizer.ggml.bos_token_id", GVal::I32(-1));
            g.set("general.alignment", GVal::U32(64));
            g.align = 64;
        },
        |g| g.set("general.architecture", GVal::str("gpt2")),
        |g| g.set("tokenizer.ggml.model", GVal::str("llama")),
        |g| g.set("tokenizer.ggml.pre", GVal::str("llama3")),
        |g| g.set("llama.attention.head_count_kv", GVal::U32(3)),
        |g| {
            let (tokens, mut merges) = crate::gguf::toy_vocab(b"bcd");
            merges.push("x y".into());
            g.set("tokenizer.ggml.tokens", GVal::strs(&tokens));
            g.set("tokenizer.ggml.merges", GVal::strs(&merges));
        },
        |g| {
            g.set(
                "tokenizer.ggml.merges",
                GVal::strs(&["Ġ t".into(), "nospace".into()]),
            );
        },
        |g| g.set("tokenizer.ggml.merges", GVal::Arr(4, vec![GVal::U32(1)])),
        |g| {
            g.set(
                "tokenizer.ggml.tokens",
                GVal::Arr(8, vec![GVal::str("a"), GVal::U8(1)]),
            );
        },
        |g| {
            g.tensors.retain(|t| t.name != b"token_embd.weight");
        },
        |g| {
            g.tensors.clear();
            g.data.clear();
        },
    ];
    for v in variants {
        let mut g = base.clone();
        v(&mut g);
        out.push(g.to_bytes());
    }
    out
}

/// Code stores written by `bae_io::CodeStoreWriter` (the writer of `bae encode`): widths with
/// and without padding bits, one and several shards, complete and not.
pub fn codes() -> Vec<Input> {
    let mut out = Vec::new();
    for (k, &(n_bits, shards, finish)) in
        [(70, 2, true), (64, 1, false), (5, 3, true), (128, 0, false)]
            .iter()
            .enumerate()
    {
        let dir = std::env::temp_dir().join(format!(
            "bae-fuzz-codes-seed-{}-{k}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let settings = serde_json::json!({"run": "runs/toy", "rows": [0, 9], "shard_rows": 3});
        let written = (|| -> bae_io::Result<()> {
            let mut w = bae_io::CodeStoreWriter::open(&dir, n_bits, settings)?;
            let wpr = bae_io::code_store::words_per_row(n_bits);
            let mut r = crate::rng::Rng::new(k as u64);
            for s in 0..shards {
                let rows = 3 - (s % 2);
                let mut codes: Vec<u64> = (0..rows * wpr).map(|_| r.next_u64()).collect();
                if n_bits % 64 != 0 {
                    for row in codes.chunks_mut(wpr) {
                        row[wpr - 1] &= (1u64 << (n_bits % 64)) - 1;
                    }
                }
                let ids = bae_io::CodeIds {
                    token_ids: (0..rows as i32).map(|i| i * 7).collect(),
                    doc_ids: vec![s as i32; rows],
                    positions: (0..rows as i32).collect(),
                };
                w.append(&codes, &ids)?;
            }
            if finish {
                w.finish()?;
            }
            Ok(())
        })();
        if written.is_ok()
            && let Ok(input) = Input::load(&dir, bae_io::code_store::CODES_INDEX)
        {
            out.push(input);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_small() {
        let all: Vec<Vec<u8>> = [safetensors(), npy(), tensors(), checkpoint(), gguf()].concat();
        for s in &all {
            assert!(!s.is_empty() && s.len() < 8192, "{}", s.len());
        }
        let codes = codes();
        assert_eq!(codes.len(), 4);
        for i in store().into_iter().chain(codes) {
            assert!(i.total_len() < 8192);
        }
    }
}
