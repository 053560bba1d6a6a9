//! `bae entropy`: the entropy of sets of hidden states under a trained BAE, one set or a curve by
//! block, token position or number of in-context demonstrations.

use crate::encode::RowsArg;
use bae_analysis::TrainedRun;
use bae_analysis::entropy::{self, Curve, CurvePoint, EstimateOptions};
use bae_train::TrainError;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI32;

const AFTER_HELP: &str = "\
Each set of hidden states is encoded with the BAE (or read from a code store of `bae encode`) and
gets three estimates, in bits, each with a basic bootstrap interval [2T - q_hi, 2T - q_lo] (the
replicates' quantiles reflected around the estimate T, which corrects the small-sample bias the
replicates show; the tree's interval can lie above T) that resamples documents (its 128-token
windows where the set has fewer than 20 documents, blocks of 128 rows where it has no ids):
  marginal     Σ_j H(p_j), plug-in: the paper's estimate. An upper bound of the code's joint
               entropy that counts correlated or duplicated features again.
  miller-madow the same sum with the Miller–Madow small-sample correction of each feature
               (+1/(2 n ln 2) bits per feature that takes both values): plug-in entropy is biased
               low when n is small against 1/p.
  tree         the Chow–Liu bound Σ_j H_j − Σ_(j,k)∈T I(j;k) over the maximum-weight spanning tree
               of the pairwise mutual information (exact co-activation counts): still ≥ the joint
               entropy, ≤ the marginal sum.
log2 n is printed beside: a set of n rows cannot show more joint entropy than that of itself.

Without --by: every estimate of one set (default: the run's held-out rows).
--by position: one estimate per token position (rows' position in their window) of one set.
--by block: one BAE per block, trained with the run's settings on ROOT/block{B}/ (from
  `bae extract --blocks B1,B2,… --out ROOT`) into OUT/block{B}/ (finished ones reused, interrupted
  ones resumed), then each block's held-out entropy under its own BAE, with its FVU beside it.
--by demonstrations: prompts of an in-context task with 0…k demonstrations, the last-token hidden
  states at the run's block over the queries, and the model's accuracy on the task beside them.

Writes OUT/entropy.json (or entropy_by_<by>.json and a chart entropy_by_<by>.svg with the
intervals drawn as bands). OUT defaults to RUN/entropy (or CODES/entropy).";

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum By {
    Block,
    Position,
    Demonstrations,
}

impl By {
    fn name(self) -> &'static str {
        match self {
            By::Block => "block",
            By::Position => "position",
            By::Demonstrations => "demonstrations",
        }
    }
}

/// `bae entropy`: entropy estimates of sets of hidden states under a trained BAE.
#[derive(Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct EntropyArgs {
    /// BAE run folder (`bae train --arch bae`); with --by block, the settings every block's BAE trains with
    #[arg(long)]
    run: Option<PathBuf>,
    /// activations to encode (extract folder or activation file; default: the run's data); with --by block: the folder holding block{B}/
    #[arg(long)]
    data: Option<PathBuf>,
    /// read stored codes (a `bae encode` folder) instead of encoding activations
    #[arg(long, conflicts_with_all = ["data", "rows"])]
    codes: Option<PathBuf>,
    /// which rows of the data
    #[arg(long, value_enum, default_value = "held-out")]
    rows: RowsArg,
    /// a curve instead of one set
    #[arg(long, value_enum)]
    by: Option<By>,
    /// --by block: the blocks, comma-separated
    #[arg(long, value_delimiter = ',')]
    blocks: Vec<usize>,
    /// --by block: passes over each block's training rows (default: the run's)
    #[arg(long)]
    epochs: Option<u64>,
    /// --by position: the positions, FIRST-LAST (0-based position in the window)
    #[arg(long, default_value = "1-127")]
    positions: String,
    /// --by position: leave out positions with fewer rows
    #[arg(long, default_value_t = 64)]
    min_rows: usize,
    /// --by demonstrations: the task (word_category, country_capital, antonym)
    #[arg(long, default_value = bae_analysis::entropy::icl::DEFAULT_TASK)]
    task: String,
    /// --by demonstrations: the block whose hidden states are read (default: the run's, from its extract)
    #[arg(long)]
    block: Option<usize>,
    /// --by demonstrations: the most demonstrations in a prompt (k = 0..=max-k)
    #[arg(long, default_value_t = 8)]
    max_k: usize,
    /// --by demonstrations: queries to use (0: all)
    #[arg(long, default_value_t = 0)]
    queries: usize,
    /// --by demonstrations: the GGUF model (default: the one `bash scripts/setup.sh` fetches)
    #[arg(long)]
    model: Option<PathBuf>,
    /// bootstrap replicates of the marginal and Miller-Madow intervals (0: none)
    #[arg(long, default_value_t = 200)]
    reps: usize,
    /// bootstrap replicates of the tree interval (each a co-activation pass; 0: none)
    #[arg(long, default_value_t = 30)]
    tree_reps: usize,
    /// coverage of the intervals
    #[arg(long, default_value_t = 0.9)]
    level: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// folder for the JSON and the chart (default: RUN/entropy or CODES/entropy); with --by block also the BAEs
    #[arg(long)]
    out: Option<PathBuf>,
    /// redraw the chart of a curve written before (entropy_by_<by>.json) and exit
    #[arg(long, value_name = "JSON", exclusive = true)]
    replot: Option<PathBuf>,
    /// hide the progress bar
    #[arg(long)]
    quiet: bool,
}

