//! A [`Judge`] that speaks the OpenAI chat-completions protocol over HTTP: the OpenAI API itself, or any
//! compatible server (llama.cpp's `llama-server`, `llama_cpp.server`, vLLM, Ollama's `/v1`, ...).
//!
//! Each request is one `POST {url}/chat/completions` with `{"model", "messages", "max_tokens",
//! "temperature": 0}` and `Authorization: Bearer <key>`; the answer is `choices[0].message.content`.
//! Requests run on up to `concurrency` threads, spaced by `requests_per_minute`, retried with exponential
//! backoff and jitter on connection errors, timeouts, HTTP 408, 429 and 5xx (honouring `Retry-After`).
//!
//! What becomes of a request that does not succeed:
//!
//! | what happened | result |
//! |---|---|
//! | cannot connect (refused, DNS, TLS), still so after the retries | [`JudgeError::Fatal`] `judge: cannot reach <url>: ... (after N tries)` |
//! | HTTP 401 / 403 | `Fatal`, not retried: the key is wrong |
//! | HTTP 404 | `Fatal`, not retried: wrong URL path or unknown model |
//! | HTTP 400 and other 4xx | [`JudgeError::Failed`], not retried, with the server's error message |
//! | HTTP 408 / 429 / 5xx or a timeout, still so after the retries | `Failed` |
//! | 200 whose body is not a chat completion | `Failed` `judge: malformed response from <url>: <excerpt>` |
//!
//! After a `Fatal`, requests not yet sent are not sent: they return `Fatal` too. Every message is one line.
//!
//! Before a long run, [`estimate_usage`] gives the request count and a rough token count (≈ 4 characters a
//! token) and [`UsageEstimate::summary`] the line to print, with a cost when prices are given.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::judge::{Judge, JudgeError, Request};

/// How to reach an OpenAI-compatible server and how hard to push it.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenAiOptions {
    /// Base URL, up to and including the version: `http://127.0.0.1:8080/v1`, `https://api.openai.com/v1`.
    pub url: String,
    /// The `model` field of each request, e.g. `gpt-4o-mini`; local servers often ignore it.
    pub model: String,
    /// The environment variable that holds the API key (the CLI passes `OPENAI_API_KEY` by default). When
    /// it is unset or empty, [`OpenAiJudge::new`] refuses, unless the URL's host is loopback (127.0.0.1,
    /// localhost, ::1): local servers need no key, and then no `Authorization` header is sent. `None`: no key.
    pub key_env: Option<String>,
    /// The most requests in flight at once (worker threads); 0 counts as 1.
    pub concurrency: usize,
    /// Spacing of request starts (each retry counts), shared by all workers; `None`: no limit.
    pub requests_per_minute: Option<f64>,
    /// Retries after the first try, on connection errors, timeouts, HTTP 408, 429 and 5xx.
    pub max_retries: usize,
    /// Timeout of one HTTP request (connect, send, generate, read), seconds.
    pub timeout_s: f64,
    /// US dollars per million input (prompt) tokens, for the estimate; `None`: unknown.
    pub price_per_mtok_in: Option<f64>,
    /// US dollars per million output (completion) tokens, for the estimate; `None`: unknown.
    pub price_per_mtok_out: Option<f64>,
    /// Wait before the first retry, seconds; doubles with each retry, ±25 % jitter.
    pub backoff_base_s: f64,
    /// The longest wait between tries, seconds: caps the doubling and a server's `Retry-After`.
    pub max_backoff_s: f64,
}

impl Default for OpenAiOptions {
    /// No URL or model yet; 4 workers, no rate limit, 4 retries from 1 s up to 60 s, 120 s timeout, no key.
    fn default() -> Self {
        OpenAiOptions {
            url: String::new(),
            model: String::new(),
            key_env: None,
            concurrency: 4,
            requests_per_minute: None,
            max_retries: 4,
            timeout_s: 120.0,
            price_per_mtok_in: None,
            price_per_mtok_out: None,
            backoff_base_s: 1.0,
            max_backoff_s: 60.0,
        }
    }
}

