//! `bae export --format saelens`: file layout (names, shapes, dtypes, cfg.json fields) read back with the
//! safetensors crate, SAELens's documented forward computed from the exported tensors against bae's own,
//! the measured notes, the reference rows, and the output-folder rules (atomic replace, refusal, --force).

mod common;
use bae_analysis::TrainedRun;
use bae_analysis::export::{ExportOptions, export_saelens, read_saelens};
use bae_io::{ExportMarker, SAELENS_LAYOUT_VERSION, SaeLensCfg, export_files, export_tensors};
use bae_ref::{Arch, Params};
use bae_train::{ArchKind, TrainConfig};
use common::Rng;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const D: usize = 6;
const DC: usize = 24;
const N: usize = 240;

fn rows(seed: u64) -> Vec<f32> {
    let mut r = Rng(seed);
    (0..N * D).map(|_| (2.0 * r.normal()) as f32).collect()
}

fn params(seed: u64, b_enc_shift: f32) -> Params<f32> {
    let mut r = Rng(seed);
    let mut p = Params::<f32>::init_linear(D, DC, || r.next());
    for b in &mut p.b_enc {
        *b += b_enc_shift;
    }
    p
}

/// An activation file and a run folder (config.json + model.safetensors) built by hand.
struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let data = root.join("acts.safetensors");
        bae_io::write_activations(&data, N, D, &rows(7), bae_io::DType::F32, &BTreeMap::new())
            .unwrap();
        Fixture {
            _tmp: tmp,
            root,
            data,
        }
    }

    /// An extract folder (one shard with doc ids, a full manifest) instead of a plain file.
    fn with_extract(mut self) -> Fixture {
        // 4 documents of 60 rows: the 25 % split (row 180) falls on a document boundary
        common::write_extract(&self.root, &rows(7), D, &[N], 60);
        self.data = self.root.join("extract");
        self
    }

    fn run(
        &self,
        name: &str,
        kind: ArchKind,
        p: &Params<f32>,
        edit: impl Fn(&mut TrainConfig),
    ) -> PathBuf {
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut cfg = TrainConfig {
            data: self.data.clone(),
            out: dir.clone(),
            arch: kind,
            expand: DC / D,
            val_split: 0.25,
            eval_batch: 64,
            k: 5,
            theta: 0.5,
            ..TrainConfig::default()
        };
        edit(&mut cfg);
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_string_pretty(&cfg).unwrap(),
        )
        .unwrap();
        bae_train::save_model(&dir.join("model.safetensors"), p, &BTreeMap::new()).unwrap();
        dir
    }
}

fn opts(out: &Path) -> ExportOptions {
    ExportOptions::new(out)
}

/// Tensors of a safetensors file: name -> (dtype, shape, f32 data), read with the safetensors crate.
fn read_st(path: &Path) -> BTreeMap<String, (Dtype, Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            assert_eq!(v.dtype(), Dtype::F32, "{name}");
            let data = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (name, (v.dtype(), v.shape().to_vec(), data))
        })
        .collect()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// SAELens 6's documented forward (sae_lens/saes/*.py) from an export folder's tensors, in f64:
