//! A checkpoint write that fails for lack of space stops the run with one line that names the file,
//! the step and the previous checkpoint, which stays byte-identical and loadable; no temporary file is
//! left behind, and the run resumes from that checkpoint once there is room again.
//!
//! Two ways to run out of space: a real full file system (a small tmpfs, ENOSPC; needs the right to
//! mount, so it is skipped, saying so, where that is refused) and a file-size limit (RLIMIT_FSIZE,
//! EFBIG; works for any user). Both reach the same write-error path.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bae() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bae"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A finished 10-step run with a checkpoint at step 10 (d=64, d'=512: the checkpoint is ~790 KB,
/// the final model ~260 KB), whose config is then raised to 40 steps, so that `--resume` trains on
/// and writes its next checkpoint at step 15.
fn finished_run(dir: &Path) -> PathBuf {
    run(dir, "run", "10")
}

fn run(dir: &Path, name: &str, steps: &str) -> PathBuf {
    let data = dir.join("x.safetensors");
    let st = bae()
        .args([
            "synth", "--n", "2000", "--d", "64", "--bits", "8", "--seed", "3",
        ])
        .args(["--out", s(&data)])
        .status()
        .unwrap();
    assert!(st.success());
    let out = dir.join(name);
    let st = bae()
        .args([
            "train",
            "--device",
            "cpu",
            "--data",
            s(&data),
            "--out",
            s(&out),
            "--steps",
            steps,
        ])
        .args([
            "--expand",
            "8",
            "--batch-size",
            "64",
            "--checkpoint-every",
            "5",
        ])
        .args(["--entropy-start", "0", "--quiet"])
        .status()
        .unwrap();
    assert!(st.success());
    if steps != "10" {
        return out;
    }
    let cfg = out.join("config.json");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("\"steps\": 10"), "{text}");
    std::fs::write(&cfg, text.replace("\"steps\": 10", "\"steps\": 40")).unwrap();
    out
}

fn resume(out: &Path, limit_bytes: Option<u64>) -> Output {
    let mut cmd = bae();
    cmd.args(["train", "--resume", s(out), "--quiet", "--device", "cpu"]);
    if let Some(limit) = limit_bytes {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // a write past the limit then fails with EFBIG instead of killing the process
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let lim = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.output().unwrap()
}

fn checkpoint_step(out: &Path) -> String {
    let (_, meta) = bae_io::load_tensors(&out.join("checkpoint.safetensors")).unwrap();
    meta["step"].clone()
}

fn leftovers(out: &Path) -> Vec<String> {
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// Resumes `out` where writing the next checkpoint must fail with `os_error`, then checks the
/// message, the previous checkpoint and the folder; finally resumes with room and finishes.
fn check_failed_write(out: &Path, limit: Option<u64>, os_error: &str) {
    let ckpt = out.join("checkpoint.safetensors");
    let before = std::fs::read(&ckpt).unwrap();
    assert_eq!(checkpoint_step(out), "10");

    let o = resume(out, limit);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    let last = err.lines().last().unwrap_or_default();
    for want in [
        "step 15: checkpoint not written",
        s(&ckpt),
        os_error,
        "the previous checkpoint (step 10) is intact",
    ] {
        assert!(last.contains(want), "missing {want:?} in: {last}");
    }
    assert_eq!(std::fs::read(&ckpt).unwrap(), before, "checkpoint changed");
    assert_eq!(checkpoint_step(out), "10");
    assert_eq!(leftovers(out), Vec::<String>::new(), "temporary files left");
}

#[test]
fn file_size_limit_keeps_previous_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = finished_run(dir.path());
    // Over the metrics file, under the checkpoint.
    check_failed_write(&out, Some(400 << 10), "File too large");
    let o = resume(&out, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(checkpoint_step(&out), "40");
    // and it is the run that never stopped
    let straight = run(dir.path(), "straight", "40");
    let weights = |d: &Path| {
        let (t, _) = bae_io::load_tensors(&d.join("model.safetensors")).unwrap();
        t.into_iter()
            .map(|(k, v)| (k, v.data.iter().map(|x| x.to_bits()).collect::<Vec<u32>>()))
            .collect::<Vec<_>>()
    };
    assert_eq!(weights(&out), weights(&straight));
}

/// Unmounts on drop, so a failing assertion does not leave a mount behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_keeps_previous_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let run = finished_run(dir.path());
    let run_bytes: u64 = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    // room for the run folder plus ~300 KB: less than a second checkpoint needs
    let size = run_bytes + (300 << 10);
    let mnt = dir.path().join("small-disk");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "tmpfs",
            s(&mnt),
        ])
        .output();
    match mounted {
        Ok(o) if o.status.success() => {}
        _ => {
            eprintln!("SKIP full_disk_keeps_previous_checkpoint: cannot mount a tmpfs here");
            return;
        }
    }
    let _guard = Mount(mnt.clone());
    let out = mnt.join("run");
    std::fs::create_dir(&out).unwrap();
    for e in std::fs::read_dir(&run).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), out.join(e.file_name())).unwrap();
    }
    check_failed_write(&out, None, "No space left on device");
    // Grow the disk, then the run goes on from step 10.
    let grown = Command::new("mount")
        .args(["-o", &format!("remount,size={}", size + (8 << 20)), s(&mnt)])
        .status()
        .unwrap();
    assert!(grown.success());
    let o = resume(&out, None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(checkpoint_step(&out), "40");
}
