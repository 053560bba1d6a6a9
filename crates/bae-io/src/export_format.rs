//! The one definition of the export file layouts: a SAELens 6 folder as `bae export --format saelens`
//! writes it (file names, tensor names and shapes, the fields of `cfg.json`) and the files bae adds
//! to it (`bae_export.json`, the optional `reference.safetensors`).
//!
//! Checked against SAELens 6's source (`sae_lens/saes/sae.py`, `standard_sae.py`, `topk_sae.py`,
//! `jumprelu_sae.py`, `constants.py`, `loading/pretrained_sae_loaders.py`, version 6.54.12):
//!
//! * `SAE.load_from_disk(dir)` reads `cfg.json`, picks the class registered for
//!   `cfg["architecture"]`, keeps the fields its config dataclass declares (others are ignored) and
//!   loads `sae_weights.safetensors` with `load_state_dict(strict)`: the file must hold exactly the
//!   module's parameters, no more, no fewer.
//! * Parameters: `W_enc [d_in, d_sae]`, `b_enc [d_sae]`, `W_dec [d_sae, d_in]`, `b_dec [d_in]`,
//!   plus `threshold [d_sae]` for `jumprelu`. Encoding is `(x − b_dec·apply_b_dec_to_input) W_enc + b_enc`.
//! * A `cfg.json` whose `metadata.sae_lens_version` is below 6.0.0 (or missing) is rewritten by the
//!   pre-6 compatibility path, so the version is always written.
//! * `sparsity.safetensors` holds `sparsity [d_sae]` = log10(feature density + 1e-10), the
//!   density being the share of tokens on which the feature's activation is non-zero.
//!
//! The conversions to and from JSON are written out here rather than derived (unlike the extract
//! manifest's), and check every field on the way in.

use serde_json::{Map, Value, json};

/// The SAELens version whose layout the export follows; written as `metadata.sae_lens_version`.
pub const SAELENS_LAYOUT_VERSION: &str = "6.54.12";

/// File names in an export folder.
pub mod export_files {
    /// SAELens config file.
    pub const CFG: &str = "cfg.json";
    /// SAELens weights file.
    pub const WEIGHTS: &str = "sae_weights.safetensors";
    /// SAELens log10 feature density file.
    pub const SPARSITY: &str = "sparsity.safetensors";
    /// bae's marker and provenance file: its presence makes a folder "a previous export".
    pub const MARKER: &str = "bae_export.json";
    /// Optional reference rows with bae's own outputs (`--with-reference N`).
    pub const REFERENCE: &str = "reference.safetensors";
}

/// Tensor names in the export's safetensors files.
pub mod export_tensors {
    /// `sae_weights.safetensors` (SAELens parameter names)
    pub const W_ENC: &str = "W_enc";
    pub const B_ENC: &str = "b_enc";
    pub const W_DEC: &str = "W_dec";
    pub const B_DEC: &str = "b_dec";
    /// JumpReLU threshold, one per feature
    pub const THRESHOLD: &str = "threshold";
    /// `sparsity.safetensors`
    pub const SPARSITY: &str = "sparsity";
    /// Added to the density inside the log10, as SAELens does.
    pub const SPARSITY_EPS: f64 = 1e-10;
    /// `reference.safetensors`: the input rows and bae's own forward on them
    pub const REF_X: &str = "x";
    pub const REF_HIDDEN_PRE: &str = "hidden_pre";
    pub const REF_FEATURE_ACTS: &str = "feature_acts";
    pub const REF_SAE_OUT: &str = "sae_out";
}

use export_tensors::*;

/// The SAELens architecture an export declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaeArchitecture {
    /// `relu(x W_enc + b_enc) W_dec + b_dec` (bae's relu-l1)
    Standard,
    /// `topk(x W_enc + b_enc)` with ReLU on the k kept values (bae's topk, see the export notes)
    TopK { k: usize },
    /// `relu(z) · 1[z > threshold]` (bae's fixed-threshold jumprelu)
    JumpRelu,
    /// not in SAELens: `1[x W_enc + b_enc > 0]`; registered by the `bae` Python package (`bae.saelens`)
    Binary,
}

impl SaeArchitecture {
    pub fn name(&self) -> &'static str {
        match self {
            SaeArchitecture::Standard => "standard",
            SaeArchitecture::TopK { .. } => "topk",
            SaeArchitecture::JumpRelu => "jumprelu",
            SaeArchitecture::Binary => "binary",
        }
    }

    /// Tensors of `sae_weights.safetensors`, in file order, with their shapes.
    pub fn weight_tensors(&self, d_in: usize, d_sae: usize) -> Vec<(&'static str, Vec<usize>)> {
        let mut t = vec![
            (W_ENC, vec![d_in, d_sae]),
            (B_ENC, vec![d_sae]),
            (W_DEC, vec![d_sae, d_in]),
            (B_DEC, vec![d_in]),
        ];
        if *self == SaeArchitecture::JumpRelu {
            t.push((THRESHOLD, vec![d_sae]));
        }
        t
    }
}

