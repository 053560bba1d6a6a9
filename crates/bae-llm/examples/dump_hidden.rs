//! Dumps token ids and hidden states of one text for scripts/crosscheck_hidden.py.
//!
//! cargo run --release -p bae-llm --example dump_hidden -- --tokens 256 --blocks 15
use std::collections::HashMap;
use std::path::PathBuf;

use clap::Parser;
use safetensors::Dtype;
use safetensors::tensor::TensorView;

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value = bae_llm::DEFAULT_MODEL)]
    model: PathBuf,
    /// Text file whose first tokens are run (default: the first State of the Union address)
    #[arg(long, default_value = "data/corpus/sotu/1790_george_washington_n.txt")]
    text: PathBuf,
    #[arg(long, default_value_t = 256)]
    tokens: usize,
    #[arg(long, value_delimiter = ',', default_value = "15")]
    blocks: Vec<usize>,
    #[arg(long, default_value = "data/crosscheck/rust_hidden.safetensors")]
    out: PathBuf,
}

fn bytes_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_i32(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|&x| (x as i32).to_le_bytes()).collect()
}

fn main() -> Result<(), String> {
    let cli = Cli::parse();
    let mut g = bae_llm::Gguf::open(&cli.model).map_err(|e| e.to_string())?;
    let tok = bae_llm::Tokenizer::from_gguf(&g).map_err(|e| e.to_string())?;
    let deepest = cli.blocks.iter().copied().max().unwrap_or(15);
    let opts = bae_llm::LoadOptions {
        n_layers: Some(deepest + 1),
        head: false,
    };
    let model = bae_llm::Model::from_gguf(&mut g, opts).map_err(|e| e.to_string())?;
    let text =
        std::fs::read_to_string(&cli.text).map_err(|e| format!("{}: {e}", cli.text.display()))?;
    let mut ids = tok.encode(&text);
    ids.truncate(cli.tokens);
    let n = ids.len();
    let states = model
        .hidden_states(&ids, 1, n, &cli.blocks)
        .map_err(|e| e.to_string())?;
    // A digit-free sample to compare tokenizers (HF's GGUF tokenizer has no digit split).
    let sample: String = text
        .chars()
        .filter(|c| !c.is_numeric())
        .take(3000)
        .collect();
    let sample_ids = tok.encode(&sample);

    let d = model.config().d_model;
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = vec![
        ("token_ids".into(), Dtype::I32, vec![n], bytes_i32(&ids)),
        (
            "sample_ids".into(),
            Dtype::I32,
            vec![sample_ids.len()],
            bytes_i32(&sample_ids),
        ),
    ];
    for (b, st) in cli.blocks.iter().zip(&states) {
        owned.push((format!("block{b}"), Dtype::F32, vec![n, d], bytes_f32(st)));
    }
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(name, dt, shape, data)| {
            (
                name.clone(),
                TensorView::new(*dt, shape.clone(), data).expect("valid view"),
            )
        })
        .collect();
    let meta = HashMap::from([
        ("model".to_string(), cli.model.display().to_string()),
        ("text".to_string(), cli.text.display().to_string()),
        ("sample".to_string(), sample),
        (
            "blocks".to_string(),
            cli.blocks
                .iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ),
    ]);
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| e.to_string())?;
    if let Some(dir) = cli.out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    bae_io::write_atomic(&cli.out, &bytes).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} tokens, blocks {:?} -> {}",
        n,
        cli.blocks,
        cli.out.display()
    );
    Ok(())
}
