//! # bae-fuzz: the fuzz targets of the parsers of untrusted files, as plain functions
//!
//! The coverage-guided fuzzing itself is cargo-fuzz / libFuzzer (`fuzz/` at the workspace root,
//! `scripts/fuzz.sh`); this library holds what is ours: the targets ([`targets`]: each reads its
//! input files through the public API, exercises what a caller does with a success and checks the
//! contract: `Ok`, or an error whose message is one line), the seeds made in code ([`seeds`]),
//! and the structure-aware mutators ([`mutate`]: safetensors JSON headers, `.npy` dicts, JSON
//! files, GGUF metadata and tensor infos) that libFuzzer calls through `fuzz_mutator!`.
//! `cargo test -p bae-fuzz` replays every seed, corpus file and past crash input through the
//! same functions (`tests/replay.rs`), no libFuzzer needed.
//!
//! Targets ([`targets::TARGETS`]): `safetensors` and `npy` (`bae_io::ActivationFile`),
//! `tensors` (`bae_io::load_tensors*`), `store` (`bae_io::ShardStore` and
//! `bae_llm::Manifest`), `checkpoint` (`bae_train::checkpoint::load`, `bae_train::load_init`),
//! `gguf` (`bae_llm::Gguf`, `llama_config`, `Tokenizer::from_gguf`, tensor reads), `codes`
//! (`bae_io::CodeStore`, the codes of `bae encode`).
//!
//! A target that reads a folder (`store`, `codes`) takes its files in one buffer
//! ([`input::Input::to_bytes`]: `=== file NAME` lines before each file).

pub mod formats;
pub mod gguf;
pub mod input;
pub mod mutate;
pub mod rng;
pub mod seeds;
pub mod targets;

use input::Input;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use targets::{Target, Verdict};

/// A target with its own scratch folder (in `/dev/shm` where there is one): each execution
/// empties it, writes the input's files and runs the target on it.
pub struct Runner {
    target: Box<dyn Target>,
    dir: PathBuf,
}

impl Runner {
    /// `None` for an unknown target name.
    pub fn new(name: &str) -> Option<Runner> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let target = targets::make(name)?;
        let shm = Path::new("/dev/shm");
        let root = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = root.join(format!("bae-fuzz-{name}-{}-{k}", std::process::id()));
        Some(Runner { target, dir })
    }

    pub fn target(&self) -> &dyn Target {
        self.target.as_ref()
    }

    /// Runs the target on `input` (written to the scratch folder).
    pub fn exec(&mut self, input: &Input) -> Verdict {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            panic!("bae-fuzz: cannot create {}: {e}", self.dir.display());
        }
        let mut written = Vec::new();
        if let Err(e) = input.write_to(&self.dir, &mut written) {
            panic!("bae-fuzz: cannot write to {}: {e}", self.dir.display());
        }
        self.target.exec(&self.dir)
    }

    /// Runs the target on the one-buffer form of an input (what libFuzzer hands over).
    pub fn exec_bytes(&mut self, data: &[u8]) -> Verdict {
        let input = Input::from_bytes(data, self.target.main_file());
        self.exec(&input)
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

thread_local! {
    static RUNNERS: RefCell<Vec<(&'static str, Runner)>> = const { RefCell::new(Vec::new()) };
}

/// The body of every libFuzzer target: runs `target` on `data` and panics on a contract
/// violation (a one-line rule broken, an inconsistent result), so libFuzzer saves the input.
/// A panic inside the parsers propagates as it is.
pub fn fuzz_one(target: &'static str, data: &[u8]) {
    let verdict = RUNNERS.with(|r| {
        let mut r = r.borrow_mut();
        if !r.iter().any(|(n, _)| *n == target) {
            let runner = Runner::new(target).unwrap_or_else(|| panic!("no target {target}"));
            r.push((target, runner));
        }
        let (_, runner) = r
            .iter_mut()
            .find(|(n, _)| *n == target)
            .expect("just added");
        runner.exec_bytes(data)
    });
    if let Verdict::Bug(m) = verdict {
        panic!("contract violation in {target}: {m}");
    }
}

/// The structure-aware half of the libFuzzer mutator: parses `data` as `target`'s input, applies
/// 1 to 8 of this crate's mutations (header, dict, JSON and GGUF field edits with fix-ups,
/// boundary integers at known offsets; for `codes`, the index's sizes and checksums re-fitted to
/// mutated shards half the time) and returns the new buffer if it fits in `max_size`. `None`
/// tells the caller to use libFuzzer's own byte mutations instead.
pub fn structured_mutation(
    target: &str,
    data: &[u8],
    max_size: usize,
    seed: u32,
) -> Option<Vec<u8>> {
    let main = targets::make(target)?.main_file();
    let mut input = Input::from_bytes(data, main);
    let mut rng = rng::Rng::new(u64::from(seed));
    mutate::mutate(&mut rng, &mut input, &[], max_size);
    if target == "codes" && rng.one_in(2) {
        mutate::refit_code_index(&mut input);
    }
    let out = input.to_bytes(main);
    (out.len() <= max_size && out != data).then_some(out)
}

/// The whole body of a libFuzzer target of `fuzz/` (`bae_fuzz::libfuzzer_target!("npy");`): runs
/// [`fuzz_one`], and makes half of the mutations this crate's structure-aware ones
/// ([`structured_mutation`]), half libFuzzer's own. Expands in the target crate, which depends on
/// `libfuzzer-sys`.
#[macro_export]
macro_rules! libfuzzer_target {
    ($target:literal) => {
        ::libfuzzer_sys::fuzz_target!(|data: &[u8]| $crate::fuzz_one($target, data));

        ::libfuzzer_sys::fuzz_mutator!(|data: &mut [u8],
                                        size: usize,
                                        max_size: usize,
                                        seed: u32| {
            if seed & 1 == 0
                && let Some(m) =
                    $crate::structured_mutation($target, &data[..size], max_size, seed >> 1)
            {
                data[..m.len()].copy_from_slice(&m);
                return m.len();
            }
            ::libfuzzer_sys::fuzzer_mutate(data, size, max_size)
        });
    };
}
