//! Extract hidden states from the command line (the `bae` CLI calls the same `run_extract`).
//!
//! cargo run --release -p bae-llm --example extract -- --blocks 15 --tokens 200000
use clap::Parser;

#[derive(Parser)]
#[command(about = "Extract SmolLM2-135M residual-stream activations to safetensors shards")]
struct Cli {
    #[command(flatten)]
    args: bae_llm::ExtractArgs,
}

fn main() {
    let cli = Cli::parse();
    match bae_llm::run_extract(&cli.args) {
        Ok(s) => {
            for b in &s.blocks {
                eprintln!(
                    "block {}: {} rows in {} shards ({} dropped by the norm rule) -> {}",
                    b.block,
                    b.rows,
                    b.shards,
                    b.dropped_outliers,
                    b.dir.display()
                );
            }
            eprintln!(
                "{} tokens run in {:.1} s = {:.0} tokens/s; {} sink rows dropped; complete: {}",
                s.tokens_run, s.seconds, s.tokens_per_s, s.dropped_sink_rows, s.complete
            );
            println!(
                "{}",
                serde_json::to_string_pretty(&s).expect("summary serialises")
            );
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
