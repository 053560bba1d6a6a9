//! The device, its streams and the loaded kernels.

use crate::error::{GpuError, Result};
use crate::kernels;
use cudarc::driver::sys::CUdevice_attribute;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream, LaunchConfig};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::sync::Arc;

/// Why no GPU work can run here, without touching the device: `None` when the kernels were built
/// and a CUDA driver library is present (a device may still be missing; [`GpuContext::new`] says).
pub fn unavailable_reason() -> Option<String> {
    if !kernels::KERNELS_BUILT {
        return Some(kernels::NOT_BUILT_REASON.to_string());
    }
    // SAFETY: only tries to open the driver library (dlopen); nothing is called.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Some(GpuError::NoDriver.to_string());
    }
    None
}

struct Inner {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    copy_stream: Arc<CudaStream>,
    functions: HashMap<&'static str, CudaFunction>,
    _modules: Vec<Arc<CudaModule>>,
    name: String,
    sm_count: u32,
}

/// One CUDA device with a compute stream (all kernels and GEMMs) and a copy stream (uploads of
/// the next batch), and every embedded kernel loaded. Cheap to clone (shared).
///
/// Synchronisation is explicit: cudarc's per-buffer event tracking is switched off (it would add
/// event records to every launch), so work on the two streams is ordered with events by the
/// callers (see `GpuTrainer`).
#[derive(Clone)]
pub struct GpuContext {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GpuContext({}, {} SMs)",
            self.inner.name, self.inner.sm_count
        )
    }
}

impl GpuContext {
    /// Device 0. Errors (never panics) when there is no driver, no device, no kernels, or a
    /// device the sm_90a cubins cannot run on.
    pub fn new() -> Result<Self> {
        Self::with_ordinal(0)
    }

    pub fn with_ordinal(ordinal: usize) -> Result<Self> {
        if !kernels::KERNELS_BUILT {
            return Err(GpuError::KernelsNotBuilt(kernels::NOT_BUILT_REASON));
        }
        // SAFETY: dlopen probe only. CudaContext::new panics when libcuda is absent.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(GpuError::NoDriver);
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| GpuError::NoDevice(GpuError::Driver(e).to_string()))?;
        // SAFETY: called before any buffer exists; from here on the callers order the streams.
        unsafe { ctx.disable_event_tracking() };
        let (major, minor) = ctx.compute_capability()?;
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        if (major, minor) != (9, 0) {
            return Err(GpuError::UnsupportedDevice(format!(
                "{name} is sm_{major}{minor}; the kernels are built for {} (H100/H200)",
                kernels::GPU_ARCH
            )));
        }
        let sm_count =
            ctx.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32;
        let stream = ctx.new_stream()?;
        let copy_stream = ctx.new_stream()?;
        let mut functions = HashMap::new();
        let mut modules = Vec::new();
        for image in kernels::MODULES {
            let module = ctx.load_module(Ptx::from_binary(image.cubin.to_vec()))?;
            for k in kernels::KERNEL_RESOURCES
                .iter()
                .filter(|k| k.module == image.name)
            {
                functions.insert(k.kernel, module.load_function(k.kernel)?);
            }
            modules.push(module);
        }
        Ok(GpuContext {
            inner: Arc::new(Inner {
                ctx,
                stream,
                copy_stream,
                functions,
                _modules: modules,
                name,
                sm_count,
            }),
        })
    }

    pub fn cuda(&self) -> &Arc<CudaContext> {
        &self.inner.ctx
    }

    /// The stream every kernel and GEMM runs on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.inner.stream
    }

    /// The stream for host-to-device uploads that overlap compute.
    pub fn copy_stream(&self) -> &Arc<CudaStream> {
        &self.inner.copy_stream
    }

    pub fn device_name(&self) -> &str {
        &self.inner.name
    }

    pub fn sm_count(&self) -> u32 {
        self.inner.sm_count
    }

    /// A loaded kernel by its `extern "C"` name.
    pub(crate) fn func(&self, name: &str) -> &CudaFunction {
        self.inner
            .functions
            .get(name)
            .unwrap_or_else(|| panic!("kernel {name} is not in the embedded modules"))
    }

    /// Waits for all work on both streams; returns the first asynchronous error, if any.
    pub fn synchronize(&self) -> Result<()> {
        self.inner.stream.synchronize()?;
        self.inner.copy_stream.synchronize()?;
        self.inner.ctx.check_err()?;
        Ok(())
    }
}

/// `blocks` x `threads` 1-D launch.
pub(crate) fn grid1(blocks: usize, threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks.max(1) as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `(x, y)` grid of `threads`-thread blocks.
pub(crate) fn grid2(x: usize, y: usize, threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (x.max(1) as u32, y.max(1) as u32, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// For tests and benches: a context, or `None` after printing `SKIP: <reason>` — unless the
/// environment has `REQUIRE_GPU=1`, then a missing GPU is a panic.
pub fn gpu_or_skip(what: &str) -> Option<GpuContext> {
    let required = std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1");
    match GpuContext::new() {
        Ok(g) => Some(g),
        Err(e) if required => panic!("{what}: REQUIRE_GPU=1 but no GPU: {e}"),
        Err(e) => {
            println!("SKIP: {what}: {e}");
            None
        }
    }
}
