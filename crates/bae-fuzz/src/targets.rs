//! Fuzz targets: each writes nothing itself, reads the input files from a work folder through
//! the public API under test, exercises what a caller would do with a successful result, and
//! checks the contract: `Ok`, or an error whose message is one non-empty line.

use crate::input::Input;
use crate::seeds;
use bae_io::ActivationFile;
use std::fmt::Display;
use std::path::Path;

/// The result of one execution (a panic is caught by the runner, not reported here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The main parser accepted the input; the text summarises what was seen.
    Ok(String),
    /// The main parser refused the input; the text holds the error messages.
    Err(String),
    /// A contract violation that did not panic (multi-line error, inconsistent result).
    Bug(String),
}

/// One parser (or group of parsers) under test.
pub trait Target {
    fn name(&self) -> &'static str;
    /// The file name a plain corpus file is loaded as.
    fn main_file(&self) -> &'static str;
    /// Valid (and some odd) inputs made in code.
    fn seeds(&self) -> Vec<Input>;
    /// Runs the parsers on the input files in `dir`.
    fn exec(&mut self, dir: &Path) -> Verdict;
}

/// The targets `all` runs, in order.
pub const TARGETS: &[&str] = &[
    "safetensors",
    "npy",
    "tensors",
    "store",
    "checkpoint",
    "gguf",
    "codes",
];

pub fn make(name: &str) -> Option<Box<dyn Target>> {
    Some(match name {
        "safetensors" => Box::new(Activations {
            name: "safetensors",
            file: "input.safetensors",
        }),
        "npy" => Box::new(Activations {
            name: "npy",
            file: "input.npy",
        }),
        "tensors" => Box::new(Tensors),
        "store" => Box::new(Store),
        "checkpoint" => Box::new(Checkpoint {
            cfg: bae_train::TrainConfig::default(),
        }),
        "gguf" => Box::new(Gguf),
        "codes" => Box::new(Codes),
        _ => return None,
    })
}

/// Why `m` is not an acceptable one-line error message, if it is not.
pub fn not_one_line(m: &str) -> Option<&'static str> {
    if m.trim().is_empty() {
        Some("error message is empty")
    } else if m.contains('\n') {
        Some("error message spans several lines (contains \\n)")
    } else if m.contains(['\r', '\u{b}', '\u{c}', '\u{85}', '\u{2028}', '\u{2029}']) {
        Some(
            "error message contains a line-breaking control character (\\r, VT, FF, NEL, LS or PS)",
        )
    } else {
        None
    }
}

/// Separates the contract violations of one execution in [`Verdict::Bug`].
pub const BUG_SEPARATOR: &str = " || ";

/// Collects the outcomes of the calls of one execution.
#[derive(Default)]
struct Acc {
    summary: Vec<String>,
    failed: bool,
    bugs: Vec<String>,
}

impl Acc {
    fn ok(&mut self, what: &str) {
        self.summary.push(format!("{what}: ok"));
    }

    /// A refused input: the message must be one non-empty line.
    fn err(&mut self, what: &str, e: impl Display) {
        let m = e.to_string();
        if let Some(why) = not_one_line(&m) {
            self.bugs.push(format!("{what}: {why}: {m:?}"));
        }
        self.summary.push(format!("{what}: {m}"));
    }

    /// Records `r` under `what`; true if it was Ok.
    fn result<T, E: Display>(&mut self, what: &str, r: &Result<T, E>) -> bool {
        match r {
            Ok(_) => {
                self.ok(what);
                true
            }
            Err(e) => {
                self.err(what, e);
                false
            }
        }
    }

    /// `r` must be an error (a request the API documents as refused).
    fn must_fail<T, E: Display>(&mut self, what: &str, r: Result<T, E>) {
        match r {
            Ok(_) => self.bug(format!("{what}: accepted, should have failed")),
            Err(e) => {
                let m = e.to_string();
                if let Some(why) = not_one_line(&m) {
                    self.bug(format!("{what}: {why}: {m:?}"));
                }
            }
        }
    }

    fn bug(&mut self, msg: String) {
        self.bugs.push(msg);
    }

