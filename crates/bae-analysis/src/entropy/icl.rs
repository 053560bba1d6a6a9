//! The in-context-learning task behind `bae entropy --by demonstrations`.
//!
//! For each query of a task (a shipped list of query → answer pairs, [`builtin_tasks`]) and each
//! k in 0..=max_k, the prompt is k demonstrations then the query, no chat template:
//! `<|endoftext|>France: Paris\nJapan: Tokyo\nGermany:` ([`LEAD`], [`prompt_text`],
//! [`PromptTokens`]); [`run_icl`] returns, per k, the hidden state of the prompt's last token (the `:`
//! before the answer) at one block, for every query, and whether the model answers the query
//! right. The entropy of those sets of hidden states, k by k, is the paper's in-context-learning
//! application; the accuracy beside it says whether in-context learning happens at all.
//!
//! Demonstrations are drawn per query from a seeded generator, never the query itself; the
//! prompt with k demonstrations uses the first k of the same draw, so the curve compares like
//! with like (one demonstration more from k to k + 1, everything else equal).
//!
//! Accuracy is greedy decoding until a new line: a query is answered right when the greedy
//! continuation of its prompt is exactly the answer's tokens (`" {answer}"`) followed by a
//! token that starts a new line (or an end-of-text token). It is computed by teacher forcing
//! in the same forward pass as the hidden states: the prompt runs with the answer's tokens
//! appended, and the arg-max of the logits at the last prompt token and at each answer token
//! is compared with the next answer token (with a new line after the last). Greedy decoding
//! produces the answer if and only if every one of those arg-maxes matches, so this is exact,
//! and the answer tokens cannot change the hidden state of the earlier positions (causal
//! attention). The first-token accuracy (the arg-max after the prompt is the answer's first
//! token) is kept beside it.
//!
//! Measured on SmolLM2-135M-Instruct Q4_1, all queries, seed 0, greedy accuracy for
//! k = 0, 1, 2, 4, 8: `word_category` (304 queries, every answer one token; the default)
//! 0.00, 0.25, 0.40, 0.55, 0.65; `country_capital` (181) 0.00, 0.15, 0.19, 0.29, 0.40;
//! `antonym` (157) 0.00, 0.03, 0.17, 0.34, 0.40. With no demonstration the model never answers
//! in the format (mostly a new line or "The"): in-context learning is what makes it answer.
//!
//! Computation: every (query, k) prompt is one row of a batched [`Model::hidden_states`] call
//! (rows of similar length together, right-padded: padding after a position cannot change it),
//! returning the stream at `block` and after the last layer; the final norm and the output head
//! run on the few rows whose logits are needed. The states equal those of
//! [`Model::hidden_states`] on the prompt alone to float rounding (the matrix products see other
//! shapes; 3e-7 of the norm at worst in the test), not bit for bit. The work is the sum of the prompts' lengths
//! (the default task, all 304 queries, k = 0..=8: 70,217 tokens). [`Model::extend`] (the KV
//! cache) would share the demonstration prefix across k (about 3.4 times fewer tokens), but it
//! runs one sequence of a few tokens at a time and returns logits only, not a block's hidden
//! state: measured on the 2-core machine, its answers alone took 1.5 times as long per query as
//! this pass with the hidden states (1.44–1.69 s against 0.95 s, 30 queries, the machine shared).

mod prompt;
mod task;

pub use prompt::{LEAD, PromptTokens, demonstrations, prompt_text, select_queries};
pub use task::{DEFAULT_TASK, IclTask, builtin_tasks, parse_task, task, task_names};

use bae_llm::{Model, Tokenizer, argmax};

/// What [`run_icl`] computes.
#[derive(Clone, Debug)]
pub struct IclOptions {
    /// Block whose hidden states are returned (the residual stream after layer `block`,
    /// 0-based, as `bae extract --blocks`).
    pub block: usize,
    /// Largest number of demonstrations; k runs over 0..=max_k.
    pub max_k: usize,
    /// Number of queries, a seeded subset of the task's pairs (0 = every pair).
    pub queries: usize,
    /// Seed of the query subset and of each query's demonstrations.
    pub seed: u64,
    /// Prompts per forward pass.
    pub batch: usize,
}

