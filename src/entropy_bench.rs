//! `bae entropy-bench` (being written).

use clap::Args;

#[derive(Args)]
pub struct EntropyBenchArgs {}

pub fn run(_a: EntropyBenchArgs) -> Result<(), String> {
    Err("not written yet".into())
}
