//! Export a trained run to other tools' formats. One format so far: a SAELens 6 folder
//! (`cfg.json`, `sae_weights.safetensors`, `sparsity.safetensors`), the layout defined once in
//! [`bae_io::SaeLensCfg`] / [`bae_io::export_files`] / [`bae_io::export_tensors`].
//!
//! | bae arch | SAELens architecture | forward in SAELens (`apply_b_dec_to_input` false) |
//! |---|---|---|
//! | relu-l1 | `standard` | `relu(z)`, `z = x W_enc + b_enc`: the same as bae |
//! | topk | `topk` (`k`) | `relu` of the k largest `z`: bae (official) keeps negative ones and ties |
//! | jumprelu | `jumprelu` (`threshold` = θ everywhere) | `relu(z)·1[z > θ]`: the same as bae's `z·1[z > θ]` for θ ≥ 0 |
//! | bae | `binary` (not in SAELens; `bae.saelens` of the Python package registers it) | `1[z > 0]` |
//!
//! The folder is written into a temporary sibling and renamed into place, so `--out` holds either
//! the previous content or the complete new export. An existing non-empty `--out` is replaced
//! only when it is a previous export (it has `bae_export.json`) or when `force` is set.

use crate::run::TrainedRun;
use bae_io::export_files as files;
use bae_io::export_tensors as names;
use bae_io::{ExportMarker, SaeArchitecture, SaeLensCfg, Tensor};
use bae_ref::{Arch, Params};
use bae_train::RowSource;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Formats `bae export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    SaeLens,
}

impl ExportFormat {
    pub fn name(&self) -> &'static str {
        match self {
            ExportFormat::SaeLens => "saelens",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub out: PathBuf,
    /// replace a non-empty `out` that is not a previous export
    pub force: bool,
    /// activations to measure the density on (default: the run's training data)
    pub data: Option<PathBuf>,
    /// skip the density pass (no `sparsity.safetensors`); the data is then not read
    pub no_sparsity: bool,
    /// write `reference.safetensors` with this many validation rows and bae's outputs (0: none)
    pub reference_rows: usize,
    /// `metadata.model_name` (default: derived from the extract folder's manifest)
    pub model_name: Option<String>,
    /// `metadata.hook_name` (default: `blocks.{b}.hook_resid_post` from the manifest)
    pub hook_name: Option<String>,
}

impl ExportOptions {
    pub fn new(out: impl Into<PathBuf>) -> ExportOptions {
        ExportOptions {
            out: out.into(),
            force: false,
            data: None,
            no_sparsity: false,
            reference_rows: 0,
            model_name: None,
            hook_name: None,
        }
    }
}

/// What an export wrote, for the command's printed output.
#[derive(Clone, Debug)]
pub struct ExportReport {
    pub out: PathBuf,
    pub cfg: SaeLensCfg,
    pub marker: ExportMarker,
    /// files in the folder, with their tensors' names and shapes where they hold tensors
    pub files: Vec<String>,
    /// measured on the density rows (absent with `no_sparsity`)
    pub density: Option<DensityStats>,
    /// what an existing `out` was: "new", "empty folder", "previous export", "replaced (--force)"
    pub replaced: &'static str,
}

impl ExportReport {
    /// The lines `bae export` prints.
    pub fn lines(&self) -> Vec<String> {
        let c = &self.cfg;
        let arch = match c.architecture {
            SaeArchitecture::TopK { k } => format!("\"topk\" (k {k})"),
            a => format!("\"{}\"", a.name()),
        };
        let mut l = vec![format!(
            "exported {} ({}, d_in {}, d_sae {}) as SAELens {arch} to {} ({})",
            self.marker.run,
            self.marker.bae_arch,
            c.d_in,
            c.d_sae,
            self.out.display(),
            self.replaced
        )];
        for f in &self.files {
            l.push(format!("  {f}"));
        }
        let m = &c.metadata;
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "null (unknown)".into());
        l.push(format!(
            "  metadata: hook_name {}, model_name {}, context_size {}",
            show(&m.hook_name),
            show(&m.model_name),
            m.context_size
                .map_or_else(|| "null (unknown)".into(), |v| v.to_string())
        ));
        if let Some(Value::String(f)) = m.extra.get("bae_model_file") {
            l.push(format!(
                "  (the hidden states come from {f} run by bae-llm; SAELens's HookedTransformer would run the full-precision model)"
            ));
        }
        l.push("differences between SAELens's forward and bae's:".into());
        for n in &self.marker.notes {
            l.push(format!("  - {n}"));
        }
        l.push(match c.architecture {
            SaeArchitecture::Binary => format!(
                "load: Python (pip install ./python): bae.load(\"{0}\"); in SAELens: import bae.saelens, then SAE.load_from_disk(\"{0}\")",
                self.out.display()
            ),
            _ => format!(
                "load: from sae_lens import SAE; SAE.load_from_disk(\"{}\")",
                self.out.display()
            ),
        });
        l
    }
}

/// The SAELens architecture a bae architecture exports to (`k` clamped to `d_sae`, as bae's forward does).
pub fn saelens_architecture(arch: &Arch, d_sae: usize) -> SaeArchitecture {
    match *arch {
        Arch::Bae { .. } => SaeArchitecture::Binary,
        Arch::ReluL1 { .. } => SaeArchitecture::Standard,
        Arch::TopK { k, .. } => SaeArchitecture::TopK {
            k: k.clamp(1, d_sae),
        },
        Arch::JumpRelu { .. } => SaeArchitecture::JumpRelu,
    }
}

/// The tensors of `sae_weights.safetensors`: names, shapes (as `SaeLensCfg::weight_tensors`) and data.
pub fn saelens_weights(
    params: &Params<f32>,
    arch: &Arch,
) -> Vec<(&'static str, Vec<usize>, Vec<f32>)> {
    let sa = saelens_architecture(arch, params.d_code);
    sa.weight_tensors(params.d, params.d_code)
        .into_iter()
        .map(|(name, shape)| {
            let data = match name {
                names::W_ENC => params.w_enc.clone(),
                names::B_ENC => params.b_enc.clone(),
                names::W_DEC => params.w_dec.clone(),
                names::B_DEC => params.b_dec.clone(),
                names::THRESHOLD => match *arch {
                    // bae's forward compares with theta in the working precision (f32 here)
                    Arch::JumpRelu { theta, .. } => vec![theta as f32; params.d_code],
                    _ => unreachable!("only jumprelu has a threshold tensor"),
                },
                other => unreachable!("unknown weight tensor {other}"),
            };
            (name, shape, data)
        })
        .collect()
}

/// Firing counts of one pass over the density rows, under both forwards.
#[derive(Clone, Debug, PartialEq)]
pub struct DensityStats {
    pub rows: usize,
    /// which rows of the data (the run's validation split, or all rows without one)
    pub row_range: Range<usize>,
    pub validation: bool,
    /// per feature: rows where bae's activation is non-zero (a code bit set for a BAE)
    pub fires_bae: Vec<u64>,
    /// per feature: rows where SAELens's activation is non-zero (bae's activation > 0)
    pub fires_saelens: Vec<u64>,
    /// activations bae keeps that are non-zero
    pub kept: u64,
    /// of them, negative ones (SAELens's ReLU makes them 0; TopK and JumpReLU with θ < 0)
    pub kept_negative: u64,
    pub rows_with_negative: usize,
    /// TopK: rows where bae keeps more than k values (ties at the k-th largest)
    pub rows_with_ties: usize,
}

impl DensityStats {
    /// `sparsity` as SAELens stores it: log10(density + 1e-10), the density of the exported
    /// model's (SAELens's) activations.
    pub fn log10_density(&self) -> Vec<f32> {
        self.fires_saelens
            .iter()
            .map(|&c| (c as f64 / self.rows as f64 + names::SPARSITY_EPS).log10() as f32)
            .collect()
    }

    pub fn dead_saelens(&self) -> usize {
        self.fires_saelens.iter().filter(|&&c| c == 0).count()
    }
}

/// One forward pass of `params` over `rows` of `src`, counting what the two forwards keep.
pub fn density_pass(
    params: &Params<f32>,
    arch: &Arch,
    src: &dyn RowSource,
    rows: Range<usize>,
    validation: bool,
    batch: usize,
) -> Result<DensityStats, String> {
    let (d, dc) = (params.d, params.d_code);
    let k = match saelens_architecture(arch, dc) {
        SaeArchitecture::TopK { k } => Some(k),
        _ => None,
    };
    let mut s = DensityStats {
        rows: rows.len(),
        row_range: rows.clone(),
        validation,
        fires_bae: vec![0; dc],
        fires_saelens: vec![0; dc],
        kept: 0,
        kept_negative: 0,
        rows_with_negative: 0,
        rows_with_ties: 0,
    };
    let idx: Vec<usize> = rows.collect();
    let mut x = vec![0f32; batch.max(1) * d];
    for chunk in idx.chunks(batch.max(1)) {
        let m = chunk.len();
        src.gather(chunk, &mut x[..m * d])?;
        let f = bae_ref::forward(params, &x[..m * d], m, arch);
        for row in f.act.chunks(dc) {
            let mut neg = false;
            for (j, &a) in row.iter().enumerate() {
                if a != 0.0 {
                    s.fires_bae[j] += 1;
                    s.kept += 1;
                    if a > 0.0 {
                        s.fires_saelens[j] += 1;
                    } else {
                        s.kept_negative += 1;
                        neg = true;
                    }
                }
            }
            s.rows_with_negative += neg as usize;
        }
        if let Some(k) = k {
            s.rows_with_ties += f
                .pass
                .row_popcounts()
                .iter()
                .filter(|&&c| c as usize > k)
                .count();
        }
    }
    Ok(s)
}

fn pct(a: u64, b: u64) -> String {
    if b == 0 {
        "0".into()
    } else {
        format!("{:.3} %", 100.0 * a as f64 / b as f64)
    }
}

/// How SAELens's forward differs from bae's for `arch`, one sentence each, with the counts
/// measured on the density rows where there are any.
pub fn differences(arch: &Arch, d_sae: usize, stats: Option<&DensityStats>) -> Vec<String> {
    let mut notes = Vec::new();
    let on = |s: &DensityStats| {
        format!(
            "{} {} rows",
            s.rows,
            if s.validation { "validation" } else { "(all)" }
        )
    };
    match *arch {
        Arch::ReluL1 { l1 } => {
            notes.push(
                "none in the forward: SAELens standard is relu(x W_enc + b_enc) W_dec + b_dec, as bae's relu-l1 \
                 (both give 0 for z <= 0)"
                    .into(),
            );
            notes.push(format!(
                "the L1 weight ({l1:e}, a sum over batch and features in bae) is a training setting and is not exported"
            ));
        }
        Arch::TopK { k, .. } => {
            let kk = k.clamp(1, d_sae);
            if kk != k {
                notes.push(format!("k {k} exceeds d_sae {d_sae}: written as k {kk}, which is what bae's forward uses"));
            }
            let mut n = String::from(
                "SAELens's TopK applies ReLU to the k selected values; bae's TopK (official semantics) keeps negative ones \
                 (a = z·1[z >= k-th largest of the row])",
            );
            if let Some(s) = stats {
                n += &format!(
                    ": on the {}, {} of the {} kept values ({}) were negative, in {} rows, and are 0 in SAELens",
                    on(s),
                    s.kept_negative,
                    s.kept,
                    pct(s.kept_negative, s.kept),
                    s.rows_with_negative
                );
            }
            notes.push(n);
            let mut t = "ties: bae keeps every value equal to the k-th largest (possibly more than k), torch.topk exactly k"
                .to_string();
            if let Some(s) = stats {
                t += &format!(
                    "; rows with a tie at the k-th value on the {}: {}",
                    on(s),
                    s.rows_with_ties
                );
            }
            notes.push(t);
        }
        Arch::JumpRelu { theta, l1 } => {
            if theta >= 0.0 {
                notes.push(format!(
                    "none in the forward for θ = {theta} >= 0: SAELens computes relu(z)·1[z > threshold], bae z·1[z > θ], \
                     both strict; `threshold` holds the fixed θ (not learned) for every feature"
                ));
            } else {
                let mut n = format!(
                    "θ = {theta} < 0: SAELens applies ReLU before the threshold, so values in (θ, 0] that bae keeps are 0 there"
                );
                if let Some(s) = stats {
                    n += &format!(
                        ": on the {}, {} of the {} kept values ({})",
                        on(s),
                        s.kept_negative,
                        s.kept,
                        pct(s.kept_negative, s.kept)
                    );
                }
                notes.push(n);
            }
            notes.push(format!(
                "the L1 weight ({l1:e}) is a training setting and is not exported"
            ));
        }
        Arch::Bae { .. } => {
            notes.push(
                "SAELens has no binary architecture: cfg.json declares \"binary\", which SAE.load_from_disk loads after \
                 import bae.saelens (the Python package, python/); features are the codes 1[x W_enc + b_enc > 0] \
                 (strict: z = 0 gives 0), the reconstruction codes W_dec + b_dec"
                    .into(),
            );
            notes.push(
                "sparsity.safetensors is the firing rate; a BAE feature with rate > 0.5 is \"inverted\" (its salient event \
                 is being off), which SAELens's density tools do not know"
                    .into(),
            );
        }
    }
    notes.push(
        "apply_b_dec_to_input false and normalize_activations \"none\": bae encodes the raw hidden state".into(),
    );
    notes
}

/// `metadata` provenance from an extract folder: the manifest of `data` itself or of its only block folder.
fn manifest_of(data: &Path) -> Result<Option<bae_llm::Manifest>, String> {
    if !data.is_dir() {
        return Ok(None);
    }
    let block = if data.join("manifest.json").is_file() {
        data.to_path_buf()
    } else {
        let mut blocks: Vec<PathBuf> = std::fs::read_dir(data)
            .map_err(|e| format!("{}: cannot read folder: {e}", data.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("manifest.json").is_file())
            .collect();
        if blocks.len() != 1 {
            return Ok(None);
        }
        blocks.remove(0)
    };
    bae_llm::Manifest::read(&block).map_err(|e| e.to_string())
}

/// SAELens/Hugging Face model name from a GGUF file name: `SmolLM2-135M-Instruct.Q4_1.gguf` ->
/// `HuggingFaceTB/SmolLM2-135M-Instruct`; other names lose `.gguf` and a quantisation suffix.
pub fn model_name_from_file(file: &str) -> String {
    let mut stem = file.strip_suffix(".gguf").unwrap_or(file);
    if let Some((head, tail)) = stem.rsplit_once('.') {
        let t = tail.to_ascii_uppercase();
        if ["Q", "F", "BF", "IQ"].iter().any(|p| t.starts_with(p)) && t.len() <= 8 {
            stem = head;
        }
    }
    if stem.starts_with("SmolLM2-") {
        format!("HuggingFaceTB/{stem}")
    } else {
        stem.to_string()
    }
}

/// The `cfg.json` for a run, with provenance from `manifest` where there is one.
pub fn saelens_cfg(
    run: &TrainedRun,
    data: &Path,
    manifest: Option<&bae_llm::Manifest>,
    opts: &ExportOptions,
) -> SaeLensCfg {
    let mut cfg = SaeLensCfg::new(
        saelens_architecture(&run.arch, run.d_code()),
        run.d(),
        run.d_code(),
    );
    let m = &mut cfg.metadata;
    m.extra.insert("bae_arch".into(), json!(run.arch.name()));
    m.extra
        .insert("bae_run".into(), json!(run.dir.display().to_string()));
    m.extra
        .insert("bae_data".into(), json!(data.display().to_string()));
    m.extra.insert(
        "bae_train_config".into(),
        serde_json::to_value(&run.config).unwrap_or(Value::Null),
    );
    if let Some(man) = manifest {
        m.hook_name = Some(format!("blocks.{}.hook_resid_post", man.block));
        m.model_name = Some(model_name_from_file(&man.model));
        m.context_size = Some(man.window);
        // bae extract tokenises without a BOS token
        m.prepend_bos = Some(false);
        m.extra.insert("bae_model_file".into(), json!(man.model));
        m.extra.insert("bae_block".into(), json!(man.block));
        m.extra
            .insert("bae_text_sources".into(), json!(man.settings.source));
        if !man.settings.keep_sink {
            m.extra.insert(
                "bae_row_rules".into(),
                json!("positions 0 and 1 of every window and rows with norm > 10x the running median were not extracted"),
            );
        }
    }
    if let Some(h) = &opts.hook_name {
        m.hook_name = Some(h.clone());
    }
    if let Some(n) = &opts.model_name {
        m.model_name = Some(n.clone());
    }
    cfg
}

/// What `out` is before the export replaces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutState {
    Absent,
    Empty,
    Previous,
    Forced,
}

fn canonical(p: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(p).ok()
}

fn check_out(out: &Path, force: bool, keep: &[&Path]) -> Result<OutState, String> {
    let name = out
        .file_name()
        .ok_or_else(|| format!("{}: --out must name a folder", out.display()))?;
    if name == "." || name == ".." {
        return Err(format!("{}: --out must name a folder", out.display()));
    }
    let meta = match std::fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(OutState::Absent),
        Err(e) => {
            return Err(format!(
                "{}: cannot inspect the output folder: {e}",
                out.display()
            ));
        }
    };
    if !meta.is_dir() {
        return Err(format!(
            "{}: exists and is not a folder; remove it or choose another --out",
            out.display()
        ));
    }
    if let Some(o) = canonical(out) {
        for k in keep {
            if canonical(k).is_some_and(|k| k.starts_with(&o)) {
                return Err(format!(
                    "{}: holds {}, which the export reads; choose another --out",
                    out.display(),
                    k.display()
                ));
            }
        }
    }
    let mut entries = std::fs::read_dir(out)
        .map_err(|e| format!("{}: cannot read folder: {e}", out.display()))?;
    if entries.next().is_none() {
        return Ok(OutState::Empty);
    }
    let marker = out.join(files::MARKER);
    let previous = std::fs::read_to_string(&marker)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|v| ExportMarker::from_json(&v).is_ok());
    if previous {
        Ok(OutState::Previous)
    } else if force {
        Ok(OutState::Forced)
    } else {
        Err(format!(
            "{}: exists, is not empty and is not a bae export (no valid {}); pass --force to replace it",
            out.display(),
            files::MARKER
        ))
    }
}

/// Removes a temporary folder on drop unless disarmed.
struct TempDir(Option<PathBuf>);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

fn sibling(out: &Path, tag: &str) -> PathBuf {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent.join(format!(".{name}.bae-export-{}.{tag}", std::process::id()))
}

/// Removes temporary folders of earlier exports to `out` whose process is gone (Linux: /proc).
fn remove_stale(out: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Some(parent) = sibling(out, "x").parent().map(Path::to_path_buf) else {
        return;
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.bae-export-");
    let Ok(rd) = std::fs::read_dir(&parent) else {
        return;
    };
    for e in rd.flatten() {
        let fname = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = fname.strip_prefix(&prefix) else {
            continue;
        };
        let Some((pid, tag)) = rest.split_once('.') else {
            continue;
        };
        if (tag == "tmp" || tag == "old")
            && pid.parse::<u32>().is_ok()
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn write_tensors(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) -> Result<String, String> {
    let refs: Vec<(&str, &[usize], &[f32])> = tensors
        .iter()
        .map(|(n, s, d)| (*n, s.as_slice(), d.as_slice()))
        .collect();
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    bae_io::save_tensors(path, &refs, &meta).map_err(|e| e.to_string())?;
    let list: Vec<String> = tensors
        .iter()
        .map(|(n, s, _)| format!("{n} {s:?}"))
        .collect();
    Ok(list.join(", "))
}

/// Rows of `range`, `n` of them spread evenly (the first of each equal slice).
fn spread(range: &Range<usize>, n: usize) -> Vec<usize> {
    let len = range.len();
    (0..n).map(|i| range.start + i * len / n).collect()
}

/// Export `run` as a SAELens 6 folder at `opts.out`.
pub fn export_saelens(run: &TrainedRun, opts: &ExportOptions) -> Result<ExportReport, String> {
    let data = opts
        .data
        .clone()
        .unwrap_or_else(|| run.data().to_path_buf());
    if opts.no_sparsity && opts.reference_rows > 0 {
        return Err(
            "--with-reference reads the data; it cannot be combined with --no-sparsity".into(),
        );
    }
    let needs_data = !opts.no_sparsity;
    let state = check_out(&opts.out, opts.force, &[&run.dir, &data])?;
    let manifest = manifest_of(&data)?;
    let cfg = saelens_cfg(run, &data, manifest.as_ref(), opts);
    let (d, dc) = (run.d(), run.d_code());

    let mut stats = None;
    let mut reference = None;
    if needs_data {
        if !data.exists() {
            return Err(format!(
                "{}: the run's data is not there (needed for {}); pass --data PATH, or --no-sparsity",
                data.display(),
                files::SPARSITY
            ));
        }
        let src = bae_train::store::open_source(&data)?;
        if src.dim() != d {
            return Err(format!(
                "{}: rows have {} values, the model expects d = {d}",
                src.describe(),
                src.dim()
            ));
        }
        let split = src.train_rows(run.config.val_split);
        let (rows, validation) = if split < src.n_rows() {
            (split..src.n_rows(), true)
        } else {
            (0..src.n_rows(), false)
        };
        if rows.is_empty() {
            return Err(format!("{}: holds no rows", src.describe()));
        }
        let s = density_pass(
            &run.params,
            &run.arch,
            src.as_ref(),
            rows.clone(),
            validation,
            run.config.eval_batch.max(1),
        )?;
        if opts.reference_rows > 0 {
            let n = opts.reference_rows;
            if n > rows.len() {
                return Err(format!(
                    "--with-reference {n}: {} has only {} {} rows",
                    src.describe(),
                    rows.len(),
                    if validation { "validation" } else { "" }
                ));
            }
            let idx = spread(&rows, n);
            let mut x = vec![0f32; n * d];
            src.gather(&idx, &mut x)?;
            let f = bae_ref::forward(&run.params, &x, n, &run.arch);
            reference = Some((idx, x, f));
        }
        stats = Some(s);
    }

    let notes = differences(&run.arch, dc, stats.as_ref());
    let marker = ExportMarker {
        format: ExportFormat::SaeLens.name().into(),
        bae_version: env!("CARGO_PKG_VERSION").into(),
        run: run.dir.display().to_string(),
        bae_arch: run.arch.name().into(),
        architecture: cfg.architecture.name().into(),
        density_rows: stats.as_ref().map_or(0, |s| s.rows),
        reference_rows: opts.reference_rows,
        notes,
    };

    // everything goes into a temporary sibling first
    if let Some(parent) = opts.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("{}: cannot create the folder: {e}", parent.display()))?;
    }
    remove_stale(&opts.out);
    let tmp_path = sibling(&opts.out, "tmp");
    let _ = std::fs::remove_dir_all(&tmp_path);
    std::fs::create_dir(&tmp_path).map_err(|e| {
        format!(
            "{}: cannot create a temporary folder: {e}",
            tmp_path.display()
        )
    })?;
    let tmp = TempDir(Some(tmp_path.clone()));

    let mut listed = Vec::new();
    bae_io::write_atomic(&tmp_path.join(files::CFG), cfg.to_json_string().as_bytes())
        .map_err(|e| e.to_string())?;
    listed.push(format!(
        "{} (architecture \"{}\")",
        files::CFG,
        cfg.architecture.name()
    ));
    let weights = saelens_weights(&run.params, &run.arch);
    let w = write_tensors(&tmp_path.join(files::WEIGHTS), &weights)?;
    listed.push(format!("{}: {w}", files::WEIGHTS));
    if let Some(s) = &stats {
        let sp = write_tensors(
            &tmp_path.join(files::SPARSITY),
            &[(names::SPARSITY, vec![dc], s.log10_density())],
        )?;
        listed.push(format!(
            "{}: {sp} = log10 density on {} {} rows (rows {}..{} of {}); {} features never fire there",
            files::SPARSITY,
            s.rows,
            if s.validation { "validation" } else { "(no validation split: all)" },
            s.row_range.start,
            s.row_range.end,
            data.display(),
            s.dead_saelens()
        ));
    }
    if let Some((idx, x, f)) = &reference {
        let n = idx.len();
        // shapes and names from the one layout definition, data in its order (x, z, act, x_hat)
        let shapes = bae_io::reference_tensors(n, d, dc);
        let datas: [&[f32]; 4] = [x, &f.z, &f.act, &f.x_hat];
        let refs: Vec<(&str, &[usize], &[f32])> = shapes
            .iter()
            .zip(datas)
            .map(|((name, shape), data)| (*name, shape.as_slice(), data))
            .collect();
        let mut meta = BTreeMap::new();
        meta.insert("format".to_string(), "pt".to_string());
        meta.insert(
            "rows".to_string(),
            idx.iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
        meta.insert("data".to_string(), data.display().to_string());
        meta.insert("bae_arch".to_string(), run.arch.name().to_string());
        bae_io::save_tensors(&tmp_path.join(files::REFERENCE), &refs, &meta)
            .map_err(|e| e.to_string())?;
        listed.push(format!(
            "{}: {n} validation rows with bae's own forward (x, hidden_pre, feature_acts, sae_out)",
            files::REFERENCE
        ));
    }
    bae_io::write_atomic(
        &tmp_path.join(files::MARKER),
        marker.to_json_string().as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    listed.push(format!("{} (provenance and these notes)", files::MARKER));

    // swap into place
    let out = &opts.out;
    let rename = |a: &Path, b: &Path| {
        std::fs::rename(a, b).map_err(|e| {
            format!(
                "{}: cannot move {} into place: {e}",
                b.display(),
                a.display()
            )
        })
    };
    match state {
        OutState::Absent => rename(&tmp_path, out)?,
        OutState::Empty => {
            std::fs::remove_dir(out)
                .map_err(|e| format!("{}: cannot replace the empty folder: {e}", out.display()))?;
            rename(&tmp_path, out)?;
        }
        OutState::Previous | OutState::Forced => {
            let old = sibling(out, "old");
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(out, &old).map_err(|e| {
                format!(
                    "{}: cannot move the previous content aside: {e}",
                    out.display()
                )
            })?;
            if let Err(e) = rename(&tmp_path, out) {
                let _ = std::fs::rename(&old, out);
                return Err(e);
            }
            let _ = std::fs::remove_dir_all(&old);
        }
    }
    let mut tmp = tmp;
    tmp.0 = None;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(dir) = std::fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }

    Ok(ExportReport {
        out: out.clone(),
        cfg,
        marker,
        files: listed,
        density: stats,
        replaced: match state {
            OutState::Absent => "new",
            OutState::Empty => "was an empty folder",
            OutState::Previous => "replaced a previous export",
            OutState::Forced => "replaced the folder's content (--force)",
        },
    })
}

/// A SAELens folder read back: its config and its weights, names and shapes checked against the
/// layout the config declares.
pub fn read_saelens(dir: &Path) -> Result<(SaeLensCfg, BTreeMap<String, Tensor>), String> {
    let cfg_path = dir.join(files::CFG);
    let text =
        std::fs::read_to_string(&cfg_path).map_err(|e| format!("{}: {e}", cfg_path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not valid JSON: {e}", cfg_path.display()))?;
    let cfg = SaeLensCfg::from_json(&v).map_err(|e| format!("{}: {e}", cfg_path.display()))?;
    let wpath = dir.join(files::WEIGHTS);
    let (map, _) = bae_io::load_tensors(&wpath).map_err(|e| e.to_string())?;
    let want = cfg.weight_tensors();
    for (name, shape) in &want {
        match map.get(*name) {
            Some(t) if &t.shape == shape => {}
            Some(t) => {
                return Err(format!(
                    "{}: {name} has shape {:?}, expected {shape:?}",
                    wpath.display(),
                    t.shape
                ));
            }
            None => return Err(format!("{}: missing tensor {name}", wpath.display())),
        }
    }
    if let Some(extra) = map.keys().find(|k| !want.iter().any(|(n, _)| n == k)) {
        return Err(format!(
            "{}: unexpected tensor {extra} (SAELens loads the weights strictly)",
            wpath.display()
        ));
    }
    Ok((cfg, map))
}