/// z = (x - b_dec * apply_b_dec_to_input) W_enc + b_enc; standard relu(z); topk: relu of exactly the k
/// largest; jumprelu relu(z) * 1[z > threshold]; (bae.saelens's) binary 1[z > 0]; out = a W_dec + b_dec.
fn saelens_forward(dir: &Path, x: &[f32], n: usize) -> (Vec<f64>, Vec<f64>) {
    let cfg = read_json(&dir.join(export_files::CFG));
    let t = read_st(&dir.join(export_files::WEIGHTS));
    let (d, dc) = (
        cfg["d_in"].as_u64().unwrap() as usize,
        cfg["d_sae"].as_u64().unwrap() as usize,
    );
    let get = |name: &str| -> Vec<f64> { t[name].2.iter().map(|&v| v as f64).collect() };
    let (w_enc, b_enc, w_dec, b_dec) = (get("W_enc"), get("b_enc"), get("W_dec"), get("b_dec"));
    let shift = if cfg["apply_b_dec_to_input"].as_bool().unwrap() {
        1.0
    } else {
        0.0
    };
    let arch = cfg["architecture"].as_str().unwrap().to_string();
    let mut acts = vec![0.0; n * dc];
    let mut out = vec![0.0; n * d];
    for i in 0..n {
        let mut z = b_enc.clone();
        for a in 0..d {
            let xa = x[i * d + a] as f64 - shift * b_dec[a];
            for j in 0..dc {
                z[j] += xa * w_enc[a * dc + j];
            }
        }
        let row = &mut acts[i * dc..(i + 1) * dc];
        match arch.as_str() {
            "standard" => {
                for j in 0..dc {
                    row[j] = z[j].max(0.0);
                }
            }
            "jumprelu" => {
                let th = get("threshold");
                for j in 0..dc {
                    row[j] = if z[j] > th[j] { z[j].max(0.0) } else { 0.0 };
                }
            }
            "topk" => {
                let k = cfg["k"].as_u64().unwrap() as usize;
                let mut order: Vec<usize> = (0..dc).collect();
                order.sort_by(|&a, &b| z[b].partial_cmp(&z[a]).unwrap());
                for &j in &order[..k] {
                    row[j] = z[j].max(0.0);
                }
            }
            "binary" => {
                for j in 0..dc {
                    row[j] = if z[j] > 0.0 { 1.0 } else { 0.0 };
                }
            }
            other => panic!("unexpected architecture {other}"),
        }
        for a in 0..d {
            let mut v = b_dec[a];
            for j in 0..dc {
                v += row[j] * w_dec[j * d + a];
            }
            out[i * d + a] = v;
        }
    }
    (acts, out)
}

/// max |a - b| / max |b|
fn rel(a: &[f64], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
    let diff = a
        .iter()
        .zip(b)
        .fold(0f64, |m, (&u, &v)| m.max((u - v as f64).abs()));
    diff / scale.max(1e-30)
}

/// The validation rows of the fixture's data and bae's forward on them.
fn bae_validation(fx: &Fixture, run: &TrainedRun) -> (Vec<f32>, usize, bae_ref::Forward<f32>) {
    let src = bae_train::store::open_source(&fx.data).unwrap();
    let split = src.train_rows(run.config.val_split);
    let idx: Vec<usize> = (split..src.n_rows()).collect();
    let mut x = vec![0f32; idx.len() * D];
    src.gather(&idx, &mut x).unwrap();
    let f = bae_ref::forward(&run.params, &x, idx.len(), &run.arch);
    (x, idx.len(), f)
}

fn arches() -> Vec<(&'static str, ArchKind, &'static str)> {
    vec![
        ("bae", ArchKind::Bae, "binary"),
        ("relu", ArchKind::ReluL1, "standard"),
        ("topk", ArchKind::Topk, "topk"),
        ("jump", ArchKind::Jumprelu, "jumprelu"),
    ]
}

