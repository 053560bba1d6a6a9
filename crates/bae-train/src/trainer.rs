//! The training loop: batches in a seeded order, one reference step, Adam, metrics, outputs.
//!
//! The whole state of a run is `TrainState` (weights, Adam moments and step count) plus the
//! config: the batch order is a function of (seed, step), so a run can stop and go on exactly.

use crate::checkpoint::{self, Every};
use crate::config::TrainConfig;
use crate::data::{RowSource, Schedule};
use crate::engine::{Device, Engine};
use crate::eval::{EvalReport, evaluate};
use bae_io::JsonlWriter;
use bae_ref::{Adam, PARAM_NAMES, Params};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

/// Everything that changes during training.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    pub params: Params<f32>,
    pub adam: Adam<f32>,
    /// optimiser steps completed
    pub step: u64,
}

/// Calls `each` on up to 16,384 training rows spread evenly over the first `n_train`.
fn for_training_sample(
    src: &dyn RowSource,
    n_train: usize,
    mut each: impl FnMut(&[f32]),
) -> Result<usize, String> {
    let d = src.dim();
    let take = n_train.clamp(1, 16_384);
    let idx: Vec<usize> = (0..take).map(|i| i * n_train.max(1) / take).collect();
    let mut buf = vec![0f32; 1024 * d];
    for chunk in idx.chunks(1024) {
        let rows = &mut buf[..chunk.len() * d];
        src.gather(chunk, rows)?;
        rows.chunks(d).for_each(&mut each);
    }
    Ok(take)
}

/// The mean of a sample of training rows (f64 sums): the decoder bias a sparse code starts from, so
/// the few active features describe the deviation from it instead of spending the first thousands
/// of steps walking b_dec to the data's mean.
pub fn training_mean(src: &dyn RowSource, n_train: usize) -> Result<Vec<f32>, String> {
    let mut sum = vec![0.0f64; src.dim()];
    let take = for_training_sample(src, n_train, |row| {
        sum.iter_mut().zip(row).for_each(|(s, &v)| *s += v as f64)
    })?;
    Ok(sum.iter().map(|s| (s / take as f64) as f32).collect())
}

/// The root mean square element of the same sample: the scale-free mode trains on x / s, so that
/// nothing the encoder or Adam sees depends on the activations' scale.
pub fn training_rms(src: &dyn RowSource, n_train: usize) -> Result<f32, String> {
    let mut sq = 0.0f64;
    let take = for_training_sample(src, n_train, |row| {
        sq += row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>()
    })?;
    let rms = (sq / (take * src.dim()) as f64).sqrt() as f32;
    Ok(if rms > 0.0 && rms.is_finite() {
        rms
    } else {
        1.0
    })
}

/// Rows of another source divided by a scale.
struct ScaledRows<'a> {
    inner: &'a dyn RowSource,
    inv_scale: f32,
}

impl RowSource for ScaledRows<'_> {
    fn n_rows(&self) -> usize {
        self.inner.n_rows()
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn gather(&self, idx: &[usize], out: &mut [f32]) -> Result<(), String> {
        self.inner.gather(idx, out)?;
        out.iter_mut().for_each(|v| *v *= self.inv_scale);
        Ok(())
    }
    fn train_rows(&self, val_split: f64) -> usize {
        self.inner.train_rows(val_split)
    }
}

/// Weights trained on x / s, as weights of the same model on x: W_enc / s, s W_dec, s b_dec.
fn unscale(p: &Params<f32>, s: f32) -> Params<f32> {
    let mut q = p.clone();
    q.w_enc.iter_mut().for_each(|v| *v /= s);
    q.w_dec.iter_mut().for_each(|v| *v *= s);
    q.b_dec.iter_mut().for_each(|v| *v *= s);
    q
}

/// Seeded torch-style init (U(-1/sqrt(fan_in), 1/sqrt(fan_in))).
pub fn init_params(d: usize, d_code: usize, seed: u64) -> Params<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Params::init_linear(d, d_code, || rng.random::<f64>())
}

