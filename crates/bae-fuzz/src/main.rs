//! `bae-fuzz`: command line of the fuzzer. The process started by the user is a supervisor: it
//! runs the fuzzing in a child process (same arguments plus `--worker`) so that a crash that
//! kills the process (abort, stack overflow, a signal) still leaves its input saved.

use bae_fuzz::alloc::CapAlloc;
use bae_fuzz::input::Input;
use bae_fuzz::runner::{self, EXIT_ABORT, EXIT_CRASH, Options, Summary};
use bae_fuzz::targets::{self, SELF_TESTS, TARGETS};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: CapAlloc = CapAlloc;

const USAGE: &str = "\
usage: bae-fuzz TARGET [options]        fuzz TARGET (or all of them)
       bae-fuzz repro TARGET PATH       run TARGET once on a saved input (file or folder)
       bae-fuzz seeds TARGET DIR        write the in-code seeds of TARGET to DIR
       bae-fuzz list                    list the targets

TARGET: safetensors | npy | tensors | store | checkpoint | gguf | all

options:
  --iters N          mutated executions per target (default 100000); every seed also runs once
  --seed S           random seed (default 1); the same seed gives the same run
  --corpus DIR       seed folder root: DIR/<target>/ (or DIR itself); repeatable
                     (default: crates/bae-fuzz/corpus)
  --no-corpus        use only the seeds generated in code
  --corpus-out DIR   save inputs with new outcomes to DIR/<target>/
  --crash-dir DIR    where crashing inputs go (default: crates/bae-fuzz/crashes)
  --work-dir DIR     scratch folder (default: a new folder in /dev/shm or the temp folder)
  --timeout-ms MS    report a hang when one execution exceeds MS (default 2000)
  --max-time SECS    stop each target after SECS seconds
  --keep-going       continue after a panic or contract violation (each site saved once)
  --strict           also stop on the known issues of other crates (listed by `bae-fuzz list`)
  --max-len BYTES    largest input file after mutation (default 131072)
  --alloc-limit B    fixed allocation cap in bytes (default: the larger of 1 GiB and
                     64 x input size + 64 MiB), for single allocations and live bytes
  --quiet            no progress lines
  --no-fork          run in this process (a hard crash then loses its input)

exit status: 0 clean, 1 panic or contract violation, 2 usage, 3 allocation over the cap,
4 hang, 5 the worker died (abort, stack overflow, signal)";

struct Args {
    command: String,
    target: String,
    path: Option<PathBuf>,
    opts: Options,
    no_fork: bool,
    worker: bool,
    work_given: bool,
    raw: Vec<String>,
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn default_work_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let root = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    root.join(format!("bae-fuzz-{}", std::process::id()))
}

fn parse(raw: Vec<String>) -> Result<Args, String> {
    let mut it = raw.iter().cloned();
    let mut positional = Vec::new();
    let mut opts = Options::new(default_work_dir(), crate_dir().join("crashes"));
    opts.iters = 100_000;
    opts.progress = Some(Duration::from_secs(10));
    let mut corpus: Vec<PathBuf> = Vec::new();
    let mut no_corpus = false;
    let (mut no_fork, mut worker, mut work_given) = (false, false, false);
    fn num<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse()
            .map_err(|_| format!("{flag}: '{v}' is not a valid number"))
    }
    while let Some(a) = it.next() {
        match a.as_str() {
            "--iters" => opts.iters = num("--iters", it.next())?,
            "--seed" => opts.seed = num("--seed", it.next())?,
            "--corpus" => corpus.push(it.next().ok_or("--corpus needs a folder")?.into()),
            "--no-corpus" => no_corpus = true,
            "--corpus-out" => {
                opts.corpus_out = Some(it.next().ok_or("--corpus-out needs a folder")?.into())
            }
            "--crash-dir" => opts.crash_dir = it.next().ok_or("--crash-dir needs a folder")?.into(),
            "--work-dir" => {
                opts.work_dir = it.next().ok_or("--work-dir needs a folder")?.into();
                work_given = true;
            }
            "--timeout-ms" => opts.timeout = Duration::from_millis(num("--timeout-ms", it.next())?),
            "--max-time" => {
                opts.max_time = Some(Duration::from_secs_f64(num("--max-time", it.next())?))
            }
            "--max-len" => opts.max_len = num("--max-len", it.next())?,
            "--alloc-limit" => opts.alloc_limit = Some(num("--alloc-limit", it.next())?),
            "--keep-going" => opts.keep_going = true,
            "--strict" => opts.strict = true,
            "--quiet" => opts.progress = None,
            "--no-fork" => no_fork = true,
            "--worker" => worker = true,
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => positional.push(a),
        }
    }
    if !no_corpus {
        if corpus.is_empty() && crate_dir().join("corpus").is_dir() {
            corpus.push(crate_dir().join("corpus"));
        }
        opts.corpus_roots = corpus;
    }
    let mut pos = positional.into_iter();
    let command = pos.next().ok_or("missing TARGET")?;
    let (target, path) = match command.as_str() {
        "repro" | "seeds" => (
            pos.next().ok_or("missing TARGET")?,
            Some(PathBuf::from(pos.next().ok_or("missing PATH")?)),
        ),
        "list" => (String::new(), None),
        _ => (command.clone(), None),
    };
    if let Some(extra) = pos.next() {
        return Err(format!("unexpected argument '{extra}'"));
    }
    Ok(Args {
        command,
        target,
        path,
        opts,
        no_fork,
        worker,
        work_given,
        raw,
    })
}

