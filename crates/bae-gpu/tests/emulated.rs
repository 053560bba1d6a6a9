//! Runs every kernel of `kernels/*.cu` under the host emulator (`emu/`: one std::thread per CUDA
//! thread, warp intrinsics, ldmatrix and mma emulated from their PTX definitions) against
//! straightforward references: the kernels' logic checked on machines without a GPU.
//! Needs a C++20 compiler (`$CXX`, default `g++`); without one the test prints SKIP.

use std::path::Path;
use std::process::Command;

#[test]
fn kernels_under_host_emulation() {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
    if Command::new(&cxx).arg("--version").output().is_err() {
        println!("SKIP: kernels_under_host_emulation: no C++ compiler ({cxx})");
        return;
    }
    let emu = Path::new(env!("CARGO_MANIFEST_DIR")).join("emu");
    let build = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bae-gpu-emu");
    let out = Command::new("bash")
        .arg(emu.join("run.sh"))
        .arg(&build)
        .env("CXX", &cxx)
        .output()
        .expect("run emu/run.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success() && text.contains("all ok"),
        "emulated kernels failed:\n{text}"
    );
}
