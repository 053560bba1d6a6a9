//! The fuzzing loop: seeds and corpus in, mutate, write the input files, run the target under
//! `catch_unwind` with a hang watchdog and the allocation cap, classify, report.
//!
//! Guidance without coverage: an input whose outcome (the error messages, with numbers and
//! quoted text blanked) was never seen before joins the in-memory corpus, so mutations build on
//! inputs that reached new checks.

use crate::alloc::{self, AllocStats};
use crate::input::Input;
use crate::mutate::mutate;
use crate::rng::{Rng, fnv1a};
use crate::targets::{Target, Verdict};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::collections::HashSet;
use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once, OnceLock};
use std::time::{Duration, Instant};

/// Exit status of a run that found a panic or a contract violation.
pub const EXIT_CRASH: i32 = 1;
/// Exit status when an execution allocated more than the cap.
pub const EXIT_ALLOC: i32 = 3;
/// Exit status when an execution ran past the timeout.
pub const EXIT_HANG: i32 = 4;
/// Exit status when the worker process died (abort, stack overflow, signal).
pub const EXIT_ABORT: i32 = 5;

/// Inputs found by the outcome guidance kept in memory, per target.
const MAX_FOUND: usize = 512;
/// Distinct outcomes remembered per target (bounds the memory of long runs).
const MAX_CLASSES: usize = 200_000;

#[derive(Clone, Debug)]
pub struct Options {
    pub iters: u64,
    pub seed: u64,
    /// Folders of corpus files: `ROOT/<target>/` is used if it exists, else `ROOT` itself.
    pub corpus_roots: Vec<PathBuf>,
    /// Where to write inputs with new outcomes (in `DIR/<target>/`), if anywhere.
    pub corpus_out: Option<PathBuf>,
    pub crash_dir: PathBuf,
    /// Scratch folder; each target writes its input files in `work_dir/<target>/`.
    pub work_dir: PathBuf,
    pub timeout: Duration,
    /// Go on after a panic or contract violation (distinct crash sites are each saved once).
    pub keep_going: bool,
    pub max_time: Option<Duration>,
    /// Largest size of one input file after mutation.
    pub max_len: usize,
    /// Print a progress line every this often (None: never).
    pub progress: Option<Duration>,
    /// Treat the known issues of other crates (`targets::KNOWN`) as crashes too.
    pub strict: bool,
    /// A fixed allocation cap instead of [`alloc::limit_for`].
    pub alloc_limit: Option<usize>,
}

impl Options {
    pub fn new(work_dir: PathBuf, crash_dir: PathBuf) -> Self {
        Options {
            iters: 10_000,
            seed: 1,
            corpus_roots: Vec::new(),
            corpus_out: None,
            crash_dir,
            work_dir,
            timeout: Duration::from_secs(2),
            keep_going: false,
            max_time: None,
            max_len: 128 << 10,
            progress: None,
            strict: false,
            alloc_limit: None,
        }
    }
}

/// What a run of one target did.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub target: String,
    pub execs: u64,
    pub oks: u64,
    pub errs: u64,
    pub classes: usize,
    pub seeds: usize,
    pub found: usize,
    /// One line per distinct crash: kind, signature, saved path.
    pub crashes: Vec<String>,
    pub seconds: f64,
    pub largest_alloc: usize,
    pub peak_live: usize,
    pub slowest: Duration,
    /// Known issues of other crates hit (or left out to avoid them), by id.
    pub known: std::collections::BTreeMap<String, u64>,
}

impl Summary {
    pub fn rate(&self) -> f64 {
        self.execs as f64 / self.seconds.max(1e-9)
    }

    pub fn line(&self) -> String {
        format!(
            "{}: {} execs in {:.1} s ({:.0} exec/s); ok {}, err {}; {} outcome classes; corpus {} seeds + {} found; largest alloc {}, peak live {}, slowest exec {:.2} ms; crashes {}",
            self.target,
            self.execs,
            self.seconds,
            self.rate(),
            self.oks,
            self.errs,
            self.classes,
            self.seeds,
            self.found,
            human(self.largest_alloc),
            human(self.peak_live),
            self.slowest.as_secs_f64() * 1e3,
            self.crashes.len()
        ) + &self
            .known
            .iter()
            .map(|(k, n)| format!("; known issue {k}: {n}"))
            .collect::<String>()
    }
}