fn target_names(t: &str) -> Result<Vec<&'static str>, String> {
    if t == "all" {
        return Ok(TARGETS.to_vec());
    }
    TARGETS
        .iter()
        .chain(SELF_TESTS)
        .find(|n| **n == t)
        .map(|n| vec![*n])
        .ok_or_else(|| {
            format!(
                "unknown target '{t}' (expected {} or all)",
                TARGETS.join(", ")
            )
        })
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(raw) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("bae-fuzz: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.command == "list" {
        for t in TARGETS {
            println!("{t}");
        }
        println!("\nknown issues of other crates (counted, not crashes, unless --strict):");
        for k in targets::KNOWN {
            println!("  {} [{}]: {}", k.id, k.target, k.what);
        }
        return ExitCode::SUCCESS;
    }
    if args.command == "seeds" {
        return write_seeds(&args);
    }
    if let Err(e) = target_names(&args.target) {
        eprintln!("bae-fuzz: {e}");
        return ExitCode::from(2);
    }
    if args.worker || args.no_fork {
        let code = worker(&args);
        if !args.worker && !args.work_given {
            // --no-fork with the default scratch folder: nobody else removes it
            let _ = std::fs::remove_dir_all(&args.opts.work_dir);
        }
        return code;
    }
    supervise(&args)
}

