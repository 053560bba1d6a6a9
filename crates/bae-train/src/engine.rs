//! Where the training steps run: the CPU reference (`bae_ref::step` + Adam) or the GPU trainer
//! (`bae_gpu::GpuTrainer`, BAE only). Both keep the same `TrainState` meaning, so a checkpoint
//! written by one can be resumed by the other.

use crate::trainer::TrainState;
#[cfg(feature = "gpu")]
use bae_gpu::{GemmMode, GpuContext, GpuTrainer, TrainerConfig};
#[cfg(not(feature = "gpu"))]
pub use nogpu::GemmMode;

/// Builds without the `gpu` feature (the fuzz targets, which must not link CUDA code): the same
/// `Device` type, and `--device auto` / `cuda` answered by the CPU / a one-line error.
#[cfg(not(feature = "gpu"))]
mod nogpu {
    /// Stand-in for `bae_gpu::GemmMode`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub enum GemmMode {
        #[default]
        Bf16,
        F32,
    }

    pub fn unverified_reason() -> Option<&'static str> {
        None
    }

    pub fn unavailable_reason() -> Option<String> {
        Some("this build has no GPU support (bae-train without its `gpu` feature)".into())
    }
}
use bae_ref::{Arch, Losses, StepOptions};
#[cfg(not(feature = "gpu"))]
use nogpu as bae_gpu;

/// The device asked for on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Device {
    /// The GPU, with this precision, when one is usable for this run, else the CPU (saying why).
    Auto(GemmMode),
    /// The CPU reference path (the library default: bit-exact and reproducible everywhere).
    #[default]
    Cpu,
    /// The GPU with this precision for the dense products (an error when there is none).
    Cuda(GemmMode),
}

/// What one step reports to the loop.
pub struct StepReport {
    pub losses: Losses,
    /// mean active codes per row (computed only when asked: it costs a download on the GPU)
    pub l0: Option<f64>,
}

pub(crate) enum Engine {
    Cpu {
        arch: Arch,
        opts: StepOptions,
        enc_bias: bool,
        dec_bias: bool,
        /// the report of the step `submit` ran, until `finish` takes it
        done: Option<StepReport>,
    },
    #[cfg(feature = "gpu")]
    Gpu {
        trainer: Box<GpuTrainer>,
        /// the next batch is already staged (uploading) by `prefetch`
        staged: bool,
    },
}

impl Engine {
    /// The engine for `device`, starting from `state`. `note` receives a one-line remark when
    /// `Auto` falls back to the CPU, or a warning when `Cuda` runs the unverified GPU path.
    pub(crate) fn new(
        device: Device,
        arch: Arch,
        biases: (bool, bool),
        max_batch: usize,
        state: &TrainState,
        opts: StepOptions,
        note: &mut Option<String>,
    ) -> Result<Self, String> {
        let gate = GpuGate {
            unverified: bae_gpu::unverified_reason(),
            unavailable: bae_gpu::unavailable_reason(),
        };
        let is_bae = matches!(arch, Arch::Bae { .. });
        #[cfg(feature = "gpu")]
        let start = |mode: GemmMode| start_gpu(mode, arch, biases, max_batch, state, opts);
        #[cfg(not(feature = "gpu"))]
        let start = |_: GemmMode| -> Result<std::convert::Infallible, String> {
            let _ = (max_batch, state);
            Err(bae_gpu::unavailable_reason().unwrap_or_default())
        };
        Ok(match choose_device(device, is_bae, &gate, start, note)? {
            #[cfg(not(feature = "gpu"))]
            Some(never) => match never {},
            #[cfg(feature = "gpu")]
            Some(trainer) => Engine::Gpu {
                trainer: Box::new(trainer),
                staged: false,
            },
            None => Engine::Cpu {
                arch,
                opts,
                enc_bias: biases.0,
                dec_bias: biases.1,
                done: None,
            },
        })
    }

    /// "cpu" or the GPU's name and precision, for the start line and the summary.
    pub(crate) fn describe(&self) -> String {
        match self {
            Engine::Cpu { .. } => format!("cpu ({} threads)", rayon::current_num_threads()),
            #[cfg(feature = "gpu")]
            Engine::Gpu { trainer: t, .. } => {
                format!("cuda: {} ({:?} GEMMs)", t.gpu().device_name(), t.mode())
            }
        }
    }

