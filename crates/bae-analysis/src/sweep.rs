//! `bae sweep`: one model per point of a grid of training settings (the cartesian product of
//! `key=v1,v2,...` groups), each an ordinary run folder `OUT/<name>` trained like `bae compare`'s
//! models (finished runs reused, interrupted ones resumed) and judged by `eval` on the same
//! held-out rows; a table (sweep.md), every number (sweep.json) and two charts (sweep.svg).
//!
//! A grid key is any field of [`TrainConfig`] with `-` for `_`: a value is applied generically
//! through the config's JSON form, so a field added to the config later can be swept unchanged.

use crate::compare::{self, ModelResult, PlannedModel};
use crate::eval::{EvalOptions, EvalReport};
use bae_train::{TrainConfig, TrainError};
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI32;

/// Config fields a grid cannot vary: the run folder is the point's own, every point trains on the
/// same data and is judged on the same held-out rows.
const FIXED: [(&str, &str); 3] = [
    ("data", "every point trains on the same --data"),
    ("out", "each point's run folder is OUT/<name>"),
    (
        "val_split",
        "every point is judged on the same held-out rows; set --val-split",
    ),
];

/// Longest folder name made from the values before it is shortened (with a hash kept).
const MAX_NAME: usize = 120;

/// One `key=v1,v2,...` group of a grid.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GridAxis {
    /// as written in names and tables: the field name with `-` for `_`
    pub key: String,
    /// the [`TrainConfig`] field
    pub field: String,
    /// the values as given
    pub values: Vec<String>,
}

/// One point of the grid, checked: its config (with `out` = `OUT/<name>`) is valid.
#[derive(Clone, Debug)]
pub struct GridPoint {
    /// the folder name, from the keys and values
    pub name: String,
    /// (key, value as given), in grid order
    pub values: Vec<(String, String)>,
    pub cfg: TrainConfig,
}

/// The varied keys a user may name: every config field but [`FIXED`], kebab-case, sorted.
pub fn valid_keys() -> Vec<String> {
    let base = serde_json::to_value(TrainConfig::default()).expect("a config serializes");
    let mut keys: Vec<String> = base
        .as_object()
        .expect("a config is a JSON object")
        .keys()
        .filter(|k| !FIXED.iter().any(|(f, _)| f == k))
        .map(|k| k.replace('_', "-"))
        .collect();
    keys.sort();
    keys
}

/// Parses `key=v1,v2,...;key=...` (groups separated by `;`, values by `,`, blanks around either
/// ignored). Checks the syntax and the keys; the values are checked by [`plan`].
pub fn parse_grid(spec: &str) -> Result<Vec<GridAxis>, String> {
    let base = serde_json::to_value(TrainConfig::default()).map_err(|e| e.to_string())?;
    let fields = base.as_object().expect("a config is a JSON object");
    let mut axes: Vec<GridAxis> = Vec::new();
    for group in spec.split(';').map(str::trim).filter(|g| !g.is_empty()) {
        let Some((key, values)) = group.split_once('=') else {
            return Err(format!(
                "--grid: '{group}' is not key=v1,v2,... (groups are separated by ';')"
            ));
        };
        let key = key.trim();
        let field = key.replace('-', "_");
        if let Some((_, why)) = FIXED.iter().find(|(f, _)| *f == field) {
            return Err(format!("--grid: '{key}' cannot be varied: {why}"));
        }
        if !fields.contains_key(&field) {
            return Err(format!(
                "--grid: unknown key '{key}'; valid keys: {}",
                valid_keys().join(", ")
            ));
        }
        let key = field.replace('_', "-");
        if axes.iter().any(|a| a.field == field) {
            return Err(format!("--grid: '{key}' is given twice"));
        }
        let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
        if values.iter().any(String::is_empty) {
            return Err(format!("--grid: '{key}' has an empty value in '{group}'"));
        }
        for (i, v) in values.iter().enumerate() {
            if values[..i].contains(v) {
                return Err(format!("--grid: '{key}' lists '{v}' twice"));
            }
        }
        axes.push(GridAxis { key, field, values });
    }
    if axes.is_empty() {
        return Err("--grid: give at least one key=v1,v2,... group".to_string());
    }
    Ok(axes)
}

