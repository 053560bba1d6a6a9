//! Compiles every `kernels/*.cu` of the workspace to an sm_90a cubin (+ PTX) with NVRTC 13.0,
//! opened at build time from the pip wheels that `scripts/setup_cuda.sh` installs into `.cuda/`
//! (or the folder named by `BAE_CUDA_DIR`). No GPU, driver or CUDA toolkit is needed.
//!
//! * Wheels absent: the build succeeds with no kernels embedded; the crate reports
//!   "kernels were not built: run scripts/setup_cuda.sh" at run time.
//! * Wheels present: any kernel that fails to compile fails the build (the NVRTC log is shown).
//! * The ptxas report (`--ptxas-options=-v`: registers, stack, spills, shared memory) is written to
//!   `OUT_DIR/ptxas.log` and exposed as constants (`bae_gpu::kernels::PTXAS_LOG`,
//!   `KERNEL_RESOURCES`) instead of cargo warnings, so build output stays clean.
//!
//! Output: `OUT_DIR/kernels_gen.rs`, included by `src/kernels.rs`.

use libloading::Library;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

/// Target of every kernel: Hopper (H100/H200) with the arch-specific instructions (wgmma).
const GPU_ARCH: &str = "sm_90a";
/// NVRTC version the wheels must have: newer ones emit PTX the driver 580 rejects.
const NVRTC_PIN: (c_int, c_int) = (13, 0);

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest
        .join("../..")
        .canonicalize()
        .expect("workspace root");
    let kernels_dir = root.join("kernels");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", kernels_dir.display());
    println!("cargo:rerun-if-env-changed=BAE_CUDA_DIR");

    let gen_path = out_dir.join("kernels_gen.rs");
    let cuda = match find_cuda(&root) {
        Ok(dir) => dir,
        Err(reason) => {
            fs::write(&gen_path, not_built(&reason)).expect("write kernels_gen.rs");
            return;
        }
    };
    let lib_dir = cuda.join("nvidia/cu13/lib");
    println!(
        "cargo:rerun-if-changed={}",
        lib_dir.join("libnvrtc.so.13").display()
    );

    let mut sources: Vec<PathBuf> = fs::read_dir(&kernels_dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", kernels_dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
        .collect();
    sources.sort();

    let nvrtc = Nvrtc::open(&lib_dir);
    let version = nvrtc.version();
    assert!(
        version == NVRTC_PIN,
        "NVRTC {}.{} found in {}, but 13.0 is required (newer NVRTC emits PTX the driver 580 \
         rejects): re-run scripts/setup_cuda.sh",
        version.0,
        version.1,
        lib_dir.display()
    );
    let include = cuda.join("nvidia/cu13/include");
    let options = vec![
        format!("--gpu-architecture={GPU_ARCH}"),
        "--std=c++17".to_string(),
        "--ptxas-options=-v".to_string(),
        "-lineinfo".to_string(),
        format!("-I{}", kernels_dir.display()),
        format!("-I{}", include.display()),
        format!("-I{}", include.join("cccl").display()),
    ];

    // compile in parallel (NVRTC programs are independent and thread-safe)
    let results: Vec<Compiled> = std::thread::scope(|s| {
        let handles: Vec<_> = sources
            .iter()
            .map(|src| {
                let (nvrtc, options) = (&nvrtc, &options);
                s.spawn(move || nvrtc.compile(src, options))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("compile thread"))
            .collect()
    });

    let mut failures = String::new();
    for r in &results {
        if let Err(log) = &r.outcome {
            writeln!(failures, "==== {} ====\n{log}", r.name).unwrap();
        }
    }
    assert!(
        failures.is_empty(),
        "NVRTC failed to compile kernels:\n{failures}"
    );

    let mut log_all = String::new();
    let mut modules = String::new();
    let mut resources = String::new();
    for r in &results {
        let Ok((cubin, ptx, log)) = &r.outcome else {
            unreachable!()
        };
        let cubin_path = out_dir.join(format!("{}.cubin", r.name));
        let ptx_path = out_dir.join(format!("{}.ptx", r.name));
        fs::write(&cubin_path, cubin).expect("write cubin");
        fs::write(&ptx_path, ptx).expect("write ptx");
        writeln!(log_all, "==== {} ====\n{}", r.name, log.trim_end()).unwrap();
        writeln!(
            modules,
            "    ModuleImage {{ name: {:?}, cubin: include_bytes!({:?}), ptx: include_str!({:?}) }},",
            r.name,
            cubin_path.display().to_string(),
            ptx_path.display().to_string()
        )
        .unwrap();
        for k in parse_ptxas(log) {
            writeln!(
                resources,
                "    KernelResources {{ module: {:?}, kernel: {:?}, registers: {}, stack_bytes: {}, \
                 spill_store_bytes: {}, spill_load_bytes: {}, smem_bytes: {} }},",
                r.name, k.kernel, k.registers, k.stack, k.spill_stores, k.spill_loads, k.smem
            )
            .unwrap();
        }
    }
    let log_path = out_dir.join("ptxas.log");
    fs::write(&log_path, &log_all).expect("write ptxas.log");

    let generated = format!(
        "// generated by build.rs\n\
         pub const KERNELS_BUILT: bool = true;\n\
         pub const NOT_BUILT_REASON: &str = \"\";\n\
         pub const GPU_ARCH: &str = {GPU_ARCH:?};\n\
         pub const NVRTC_VERSION: (i32, i32) = ({}, {});\n\
         pub const PTXAS_LOG: &str = include_str!({:?});\n\
         pub static MODULES: &[ModuleImage] = &[\n{modules}];\n\
         pub static KERNEL_RESOURCES: &[KernelResources] = &[\n{resources}];\n",
        version.0,
        version.1,
        log_path.display().to_string()
    );
    fs::write(&gen_path, generated).expect("write kernels_gen.rs");
}

/// The wheel folder: `BAE_CUDA_DIR`, else `<workspace>/.cuda`; Err(reason) when absent.
fn find_cuda(root: &Path) -> Result<PathBuf, String> {
    let (dir, from_env) = match env::var_os("BAE_CUDA_DIR") {
        Some(d) if !d.is_empty() => (PathBuf::from(d), true),
        _ => (root.join(".cuda"), false),
    };
    let lib = dir.join("nvidia/cu13/lib/libnvrtc.so.13");
    if lib.is_file() {
        Ok(dir)
    } else {
        if from_env {
            // an explicit setting that does not work deserves a visible note
            println!(
                "cargo:warning=BAE_CUDA_DIR={} has no nvidia/cu13/lib/libnvrtc.so.13; kernels not built",
                dir.display()
            );
        }
        Err(format!(
            "kernels were not built: run scripts/setup_cuda.sh (no NVRTC 13.0 wheels at {})",
            dir.display()
        ))
    }
}

fn not_built(reason: &str) -> String {
    format!(
        "// generated by build.rs\n\
         pub const KERNELS_BUILT: bool = false;\n\
         pub const NOT_BUILT_REASON: &str = {reason:?};\n\
         pub const GPU_ARCH: &str = {GPU_ARCH:?};\n\
         pub const NVRTC_VERSION: (i32, i32) = (0, 0);\n\
         pub const PTXAS_LOG: &str = \"\";\n\
         pub static MODULES: &[ModuleImage] = &[];\n\
         pub static KERNEL_RESOURCES: &[KernelResources] = &[];\n"
    )
}

struct Compiled {
    name: String,
    /// (cubin, ptx, log) or the error log
    outcome: Result<(Vec<u8>, String, String), String>,
}

#[derive(Default)]
struct Resources {
    kernel: String,
    registers: u32,
    stack: u32,
    spill_stores: u32,
    spill_loads: u32,
    smem: u32,
}

/// Extracts per-kernel numbers from the ptxas `-v` report.
fn parse_ptxas(log: &str) -> Vec<Resources> {
    let num_before = |line: &str, unit: &str| -> u32 {
        line.find(unit)
            .and_then(|i| line[..i].split_whitespace().last())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    let mut out: Vec<Resources> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Function properties for ").nth(1) {
            out.push(Resources {
                kernel: rest.trim().to_string(),
                ..Resources::default()
            });
        } else if let Some(k) = out.last_mut() {
            if line.contains("bytes stack frame") {
                k.stack = num_before(line, "bytes stack frame");
                k.spill_stores = num_before(line, "bytes spill stores");
                k.spill_loads = num_before(line, "bytes spill loads");
            } else if line.contains("Used ") && line.contains("registers") {
                k.registers = num_before(line, "registers");
                k.smem = num_before(line, "bytes smem");
            }
        }
    }
    out
}