impl Default for IclOptions {
    fn default() -> Self {
        IclOptions {
            block: 15,
            max_k: 8,
            queries: 0,
            seed: 0,
            batch: 32,
        }
    }
}

/// The prompts with k demonstrations, one row per query (in the order of [`IclStates::queries`]).
#[derive(Clone, Debug)]
pub struct IclLevel {
    pub k: usize,
    /// Last-token hidden states at the block, [n_queries, d_model] row-major.
    pub states: Vec<f32>,
    /// Position of the last token in its prompt (the prompt's length − 1).
    pub positions: Vec<usize>,
    /// Greedy decoding gives exactly the answer, then a new line.
    pub correct: Vec<bool>,
    /// The arg-max after the prompt is the answer's first token.
    pub first_token: Vec<bool>,
    /// The greedy continuation as far as it is known: the answer's tokens up to and including
    /// the first arg-max that departs from them (or, after the whole answer, the token that is
    /// not a new line), decoded and trimmed; exactly the answer when `correct`.
    pub predicted: Vec<String>,
}

impl IclLevel {
    /// Number of queries.
    pub fn n(&self) -> usize {
        self.correct.len()
    }

    /// Number of queries answered right (greedy, until a new line).
    pub fn n_correct(&self) -> usize {
        self.correct.iter().filter(|&&c| c).count()
    }

    /// Number of queries whose first answer token is right.
    pub fn n_first_token(&self) -> usize {
        self.first_token.iter().filter(|&&c| c).count()
    }

    /// Share of queries answered right (0 when there are none).
    pub fn accuracy(&self) -> f64 {
        self.n_correct() as f64 / self.n().max(1) as f64
    }
}

/// What [`run_icl`] returns.
#[derive(Clone, Debug)]
pub struct IclStates {
    pub task: String,
    pub block: usize,
    pub d_model: usize,
    /// Indices into the task's pairs, increasing.
    pub queries: Vec<usize>,
    /// Per query, its `max_k` demonstrations (indices into the task's pairs); the prompt with k
    /// demonstrations uses the first k.
    pub demos: Vec<Vec<usize>>,
    /// k = 0..=max_k, in order.
    pub levels: Vec<IclLevel>,
}

/// One prompt of the run: its tokens with the answer's appended.
struct Item {
    k: usize,
    /// index into the run's queries
    qi: usize,
    ids: Vec<u32>,
    prompt_len: usize,
}

/// Ids that end a greedy answer: tokens whose text starts a new line (spaces before it
/// ignored), the EOS id, `<|endoftext|>` and `<|im_end|>`.
fn stop_tokens(tok: &Tokenizer) -> Vec<bool> {
    let mut stop: Vec<bool> = (0..tok.vocab_size() as u32)
        .map(|id| {
            tok.decode(&[id])
                .trim_start_matches([' ', '\t'])
                .starts_with('\n')
        })
        .collect();
    let specials = ["<|endoftext|>", "<|im_end|>"].map(|s| tok.token_id(s));
    for id in specials.into_iter().chain([tok.eos_id]).flatten() {
        if let Some(s) = stop.get_mut(id as usize) {
            *s = true;
        }
    }
    stop
}

