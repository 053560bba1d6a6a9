//! Every kernel of `kernels/*.cu` under the host emulator (`emu/`: each CUDA thread a fiber;
//! warp intrinsics, ldmatrix, mma and asynchronous cp.async from their PTX definitions; shared
//! memory poisoned at every block start) against straightforward references, d' = 8192 included;
//! the same kernels (small shapes) race-free under ThreadSanitizer; and planted-bug kernels
//! (`emu/planted.cpp`) that the emulator must catch.
//! Needs a C++20 compiler (`$CXX`, default `g++`) and, for the TSan checks, `-fsanitize=thread`.
//! Without them the tests print SKIP; with `REQUIRE_CXX=1` they fail instead.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

struct Emu {
    dir: PathBuf,
    /// Ok(prefix to start a TSan binary with: empty, or `setarch <arch> -R` where TSan needs
    /// ASLR off), or why TSan is unusable
    tsan: Result<Vec<String>, String>,
    _lock: File,
}

enum NoEmu {
    Skip(String),
    Fail(String),
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `exe`, started through `prefix` (e.g. `setarch x86_64 -R`) when that is not empty
fn command(prefix: &[String], exe: &Path) -> Command {
    match prefix.split_first() {
        Some((p, rest)) => {
            let mut c = Command::new(p);
            c.args(rest).arg(exe);
            c
        }
        None => Command::new(exe),
    }
}

fn run(prefix: &[String], exe: &Path, args: &[&str]) -> (bool, String) {
    let out = command(prefix, exe)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()));
    (out.status.success(), text(&out))
}

fn tsan_prefix(cxx: &str, dir: &Path) -> Result<Vec<String>, String> {
    let src = dir.join("tsan_probe.cpp");
    let exe = dir.join("tsan_probe");
    std::fs::write(
        &src,
        "#include <thread>\nint x;\nint main() { std::thread t([] { x = 1; }); t.join(); return x - 1; }\n",
    )
    .expect("write TSan probe");
    let out = Command::new(cxx)
        .args(["-std=c++20", "-fsanitize=thread", "-pthread"])
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("-fsanitize=thread does not build:\n{}", text(&out)));
    }
    let mut why = String::new();
    let no_aslr = ["setarch", std::env::consts::ARCH, "-R"].map(String::from);
    for prefix in [Vec::new(), no_aslr.to_vec()] {
        match command(&prefix, &exe).output() {
            Ok(out) if out.status.success() => return Ok(prefix),
            Ok(out) => why += &text(&out),
            Err(e) => why += &format!("{e}\n"),
        }
    }
    Err(format!("ThreadSanitizer binaries do not run:\n{why}"))
}

fn build() -> Result<Emu, NoEmu> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
    if Command::new(&cxx).arg("--version").output().is_err() {
        return Err(NoEmu::Skip(format!("no C++ compiler ({cxx})")));
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    // the target dir is shared: one emulator build at a time (held until this process exits)
    let lock = File::create(tmp.join("bae-gpu-emu.lock")).expect("create emu lock file");
    lock.lock().expect("lock emu build dir");
    let dir = tmp.join("bae-gpu-emu");
    std::fs::create_dir_all(&dir).expect("create emu build dir");
    let tsan = tsan_prefix(&cxx, &dir);
    let emu = Path::new(env!("CARGO_MANIFEST_DIR")).join("emu");
    let mut cmd = Command::new("bash");
    cmd.arg(emu.join("run.sh")).arg("--build-only");
    if tsan.is_ok() {
        cmd.arg("--tsan");
    }
    let out = cmd
        .arg(&dir)
        .env("CXX", &cxx)
        .output()
        .expect("run emu/run.sh");
    if !out.status.success() {
        return Err(NoEmu::Fail(format!(
            "building the emulated kernels failed:\n{}",
            text(&out)
        )));
    }
    Ok(Emu {
        dir,
        tsan,
        _lock: lock,
    })
}