pub fn human(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

// ---------------------------------------------------------------------------------------------
// Process-wide state shared with the allocator and the watchdog.

/// The input being executed, for the reports written from the allocator or the watchdog.
struct Current {
    target: String,
    input: Input,
    exec: u64,
    crash_dir: PathBuf,
}

static CURRENT: Mutex<Option<Current>> = Mutex::new(None);
static EXEC_SEQ: AtomicU64 = AtomicU64::new(0);
/// Start of the running execution in ns since `base()` (+1), 0 when idle.
static EXEC_START: AtomicU64 = AtomicU64::new(0);
static TIMEOUT_NS: AtomicU64 = AtomicU64::new(2_000_000_000);
static IN_EXEC: AtomicBool = AtomicBool::new(false);
/// Set while a crash is being reported (symbolising a backtrace can take seconds in a debug
/// build): the watchdog must not call that a hang.
static REPORTING: AtomicBool = AtomicBool::new(false);
static PANIC: Mutex<Option<PanicRecord>> = Mutex::new(None);
/// The work folder, where the panic hook leaves `LAST_PANIC` for the supervisor.
static WORK_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

thread_local! {
    /// Set while this thread runs the panic hook (which captures a backtrace).
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

struct PanicRecord {
    message: String,
    location: String,
    backtrace: Backtrace,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    base().elapsed().as_nanos() as u64 + 1
}

/// Installs the panic hook (records panics inside executions, quietly) and the watchdog.
fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        base();
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_EXEC.load(Ordering::Relaxed) {
                default(info);
                return;
            }
            IN_HOOK.with(|h| h.set(true));
            REPORTING.store(true, Ordering::SeqCst);
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(non-string panic payload)".to_string());
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            let backtrace = Backtrace::force_capture();
            // A panic that cannot unwind (std's checks of unsafe preconditions, a panic while
            // panicking) aborts right after this hook: say what it was before the process dies.
            let note = format!("{message}\n  at {location}\n");
            if let Some(dir) = lock(&WORK_DIR).as_ref() {
                let _ = std::fs::write(dir.join("LAST_PANIC"), &note);
            }
            if message.contains("unsafe precondition") || message.contains("cannot unwind") {
                eprintln!(
                    "bae-fuzz: non-unwinding panic: {note}{}",
                    trim_backtrace(&backtrace.to_string())
                );
            }
            *lock(&PANIC) = Some(PanicRecord {
                message,
                location,
                backtrace,
            });
            IN_HOOK.with(|h| h.set(false));
            REPORTING.store(false, Ordering::SeqCst);
        }));
        std::thread::Builder::new()
            .name("bae-fuzz-watchdog".into())
            .spawn(watchdog)
            .expect("spawn the watchdog thread");
    });
}

fn watchdog() {
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let start = EXEC_START.load(Ordering::SeqCst);
        if start == 0 {
            continue;
        }
        let ran = now_ns().saturating_sub(start);
        if ran <= TIMEOUT_NS.load(Ordering::Relaxed) || REPORTING.load(Ordering::SeqCst) {
            continue;
        }
        let seq = EXEC_SEQ.load(Ordering::SeqCst);
        let cur = lock(&CURRENT);
        if EXEC_START.load(Ordering::SeqCst) != start
            || EXEC_SEQ.load(Ordering::SeqCst) != seq
            || REPORTING.load(Ordering::SeqCst)
        {
            continue; // it finished meanwhile
        }
        if let Some(c) = cur.as_ref() {
            report(
                c,
                "hang",
                &format!(
                    "one execution ran for more than {:.1} s (limit {:.1} s); it was still running when the watchdog stopped the process",
                    ran as f64 / 1e9,
                    TIMEOUT_NS.load(Ordering::Relaxed) as f64 / 1e9
                ),
                None,
            );
        }
        std::process::exit(EXIT_HANG);
    }
}

/// Called by the allocator (already disarmed) when an execution exceeds the cap; never returns.
pub(crate) fn alloc_violation(what: &str, bytes: usize, limit: usize) -> ! {
    REPORTING.store(true, Ordering::SeqCst);
    // Inside the panic hook std's backtrace lock may be held by this thread: no backtrace then.
    let bt = if IN_HOOK.with(Cell::get) {
        String::from("(no backtrace: the allocation was made while capturing one)")
    } else {
        Backtrace::force_capture().to_string()
    };
    let detail = format!(
        "{what} reached {bytes} bytes ({}), over the cap of {limit} bytes ({})",
        human(bytes),
        human(limit)
    );
    match CURRENT.try_lock() {
        Ok(cur) => match cur.as_ref() {
            Some(c) => {
                report(c, "alloc", &detail, Some(&bt));
            }
            None => eprintln!("bae-fuzz: {detail} outside an execution\n{bt}"),
        },
        Err(_) => eprintln!("bae-fuzz: {detail} (input not available)\n{bt}"),
    }
    std::process::exit(EXIT_ALLOC)
}