fn parse_positions(text: &str) -> Result<(i32, i32), String> {
    let bad = || format!("--positions {text}: expected FIRST-LAST, e.g. 1-127");
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let (a, b): (i32, i32) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if a < 0 || b < a {
        return Err(bad());
    }
    Ok((a, b))
}

fn check(a: &EntropyArgs) -> Result<(), String> {
    if !(a.level > 0.0 && a.level < 1.0) {
        return Err(format!("--level {}: must be between 0 and 1", a.level));
    }
    if a.run.is_none() && a.codes.is_none() {
        return Err("give --run (a BAE run folder) or --codes (a `bae encode` folder)".into());
    }
    match a.by {
        Some(By::Block) if a.blocks.is_empty() => {
            Err("--by block needs --blocks, e.g. --blocks 3,6,9,12,15,18,21,24".into())
        }
        Some(By::Block) | Some(By::Demonstrations) if a.run.is_none() => Err(format!(
            "--by {} needs --run (the BAE settings / the BAE to encode with)",
            a.by.map(By::name).unwrap_or_default()
        )),
        Some(By::Block) if a.data.is_none() => {
            Err("--by block needs --data: the folder holding block{B}/ extract folders".into())
        }
        _ => Ok(()),
    }
}

pub fn run(a: EntropyArgs, stop: &AtomicI32) -> Result<(), TrainError> {
    if let Some(json) = &a.replot {
        return replot(json).map_err(TrainError::from);
    }
    check(&a)?;
    let out = a
        .out
        .clone()
        .or_else(|| {
            a.run
                .as_ref()
                .or(a.codes.as_ref())
                .map(|p| p.join("entropy"))
        })
        .expect("checked: --run or --codes");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: cannot create: {e}", out.display()))?;
    let _lock = bae_io::FolderLock::acquire(&out).map_err(|e| e.to_string())?;
    let est = EstimateOptions {
        reps: a.reps,
        tree_reps: a.tree_reps,
        level: a.level,
        seed: a.seed,
    };
    let start = std::time::Instant::now();
    let Some(by) = a.by else {
        return one_set(&a, &out, &est, start).map_err(TrainError::from);
    };
    let unit = match by {
        By::Demonstrations => "prompts",
        By::Block => "blocks",
        By::Position => "positions",
    };
    let pb = crate::progress::bar(a.quiet, unit);
    let (points, from, x_label) = match by {
        By::Position => {
            let (lo, hi) = parse_positions(&a.positions)?;
            let set = load_set(&a)?;
            let points = entropy::by_position(
                &set,
                lo,
                hi,
                a.min_rows,
                &est,
                &mut crate::progress::track(&pb),
            )?;
            (points, set.from, "position")
        }
        By::Block => {
            let run = a.run.as_ref().expect("checked");
            let mut base = TrainedRun::open(run)?.config;
            if let Some(e) = a.epochs {
                base.epochs = e;
                base.steps = None;
            }
            let opts = entropy::blocks::BlockStudyOptions {
                data_root: a.data.clone().expect("checked"),
                blocks: a.blocks.clone(),
                base,
                out: out.clone(),
                show_progress: !a.quiet,
                stop: Some(stop),
            };
            let points = entropy::blocks::by_block(&opts, &est, &mut |_, _| {})?;
            let from = format!(
                "held-out rows of {}/block{{B}}, one BAE per block with the settings of {}",
                opts.data_root.display(),
                run.display()
            );
            (points, from, "block")
        }
        By::Demonstrations => demonstrations(&a, &est, &pb)?,
    };
    pb.finish_and_clear();
    let curve = Curve {
        by: by.name().to_string(),
        x_label: x_label.to_string(),
        from,
        level: a.level,
        points,
    };
    write_curve(&curve, &out)?;
    eprintln!("{:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

fn load_set(a: &EntropyArgs) -> Result<entropy::CodeSet, String> {
    if let Some(codes) = &a.codes {
        return entropy::read_set(codes);
    }
    let run = TrainedRun::open(a.run.as_ref().expect("checked"))?;
    let pb = crate::progress::bar(a.quiet, "rows encoded");
    let rows = a.rows.selection();
    let set = entropy::encode_set(
        &run,
        a.data.as_deref(),
        rows,
        &mut crate::progress::track(&pb),
    );
    pb.finish_and_clear();
    set
}

fn one_set(
    a: &EntropyArgs,
    out: &Path,
    est: &EstimateOptions,
    start: std::time::Instant,
) -> Result<(), String> {
    let set = load_set(a)?;
    let e = entropy::set_entropy(&set, est);
    println!("{}", set.from);
    print!("{}", entropy::set_table(&e, a.level));
    let path = out.join("entropy.json");
    let json = serde_json::json!({ "from": set.from, "level": a.level, "entropy": e });
    write_json(&path, &json)?;
    println!(
        "wrote {} ({:.1} s)",
        path.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn demonstrations(
    a: &EntropyArgs,
    est: &EstimateOptions,
    pb: &indicatif::ProgressBar,
) -> Result<(Vec<CurvePoint>, String, &'static str), String> {
    let run = TrainedRun::open(a.run.as_ref().expect("checked"))?;
    let task = entropy::icl::task(&a.task)?;
    let block = match a.block {
        Some(b) => b,
        None => entropy::demos::run_block(&run)?,
    };
    let opts = entropy::icl::IclOptions {
        block,
        max_k: a.max_k,
        queries: a.queries,
        seed: a.seed,
        ..entropy::icl::IclOptions::default()
    };
    let model = a
        .model
        .clone()
        .unwrap_or_else(|| PathBuf::from(bae_llm::DEFAULT_MODEL));
    let points = entropy::demos::by_demonstrations(
        &run,
        &model,
        &task,
        &opts,
        est,
        &mut crate::progress::track(pb),
    )?;
    let from = format!(
        "last-token hidden states at block {block} of the task {} ({}), under {}",
        task.name,
        task.description,
        run.dir.display()
    );
    Ok((points, from, "demonstrations"))
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    bae_io::write_atomic(path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

fn replot(json: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(json)
        .map_err(|e| format!("{}: cannot read: {e}", json.display()))?;
    let curve: Curve = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not an entropy curve: {e}", json.display()))?;
    let svg = json.with_extension("svg");
    entropy::chart::curve_chart(&svg, &curve, &chart_title(&curve))?;
    println!("wrote {}", svg.display());
    Ok(())
}

fn chart_title(curve: &Curve) -> String {
    format!(
        "Entropy of the hidden states by {} ({:.0} % bootstrap bands)",
        curve.by,
        curve.level * 100.0
    )
}

fn write_curve(curve: &Curve, out: &Path) -> Result<(), String> {
    println!("{}", curve.from);
    print!("{}", entropy::curve_table(curve));
    let json = out.join(format!("entropy_by_{}.json", curve.by));
    write_json(
        &json,
        &serde_json::to_value(curve).map_err(|e| e.to_string())?,
    )?;
    let svg = out.join(format!("entropy_by_{}.svg", curve.by));
    entropy::chart::curve_chart(&svg, curve, &chart_title(curve))?;
    println!("wrote {} and {}", json.display(), svg.display());
    Ok(())
}