/// The JSON values to try for `raw`, in order: as JSON when it parses (an integral float also as
/// an integer, for integer fields given `1e3`), then as a string.
fn candidates(raw: &str) -> Vec<Value> {
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_str::<Value>(raw) {
        if let Some(x) = v.as_f64().filter(|_| v.is_f64())
            && x.is_finite()
            && x.fract() == 0.0
            && x.abs() <= 9_007_199_254_740_992.0
        {
            out.push(v.clone());
            out.push(if x < 0.0 {
                Value::from(x as i64)
            } else {
                Value::from(x as u64)
            });
        } else {
            out.push(v);
        }
    }
    out.push(Value::String(raw.to_string()));
    out
}

/// `cfg` with config field `field` (snake_case) set from the text `raw`: through the config's JSON
/// form, the value read as a JSON number / bool / null when it parses, else as a string. A field
/// that does not exist or a value of the wrong type is one line naming `key`.
pub fn set_field(cfg: &TrainConfig, key: &str, raw: &str) -> Result<TrainConfig, String> {
    let field = key.replace('-', "_");
    let mut obj = serde_json::to_value(cfg).map_err(|e| e.to_string())?;
    let map = obj.as_object_mut().expect("a config is a JSON object");
    if !map.contains_key(&field) {
        return Err(format!(
            "--grid: unknown key '{key}'; valid keys: {}",
            valid_keys().join(", ")
        ));
    }
    let mut first_err = None;
    for v in candidates(raw) {
        map.insert(field.clone(), v);
        match serde_json::from_value::<TrainConfig>(Value::Object(map.clone())) {
            Ok(c) => return Ok(c),
            Err(e) => {
                first_err.get_or_insert(e.to_string());
            }
        }
    }
    Err(format!(
        "--grid: {key}={raw}: {}",
        first_err.unwrap_or_default()
    ))
}

/// The value a config holds in `field`, as JSON (what sweep.json records for a point).
fn field_value(cfg: &TrainConfig, field: &str) -> Value {
    serde_json::to_value(cfg)
        .ok()
        .and_then(|v| v.get(field).cloned())
        .unwrap_or(Value::Null)
}

/// FNV-1a, for a short stable suffix.
fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5, |h: u32, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

/// The folder name of a point: `key=value` joined by `,`, e.g.
/// `lambda-cov=0,estimator=ste`. Characters other than letters, digits and `._+-=,` become `_`;
/// when that changed anything, or the name is long, a hash of the exact values is appended so that
/// distinct points keep distinct folders.
pub fn point_name(values: &[(String, String)]) -> String {
    let exact = values
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut name: String = exact
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._+-=,".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name != exact || name.len() > MAX_NAME {
        name.truncate(MAX_NAME);
        name = format!("{name}-{:08x}", fnv(&exact));
    }
    name
}

/// Every point of the grid `axes` over `base` (the cartesian product, the first group varying
/// slowest), each with its folder `out/<name>`; every value applied and every config validated,
/// so a bad point is found before anything trains.
pub fn plan(axes: &[GridAxis], base: &TrainConfig, out: &Path) -> Result<Vec<GridPoint>, String> {
    let total: usize = axes.iter().map(|a| a.values.len()).product();
    let mut points = Vec::with_capacity(total);
    for i in 0..total {
        let mut rest = i;
        let mut pick = vec![0; axes.len()];
        for (j, a) in axes.iter().enumerate().rev() {
            pick[j] = rest % a.values.len();
            rest /= a.values.len();
        }
        let mut cfg = base.clone();
        let mut values = Vec::new();
        for (a, &p) in axes.iter().zip(&pick) {
            let raw = &a.values[p];
            cfg = set_field(&cfg, &a.key, raw)?;
            values.push((a.key.clone(), raw.clone()));
        }
        let name = point_name(&values);
        cfg.out = out.join(&name);
        cfg.validate()
            .map_err(|e| format!("grid point {name}: {e}"))?;
        points.push(GridPoint { name, values, cfg });
    }
    for (i, p) in points.iter().enumerate() {
        for q in &points[..i] {
            let same = TrainConfig {
                out: q.cfg.out.clone(),
                ..p.cfg.clone()
            } == q.cfg;
            if same {
                return Err(format!(
                    "--grid: points {} and {} have the same settings",
                    q.name, p.name
                ));
            }
            if q.name == p.name {
                return Err(format!(
                    "--grid: two points share the folder name {}",
                    p.name
                ));
            }
        }
    }
    Ok(points)
}