/// Saves the crashing input (plus a `.txt` report) and prints the report. Returns the path.
fn report(c: &Current, kind: &str, detail: &str, backtrace: Option<&str>) -> PathBuf {
    let _ = std::fs::create_dir_all(&c.crash_dir);
    let name = format!("{}-{kind}-{:016x}", c.target, c.input.hash());
    let base = c.crash_dir.join(&name);
    let saved = c
        .input
        .save(&base)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("(could not save to {}: {e})", base.display()));
    let bt = backtrace.map(trim_backtrace).unwrap_or_default();
    let text = format!(
        "=== CRASH ({kind}) in target {}, execution {}\n{detail}\n{bt}input:\n{}saved: {saved}\nreproduce: cargo run --release -p bae-fuzz -- repro {} {saved}\n",
        c.target,
        c.exec,
        c.input.dump(1024),
        c.target
    );
    let _ = std::fs::write(c.crash_dir.join(format!("{name}.txt")), &text);
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
    PathBuf::from(saved)
}

/// The first function of a backtrace outside the standard library and the harness (where a
/// panic in `core`, such as an overflowing `product`, was called from).
fn first_frame(bt: &str) -> String {
    for line in trim_backtrace(bt).lines() {
        let t = line.trim_start();
        let Some((n, f)) = t.split_once(": ") else {
            continue;
        };
        if n.parse::<u32>().is_err() {
            continue;
        }
        let f = f.trim_start_matches('<');
        let std = ["core::", "std::", "alloc::", "usize", "u64", "u32", "i64"]
            .iter()
            .any(|p| f.starts_with(p));
        if !std {
            return f.split_whitespace().next().unwrap_or("").to_string();
        }
    }
    String::from("?")
}