#[test]
fn every_arch_writes_the_saelens_layout() {
    let fx = Fixture::new();
    for (name, kind, sa) in arches() {
        let p = params(11, 0.3);
        let run_dir = fx.run(name, kind, &p, |_| {});
        let run = TrainedRun::open(&run_dir).unwrap();
        let out = fx.root.join(format!("out-{name}"));
        let report = export_saelens(&run, &opts(&out)).unwrap();
        assert!(
            report.lines()[0].contains(&format!("\"{sa}\"")),
            "{:?}",
            report.lines()
        );

        // cfg.json, field by field, as SAELens 6 reads it
        let cfg = read_json(&out.join("cfg.json"));
        assert_eq!(cfg["architecture"], sa);
        assert_eq!(cfg["d_in"], D);
        assert_eq!(cfg["d_sae"], DC);
        assert_eq!(cfg["dtype"], "float32");
        assert_eq!(cfg["device"], "cpu");
        assert_eq!(cfg["apply_b_dec_to_input"], false);
        assert_eq!(cfg["normalize_activations"], "none");
        assert_eq!(cfg["reshape_activations"], "none");
        assert_eq!(
            cfg["k"],
            if sa == "topk" {
                Value::from(5)
            } else {
                Value::Null
            }
        );
        let meta = &cfg["metadata"];
        assert_eq!(meta["sae_lens_version"], SAELENS_LAYOUT_VERSION);
        assert!(meta["sae_lens_version"].as_str().unwrap().starts_with("6."));
        for key in ["hook_name", "model_name", "context_size"] {
            // a plain activation file: no manifest, so unknown (null) but present
            assert!(meta.get(key).is_some_and(Value::is_null), "{key}: {meta}");
        }
        assert_eq!(meta["bae_arch"], run.arch.name());
        assert_eq!(
            SaeLensCfg::from_json(&cfg).unwrap(),
            report.cfg,
            "typed cfg round trip"
        );

        // sae_weights.safetensors: exactly the module's parameters (SAELens loads them strictly)
        let w = read_st(&out.join("sae_weights.safetensors"));
        let mut want: BTreeMap<String, Vec<usize>> = [
            ("W_enc", vec![D, DC]),
            ("b_enc", vec![DC]),
            ("W_dec", vec![DC, D]),
            ("b_dec", vec![D]),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
        if sa == "jumprelu" {
            want.insert("threshold".into(), vec![DC]);
        }
        let got: BTreeMap<String, Vec<usize>> = w
            .iter()
            .map(|(n, (_, s, _))| (n.clone(), s.clone()))
            .collect();
        assert_eq!(got, want, "{sa}");
        assert_eq!(w["W_enc"].2, p.w_enc);
        assert_eq!(w["b_enc"].2, p.b_enc);
        assert_eq!(w["W_dec"].2, p.w_dec);
        assert_eq!(w["b_dec"].2, p.b_dec);
        if sa == "jumprelu" {
            assert!(w["threshold"].2.iter().all(|&t| t == 0.5));
        }
        let (rcfg, rmap) = read_saelens(&out).unwrap();
        assert_eq!(rcfg, report.cfg);
        assert_eq!(rmap.len(), want.len());

        // sparsity.safetensors: log10(density + 1e-10) on the validation rows under SAELens's forward
        let s = read_st(&out.join("sparsity.safetensors"));
        assert_eq!(s.keys().collect::<Vec<_>>(), ["sparsity"]);
        assert_eq!(s["sparsity"].1, vec![DC]);
        let (_, n, f) = bae_validation(&fx, &run);
        assert_eq!(n, N / 4);
        for j in 0..DC {
            let fires = (0..n).filter(|&i| f.act[i * DC + j] > 0.0).count();
            let want = ((fires as f64 / n as f64) + 1e-10).log10() as f32;
            assert_eq!(s["sparsity"].2[j], want, "{sa} feature {j}");
        }

        // marker
        let m = ExportMarker::from_json(&read_json(&out.join("bae_export.json"))).unwrap();
        assert_eq!(m.format, "saelens");
        assert_eq!(m.architecture, sa);
        assert_eq!(m.density_rows, N / 4);
        assert_eq!(m.reference_rows, 0);
        assert!(!out.join("reference.safetensors").exists());
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "bae_export.json",
                "cfg.json",
                "sae_weights.safetensors",
                "sparsity.safetensors"
            ]
        );
    }
}

#[test]
fn saelens_forward_from_the_export_equals_bae_where_they_agree() {
    let fx = Fixture::new();
    for (name, kind, sa) in arches() {
        // b_enc shifted up: every row has more than k positive pre-activations, so TopK's ReLU is moot
        let run_dir = fx.run(name, kind, &params(5, 0.8), |_| {});
        let run = TrainedRun::open(&run_dir).unwrap();
        let out = fx.root.join(format!("out-{name}"));
        let report = export_saelens(&run, &opts(&out)).unwrap();
        let (x, n, f) = bae_validation(&fx, &run);
        let (acts, x_hat) = saelens_forward(&out, &x, n);
        let (ea, eo) = (rel(&acts, &f.act), rel(&x_hat, &f.x_hat));
        assert!(
            ea <= 1e-5 && eo <= 1e-5,
            "{sa}: features {ea:e}, reconstruction {eo:e}"
        );
        if sa == "binary" {
            // codes identical, not only close
            assert!(acts.iter().zip(&f.act).all(|(&a, &b)| a == b as f64));
        }
        let d = report.density.unwrap();
        assert_eq!(d.kept_negative, 0, "{sa}");
        if sa == "topk" {
            assert!(
                report.marker.notes[0].contains("0 of the"),
                "{:?}",
                report.marker.notes
            );
        }
    }
}

