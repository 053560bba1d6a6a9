//! Where the training steps run: the CPU reference (`bae_ref::step` + Adam) or the GPU trainer
//! (`bae_gpu::GpuTrainer`, BAE only). Both keep the same `TrainState` meaning, so a checkpoint
//! written by one can be resumed by the other.

use crate::trainer::TrainState;
use bae_gpu::{GemmMode, GpuContext, GpuTrainer, TrainerConfig};
use bae_ref::{Arch, Losses};

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
        enc_bias: bool,
        dec_bias: bool,
        /// the report of the step `submit` ran, until `finish` takes it
        done: Option<StepReport>,
    },
    Gpu {
        trainer: Box<GpuTrainer>,
        /// the next batch is already staged (uploading) by `prefetch`
        staged: bool,
    },
}

impl Engine {
    /// The engine for `device`, starting from `state`. `note` receives a one-line remark when
    /// `Auto` falls back to the CPU.
    pub(crate) fn new(
        device: Device,
        arch: Arch,
        biases: (bool, bool),
        max_batch: usize,
        state: &TrainState,
        note: &mut Option<String>,
    ) -> Result<Self, String> {
        let cpu = Engine::Cpu {
            arch,
            enc_bias: biases.0,
            dec_bias: biases.1,
            done: None,
        };
        let mode = match device {
            Device::Cpu => return Ok(cpu),
            Device::Cuda(mode) => mode,
            Device::Auto(mode) => {
                if !matches!(arch, Arch::Bae { .. }) {
                    return Ok(cpu); // the baselines train on the CPU
                }
                if let Some(why) = bae_gpu::unavailable_reason() {
                    *note = Some(format!("{why}; training on the CPU"));
                    return Ok(cpu);
                }
                mode
            }
        };
        let gpu = match GpuContext::new() {
            Ok(g) => g,
            Err(e) if matches!(device, Device::Auto(_)) => {
                *note = Some(format!("{e}; training on the CPU"));
                return Ok(cpu);
            }
            Err(e) => return Err(format!("--device cuda: {e}")),
        };
        let mut cfg = TrainerConfig::new(arch, state.adam.config, max_batch, mode);
        cfg.fused_encode = mode == GemmMode::Bf16;
        let gpu_err = |e: bae_gpu::GpuError| format!("GPU {}: {e}", gpu.device_name());
        let mut t = GpuTrainer::new(&gpu, &state.params, cfg).map_err(gpu_err)?;
        t.set_adam_state(&state.adam.m, &state.adam.v, state.adam.t)
            .map_err(gpu_err)?;
        t.freeze_biases(!biases.0, !biases.1);
        Ok(Engine::Gpu {
            trainer: Box::new(t),
            staged: false,
        })
    }

    /// "cpu" or the GPU's name and precision, for the start line and the summary.
    pub(crate) fn describe(&self) -> String {
        match self {
            Engine::Cpu { .. } => format!("cpu ({} threads)", rayon::current_num_threads()),
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
                enc_bias,
                dec_bias,
                done,
            } => {
                let mut s = bae_ref::step(&state.params, x, n, arch, entropy_on);
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
