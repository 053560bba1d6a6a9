//! The kernels compiled by `build.rs` (sm_90a cubins + PTX, embedded) and their ptxas report.

/// One compiled `kernels/<name>.cu`.
#[derive(Debug)]
pub struct ModuleImage {
    /// file stem, e.g. `"coactivation"`
    pub name: &'static str,
    pub cubin: &'static [u8],
    pub ptx: &'static str,
}

/// ptxas resource usage of one kernel (from `--ptxas-options=-v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelResources {
    pub module: &'static str,
    pub kernel: &'static str,
    pub registers: u32,
    pub stack_bytes: u32,
    pub spill_store_bytes: u32,
    pub spill_load_bytes: u32,
    pub smem_bytes: u32,
}

include!(concat!(env!("OUT_DIR"), "/kernels_gen.rs"));

/// The image of module `name`, if the kernels were built.
pub fn module(name: &str) -> Option<&'static ModuleImage> {
    MODULES.iter().find(|m| m.name == name)
}

/// The ptxas table as aligned text (one kernel per line).
pub fn resources_table() -> String {
    let mut s = String::from(
        "module            kernel                 regs  stack  spill_st  spill_ld   smem\n",
    );
    for k in KERNEL_RESOURCES {
        s.push_str(&format!(
            "{:<17} {:<22} {:>4} {:>6} {:>9} {:>9} {:>6}\n",
            k.module,
            k.kernel,
            k.registers,
            k.stack_bytes,
            k.spill_store_bytes,
            k.spill_load_bytes,
            k.smem_bytes
        ));
    }
    s
}