#[test]
fn topk_negative_values_are_where_saelens_differs_and_are_counted() {
    let fx = Fixture::new();
    // b_enc shifted down and k large: many of the kept values are negative
    let run_dir = fx.run("topk", ArchKind::Topk, &params(3, -1.5), |c| c.k = 12);
    let run = TrainedRun::open(&run_dir).unwrap();
    let out = fx.root.join("out");
    let report = export_saelens(&run, &opts(&out)).unwrap();
    let (x, n, f) = bae_validation(&fx, &run);
    let (acts, x_hat) = saelens_forward(&out, &x, n);
    let negatives = f.act.iter().filter(|&&a| a < 0.0).count();
    assert!(
        negatives > 50,
        "fixture should keep negative values: {negatives}"
    );
    // SAELens's activations are bae's with the negative kept values set to 0 (no ties in this data)
    let relu: Vec<f32> = f.act.iter().map(|&a| a.max(0.0)).collect();
    assert!(rel(&acts, &relu) <= 1e-5);
    assert!(
        rel(&x_hat, &f.x_hat) > 1e-3,
        "the reconstructions do differ"
    );
    let d = report.density.as_ref().unwrap();
    assert_eq!(d.kept_negative as usize, negatives);
    assert_eq!(d.kept as usize, n * 12);
    assert_eq!(d.rows_with_ties, 0);
    let note = &report.marker.notes[0];
    assert!(
        note.contains("ReLU")
            && note.contains(&format!("{negatives} of the {} kept values", n * 12)),
        "{note}"
    );
    assert!(report.lines().iter().any(|l| l.contains(note.as_str())));
}

#[test]
fn jumprelu_with_a_negative_theta_is_flagged() {
    let fx = Fixture::new();
    let run_dir = fx.run("jump", ArchKind::Jumprelu, &params(9, -0.5), |c| {
        c.theta = -0.25
    });
    let run = TrainedRun::open(&run_dir).unwrap();
    let out = fx.root.join("out");
    let report = export_saelens(&run, &opts(&out)).unwrap();
    let (x, n, f) = bae_validation(&fx, &run);
    let (acts, _) = saelens_forward(&out, &x, n);
    let relu: Vec<f32> = f.act.iter().map(|&a| a.max(0.0)).collect();
    assert!(rel(&acts, &relu) <= 1e-5);
    let negatives = f.act.iter().filter(|&&a| a < 0.0).count();
    assert!(negatives > 0);
    assert!(
        report.marker.notes[0].contains("θ = -0.25 < 0"),
        "{:?}",
        report.marker.notes
    );
    assert!(report.marker.notes[0].contains(&format!("{negatives} of the")));
    let t = read_st(&out.join("sae_weights.safetensors"));
    assert!(t["threshold"].2.iter().all(|&v| v == -0.25));
}

#[test]
fn extract_folder_gives_hook_model_and_context() {
    let fx = Fixture::new().with_extract();
    let run_dir = fx.run("relu", ArchKind::ReluL1, &params(1, 0.2), |_| {});
    let run = TrainedRun::open(&run_dir).unwrap();
    let out = fx.root.join("out");
    let report = export_saelens(&run, &opts(&out)).unwrap();
    let meta = &read_json(&out.join("cfg.json"))["metadata"];
    assert_eq!(meta["hook_name"], "blocks.3.hook_resid_post");
    assert_eq!(meta["model_name"], "HuggingFaceTB/SmolLM2-135M-Instruct");
    assert_eq!(meta["context_size"], 64);
    assert_eq!(meta["prepend_bos"], false);
    assert_eq!(meta["bae_block"], 3);
    assert_eq!(meta["bae_model_file"], "SmolLM2-135M-Instruct.Q4_1.gguf");
    // 25 % of 240 rows = row 180, the first row of document 3
    let d = report.density.unwrap();
    assert_eq!(d.row_range, 180..240);
    assert!(d.validation);

    // overrides
    let mut o = opts(&out);
    o.hook_name = Some("blocks.3.hook_resid_pre".into());
    o.model_name = Some("my/model".into());
    export_saelens(&run, &o).unwrap();
    let meta = &read_json(&out.join("cfg.json"))["metadata"];
    assert_eq!(meta["hook_name"], "blocks.3.hook_resid_pre");
    assert_eq!(meta["model_name"], "my/model");
}