type Prog = *mut c_void;

/// The few NVRTC entry points the build needs, opened by path.
struct Nvrtc {
    lib: Library,
    _builtins: Library,
}

// SAFETY: NVRTC's API is thread-safe for distinct programs; the handles are only used for calls.
unsafe impl Sync for Nvrtc {}

impl Nvrtc {
    fn open(lib_dir: &Path) -> Self {
        // libnvrtc opens its builtins library by soname: load it first, globally, by path, so that
        // the lookup finds the already loaded copy (no LD_LIBRARY_PATH needed).
        let builtins_path = fs::read_dir(lib_dir)
            .expect("read cuda lib dir")
            .map(|e| e.expect("dir entry").path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libnvrtc-builtins.so.13"))
            })
            .unwrap_or_else(|| panic!("no libnvrtc-builtins.so.13* in {}", lib_dir.display()));
        // SAFETY: loading NVIDIA's libraries runs their (trusted) initialisers.
        let builtins = unsafe {
            libloading::os::unix::Library::open(
                Some(&builtins_path),
                libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL,
            )
        }
        .unwrap_or_else(|e| panic!("loading {}: {e}", builtins_path.display()));
        let path = lib_dir.join("libnvrtc.so.13");
        // SAFETY: as above.
        let lib = unsafe { Library::new(&path) }
            .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
        Nvrtc {
            lib,
            _builtins: builtins.into(),
        }
    }

    fn sym<T: Copy>(&self, name: &[u8]) -> T {
        // SAFETY: the caller names the symbol's true C signature as T.
        unsafe {
            *self
                .lib
                .get::<T>(name)
                .unwrap_or_else(|e| panic!("NVRTC symbol {}: {e}", String::from_utf8_lossy(name)))
        }
    }

    fn check(&self, what: &str, res: c_int) -> Result<(), String> {
        if res == 0 {
            return Ok(());
        }
        let f: unsafe extern "C" fn(c_int) -> *const c_char = self.sym(b"nvrtcGetErrorString\0");
        // SAFETY: NVRTC returns a static NUL-terminated string.
        let msg = unsafe { CStr::from_ptr(f(res)) }.to_string_lossy();
        Err(format!("{what}: {msg} ({res})"))
    }

    fn version(&self) -> (c_int, c_int) {
        let f: unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int = self.sym(b"nvrtcVersion\0");
        let (mut major, mut minor) = (0, 0);
        // SAFETY: two valid out-pointers.
        let r = unsafe { f(&mut major, &mut minor) };
        self.check("nvrtcVersion", r).expect("nvrtcVersion");
        (major, minor)
    }

    fn compile(&self, src_path: &Path, options: &[String]) -> Compiled {
        let name = src_path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("kernel file name")
            .to_string();
        let outcome = self.compile_inner(src_path, options);
        Compiled { name, outcome }
    }

    fn compile_inner(
        &self,
        src_path: &Path,
        options: &[String],
    ) -> Result<(Vec<u8>, String, String), String> {
        type Create = unsafe extern "C" fn(
            *mut Prog,
            *const c_char,
            *const c_char,
            c_int,
            *const *const c_char,
            *const *const c_char,
        ) -> c_int;
        type CompileFn = unsafe extern "C" fn(Prog, c_int, *const *const c_char) -> c_int;
        type SizeFn = unsafe extern "C" fn(Prog, *mut usize) -> c_int;
        type GetFn = unsafe extern "C" fn(Prog, *mut c_char) -> c_int;
        type Destroy = unsafe extern "C" fn(*mut Prog) -> c_int;

        let src = fs::read_to_string(src_path)
            .map_err(|e| format!("reading {}: {e}", src_path.display()))?;
        let c_src = CString::new(src).map_err(|_| "NUL byte in source".to_string())?;
        let c_name = CString::new(src_path.file_name().unwrap().to_string_lossy().as_bytes())
            .expect("file name");
        let c_opts: Vec<CString> = options
            .iter()
            .map(|o| CString::new(o.as_str()).expect("option"))
            .collect();
        let opt_ptrs: Vec<*const c_char> = c_opts.iter().map(|o| o.as_ptr()).collect();

        let create: Create = self.sym(b"nvrtcCreateProgram\0");
        let compile: CompileFn = self.sym(b"nvrtcCompileProgram\0");
        let log_size: SizeFn = self.sym(b"nvrtcGetProgramLogSize\0");
        let get_log: GetFn = self.sym(b"nvrtcGetProgramLog\0");
        let cubin_size: SizeFn = self.sym(b"nvrtcGetCUBINSize\0");
        let get_cubin: GetFn = self.sym(b"nvrtcGetCUBIN\0");
        let ptx_size: SizeFn = self.sym(b"nvrtcGetPTXSize\0");
        let get_ptx: GetFn = self.sym(b"nvrtcGetPTX\0");
        let destroy: Destroy = self.sym(b"nvrtcDestroyProgram\0");

        let read = |prog: Prog, size_fn: SizeFn, get_fn: GetFn, what: &str| {
            let mut n = 0usize;
            // SAFETY: valid program handle and out-pointer; the buffer has the reported size.
            self.check(what, unsafe { size_fn(prog, &mut n) })?;
            let mut buf = vec![0u8; n];
            self.check(what, unsafe { get_fn(prog, buf.as_mut_ptr().cast()) })?;
            Ok::<Vec<u8>, String>(buf)
        };
        let text = |mut b: Vec<u8>| {
            while b.last() == Some(&0) {
                b.pop();
            }
            String::from_utf8_lossy(&b).into_owned()
        };

        let mut prog: Prog = std::ptr::null_mut();
        // SAFETY: valid C strings; no extra headers.
        self.check("nvrtcCreateProgram", unsafe {
            create(
                &mut prog,
                c_src.as_ptr(),
                c_name.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            )
        })?;
        // SAFETY: valid program and option array.
        let res = unsafe { compile(prog, opt_ptrs.len() as c_int, opt_ptrs.as_ptr()) };
        let log = text(read(prog, log_size, get_log, "nvrtcGetProgramLog")?);
        let result = if res != 0 {
            Err(format!(
                "{}\n{log}",
                self.check("nvrtcCompileProgram", res).unwrap_err()
            ))
        } else {
            let cubin = read(prog, cubin_size, get_cubin, "nvrtcGetCUBIN")?;
            let ptx = text(read(prog, ptx_size, get_ptx, "nvrtcGetPTX")?);
            Ok((cubin, ptx, log))
        };
        // SAFETY: the program was created above and is destroyed once.
        unsafe { destroy(&mut prog) };
        result
    }
}