/// `cfg.json` `metadata`: how the SAE should be used. SAELens accepts any key here; bae's own
/// provenance goes into `extra` under `bae_*` names.
#[derive(Clone, Debug, PartialEq)]
pub struct SaeLensMetadata {
    pub sae_lens_version: String,
    /// written as null: the SAE was not trained with SAELens
    pub sae_lens_training_version: Option<String>,
    pub model_name: Option<String>,
    pub hook_name: Option<String>,
    pub hook_head_index: Option<usize>,
    pub context_size: Option<usize>,
    pub prepend_bos: Option<bool>,
    pub dataset_path: Option<String>,
    /// further keys (bae provenance), written as they are
    pub extra: Map<String, Value>,
}

impl Default for SaeLensMetadata {
    fn default() -> Self {
        SaeLensMetadata {
            sae_lens_version: SAELENS_LAYOUT_VERSION.to_string(),
            sae_lens_training_version: None,
            model_name: None,
            hook_name: None,
            hook_head_index: None,
            context_size: None,
            prepend_bos: None,
            dataset_path: None,
            extra: Map::new(),
        }
    }
}

/// The `cfg.json` of a SAELens 6 folder.
#[derive(Clone, Debug, PartialEq)]
pub struct SaeLensCfg {
    pub architecture: SaeArchitecture,
    pub d_in: usize,
    pub d_sae: usize,
    /// "float32": the tensors are stored as F32
    pub dtype: String,
    pub device: String,
    /// false: bae never subtracts b_dec from the input
    pub apply_b_dec_to_input: bool,
    /// "none": bae trains on raw hidden states
    pub normalize_activations: String,
    /// "none" (residual stream, not attention `hook_z`)
    pub reshape_activations: String,
    /// TopK only; false as bae selects on raw pre-activations
    pub rescale_acts_by_decoder_norm: bool,
    pub metadata: SaeLensMetadata,
}

impl SaeLensCfg {
    /// A config with the fixed choices of a bae export.
    pub fn new(architecture: SaeArchitecture, d_in: usize, d_sae: usize) -> SaeLensCfg {
        SaeLensCfg {
            architecture,
            d_in,
            d_sae,
            dtype: "float32".into(),
            device: "cpu".into(),
            apply_b_dec_to_input: false,
            normalize_activations: "none".into(),
            reshape_activations: "none".into(),
            rescale_acts_by_decoder_norm: false,
            metadata: SaeLensMetadata::default(),
        }
    }

    pub fn weight_tensors(&self) -> Vec<(&'static str, Vec<usize>)> {
        self.architecture.weight_tensors(self.d_in, self.d_sae)
    }

    /// Tensors of `sparsity.safetensors`.
    pub fn sparsity_tensors(&self) -> Vec<(&'static str, Vec<usize>)> {
        vec![(SPARSITY, vec![self.d_sae])]
    }

    pub fn to_json(&self) -> Value {
        let m = &self.metadata;
        let mut meta = Map::new();
        meta.insert("sae_lens_version".into(), json!(m.sae_lens_version));
        meta.insert(
            "sae_lens_training_version".into(),
            json!(m.sae_lens_training_version),
        );
        meta.insert("model_name".into(), json!(m.model_name));
        meta.insert("hook_name".into(), json!(m.hook_name));
        meta.insert("hook_head_index".into(), json!(m.hook_head_index));
        meta.insert("context_size".into(), json!(m.context_size));
        meta.insert("prepend_bos".into(), json!(m.prepend_bos));
        meta.insert("dataset_path".into(), json!(m.dataset_path));
        for (k, v) in &m.extra {
            meta.insert(k.clone(), v.clone());
        }
        let mut cfg = Map::new();
        cfg.insert("architecture".into(), json!(self.architecture.name()));
        cfg.insert("d_in".into(), json!(self.d_in));
        cfg.insert("d_sae".into(), json!(self.d_sae));
        cfg.insert("dtype".into(), json!(self.dtype));
        cfg.insert("device".into(), json!(self.device));
        cfg.insert(
            "apply_b_dec_to_input".into(),
            json!(self.apply_b_dec_to_input),
        );
        cfg.insert(
            "normalize_activations".into(),
            json!(self.normalize_activations),
        );
        cfg.insert(
            "reshape_activations".into(),
            json!(self.reshape_activations),
        );
        if let SaeArchitecture::TopK { k } = self.architecture {
            cfg.insert("k".into(), json!(k));
            cfg.insert(
                "rescale_acts_by_decoder_norm".into(),
                json!(self.rescale_acts_by_decoder_norm),
            );
        }
        cfg.insert("metadata".into(), Value::Object(meta));
        Value::Object(cfg)
    }