    fn finish(mut self, primary_ok: bool) -> Verdict {
        if !self.bugs.is_empty() {
            return Verdict::Bug(self.bugs.join(BUG_SEPARATOR));
        }
        if !primary_ok {
            self.failed = true;
        }
        let s = self.summary.join(" | ");
        if self.failed {
            Verdict::Err(s)
        } else {
            Verdict::Ok(s)
        }
    }
}

/// Same floats (NaN-aware).
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Opens an activation file and does what the trainer does with it.
fn exercise_activations(acc: &mut Acc, path: &Path) -> bool {
    let f = match ActivationFile::open(path) {
        Ok(f) => f,
        Err(e) => {
            acc.err("open", e);
            return false;
        }
    };
    let (n, d, dtype) = (f.n_rows(), f.dim(), f.dtype());
    let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bytes = n
        .checked_mul(d)
        .and_then(|x| x.checked_mul(dtype.size_bytes()));
    if n == 0 || d == 0 || bytes.is_none_or(|b| b as u64 > file_len) {
        acc.bug(format!(
            "open accepted a [{n}, {d}] {dtype} matrix in a {file_len}-byte file"
        ));
        return true;
    }
    acc.ok(&format!("open {:?} {dtype}", f.format()));
    let mut all = vec![0f32; n * d];
    let r_all = f.read_rows(0, n, &mut all);
    let r_scan = f.check_finite();
    acc.result("read_rows", &r_all);
    acc.result("check_finite", &r_scan);
    if r_all.is_ok() != r_scan.is_ok() {
        acc.bug(format!(
            "read_rows(0, n) is {} but check_finite is {}",
            if r_all.is_ok() { "Ok" } else { "Err" },
            if r_scan.is_ok() { "Ok" } else { "Err" }
        ));
    }
    let idx = [n - 1, 0, n / 2];
    let mut g = vec![0f32; 3 * d];
    let r_g = f.gather_rows(&idx, &mut g);
    acc.result("gather_rows", &r_g);
    if r_all.is_ok() && r_g.is_ok() {
        for (k, &row) in idx.iter().enumerate() {
            if !same_bits(&g[k * d..(k + 1) * d], &all[row * d..(row + 1) * d]) {
                acc.bug(format!("gather_rows row {row} differs from read_rows"));
            }
        }
    }
    acc.must_fail("read_rows past the end", f.read_rows(n, 1, &mut g[..d]));
    acc.must_fail(
        "read_rows with an overflowing range",
        f.read_rows(usize::MAX, 2, &mut g[..2 * d]),
    );
    acc.must_fail("gather_rows past the end", f.gather_rows(&[n], &mut g[..d]));
    acc.must_fail(
        "read_rows into a short buffer",
        f.read_rows(0, 1, &mut g[..d - 1]),
    );
    let _ = (f.metadata().len(), f.path(), f.format());
    true
}

/// `ActivationFile` on safetensors or .npy files (the format is sniffed, then taken from the
/// extension).
struct Activations {
    name: &'static str,
    file: &'static str,
}

impl Target for Activations {
    fn name(&self) -> &'static str {
        self.name
    }

    fn main_file(&self) -> &'static str {
        self.file
    }

    fn seeds(&self) -> Vec<Input> {
        let files = if self.name == "npy" {
            seeds::npy()
        } else {
            seeds::safetensors()
        };
        files
            .into_iter()
            .map(|b| Input::single(self.file, b))
            .collect()
    }

    fn exec(&mut self, dir: &Path) -> Verdict {
        let mut acc = Acc::default();
        let ok = exercise_activations(&mut acc, &dir.join(self.file));
        acc.finish(ok)
    }
}

/// The names `load_tensors_f64_only` is asked for (as the shard store does).
const ONLY: &[&str] = &["doc_ids", "token_ids", "positions", "W_enc"];

/// `load_tensors`, `load_tensors_f64`, `load_tensors_f64_only`, `take_tensor`.
struct Tensors;

fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

