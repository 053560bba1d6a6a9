//! `scripts/gpu_session.sh`, the one call that runs every GPU check on a lent machine, rehearsed
//! without a GPU: the argument handling, the one-line failure where there is no NVIDIA GPU, the
//! summary table parsed from stage logs, and a whole `run` over fake binaries (a fake
//! `nvidia-smi` and `compute-sanitizer`), with a stage that hangs stopped at its budget.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// PATH without `nvidia-smi`: each PATH folder that holds one is replaced by a folder of links to
/// everything else in it (so bash, coreutils, python3 stay reachable).
fn path_without_nvidia_smi(scratch: &Path) -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    let mut dirs = Vec::new();
    for (i, dir) in std::env::split_paths(&path).enumerate() {
        if !dir.join("nvidia-smi").exists() {
            dirs.push(dir);
            continue;
        }
        let farm = scratch.join(format!("path{i}"));
        std::fs::create_dir_all(&farm).unwrap();
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if e.file_name() != "nvidia-smi" {
                let _ = std::os::unix::fs::symlink(e.path(), farm.join(e.file_name()));
            }
        }
        dirs.push(farm);
    }
    std::env::join_paths(dirs).unwrap().into_string().unwrap()
}

fn script(args: &[&str], path: &str, envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new("bash");
    c.arg(root().join("scripts/gpu_session.sh"))
        .args(args)
        .env("PATH", path)
        .env_remove("OUT")
        .env_remove("GPU_SESSION_BIN")
        .env_remove("GPU_SESSION_BUDGET_S");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("run bash")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write_exe(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn have_python3() -> bool {
    Command::new("python3")
        .arg("-c")
        .arg("import re, json")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn run_without_a_gpu_fails_with_one_line() {
    let scratch = tempfile::tempdir().unwrap();
    let path = path_without_nvidia_smi(scratch.path());
    for args in [
        &["run", "parity"][..],
        &["run", "--quick"][..],
        &["run"][..],
        &["run", "all"][..],
    ] {
        let o = script(args, &path, &[]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {out}");
        assert_eq!(
            out.trim_end(),
            "gpu_session: no NVIDIA GPU (nvidia-smi not found); nothing run",
            "{args:?}"
        );
    }

    // an nvidia-smi that cannot reach a driver, and one that finds no device
    for (body, why) in [
        (
            "#!/bin/sh\necho \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\"\nexit 9\n",
            "nvidia-smi -L failed: NVIDIA-SMI has failed",
        ),
        (
            "#!/bin/sh\necho 'No devices were found'\n",
            "nvidia-smi lists no device",
        ),
    ] {
        let fake = tempfile::tempdir().unwrap();
        write_exe(&fake.path().join("nvidia-smi"), body);
        let p = format!("{}:{path}", fake.path().display());
        let o = script(&["run", "parity"], &p, &[]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(3), "{out}");
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            out.starts_with(&format!("gpu_session: no NVIDIA GPU ({why}"))
                && out.trim_end().ends_with("; nothing run"),
            "{out}"
        );
    }
}

#[test]
fn bad_arguments_print_the_usage() {
    let scratch = tempfile::tempdir().unwrap();
    let path = path_without_nvidia_smi(scratch.path());
    let o = script(&["run", "parity", "bogus"], &path, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("gpu_session: unknown stage 'bogus'\n"),
        "{err}"
    );
    for word in ["Stages:", "prepare", "run --quick", "sanitize", "torch"] {
        assert!(err.contains(word), "usage lacks {word}: {err}");
    }
    assert!(o.stdout.is_empty());

    let o = script(&[], &path, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Stages:"));

    let o = script(&["frobnicate"], &path, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("gpu_session: unknown command"));

    let o = script(&["run", "--quick", "torch"], &path, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(text(&o).lines().count(), 1, "{}", text(&o));
}

/// Stage logs as the GPU machine would leave them: PARITY lines, libtest output with a failing
/// test, a sanitizer that timed out, the bench's and torch_step.py's greppable lines.
fn write_logs(dir: &Path) {
    let w = |name: &str, body: &str| std::fs::write(dir.join(name), body).unwrap();
    w(
        "status.tsv",
        "parity\t101\t12\t75\ntrain\t0\t30\t60\nmemcheck\t0\t50\t110\nracecheck\t124\t110\t110\n\
         bench\t0\t20\t60\ntorch\t1\t80\t115\n",
    );
    w("gpu.txt", "NVIDIA H200, 580.159.04, 143771 MiB, 1980 MHz\n");
    w(
        "parity.list",
        "adam_and_convert_match: test\ndecode_matches: test\nencode_gemm_matches_reference: test\n\
         trajectory_200_steps_tracks_reference: test\nwhole_step_matches_reference: test\n\n5 tests, 0 benchmarks\n",
    );
    w(
        "parity.log",
        "\nrunning 5 tests\n\
         test adam_and_convert_match ... adam: seed 1 (BAE_TEST_SEED=1 replays)\n\
         PARITY adam_step max_err=0 tol=0 PASS\n\
         PARITY adam_step max_err=0 tol=0 PASS\n\
         ok\n\
         test decode_matches ... decode: seed 2 (BAE_TEST_SEED=2 replays)\n\
         PARITY decode max_err=2.5e-7 tol=1e-5 PASS\n\
         PARITY decode max_err=3e-5 tol=1e-5 FAIL\n\
         thread 'decode_matches' panicked at crates/bae-gpu/tests/parity.rs:690:13:\n\
         decode n=512 d=100 d'=1000: rel err 3e-5\n\
         note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n\
         FAILED\n\
         test encode_gemm_matches_reference ... ok\n\
         test trajectory_200_steps_tracks_reference ... trajectory: seed 3 (BAE_TEST_SEED=3 replays)\n\
         w_enc: rel L2 distance after 200 steps 2.5e-6\n\
         b_enc: rel L2 distance after 200 steps 4e-6\n\
         worst per-step relative loss difference 1.5e-7\n\
         ok\n\
         test whole_step_matches_reference ... whole_step: seed 4\n\
         PARITY whole_step/grad_w_enc max_err=1e-7 tol=1e-5 PASS\n\
         PARITY whole_step/x_hat max_err=4e-6 tol=1e-5 PASS\n\
         PARITY whole_step/cov max_err=0 tol=0 PASS\n\
         ok\n\n\
         failures:\n\nfailures:\n    decode_matches\n\n\
         test result: FAILED. 4 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n",
    );
    w(
        "train.log",
        "running 1 test\n\
         test cuda_training_runs_follow_the_cpu_and_resume_exactly ... \
         w_enc: GPU f32 vs CPU after 100 steps, rel L2 3e-6\n\
         b_dec: GPU f32 vs CPU after 100 steps, rel L2 1e-6\n\
         ok\n\ntest result: ok. 1 passed; 0 failed\n",
    );
    w(
        "memcheck.log",
        "========= COMPUTE-SANITIZER\nrunning 4 tests\ntest adam_and_convert_match ... ok\n\
         test decode_matches ... ok\n\ntest result: ok. 2 passed; 0 failed\n\
         ========= ERROR SUMMARY: 0 errors\n",
    );
    w(
        "racecheck.log",
        "========= COMPUTE-SANITIZER\nrunning 3 tests\ntest adam_and_convert_match ... ok\n\
         test coactivation_matches_covariance_stats ... coactivation: seed 9\n",
    );
    w(
        "bench.log",
        "GpuContext(NVIDIA H200, 132 SMs)\n\
         CEILING bf16_gemm m=8192 n=8192 k=8192 median_ms=1.4000 tflops=785.4\n\
         CEILING dtod_copy bytes=2147483648 median_ms=0.5000 gbps=4295 (bytes read + written)\n\
         KERNEL d=576 dc=2304 n=512 name=adam_step median_ms=0.03000 floor_ms=0.01500 x_floor=2.0\n\
         STEP d=576 dc=2304 n=512 mode=f32 median_ms=0.3000 min_ms=0.2900 tok_s=1706667 gemm_tflops=22.6 floor_ms=0.0150 x_floor=20.0\n\
         STEP d=2048 dc=8192 n=512 mode=bf16 median_ms=0.9000 min_ms=0.8800 tok_s=568889 gemm_tflops=95.4 floor_ms=0.1880 x_floor=4.8\n",
    );
    w(
        "torch.log",
        "torch 2.11.0+cu130, NVIDIA H200\n\
         CEILING torch_bf16_matmul m=8192 n=8192 k=8192 median_ms=1.4100 tflops=779.8\n\
         CEILING torch_dtod_copy bytes=2147483648 median_ms=0.5010 gbps=4286 (bytes read + written)\n\
         TORCH variant=f32 d=576 dc=2304 n=512 median_ms=2.0000 min_ms=1.9 max_ms=2.5 reps=50 tok_s=256000 ae_tflops=3.40 ae_cov_tflops=4.00\n\
         TORCH variant=bf16+compile d=576 dc=2304 n=512 FAILED BackendCompilerFailed: no C compiler\n",
    );
}

/// (floor ms, ratio) of a step row: `| step ... | 0.3 ms (...) | floor 0.01512 ms | 19.8x floor |`.
fn floor_and_ratio(row: &str) -> (f64, f64) {
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    let floor = cells[3]
        .strip_prefix("floor ")
        .and_then(|s| s.strip_suffix(" ms"))
        .unwrap_or_else(|| panic!("floor cell in {row}"));
    let ratio = cells[4]
        .strip_suffix("x floor")
        .unwrap_or_else(|| panic!("ratio cell in {row}"));
    (floor.parse().unwrap(), ratio.parse().unwrap())
}

fn table_row<'a>(md: &'a str, check: &str) -> &'a str {
    md.lines()
        .find(|l| l.starts_with(&format!("| {check} |")))
        .unwrap_or_else(|| panic!("no row '{check}' in:\n{md}"))
}

#[test]
fn summary_table_from_stage_logs() {
    if !have_python3() {
        println!("SKIP: summary_table_from_stage_logs: no python3");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_logs(dir.path());
    let scratch = tempfile::tempdir().unwrap();
    let path = path_without_nvidia_smi(scratch.path());
    let o = script(&["summarize", dir.path().to_str().unwrap()], &path, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    println!("{md}");
    assert_eq!(
        md,
        String::from_utf8_lossy(&o.stdout),
        "summary.md = stdout"
    );
    assert!(md.starts_with("# GPU session: NVIDIA H200"), "{md}");
    assert!(
        md.contains("bf16 GEMM 785 TFLOP/s, device copy 4295 GB/s"),
        "{md}"
    );
    assert_eq!(
        md.matches("| check | measured | bound | result |").count(),
        1
    );

    // PARITY lines: aggregated per name, the worst against its tolerance shown
    assert!(table_row(&md, "parity: adam_step (2 checks)").ends_with("| 0 | 0 | PASS |"));
    assert!(table_row(&md, "parity: decode (2 checks)").ends_with("| 3e-05 | 1e-05 | FAIL |"));
    // grouped by the part before '/': the worst against its tolerance, named
    assert!(
        table_row(&md, "parity: whole_step (3 checks)")
            .ends_with("| 4e-06 (x_hat) | 1e-05 | PASS |")
    );
    // a test without PARITY lines: its result; the trajectory's printed metrics
    assert!(
        table_row(&md, "parity: test encode_gemm_matches_reference").ends_with("| - | - | ok |")
    );
    assert!(
        table_row(&md, "parity: trajectory 200 steps: worst parameter rel L2")
            .ends_with("| 4e-06 | 1e-3 | PASS |")
    );
    // the failing test's panic message
    assert!(
        md.contains("decode n=512 d=100 d'=1000: rel err 3e-5"),
        "{md}"
    );

    assert!(
        table_row(
            &md,
            "train: CLI --device cuda vs cpu, 100 f32 steps: worst tensor rel L2"
        )
        .ends_with("| 3e-06 | 1e-3 | PASS |")
    );
    assert!(
        table_row(
            &md,
            "train: exact GPU resume (40 + 60 steps == 100, bitwise)"
        )
        .ends_with("| PASS |")
    );
    assert!(
        table_row(&md, "memcheck (parity tests, small shapes)")
            .ends_with("| 0 errors, 2 tests clean | 0 errors | PASS |")
    );
    let race = table_row(&md, "racecheck (parity tests, small shapes)");
    assert!(
        race.contains("TIMEOUT during coactivation_matches_covariance_stats"),
        "{race}"
    );

    // step times against the floor: max(10 n d d' / 785.4 TFLOP/s, (4 n d + 24 P) / 4295 GB/s)
    let p = 2.0 * 576.0 * 2304.0 + 576.0 + 2304.0;
    let floor =
        (10.0f64 * 512.0 * 576.0 * 2304.0 / 785.4e9).max((4.0 * 512.0 * 576.0 + 24.0 * p) / 4295e6);
    let ours = table_row(&md, "step ours f32 d=576 d'=2304 n=512");
    let (f, x) = floor_and_ratio(ours);
    assert!((f / floor - 1.0).abs() < 1e-3, "{ours}: floor {floor}");
    assert!((x - 0.3 / floor).abs() < 0.051, "{ours}");
    let torch = table_row(&md, "step torch f32 d=576 d'=2304 n=512");
    assert!(
        (floor_and_ratio(torch).1 - 2.0 / floor).abs() < 0.051,
        "{torch}"
    );
    assert!(table_row(&md, "step ours bf16 d=2048 d'=8192 n=512").contains("x floor"));
    assert!(
        table_row(&md, "step torch bf16+compile d=576 d'=2304 n=512")
            .contains("FAILED: BackendCompilerFailed")
    );
    assert!(md.contains("NOT PASSED"), "{md}");
}

/// `run all` end to end over fake binaries: stage logs, one summary, at most 8 files in $OUT, and
/// a hanging stage stopped at its budget while the rest still run.
#[test]
fn run_all_over_fake_binaries() {
    if !have_python3() {
        println!("SKIP: run_all_over_fake_binaries: no python3");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let fake = scratch.path().join("fakebin");
    let bin = scratch.path().join("gpu-bin");
    let out = scratch.path().join("out");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    write_exe(
        &fake.join("nvidia-smi"),
        "#!/bin/sh\nif [ \"$1\" = -L ]; then echo 'GPU 0: NVIDIA H200 (UUID: GPU-0)'; \
         elif [ -n \"$1\" ]; then echo 'NVIDIA H200, 580.1, 143771 MiB, 1980 MHz'; \
         else echo 'fake nvidia-smi table'; fi\n",
    );
    // racecheck hangs (the stage must be stopped at its budget); memcheck passes
    write_exe(
        &fake.join("compute-sanitizer"),
        "#!/bin/bash\necho '========= COMPUTE-SANITIZER'\ntool=$2\nshift 2\n\
         while [ \"${1#--}\" != \"$1\" ]; do shift 2; done\n\
         if [ \"$tool\" = racecheck ]; then sleep 60; fi\n\"$@\"\nrc=$?\n\
         echo '========= ERROR SUMMARY: 0 errors'\nexit $rc\n",
    );
    write_exe(
        &bin.join("parity"),
        "#!/bin/sh\nif [ \"$1\" = --list ]; then echo 'decode_matches: test'; exit 0; fi\n\
         [ \"$REQUIRE_GPU\" = 1 ] || exit 7\n\
         echo 'running 1 test'\necho 'test decode_matches ... decode: seed 1'\n\
         echo 'PARITY decode max_err=1e-7 tol=1e-5 PASS'\necho ok\n\
         echo; echo 'test result: ok. 1 passed; 0 failed'\n",
    );
    write_exe(
        &bin.join("gpu_train"),
        "#!/bin/sh\n[ -x \"$BAE_BIN\" ] || exit 8\necho 'running 1 test'\n\
         echo 'test cuda_training_runs_follow_the_cpu_and_resume_exactly ... ok'\n\
         echo 'test result: ok. 1 passed; 0 failed'\n",
    );
    write_exe(&bin.join("bae"), "#!/bin/sh\nexit 0\n");
    write_exe(
        &bin.join("kernels"),
        "#!/bin/sh\n[ \"$BAE_BENCH_QUICK\" = 1 ] || exit 9\n\
         echo 'CEILING bf16_gemm m=8192 n=8192 k=8192 median_ms=1.4 tflops=785.4'\n\
         echo 'CEILING dtod_copy bytes=2147483648 median_ms=0.5 gbps=4295'\n\
         echo \"STEP d=2048 dc=8192 n=512 mode=bf16 median_ms=0.9 min_ms=0.8 cases=$BAE_BENCH_CASES\"\n",
    );
    let path = format!(
        "{}:{}",
        fake.display(),
        path_without_nvidia_smi(scratch.path())
    );
    let o = script(
        &["run", "parity", "train", "sanitize", "bench"],
        &path,
        &[
            ("OUT", out.to_str().unwrap()),
            ("GPU_SESSION_BIN", bin.to_str().unwrap()),
            ("GPU_SESSION_BUDGET_RACECHECK", "2"),
        ],
    );
    let all = text(&o);
    assert_eq!(o.status.code(), Some(1), "racecheck timed out: {all}");
    assert!(all.contains("racecheck: TIMEOUT after"), "{all}");
    assert!(all.contains("memcheck: exit 0"), "{all}");
    assert!(
        all.contains("bench: exit 0"),
        "the stage after the timeout ran: {all}"
    );

    let files: Vec<_> = std::fs::read_dir(&out).unwrap().flatten().collect();
    assert!(files.len() <= 8, "{} files in $OUT", files.len());
    for f in ["summary.md", "summary.txt", "session.log"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    println!("{all}");
    assert!(
        all.trim_end().ends_with(md.trim_end()),
        "the table is printed last"
    );
    assert!(table_row(&md, "parity: decode").ends_with("| PASS |"));
    assert!(
        table_row(
            &md,
            "train: exact GPU resume (40 + 60 steps == 100, bitwise)"
        )
        .ends_with("| PASS |")
    );
    assert!(table_row(&md, "memcheck (parity tests, small shapes)").ends_with("| PASS |"));
    assert!(
        table_row(&md, "racecheck (parity tests, small shapes)").contains("TIMEOUT"),
        "{md}"
    );
    assert!(table_row(&md, "step ours bf16 d=2048 d'=8192 n=512").contains("x floor"));
    let log = std::fs::read_to_string(out.join("session.log")).unwrap();
    assert!(log.contains("fake nvidia-smi table"));
    assert!(
        log.contains("min_ms=0.8 cases=\n"),
        "all: both sizes (BAE_BENCH_CASES unset)"
    );
    let txt = std::fs::read_to_string(out.join("summary.txt")).unwrap();
    assert_eq!(txt.lines().count(), 5, "{txt}");

    // --quick: parity and one step table (d=2048, d'=8192)
    let o = script(
        &["run", "--quick"],
        &path,
        &[
            ("OUT", out.to_str().unwrap()),
            ("GPU_SESSION_BIN", bin.to_str().unwrap()),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let log = std::fs::read_to_string(out.join("session.log")).unwrap();
    assert!(log.contains("cases=2048,8192,512"), "{log}");
    let txt = std::fs::read_to_string(out.join("summary.txt")).unwrap();
    assert_eq!(txt.lines().count(), 2, "{txt}");
}
