//! Every judge answer on disk, keyed by (judge, request): a rerun or an interrupted run asks
//! the judge nothing twice. One small file per answer, written atomically (temp + rename), so an
//! interrupt loses at most the answers in flight; the full key is stored and compared on read.

use super::judge::{Judge, JudgeError, Request};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
struct Entry {
    judge: String,
    request: Request,
    answer: String,
}

pub struct AnswerCache {
    dir: PathBuf,
}

/// 128-bit FNV-1a (two 64-bit lanes with different offsets) as hex: stable across runs and
/// builds, unlike std's hasher.
fn key_hash(judge: &str, request: &Request) -> String {
    let text = serde_json::to_string(&(judge, request)).expect("plain data");
    let mut lanes = [0xcbf2_9ce4_8422_2325u64, 0x6c62_272e_07bb_0142u64];
    for b in text.bytes() {
        for h in &mut lanes {
            *h ^= b as u64;
            *h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{:016x}{:016x}", lanes[0], lanes[1])
}

/// What one `ask` call did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CacheStats {
    pub hits: usize,
    pub asked: usize,
    pub failed: usize,
}

impl AnswerCache {
    pub fn open(dir: &Path) -> Result<AnswerCache, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("{}: cannot create the answer cache: {e}", dir.display()))?;
        Ok(AnswerCache {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, hash: &str) -> PathBuf {
        self.dir.join(&hash[..2]).join(format!("{hash}.json"))
    }

    pub fn get(&self, judge: &str, request: &Request) -> Option<String> {
        let text = std::fs::read_to_string(self.path(&key_hash(judge, request))).ok()?;
        let e: Entry = serde_json::from_str(&text).ok()?;
        (e.judge == judge && &e.request == request).then_some(e.answer)
    }

    pub fn put(&self, judge: &str, request: &Request, answer: &str) -> Result<(), String> {
        let path = self.path(&key_hash(judge, request));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("{}: cannot create: {e}", parent.display()))?;
        }
        let entry = Entry {
            judge: judge.to_string(),
            request: request.clone(),
            answer: answer.to_string(),
        };
        let json = serde_json::to_vec(&entry).expect("plain data");
        bae_io::write_atomic(&path, &json).map_err(|e| e.to_string())
    }

    /// Answers `requests` from the cache, asks the judge the rest in chunks of `chunk` (each
    /// answer saved as soon as its chunk returns), and reports each chunk through `done`.
    /// A fatal judge error stops at once, with everything answered so far kept.
    pub fn ask(
        &self,
        judge: &dyn Judge,
        requests: &[Request],
        chunk: usize,
        stats: &mut CacheStats,
        done: &mut dyn FnMut(usize),
    ) -> Result<Vec<Option<String>>, String> {
        let id = judge.id();
        let mut out: Vec<Option<String>> = requests.iter().map(|r| self.get(&id, r)).collect();
        let hits = out.iter().filter(|a| a.is_some()).count();
        stats.hits += hits;
        done(hits);
        let todo: Vec<usize> = (0..requests.len()).filter(|&i| out[i].is_none()).collect();
        for part in todo.chunks(chunk.max(1)) {
            let batch: Vec<Request> = part.iter().map(|&i| requests[i].clone()).collect();
            let answers = judge.complete(&batch);
            for (&i, answer) in part.iter().zip(answers) {
                match answer {
                    Ok(text) => {
                        self.put(&id, &requests[i], &text)?;
                        stats.asked += 1;
                        out[i] = Some(text);
                    }
                    Err(JudgeError::Failed(_)) => stats.failed += 1,
                    Err(JudgeError::Fatal(m)) => return Err(m),
                }
            }
            done(part.len());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interpret::judge::ChatMessage;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize);
    impl Judge for Counting {
        fn id(&self) -> String {
            "test:counting".into()
        }
        fn complete(&self, requests: &[Request]) -> Vec<Result<String, JudgeError>> {
            requests
                .iter()
                .map(|r| {
                    self.0.fetch_add(1, Ordering::SeqCst);
                    if r.messages[0].content == "fail" {
                        Err(JudgeError::Failed("nope".into()))
                    } else {
                        Ok(format!("re: {}", r.messages[0].content))
                    }
                })
                .collect()
        }
    }

    fn req(s: &str) -> Request {
        Request {
            messages: vec![ChatMessage::new("user", s)],
            max_tokens: 3,
        }
    }

    #[test]
    fn second_ask_costs_nothing_and_failures_are_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let cache = AnswerCache::open(dir.path()).unwrap();
        let judge = Counting(AtomicUsize::new(0));
        let reqs = [req("a"), req("b"), req("fail"), req("a")];
        let mut st = CacheStats::default();
        let got = cache.ask(&judge, &reqs, 2, &mut st, &mut |_| {}).unwrap();
        assert_eq!(got[0].as_deref(), Some("re: a"));
        assert_eq!(got[2], None);
        assert_eq!(st.failed, 1);
        assert_eq!(judge.0.load(Ordering::SeqCst), 4);
        let mut st2 = CacheStats::default();
        let again = cache.ask(&judge, &reqs, 2, &mut st2, &mut |_| {}).unwrap();
        assert_eq!(again[..2], got[..2]);
        assert_eq!(st2.hits, 3);
        // only the failed request is asked again
        assert_eq!(judge.0.load(Ordering::SeqCst), 5);
        // another judge id or max_tokens is another key
        assert_eq!(cache.get("test:other", &reqs[0]), None);
        let mut longer = req("a");
        longer.max_tokens = 4;
        assert_eq!(cache.get("test:counting", &longer), None);
        assert_eq!(key_hash("j", &reqs[0]), key_hash("j", &req("a")));
        assert_ne!(key_hash("j", &reqs[0]), key_hash("j", &reqs[1]));
    }
}