impl Target for Tensors {
    fn name(&self) -> &'static str {
        "tensors"
    }

    fn main_file(&self) -> &'static str {
        "model.safetensors"
    }

    fn seeds(&self) -> Vec<Input> {
        seeds::tensors()
            .into_iter()
            .map(|b| Input::single("model.safetensors", b))
            .collect()
    }

    fn exec(&mut self, dir: &Path) -> Verdict {
        let path = dir.join("model.safetensors");
        let mut acc = Acc::default();
        let r32 = bae_io::load_tensors(&path);
        let ok32 = acc.result("load_tensors", &r32);
        if let Ok((mut map, _meta)) = r32 {
            for (name, t) in &map {
                if numel(&t.shape) != Some(t.data.len()) {
                    acc.bug(format!(
                        "load_tensors: tensor {name:?} has shape {:?} but {} values",
                        t.shape,
                        t.data.len()
                    ));
                }
            }
            if let Some((name, shape)) =
                map.iter().next().map(|(k, t)| (k.clone(), t.shape.clone()))
            {
                let mut wrong = shape.clone();
                wrong.push(7);
                let before = map.len();
                acc.must_fail(
                    "take_tensor with a wrong shape",
                    bae_io::take_tensor(&mut map, &path, &name, &wrong),
                );
                if map.len() != before {
                    acc.bug("take_tensor with a wrong shape removed the tensor".into());
                }
                let r = bae_io::take_tensor(&mut map, &path, &name, &shape);
                if r.is_err() {
                    acc.bug(format!(
                        "take_tensor({name:?}, {shape:?}) failed on its own shape"
                    ));
                }
                acc.must_fail(
                    "take_tensor of a taken tensor",
                    bae_io::take_tensor(&mut map, &path, &name, &shape),
                );
            }
        }
        let r64 = bae_io::load_tensors_f64(&path);
        let ok64 = acc.result("load_tensors_f64", &r64);
        if let Ok((map, _)) = &r64 {
            for (name, t) in map {
                if numel(&t.shape) != Some(t.data.len()) {
                    acc.bug(format!(
                        "load_tensors_f64: tensor {name:?} has shape {:?} but {} values",
                        t.shape,
                        t.data.len()
                    ));
                }
            }
        }
        let only = bae_io::load_tensors_f64_only(&path, ONLY);
        acc.result("load_tensors_f64_only", &only);
        if let Ok((map, _)) = &only {
            for (name, t) in map {
                if !ONLY.contains(&name.as_str()) {
                    acc.bug(format!(
                        "load_tensors_f64_only returned unrequested {name:?}"
                    ));
                }
                if numel(&t.shape) != Some(t.data.len()) {
                    acc.bug(format!(
                        "load_tensors_f64_only: tensor {name:?} has shape {:?} but {} values",
                        t.shape,
                        t.data.len()
                    ));
                }
            }
            if let Ok((all, _)) = &r64 {
                for (name, t) in map {
                    if all.get(name).is_some_and(|u| !same_f64(&u.data, &t.data)) {
                        acc.bug(format!(
                            "load_tensors_f64_only and load_tensors_f64 disagree on {name:?}"
                        ));
                    }
                }
            }
        }
        acc.finish(ok32 || ok64)
    }
}

fn same_f64(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// `ShardStore::open` on an extract folder (manifest + shards), then what training does with
/// it; and `bae_llm::Manifest::read` on the same manifest.
struct Store;

impl Target for Store {
    fn name(&self) -> &'static str {
        "store"
    }

    fn main_file(&self) -> &'static str {
        "manifest.json"
    }

    fn seeds(&self) -> Vec<Input> {
        seeds::store()
    }

    fn exec(&mut self, dir: &Path) -> Verdict {
        use bae_train::RowSource;
        let mut acc = Acc::default();
        let opened = bae_io::ShardStore::open(dir);
        let ok = acc.result("ShardStore::open", &opened);
        if let Ok(s) = opened {
            let (n, d) = (s.n_rows(), s.dim());
            if n == 0 || d == 0 {
                acc.bug(format!(
                    "ShardStore::open accepted {n} rows of dimension {d}"
                ));
            } else {
                let mut out = vec![0f32; 2 * d];
                let r = s.gather(&[0, n - 1], &mut out);
                acc.result("gather", &r);
                acc.must_fail("gather past the end", s.gather(&[n], &mut out[..d]));
                let _ = (
                    s.doc_of(0),
                    s.doc_of(n - 1),
                    s.token_of(n / 2),
                    s.describe(),
                );
                let t = s.train_rows(0.2);
                if t > n {
                    acc.bug(format!("train_rows(0.2) = {t} > {n} rows"));
                }
                if s.train_rows(0.0) != n {
                    acc.bug(format!(
                        "train_rows(0.0) = {} != {n} rows",
                        s.train_rows(0.0)
                    ));
                }
            }
        }
        let m = bae_llm::Manifest::read(dir);
        acc.result("Manifest::read", &m);
        acc.finish(ok)
    }
}