/// Load `--init` weights in the golden layout; shapes must match the data and `--expand`.
pub fn load_init(path: &Path, d: usize, d_code: usize) -> Result<Params<f32>, String> {
    let (mut map, _) = bae_io::load_tensors(path).map_err(|e| e.to_string())?;
    let mut p = Params::zeros(d, d_code);
    let shapes = p.shapes();
    for ((name, shape), dst) in PARAM_NAMES.iter().zip(shapes.iter()).zip(p.tensors_mut()) {
        *dst = bae_io::take_tensor(&mut map, path, name, shape).map_err(|e| e.to_string())?;
    }
    if let Some((name, i)) = p.first_non_finite() {
        return Err(format!(
            "{}: tensor {name} has a non-finite value at index {i}",
            path.display()
        ));
    }
    Ok(p)
}

pub fn save_model(
    path: &Path,
    params: &Params<f32>,
    meta: &BTreeMap<String, String>,
) -> Result<(), String> {
    let shapes = params.shapes();
    let tensors: Vec<(&str, &[usize], &[f32])> = PARAM_NAMES
        .iter()
        .zip(shapes.iter())
        .zip(params.tensors())
        .map(|((n, s), t)| (*n, s.as_slice(), t))
        .collect();
    bae_io::save_tensors(path, &tensors, meta).map_err(|e| e.to_string())
}

/// What a finished run returns.
#[derive(Debug)]
pub struct TrainOutcome {
    pub state: TrainState,
    pub val: Option<EvalReport>,
    pub train_tokens_per_s: f64,
    /// where the steps ran ("cpu (N threads)" or the GPU's name and precision)
    pub device: String,
    /// why `Device::Auto` chose the CPU, if it did
    pub device_note: Option<String>,
    /// rows left out because they held NaN/Inf (only with `skip_nonfinite`)
    pub skipped_rows: u64,
}

/// Why a run ended early.
#[derive(Debug)]
pub enum TrainError {
    /// bad input, a diverged loss, an I/O failure: one line
    Failed(String),
    /// a signal asked the run to stop; a checkpoint was written at `step`
    Interrupted {
        signal: i32,
        step: u64,
        checkpoint: String,
    },
}

impl std::fmt::Display for TrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainError::Failed(m) => f.write_str(m),
            TrainError::Interrupted {
                signal,
                step,
                checkpoint,
            } => write!(
                f,
                "stopped by signal {signal} after step {step}; checkpoint written to {checkpoint} (resume with --resume)"
            ),
        }
    }
}

impl From<String> for TrainError {
    fn from(m: String) -> Self {
        TrainError::Failed(m)
    }
}

/// How to run: progress display, resuming, and the flag a signal handler sets to stop the run.
#[derive(Default)]
pub struct RunOptions<'a> {
    pub show_progress: bool,
    /// continue from the checkpoint in `cfg.out`
    pub resume: bool,
    /// non-zero: the number of the signal that asked to stop
    pub stop: Option<&'a AtomicI32>,
    /// where the steps run
    pub device: Device,
}

/// First step with the entropy term on.
pub fn entropy_start(cfg: &TrainConfig, schedule: &Schedule) -> u64 {
    cfg.entropy_start.unwrap_or(schedule.total_steps / 4)
}

/// Keep the metrics lines of steps <= `step` (a resumed run rewrites the ones after its checkpoint).
fn truncate_metrics(path: &Path, step: u64) -> Result<(), String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(_) => return Ok(()),
    };
    let mut kept = String::new();
    for line in text.lines() {
        let s = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["step"].as_u64());
        if matches!(s, Some(s) if s <= step) {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    bae_io::write_atomic(path, kept.as_bytes()).map_err(|e| e.to_string())
}

/// The batches of a run in schedule order, gathered from the source.
struct Batches<'a> {
    schedule: &'a Schedule,
    src: &'a dyn RowSource,
    /// the row order of the epoch last loaded from
    order: Option<(u64, Vec<usize>)>,
    /// leave out rows holding NaN/Inf (counted) instead of failing
    skip: bool,
    skipped: u64,
}