pub struct SweepOptions<'a> {
    pub out: PathBuf,
    /// the `--grid` text
    pub grid: String,
    /// settings shared by every point (its `out` and the grid's keys are set per point)
    pub base: TrainConfig,
    /// evaluation settings (`run` is set per point)
    pub eval: EvalOptions,
    pub show_progress: bool,
    pub stop: Option<&'a AtomicI32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SweepRow {
    /// the run folder's name under OUT
    pub name: String,
    /// (key, value as given), in grid order; in JSON an object key -> text
    #[serde(serialize_with = "as_object")]
    pub values: Vec<(String, String)>,
    /// the grid's keys and the values the point's config holds
    pub config: serde_json::Map<String, Value>,
    pub run: String,
    /// true when a finished run with the same settings was reused
    pub reused: bool,
    pub train_tokens_per_s: Option<f64>,
    /// mean over features of min(p, 1 − p)
    pub mean_rare_rate: f64,
    /// features whose rare value occurs on at most 1 % of tokens (specific + constant)
    pub rare_below_1: usize,
    pub eval: EvalReport,
}

fn as_object<S: serde::Serializer>(v: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(v.len()))?;
    for (k, x) in v {
        m.serialize_entry(k, x)?;
    }
    m.end()
}

/// Mean over features of the rare-value rate min(p, 1 − p).
pub fn mean_rare_rate(rates: &[f64]) -> f64 {
    if rates.is_empty() {
        return 0.0;
    }
    rates.iter().map(|&p| p.min(1.0 - p)).sum::<f64>() / rates.len() as f64
}

/// Parses and checks the grid, then trains (or reuses) and evaluates every point and writes
/// sweep.md / .svg / .json into `opts.out`, holding the folder's lock from the first training on.
/// Nothing is trained unless every point's config is valid and no point's folder holds a run with
/// other settings.
pub fn sweep(opts: &SweepOptions, command: &str) -> Result<Vec<SweepRow>, TrainError> {
    let axes = parse_grid(&opts.grid)?;
    let points = plan(&axes, &opts.base, &opts.out)?;
    let n = points.len();
    let models: Vec<PlannedModel> = points
        .iter()
        .enumerate()
        .map(|(i, p)| PlannedModel {
            label: format!("[{}/{n}] {}", i + 1, p.name),
            cfg: p.cfg.clone(),
        })
        .collect();
    compare::check_models(&models)?;
    let _lock = bae_io::FolderLock::acquire(&opts.out).map_err(|e| e.to_string())?;
    let results =
        compare::train_and_evaluate_models(&models, &opts.eval, opts.show_progress, opts.stop)?;
    let rows: Vec<SweepRow> = points
        .into_iter()
        .zip(results)
        .map(|(p, r): (GridPoint, ModelResult)| {
            let f = &r.eval.features;
            SweepRow {
                config: axes
                    .iter()
                    .map(|a| (a.key.clone(), field_value(&p.cfg, &a.field)))
                    .collect(),
                name: p.name,
                values: p.values,
                run: r.run.display().to_string(),
                reused: r.reused,
                train_tokens_per_s: r.train_tokens_per_s,
                mean_rare_rate: mean_rare_rate(&f.rates),
                rare_below_1: f.specific + f.constant,
                eval: r.eval,
            }
        })
        .collect();
    write_outputs(&opts.out, &opts.base, &axes, command, &rows)?;
    Ok(rows)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.digits$}"))
}

/// A rate for the table: 4 decimals, or 3 significant digits in scientific notation when small.
pub fn fmt_rate(r: f64) -> String {
    if r == 0.0 || r >= 1e-3 {
        format!("{r:.4}")
    } else {
        format!("{r:.2e}")
    }
}

