//! The progress bar of the long commands: elapsed, bar, counts of `what`, ETA; hidden with --quiet.

use indicatif::{ProgressBar, ProgressStyle};

pub fn bar(quiet: bool, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{{elapsed_precise}} [{{wide_bar}}] {{human_pos}}/{{human_len}} {what}, ETA {{eta}}"
        ))
        .expect("static template"),
    );
    pb
}

/// A progress callback `(done, total)` that moves `pb`.
pub fn track(pb: &ProgressBar) -> impl FnMut(usize, usize) + '_ {
    move |done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    }
}
