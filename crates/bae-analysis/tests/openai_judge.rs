//! `OpenAiJudge` against a real HTTP server: a tiny HTTP/1.1 responder on 127.0.0.1:0, written here
//! with std::net, answering scripted responses and recording what it got. Plus one live test against a
//! real OpenAI-compatible server when JUDGE_URL is set (`bash scripts/judge_server.sh start 8765`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bae_analysis::interpret::judge::{ChatMessage, Judge, JudgeError, Request};
use bae_analysis::interpret::openai::{
    OpenAiJudge, OpenAiOptions, estimate_cost, estimate_usage, rough_tokens,
};
use serde_json::{Value, json};

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Got {
    path: String,
    /// lower-cased names
    headers: Vec<(String, String)>,
    body: Value,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn user_text(&self) -> String {
        self.body["messages"][0]["content"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    fn new(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
    fn ok(content: &str) -> Reply {
        Reply::new(
            200,
            json!({
                "id": "x", "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
            })
            .to_string(),
        )
    }
    fn error(status: u16, message: &str) -> Reply {
        Reply::new(
            status,
            json!({"error": {"message": message, "type": "x"}}).to_string(),
        )
    }
    fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
    fn after(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

type Script = dyn Fn(usize, &Got) -> Reply + Send + Sync;

/// The scripted server; stops when dropped.
struct Server {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    stop: Arc<AtomicBool>,
    port: u16,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// `script(n, request)` answers the n-th request (0-based, in arrival order).
    fn start(script: impl Fn(usize, &Got) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let count = Arc::new(AtomicUsize::new(0));
        let (g, s) = (got.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (g, script, count) = (g.clone(), script.clone(), count.clone());
                std::thread::spawn(move || serve(conn, &g, &*script, &count));
            }
        });
        Server {
            url: format!("http://127.0.0.1:{port}/v1"),
            got,
            stop,
            port,
            thread: Some(thread),
        }
    }
    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wake the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves requests on one connection (keep-alive) until the client closes it.
fn serve(conn: TcpStream, got: &Mutex<Vec<Got>>, script: &Script, count: &AtomicUsize) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut writer = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let got_one = Got {
            path,
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        };
        got.lock().unwrap().push(got_one.clone());
        let n = count.fetch_add(1, Ordering::SeqCst);
        let reply = script(n, &got_one);
        std::thread::sleep(reply.delay);
        let mut out = format!(
            "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            reply.status,
            reply.body.len()
        );
        for (k, v) in &reply.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&reply.body);
        if writer.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}

fn opts(url: &str) -> OpenAiOptions {
    OpenAiOptions {
        url: url.into(),
        model: "test-model".into(),
        key_env: None,
        concurrency: 1,
        requests_per_minute: None,
        max_retries: 3,
        timeout_s: 10.0,
        price_per_mtok_in: None,
        price_per_mtok_out: None,
        backoff_base_s: 0.01,
        max_backoff_s: 5.0,
    }
}

fn req(text: &str) -> Request {
    Request {
        messages: vec![
            ChatMessage::new("user", text),
            ChatMessage::new("assistant", "ok"),
        ],
        max_tokens: 7,
    }
}

fn fatal(r: &Result<String, JudgeError>) -> String {
    match r {
        Err(JudgeError::Fatal(m)) => {
            println!("Fatal: {m}");
            m.clone()
        }
        other => panic!("expected Fatal, got {other:?}"),
    }
}

fn failed(r: &Result<String, JudgeError>) -> String {
    match r {
        Err(JudgeError::Failed(m)) => {
            println!("Failed: {m}");
            m.clone()
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn ok_request_body_and_key() {
    let server = Server::start(|_, _| Reply::ok("Yes"));
    let var = "BAE_TEST_JUDGE_KEY_OK";
    // SAFETY: a variable only this test reads; the other tests use their own names.
    unsafe { std::env::set_var(var, "sk-test-123") };
    let judge = OpenAiJudge::new(OpenAiOptions {
        key_env: Some(var.into()),
        ..opts(&server.url)
    })
    .unwrap();
    assert!(judge.has_key());
    assert_eq!(judge.id(), format!("openai:{}:test-model", server.url));
    let out = judge.complete(&[req("Is this a date?")]);
    assert_eq!(out, vec![Ok("Yes".to_string())]);
    let got = server.got();
    assert_eq!(got.len(), 1);
    let g = &got[0];
    assert_eq!(g.path, "/v1/chat/completions");
    assert_eq!(g.header("authorization"), Some("Bearer sk-test-123"));
    assert_eq!(g.body["model"], "test-model");
    assert_eq!(g.body["temperature"], 0);
    assert_eq!(g.body["max_tokens"], 7);
    assert_eq!(
        g.body["messages"],
        json!([{"role": "user", "content": "Is this a date?"}, {"role": "assistant", "content": "ok"}])
    );
    assert_eq!(judge.usage(), (11, 3));
}

#[test]
fn loopback_without_key_sends_no_authorization() {
    let server = Server::start(|_, _| Reply::ok("No"));
    // a trailing slash on the base is fine
    let judge = OpenAiJudge::new(OpenAiOptions {
        key_env: Some("BAE_TEST_JUDGE_KEY_UNSET_LOOPBACK".into()),
        ..opts(&format!("{}/", server.url))
    })
    .unwrap();
    assert!(!judge.has_key());
    assert_eq!(judge.complete(&[req("q")]), vec![Ok("No".to_string())]);
    let got = server.got();
    assert_eq!(got[0].path, "/v1/chat/completions");
    assert_eq!(got[0].header("authorization"), None);
    // localhost and ::1 count as loopback too
    for url in ["http://localhost:9/v1", "http://[::1]:9/v1"] {
        assert!(
            OpenAiJudge::new(OpenAiOptions {
                key_env: Some("BAE_TEST_JUDGE_KEY_UNSET_LOOPBACK".into()),
                ..opts(url)
            })
            .is_ok()
        );
    }
}

#[test]
fn missing_key_for_remote_url_and_bad_urls_refused_at_new() {
    let e = OpenAiJudge::new(OpenAiOptions {
        key_env: Some("BAE_TEST_JUDGE_KEY_NEVER_SET".into()),
        ..opts("https://api.example.invalid/v1")
    })
    .err()
    .unwrap();
    assert_eq!(
        e,
        "judge: no API key: set BAE_TEST_JUDGE_KEY_NEVER_SET (or choose another variable with --judge-key-env)"
    );
    // empty counts as unset
    // SAFETY: a variable only this test reads.
    unsafe { std::env::set_var("BAE_TEST_JUDGE_KEY_EMPTY", "") };
    let e = OpenAiJudge::new(OpenAiOptions {
        key_env: Some("BAE_TEST_JUDGE_KEY_EMPTY".into()),
        ..opts("https://api.example.invalid/v1")
    })
    .err()
    .unwrap();
    assert!(e.contains("no API key"), "{e}");
    for bad in [
        "ftp://x/v1",
        "api.openai.com/v1",
        "http:///v1",
        "http://a b/v1",
        "",
    ] {
        let e = OpenAiJudge::new(opts(bad)).err().unwrap();
        assert!(e.starts_with("judge: ") && !e.contains('\n'), "{bad}: {e}");
    }
}

#[test]
fn retry_after_429_is_honoured() {
    let server = Server::start(|n, _| {
        if n == 0 {
            Reply::error(429, "slow down").header("Retry-After", "1")
        } else {
            Reply::ok("later")
        }
    });
    let judge = OpenAiJudge::new(opts(&server.url)).unwrap();
    let t = Instant::now();
    let out = judge.complete(&[req("q")]);
    let dt = t.elapsed();
    assert_eq!(out, vec![Ok("later".to_string())]);
    assert_eq!(server.got().len(), 2);
    assert!(dt >= Duration::from_millis(950), "waited only {dt:?}");
    assert!(dt < Duration::from_secs(4), "waited {dt:?}");
}

#[test]
fn server_errors_retried_then_failed() {
    let server = Server::start(|_, _| Reply::error(503, "overloaded"));
    let judge = OpenAiJudge::new(OpenAiOptions {
        max_retries: 2,
        ..opts(&server.url)
    })
    .unwrap();
    let out = judge.complete(&[req("q")]);
    let m = failed(&out[0]);
    assert!(
        m.contains("HTTP 503") && m.contains("overloaded") && m.contains("after 3 tries"),
        "{m}"
    );
    assert_eq!(server.got().len(), 3);
}

#[test]
fn bad_request_400_failed_without_retry() {
    let server = Server::start(|n, _| {
        if n == 0 {
            Reply::error(400, "max_tokens is too large")
        } else {
            Reply::ok("fine")
        }
    });
    let judge = OpenAiJudge::new(opts(&server.url)).unwrap();
    let out = judge.complete(&[req("a"), req("b")]);
    let m = failed(&out[0]);
    assert!(
        m.contains("HTTP 400") && m.contains("max_tokens is too large"),
        "{m}"
    );
    assert_eq!(out[1], Ok("fine".to_string()));
    assert_eq!(server.got().len(), 2);
}

#[test]
fn unauthorized_401_is_fatal_and_stops_the_rest() {
    let server = Server::start(|_, _| Reply::error(401, "Incorrect API key provided: sk-wr***"));
    let var = "BAE_TEST_JUDGE_KEY_401";
    // SAFETY: a variable only this test reads.
    unsafe { std::env::set_var(var, "sk-wrong") };
    let judge = OpenAiJudge::new(OpenAiOptions {
        key_env: Some(var.into()),
        ..opts(&server.url)
    })
    .unwrap();
    let out = judge.complete(&[req("a"), req("b"), req("c")]);
    let m = fatal(&out[0]);
    assert_eq!(
        m,
        format!(
            "judge: HTTP 401 from {}/chat/completions: Incorrect API key provided: sk-wr*** (check the key in ${var})",
            server.url
        )
    );
    assert!(fatal(&out[1]).contains("HTTP 401"));
    assert!(fatal(&out[2]).contains("HTTP 401"));
    assert_eq!(
        server.got().len(),
        1,
        "requests after a fatal error were sent"
    );
}

#[test]
fn not_found_404_is_fatal_naming_url_and_model() {
    let server = Server::start(|_, _| Reply::new(404, r#"{"detail":"Not Found"}"#));
    let judge = OpenAiJudge::new(opts(&server.url)).unwrap();
    let out = judge.complete(&[req("a")]);
    let m = fatal(&out[0]);
    assert!(
        m.contains("HTTP 404")
            && m.contains(&server.url)
            && m.contains("test-model")
            && m.contains("Not Found"),
        "{m}"
    );
    assert_eq!(server.got().len(), 1);
}

#[test]
fn malformed_responses_fail() {
    let server = Server::start(|n, _| match n {
        0 => Reply::new(200, "<html>gateway says hi</html>"),
        1 => Reply::new(200, r#"{"choices": []}"#),
        _ => Reply::new(
            200,
            r#"{"choices": [{"message": {"role": "assistant", "content": null}}]}"#,
        ),
    });
    let judge = OpenAiJudge::new(opts(&server.url)).unwrap();
    let out = judge.complete(&[req("a"), req("b"), req("c")]);
    for r in &out {
        let m = failed(r);
        assert!(m.starts_with("judge: malformed response from "), "{m}");
        assert!(!m.contains('\n'));
    }
    assert!(failed(&out[0]).contains("gateway says hi"));
    assert_eq!(server.got().len(), 3, "malformed answers are not retried");
    assert_eq!(judge.usage(), (0, 0));
}

#[test]
fn unreachable_server_is_fatal() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/v1");
    let judge = OpenAiJudge::new(OpenAiOptions {
        max_retries: 2,
        ..opts(&url)
    })
    .unwrap();
    let out = judge.complete(&[req("a"), req("b")]);
    let m = fatal(&out[0]);
    assert!(
        m.starts_with(&format!("judge: cannot reach {url}: ")) && m.ends_with("(after 3 tries)"),
        "{m}"
    );
    assert!(!m.contains('\n'));
    assert!(fatal(&out[1]).contains("cannot reach"));
}

#[test]
fn order_preserved_with_concurrency() {
    // request i is answered after (8 - i) × 40 ms: the last ones finish first
    let server = Server::start(|_, g| {
        let i: u64 = g.user_text().trim_start_matches("n").parse().unwrap_or(0);
        Reply::ok(&format!("answer {i}")).after(Duration::from_millis((8 - i) * 40))
    });
    let judge = OpenAiJudge::new(OpenAiOptions {
        concurrency: 4,
        ..opts(&server.url)
    })
    .unwrap();
    let reqs: Vec<Request> = (0..8).map(|i| req(&format!("n{i}"))).collect();
    let t = Instant::now();
    let out = judge.complete(&reqs);
    let dt = t.elapsed();
    let want: Vec<Result<String, JudgeError>> = (0..8).map(|i| Ok(format!("answer {i}"))).collect();
    assert_eq!(out, want);
    // sequentially: 40 × (8+7+...+1) = 1.44 s; 4 at once is well under that
    assert!(dt < Duration::from_millis(1200), "not concurrent: {dt:?}");
    assert_eq!(judge.usage(), (8 * 11, 8 * 3));
}

#[test]
fn rate_limit_spaces_requests() {
    let server = Server::start(|_, _| Reply::ok("x"));
    let judge = OpenAiJudge::new(OpenAiOptions {
        concurrency: 5,
        requests_per_minute: Some(600.0),
        ..opts(&server.url)
    })
    .unwrap();
    let reqs: Vec<Request> = (0..5).map(|i| req(&format!("n{i}"))).collect();
    let t = Instant::now();
    let out = judge.complete(&reqs);
    let dt = t.elapsed();
    assert!(out.iter().all(|r| r.is_ok()));
    assert!(
        dt >= Duration::from_millis(390),
        "5 requests at 600/min took {dt:?}"
    );
}

#[test]
fn empty_batch() {
    let judge = OpenAiJudge::new(opts("http://127.0.0.1:9/v1")).unwrap();
    assert!(judge.complete(&[]).is_empty());
}

#[test]
fn estimates() {
    assert_eq!(rough_tokens(""), 0);
    assert_eq!(rough_tokens("abcd"), 1);
    assert_eq!(rough_tokens("abcde"), 2);
    let reqs = vec![req(&"x".repeat(400)); 10];
    let e = estimate_usage(&reqs);
    // per request: 100 + 4 (user) + 1 + 4 (assistant "ok")
    assert_eq!((e.requests, e.tokens_in, e.tokens_out_max), (10, 1090, 70));
    let mut o = opts("http://127.0.0.1:9/v1");
    assert_eq!(e.cost(&o), None);
    assert!(e.summary(&o).contains("cost unknown"), "{}", e.summary(&o));
    o.price_per_mtok_in = Some(0.15);
    assert_eq!(estimate_cost(1_000_000, 0, &o), None);
    o.price_per_mtok_out = Some(0.60);
    let c = estimate_cost(2_000_000, 1_000_000, &o).unwrap();
    assert!((c - 0.9).abs() < 1e-12, "{c}");
    let s = e.summary(&o);
    assert!(
        s.starts_with("about 10 requests, ~1.1 k input tokens, ≤ 0.1 k output tokens, ≤ ~$0.0002"),
        "{s}"
    );
}

/// Against a real OpenAI-compatible server: `bash scripts/judge_server.sh setup && bash
/// scripts/judge_server.sh start 8765`, then `JUDGE_URL=http://127.0.0.1:8765/v1 cargo test --release -p
/// bae-analysis --test openai_judge openai_judge_live -- --nocapture`. Skipped without JUDGE_URL.
#[test]
fn openai_judge_live() {
    let Ok(url) = std::env::var("JUDGE_URL") else {
        println!(
            "SKIP openai_judge_live: JUDGE_URL not set (bash scripts/judge_server.sh start 8765)"
        );
        return;
    };
    let model =
        std::env::var("JUDGE_MODEL").unwrap_or_else(|_| "SmolLM2-135M-Instruct.Q4_1".into());
    let judge = OpenAiJudge::new(OpenAiOptions {
        url: url.clone(),
        model,
        key_env: Some(std::env::var("JUDGE_KEY_ENV").unwrap_or_else(|_| "OPENAI_API_KEY".into())),
        concurrency: 1,
        max_retries: 2,
        timeout_s: 120.0,
        ..OpenAiOptions::default()
    })
    .unwrap();
    let yes_no = Request {
        messages: vec![
            ChatMessage::new(
                "system",
                "You answer questions about text with one word: Yes or No.",
            ),
            ChatMessage::new(
                "user",
                "Text: \"the annual message of [December] 3, 1861\"\nDoes the marked token name a month? Answer Yes or No.",
            ),
        ],
        max_tokens: 4,
    };
    let describe = Request {
        messages: vec![
            ChatMessage::new(
                "system",
                "You describe in a short phrase what the marked tokens in text snippets have in common.",
            ),
            ChatMessage::new(
                "user",
                "Snippets (marked token in brackets):\n1. the 5[th] of March\n2. renewed for the 22[nd] time\n3. on the 1[st] of May\nWhat do the marked tokens have in common? Answer in at most 8 words.",
            ),
        ],
        max_tokens: 24,
    };
    let mut answers = Vec::new();
    for r in [&yes_no, &describe] {
        let t = Instant::now();
        let out = judge.complete(std::slice::from_ref(r));
        let dt = t.elapsed();
        let text = match &out[0] {
            Ok(t) => t.clone(),
            Err(e) => panic!("live judge at {url}: {e}"),
        };
        println!(
            "live {} answer {text:?} in {:.2} s",
            judge.id(),
            dt.as_secs_f64()
        );
        assert!(!text.trim().is_empty(), "empty answer");
        answers.push(text);
    }
    // both at once, in order
    let t = Instant::now();
    let both = judge.complete(&[yes_no, describe]);
    println!(
        "live batch of 2: {:.2} s, usage so far {:?} (prompt, completion tokens)",
        t.elapsed().as_secs_f64(),
        judge.usage()
    );
    assert!(
        both.iter()
            .all(|r| r.as_ref().is_ok_and(|s| !s.trim().is_empty()))
    );
    // temperature 0: the same answers again
    let again: Vec<String> = both.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(again, answers, "temperature 0 gave different answers");
}