impl OpenAiOptions {
    /// The defaults with this URL and model, the key read from `OPENAI_API_KEY`.
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> OpenAiOptions {
        OpenAiOptions {
            url: url.into(),
            model: model.into(),
            key_env: Some("OPENAI_API_KEY".into()),
            ..OpenAiOptions::default()
        }
    }
}

/// The judge: see the module documentation.
pub struct OpenAiJudge {
    opts: OpenAiOptions,
    /// `{url}/chat/completions`
    endpoint: String,
    key: Option<String>,
    agent: ureq::Agent,
    /// Start time of the next request allowed by the rate limit.
    next_slot: Mutex<Instant>,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    /// Feeds the jitter.
    jitter_counter: AtomicU64,
}

/// The host of an `http://` or `https://` URL, lower-cased, without port or brackets.
fn url_host(url: &str) -> Result<String, String> {
    let rest = if let Some(r) = url.strip_prefix("http://") {
        r
    } else if let Some(r) = url.strip_prefix("https://") {
        r
    } else {
        return Err(format!(
            "judge: URL must start with http:// or https://, got '{}'",
            one_line(url, 100)
        ));
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "judge: URL has white space: '{}'",
            one_line(url, 100)
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(r) = hostport.strip_prefix('[') {
        match r.split_once(']') {
            Some((h, _)) => h,
            None => return Err(format!("judge: bad host in URL '{url}'")),
        }
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return Err(format!("judge: no host in URL '{url}'"));
    }
    if url.contains(['?', '#']) {
        return Err(format!(
            "judge: URL '{url}' has a query or fragment: give the base, e.g. http://127.0.0.1:8080/v1"
        ));
    }
    if let Err(e) = url.parse::<ureq::http::Uri>() {
        return Err(format!("judge: bad URL '{url}': {e}"));
    }
    Ok(host.to_ascii_lowercase())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// At most `max` characters of `s`, white space runs folded to one space: fit for a one-line message.
fn one_line(s: &str, max: usize) -> String {
    let folded = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() <= max {
        folded
    } else {
        let mut out: String = folded.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// The error message in an error body: OpenAI's `{"error": {"message"}}`, `{"error": "..."}`,
/// `{"message"}`, `{"detail"}` (FastAPI), else the body itself; one line.
fn error_message(body: &str) -> String {
    let text = match serde_json::from_str::<Value>(body) {
        Ok(v) => {
            let pick = v
                .pointer("/error/message")
                .or_else(|| v.get("error"))
                .or_else(|| v.get("message"))
                .or_else(|| v.get("detail"));
            match pick {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => body.to_string(),
            }
        }
        Err(_) => body.to_string(),
    };
    let line = one_line(&text, 300);
    if line.is_empty() {
        "(empty body)".into()
    } else {
        line
    }
}

/// What one try came to.
enum Attempt {
    Done(String),
    /// worth another try; `retry_after`: the server's `Retry-After`, seconds
    Retry {
        msg: String,
        connect: bool,
        retry_after: Option<f64>,
    },
    Stop(JudgeError),
}

impl OpenAiJudge {
    /// Checks the URL (http or https, a host), reads the key (see [`OpenAiOptions::key_env`]) and builds
    /// the HTTP agent. Errors are one line.
    pub fn new(opts: OpenAiOptions) -> Result<OpenAiJudge, String> {
        let url = opts.url.trim().trim_end_matches('/').to_string();
        let host = url_host(&url)?;
        if opts.model.trim().is_empty() {
            return Err("judge: no model name given".into());
        }
        if !(opts.timeout_s.is_finite() && opts.timeout_s > 0.0) {
            return Err(format!(
                "judge: timeout must be > 0 s, got {}",
                opts.timeout_s
            ));
        }
        if let Some(rpm) = opts.requests_per_minute
            && !(rpm.is_finite() && rpm > 0.0)
        {
            return Err(format!("judge: requests per minute must be > 0, got {rpm}"));
        }
        let key = match &opts.key_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(k) if !k.trim().is_empty() => Some(k.trim().to_string()),
                _ if is_loopback(&host) => None,
                _ => {
                    return Err(format!(
                        "judge: no API key: set {var} (or choose another variable with --judge-key-env)"
                    ));
                }
            },
        };
        let workers = opts.concurrency.max(1);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs_f64(opts.timeout_s)))
            .http_status_as_error(false)
            .max_idle_connections_per_host(workers)
            .max_idle_connections(workers.max(3))
            .user_agent(concat!("bae/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(OpenAiJudge {
            endpoint: format!("{url}/chat/completions"),
            opts: OpenAiOptions { url, ..opts },
            key,
            agent,
            next_slot: Mutex::new(Instant::now()),
            prompt_tokens: AtomicU64::new(0),
            completion_tokens: AtomicU64::new(0),
            jitter_counter: AtomicU64::new(0),
        })
    }

    /// The options, with the URL as used (trailing `/` removed).
    pub fn options(&self) -> &OpenAiOptions {
        &self.opts
    }

    /// Whether an API key is sent.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// Prompt and completion tokens so far, as the server's `usage` fields reported them.
    pub fn usage(&self) -> (u64, u64) {
        (
            self.prompt_tokens.load(Ordering::Relaxed),
            self.completion_tokens.load(Ordering::Relaxed),
        )
    }

    /// The cost of [`usage`](Self::usage) at the configured prices; `None` unless both are given.
    pub fn cost_so_far(&self) -> Option<f64> {
        let (i, o) = self.usage();
        estimate_cost(i, o, &self.opts)
    }

    /// Waits for this request's turn under `requests_per_minute`.
    fn wait_for_slot(&self) {
        let Some(rpm) = self.opts.requests_per_minute else {
            return;
        };
        let spacing = Duration::from_secs_f64(60.0 / rpm);
        let slot = {
            let mut next = self.next_slot.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + spacing;
            slot
        };
        let now = Instant::now();
        if slot > now {
            std::thread::sleep(slot - now);
        }
    }

    /// A factor in [0.75, 1.25) from a counter and the clock (splitmix64): enough to spread retries.
    fn jitter(&self) -> f64 {
        let n = self.jitter_counter.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut z = t ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        0.75 + 0.5 * ((z >> 11) as f64 / (1u64 << 53) as f64)
    }

    fn backoff(&self, retry: usize, retry_after: Option<f64>) -> Duration {
        let cap = self.opts.max_backoff_s.max(0.0);
        let secs = match retry_after {
            Some(s) => s.min(cap),
            None => {
                let exp = self.opts.backoff_base_s.max(0.0) * 2f64.powi(retry.min(30) as i32);
                (exp * self.jitter()).min(cap)
            }
        };
        Duration::from_secs_f64(if secs.is_finite() { secs.max(0.0) } else { 0.0 })
    }

    fn key_hint(&self) -> String {
        match &self.opts.key_env {
            Some(var) if self.key.is_some() => format!("check the key in ${var}"),
            Some(var) => format!("no key was sent: set ${var}"),
            None => "no key was sent".into(),
        }
    }

    /// One HTTP try.
    fn attempt(&self, body: &Value) -> Attempt {
        let url = &self.endpoint;
        let mut req = self
            .agent
            .post(url)
            .header("Content-Type", "application/json");
        if let Some(k) = &self.key {
            req = req.header("Authorization", &format!("Bearer {k}"));
        }
        let mut resp = match req.send_json(body) {
            Ok(r) => r,
            Err(e) => return transport_error(e),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0);
        let text = match resp
            .body_mut()
            .with_config()
            .limit(32 << 20)
            .read_to_string()
        {
            Ok(t) => t,
            Err(e) => return transport_error(e),
        };
        match status {
            200..=299 => self.parse_completion(&text),
            401 | 403 => Attempt::Stop(JudgeError::Fatal(format!(
                "judge: HTTP {status} from {url}: {} ({})",
                error_message(&text),
                self.key_hint()
            ))),
            404 => Attempt::Stop(JudgeError::Fatal(format!(
                "judge: HTTP 404 from {url}: {} (wrong URL path — the base usually ends in /v1 — or no model '{}' there)",
                error_message(&text),
                self.opts.model
            ))),
            408 | 429 | 500..=599 => Attempt::Retry {
                msg: format!("judge: HTTP {status} from {url}: {}", error_message(&text)),
                connect: false,
                retry_after,
            },
            _ => Attempt::Stop(JudgeError::Failed(format!(
                "judge: HTTP {status} from {url}: {}",
                error_message(&text)
            ))),
        }
    }

    fn parse_completion(&self, text: &str) -> Attempt {
        let malformed = || {
            Attempt::Stop(JudgeError::Failed(format!(
                "judge: malformed response from {}: {}",
                self.endpoint,
                one_line(text, 120)
            )))
        };
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return malformed();
        };
        let Some(content) = v
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
        else {
            return malformed();
        };
        if let Some(usage) = v.get("usage") {
            let get = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
            self.prompt_tokens
                .fetch_add(get("prompt_tokens"), Ordering::Relaxed);
            self.completion_tokens
                .fetch_add(get("completion_tokens"), Ordering::Relaxed);
        }
        Attempt::Done(content.to_string())
    }

    /// One request with its retries; gives up early once `fatal` is set.
    fn run_one(&self, request: &Request, fatal: &AtomicBool) -> Result<String, JudgeError> {
        let body = json!({
            "model": self.opts.model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "temperature": 0,
        });
        let tries = self.opts.max_retries + 1;
        let mut retry = 0;
        loop {
            self.wait_for_slot();
            match self.attempt(&body) {
                Attempt::Done(s) => return Ok(s),
                Attempt::Stop(e) => return Err(e),
                Attempt::Retry {
                    msg,
                    connect,
                    retry_after,
                } => {
                    if retry + 1 >= tries || fatal.load(Ordering::SeqCst) {
                        let n = retry + 1;
                        let plural = if n == 1 { "try" } else { "tries" };
                        return Err(if connect {
                            JudgeError::Fatal(format!(
                                "judge: cannot reach {}: {msg} (after {n} {plural})",
                                self.opts.url
                            ))
                        } else {
                            JudgeError::Failed(format!("{msg} (after {n} {plural})"))
                        });
                    }
                    std::thread::sleep(self.backoff(retry, retry_after));
                    retry += 1;
                    if fatal.load(Ordering::SeqCst) {
                        return Err(JudgeError::Fatal(format!(
                            "judge: not sent: an earlier request failed fatally ({msg})"
                        )));
                    }
                }
            }
        }
    }
}

