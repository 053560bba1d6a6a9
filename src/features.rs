//! `bae features`: feature pages of a trained BAE on an extract folder, decoded with the LLM's tokenizer.

use crate::FeaturesArgs;
use bae_train::store::ShardStore;
use bae_train::{RowSource, TrainConfig};
use std::fmt::Write;

/// Up to `width` tokens before `row` in the same window, then the token itself in brackets.
fn context(store: &ShardStore, tok: &bae_llm::Tokenizer, row: usize, width: usize) -> String {
    let Some((id, pos)) = store.token_of(row) else {
        return format!("row {row}");
    };
    let mut ids = Vec::new();
    let mut r = row;
    while ids.len() < width && r > 0 {
        match store.token_of(r - 1) {
            Some((pid, ppos))
                if ppos + 1 == pos - ids.len() as i64
                    && store.doc_of(r - 1) == store.doc_of(row) =>
            {
                ids.push(pid);
                r -= 1;
            }
            _ => break,
        }
    }
    ids.reverse();
    let before = tok.decode(&ids).replace('\n', "⏎");
    let this = tok.decode(&[id]).replace('\n', "⏎");
    format!("{before}[{this}]")
}

pub fn run(a: FeaturesArgs) -> Result<(), String> {
    let cfg_path = a.run.join("config.json");
    let text =
        std::fs::read_to_string(&cfg_path).map_err(|e| format!("{}: {e}", cfg_path.display()))?;
    let cfg: TrainConfig =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", cfg_path.display()))?;
    let data = a.data.clone().unwrap_or(cfg.data.clone());
    let store = ShardStore::open(&data)?;
    let (d, dc) = (store.dim(), cfg.expand * store.dim());
    let params = bae_train::load_init(&a.run.join("model.safetensors"), d, dc)?;
    let gguf = bae_llm::Gguf::open(&a.model).map_err(|e| e.to_string())?;
    let tok = bae_llm::Tokenizer::from_gguf(&gguf).map_err(|e| e.to_string())?;
    let arch = cfg.arch()?;
    let val = store.train_rows(cfg.val_split)..store.n_rows();
    let rows = if val.is_empty() {
        0..store.n_rows()
    } else {
        val
    };
    let report = bae_train::evaluate(
        &params,
        &arch,
        &store,
        rows.clone(),
        cfg.eval_batch,
        cfg.batch_size,
    )?;
    let pages = bae_train::pages::feature_pages(
        &params,
        &store,
        rows.clone(),
        &report.rates,
        a.n,
        a.examples,
        4096,
    )?;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Feature pages\n\nrun `{}`, {} evaluation rows of `{}`\n",
        a.run.display(),
        rows.len(),
        data.display()
    );
    let _ = writeln!(
        md,
        "Each feature's salient event is its rare value: firing (rate < 0.5) or going silent (rate > 0.5). \
         Examples spread over the rows (the first of each equal slice, in corpus order), the token in brackets \
         after up to 8 tokens of its context.\n"
    );
    for p in &pages {
        let event = if p.rare_value == 1 {
            "fires"
        } else {
            "is silent"
        };
        let share = if p.rare_value == 1 {
            p.rate
        } else {
            1.0 - p.rate
        };
        let _ = writeln!(
            md,
            "## feature {} — {event} on {:.2}% of tokens\n",
            p.feature,
            100.0 * share
        );
        for &r in &p.rows {
            let _ = writeln!(md, "- `{}`", context(&store, &tok, r, 8).replace('`', "'"));
        }
        md.push('\n');
    }
    let out = a.run.join("features.md");
    bae_io::write_atomic(&out, md.as_bytes()).map_err(|e| e.to_string())?;
    print!("{md}");
    println!("(written to {})", out.display());
    Ok(())
}