/// The table, in markdown: one row per point, the grid's keys first.
pub fn table(rows: &[SweepRow]) -> String {
    let keys: Vec<&str> = rows
        .first()
        .map(|r| r.values.iter().map(|(k, _)| k.as_str()).collect())
        .unwrap_or_default();
    let downstream = rows.iter().any(|r| r.eval.downstream.is_some());
    let mut cols: Vec<&str> = keys.clone();
    cols.extend([
        "MSE",
        "FVU",
        "L0",
        "mean rare-value rate",
        "dense by rate >10%",
        "dense by rare value >10%",
        "dense by rare value >1%",
        "specific",
        "constant",
        "salience-dense >10%",
        "entropy (bits)",
        "dead",
    ]);
    if downstream {
        cols.extend(["CE score", "KL score"]);
    }
    let mut s = format!("| {} |\n|{}\n", cols.join(" | "), "---|".repeat(cols.len()));
    for r in rows {
        let (e, f) = (&r.eval, &r.eval.features);
        let mut cells: Vec<String> = r.values.iter().map(|(_, v)| v.clone()).collect();
        cells.extend([
            format!("{:.4}", e.reconstruction.mse),
            format!("{:.4}", e.reconstruction.fvu),
            format!("{:.1}", f.l0),
            fmt_rate(r.mean_rare_rate),
            f.dense_rate_10.to_string(),
            f.dense_rare_10.to_string(),
            f.dense_rare_1.to_string(),
            f.specific.to_string(),
            f.constant.to_string(),
            f.salience_dense_10.to_string(),
            format!("{:.1}", f.entropy_bits),
            f.dead.to_string(),
        ]);
        if downstream {
            let ds = e.downstream.as_ref();
            cells.push(opt(ds.map(|d| d.ce_loss_score), 4));
            cells.push(opt(ds.map(|d| d.kl_div_score), 4));
        }
        let _ = writeln!(s, "| {} |", cells.join(" | "));
    }
    s
}

pub const SWEEP_MD: &str = "sweep.md";
pub const SWEEP_SVG: &str = "sweep.svg";
pub const SWEEP_JSON: &str = "sweep.json";

/// sweep.md (settings, table, chart), sweep.json and sweep.svg into `out`, atomically.
fn write_outputs(
    out: &Path,
    base: &TrainConfig,
    axes: &[GridAxis],
    command: &str,
    rows: &[SweepRow],
) -> Result<(), String> {
    crate::plots::sweep_chart(&out.join(SWEEP_SVG), rows)?;
    let held_out = rows
        .first()
        .map(|r| r.eval.rows_from.clone())
        .unwrap_or_default();
    let steps = crate::compare::run_length(base);
    let grid = axes
        .iter()
        .map(|a| format!("`{}` = {}", a.key, a.values.join(", ")))
        .collect::<Vec<_>>()
        .join("; ");
    let md = format!(
        "# Sweep\n\n`{command}`\n\nGrid ({} points): {grid}.\n\nOtherwise the same for every point (unless the grid sets it): \
         data `{}`, arch {}, width d' = {} x d, {steps}, batch {}, seed {}, lr {}, λ_e = {}, λ_c = {}, estimator {}; \
         held-out rows: {held_out}. Each point is the run folder `<name>` beside this file.\n\n\
         The rare value of a feature is the one it takes less often; its rate is r = min(p, 1 − p) with p \
         the firing rate. Dense by rare value: r > 10 % (or > 1 %) of tokens; specific: 0.01 % ≤ r ≤ 1 %; \
         constant: r < 0.01 %; salience-dense: among more than 10 % of tokens' top-10 by salience. \
         CE and KL scores (when present) are SAELens's `ce_loss_score` and `kl_div_score` against zero \
         ablation.\n\n{}\n![FVU against the mean rare-value rate, and features with a rare value below 1 % against FVU]({SWEEP_SVG})\n",
        rows.len(),
        base.data.display(),
        compare::arch_dir_name(&base.arch),
        base.expand,
        base.batch_size,
        base.seed,
        base.lr,
        base.lambda_entropy,
        base.lambda_cov,
        base.estimator,
        table(rows)
    );
    bae_io::write_atomic(&out.join(SWEEP_MD), md.as_bytes()).map_err(|e| e.to_string())?;
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "command": command,
        "grid": axes,
        "base": base,
        "points": rows,
    }))
    .map_err(|e| e.to_string())?;
    bae_io::write_atomic(&out.join(SWEEP_JSON), json.as_bytes()).map_err(|e| e.to_string())
}