#[test]
fn reference_rows_hold_bae_outputs() {
    let fx = Fixture::new();
    let run_dir = fx.run("bae", ArchKind::Bae, &params(2, 0.0), |_| {});
    let run = TrainedRun::open(&run_dir).unwrap();
    let out = fx.root.join("out");
    let mut o = opts(&out);
    o.reference_rows = 7;
    export_saelens(&run, &o).unwrap();
    let path = out.join(export_files::REFERENCE);
    let t = read_st(&path);
    assert_eq!(t[export_tensors::REF_X].1, vec![7, D]);
    assert_eq!(t[export_tensors::REF_HIDDEN_PRE].1, vec![7, DC]);
    assert_eq!(t[export_tensors::REF_FEATURE_ACTS].1, vec![7, DC]);
    assert_eq!(t[export_tensors::REF_SAE_OUT].1, vec![7, D]);
    let (_, meta) = bae_io::load_tensors(&path).unwrap();
    let idx: Vec<usize> = meta["rows"]
        .split(',')
        .map(|r| r.parse().unwrap())
        .collect();
    // spread over the validation rows 180..240
    assert_eq!(idx, [180, 188, 197, 205, 214, 222, 231]);
    let all = rows(7);
    let x: Vec<f32> = idx
        .iter()
        .flat_map(|&r| all[r * D..(r + 1) * D].to_vec())
        .collect();
    assert_eq!(t["x"].2, x);
    let f = bae_ref::forward(&run.params, &x, 7, &run.arch);
    assert_eq!(t["hidden_pre"].2, f.z);
    assert_eq!(t["feature_acts"].2, f.act);
    assert_eq!(t["sae_out"].2, f.x_hat);
    assert!(f.act.iter().all(|&v| v == 0.0 || v == 1.0));

    let mut o = opts(&fx.root.join("out2"));
    o.reference_rows = 61;
    let e = export_saelens(&run, &o).unwrap_err();
    assert!(
        e.contains("--with-reference 61") && e.contains("only 60"),
        "{e}"
    );
    assert!(!fx.root.join("out2").exists());
}

fn leftovers(parent: &Path) -> Vec<String> {
    std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".bae-export-"))
        .collect()
}

#[test]
fn output_folder_rules() {
    let fx = Fixture::new();
    let run_dir = fx.run("relu", ArchKind::ReluL1, &params(4, 0.1), |_| {});
    let run = TrainedRun::open(&run_dir).unwrap();

    // a previous export is replaced without --force, nothing left beside it
    let out = fx.root.join("exports").join("relu");
    let first = export_saelens(&run, &opts(&out)).unwrap();
    assert_eq!(first.replaced, "new");
    std::fs::write(out.join("stale.txt"), "from the old export").unwrap();
    let again = export_saelens(&run, &opts(&out)).unwrap();
    assert_eq!(again.replaced, "replaced a previous export");
    assert!(
        !out.join("stale.txt").exists(),
        "the old folder is gone, not merged"
    );
    assert!(leftovers(&fx.root.join("exports")).is_empty());

    // an empty folder is fine
    let empty = fx.root.join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_eq!(
        export_saelens(&run, &opts(&empty)).unwrap().replaced,
        "was an empty folder"
    );

    // a foreign non-empty folder is refused, untouched, unless --force
    let foreign = fx.root.join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let e = export_saelens(&run, &opts(&foreign)).unwrap_err();
    assert!(
        e.starts_with(&foreign.display().to_string()) && e.contains("--force") && !e.contains('\n'),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).unwrap(),
        "mine"
    );
    let mut o = opts(&foreign);
    o.force = true;
    export_saelens(&run, &o).unwrap();
    assert!(!foreign.join("notes.txt").exists());
    assert!(foreign.join("cfg.json").is_file());

    // an invalid marker does not make a folder an export
    let fake = fx.root.join("fake");
    std::fs::create_dir(&fake).unwrap();
    std::fs::write(fake.join("bae_export.json"), "{}").unwrap();
    assert!(
        export_saelens(&run, &opts(&fake))
            .unwrap_err()
            .contains("--force")
    );

    // a file, or a folder holding the run, are refused even with --force
    let file = fx.root.join("file");
    std::fs::write(&file, "x").unwrap();
    let e = export_saelens(&run, &opts(&file)).unwrap_err();
    assert!(e.contains("not a folder"), "{e}");
    let mut o = opts(&fx.root);
    o.force = true;
    let e = export_saelens(&run, &o).unwrap_err();
    assert!(e.contains("which the export reads"), "{e}");
    assert!(run_dir.join("model.safetensors").is_file());
    assert!(leftovers(&fx.root).is_empty());
}

