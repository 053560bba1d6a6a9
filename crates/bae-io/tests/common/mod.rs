//! Helpers shared by the integration tests: hand-built files and error assertions.
#![allow(dead_code)]

use safetensors::Dtype;
use safetensors::tensor::TensorView;
use std::collections::HashMap;
use std::fmt::Debug;
use std::path::Path;

/// Little-endian bytes of f32 values.
pub fn f32_bytes(xs: &[f32]) -> Vec<u8> {
    xs.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A safetensors file built by the reference `safetensors` crate.
pub fn st_file(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            (
                name.to_string(),
                TensorView::new(*dtype, shape.clone(), data).expect("valid test tensor"),
            )
        })
        .collect();
    let mut meta = HashMap::new();
    meta.insert("source".to_string(), "test".to_string());
    safetensors::serialize(views, Some(meta)).expect("serialize")
}

/// A .npy version 1.0 file with a hand-written header dict (padded to 64 bytes like numpy).
pub fn npy_v1(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.as_bytes().to_vec();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out
}

/// Asserts that `r` failed with a one-line message that starts with the path and contains
/// every phrase; returns the message.
pub fn assert_err<T: Debug>(
    r: Result<T, bae_io::IoError>,
    path: &Path,
    phrases: &[&str],
) -> String {
    let e = r.expect_err("expected an error");
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "message is not one line: {msg}");
    assert!(
        msg.starts_with(&format!("{}: ", path.display())),
        "message does not start with the path {}: {msg}",
        path.display()
    );
    assert_eq!(e.path(), path);
    for p in phrases {
        assert!(msg.contains(p), "message lacks {p:?}: {msg}");
    }
    msg
}