    /// Starts one step on the `n` rows of `x` (the batch `prefetch` staged, if it did). On the
    /// CPU the step runs to completion and `state` is updated; on the GPU it is queued and the
    /// weights stay on the device until [`Self::sync`]. A non-finite loss (seen in `finish`) has
    /// not been applied on the CPU and has on the GPU: either way the last checkpoint is good.
    pub(crate) fn submit(
        &mut self,
        state: &mut TrainState,
        x: &[f32],
        n: usize,
        entropy_on: bool,
    ) -> Result<(), String> {
        match self {
            Engine::Cpu {
                arch,
                opts,
                enc_bias,
                dec_bias,
                done,
            } => {
                let mut s = bae_ref::step_with(&state.params, x, n, arch, entropy_on, opts);
                let active: u64 = s
                    .forward
                    .codes
                    .row_popcounts()
                    .iter()
                    .map(|&c| c as u64)
                    .sum();
                let l0 = Some(active as f64 / n as f64);
                if s.losses.total.is_finite() {
                    // a disabled bias keeps a zero gradient, so Adam leaves it at its (zero) init
                    if !*enc_bias {
                        s.backward.grads.b_enc.fill(0.0);
                    }
                    if !*dec_bias {
                        s.backward.grads.b_dec.fill(0.0);
                    }
                    state.adam.step(&mut state.params, &s.backward.grads);
                }
                *done = Some(StepReport {
                    losses: s.losses,
                    l0,
                });
                Ok(())
            }
            #[cfg(feature = "gpu")]
            Engine::Gpu { trainer, staged } => {
                if !std::mem::take(staged) {
                    trainer.stage(x).map_err(|e| format!("GPU upload: {e}"))?;
                }
                trainer
                    .run_staged(entropy_on, true)
                    .map_err(|e| format!("GPU step: {e}"))
            }
        }
    }

    /// Starts uploading the next batch while the device computes the current one (GPU only).
    pub(crate) fn prefetch(&mut self, x: &[f32]) -> Result<(), String> {
        #[cfg(not(feature = "gpu"))]
        let _ = x;
        #[cfg(feature = "gpu")]
        if let Engine::Gpu { trainer, staged } = self {
            trainer.stage(x).map_err(|e| format!("GPU upload: {e}"))?;
            *staged = true;
        }
        Ok(())
    }

    /// The report of the submitted step (waits for the device); L0 only when asked, as it costs
    /// a download on the GPU.
    pub(crate) fn finish(&mut self, want_l0: bool) -> Result<StepReport, String> {
        match self {
            Engine::Cpu { done, .. } => {
                let mut r = done.take().ok_or("finish without a submitted step")?;
                if !want_l0 {
                    r.l0 = None;
                }
                Ok(r)
            }
            #[cfg(feature = "gpu")]
            Engine::Gpu { trainer, .. } => {
                let err = |e: bae_gpu::GpuError| format!("GPU step: {e}");
                let losses = trainer.losses().map_err(err)?;
                let l0 = if want_l0 {
                    Some(trainer.mean_l0().map_err(err)?)
                } else {
                    None
                };
                Ok(StepReport { losses, l0 })
            }
        }
    }

    /// Brings `state` up to date with the device (weights, Adam moments and count).
    pub(crate) fn sync(&self, state: &mut TrainState) -> Result<(), String> {
        #[cfg(not(feature = "gpu"))]
        let _ = state;
        #[cfg(feature = "gpu")]
        if let Engine::Gpu { trainer: t, .. } = self {
            let err = |e: bae_gpu::GpuError| format!("GPU download: {e}");
            state.params = t.params().map_err(err)?;
            let (m, v) = t.adam_moments().map_err(err)?;
            state.adam.m = m;
            state.adam.v = v;
            state.adam.t = t.adam_steps();
        }
        Ok(())
    }
}

/// What is known about the GPU path before anything touches a device.
pub(crate) struct GpuGate {
    /// the GPU path has not passed its hardware checks (`bae_gpu::HARDWARE_VERIFIED`)
    pub unverified: Option<&'static str>,
    /// no kernels built or no driver library
    pub unavailable: Option<String>,
}

/// Resolves `device`: `Some(gpu)` from `start`, or `None` for the CPU. `Auto` takes the CPU,
/// naming why in `note`, when the run is a baseline, the GPU path is unverified, nothing CUDA is
/// usable, or *any* start-up step fails (no device, cuBLAS missing, no cuBLASLt algorithm, out of
/// memory); `Cuda` turns those into an error and runs an unverified path with a warning.
pub(crate) fn choose_device<T>(
    device: Device,
    is_bae: bool,
    gate: &GpuGate,
    start: impl FnOnce(GemmMode) -> Result<T, String>,
    note: &mut Option<String>,
) -> Result<Option<T>, String> {
    let mode = match device {
        Device::Cpu => return Ok(None),
        Device::Auto(_) if !is_bae => return Ok(None), // the baselines train on the CPU
        Device::Auto(_) if gate.unverified.is_some() || gate.unavailable.is_some() => {
            let why = gate
                .unverified
                .map(str::to_string)
                .or(gate.unavailable.clone());
            let hint = if gate.unverified.is_some() {
                " (--device cuda runs it anyway)"
            } else {
                ""
            };
            *note = Some(format!(
                "{}; training on the CPU{hint}",
                why.unwrap_or_default()
            ));
            return Ok(None);
        }
        Device::Auto(mode) | Device::Cuda(mode) => mode,
    };
    match start(mode) {
        Ok(t) => {
            if let (Device::Cuda(_), Some(why)) = (device, gate.unverified) {
                *note = Some(format!(
                    "warning: {why}; compare with --device cpu before trusting it"
                ));
            }
            Ok(Some(t))
        }
        Err(e) if matches!(device, Device::Auto(_)) => {
            *note = Some(format!("{e}; training on the CPU"));
            Ok(None)
        }
        Err(e) => Err(format!("--device cuda: {e}")),
    }
}

