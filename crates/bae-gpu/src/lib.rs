//! GPU side of the Binary Autoencoder trainer (CUDA, Hopper sm_90a).
//!
//! * [`kernels`]: the `kernels/*.cu` files compiled at build time by NVRTC 13.0 (from the pip
//!   wheels of `scripts/setup_cuda.sh`) and embedded as cubins, with their ptxas report.
//! * [`GpuContext`]: device, compute + copy streams, loaded kernels. [`GpuContext::new`] returns
//!   an error (never panics) without a driver, a device or built kernels.
//! * [`ops`]: one wrapper per kernel, named after its CPU twin in `bae-bits` / `bae-ref`.
//! * [`GpuTrainer`]: one full training step (forward, MSE + entropy + covariance terms, backward
//!   with either estimator, Adam) equal in meaning to `bae_ref::step` + `bae_ref::Adam::step`,
//!   with cuBLAS sgemm (fidelity) or cuBLASLt TF32 / bf16 (fast) for the dense products.

pub mod blas;
mod context;
mod error;
pub mod kernels;
pub mod ops;
mod trainer;

pub use blas::{Blas, GemmMode, GemmShape};
pub use context::{GpuContext, gpu_or_skip, unavailable_reason};
pub use error::{GpuError, Result};
pub use trainer::{GpuTrainer, StepTensors, TrainerConfig};

/// The commit at which `scripts/gpu_session.sh run all` last passed on real hardware (every
/// kernel against its CPU twin, the whole step, compute-sanitizer, `--device cuda` against
/// `--device cpu`, exact resume). `None` until then: `bae train --device auto` keeps to the CPU
/// and `--device cuda` warns, so nobody gets numbers from a path that never ran on a GPU.
pub const HARDWARE_VERIFIED: Option<&str> = None;

/// Why `--device auto` does not choose the GPU yet, in one line (None once verified).
pub fn unverified_reason() -> Option<&'static str> {
    match HARDWARE_VERIFIED {
        Some(_) => None,
        None => Some(
            "the GPU path has not yet been verified on GPU hardware (kernels and trainer never ran against their CPU twins on a device)",
        ),
    }
}

/// cudarc, re-exported so users of the wrappers can name device buffers.
pub use cudarc;
