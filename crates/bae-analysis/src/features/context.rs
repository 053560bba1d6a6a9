//! The text around a sample's token, decoded from the token ids an extract folder stores.

use super::{Context, Sample};
use bae_io::ShardStore;
use bae_llm::Tokenizer;

/// Tokens shown before and after a sample's token.
pub const BEFORE: usize = 24;
pub const AFTER: usize = 6;

/// Rows next to `row` in the same document and window (consecutive positions), walking `step`
/// (−1 back, +1 forward) at most `max` rows.
fn neighbours(store: &ShardStore, row: usize, step: isize, max: usize) -> Vec<u32> {
    let Some((_, pos)) = store.token_of(row) else {
        return Vec::new();
    };
    let doc = store.doc_of(row);
    let n = bae_train::RowSource::n_rows(store) as isize;
    let mut ids = Vec::new();
    let mut r = row as isize;
    while ids.len() < max {
        r += step;
        if r < 0 || r >= n {
            break;
        }
        match store.token_of(r as usize) {
            Some((id, p))
                if p == pos + step as i64 * (ids.len() as i64 + 1)
                    && store.doc_of(r as usize) == doc =>
            {
                ids.push(id)
            }
            _ => break,
        }
    }
    if step < 0 {
        ids.reverse();
    }
    ids
}

fn visible(text: String) -> String {
    text.replace('\n', "⏎")
}

/// Fills doc, position, token id and the decoded context of each sample.
pub fn fill(samples: &mut [Sample], store: &ShardStore, tok: &Tokenizer) -> Result<(), String> {
    for s in samples {
        let (id, pos) = store.token_of(s.row).ok_or_else(|| {
            format!(
                "{}: the extract stores no token ids (made by an old `bae extract`?): contexts cannot be decoded",
                bae_train::RowSource::describe(store)
            )
        })?;
        s.token_id = id;
        s.position = pos;
        s.doc = store.doc_of(s.row);
        s.context = Context {
            before: visible(tok.decode(&neighbours(store, s.row, -1, BEFORE))),
            token: visible(tok.decode(&[id])),
            after: visible(tok.decode(&neighbours(store, s.row, 1, AFTER))),
        };
    }
    Ok(())
}