    /// Pretty JSON text of `cfg.json`.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(&self.to_json()).expect("a JSON value serialises") + "\n"
    }

    /// Reads a `cfg.json` value; one-line error naming the field at fault.
    pub fn from_json(v: &Value) -> Result<SaeLensCfg, String> {
        let obj = v.as_object().ok_or("cfg.json is not a JSON object")?;
        let arch_name = req_str(obj, "architecture")?;
        let architecture = match arch_name.as_str() {
            "standard" => SaeArchitecture::Standard,
            "topk" => SaeArchitecture::TopK {
                k: req_usize(obj, "k")?,
            },
            "jumprelu" => SaeArchitecture::JumpRelu,
            "binary" => SaeArchitecture::Binary,
            other => {
                return Err(format!(
                    "architecture {other:?} is not one bae exports (standard, topk, jumprelu, binary)"
                ));
            }
        };
        let d_in = req_usize(obj, "d_in")?;
        let d_sae = req_usize(obj, "d_sae")?;
        if d_in == 0 || d_sae == 0 {
            return Err(format!("d_in {d_in} and d_sae {d_sae} must be positive"));
        }
        let meta_v = obj.get("metadata").ok_or("missing field metadata")?;
        let meta_o = meta_v
            .as_object()
            .ok_or("field metadata is not an object")?;
        let mut extra = Map::new();
        for (k, val) in meta_o {
            if !METADATA_FIELDS.contains(&k.as_str()) {
                extra.insert(k.clone(), val.clone());
            }
        }
        let metadata = SaeLensMetadata {
            sae_lens_version: req_str(meta_o, "sae_lens_version")
                .map_err(|e| format!("metadata: {e}"))?,
            sae_lens_training_version: opt_str(meta_o, "sae_lens_training_version")?,
            model_name: opt_str(meta_o, "model_name")?,
            hook_name: opt_str(meta_o, "hook_name")?,
            hook_head_index: opt_usize(meta_o, "hook_head_index")?,
            context_size: opt_usize(meta_o, "context_size")?,
            prepend_bos: opt_bool(meta_o, "prepend_bos")?,
            dataset_path: opt_str(meta_o, "dataset_path")?,
            extra,
        };
        Ok(SaeLensCfg {
            architecture,
            d_in,
            d_sae,
            dtype: opt_str(obj, "dtype")?.unwrap_or_else(|| "float32".into()),
            device: opt_str(obj, "device")?.unwrap_or_else(|| "cpu".into()),
            apply_b_dec_to_input: opt_bool(obj, "apply_b_dec_to_input")?.unwrap_or(true),
            normalize_activations: opt_str(obj, "normalize_activations")?
                .unwrap_or_else(|| "none".into()),
            reshape_activations: opt_str(obj, "reshape_activations")?
                .unwrap_or_else(|| "none".into()),
            rescale_acts_by_decoder_norm: opt_bool(obj, "rescale_acts_by_decoder_norm")?
                .unwrap_or(false),
            metadata,
        })
    }
}

/// Metadata keys with a typed field in [`SaeLensMetadata`].
const METADATA_FIELDS: [&str; 8] = [
    "sae_lens_version",
    "sae_lens_training_version",
    "model_name",
    "hook_name",
    "hook_head_index",
    "context_size",
    "prepend_bos",
    "dataset_path",
];

/// Tensors of `reference.safetensors` for `n` rows: the inputs and bae's own forward on them
/// (`feature_acts` are the 0/1 codes for a BAE), all F32.
pub fn reference_tensors(n: usize, d_in: usize, d_sae: usize) -> Vec<(&'static str, Vec<usize>)> {
    vec![
        (REF_X, vec![n, d_in]),
        (REF_HIDDEN_PRE, vec![n, d_sae]),
        (REF_FEATURE_ACTS, vec![n, d_sae]),
        (REF_SAE_OUT, vec![n, d_in]),
    ]
}

/// `bae_export.json`: what was exported from where, and how SAELens's forward differs from bae's.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportMarker {
    /// "saelens"
    pub format: String,
    /// version of the `bae` that wrote the export
    pub bae_version: String,
    /// the run folder exported
    pub run: String,
    /// bae's architecture name (bae, relu-l1, topk, jumprelu)
    pub bae_arch: String,
    /// the SAELens architecture written
    pub architecture: String,
    /// rows the density (and the notes' counts) were measured on; 0 without a density pass
    pub density_rows: usize,
    /// rows in `reference.safetensors` (0: no such file)
    pub reference_rows: usize,
    /// how SAELens's forward differs from bae's, one sentence each
    pub notes: Vec<String>,
}

