//! The training settings `bae compare` and `bae sweep` share (every model or grid point trains
//! with them), as one flattened clap group.

use bae_train::{ArchKind, TrainConfig};
use clap::{Args, ValueEnum};

#[derive(Clone, Copy, ValueEnum)]
pub enum ArchChoice {
    Bae,
    ReluL1,
    Topk,
    Jumprelu,
}

impl ArchChoice {
    pub fn kind(self) -> ArchKind {
        match self {
            ArchChoice::Bae => ArchKind::Bae,
            ArchChoice::ReluL1 => ArchKind::ReluL1,
            ArchChoice::Topk => ArchKind::Topk,
            ArchChoice::Jumprelu => ArchKind::Jumprelu,
        }
    }
}

#[derive(Args)]
pub struct SharedTrainArgs {
    /// optimiser steps per model (overrides --epochs)
    #[arg(long)]
    pub steps: Option<u64>,
    /// passes over the training rows per model
    #[arg(long, default_value_t = 2)]
    pub epochs: u64,
    #[arg(long, default_value_t = 512)]
    pub batch_size: usize,
    /// code width d' = expand * d
    #[arg(long, default_value_t = 4)]
    pub expand: usize,
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 0.2)]
    pub val_split: f64,
    #[arg(long, default_value_t = 1e-7)]
    pub lambda_entropy: f64,
    #[arg(long, default_value_t = 1e-7)]
    pub lambda_cov: f64,
    /// first step with the entropy term on (default: a quarter of the steps)
    #[arg(long)]
    pub entropy_start: Option<u64>,
    /// L1 weight (relu-l1, jumprelu)
    #[arg(long, default_value_t = 1e-3)]
    pub l1: f64,
    /// k (topk)
    #[arg(long, default_value_t = 32)]
    pub k: usize,
    /// threshold (jumprelu)
    #[arg(long, default_value_t = 0.5)]
    pub theta: f64,
}

impl SharedTrainArgs {
    /// `base` with these settings.
    pub fn apply(&self, base: TrainConfig) -> TrainConfig {
        TrainConfig {
            expand: self.expand,
            lr: self.lr,
            batch_size: self.batch_size,
            epochs: self.epochs,
            steps: self.steps,
            lambda_entropy: self.lambda_entropy,
            lambda_cov: self.lambda_cov,
            entropy_start: self.entropy_start,
            val_split: self.val_split,
            seed: self.seed,
            l1: self.l1,
            k: self.k,
            theta: self.theta,
            ..base
        }
    }
}
