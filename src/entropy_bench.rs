//! `bae entropy-bench`: the synthetic ground-truth benchmark of the entropy estimators.

use bae_analysis::entropy::bench::{self, BenchOptions, Setting};
use clap::Args;
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Each case is a set of r hidden bits with a known joint entropy (the truth). Rows of activations
are made from them as `bae synth` does, but centred: every bit that is on adds its own random
Gaussian direction u_i (d = 4r: --d-per-bit; entries N(0, 1)), every row starts at -Σ_i P(bit i) u_i (so the
rows have mean 0), and N(0, noise²) is added to every entry. --uncentered leaves the rows around
Σ_i P(bit i) u_i, as `bae synth` writes them: there the BAE's hyperplanes start far from the rows
and it reconstructs them poorly (FVU 0.3-0.8). A BAE of width d' = d = 4r (--expand 1) trains
on the first rows, on the CPU, once per setting:
  official  the defaults of `bae train` (λ_entropy = λ_cov = 1e-7, lr 5e-4, batch 512, entropy
            term from a quarter of the run) with the benchmark's steps;
  sparse    the same with `--preset sparse` (FVU loss, b_dec at the mean, rates pulled to 0.5 %).
Its codes 1[x W_enc + b_enc > 0] of the held-out rows are measured, and so are the hidden bits of
those rows themselves, which separates the estimators' error from the autoencoder's.

Cases (--cases takes names or the families fair, sparse, correlated, all):
  fair-4, fair-8, fair-16, fair-32   r independent fair bits (the paper's check): truth r
  sparse-0.005, -0.02, -0.1          16 independent bits with that p: truth 16 H(p)
  copy      8 pairs, the second bit copies the first with probability 0.9: truth 8 (1 + H(0.9))
  one-hot   4 groups of 4 bits, exactly one on: truth 4 log2 4 = 8 (marginal sum 4·4 H(1/4))
  parent    4 groups: a fair parent and 3 children on with p 0.8 / 0.1 when it is on / off
  xor       5 triples (a, b, a xor b), pairwise independent: truth 10, marginal sum 15

Columns: truth (exact joint entropy of the hidden bits, bits); code (the true bits, or the
BAE of a setting); FVU of the BAE's reconstruction of the held-out rows; L0 (bits on per row);
dead (features never on); copies (bits): features equal to one hidden bit or its negation on
>= 99 % of the rows, and how many of the r bits have such a copy; joint plug-in: the entropy of
whole code rows by counting patterns, the code's true joint entropy when far below log2(rows),
meaningless near it; marginal = Σ_j H(p_j) plug-in (the paper's estimate); Miller–Madow (the same
with the small-sample correction); tree = the Chow–Liu bound Σ_j H_j - Σ_tree I(j;k) with its
90 % interval. The estimates and intervals are `bae entropy`'s (basic bootstrap, [2T - q_hi,
2T - q_lo] around the estimate T) with blocks of 128 consecutive rows as the groups (synthetic rows
have no documents); tree ÷ truth. Marginal and tree are upper bounds of the code's joint entropy; that
equals the truth only when the code is an invertible function of the hidden bits.

Writes OUT/entropy_bench.json (every number, the options, the cases' exact and limiting values),
OUT/entropy_bench.svg (estimate ÷ truth per case) and OUT/runs/<case>-<setting>/ (the BAEs).
The default run takes 1.5-2.5 minutes on 2 cores; --quick a few seconds.";

/// `bae entropy-bench`: estimators against a known entropy on synthetic bits.
#[derive(Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct EntropyBenchArgs {
    /// output folder: entropy_bench.json, entropy_bench.svg and the BAEs' run folders in runs/
    #[arg(long, default_value = "runs/entropy-bench")]
    out: PathBuf,
    /// a tiny version (4 cases, 8192 + 4096 rows, 600 steps): seconds
    #[arg(long)]
    quick: bool,
    /// cases to run, comma-separated names or families (fair, sparse, correlated, all)
    #[arg(long, default_value = "all")]
    cases: String,
    /// seed of the rows, the directions and the training (each case derives its own from it)
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// which BAEs to train per case: official, sparse or both
    #[arg(long, default_value = "official,sparse")]
    settings: String,
    /// optimiser steps per BAE [default: 4000, --quick 600]
    #[arg(long)]
    steps: Option<u64>,
    /// rows the BAEs train on [default: 32768, --quick 8192]
    #[arg(long)]
    train_rows: Option<usize>,
    /// held-out rows encoded and measured [default: 16384, --quick 4096]
    #[arg(long)]
    held_out_rows: Option<usize>,
    /// input width per hidden bit: d = d-per-bit · r
    #[arg(long, default_value_t = 4)]
    d_per_bit: usize,
    /// the BAE's width d' = expand · d
    #[arg(long, default_value_t = 1)]
    expand: usize,
    /// standard deviation of the Gaussian noise on every entry
    #[arg(long, default_value_t = 0.05)]
    noise: f64,
    /// rows around Σ_i P(bit i) u_i as `bae synth` writes them, instead of centred (see below)
    #[arg(long)]
    uncentered: bool,
    /// bootstrap replicates of each interval
    #[arg(long, default_value_t = 200)]
    reps: usize,
    /// no progress lines
    #[arg(long)]
    quiet: bool,
}

fn settings(list: &str) -> Result<Vec<Setting>, String> {
    let mut out = Vec::new();
    for s in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let v = match s {
            "official" => Setting::Official,
            "sparse" => Setting::Sparse,
            _ => {
                return Err(format!(
                    "--settings: unknown setting '{s}' (expected official, sparse)"
                ));
            }
        };
        if !out.contains(&v) {
            out.push(v);
        }
    }
    if out.is_empty() {
        return Err("--settings: no setting named".into());
    }
    Ok(out)
}

pub fn run(a: EntropyBenchArgs) -> Result<(), String> {
    let runs = a.out.join("runs");
    let base = if a.quick {
        BenchOptions::quick(&runs)
    } else {
        BenchOptions::standard(&runs)
    };
    let cases = if a.quick && a.cases == "all" {
        base.cases.clone()
    } else {
        bench::select_cases(&a.cases)?
    };
    let opts = BenchOptions {
        cases,
        settings: settings(&a.settings)?,
        seed: a.seed,
        steps: a.steps.unwrap_or(base.steps),
        train_rows: a.train_rows.unwrap_or(base.train_rows),
        held_out_rows: a.held_out_rows.unwrap_or(base.held_out_rows),
        expand: a.expand,
        d_per_bit: a.d_per_bit,
        noise: a.noise,
        center: !a.uncentered,
        reps: a.reps,
        ..base
    };
    std::fs::create_dir_all(&a.out)
        .map_err(|e| format!("{}: cannot create the folder: {e}", a.out.display()))?;
    let _lock = bae_io::FolderLock::acquire(&a.out).map_err(|e| e.to_string())?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let quiet = a.quiet;
    let report = bench::run(&opts, &command, &mut |done, total, c| {
        if !quiet {
            eprintln!("[{done}/{total}] {}", bench::case_line(c));
        }
    })?;
    bench::write_outputs(&a.out, &report)?;
    print!("{}", bench::table(&report));
    println!(
        "{} cases in {:.0} s; wrote {} and {} in {}",
        report.cases.len(),
        report.seconds,
        bench::BENCH_JSON,
        bench::BENCH_SVG,
        a.out.display()
    );
    Ok(())
}