impl ExportMarker {
    pub fn to_json(&self) -> Value {
        json!({
            "format": self.format,
            "bae_version": self.bae_version,
            "run": self.run,
            "bae_arch": self.bae_arch,
            "architecture": self.architecture,
            "density_rows": self.density_rows,
            "reference_rows": self.reference_rows,
            "notes": self.notes,
        })
    }

    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(&self.to_json()).expect("a JSON value serialises") + "\n"
    }

    pub fn from_json(v: &Value) -> Result<ExportMarker, String> {
        let obj = v.as_object().ok_or("not a JSON object")?;
        let notes = match obj.get("notes") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|n| {
                    n.as_str()
                        .map(String::from)
                        .ok_or("notes holds a non-string")
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err("missing list notes".into()),
        };
        Ok(ExportMarker {
            format: req_str(obj, "format")?,
            bae_version: req_str(obj, "bae_version")?,
            run: req_str(obj, "run")?,
            bae_arch: req_str(obj, "bae_arch")?,
            architecture: req_str(obj, "architecture")?,
            density_rows: req_usize(obj, "density_rows")?,
            reference_rows: req_usize(obj, "reference_rows")?,
            notes,
        })
    }
}

fn req_str(o: &Map<String, Value>, k: &str) -> Result<String, String> {
    match o.get(k) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("field {k} is not a string")),
        None => Err(format!("missing field {k}")),
    }
}

fn req_usize(o: &Map<String, Value>, k: &str) -> Result<usize, String> {
    match o.get(k) {
        Some(v) => v
            .as_u64()
            .and_then(|u| usize::try_from(u).ok())
            .ok_or_else(|| format!("field {k} is not a non-negative integer")),
        None => Err(format!("missing field {k}")),
    }
}

fn opt_str(o: &Map<String, Value>, k: &str) -> Result<Option<String>, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("field {k} is not a string")),
    }
}

fn opt_usize(o: &Map<String, Value>, k: &str) -> Result<Option<usize>, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => req_usize(o, k).map(Some),
    }
}

fn opt_bool(o: &Map<String, Value>, k: &str) -> Result<Option<bool>, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(format!("field {k} is not true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cfg_round_trips_through_json() {
        for arch in [
            SaeArchitecture::Standard,
            SaeArchitecture::TopK { k: 7 },
            SaeArchitecture::JumpRelu,
            SaeArchitecture::Binary,
        ] {
            let mut cfg = SaeLensCfg::new(arch, 3, 12);
            cfg.metadata.hook_name = Some("blocks.2.hook_resid_post".into());
            cfg.metadata.context_size = Some(128);
            cfg.metadata.extra.insert("bae_arch".into(), json!("x"));
            let v: Value = serde_json::from_str(&cfg.to_json_string()).unwrap();
            assert_eq!(SaeLensCfg::from_json(&v).unwrap(), cfg);
            assert_eq!(v["architecture"], arch.name());
            assert_eq!(v["apply_b_dec_to_input"], false);
            assert_eq!(v["normalize_activations"], "none");
            assert_eq!(v["metadata"]["sae_lens_version"], SAELENS_LAYOUT_VERSION);
        }
    }

    #[test]
    fn bad_cfg_names_the_field() {
        let v = json!({"architecture": "topk", "d_in": 3, "d_sae": 4, "metadata": {}});
        assert_eq!(SaeLensCfg::from_json(&v).unwrap_err(), "missing field k");
        let v = json!({"architecture": "gated", "d_in": 3, "d_sae": 4, "metadata": {}});
        assert!(SaeLensCfg::from_json(&v).unwrap_err().contains("\"gated\""));
        let v = json!({"architecture": "standard", "d_in": -3, "d_sae": 4, "metadata": {}});
        assert!(SaeLensCfg::from_json(&v).unwrap_err().contains("d_in"));
    }

    #[test]
    fn jumprelu_has_a_threshold_tensor() {
        let names: Vec<_> = SaeArchitecture::JumpRelu
            .weight_tensors(2, 5)
            .into_iter()
            .map(|(n, s)| format!("{n}{s:?}"))
            .collect();
        assert_eq!(
            names,
            [
                "W_enc[2, 5]",
                "b_enc[5]",
                "W_dec[5, 2]",
                "b_dec[2]",
                "threshold[5]"
            ]
        );
        assert_eq!(SaeArchitecture::Binary.weight_tensors(2, 5).len(), 4);
    }
}