/// Classifies a ureq error: can't connect (refused, DNS, TLS, connect timeout: retried, then fatal),
/// timed out later (retried, then failed), or anything else (failed at once).
fn transport_error(e: ureq::Error) -> Attempt {
    let msg = one_line(&e.to_string(), 200);
    match &e {
        ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => Attempt::Retry {
            msg,
            connect: true,
            retry_after: None,
        },
        ureq::Error::Timeout(_) => Attempt::Retry {
            msg: format!("timed out ({msg})"),
            connect: false,
            retry_after: None,
        },
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => Attempt::Retry {
            msg: format!("timed out ({msg})"),
            connect: false,
            retry_after: None,
        },
        ureq::Error::Io(_)
        | ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::Protocol(_)
        | ureq::Error::Tls(_) => Attempt::Retry {
            msg,
            connect: true,
            retry_after: None,
        },
        _ => Attempt::Stop(JudgeError::Failed(format!("judge: request failed: {msg}"))),
    }
}

impl Judge for OpenAiJudge {
    fn id(&self) -> String {
        format!("openai:{}:{}", self.opts.url, self.opts.model)
    }

    fn complete(&self, requests: &[Request]) -> Vec<Result<String, JudgeError>> {
        let n = requests.len();
        let results: Vec<Mutex<Option<Result<String, JudgeError>>>> =
            (0..n).map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let fatal = AtomicBool::new(false);
        let fatal_msg: Mutex<Option<String>> = Mutex::new(None);
        let workers = self.opts.concurrency.max(1).min(n);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= n {
                            break;
                        }
                        let r = if fatal.load(Ordering::SeqCst) {
                            let first = fatal_msg
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .clone()
                                .unwrap_or_default();
                            Err(JudgeError::Fatal(format!(
                                "judge: not sent after an earlier fatal error: {first}"
                            )))
                        } else {
                            self.run_one(&requests[i], &fatal)
                        };
                        if let Err(JudgeError::Fatal(m)) = &r {
                            let mut first = fatal_msg.lock().unwrap_or_else(|e| e.into_inner());
                            if first.is_none() {
                                *first = Some(m.clone());
                            }
                            fatal.store(true, Ordering::SeqCst);
                        }
                        *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                    }
                });
            }
        });
        results
            .into_iter()
            .map(|m| {
                m.into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .unwrap_or_else(|| Err(JudgeError::Fatal("judge: request was not run".into())))
            })
            .collect()
    }
}