/// The frames of a backtrace that belong to the code under test (drops the panic machinery
/// and the harness), at most 30.
fn trim_backtrace(bt: &str) -> String {
    let mut out = String::from("backtrace:\n");
    let mut frames = 0;
    let mut skipping = false;
    for line in bt.lines() {
        let t = line.trim_start();
        let is_frame = t
            .split(':')
            .next()
            .is_some_and(|n| n.parse::<u32>().is_ok());
        if is_frame {
            skipping = [
                "std::panicking",
                "bae_fuzz::runner::install",
                "core::ops::function::Fn",
                "alloc::boxed::Box<dyn",
                "core::panicking",
                "std::backtrace",
                "std::sys::",
                "rust_begin_unwind",
                "__rustc::",
                "bae_fuzz::alloc",
                "bae_fuzz::runner::alloc_violation",
                "alloc::alloc::",
                "alloc::raw_vec::",
            ]
            .iter()
            .any(|s| t.contains(s));
            if !skipping {
                frames += 1;
            }
        }
        if frames > 30 {
            out.push_str("      ...\n");
            break;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
        if t.contains("bae_fuzz::runner::execute") {
            break;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------

/// Outcome of one execution.
pub enum Outcome {
    Verdict(Verdict),
    Panic {
        message: String,
        location: String,
        backtrace: String,
    },
}

/// Runs `target` once on `input` (written to `dir`), under the harness.
fn execute(
    target: &mut dyn Target,
    input: Input,
    dir: &Path,
    written: &mut Vec<String>,
    exec: u64,
    o: &Options,
) -> (Outcome, Input, AllocStats, Duration) {
    if let Err(e) = input.write_to(dir, written) {
        panic!("bae-fuzz: cannot write the input to {}: {e}", dir.display());
    }
    let crash_dir = &o.crash_dir;
    let limit = o
        .alloc_limit
        .unwrap_or_else(|| alloc::limit_for(input.total_len()));
    *lock(&CURRENT) = Some(Current {
        target: target.name().to_string(),
        input,
        exec,
        crash_dir: crash_dir.to_path_buf(),
    });
    EXEC_SEQ.fetch_add(1, Ordering::SeqCst);
    IN_EXEC.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    EXEC_START.store(now_ns(), Ordering::SeqCst);
    alloc::arm(limit);
    let r = catch_unwind(AssertUnwindSafe(|| target.exec(dir)));
    let stats = alloc::disarm();
    EXEC_START.store(0, Ordering::SeqCst);
    let took = t0.elapsed();
    IN_EXEC.store(false, Ordering::SeqCst);
    let input = lock(&CURRENT)
        .take()
        .map(|c| c.input)
        .expect("current input");
    let outcome = match r {
        Ok(v) => Outcome::Verdict(v),
        Err(_) => {
            let rec = lock(&PANIC).take();
            match rec {
                Some(p) => Outcome::Panic {
                    message: p.message,
                    location: p.location,
                    backtrace: p.backtrace.to_string(),
                },
                None => Outcome::Panic {
                    message: "(panic not recorded)".into(),
                    location: String::new(),
                    backtrace: String::new(),
                },
            }
        }
    };
    (outcome, input, stats, took)
}

/// The shape of a message, without what varies between inputs of the same outcome (the work
/// folder, numbers, names and values echoed from the file): its lower-case English words, and
/// `#` for a run of numbers, at most 40 words.
pub fn normalize(s: &str, work: &str) -> String {
    let mut s = if work.is_empty() {
        s.to_string()
    } else {
        s.replace(work, "/")
    };
    // paths (up to the ": " that ends them) hold file names taken from the input
    let mut from = 0;
    while let Some(i) = s[from..].find('/').map(|i| i + from) {
        match s[i..].find(": ") {
            Some(j) => {
                s.replace_range(i..i + j, "");
                from = i;
            }
            None => break,
        }
    }
    // quoted text (with backslash escapes, as `{:?}` writes it) is file content
    let mut unquoted = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if matches!(c, '"' | '\'' | '`') {
            let mut escaped = false;
            for d in chars.by_ref() {
                if escaped {
                    escaped = false;
                } else if d == '\\' {
                    escaped = true;
                } else if d == c {
                    break;
                }
            }
            unquoted.push_str(" Q ");
        } else {
            unquoted.push(c);
        }
    }
    let mut out: Vec<&str> = Vec::new();
    // Unquoted names from the file: a dtype runs until "(supported" or "needs"; a shard file
    // name (bae-train's messages) until "has" or "leaves".
    let mut skip_until: &[&str] = &[];
    for raw in unquoted.split(|c: char| c.is_whitespace() || c == ':' || c == ',') {
        if !skip_until.is_empty() {
            if raw.starts_with('(') || skip_until.contains(&raw) {
                skip_until = &[];
            } else {
                continue;
            }
        }
        let w = raw.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        if w.is_empty() {
            continue;
        }
        if w.bytes().all(|b| b.is_ascii_digit()) {
            if out.last() != Some(&"#") {
                out.push("#");
            }
        } else if w.len() <= 20
            && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"()[]{}.;_".contains(&b))
        {
            out.push(w);
        }
        skip_until = match w {
            "dtype" => &["needs"],
            "shard" => &["has", "leaves"],
            _ => &[],
        };
        if out.len() >= 40 {
            break;
        }
    }
    out.join(" ")
}

/// What identifies a contract violation: each violation's call and problem (the text before
/// its second `": "`, where the offending message starts), digit runs as `#`.
pub fn bug_signature(text: &str) -> String {
    let parts: Vec<String> = text
        .split(crate::targets::BUG_SEPARATOR)
        .map(|p| {
            let mut it = p.splitn(3, ": ");
            let head: Vec<&str> = [it.next(), it.next()].into_iter().flatten().collect();
            let mut out = String::new();
            let mut digits = false;
            for c in head.join(": ").chars() {
                if c.is_ascii_digit() {
                    if !digits {
                        out.push('#');
                    }
                    digits = true;
                } else {
                    out.push(c);
                    digits = false;
                }
            }
            out
        })
        .collect();
    parts.join(crate::targets::BUG_SEPARATOR)
}

/// Inputs from the corpus folders for `target`.
pub fn load_corpus(target: &dyn Target, roots: &[PathBuf]) -> Vec<Input> {
    let mut out = Vec::new();
    for root in roots {
        let dir = root.join(target.name());
        let dir = if dir.is_dir() { dir } else { root.clone() };
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            let hidden = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            let script = p
                .extension()
                .is_some_and(|e| e == "py" || e == "md" || e == "txt");
            if hidden || script {
                continue;
            }
            match Input::load(&p, target.main_file()) {
                Ok(i) if !i.parts.is_empty() => out.push(i),
                Ok(_) => {}
                Err(e) => eprintln!("bae-fuzz: skipping corpus entry {}: {e}", p.display()),
            }
        }
    }
    out
}

/// Fuzzes one target for `o.iters` mutated executions (after running every seed once).
pub fn run_target(target: &mut dyn Target, o: &Options) -> Summary {
    install();
    TIMEOUT_NS.store(o.timeout.as_nanos() as u64, Ordering::Relaxed);
    let name = target.name().to_string();
    let dir = o.work_dir.join(&name);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("bae-fuzz: cannot create {}: {e}", dir.display()));
    let _ = std::fs::write(o.work_dir.join("CURRENT"), &name);
    *lock(&WORK_DIR) = Some(o.work_dir.clone());
    let work_text = dir.display().to_string();
    let out_dir = o.corpus_out.as_ref().map(|d| d.join(&name));
    if let Some(d) = &out_dir {
        let _ = std::fs::create_dir_all(d);
    }

    let mut corpus = target.seeds();
    corpus.extend(load_corpus(target, &o.corpus_roots));
    let n_seeds = corpus.len();
    let mut queue: Vec<Input> = corpus.clone();
    let mut rng = Rng::new(o.seed ^ fnv1a(name.as_bytes()));
    let mut classes: HashSet<String> = HashSet::new();
    let mut signatures: HashSet<String> = HashSet::new();
    let mut s = Summary {
        target: name.clone(),
        seeds: n_seeds,
        ..Summary::default()
    };
    let mut written = Vec::new();
    // debugging aid: print every new outcome class
    let show_classes = std::env::var_os("BAE_FUZZ_SHOW_OUTCOMES").is_some();
    let t0 = Instant::now();
    let mut last_progress = Instant::now();
    let total = n_seeds as u64 + o.iters;
    let mut i = 0u64;
    while i < total {
        if i.is_multiple_of(256) && o.max_time.is_some_and(|m| t0.elapsed() >= m) {
            break;
        }
        let input = if i < n_seeds as u64 {
            std::mem::take(&mut queue[i as usize])
        } else {
            let mut x = corpus[rng.below(corpus.len())].clone();
            mutate(&mut rng, &mut x, &corpus, o.max_len);
            x
        };
        i += 1;
        let (outcome, input, stats, took) = execute(target, input, &dir, &mut written, i, o);
        s.execs += 1;
        s.largest_alloc = s.largest_alloc.max(stats.largest);
        s.peak_live = s.peak_live.max(stats.peak);
        s.slowest = s.slowest.max(took);
        let (class, crash) = match outcome {
            Outcome::Verdict(Verdict::Ok(t)) => {
                s.oks += 1;
                (t, None)
            }
            Outcome::Verdict(Verdict::Err(t)) => {
                s.errs += 1;
                (t, None)
            }
            Outcome::Verdict(Verdict::Bug(t)) => {
                let sig = bug_signature(&t.replace(&work_text, ""));
                (String::new(), Some(("bug", sig, t, None)))
            }
            Outcome::Panic {
                message,
                location,
                backtrace,
            } => {
                let detail = format!("{message}\n  at {location}");
                let sig = format!("{location} {} {message}", first_frame(&backtrace));
                (String::new(), Some(("panic", sig, detail, Some(backtrace))))
            }
        };
        if let Some((kind, sig, detail, bt)) = crash {
            let known = if o.strict {
                None
            } else {
                crate::targets::known_issue(&name, &sig)
            };
            if let Some(k) = known {
                let n = s.known.entry(k.id.to_string()).or_insert(0);
                *n += 1;
                if *n == 1 {
                    // keep one example input per known issue
                    let _ = std::fs::create_dir_all(&o.crash_dir);
                    let saved = input.save(&o.crash_dir.join(format!("{name}-known-{}", k.id)));
                    eprintln!(
                        "[{name}] known issue {} (not counted as a crash; --strict to stop on it): {}; example input {}",
                        k.id,
                        k.what,
                        saved.map(|p| p.display().to_string()).unwrap_or_default()
                    );
                }
                continue;
            }
            let sig = if kind == "panic" {
                // one report per panic site (messages often hold values)
                sig.split(' ').take(2).collect::<Vec<_>>().join(" ")
            } else {
                sig
            };
            if signatures.insert(format!("{kind} {sig}")) {
                let cur = Current {
                    target: name.clone(),
                    input,
                    exec: i,
                    crash_dir: o.crash_dir.clone(),
                };
                let path = report(&cur, kind, &detail, bt.as_deref());
                let first = detail.lines().next().unwrap_or("").to_string();
                s.crashes
                    .push(format!("{kind}: {first} (saved {})", path.display()));
                if !o.keep_going {
                    break;
                }
            }
            continue;
        }
        // Each call's outcome counts on its own (their combinations would flood the corpus).
        let mut new = false;
        for part in class.split(" | ") {
            let part = normalize(part, &work_text);
            if show_classes && !classes.contains(&part) {
                eprintln!("[{name}] new outcome: {part}");
            }
            if classes.len() < MAX_CLASSES {
                new |= classes.insert(part);
            }
        }
        if new && i > n_seeds as u64 && s.found < MAX_FOUND {
            if let Some(d) = &out_dir {
                let _ = input.save(&d.join(format!("{:016x}", input.hash())));
            }
            corpus.push(input);
            s.found += 1;
        }
        if let Some(every) = o.progress
            && last_progress.elapsed() >= every
        {
            last_progress = Instant::now();
            let secs = t0.elapsed().as_secs_f64();
            eprintln!(
                "[{name}] {} execs, {:.0} exec/s, corpus {}+{}, {} classes, crashes {}",
                s.execs,
                s.execs as f64 / secs,
                s.seeds,
                s.found,
                classes.len(),
                s.crashes.len()
            );
        }
    }
    s.classes = classes.len();
    s.seconds = t0.elapsed().as_secs_f64();
    s
}