#[test]
fn bad_input_is_one_line() {
    let fx = Fixture::new();
    let p = params(4, 0.1);

    // a run folder without a model
    let dir = fx.run("nomodel", ArchKind::ReluL1, &p, |_| {});
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let e = TrainedRun::open(&dir).unwrap_err();
    assert!(e.contains("model.safetensors") && !e.contains('\n'), "{e}");

    // the run's data moved away: named, with the ways out
    let dir = fx.run("nodata", ArchKind::ReluL1, &p, |c| {
        c.data = PathBuf::from("/nonexistent/acts.safetensors")
    });
    let run = TrainedRun::open(&dir).unwrap();
    let e = export_saelens(&run, &opts(&fx.root.join("o1"))).unwrap_err();
    assert!(
        e.starts_with("/nonexistent/acts.safetensors:")
            && e.contains("--data")
            && e.contains("--no-sparsity"),
        "{e}"
    );
    assert!(!fx.root.join("o1").exists());
    // ... --no-sparsity exports without it, --data points elsewhere
    let mut o = opts(&fx.root.join("o2"));
    o.no_sparsity = true;
    let r = export_saelens(&run, &o).unwrap();
    assert!(r.density.is_none());
    assert!(!fx.root.join("o2").join("sparsity.safetensors").exists());
    assert!(fx.root.join("o2").join("sae_weights.safetensors").exists());
    let mut o = opts(&fx.root.join("o3"));
    o.data = Some(fx.data.clone());
    assert!(export_saelens(&run, &o).unwrap().density.is_some());

    // data of another width
    let other = fx.root.join("wide.safetensors");
    bae_io::write_activations(
        &other,
        4,
        D + 1,
        &[0.5; 4 * (D + 1)],
        bae_io::DType::F32,
        &BTreeMap::new(),
    )
    .unwrap();
    let mut o = opts(&fx.root.join("o4"));
    o.data = Some(other);
    let e = export_saelens(&run, &o).unwrap_err();
    assert!(e.contains("wide.safetensors") && e.contains("d = 6"), "{e}");

    // reading back a damaged export names the file and the tensor
    let out = fx.root.join("o3");
    let w = out.join("sae_weights.safetensors");
    let t = vec![0f32; D * DC];
    bae_io::save_tensors(&w, &[("W_enc", &[D, DC][..], &t[..])], &BTreeMap::new()).unwrap();
    let e = read_saelens(&out).unwrap_err();
    assert!(
        e.contains("sae_weights.safetensors") && e.contains("missing tensor b_enc"),
        "{e}"
    );
    std::fs::write(out.join("cfg.json"), r#"{"architecture": "gated"}"#).unwrap();
    let e = read_saelens(&out).unwrap_err();
    assert!(e.contains("cfg.json") && e.contains("gated"), "{e}");
}

#[test]
fn arch_mapping_clamps_k() {
    use bae_analysis::export::saelens_architecture;
    use bae_io::SaeArchitecture;
    assert_eq!(
        saelens_architecture(&Arch::TopK { k: 100, l1: 0.0 }, 24),
        SaeArchitecture::TopK { k: 24 }
    );
    assert_eq!(
        bae_analysis::export::model_name_from_file("SmolLM2-360M.F16.gguf"),
        "HuggingFaceTB/SmolLM2-360M"
    );
    assert_eq!(
        bae_analysis::export::model_name_from_file("llama-3.2-1b.gguf"),
        "llama-3.2-1b"
    );
}