impl Batches<'_> {
    /// Gathers the batch of `step` into `x`: `(epoch, batch, rows)`, or `(epoch, batch, why)`.
    fn load(&mut self, step: u64, x: &mut [f32]) -> Result<(u64, u64, usize), (u64, u64, String)> {
        let (epoch, b) = self.schedule.position(step);
        if self.order.as_ref().map(|o| o.0) != Some(epoch) {
            self.order = Some((epoch, self.schedule.epoch_order(epoch)));
        }
        let order = &self.order.as_ref().expect("order set above").1;
        let rows = self.schedule.batch(order, b);
        let d = self.src.dim();
        let n = match self.src.gather(rows, &mut x[..rows.len() * d]) {
            Ok(()) => rows.len(),
            Err(e) if !self.skip => return Err((epoch, b, e)),
            Err(_) => {
                let mut n = 0;
                for &r in rows {
                    if self.src.gather(&[r], &mut x[n * d..(n + 1) * d]).is_ok() {
                        n += 1;
                    } else {
                        self.skipped += 1;
                    }
                }
                n
            }
        };
        if n < 2 {
            return Err((epoch, b, "fewer than two usable rows".to_string()));
        }
        Ok((epoch, b, n))
    }
}

/// Train on `src` as `cfg` says, writing `model.safetensors`, `config.json`, `metrics.jsonl`,
/// `summary.json` and `checkpoint.safetensors` into `cfg.out`.
pub fn train(
    cfg: &TrainConfig,
    src: &dyn RowSource,
    opts: RunOptions,
) -> Result<TrainOutcome, TrainError> {
    cfg.validate()?;
    let arch = cfg.arch()?;
    let every = match &cfg.checkpoint_every {
        Some(t) => Every::parse(t)?,
        None => Every::default(),
    };
    let d = src.dim();
    let d_code = cfg.expand * d;
    let schedule = Schedule::new(
        src.n_rows(),
        src.train_rows(cfg.val_split),
        cfg.batch_size,
        cfg.shuffle,
        cfg.seed,
        cfg.epochs,
        cfg.steps,
    )?;
    let ent_start = entropy_start(cfg, &schedule);
    // the scale-free mode trains on x / s (s = RMS of the training rows) and saves weights for x
    let input_scale = if cfg.fvu_loss {
        training_rms(src, schedule.n_train)?
    } else {
        1.0
    };
    let scaled = ScaledRows {
        inner: src,
        inv_scale: 1.0 / input_scale,
    };
    let train_src: &dyn RowSource = if cfg.fvu_loss { &scaled } else { src };
    let out = &cfg.out;
    std::fs::create_dir_all(out)
        .map_err(|e| format!("{}: cannot create output folder: {e}", out.display()))?;
    // two trainings never write one folder at once (released when the run ends or dies)
    let _lock = bae_io::FolderLock::acquire(out).map_err(|e| e.to_string())?;
    let metrics_path = out.join("metrics.jsonl");
    // a run killed before its first checkpoint resumes from the start, with the same config
    let resuming = opts.resume && checkpoint::path(out).is_file();
    let (mut state, mut metrics) = if resuming {
        let state = checkpoint::load(out, cfg, d, d_code)?;
        truncate_metrics(&metrics_path, state.step)?;
        (
            state,
            JsonlWriter::append(&metrics_path).map_err(|e| e.to_string())?,
        )
    } else {
        let params = match &cfg.init {
            Some(p) => load_init(p, d, d_code)?,
            None => init_params(d, d_code, cfg.seed),
        };
        let mut params = params;
        if cfg.b_dec_mean_init && cfg.init.is_none() {
            params.b_dec = training_mean(src, schedule.n_train)?;
            params.b_dec.iter_mut().for_each(|v| *v /= input_scale);
        }
        if !cfg.enc_bias {
            params.b_enc.fill(0.0);
        }
        if !cfg.dec_bias {
            params.b_dec.fill(0.0);
        }
        let adam = Adam::new(cfg.adam(), &params);
        let config_json = serde_json::to_string_pretty(cfg).map_err(|e| e.to_string())?;
        bae_io::write_atomic(&out.join("config.json"), config_json.as_bytes())
            .map_err(|e| e.to_string())?;
        let state = TrainState {
            params,
            adam,
            step: 0,
        };
        (
            state,
            JsonlWriter::create(&metrics_path).map_err(|e| e.to_string())?,
        )
    };
    let ckpt_path = checkpoint::path(out).display().to_string();
    let mut last_ckpt: Option<u64> = resuming.then_some(state.step);
    let last_good = |last: Option<u64>| match last {
        Some(s) => format!("last good checkpoint: {ckpt_path} (step {s})"),
        None => "no checkpoint was written yet".to_string(),
    };
    // A failed checkpoint write (full disk, quota) leaves the previous file in place: say which.
    let save = |state: &TrainState, last: Option<u64>| {
        checkpoint::save(out, state).map_err(|e| {
            let kept = match last {
                Some(s) => format!("the previous checkpoint (step {s}) is intact"),
                None => "no earlier checkpoint exists".to_string(),
            };
            format!("step {}: checkpoint not written: {e}; {kept}", state.step)
        })
    };

    let mut device_note = None;
    let mut engine = Engine::new(
        opts.device,
        arch,
        (cfg.enc_bias, cfg.dec_bias),
        cfg.batch_size,
        &state,
        cfg.step_options(),
        &mut device_note,
    )?;
    let device = engine.describe();
    // the device note (CPU fallback or unverified-GPU warning) shows even with --quiet
    if let Some(note) = &device_note {
        eprintln!("{note}");
    }
    if opts.show_progress {
        eprintln!("device: {device}");
    }
    let bar = progress_bar(
        opts.show_progress,
        schedule.total_steps * cfg.batch_size as u64,
    );
    bar.set_position(state.step * cfg.batch_size as u64);
    bar.reset_eta();
    // two batch buffers: the next batch is gathered (and, on the GPU, uploaded) while the
    // current step computes
    let mut x = vec![0f32; cfg.batch_size * d];
    let mut x_next = vec![0f32; cfg.batch_size * d];
    let mut batches = Batches {
        schedule: &schedule,
        src: train_src,
        order: None,
        skip: cfg.skip_nonfinite,
        skipped: 0,
    };
    let started = Instant::now();
    let mut last_save = Instant::now();
    let mut tokens = 0u64;
    let mut loaded = batches.load(state.step, &mut x);
    while state.step < schedule.total_steps {
        let (epoch, b, n) = loaded.map_err(|(epoch, b, e)| {
            format!(
                "step {} (epoch {epoch}, batch {b}): {e}; {}",
                state.step,
                last_good(last_ckpt)
            )
        })?;
        let entropy_on = state.step >= ent_start;
        let logged = (state.step + 1).is_multiple_of(cfg.log_every)
            || state.step + 1 == schedule.total_steps;
        engine.submit(&mut state, &x[..n * d], n, entropy_on)?;
        loaded = Err((0, 0, "no batch after the last step".into()));
        if state.step + 1 < schedule.total_steps {
            loaded = batches.load(state.step + 1, &mut x_next);
            if let Ok((_, _, n_next)) = loaded {
                engine.prefetch(&x_next[..n_next * d])?;
            }
        }
        let r = engine.finish(logged)?;
        std::mem::swap(&mut x, &mut x_next);
        if !r.losses.total.is_finite() {
            return Err(format!(
                "step {}: loss became {} (epoch {epoch}, batch {b}); {}",
                state.step,
                r.losses.total,
                last_good(last_ckpt)
            )
            .into());
        }
        state.step += 1;
        tokens += n as u64;
        bar.inc(n as u64);
        if logged {
            let line = json!({
                "step": state.step,
                "epoch": epoch,
                "loss": r.losses.total,
                "mse": r.losses.mse,
                "entropy": r.losses.entropy,
                "cov": r.losses.cov,
                "l1": r.losses.l1,
                "fvu": r.losses.fvu,
                "rate_term": r.losses.rate_term,
                "l0": r.l0,
                "entropy_on": entropy_on,
                "tokens_per_s": tokens as f64 / started.elapsed().as_secs_f64(),
            });
            metrics.write(&line).map_err(|e| e.to_string())?;
        }
        let stop_signal = opts.stop.map(|f| f.load(Ordering::SeqCst)).unwrap_or(0);
        let due = every.steps.is_some_and(|k| state.step.is_multiple_of(k))
            || every
                .minutes
                .is_some_and(|m| last_save.elapsed().as_secs_f64() >= m * 60.0);
        if due || stop_signal != 0 {
            // metrics first, so the metrics file never lags behind the checkpoint
            metrics.flush().map_err(|e| e.to_string())?;
            engine.sync(&mut state)?;
            // never replace a good checkpoint with diverged weights
            if let Some((name, i)) = state.params.first_non_finite() {
                return Err(format!(
                    "step {}: the update made {name}[{i}] non-finite (epoch {epoch}, batch {b}); {}",
                    state.step,
                    last_good(last_ckpt)
                )
                .into());
            }
            save(&state, last_ckpt)?;
            last_ckpt = Some(state.step);
            last_save = Instant::now();
        }
        if stop_signal != 0 {
            bar.abandon();
            return Err(TrainError::Interrupted {
                signal: stop_signal,
                step: state.step,
                checkpoint: ckpt_path,
            });
        }
    }
    metrics.flush().map_err(|e| e.to_string())?;
    engine.sync(&mut state)?;
    save(&state, last_ckpt)?;
    bar.finish_and_clear();
    let train_tokens_per_s = tokens as f64 / started.elapsed().as_secs_f64().max(1e-9);

    let mut meta = BTreeMap::new();
    meta.insert("arch".to_string(), arch.name().to_string());
    meta.insert("d".to_string(), d.to_string());
    meta.insert("d_code".to_string(), d_code.to_string());
    meta.insert("steps".to_string(), state.step.to_string());
    meta.insert(
        "config".to_string(),
        serde_json::to_string(cfg).map_err(|e| e.to_string())?,
    );
    if cfg.fvu_loss {
        meta.insert("input_scale".to_string(), input_scale.to_string());
    }
    let model = unscale(&state.params, input_scale);
    save_model(&out.join("model.safetensors"), &model, &meta)?;

    let val = if schedule.n_val > 0 {
        Some(evaluate(
            &model,
            &arch,
            src,
            schedule.val_rows(),
            cfg.eval_batch,
            cfg.batch_size,
        )?)
    } else {
        None
    };
    let summary = json!({
        "arch": arch.name(),
        "d": d,
        "d_code": d_code,
        "steps": state.step,
        "train_rows": schedule.n_train,
        "entropy_start": ent_start,
        "train_tokens_per_s": (tokens > 0).then_some(train_tokens_per_s),
        "device": device,
        "skipped_nonfinite_rows": batches.skipped,
        "validation": val,
    });
    let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    bae_io::write_atomic(&out.join("summary.json"), text.as_bytes()).map_err(|e| e.to_string())?;
    crate::plots::training_curves(&out.join("training.svg"), &metrics_path)?;
    if let Some(v) = &val {
        crate::plots::density_histogram(&out.join("density.svg"), &v.rates, &v.salience_share)?;
    }
    Ok(TrainOutcome {
        state,
        val,
        train_tokens_per_s,
        device,
        device_note,
        skipped_rows: batches.skipped,
    })
}

fn progress_bar(show: bool, total_tokens: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total_tokens);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {human_pos}/{human_len} tokens  {per_sec}  ETA {eta}",
        )
        .expect("valid template"),
    );
    bar
}
