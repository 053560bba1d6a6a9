//! Shared test helpers: reading the golden vectors (official PyTorch implementation, float64), and
//! running the `bae` binary with its one-line errors.
#![allow(dead_code)]

use bae_ref::Params;
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn golden_dir() -> PathBuf {
    match std::env::var_os("BAE_GOLDEN_DIR") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden")),
    }
}

/// All tensors of a golden file as f64 (I64 converted), with their shapes.
pub struct Golden {
    pub name: String,
    pub t: BTreeMap<String, (Vec<usize>, Vec<f64>)>,
}

impl Golden {
    pub fn load(file: &str) -> Golden {
        let path = golden_dir().join(file);
        let buf = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (set BAE_GOLDEN_DIR)", path.display()));
        let st = SafeTensors::deserialize(&buf).expect("golden file parses");
        let mut t = BTreeMap::new();
        for (name, view) in st.tensors() {
            let data: Vec<f64> = match view.dtype() {
                Dtype::F64 => view
                    .data()
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                Dtype::I64 => view
                    .data()
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64)
                    .collect(),
                other => panic!("unexpected dtype {other:?} in golden tensor {name}"),
            };
            t.insert(name, (view.shape().to_vec(), data));
        }
        Golden {
            name: file.to_string(),
            t,
        }
    }

    pub fn get(&self, name: &str) -> &[f64] {
        &self
            .t
            .get(name)
            .unwrap_or_else(|| panic!("{}: no tensor {name}", self.name))
            .1
    }

    pub fn shape(&self, name: &str) -> &[usize] {
        &self.t[name].0
    }

    pub fn scalar(&self, name: &str) -> f64 {
        let v = self.get(name);
        assert_eq!(v.len(), 1, "{name} is not a scalar");
        v[0]
    }

    /// Parameters, optionally with a prefix such as "adam.step3.".
    pub fn params(&self, prefix: &str) -> Params<f64> {
        let w_enc = self.shape(&format!("{prefix}W_enc"));
        Params {
            d: w_enc[0],
            d_code: w_enc[1],
            w_enc: self.get(&format!("{prefix}W_enc")).to_vec(),
            b_enc: self.get(&format!("{prefix}b_enc")).to_vec(),
            w_dec: self.get(&format!("{prefix}W_dec")).to_vec(),
            b_dec: self.get(&format!("{prefix}b_dec")).to_vec(),
        }
    }
}

/// max |a - b| / max |b|, the tolerance measure of the golden README.
pub fn rel_err<T: Copy + Into<f64>>(got: &[T], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (&g, w)| m.max((g.into() - w).abs()));
    if scale == 0.0 { diff } else { diff / scale }
}

#[track_caller]
pub fn assert_close<T: Copy + Into<f64>>(what: &str, got: &[T], want: &[f64], tol: f64) {
    let e = rel_err(got, want);
    assert!(e <= tol, "{what}: relative error {e:.3e} > {tol:.1e}");
}

#[track_caller]
pub fn assert_exact<T: Copy + Into<f64>>(what: &str, got: &[T], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(g.into() == w, "{what}[{i}]: got {} want {w}", g.into());
    }
}

pub fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

// ---- the `bae` binary, for the command-line tests ----

/// Runs `bae` with `args` (cwd: the package root, as cargo runs tests).
pub fn bae(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bae"))
        .args(args)
        .output()
        .expect("run bae")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The error line of a failed run: exactly one line starting with "error:".
#[track_caller]
pub fn error_line(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "expected failure, stderr: {}",
        stderr(o)
    );
    let lines: Vec<String> = stderr(o)
        .lines()
        .filter(|l| l.starts_with("error:"))
        .map(String::from)
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one error line, got: {}",
        stderr(o)
    );
    lines[0].clone()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
