//! Named tensors: save/load round trips, take_tensor messages, golden files, dtypes.

mod common;

use bae_io::{
    Tensor, load_tensors, load_tensors_f64, save_tensors, save_tensors_f64, take_tensor,
    take_tensor_f64,
};
use common::{assert_err, f32_bytes, st_file};
use half::{bf16, f16};
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name)
}

#[test]
fn save_and_load_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ckpt.safetensors");
    let w: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 3.0).collect();
    let b = [f32::MIN_POSITIVE, -0.0, 1e30];
    let scalar = [42.0f32];
    let mut meta = BTreeMap::new();
    meta.insert("step".to_string(), "100".to_string());
    meta.insert("config".to_string(), "{\"d\": 4}".to_string());
    save_tensors(
        &p,
        &[
            ("W_enc", &[3, 4], &w),
            ("b_enc", &[3], &b),
            ("lr", &[], &scalar),
        ],
        &meta,
    )
    .unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let (mut map, got_meta) = load_tensors(&p).unwrap();
    assert_eq!(got_meta, meta);
    assert_eq!(map.len(), 3);
    assert_eq!(
        map["b_enc"],
        Tensor {
            shape: vec![3],
            data: b.to_vec()
        }
    );
    assert_eq!(take_tensor(&mut map, &p, "W_enc", &[3, 4]).unwrap(), w);
    assert_eq!(take_tensor(&mut map, &p, "lr", &[]).unwrap(), [42.0]);
    assert!(!map.contains_key("W_enc"));

    // The reference implementation reads the file.
    let bytes = std::fs::read(&p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("W_enc").unwrap();
    assert_eq!(t.dtype(), Dtype::F32);
    assert_eq!(t.data(), f32_bytes(&w).as_slice());
}

#[test]
fn f64_save_and_load_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g.safetensors");
    let v = [0.1f64, 1.0 / 3.0, -1e-300, 12345.678901234567];
    save_tensors_f64(&p, &[("v", &[2, 2], &v)], &BTreeMap::new()).unwrap();
    let (mut map, meta) = load_tensors_f64(&p).unwrap();
    assert!(meta.is_empty());
    assert_eq!(take_tensor_f64(&mut map, &p, "v", &[2, 2]).unwrap(), v);
    let (map32, _) = load_tensors(&p).unwrap();
    let want: Vec<f32> = v.iter().map(|x| *x as f32).collect();
    assert_eq!(map32["v"].data, want);
}

#[test]
fn take_tensor_messages() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("params.safetensors");
    save_tensors(&p, &[("W_enc", &[4, 16], &[0.0; 64])], &BTreeMap::new()).unwrap();
    let (mut map, _) = load_tensors(&p).unwrap();
    let msg = assert_err(take_tensor(&mut map, &p, "W_enc", &[64, 256]), &p, &[]);
    assert_eq!(
        msg,
        format!(
            "{}: tensor W_enc has shape [4, 16], expected [64, 256]",
            p.display()
        )
    );
    // A failed shape check leaves the tensor in the map.
    assert!(map.contains_key("W_enc"));
    let msg = assert_err(take_tensor(&mut map, &p, "b_dec", &[64]), &p, &[]);
    assert_eq!(msg, format!("{}: missing tensor b_dec", p.display()));
}