/// Runs `target` once on a saved input and describes the result; `Err` if it crashed.
pub fn repro(target: &mut dyn Target, input: Input, o: &Options) -> Result<String, String> {
    install();
    TIMEOUT_NS.store(o.timeout.as_nanos() as u64, Ordering::Relaxed);
    let dir = o.work_dir.join(target.name());
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _ = std::fs::write(o.work_dir.join("CURRENT"), target.name());
    *lock(&WORK_DIR) = Some(o.work_dir.clone());
    let (outcome, _, stats, took) = execute(target, input, &dir, &mut Vec::new(), 1, o);
    let tail = format!(
        "({:.2} ms, largest alloc {}, peak live {})",
        took.as_secs_f64() * 1e3,
        human(stats.largest),
        human(stats.peak)
    );
    match outcome {
        Outcome::Verdict(Verdict::Ok(t)) => Ok(format!("ok {tail}\n{}", t.replace(" | ", "\n"))),
        Outcome::Verdict(Verdict::Err(t)) => {
            Ok(format!("refused {tail}\n{}", t.replace(" | ", "\n")))
        }
        Outcome::Verdict(Verdict::Bug(t)) => Err(format!("contract violation {tail}: {t}")),
        Outcome::Panic {
            message,
            location,
            backtrace,
        } => Err(format!(
            "panic {tail}: {message}\n  at {location}\n{}",
            trim_backtrace(&backtrace)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_blanks_numbers_quotes_and_paths() {
        assert_eq!(
            normalize(
                "/w/x.npy: shape 'abc' has 12 dims \"q\" 3 4 of dtype xy (F32)",
                "/w/"
            ),
            "shape has # dims # of dtype"
        );
        assert_eq!(
            normalize(
                "x: tensor \"a \\\" b\" has unsupported dtype ow ab (supported: F16)",
                ""
            ),
            "x tensor has unsupported dtype supported"
        );
        assert_eq!(
            bug_signature(
                "open: error message spans several lines: \"a\\nb: 12; x\" || gather row 7 differs"
            ),
            "open: error message spans several lines || gather row # differs"
        );
        assert!(normalize(&"9".repeat(10_000), "").len() <= 400);
    }

    #[test]
    fn backtrace_trim_keeps_user_frames() {
        let bt = "   0: std::backtrace::Backtrace::create\n   1: core::panicking::panic_fmt\n             at /rustc/x\n   2: candle_core::quantized::gguf_file::Content::read\n             at /src/gguf_file.rs:515:33\n   3: bae_fuzz::runner::execute\n   4: main\n";
        let t = trim_backtrace(bt);
        assert!(t.contains("Content::read") && t.contains("gguf_file.rs:515"));
        assert!(!t.contains("panic_fmt") && !t.contains("main"));
    }
}
