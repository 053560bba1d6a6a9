//! `bae.load(folder)`: a trained autoencoder (a `bae train` run folder or a `bae export --format
//! saelens` folder) with bae's own forward pass (`bae_ref::model`).

use crate::arrays::{as_ndarray, f32_matrix, matrix};
use crate::bae_err;
use crate::codes::PackedCodes;
use bae_io::SaeArchitecture;
use bae_io::export_tensors::{B_DEC, B_ENC, THRESHOLD, W_DEC, W_ENC};
use bae_ref as model;
use bae_ref::{Arch, Estimator, Params};
use numpy::{PyArray1, PyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::{Path, PathBuf};

/// A trained autoencoder: a BAE (binary codes) or one of the SAE baselines (relu-l1, topk,
/// jumprelu). Forward: `z = x W_enc + b_enc`; BAE codes `1[z > 0]`; reconstruction
/// `act W_dec + b_dec`.
#[pyclass(module = "bae._native", frozen)]
pub struct Model {
    arch: Arch,
    params: Params<f32>,
    path: PathBuf,
    /// "run" or "saelens"
    kind: &'static str,
    config_json: String,
    summary_json: Option<String>,
}

fn read_json(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn open_run(dir: &Path) -> Result<Model, String> {
    let run = bae_train::TrainedRun::open(dir)?;
    let config_json = serde_json::to_string(&run.config).map_err(|e| e.to_string())?;
    // eval.json (bae eval) is the fuller validation report; summary.json is the trainer's
    let summary_json =
        read_json(&dir.join("eval.json")).or_else(|| read_json(&dir.join("summary.json")));
    Ok(Model {
        arch: run.arch,
        params: run.params,
        path: dir.to_path_buf(),
        kind: "run",
        config_json,
        summary_json,
    })
}

fn open_saelens(dir: &Path) -> Result<Model, String> {
    let cfg_path = dir.join("cfg.json");
    let text = std::fs::read_to_string(&cfg_path)
        .map_err(|e| format!("{}: cannot read ({e})", cfg_path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not JSON: {e}", cfg_path.display()))?;
    let cfg = bae_io::SaeLensCfg::from_json(&value)
        .map_err(|e| format!("{}: {e}", cfg_path.display()))?;
    if cfg.apply_b_dec_to_input || cfg.normalize_activations != "none" {
        return Err(format!(
            "{}: apply_b_dec_to_input / normalize_activations are not bae's forward (not a bae export)",
            cfg_path.display()
        ));
    }
    let weights = dir.join("sae_weights.safetensors");
    let (mut map, _) = bae_io::load_tensors(&weights).map_err(|e| e.to_string())?;
    let (d, dc) = (cfg.d_in, cfg.d_sae);
    let mut take = |name: &str, shape: Vec<usize>| -> Result<Vec<f32>, String> {
        let t = map
            .remove(name)
            .ok_or_else(|| format!("{}: no tensor {name}", weights.display()))?;
        if t.shape != shape {
            return Err(format!(
                "{}: {name} has shape {:?}, cfg.json says {shape:?}",
                weights.display(),
                t.shape
            ));
        }
        Ok(t.data)
    };
    let params = Params {
        d,
        d_code: dc,
        w_enc: take(W_ENC, vec![d, dc])?,
        b_enc: take(B_ENC, vec![dc])?,
        w_dec: take(W_DEC, vec![dc, d])?,
        b_dec: take(B_DEC, vec![d])?,
    };
    let arch = match cfg.architecture {
        SaeArchitecture::Binary => Arch::Bae {
            estimator: Estimator::SignS,
            lambda_entropy: 0.0,
            lambda_cov: 0.0,
        },
        SaeArchitecture::Standard => Arch::ReluL1 { l1: 0.0 },
        SaeArchitecture::TopK { k } => Arch::TopK { k, l1: 0.0 },
        SaeArchitecture::JumpRelu => {
            let th = take(THRESHOLD, vec![dc])?;
            // bae's jumprelu has one fixed threshold
            if th.iter().any(|&t| t != th[0]) {
                return Err(format!(
                    "{}: per-feature thresholds differ; bae's jumprelu has one threshold",
                    weights.display()
                ));
            }
            Arch::JumpRelu {
                theta: th[0] as f64,
                l1: 0.0,
            }
        }
    };
    Ok(Model {
        arch,
        params,
        path: dir.to_path_buf(),
        kind: "saelens",
        config_json: text,
        summary_json: read_json(&dir.join("bae_export.json")),
    })
}

/// Opens a run folder (`config.json` + `model.safetensors`) or a SAELens export (`cfg.json` +
/// `sae_weights.safetensors`).
#[pyfunction]
fn load(py: Python<'_>, path: PathBuf) -> PyResult<Model> {
    let r = py.detach(|| {
        if path.join("config.json").is_file() {
            open_run(&path)
        } else if path.join("cfg.json").is_file() {
            open_saelens(&path)
        } else if path.is_dir() {
            Err(format!(
                "{}: neither a run folder (config.json) nor a SAELens export (cfg.json)",
                path.display()
            ))
        } else {
            Err(format!("{}: no such folder", path.display()))
        }
    });
    r.map_err(bae_err)
}

impl Model {
    /// `x` as float32 rows of the model's width, and their number.
    fn input<'py>(
        &self,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<(numpy::PyReadonlyArray2<'py, f32>, usize)> {
        let (x, n, cols) = f32_matrix(x, "x")?;
        if cols != self.params.d {
            return Err(bae_err(format!(
                "x has {cols} columns, the model ({}) expects {}",
                self.path.display(),
                self.params.d
            )));
        }
        Ok((x, n))
    }
}

#[pymethods]
impl Model {
    /// "bae", "relu-l1", "topk" or "jumprelu".
    #[getter]
    fn arch(&self) -> &'static str {
        self.arch.name()
    }

    /// Input width d.
    #[getter]
    fn d(&self) -> usize {
        self.params.d
    }

    /// Code width d'.
    #[getter]
    fn d_code(&self) -> usize {
        self.params.d_code
    }

    /// The folder it was loaded from.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// "run" (a `bae train` folder) or "saelens" (an export).
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind
    }

    /// The run's training config (or the export's cfg.json) as JSON text.
    #[getter]
    fn config_json(&self) -> &str {
        &self.config_json
    }

    /// The validation summary as JSON text (eval.json, else summary.json; an export's
    /// bae_export.json), None when the folder has none.
    #[getter]
    fn summary_json(&self) -> Option<&str> {
        self.summary_json.as_deref()
    }

    /// k of a TopK model, None otherwise.
    #[getter]
    fn k(&self) -> Option<usize> {
        match self.arch {
            Arch::TopK { k, .. } => Some(k),
            _ => None,
        }
    }

    /// The threshold of a jumprelu model, None otherwise.
    #[getter]
    fn threshold(&self) -> Option<f64> {
        match self.arch {
            Arch::JumpRelu { theta, .. } => Some(theta),
            _ => None,
        }
    }

    /// The weights as new float32 arrays: W_enc [d, d'], b_enc [d'], W_dec [d', d], b_dec [d].
    fn weights<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let p = &self.params;
        let out = PyDict::new(py);
        out.set_item(W_ENC, matrix(py, p.w_enc.clone(), p.d, p.d_code)?)?;
        out.set_item(B_ENC, PyArray1::from_vec(py, p.b_enc.clone()))?;
        out.set_item(W_DEC, matrix(py, p.w_dec.clone(), p.d_code, p.d)?)?;
        out.set_item(B_DEC, PyArray1::from_vec(py, p.b_dec.clone()))?;
        Ok(out)
    }

    /// Pre-activations `z = x W_enc + b_enc` (float32 [n, d']).
    fn pre<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (x, n) = self.input(x)?;
        let xs = x.as_slice()?;
        let z = py.detach(|| model::encode_pre(&self.params, xs, n));
        matrix(py, z, n, self.params.d_code)
    }

    /// BAE: the codes `1[z > 0]` as PackedCodes (`packed=False`: a bool array [n, d']).
    /// SAE baselines: the activations (float32 [n, d']).
    #[pyo3(signature = (x, packed = true))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        packed: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (x, n) = self.input(x)?;
        let xs = x.as_slice()?;
        let dc = self.params.d_code;
        if self.arch.is_binary() {
            let rows = py.detach(|| {
                let z = model::encode_pre(&self.params, xs, n);
                bae_bits::PackedRows::encode_positive(&z, n, dc)
            });
            let codes = PackedCodes { rows };
            if packed {
                Ok(Bound::new(py, codes)?.into_any())
            } else {
                Ok(codes.to_dense(py)?.into_any())
            }
        } else {
            let act = py.detach(|| {
                let z = model::encode_pre(&self.params, xs, n);
                model::activate(&z, n, dc, &self.arch).0
            });
            Ok(matrix(py, act, n, dc)?.into_any())
        }
    }

    /// Reconstruction `act W_dec + b_dec` (float32 [n, d]) from PackedCodes (BAE) or a 2-D
    /// array of codes / activations [n, d'].
    fn decode<'py>(
        &self,
        py: Python<'py>,
        codes: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let dc = self.params.d_code;
        let (act, n) = if let Ok(c) = codes.cast::<PackedCodes>() {
            let r = &c.get().rows;
            if r.n_cols() != dc {
                return Err(bae_err(format!(
                    "codes have {} columns, the model has {dc} features",
                    r.n_cols()
                )));
            }
            (py.detach(|| r.to_dense::<f32>()), r.n_rows())
        } else {
            let arr = as_ndarray(codes)?;
            let (a, n, cols) = f32_matrix(arr.as_any(), "codes")?;
            if cols != dc {
                return Err(bae_err(format!(
                    "codes have {cols} columns, the model has {dc} features"
                )));
            }
            (a.as_slice()?.to_vec(), n)
        };
        let x_hat = py.detach(|| model::decode(&self.params, &act, n));
        matrix(py, x_hat, n, self.params.d)
    }

    /// `decode(encode(x))` in one pass (float32 [n, d]).
    fn reconstruct<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (x, n) = self.input(x)?;
        let xs = x.as_slice()?;
        let x_hat = py.detach(|| model::forward(&self.params, xs, n, &self.arch).x_hat);
        matrix(py, x_hat, n, self.params.d)
    }

    /// The same TopK model keeping `k` values a row (for sweeps over k at inference).
    fn with_k(&self, k: usize) -> PyResult<Model> {
        let Arch::TopK { l1, .. } = self.arch else {
            return Err(bae_err(format!(
                "with_k: the model is {}, not topk",
                self.arch.name()
            )));
        };
        if k == 0 {
            return Err(bae_err("with_k: k must be at least 1"));
        }
        Ok(Model {
            arch: Arch::TopK { k, l1 },
            params: self.params.clone(),
            path: self.path.clone(),
            kind: self.kind,
            config_json: self.config_json.clone(),
            summary_json: self.summary_json.clone(),
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "Model(arch={:?}, d={}, d_code={}, path={:?})",
            self.arch.name(),
            self.params.d,
            self.params.d_code,
            self.path.display().to_string()
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    Ok(())
}