#[test]
fn golden_bae_tiny_loads_exactly() {
    let p = golden("bae_tiny.safetensors");
    let (mut map, meta) = load_tensors_f64(&p).unwrap();
    assert_eq!(meta.get("case").map(String::as_str), Some("bae_tiny"));
    assert_eq!(meta.get("d_prime").map(String::as_str), Some("16"));
    assert_eq!(map["W_enc"].shape, vec![4, 16]);
    assert_eq!(map["lam_c"].shape, Vec::<usize>::new());
    assert_eq!(map["lam_c"].data, [0.05]);
    let w = take_tensor_f64(&mut map, &p, "W_enc", &[4, 16]).unwrap();
    assert_eq!(w.len(), 64);

    // Cross-check every value against the reference implementation.
    let bytes = std::fs::read(&p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let raw = st.tensor("W_enc").unwrap();
    let want: Vec<f64> = raw
        .data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(w, want);
    assert_eq!(map.len() + 1, st.len());

    // The f32 loader rounds the same values.
    let (map32, _) = load_tensors(&p).unwrap();
    let w32: Vec<f32> = want.iter().map(|v| *v as f32).collect();
    assert_eq!(map32["W_enc"].data, w32);
}

#[test]
fn integer_tensors_need_the_f64_loader() {
    let p = golden("baselines.safetensors");
    let (map, _) = load_tensors_f64(&p).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (name, view) = st
        .iter()
        .find(|(_, v)| v.dtype() == Dtype::I64)
        .expect("baselines has an I64 tensor");
    let want: Vec<f64> = view
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
        .collect();
    assert_eq!(map[name].data, want);
    assert_err(
        load_tensors(&p),
        &p,
        &["has unsupported dtype I64", "use load_tensors_f64"],
    );
}

#[test]
fn half_precision_and_int_tensors_convert() {
    let dir = tempfile::tempdir().unwrap();
    let vals = [1.0f32, -0.333, 1000.5, 7e-5];
    let f16b: Vec<u8> = vals
        .iter()
        .flat_map(|v| f16::from_f32(*v).to_le_bytes())
        .collect();
    let bf16b: Vec<u8> = vals
        .iter()
        .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
        .collect();
    let ints: Vec<u8> = [-3i64, 1 << 40]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let i32s: Vec<u8> = [-7i32, 9].iter().flat_map(|v| v.to_le_bytes()).collect();
    let p = dir.path().join("mixed.safetensors");
    std::fs::write(
        &p,
        st_file(&[
            ("h", Dtype::F16, vec![4], f16b),
            ("b", Dtype::BF16, vec![2, 2], bf16b),
            ("i", Dtype::I64, vec![2], ints),
            ("j", Dtype::I32, vec![1, 2], i32s),
        ]),
    )
    .unwrap();
    let (map, meta) = load_tensors_f64(&p).unwrap();
    assert_eq!(meta.get("source").map(String::as_str), Some("test"));
    let h: Vec<f64> = vals.iter().map(|v| f16::from_f32(*v).to_f64()).collect();
    let b: Vec<f64> = vals.iter().map(|v| bf16::from_f32(*v).to_f64()).collect();
    assert_eq!(map["h"].data, h);
    assert_eq!(map["b"].data, b);
    assert_eq!(map["b"].shape, vec![2, 2]);
    assert_eq!(map["i"].data, [-3.0, (1u64 << 40) as f64]);
    assert_eq!(map["j"].data, [-7.0, 9.0]);
    assert_err(
        load_tensors(&p),
        &p,
        &["tensor \"i\" has unsupported dtype I64"],
    );
}

#[test]
fn save_rejects_inconsistent_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.safetensors");
    let none = BTreeMap::new();
    assert_err(
        save_tensors(&p, &[("w", &[2, 3], &[0.0; 5])], &none),
        &p,
        &["cannot save tensor w: shape [2, 3] does not match 5 values"],
    );
    assert_err(
        save_tensors(&p, &[("w", &[1], &[0.0]), ("w", &[1], &[1.0])], &none),
        &p,
        &["two tensors named \"w\""],
    );
    assert_err(
        save_tensors(&p, &[("__metadata__", &[1], &[0.0])], &none),
        &p,
        &["reserved name"],
    );
    assert!(!p.exists());
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.safetensors");
    assert_err(load_tensors(&missing), &missing, &["file not found"]);
    let p = dir.path().join("e.safetensors");
    std::fs::write(&p, b"").unwrap();
    assert_err(load_tensors_f64(&p), &p, &["file is empty"]);
    std::fs::write(&p, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}        ").unwrap();
    assert_err(
        load_tensors(&p),
        &p,
        &["invalid safetensors header: tensor \"a\": entry is not a JSON object"],
    );
    let mut bytes = st_file(&[("w", Dtype::F32, vec![2], f32_bytes(&[1.0, 2.0]))]);
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&p, &bytes).unwrap();
    assert_err(load_tensors(&p), &p, &["truncated", "tensor \"w\""]);
}