/// `bae_train::checkpoint::load` and `bae_train::load_init` on one safetensors file.
struct Checkpoint {
    cfg: bae_train::TrainConfig,
}

impl Target for Checkpoint {
    fn name(&self) -> &'static str {
        "checkpoint"
    }

    fn main_file(&self) -> &'static str {
        bae_train::checkpoint::FILE
    }

    fn seeds(&self) -> Vec<Input> {
        seeds::checkpoint()
            .into_iter()
            .map(|b| Input::single(bae_train::checkpoint::FILE, b))
            .collect()
    }

    fn exec(&mut self, dir: &Path) -> Verdict {
        let (d, dc) = (seeds::CKPT_D, seeds::CKPT_D_CODE);
        let mut acc = Acc::default();
        let r = bae_train::checkpoint::load(dir, &self.cfg, d, dc);
        let ok = acc.result("checkpoint::load", &r);
        if let Ok(st) = &r {
            if st.params.w_enc.len() != d * dc || st.adam.v.b_dec.len() != d {
                acc.bug("checkpoint::load returned tensors of the wrong size".into());
            }
            if st.params.first_non_finite().is_some() || st.adam.v.first_non_finite().is_some() {
                acc.bug("checkpoint::load returned non-finite values".into());
            }
        }
        let init = bae_train::load_init(&bae_train::checkpoint::path(dir), d, dc);
        let ok_init = acc.result("load_init", &init);
        if let Ok(p) = &init
            && (p.w_dec.len() != d * dc || p.first_non_finite().is_some())
        {
            acc.bug("load_init returned wrong sizes or non-finite values".into());
        }
        acc.finish(ok || ok_init)
    }
}

/// `bae_llm::Gguf::open`, `.llama_config()`, `Tokenizer::from_gguf` (then encode/decode), and
/// the metadata and tensor readers a model load uses.
struct Gguf;

const TEXT: &str = "Hello the world, 2024!\n\n  théâtre ½ x\t'll \u{1F389} the";

impl Target for Gguf {
    fn name(&self) -> &'static str {
        "gguf"
    }

    fn main_file(&self) -> &'static str {
        "model.gguf"
    }

    fn seeds(&self) -> Vec<Input> {
        seeds::gguf()
            .into_iter()
            .map(|b| Input::single("model.gguf", b))
            .collect()
    }

    fn exec(&mut self, dir: &Path) -> Verdict {
        let mut acc = Acc::default();
        let mut g = match bae_llm::Gguf::open(&dir.join("model.gguf")) {
            Ok(g) => g,
            Err(e) => {
                acc.err("Gguf::open", e);
                return acc.finish(false);
            }
        };
        acc.ok("Gguf::open");
        let cfg = g.llama_config();
        acc.result("llama_config", &cfg);
        let tok = bae_llm::Tokenizer::from_gguf(&g);
        acc.result("Tokenizer::from_gguf", &tok);
        if let Ok(t) = &tok {
            let ids = t.encode(TEXT);
            if let Some(bad) = ids.iter().find(|&&i| i as usize >= t.vocab_size()) {
                acc.bug(format!(
                    "encode produced id {bad} >= vocab size {}",
                    t.vocab_size()
                ));
            }
            let _ = t.decode(&ids);
            let _ = t.decode(&[u32::MAX, 0, 1]);
            let _ = (t.token_str(0), t.token_id("a"), t.bos_id, t.eos_id);
        }
        let _ = (
            g.meta_str("general.name").map(str::len),
            g.meta_usize("llama.block_count"),
            g.meta_f32("llama.attention.layer_norm_rms_epsilon"),
            g.meta_str_array("tokenizer.ggml.merges").map(|v| v.len()),
            g.has_tensor("token_embd.weight"),
        );
        let mut shapes: Vec<(&str, Vec<usize>)> = vec![
            ("blk.0.ffn_up.weight", vec![32]),
            ("blk.0.attn_q.weight", vec![32]),
            ("blk.0.ffn_down.weight", vec![256]),
            ("blk.0.attn_norm.weight", vec![8]),
        ];
        if let Ok(c) = &cfg {
            shapes.push(("token_embd.weight", vec![c.vocab_size, c.d_model]));
            shapes.push(("output_norm.weight", vec![c.d_model]));
        }
        for (name, shape) in shapes {
            let r = g.tensor_f32(name, &shape);
            acc.result(name, &r);
        }
        acc.finish(true)
    }
}