fn required() -> bool {
    std::env::var("REQUIRE_CXX").is_ok_and(|v| v == "1")
}

/// The built emulator (built once per test process), or None after printing SKIP.
fn emu_or_skip(test: &str) -> Option<&'static Emu> {
    static EMU: OnceLock<Result<Emu, NoEmu>> = OnceLock::new();
    match EMU.get_or_init(build) {
        Ok(emu) => Some(emu),
        Err(NoEmu::Fail(why)) => panic!("{test}: {why}"),
        Err(NoEmu::Skip(why)) => {
            assert!(!required(), "{test}: REQUIRE_CXX=1 but {why}");
            println!("SKIP: {test}: {why}");
            None
        }
    }
}

fn tsan_or_skip(test: &str) -> Option<(&'static Emu, &'static [String])> {
    let emu = emu_or_skip(test)?;
    match &emu.tsan {
        Ok(prefix) => Some((emu, prefix)),
        Err(why) => {
            assert!(!required(), "{test}: REQUIRE_CXX=1 but {why}");
            println!("SKIP: {test}: {why}");
            None
        }
    }
}

#[test]
fn kernels_under_host_emulation() {
    let Some(emu) = emu_or_skip("kernels_under_host_emulation") else {
        return;
    };
    let (ok, out) = run(&[], &emu.dir.join("harness"), &[]);
    println!("{out}");
    assert!(
        ok && out.contains("all ok"),
        "emulated kernels failed:\n{out}"
    );
}

#[test]
fn kernels_race_free_under_tsan() {
    let Some((emu, tsan)) = tsan_or_skip("kernels_race_free_under_tsan") else {
        return;
    };
    let (ok, out) = run(tsan, &emu.dir.join("tsan/harness"), &["quick"]);
    println!("{out}");
    assert!(
        ok && out.contains("all ok") && !out.contains("ThreadSanitizer"),
        "emulated kernels under ThreadSanitizer failed:\n{out}"
    );
}

/// A shared-memory read with no __syncthreads after the other thread's write, and the same in a
/// warp with a __ballot_sync (no memory ordering) in place of __syncwarp: TSan must report both;
/// the fixed kernels must be clean (TSan understands the emulated barriers).
#[test]
fn planted_races_reported_by_tsan() {
    let Some((emu, tsan)) = tsan_or_skip("planted_races_reported_by_tsan") else {
        return;
    };
    let planted = emu.dir.join("tsan/planted");
    for case in ["race", "warprace"] {
        let (ok, out) = run(tsan, &planted, &[case, "bug"]);
        println!("planted {case} bug:\n{out}");
        assert!(
            !ok && out.contains("ThreadSanitizer: data race")
                && out.contains(&format!("planted_{case}")),
            "TSan did not report the planted {case}:\n{out}"
        );
        let (ok, out) = run(tsan, &planted, &[case, "fixed"]);
        assert!(
            ok && !out.contains("ThreadSanitizer"),
            "the fixed {case} kernel is not clean under TSan:\n{out}"
        );
    }
}

/// cp.async read before its wait_group (none at all; one group too few), and a block reading
/// shared memory only block 0 wrote: each must fail its check; the fixed kernels must pass.
#[test]
fn planted_cp_async_and_stale_shared_bugs_fail() {
    let Some(emu) = emu_or_skip("planted_cp_async_and_stale_shared_bugs_fail") else {
        return;
    };
    let planted = emu.dir.join("planted");
    for case in ["nowait", "waitgroup", "stale"] {
        let (ok, out) = run(&[], &planted, &[case, "bug"]);
        println!("planted {case} bug:\n{out}");
        assert!(
            !ok && out.contains(&format!("FAIL planted {case} bug")),
            "the planted {case} bug went unnoticed:\n{out}"
        );
        let (ok, out) = run(&[], &planted, &[case, "fixed"]);
        assert!(
            ok && out.contains(&format!("PASS planted {case} fixed")),
            "the fixed {case} kernel failed:\n{out}"
        );
    }
}
