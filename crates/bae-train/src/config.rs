//! Training options, with the official defaults ("standard usage" of the paper's code).

use bae_ref::{AdamConfig, Arch, Estimator};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum ArchKind {
    Bae,
    ReluL1,
    Topk,
    Jumprelu,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    pub data: PathBuf,
    pub out: PathBuf,
    pub arch: ArchKind,
    /// "sign_s" (official default) or "ste"
    pub estimator: String,
    /// d' = expand * d (official: 4)
    pub expand: usize,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub adam_eps: f64,
    pub batch_size: usize,
    /// number of passes over the training rows (official: 2000); ignored when `steps` is set
    pub epochs: u64,
    /// total optimiser steps; overrides `epochs`
    pub steps: Option<u64>,
    pub lambda_entropy: f64,
    pub lambda_cov: f64,
    /// first step with the entropy term on; None = a quarter of the run (official: epoch 500 of 2000)
    pub entropy_start: Option<u64>,
    /// share of rows held out for validation, taken from the end of the data (official: 0.2, sequential)
    pub val_split: f64,
    pub seed: u64,
    pub shuffle: bool,
    /// L1 weight for relu-l1 / jumprelu
    pub l1: f64,
    /// k for topk
    pub k: usize,
    /// threshold for jumprelu
    pub theta: f64,
    /// start from these weights (golden layout) instead of the seeded init
    pub init: Option<PathBuf>,
    /// write a metrics line every this many steps (1 = every step)
    pub log_every: u64,
    /// rows per forward pass during validation
    pub eval_batch: usize,
    /// checkpoint every N steps ("500") or minutes ("10m"); a final checkpoint is always written
    pub checkpoint_every: Option<String>,
    /// leave out (and count) rows holding NaN/Inf instead of stopping
    pub skip_nonfinite: bool,
    /// learn the encoder bias b_enc (official code: yes; the paper's formula omits it)
    #[serde(default = "yes")]
    pub enc_bias: bool,
    /// learn the decoder bias b_dec
    #[serde(default = "yes")]
    pub dec_bias: bool,
    /// scale-free reconstruction term: the batch FVU instead of the MSE (so the other weights mean
    /// the same at any activation scale, layer or width)
    #[serde(default)]
    pub fvu_loss: bool,
    /// BAE: pull every feature's firing rate towards this rate with λ_rate · mean_j KL(p* ‖ p_j)
    #[serde(default)]
    pub target_rate: Option<f64>,
    /// weight of the rate-target term
    #[serde(default = "default_lambda_rate")]
    pub lambda_rate: f64,
    /// start b_dec at the mean of the training rows (official: zeros)
    #[serde(default)]
    pub b_dec_mean_init: bool,
}

fn default_lambda_rate() -> f64 {
    1.0
}

fn yes() -> bool {
    true
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            data: PathBuf::new(),
            out: PathBuf::from("runs/bae"),
            arch: ArchKind::Bae,
            estimator: "sign_s".into(),
            expand: 4,
            lr: 5e-4,
            beta1: 0.9,
            beta2: 0.999,
            adam_eps: 1e-8,
            batch_size: 512,
            epochs: 2000,
            steps: None,
            lambda_entropy: 1e-7,
            lambda_cov: 1e-7,
            entropy_start: None,
            val_split: 0.2,
            seed: 0,
            shuffle: true,
            l1: 1e-3,
            k: 32,
            theta: 0.5,
            init: None,
            log_every: 1,
            eval_batch: 4096,
            checkpoint_every: None,
            skip_nonfinite: false,
            enc_bias: true,
            dec_bias: true,
            fvu_loss: false,
            target_rate: None,
            lambda_rate: default_lambda_rate(),
            b_dec_mean_init: false,
        }
    }
}

impl TrainConfig {
    pub fn estimator(&self) -> Result<Estimator, String> {
        match self.estimator.as_str() {
            "sign_s" | "sign-s" => Ok(Estimator::SignS),
            "ste" | "sign" => Ok(Estimator::Ste),
            other => Err(format!(
                "unknown estimator '{other}' (expected sign_s or ste)"
            )),
        }
    }

    pub fn arch(&self) -> Result<Arch, String> {
        Ok(match self.arch {
            ArchKind::Bae => Arch::Bae {
                estimator: self.estimator()?,
                lambda_entropy: self.lambda_entropy,
                lambda_cov: self.lambda_cov,
            },
            ArchKind::ReluL1 => Arch::ReluL1 { l1: self.l1 },
            ArchKind::Topk => Arch::TopK { k: self.k, l1: 0.0 },
            ArchKind::Jumprelu => Arch::JumpRelu {
                theta: self.theta,
                l1: self.l1,
            },
        })
    }

    /// The additions to the official objective this config asks for.
    pub fn step_options(&self) -> bae_ref::StepOptions {
        bae_ref::StepOptions {
            fvu_loss: self.fvu_loss,
            rate_target: match (&self.arch, self.target_rate) {
                (ArchKind::Bae, Some(t)) => Some((t, self.lambda_rate)),
                _ => None,
            },
        }
    }

    pub fn adam(&self) -> AdamConfig {
        AdamConfig {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.adam_eps,
        }
    }

    /// Problems that make the run impossible, as one line.
    pub fn validate(&self) -> Result<(), String> {
        self.arch()?;
        if self.batch_size < 2 {
            return Err("--batch-size must be at least 2 (the covariance needs two rows)".into());
        }
        if self.expand == 0 {
            return Err("--expand must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.val_split) {
            return Err(format!(
                "--val-split must be in [0, 1), got {}",
                self.val_split
            ));
        }
        if self.lr.is_nan() || self.lr <= 0.0 || self.lr.is_infinite() {
            return Err(format!("--lr must be positive, got {}", self.lr));
        }
        if self.steps == Some(0) || (self.steps.is_none() && self.epochs == 0) {
            return Err("nothing to train: --steps/--epochs is 0".into());
        }
        if let Some(t) = self.target_rate {
            if !(t > 0.0 && t < 0.5) {
                return Err(format!("--target-rate must be in (0, 0.5), got {t}"));
            }
            if self.arch != ArchKind::Bae {
                return Err("--target-rate applies to the BAE only".into());
            }
        }
        if !(self.lambda_rate >= 0.0 && self.lambda_rate.is_finite()) {
            return Err(format!(
                "--lambda-rate must be >= 0, got {}",
                self.lambda_rate
            ));
        }
        if self.arch == ArchKind::Topk && self.k == 0 {
            return Err("--k must be at least 1".into());
        }
        Ok(())
    }
}

/// `--preset sparse`: BAE features that are actually rare, at any activation scale. Chosen by the
/// sweep in the README ("Sparse features"): the batch FVU as the reconstruction term (the model
/// trains on x / RMS), b_dec from the training rows' mean, every firing rate pulled towards 0.5 %
/// by 2 · mean_j KL(0.005 ‖ p_j), lr 1e-3, and no entropy / covariance term (at the official weights
/// they do nothing here, and the summed entropy makes features constant when it bites).
pub fn sparse_preset(cfg: TrainConfig) -> TrainConfig {
    TrainConfig {
        fvu_loss: true,
        b_dec_mean_init: true,
        target_rate: Some(0.005),
        lambda_rate: 2.0,
        lr: 1e-3,
        lambda_entropy: 0.0,
        lambda_cov: 0.0,
        ..cfg
    }
}