/// Every GPU start-up step, any failure as one line.
#[cfg(feature = "gpu")]
fn start_gpu(
    mode: GemmMode,
    arch: Arch,
    biases: (bool, bool),
    max_batch: usize,
    state: &TrainState,
    opts: StepOptions,
) -> Result<GpuTrainer, String> {
    let gpu = GpuContext::new().map_err(|e| e.to_string())?;
    let mut cfg = TrainerConfig::new(arch, state.adam.config, max_batch, mode);
    cfg.fused_encode = mode == GemmMode::Bf16;
    cfg.step = opts;
    let gpu_err = |e: bae_gpu::GpuError| format!("GPU {}: {e}", gpu.device_name());
    let mut t = GpuTrainer::new(&gpu, &state.params, cfg).map_err(gpu_err)?;
    t.set_adam_state(&state.adam.m, &state.adam.v, state.adam.t)
        .map_err(gpu_err)?;
    t.freeze_biases(!biases.0, !biases.1);
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BF: GemmMode = GemmMode::Bf16;

    fn gate(unverified: bool, unavailable: Option<&str>) -> GpuGate {
        GpuGate {
            unverified: unverified.then_some("not verified on hardware"),
            unavailable: unavailable.map(str::to_string),
        }
    }

    /// Runs `choose_device` with a start that succeeds (Ok(mode)) or fails with `fail`.
    fn choose(
        device: Device,
        is_bae: bool,
        g: &GpuGate,
        fail: Option<&str>,
    ) -> (Result<Option<GemmMode>, String>, Option<String>, bool) {
        let mut note = None;
        let mut started = false;
        let r = choose_device(
            device,
            is_bae,
            g,
            |m| {
                started = true;
                fail.map_or(Ok(m), |f| Err(f.to_string()))
            },
            &mut note,
        );
        (r, note, started)
    }

    #[test]
    fn auto_keeps_to_the_cpu_while_unverified() {
        let (r, note, started) = choose(Device::Auto(BF), true, &gate(true, None), None);
        assert_eq!(r, Ok(None));
        assert!(!started, "an unverified GPU path is not even started");
        let note = note.unwrap();
        assert!(
            note.contains("not verified") && note.contains("training on the CPU"),
            "{note}"
        );
        assert!(note.contains("--device cuda runs it anyway"), "{note}");
    }

    #[test]
    fn cuda_runs_the_unverified_path_with_a_warning() {
        let (r, note, started) = choose(Device::Cuda(BF), true, &gate(true, None), None);
        assert_eq!(r, Ok(Some(BF)));
        assert!(started);
        assert!(note.unwrap().starts_with("warning: not verified"));
    }

    #[test]
    fn auto_falls_back_on_any_start_up_failure() {
        let why = "GPU H200: cuBLASLt: no algorithm for the encoder GEMM";
        let (r, note, started) = choose(Device::Auto(BF), true, &gate(false, None), Some(why));
        assert_eq!(r, Ok(None));
        assert!(started);
        assert_eq!(note.unwrap(), format!("{why}; training on the CPU"));
    }

    #[test]
    fn cuda_start_up_failure_is_one_error_line() {
        let (r, _, _) = choose(
            Device::Cuda(BF),
            true,
            &gate(false, None),
            Some("no device"),
        );
        assert_eq!(r, Err("--device cuda: no device".to_string()));
    }

    #[test]
    fn auto_without_cuda_says_why_and_baselines_stay_on_the_cpu() {
        let g = gate(false, Some("no CUDA driver"));
        let (r, note, started) = choose(Device::Auto(BF), true, &g, None);
        assert_eq!((r, started), (Ok(None), false));
        assert_eq!(note.unwrap(), "no CUDA driver; training on the CPU");
        let (r, note, started) = choose(Device::Auto(BF), false, &gate(false, None), None);
        assert_eq!((r, note, started), (Ok(None), None, false));
        let (r, _, started) = choose(Device::Cpu, true, &gate(false, None), None);
        assert_eq!((r, started), (Ok(None), false));
    }

    #[test]
    fn verified_auto_takes_the_gpu_silently() {
        let (r, note, _) = choose(Device::Auto(BF), true, &gate(false, None), None);
        assert_eq!((r, note), (Ok(Some(BF)), None));
    }
}