fn write_seeds(args: &Args) -> ExitCode {
    let dir = args.path.clone().unwrap_or_default();
    let Some(t) = targets::make(&args.target) else {
        eprintln!("bae-fuzz: unknown target '{}'", args.target);
        return ExitCode::from(2);
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("bae-fuzz: {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    for (i, s) in t.seeds().iter().enumerate() {
        match s.save(&dir.join(format!("seed-{i:02}"))) {
            Ok(p) => println!("{}", p.display()),
            Err(e) => {
                eprintln!("bae-fuzz: {e}");
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}

/// Runs the worker as a child process and saves the input of a crash that killed it.
fn supervise(args: &Args) -> ExitCode {
    let work = args.opts.work_dir.clone();
    if let Err(e) = std::fs::create_dir_all(&work) {
        eprintln!("bae-fuzz: cannot create {}: {e}", work.display());
        return ExitCode::from(2);
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("bae-fuzz: cannot find my own executable: {e}");
            return ExitCode::from(2);
        }
    };
    let mut cmd = Command::new(exe);
    cmd.args(&args.raw).arg("--worker");
    // With RUST_BACKTRACE set, every candle error captures and prints a backtrace: slow (ms per
    // error) and not what is being tested. The harness's own backtraces are forced anyway.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        cmd.env("RUST_LIB_BACKTRACE", "0");
    }
    if !args.work_given {
        cmd.arg("--work-dir").arg(&work);
    }
    let status = match cmd.status() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bae-fuzz: cannot start the worker: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match status.code() {
        Some(c) => c,
        None => {
            let signal = signal_of(&status);
            save_killed_input(args, &work, signal);
            EXIT_ABORT
        }
    };
    if !args.work_given {
        let _ = std::fs::remove_dir_all(&work);
    }
    ExitCode::from(code.clamp(0, 255) as u8)
}

#[cfg(unix)]
fn signal_of(status: &std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

#[cfg(not(unix))]
fn signal_of(_: &std::process::ExitStatus) -> Option<i32> {
    None
}

/// The worker died: its last input is still in the work folder of the target it was running.
fn save_killed_input(args: &Args, work: &Path, signal: Option<i32>) {
    let target = std::fs::read_to_string(work.join("CURRENT")).unwrap_or_default();
    let what = match signal {
        Some(6) => "SIGABRT (abort: stack overflow, failed allocation, or a fatal runtime error)"
            .to_string(),
        Some(9) => "SIGKILL (out of memory?)".to_string(),
        Some(11) => "SIGSEGV".to_string(),
        Some(s) => format!("signal {s}"),
        None => "an unknown cause".to_string(),
    };
    let dir = work.join(target.trim());
    let default_name = targets::make(target.trim()).map_or("input", |t| t.main_file());
    let input = match Input::load(&dir, default_name) {
        Ok(i) if !target.trim().is_empty() && !i.parts.is_empty() => i,
        _ => {
            eprintln!("bae-fuzz: the worker was killed by {what}; its last input was not found");
            return;
        }
    };
    let crash_dir = &args.opts.crash_dir;
    let _ = std::fs::create_dir_all(crash_dir);
    let name = format!("{}-abort-{:016x}", target.trim(), input.hash());
    let saved = input
        .save(&crash_dir.join(&name))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("(not saved: {e})"));
    // the last panic of the worker, if the abort followed one (a non-unwinding panic)
    let last_panic = std::fs::read_to_string(work.join("LAST_PANIC"))
        .map(|p| format!("last panic recorded before the abort (it may be unrelated): {p}"))
        .unwrap_or_default();
    let text = format!(
        "=== CRASH (abort) in target {}: the worker process was killed by {what} (its own message is above)\n{last_panic}input:\n{}saved: {saved}\nreproduce: cargo run --release -p bae-fuzz -- repro {} {saved}\n",
        target.trim(),
        input.dump(1024),
        target.trim()
    );
    let _ = std::fs::write(crash_dir.join(format!("{name}.txt")), &text);
    eprint!("{text}");
}

fn worker(args: &Args) -> ExitCode {
    let names = match target_names(&args.target) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("bae-fuzz: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&args.opts.work_dir) {
        eprintln!(
            "bae-fuzz: cannot create {}: {e}",
            args.opts.work_dir.display()
        );
        return ExitCode::from(2);
    }
    if args.command == "repro" {
        return repro(args, names[0]);
    }
    if !bae_fuzz::alloc::installed() {
        eprintln!("bae-fuzz: warning: the capped allocator is not installed");
    }
    let o = &args.opts;
    eprintln!(
        "bae-fuzz: {} target(s), {} mutated executions each, seed {}, timeout {} ms, corpus {:?}",
        names.len(),
        o.iters,
        o.seed,
        o.timeout.as_millis(),
        o.corpus_roots
    );
    let t0 = Instant::now();
    let mut summaries: Vec<Summary> = Vec::new();
    for name in names {
        let mut t = targets::make(name).expect("known target");
        let s = runner::run_target(t.as_mut(), o);
        println!("{}", s.line());
        summaries.push(s);
    }
    let execs: u64 = summaries.iter().map(|s| s.execs).sum();
    let crashes: Vec<&String> = summaries.iter().flat_map(|s| &s.crashes).collect();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "total: {execs} execs in {secs:.1} s ({:.0} exec/s); crashes {}",
        execs as f64 / secs.max(1e-9),
        crashes.len()
    );
    for c in &crashes {
        println!("  {c}");
    }
    if crashes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CRASH as u8)
    }
}

fn repro(args: &Args, name: &str) -> ExitCode {
    let mut t = targets::make(name).expect("known target");
    let path = args.path.clone().unwrap_or_default();
    let input = match Input::load(&path, t.main_file()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("bae-fuzz: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    match runner::repro(t.as_mut(), input, &args.opts) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(text) => {
            println!("{text}");
            ExitCode::from(EXIT_CRASH as u8)
        }
    }
}