/// A rough token count: characters / 4, rounded up. Good to ±30 % for English with GPT-style tokenizers;
/// meant for the "about how much will this cost" line, not for context-length checks.
pub fn rough_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// What a batch of requests will roughly cost before it is sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UsageEstimate {
    pub requests: u64,
    /// [`rough_tokens`] of every message plus 4 a message for the chat template
    pub tokens_in: u64,
    /// the sum of `max_tokens`: an upper bound
    pub tokens_out_max: u64,
}

/// Counts the requests and their rough input and most output tokens.
pub fn estimate_usage(requests: &[Request]) -> UsageEstimate {
    let mut e = UsageEstimate {
        requests: requests.len() as u64,
        tokens_in: 0,
        tokens_out_max: 0,
    };
    for r in requests {
        e.tokens_in += r
            .messages
            .iter()
            .map(|m| rough_tokens(&m.content) + 4)
            .sum::<u64>();
        e.tokens_out_max += r.max_tokens as u64;
    }
    e
}

/// Dollars for these token counts at the options' prices (per million tokens); `None` unless both prices
/// are given.
pub fn estimate_cost(tokens_in: u64, tokens_out: u64, opts: &OpenAiOptions) -> Option<f64> {
    let (pi, po) = (opts.price_per_mtok_in?, opts.price_per_mtok_out?);
    Some((tokens_in as f64 * pi + tokens_out as f64 * po) / 1e6)
}

impl UsageEstimate {
    /// Dollars at most (output counted at `max_tokens`); `None` without prices.
    pub fn cost(&self, opts: &OpenAiOptions) -> Option<f64> {
        estimate_cost(self.tokens_in, self.tokens_out_max, opts)
    }

    /// `about 120 requests, ~85.3 k input tokens, ≤ 6.0 k output tokens, ≤ ~$0.0164 at the given prices`
    /// (without prices: `..., cost unknown (no prices given)`).
    pub fn summary(&self, opts: &OpenAiOptions) -> String {
        let cost = match self.cost(opts) {
            Some(c) => format!("≤ ~${c:.4} at the given prices"),
            None => "cost unknown (no prices given)".into(),
        };
        format!(
            "about {} requests, ~{:.1} k input tokens, ≤ {:.1} k output tokens, {cost}",
            self.requests,
            self.tokens_in as f64 / 1e3,
            self.tokens_out_max as f64 / 1e3,
        )
    }
}
