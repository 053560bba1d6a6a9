//! `bae entropy` (being written).

use clap::Args;

#[derive(Args)]
pub struct EntropyArgs {}

pub fn run(_a: EntropyArgs) -> Result<(), String> {
    Err("not written yet".into())
}