/// `bae_io::CodeStore` (the codes of `bae encode`): `codes.json` + `codes-NNNNN.safetensors`,
/// then every reader a study uses, and the writer's resume check on the same folder.
struct Codes;

impl Target for Codes {
    fn name(&self) -> &'static str {
        "codes"
    }

    fn main_file(&self) -> &'static str {
        bae_io::code_store::CODES_INDEX
    }

    fn seeds(&self) -> Vec<Input> {
        seeds::codes()
    }

    fn exec(&mut self, dir: &Path) -> Verdict {
        let mut acc = Acc::default();
        let opened = bae_io::CodeStore::open(dir);
        let ok = acc.result("CodeStore::open", &opened);
        if let Ok(s) = &opened {
            let (n, wpr) = (s.n_rows(), s.words_per_row());
            if s.n_bits() == 0 || wpr != s.n_bits().div_ceil(64) {
                acc.bug(format!(
                    "CodeStore::open accepted {} bits in {wpr} words a row",
                    s.n_bits()
                ));
            }
            let listed: usize = s.shards().iter().map(|x| x.rows).sum();
            if listed != n {
                acc.bug(format!("n_rows {n} but the shards list {listed} rows"));
            }
            let all = s.rows(0..n);
            acc.result("rows", &all);
            if let Ok(w) = &all {
                if Some(w.len()) != n.checked_mul(wpr) {
                    acc.bug(format!("rows(0..{n}) gave {} words, {wpr} a row", w.len()));
                }
                let pad = s.n_bits() % 64;
                if pad != 0
                    && w.chunks(wpr.max(1))
                        .any(|r| r.last().is_some_and(|x| x >> pad != 0))
                {
                    acc.bug("rows returned set padding bits".into());
                }
                if n > 0
                    && let Ok(last) = s.rows(n - 1..n)
                    && last[..] != w[(n - 1) * wpr..]
                {
                    acc.bug("rows(n-1..n) differs from the end of rows(0..n)".into());
                }
            }
            let ids = s.ids(0..n);
            acc.result("ids", &ids);
            if let Ok(i) = &ids
                && (i.token_ids.len() != n || i.doc_ids.len() != n || i.positions.len() != n)
            {
                acc.bug(format!("ids(0..{n}) gave columns of other lengths"));
            }
            for k in 0..s.shards().len().min(4) {
                let r = s.shard(k);
                acc.result("shard", &r);
            }
            acc.must_fail("shard past the end", s.shard(s.shards().len()));
            acc.must_fail("rows past the end", s.rows(n..n.saturating_add(1)));
            #[allow(clippy::reversed_empty_ranges)]
            let backwards = 1..0;
            acc.must_fail("rows backwards", s.ids(backwards));
            let _ = (s.is_complete(), s.dir());
            let w = bae_io::CodeStoreWriter::open(dir, s.n_bits(), s.settings().clone());
            acc.result("CodeStoreWriter::open (resume)", &w);
            if let Ok(w) = &w
                && (w.n_rows() != n || w.n_bits() != s.n_bits())
            {
                acc.bug("the writer resumes at another row count or width".into());
            }
        }
        acc.finish(ok)
    }
}
