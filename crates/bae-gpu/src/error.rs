//! Errors of the GPU side, with messages that say what to do.

use cudarc::cublas::result::CublasError;
use cudarc::cublaslt::result::CublasError as CublasLtError;
use cudarc::driver::DriverError;
use std::fmt;

#[derive(Debug)]
pub enum GpuError {
    /// No CUDA driver library (libcuda.so) could be opened: no GPU on this machine.
    NoDriver,
    /// The driver is there but no usable device (or initialisation failed).
    NoDevice(String),
    /// The build found no NVRTC wheels, so no kernels are embedded.
    KernelsNotBuilt(&'static str),
    /// The embedded cubins are for another architecture than the device's.
    UnsupportedDevice(String),
    /// cuBLAS / cuBLASLt could not be opened (needed by the GEMMs of the trainer).
    NoCublas(&'static str),
    Driver(DriverError),
    Cublas(String),
    /// Arguments that do not fit together (shapes, unsupported options).
    Invalid(String),
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuError::NoDriver => write!(
                f,
                "no GPU: the CUDA driver library (libcuda.so) is not present"
            ),
            GpuError::NoDevice(why) => write!(f, "no usable CUDA device: {why}"),
            GpuError::KernelsNotBuilt(why) => write!(f, "{why}"),
            GpuError::UnsupportedDevice(why) => write!(f, "unsupported device: {why}"),
            GpuError::NoCublas(lib) => write!(
                f,
                "{lib} could not be opened: put the CUDA 13 cuBLAS libraries on LD_LIBRARY_PATH \
                 (e.g. the nvidia/cublas/lib folder of the PyTorch install)"
            ),
            GpuError::Driver(e) => {
                let name = e
                    .error_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let text = e
                    .error_string()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                write!(f, "CUDA driver error {name}: {text}")
            }
            GpuError::Cublas(e) => write!(f, "cuBLAS error: {e}"),
            GpuError::Invalid(why) => write!(f, "invalid arguments: {why}"),
        }
    }
}

impl std::error::Error for GpuError {}

impl From<DriverError> for GpuError {
    fn from(e: DriverError) -> Self {
        GpuError::Driver(e)
    }
}

impl From<CublasError> for GpuError {
    fn from(e: CublasError) -> Self {
        GpuError::Cublas(format!("{:?}", e.0))
    }
}

impl From<CublasLtError> for GpuError {
    fn from(e: CublasLtError) -> Self {
        GpuError::Cublas(format!("(Lt) {:?}", e.0))
    }
}

pub type Result<T> = std::result::Result<T, GpuError>;
