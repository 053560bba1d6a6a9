//! `bae`: train Binary Autoencoders (and SAE baselines) on LLM hidden states.

use bae_train::{ArchKind, Device, RunOptions, TrainConfig, TrainError};
use std::sync::atomic::{AtomicI32, Ordering};

mod compare;
mod encode;
mod entropy;
mod entropy_bench;
mod eval;
mod export;
mod extract;
mod features;
mod interpret;
mod progress;
mod run_args;
mod sweep;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "bae",
    version,
    about = "Binary Autoencoders for LLM hidden states"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a BAE (or a baseline SAE) on activations; official defaults unless told otherwise
    Train(TrainArgs),
    /// Write synthetic activations with a known ground-truth entropy (paper §4.1)
    Synth(SynthArgs),
    /// Time one full CPU training step and print a table
    Bench(BenchArgs),
    /// Run SmolLM2 (GGUF) over text and store hidden states as safetensors shards
    Extract(extract::ExtractArgs),
    /// Feature report of a trained run: samples (top-k by salience), histograms, logit tables; --html for a browsable report
    Features(features::FeaturesArgs),
    /// Describe features with a judge model and score them (ComSem, detection), for a run or a compare folder
    Interpret(interpret::InterpretArgs),
    /// Write a trained run in another tool's format (SAELens 6; a BAE as the "binary" architecture)
    Export(export::ExportArgs),
    /// Judge a trained run on held-out rows: reconstruction, feature statistics, downstream fidelity on the LLM
    Eval(eval::EvalArgs),
    /// Store a corpus's binary codes under a trained BAE, bit-packed (d'/8 bytes a row), for entropy studies
    Encode(encode::EncodeArgs),
    /// Entropy of sets of hidden states under a trained BAE: one set, or by block, position, demonstrations
    Entropy(entropy::EntropyArgs),
    /// Synthetic ground-truth benchmark of the entropy estimators (independent, sparse, correlated bits)
    EntropyBench(entropy_bench::EntropyBenchArgs),
    /// Train BAE and the SAE baselines alike on the same rows and compare them (table + chart)
    Compare(compare::CompareArgs),
    /// Train and evaluate one model per point of a grid of settings (ablations: table + charts)
    Sweep(sweep::SweepArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum ArchArg {
    Bae,
    ReluL1,
    Topk,
    Jumprelu,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum PresetArg {
    Sparse,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum PrecisionArg {
    Bf16,
    Tf32,
    F32,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum DeviceArg {
    Auto,
    Cpu,
    Cuda,
}

/// Defaults are the official "standard usage": lr 5e-4, batch 512, 2000 epochs, lambda_e = lambda_c = 1e-7,
/// entropy on from a quarter of the run (official: epoch 500 of 2000), 80/20 sequential split, shuffled.
#[derive(Args)]
struct TrainArgs {
    /// activations: .safetensors (tensor `activations` or the only tensor, [n, d] f16/bf16/f32), .npy,
    /// or a `bae extract` folder (shards + manifest.json)
    #[arg(long, required_unless_present = "resume")]
    data: Option<PathBuf>,
    /// continue the run in this folder from its last complete checkpoint with its config.json (the
    /// training settings cannot be given with it: they would be ignored; --data may move the data)
    #[arg(long, conflicts_with_all = [
        "init", "out", "arch", "estimator", "expand", "lr", "batch_size", "epochs", "steps",
        "lambda_entropy", "lambda_cov", "entropy_start", "val_split", "seed", "no_shuffle", "l1", "k",
        "theta", "log_every", "checkpoint_every", "skip_nonfinite", "no_enc_bias", "no_dec_bias",
        "fvu_loss", "target_rate", "lambda_rate", "b_dec_mean", "preset",
    ])]
    resume: Option<PathBuf>,
    /// write a checkpoint every N steps ("500") or minutes ("10m"); one is always written at the end
    #[arg(long)]
    checkpoint_every: Option<String>,
    /// leave out rows holding NaN/Inf (counted in the summary) instead of stopping
    #[arg(long)]
    skip_nonfinite: bool,
    /// no encoder bias (b_enc fixed at 0, as the paper's formula; the official code learns it)
    #[arg(long)]
    no_enc_bias: bool,
    /// no decoder bias (b_dec fixed at 0)
    #[arg(long)]
    no_dec_bias: bool,
    /// output folder: model.safetensors, config.json, metrics.jsonl, summary.json
    #[arg(long, default_value = "runs/bae")]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "bae")]
    arch: ArchArg,
    /// backward of the binariser: sign_s (official default, G(1-G)) or ste (identity)
    #[arg(long, default_value = "sign_s")]
    estimator: String,
    /// code width d' = expand * d
    #[arg(long, default_value_t = 4)]
    expand: usize,
    #[arg(long, default_value_t = 5e-4)]
    lr: f64,
    #[arg(long, default_value_t = 512)]
    batch_size: usize,
    /// passes over the training rows (ignored when --steps is given)
    #[arg(long, default_value_t = 2000)]
    epochs: u64,
    /// total optimiser steps (overrides --epochs)
    #[arg(long)]
    steps: Option<u64>,
    #[arg(long, default_value_t = 1e-7)]
    lambda_entropy: f64,
    #[arg(long, default_value_t = 1e-7)]
    lambda_cov: f64,
    /// first step with the entropy term on (default: a quarter of the total steps)
    #[arg(long)]
    entropy_start: Option<u64>,
    /// share of rows held out for validation, from the end of the data (0 trains on every row)
    #[arg(long, default_value_t = 0.2)]
    val_split: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// train in file order (to compare step by step with PyTorch)
    #[arg(long)]
    no_shuffle: bool,
    /// start from these weights (safetensors with W_enc [d,d'], b_enc [d'], W_dec [d',d], b_dec [d])
    #[arg(long)]
    init: Option<PathBuf>,
    /// L1 weight (relu-l1, jumprelu)
    #[arg(long, default_value_t = 1e-3)]
    l1: f64,
    /// k (topk)
    #[arg(long, default_value_t = 32)]
    k: usize,
    /// threshold (jumprelu)
    #[arg(long, default_value_t = 0.5)]
    theta: f64,
    /// scale-free reconstruction term: the batch FVU instead of the MSE
    #[arg(long)]
    fvu_loss: bool,
    /// BAE: pull every feature's firing rate towards R with --lambda-rate * mean_j KL(R || p_j)
    #[arg(long, value_name = "R")]
    target_rate: Option<f64>,
    /// weight of the rate-target term
    #[arg(long, default_value_t = 1.0)]
    lambda_rate: f64,
    /// start b_dec at the mean of the training rows (official: zeros)
    #[arg(long)]
    b_dec_mean: bool,
    /// auto: the GPU when one is usable and the GPU path has passed its hardware checks (BAE only),
    /// else the CPU, saying why; cpu: the bit-exact reference path; cuda: the GPU or an error
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
    /// GPU precision of the dense products: bf16 (fast, fused encoder), tf32, or f32 (fidelity)
    #[arg(long, value_enum, default_value = "bf16")]
    gpu_precision: PrecisionArg,
    /// sparse: features that are actually rare (BAE): the scale-free FVU loss, b_dec from the data's
    /// mean, every firing rate pulled to 0.5 % (--target-rate 0.005 --lambda-rate 2), lr 1e-3, no
    /// entropy / covariance term; the flags it sets cannot be given with it
    #[arg(long, value_enum, conflicts_with_all = ["fvu_loss", "target_rate", "lambda_rate", "b_dec_mean", "lambda_entropy", "lambda_cov", "lr"])]
    preset: Option<PresetArg>,
    /// write a metrics line every N steps
    #[arg(long, default_value_t = 1)]
    log_every: u64,
    /// hide the progress bar
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct SynthArgs {
    #[arg(long)]
    n: usize,
    #[arg(long)]
    d: usize,
    /// number of independent ground-truth bits r
    #[arg(long)]
    bits: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// firing probabilities ~ U[p-min, p-max] (default: fair bits)
    #[arg(long, default_value_t = 0.5)]
    p_min: f64,
    #[arg(long, default_value_t = 0.5)]
    p_max: f64,
    /// standard deviation of the added Gaussian noise
    #[arg(long, default_value_t = 0.1)]
    noise: f64,
    /// .safetensors or .npy
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct BenchArgs {
    /// timed steps per configuration (median reported)
    #[arg(long, default_value_t = 10)]
    reps: usize,
    /// only the small configuration (d=576)
    #[arg(long)]
    small: bool,
}

/// Set by SIGINT/SIGTERM: the trainer finishes its step, writes a checkpoint and stops.
static STOP: AtomicI32 = AtomicI32::new(0);

fn install_signal_handlers() -> Result<(), String> {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { signal_hook::low_level::register(sig, move || STOP.store(sig, Ordering::SeqCst)) }
            .map_err(|e| format!("cannot install the signal handler: {e}"))?;
    }
    Ok(())
}

enum Failure {
    Message(String),
    Signal(i32),
}

impl From<String> for Failure {
    fn from(m: String) -> Self {
        Failure::Message(m)
    }
}

fn train_config(a: &TrainArgs, data: PathBuf) -> TrainConfig {
    let cfg = plain_train_config(a, data);
    match a.preset {
        None => cfg,
        Some(PresetArg::Sparse) => bae_train::config::sparse_preset(cfg),
    }
}

fn plain_train_config(a: &TrainArgs, data: PathBuf) -> TrainConfig {
    TrainConfig {
        data,
        out: a.out.clone(),
        arch: match a.arch {
            ArchArg::Bae => ArchKind::Bae,
            ArchArg::ReluL1 => ArchKind::ReluL1,
            ArchArg::Topk => ArchKind::Topk,
            ArchArg::Jumprelu => ArchKind::Jumprelu,
        },
        estimator: a.estimator.clone(),
        expand: a.expand,
        lr: a.lr,
        batch_size: a.batch_size,
        epochs: a.epochs,
        steps: a.steps,
        lambda_entropy: a.lambda_entropy,
        lambda_cov: a.lambda_cov,
        entropy_start: a.entropy_start,
        val_split: a.val_split,
        seed: a.seed,
        shuffle: !a.no_shuffle,
        init: a.init.clone(),
        l1: a.l1,
        k: a.k,
        theta: a.theta,
        log_every: a.log_every.max(1),
        checkpoint_every: a.checkpoint_every.clone(),
        skip_nonfinite: a.skip_nonfinite,
        enc_bias: !a.no_enc_bias,
        dec_bias: !a.no_dec_bias,
        fvu_loss: a.fvu_loss,
        target_rate: a.target_rate,
        lambda_rate: a.lambda_rate,
        b_dec_mean_init: a.b_dec_mean,
        ..TrainConfig::default()
    }
}

/// The saved config of a run folder, for --resume (the data path may be overridden).
fn resumed_config(dir: &std::path::Path, data: Option<PathBuf>) -> Result<TrainConfig, String> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: cannot read run config: {e}", path.display()))?;
    let mut cfg: TrainConfig = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a bae run config: {e}", path.display()))?;
    cfg.out = dir.to_path_buf();
    if let Some(d) = data {
        cfg.data = d;
    }
    Ok(cfg)
}

fn train(a: TrainArgs) -> Result<(), Failure> {
    let mode = match a.gpu_precision {
        PrecisionArg::Bf16 => bae_gpu::GemmMode::Bf16,
        PrecisionArg::Tf32 => bae_gpu::GemmMode::Tf32,
        PrecisionArg::F32 => bae_gpu::GemmMode::F32,
    };
    let device = match a.device {
        DeviceArg::Cpu => Device::Cpu,
        DeviceArg::Auto => Device::Auto(mode),
        DeviceArg::Cuda => Device::Cuda(mode),
    };
    let cfg = match &a.resume {
        Some(dir) => resumed_config(dir, a.data.clone())?,
        None => train_config(
            &a,
            a.data
                .clone()
                .expect("clap requires --data without --resume"),
        ),
    };
    cfg.validate()?;
    let src = bae_train::store::open_source(&cfg.data)?;
    eprintln!(
        "{} {} on {} ({} rows x {}) -> {}",
        if a.resume.is_some() {
            "resuming"
        } else {
            "training"
        },
        cfg.arch()?.name(),
        cfg.data.display(),
        src.n_rows(),
        src.dim(),
        cfg.out.display()
    );
    install_signal_handlers()?;
    let opts = RunOptions {
        show_progress: !a.quiet,
        resume: a.resume.is_some(),
        stop: Some(&STOP),
        device,
    };
    let outcome = match bae_train::train(&cfg, src.as_ref(), opts) {
        Ok(o) => o,
        Err(e @ TrainError::Interrupted { signal, .. }) => {
            eprintln!("{e}");
            return Err(Failure::Signal(signal));
        }
        Err(TrainError::Failed(m)) => return Err(m.into()),
    };
    if outcome.train_tokens_per_s > 0.0 {
        println!(
            "trained {} steps at {:.0} tokens/s on {}; outputs in {}",
            outcome.state.step,
            outcome.train_tokens_per_s,
            outcome.device,
            cfg.out.display()
        );
    } else {
        println!(
            "the run was already complete at step {}; outputs in {}",
            outcome.state.step,
            cfg.out.display()
        );
    }
    if outcome.skipped_rows > 0 {
        println!("skipped {} rows holding NaN/Inf", outcome.skipped_rows);
    }
    if let Some(v) = outcome.val {
        println!(
            "validation ({} rows): MSE {:.6}  FVU {:.4}  L0 {:.1}  entropy {:.2} bits  cov term {:.4e}",
            v.rows, v.mse, v.fvu, v.l0, v.entropy_bits, v.cov_term
        );
        println!(
            "features: dead {}  dense>10% {}  dense>50% {}  inverted {}  salience-dense>10% {}  (of {})",
            v.dead,
            v.dense_10,
            v.dense_50,
            v.inverted,
            v.salient_dense_10,
            v.rates.len()
        );
        println!(
            "rare value r = min(p, 1-p): specific (0.01%..1%) {}  constant (<0.01%) {}  dense (>10%) {}",
            v.specific, v.constant, v.dense_rare_10
        );
    }
    Ok(())
}

fn synth(a: SynthArgs) -> Result<(), String> {
    let spec = bae_train::synth::SynthSpec {
        n: a.n,
        d: a.d,
        bits: a.bits,
        p_min: a.p_min,
        p_max: a.p_max,
        noise: a.noise,
        seed: a.seed,
    };
    let s = bae_train::synth::generate(&spec)?;
    let mut meta = BTreeMap::new();
    meta.insert(
        "kind".into(),
        "synthetic independent bits (BAE paper §4.1)".into(),
    );
    meta.insert("bits".into(), a.bits.to_string());
    meta.insert(
        "true_entropy_bits".into(),
        format!("{}", s.true_entropy_bits),
    );
    meta.insert(
        "probabilities".into(),
        serde_json::to_string(&s.probabilities).map_err(|e| e.to_string())?,
    );
    meta.insert("noise".into(), a.noise.to_string());
    meta.insert("seed".into(), a.seed.to_string());
    bae_io::write_activations(&a.out, a.n, a.d, &s.data, bae_io::DType::F32, &meta)
        .map_err(|e| e.to_string())?;
    println!(
        "wrote {} rows x {} to {} (true entropy {:.3} bits over {} bits)",
        a.n,
        a.d,
        a.out.display(),
        s.true_entropy_bits,
        a.bits
    );
    Ok(())
}

fn bench(a: BenchArgs) -> Result<(), String> {
    let mut sizes = vec![(576, 2304, 512)];
    if !a.small {
        sizes.push((2048, 8192, 512));
    }
    println!("| d | d' | n | loss terms | median step | min step | tokens/s |");
    println!("|---|---|---|---|---|---|---|");
    for (d, dc, n) in sizes {
        for with_cov in [true, false] {
            let reps = if d > 1000 {
                a.reps.div_ceil(2).max(3)
            } else {
                a.reps
            };
            let t = bae_train::bench::time_step(d, dc, n, reps, with_cov);
            println!(
                "| {d} | {dc} | {n} | {} | {:.1} ms | {:.1} ms | {:.0} |",
                if with_cov {
                    "mse+entropy+cov"
                } else {
                    "mse+entropy"
                },
                t.median_s * 1e3,
                t.min_s * 1e3,
                t.tokens_per_s
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    bae_train::memory::keep_freed_memory();
    let result = match cli.command {
        Command::Train(a) => train(a),
        Command::Synth(a) => synth(a).map_err(Failure::Message),
        Command::Bench(a) => bench(a).map_err(Failure::Message),
        Command::Extract(a) => extract::run(a).map_err(Failure::Message),
        Command::Features(a) => features::run(a).map_err(Failure::Message),
        Command::Interpret(a) => interpret::run(a).map_err(Failure::Message),
        Command::Export(a) => export::run(a).map_err(Failure::Message),
        Command::Eval(a) => eval::run(a).map_err(Failure::Message),
        Command::Encode(a) => encode::run(a).map_err(Failure::Message),
        Command::Entropy(a) => install_signal_handlers()
            .map_err(TrainError::Failed)
            .and_then(|()| entropy::run(a, &STOP))
            .map_err(|e| match e {
                e @ TrainError::Interrupted { signal, .. } => {
                    eprintln!("{e}; re-run the same bae entropy to continue");
                    Failure::Signal(signal)
                }
                TrainError::Failed(m) => Failure::Message(m),
            }),
        Command::EntropyBench(a) => entropy_bench::run(a).map_err(Failure::Message),
        Command::Compare(a) => install_signal_handlers()
            .map_err(TrainError::Failed)
            .and_then(|()| compare::run(a, &STOP))
            .map_err(|e| match e {
                e @ TrainError::Interrupted { signal, .. } => {
                    eprintln!("{e}; re-run the same bae compare to continue");
                    Failure::Signal(signal)
                }
                TrainError::Failed(m) => Failure::Message(m),
            }),
        Command::Sweep(a) => install_signal_handlers()
            .map_err(TrainError::Failed)
            .and_then(|()| sweep::run(a, &STOP))
            .map_err(|e| match e {
                e @ TrainError::Interrupted { signal, .. } => {
                    eprintln!("{e}; re-run the same bae sweep to continue");
                    Failure::Signal(signal)
                }
                TrainError::Failed(m) => Failure::Message(m),
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // 128 + signal number, as shells report a process ended by that signal (130 SIGINT, 143 SIGTERM)
        Err(Failure::Signal(sig)) => ExitCode::from((128 + sig) as u8),
        Err(Failure::Message(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