/// Runs every query of `task` with 0..=`opts.max_k` demonstrations; see the module docs.
///
/// `model` needs all layers and its output head. `progress(done, total)` is called after each
/// forward pass, counting prompts (total = n_queries × (max_k + 1)).
pub fn run_icl(
    model: &Model,
    tokenizer: &Tokenizer,
    task: &IclTask,
    opts: &IclOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<IclStates, String> {
    let cfg = model.config();
    let (d, last) = (cfg.d_model, cfg.n_layers - 1);
    if model.loaded_layers() != cfg.n_layers {
        return Err(format!(
            "the in-context task needs all {} layers loaded (for the answers), {} are",
            cfg.n_layers,
            model.loaded_layers()
        ));
    }
    if opts.block >= cfg.n_layers {
        return Err(format!(
            "block {} out of range: the model has {} blocks (0..{})",
            opts.block, cfg.n_layers, last
        ));
    }
    if opts.max_k >= task.pairs.len() {
        return Err(format!(
            "{} demonstrations asked for, task {} has {} pairs (at most {} besides the query)",
            opts.max_k,
            task.name,
            task.pairs.len(),
            task.pairs.len() - 1
        ));
    }
    let enc = PromptTokens::new(tokenizer, task)?;
    let stop = stop_tokens(tokenizer);
    let queries = select_queries(task, opts.queries, opts.seed);
    let demos: Vec<Vec<usize>> = queries
        .iter()
        .map(|&q| demonstrations(task, q, opts.max_k, opts.seed))
        .collect();

    let mut items = Vec::with_capacity(queries.len() * (opts.max_k + 1));
    for k in 0..=opts.max_k {
        for (qi, &q) in queries.iter().enumerate() {
            let mut ids = enc.prompt_ids(q, &demos[qi][..k]);
            let prompt_len = ids.len();
            ids.extend(enc.answer_ids(q));
            if ids.len() > cfg.context_length {
                return Err(format!(
                    "a prompt of {} tokens exceeds the context length {}",
                    ids.len(),
                    cfg.context_length
                ));
            }
            items.push(Item {
                k,
                qi,
                ids,
                prompt_len,
            });
        }
    }
    // similar lengths together: little padding
    items.sort_by_key(|it| it.ids.len());

    let n = queries.len();
    let mut levels: Vec<IclLevel> = (0..=opts.max_k)
        .map(|k| IclLevel {
            k,
            states: vec![0.0; n * d],
            positions: vec![0; n],
            correct: vec![false; n],
            first_token: vec![false; n],
            predicted: vec![String::new(); n],
        })
        .collect();
    let ones = vec![1f32; d];
    let total = items.len();
    let mut done = 0;
    for chunk in items.chunks(opts.batch.max(1)) {
        let (b, seq) = (
            chunk.len(),
            chunk.iter().map(|it| it.ids.len()).max().unwrap_or(1),
        );
        // any token pads: it comes after every position read
        let mut ids = vec![chunk[0].ids[0]; b * seq];
        for (r, it) in chunk.iter().enumerate() {
            ids[r * seq..r * seq + it.ids.len()].copy_from_slice(&it.ids);
        }
        let hs = model
            .hidden_states(&ids, b, seq, &[opts.block, last])
            .map_err(|e| e.to_string())?;
        // the final norm (its weight is applied by unembed_directions) of the rows that predict
        // an answer token or the new line after it
        let mut rows = Vec::new();
        for (r, it) in chunk.iter().enumerate() {
            for p in it.prompt_len - 1..it.ids.len() {
                let at = (r * seq + p) * d;
                rows.extend_from_slice(&hs[1][at..at + d]);
            }
        }
        let mut normed = vec![0f32; rows.len()];
        bae_llm::kernels::rms_norm(&rows, &ones, cfg.rms_eps, &mut normed);
        let logits = model
            .unembed_directions(&normed, rows.len() / d)
            .map_err(|e| e.to_string())?;
        let mut row = 0;
        for (r, it) in chunk.iter().enumerate() {
            let (q, p) = (queries[it.qi], it.prompt_len - 1);
            let level = &mut levels[it.k];
            let at = (r * seq + p) * d;
            level.states[it.qi * d..(it.qi + 1) * d].copy_from_slice(&hs[0][at..at + d]);
            level.positions[it.qi] = p;
            let answer = enc.answer_ids(q);
            let greedy: Vec<u32> = (0..=answer.len())
                .map(|i| {
                    let v = cfg.vocab_size;
                    argmax(&logits[(row + i) * v..(row + i + 1) * v])
                })
                .collect();
            row += answer.len() + 1;
            let mut said = Vec::new();
            let mut ok = true;
            for (&g, &a) in greedy.iter().zip(answer) {
                said.push(g);
                if g != a {
                    ok = false;
                    break;
                }
            }
            if ok
                && !stop
                    .get(greedy[answer.len()] as usize)
                    .copied()
                    .unwrap_or(false)
            {
                ok = false;
                said.push(greedy[answer.len()]);
            }
            level.correct[it.qi] = ok;
            level.first_token[it.qi] = greedy[0] == answer[0];
            level.predicted[it.qi] = tokenizer.decode(&said).trim().to_string();
        }
        done += chunk.len();
        progress(done, total);
    }
    Ok(IclStates {
        task: task.name.clone(),
        block: opts.block,
        d_model: d,
        queries,
        demos,
        levels,
    })
}
