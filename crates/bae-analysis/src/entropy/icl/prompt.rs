//! Seeded choice of queries and demonstrations, and the prompts built from them.
//!
//! Format (no chat template): a lead ([`LEAD`]), then one line per demonstration,
//! `"{query}: {answer}\n"`, then the query line without its answer, `"{query}:"`. The last prompt
//! token is the `:` after the query (the token right before the answer, whose hidden state is
//! read); the answer is expected as the next tokens, `" {answer}"`, then a newline.
//!
//! Tokens: each piece (lead, every demonstration line, the query line) is encoded on its own and
//! the pieces are concatenated, so the k-demonstration prompt is token for token the
//! (k−1)-demonstration prompt with one more line inserted before the query line. For the shipped
//! tasks and SmolLM2's tokenizer this equals encoding the whole text at once (tested).

use super::task::IclTask;
use bae_llm::Tokenizer;

/// What every prompt starts with: SmolLM2's `<|endoftext|>` token (id 0), the document separator
/// of its pre-training text, so the prompt reads as the start of a document. It takes the
/// attention sink at position 0, so the last token of even the shortest prompt (no
/// demonstration) is not a sink position.
pub const LEAD: &str = "<|endoftext|>";

/// splitmix64: a small seeded generator whose stream never changes with a dependency.
struct SplitMix(u64);

impl SplitMix {
    fn new(seed: u64, stream: u64) -> SplitMix {
        let mut s = SplitMix(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        s.next();
        s
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0), by the multiply-shift reduction.
    fn below(&mut self, n: usize) -> usize {
        ((self.next() as u128 * n as u128) >> 64) as usize
    }

    /// The first `k` entries of a seeded shuffle of `items` (partial Fisher–Yates).
    fn choose(&mut self, mut items: Vec<usize>, k: usize) -> Vec<usize> {
        let k = k.min(items.len());
        for i in 0..k {
            let j = i + self.below(items.len() - i);
            items.swap(i, j);
        }
        items.truncate(k);
        items
    }
}

/// Stream of the query subset (the per-query demonstration streams are the query indices).
const QUERY_STREAM: u64 = u64::MAX;

/// `max_k` demonstrations for pair `query`: distinct indices into `task.pairs`, never `query`,
/// from a generator seeded by (`seed`, `query`). The prompt with k demonstrations uses the
/// first k, so every k shares the earlier ones. At most `task.pairs.len() - 1` are returned.
pub fn demonstrations(task: &IclTask, query: usize, max_k: usize, seed: u64) -> Vec<usize> {
    let others: Vec<usize> = (0..task.pairs.len()).filter(|&i| i != query).collect();
    SplitMix::new(seed, query as u64).choose(others, max_k)
}

/// The queries of a run: all pairs when `count` is 0 or at least their number, otherwise a
/// seeded subset of `count`; in increasing order.
pub fn select_queries(task: &IclTask, count: usize, seed: u64) -> Vec<usize> {
    let n = task.pairs.len();
    if count == 0 || count >= n {
        return (0..n).collect();
    }
    let mut q = SplitMix::new(seed, QUERY_STREAM).choose((0..n).collect(), count);
    q.sort_unstable();
    q
}

/// The prompt as text: [`LEAD`], the demonstration lines, the query line.
pub fn prompt_text(task: &IclTask, query: usize, demos: &[usize]) -> String {
    let mut s = String::from(LEAD);
    for &d in demos {
        let (q, a) = &task.pairs[d];
        s.push_str(&format!("{q}: {a}\n"));
    }
    s.push_str(&format!("{}:", task.pairs[query].0));
    s
}

/// The tokens of every piece of a task's prompts, encoded once.
pub struct PromptTokens {
    lead: Vec<u32>,
    /// per pair: `"{query}:"`
    query: Vec<Vec<u32>>,
    /// per pair: `" {answer}"`
    answer: Vec<Vec<u32>>,
    newline: Vec<u32>,
}

impl PromptTokens {
    /// Encodes every pair of `task`; an error when the vocabulary has no `<|endoftext|>` token.
    pub fn new(tok: &Tokenizer, task: &IclTask) -> Result<PromptTokens, String> {
        let lead = tok
            .token_id(LEAD)
            .ok_or_else(|| format!("the vocabulary has no {LEAD} token (not SmolLM2's)"))?;
        let (mut query, mut answer) = (Vec::new(), Vec::new());
        for (q, a) in &task.pairs {
            query.push(tok.encode(&format!("{q}:")));
            answer.push(tok.encode(&format!(" {a}")));
        }
        Ok(PromptTokens {
            lead: vec![lead],
            query,
            answer,
            newline: tok.encode("\n"),
        })
    }

    /// The tokens of one demonstration line, `"{query}: {answer}\n"`.
    pub fn demo_ids(&self, pair: usize) -> Vec<u32> {
        let mut ids = self.query[pair].clone();
        ids.extend(&self.answer[pair]);
        ids.extend(&self.newline);
        ids
    }

    /// The prompt of `query` after `demos`: the lead, one line per demonstration, `"{query}:"`.
    pub fn prompt_ids(&self, query: usize, demos: &[usize]) -> Vec<u32> {
        let mut ids = self.lead.clone();
        for &d in demos {
            ids.extend(self.demo_ids(d));
        }
        ids.extend(&self.query[query]);
        ids
    }

    /// The answer's tokens, `" {answer}"`, as they follow the prompt in a demonstration.
    pub fn answer_ids(&self, pair: usize) -> &[u32] {
        &self.answer[pair]
    }
}
