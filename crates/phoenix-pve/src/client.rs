//! The typed Proxmox VE API client (blocking reqwest, rustls with ring). Does network I/O.
//!
//! - API-token auth: `Authorization: PVEAPIToken=…` on every request. Ticket auth: `POST
//!   /access/ticket` (username, password) on first use; the ticket is sent as the cookie
//!   `PVEAuthCookie` and the `CSRFPreventionToken` header goes on every non-GET request. The
//!   ticket lives 2 h: it is renewed (a fresh login) once older than [`PveClient::ticket_renewal`]
//!   (1 h 45 min), and once when a request is answered 401. Clones share one session; one login
//!   at a time. Every auth header is marked sensitive and the secrets live only in
//!   [`crate::connection::ApiToken`] / [`crate::connection::Password`] (redacted `Debug`), so
//!   they never reach logs or errors. A login counts as a request, not as a write.
//! - Replies are `{"data": …}`; HTTP 400 `{"errors": {param: msg}}` becomes
//!   [`PveError::Parameters`].
//! - Lock timeouts (HTTP 500 `… got timeout`) and 503 are retried with bounded exponential
//!   backoff (attempt count and deadline); 502, 504 and 596 (a proxy's: the node may have
//!   acted) only for reads. Every request has a deadline
//!   ([`PveClient::request_timeout`]). A `GET` whose reply was lost (reset, timeout) is sent
//!   again; a write is only resent when it never reached the server (connect failure, or a
//!   status that says nothing was done: lock timeout, 503): a lost reply to a `POST` create
//!   may mean the guest exists, and a second create would fail or duplicate work.
//! - Long operations return a UPID: [`PveClient::wait_task`] polls
//!   `GET /nodes/{node}/tasks/{upid}/status` until `stopped` (PROXMOX.md "API transport").
//! - Every request and every write (non-GET) is counted: [`PveClient::counts`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, COOKIE, HeaderValue};
use serde_json::Value;

use crate::connection::{ConnectionSettings, ENV_PASSWORD, ENV_USERNAME, Password, PveAuth};
use crate::error::PveError;
use crate::tls::client_config;

/// Bounded exponential backoff for retryable replies.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// No new attempt starts after this much time since the first.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
            deadline: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `attempt + 1` (attempt counts from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }
}

/// How long and how often a task is polled.
#[derive(Debug, Clone, Copy)]
pub struct TaskPolicy {
    pub deadline: Duration,
    pub initial_interval: Duration,
    pub max_interval: Duration,
    /// A fresh UPID may 404 for this long before it counts as an error.
    pub not_found_grace: Duration,
}

impl Default for TaskPolicy {
    fn default() -> Self {
        TaskPolicy {
            deadline: Duration::from_secs(600),
            initial_interval: Duration::from_millis(50),
            max_interval: Duration::from_secs(2),
            not_found_grace: Duration::from_secs(5),
        }
    }
}

/// Request counters, shared by clones of a client.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    writes: AtomicU64,
    retries: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestCounts {
    /// Every HTTP request sent, retries and task polls included.
    pub requests: u64,
    /// Requests with a method other than GET.
    pub writes: u64,
    /// Attempts that were retries.
    pub retries: u64,
}

impl RequestCounts {
    /// Counts since `earlier`.
    pub fn since(self, earlier: RequestCounts) -> RequestCounts {
        RequestCounts {
            requests: self.requests - earlier.requests,
            writes: self.writes - earlier.writes,
            retries: self.retries - earlier.retries,
        }
    }
}

/// Default deadline of one HTTP attempt.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Renew a login ticket (PVE: 2 h lifetime) once it is this old.
pub const TICKET_RENEWAL: Duration = Duration::from_secs(105 * 60);

/// A connection to one PVE endpoint. Cheap to clone (shares the pool, the counters and the
/// login session).
#[derive(Clone)]
pub struct PveClient {
    http: Client,
    /// `https://host:port/api2/json`.
    base: String,
    node: String,
    auth: Auth,
    counters: Arc<Counters>,
    pub retry: RetryPolicy,
    pub task: TaskPolicy,
    /// Deadline of one HTTP attempt (connect, send, reply), default [`REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// Ticket auth: log in again once the ticket is this old (default [`TICKET_RENEWAL`]).
    pub ticket_renewal: Duration,
}

/// How requests authenticate.
#[derive(Clone)]
enum Auth {
    /// The whole `Authorization` value, marked sensitive.
    Token(HeaderValue),
    Ticket(Arc<TicketLogin>),
}

/// Username, password and the current session, shared by clones.
struct TicketLogin {
    username: String,
    password: Password,
    session: Mutex<Option<TicketSession>>,
}

/// One login's cookie and CSRF token (both marked sensitive).
#[derive(Clone)]
struct TicketSession {
    /// `PVEAuthCookie=<ticket>`.
    cookie: HeaderValue,
    csrf: HeaderValue,
    issued: Instant,
    /// Counts logins, so a 401 only discards the session it was answered for.
    generation: u64,
}

/// The auth headers of one request.
enum AuthHeaders {
    /// The login itself.
    None,
    Token(HeaderValue),
    Ticket(TicketSession),
}

impl std::fmt::Debug for PveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match &self.auth {
            Auth::Token(_) => "token <redacted>".to_string(),
            Auth::Ticket(login) => format!("ticket for {} <redacted>", login.username),
        };
        f.debug_struct("PveClient")
            .field("base", &self.base)
            .field("node", &self.node)
            .field("auth", &auth)
            .finish_non_exhaustive()
    }
}

impl PveClient {
    /// A client; no request is sent (a ticket login happens on first use, or [`Self::login`]).
    pub fn new(settings: &ConnectionSettings) -> Result<PveClient, PveError> {
        let tls = client_config(&settings.trust)?;
        let http = Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(10))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| PveError::Tls {
                message: e.to_string(),
            })?;
        let auth = match &settings.auth {
            PveAuth::Token(token) => {
                let mut value = HeaderValue::from_str(&token.header_value()).map_err(|_| {
                    PveError::Setting {
                        name: crate::connection::ENV_API_TOKEN.into(),
                        message: "the token is not a valid header value".into(),
                    }
                })?;
                value.set_sensitive(true);
                Auth::Token(value)
            }
            PveAuth::Ticket { username, password } => Auth::Ticket(Arc::new(TicketLogin {
                username: username.clone(),
                password: password.clone(),
                session: Mutex::new(None),
            })),
        };
        Ok(PveClient {
            http,
            base: format!("{}/api2/json", settings.endpoint),
            node: settings.node.clone(),
            auth,
            counters: Arc::default(),
            retry: RetryPolicy::default(),
            task: TaskPolicy::default(),
            request_timeout: REQUEST_TIMEOUT,
            ticket_renewal: TICKET_RENEWAL,
        })
    }

    /// Ticket auth: log in now unless the session is fresh (to report bad credentials before
    /// any other work). Token auth: nothing to do.
    pub fn login(&self) -> Result<(), PveError> {
        self.auth_headers().map(drop)
    }

    /// The node API paths refer to.
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn counts(&self) -> RequestCounts {
        RequestCounts {
            requests: self.counters.requests.load(Ordering::Relaxed),
            writes: self.counters.writes.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
        }
    }

    /// `GET path?query` → `data`.
    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, PveError> {
        self.call(Method::GET, path, |rb| rb.query(query))
    }

    /// A write (`POST`/`PUT` as a form, `DELETE` with query parameters) → `data`.
    pub fn write(
        &self,
        method: Method,
        path: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Value, PveError> {
        if method == Method::DELETE || method == Method::GET {
            self.call(method, path, |rb| rb.query(params))
        } else {
            self.call(method, path, |rb| rb.form(params))
        }
    }

    /// [`Self::write`] with the method by name (`POST`, `PUT`, `DELETE`), for callers
    /// outside this crate that do not depend on the HTTP client.
    pub fn write_named(
        &self,
        method: &str,
        path: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Value, PveError> {
        let method = match method {
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "DELETE" => Method::DELETE,
            other => {
                return Err(PveError::Setting {
                    name: "method".into(),
                    message: format!("{other} is not a write"),
                });
            }
        };
        self.write(method, path, params)
    }

    /// A `POST`/`PUT` form whose keys may repeat: PVE's array parameters (the guest agent's
    /// `command`) are sent as one `key=value` pair per element.
    pub fn write_pairs(
        &self,
        method: Method,
        path: &str,
        pairs: &[(String, String)],
    ) -> Result<Value, PveError> {
        self.call(method, path, |rb| rb.form(pairs))
    }

    /// A write whose reply may be a UPID: waits for the task when it is one.
    pub fn write_and_wait(
        &self,
        method: Method,
        path: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Value, PveError> {
        let data = self.write(method, path, params)?;
        if let Some(upid) = data.as_str().filter(|s| s.starts_with("UPID:")) {
            self.wait_task(upid)?;
        }
        Ok(data)
    }

    /// Poll a task until it stops; `Ok(exitstatus)` iff it is `OK` or `WARNINGS: n`.
    pub fn wait_task(&self, upid: &str) -> Result<String, PveError> {
        // UPID:node:pid:pstart:starttime:type:id:user: — the task lives on its own node.
        let node = upid.split(':').nth(1).filter(|n| !n.is_empty());
        let path = format!(
            "/nodes/{}/tasks/{}/status",
            node.unwrap_or(&self.node),
            upid
        );
        let start = Instant::now();
        let mut interval = self.task.initial_interval;
        loop {
            match self.get(&path, &[]) {
                Ok(status) => {
                    if status.get("status").and_then(Value::as_str) == Some("stopped") {
                        let exit = status
                            .get("exitstatus")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        return if exit == "OK" || exit.starts_with("WARNINGS: ") {
                            Ok(exit)
                        } else {
                            Err(PveError::TaskFailed {
                                upid: upid.to_string(),
                                exitstatus: exit,
                            })
                        };
                    }
                }
                Err(PveError::Http { status: 404, .. })
                    if start.elapsed() < self.task.not_found_grace => {}
                Err(e) => return Err(e),
            }
            // Poll up to the deadline itself (the last pause is shortened to end there).
            let Some(left) = self.task.deadline.checked_sub(start.elapsed()) else {
                return Err(PveError::TaskTimeout {
                    upid: upid.to_string(),
                    waited: start.elapsed(),
                });
            };
            std::thread::sleep(interval.min(left));
            interval = (interval * 2).min(self.task.max_interval);
        }
    }

    fn call(
        &self,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Value, PveError> {
        let mut relogged = false;
        loop {
            let headers = self.auth_headers()?;
            let result = self.send(&method, path, &build, &headers);
            // A ticket refused early (PVE restarted with a new key, clock jumps): log in once
            // more and resend. 401 means nothing was done, so resending a write is safe.
            if let (Err(PveError::Http { status: 401, .. }), AuthHeaders::Ticket(session)) =
                (&result, &headers)
                && !relogged
            {
                relogged = true;
                self.discard_session(session.generation);
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%method, path, "401 with a ticket: logging in again");
                continue;
            }
            return result;
        }
    }

    /// The headers for the next request; logs in when the ticket is missing or old.
    fn auth_headers(&self) -> Result<AuthHeaders, PveError> {
        let login = match &self.auth {
            Auth::Token(value) => return Ok(AuthHeaders::Token(value.clone())),
            Auth::Ticket(login) => login,
        };
        // Held during the login, so parallel requests wait for one login instead of each
        // starting their own.
        let mut session = login
            .session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(current) = session.as_ref()
            && current.issued.elapsed() < self.ticket_renewal
        {
            return Ok(AuthHeaders::Ticket(current.clone()));
        }
        let generation = session.as_ref().map_or(1, |s| s.generation + 1);
        let fresh = self.log_in(login, generation)?;
        *session = Some(fresh.clone());
        Ok(AuthHeaders::Ticket(fresh))
    }

    /// Forget the session a 401 answered (unless another thread already replaced it).
    fn discard_session(&self, generation: u64) {
        if let Auth::Ticket(login) = &self.auth {
            let mut session = login
                .session
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if session.as_ref().is_some_and(|s| s.generation == generation) {
                *session = None;
            }
        }
    }

    /// `POST /access/ticket` → cookie and CSRF token. Errors name the user, never the password.
    fn log_in(&self, login: &TicketLogin, generation: u64) -> Result<TicketSession, PveError> {
        let path = "/access/ticket";
        let failed = |status: Option<u16>, message: String| PveError::Login {
            username: login.username.clone(),
            status,
            message,
        };
        let form = [
            ("username", login.username.as_str()),
            ("password", login.password.expose()),
        ];
        let data = match self.send(
            &Method::POST,
            path,
            &|rb| rb.form(&form),
            &AuthHeaders::None,
        ) {
            Ok(data) => data,
            Err(PveError::Http {
                status, message, ..
            }) => {
                let hint = if status == 401 {
                    format!(" (check {ENV_USERNAME} and {ENV_PASSWORD} or the password file)")
                } else {
                    String::new()
                };
                return Err(failed(
                    Some(status),
                    format!("HTTP {status}: {message}{hint}"),
                ));
            }
            Err(PveError::Parameters { errors, .. }) => {
                let fields = errors
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(failed(Some(400), format!("HTTP 400: {fields}")));
            }
            Err(other) => return Err(other),
        };
        if data.get("NeedTFA").is_some_and(|v| v.as_u64() == Some(1)) {
            return Err(failed(
                None,
                "the account requires a second factor (TFA), which phoenix does not support; \
                 use an API token (PROXMOX_VE_API_TOKEN)"
                    .into(),
            ));
        }
        let field = |name: &str, value: String| {
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| failed(None, format!("the reply's {name} is not a header value")))?;
            value.set_sensitive(true);
            Ok::<_, PveError>(value)
        };
        let text = |name: &str| {
            data.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| failed(None, format!("the reply has no {name}")))
        };
        Ok(TicketSession {
            cookie: field("ticket", format!("PVEAuthCookie={}", text("ticket")?))?,
            csrf: field("CSRFPreventionToken", text("CSRFPreventionToken")?)?,
            issued: Instant::now(),
            generation,
        })
    }

    /// One request with retries (bounded backoff) for the retryable failures.
    fn send(
        &self,
        method: &Method,
        path: &str,
        build: &dyn Fn(RequestBuilder) -> RequestBuilder,
        headers: &AuthHeaders,
    ) -> Result<Value, PveError> {
        let url = format!("{}{}", self.base, path);
        let start = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            // A login changes nothing on the node: not a write.
            if method != Method::GET && !matches!(headers, AuthHeaders::None) {
                self.counters.writes.fetch_add(1, Ordering::Relaxed);
            }
            if attempt > 1 {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            let rb = self
                .http
                .request(method.clone(), &url)
                .timeout(self.request_timeout);
            let rb = match headers {
                AuthHeaders::None => rb,
                AuthHeaders::Token(value) => rb.header(AUTHORIZATION, value.clone()),
                AuthHeaders::Ticket(session) if method == Method::GET => {
                    rb.header(COOKIE, session.cookie.clone())
                }
                AuthHeaders::Ticket(session) => rb
                    .header(COOKIE, session.cookie.clone())
                    .header("CSRFPreventionToken", session.csrf.clone()),
            };
            let outcome = build(rb).send();
            let (retryable, err) = match outcome {
                Ok(resp) => match decode(method, path, resp, attempt) {
                    Ok(v) => return Ok(v),
                    // A reply body cut off in transit: a read is sent again.
                    Err(e @ PveError::Transport { .. }) => (*method == Method::GET, e),
                    Err(e) => (is_retryable(method, &e), e),
                },
                Err(source) => (
                    // A refused certificate is final: retrying cannot fix trust.
                    !is_tls_failure(&source) && transport_retryable(method, &source),
                    PveError::Transport {
                        method: method.to_string(),
                        path: path.to_string(),
                        source: source.without_url(),
                    },
                ),
            };
            let delay = self.retry.delay(attempt);
            if !retryable
                || attempt >= self.retry.max_attempts
                || start.elapsed() + delay > self.retry.deadline
            {
                return Err(err);
            }
            tracing::debug!(%method, path, attempt, ?delay, error = %err, "retrying");
            std::thread::sleep(delay);
        }
    }
}

/// Whether a transport error came from rustls (certificate or handshake refused).
fn is_tls_failure(e: &reqwest::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        // io::Error::source() skips the wrapped error itself: step into it instead.
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner),
            None => err.source(),
        };
    }
    false
}

/// Whether a request that failed in transport may be sent again: one that never reached the
/// server (connect failure) always; a `GET` (reads change nothing) also after a lost reply
/// (reset, timeout; a body cut off after the headers is handled where the reply is read). A
/// write whose reply was lost may have been applied.
fn transport_retryable(method: &Method, e: &reqwest::Error) -> bool {
    e.is_connect() || (*method == Method::GET && (e.is_timeout() || e.is_request()))
}

/// Whether an HTTP error reply may be retried. A lock timeout (HTTP 500 `… got timeout`) and
/// 503 mean nothing was done; 502, 504 and 596 come from a proxy that may have passed the
/// request on, so only reads are retried on them.
fn is_retryable(method: &Method, e: &PveError) -> bool {
    match e {
        PveError::Http {
            status, message, ..
        } => {
            let nothing_done =
                *status == 503 || (*status == 500 && message.contains("got timeout"));
            nothing_done || (*method == Method::GET && matches!(status, 502 | 504 | 596))
        }
        _ => false,
    }
}

fn decode(method: &Method, path: &str, resp: Response, attempts: u32) -> Result<Value, PveError> {
    let status = resp.status();
    let text = resp.text().map_err(|source| PveError::Transport {
        method: method.to_string(),
        path: path.to_string(),
        source: source.without_url(),
    })?;
    let body: Option<Value> = serde_json::from_str(&text).ok();
    tracing::debug!(%method, path, status = status.as_u16(), "pve reply");
    if status.is_success() {
        let Some(mut body) = body else {
            return Err(PveError::Decode {
                method: method.to_string(),
                path: path.to_string(),
                message: "reply is not JSON".into(),
            });
        };
        return Ok(body.get_mut("data").map(Value::take).unwrap_or(Value::Null));
    }
    let errors: BTreeMap<String, String> = body
        .as_ref()
        .and_then(|b| b.get("errors"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let msg = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (k.clone(), msg.trim_end().to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    if status.as_u16() == 400 && !errors.is_empty() {
        return Err(PveError::Parameters {
            method: method.to_string(),
            path: path.to_string(),
            errors,
        });
    }
    let message = body
        .as_ref()
        .and_then(|b| b.get("message"))
        .and_then(Value::as_str)
        .map(|m| m.trim_end().to_string())
        .or_else(|| status.canonical_reason().map(str::to_string))
        .unwrap_or_default();
    Err(PveError::Http {
        method: method.to_string(),
        path: path.to_string(),
        status: status.as_u16(),
        message,
        attempts,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1), Duration::from_millis(250));
        assert_eq!(p.delay(2), Duration::from_millis(500));
        assert_eq!(p.delay(10), Duration::from_secs(5));
        assert_eq!(p.delay(100), Duration::from_secs(5));
    }

    #[test]
    fn retryable_statuses() {
        let http = |status: u16, message: &str| PveError::Http {
            method: "PUT".into(),
            path: "/x".into(),
            status,
            message: message.into(),
            attempts: 1,
        };
        let (get, post, put) = (&Method::GET, &Method::POST, &Method::PUT);
        assert!(is_retryable(get, &http(596, "")));
        assert!(is_retryable(get, &http(504, "")));
        assert!(is_retryable(post, &http(503, "")));
        assert!(is_retryable(
            put,
            &http(
                500,
                "can't lock file '/var/lock/qemu-server/lock-104.conf' - got timeout"
            )
        ));
        assert!(!is_retryable(post, &http(500, "VM 104 already running")));
        assert!(!is_retryable(get, &http(401, "")));
    }

    /// A proxy's 502/504/596 may come after the node acted on the request: a `POST` (a
    /// create, a start) is not sent twice.
    #[test]
    fn writes_are_not_resent_after_a_proxy_error() {
        let http = |status: u16| PveError::Http {
            method: "POST".into(),
            path: "/nodes/pve1/lxc".into(),
            status,
            message: "Gateway Timeout".into(),
            attempts: 1,
        };
        for status in [502, 504, 596] {
            assert!(!is_retryable(&Method::POST, &http(status)), "{status}");
            assert!(!is_retryable(&Method::PUT, &http(status)), "{status}");
            assert!(is_retryable(&Method::GET, &http(status)), "{status}");
        }
    }

    /// A reply cut off after its headers: the client sends a `GET` again (and counts the
    /// retry), but not a `POST`, whose request the server may have acted on.
    #[test]
    fn truncated_replies_are_resent_for_reads_only() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Every odd connection gets a body cut short, every even one a whole reply.
        std::thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                let Ok(mut conn) = conn else { break };
                let mut buf = [0u8; 8192];
                let _ = conn.read(&mut buf);
                let body = r#"{"data":{"version":"9.0"}}"#;
                let reply = if n % 2 == 0 {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                        body.len() + 40,
                        &body[..10]
                    )
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = conn.write_all(reply.as_bytes());
            }
        });
        let settings = ConnectionSettings {
            endpoint: format!("http://{addr}"),
            auth: PveAuth::Token(
                crate::connection::ApiToken::parse("root@pam!t=secret-1234").unwrap(),
            ),
            node: "pve1".into(),
            trust: crate::tls::TlsTrust::InsecureAcceptAny,
        };
        let mut client = PveClient::new(&settings).unwrap();
        client.retry.initial_delay = Duration::from_millis(1);
        let v = client
            .get("/version", &[])
            .expect("the second attempt is whole");
        assert_eq!(v["version"], "9.0");
        assert_eq!(client.counts().retries, 1);
        assert_eq!(client.counts().requests, 2);
        // Connection 3 is cut short again: the POST is not resent.
        let err = client
            .write(Method::POST, "/nodes/pve1/lxc", &BTreeMap::new())
            .expect_err("cut short");
        assert!(matches!(err, PveError::Transport { .. }), "{err:?}");
        assert_eq!(client.counts().requests, 3, "sent once");
        assert_eq!(client.counts().retries, 1);
    }

    /// A lost reply (the server closed the connection, or the deadline passed): a `GET` is sent
    /// again, a `POST` is not; a connect failure is retried for both.
    #[test]
    fn lost_replies_are_retried_for_reads_only() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts, reads the request, closes without a reply.
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { break };
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(b"");
                drop(conn);
            }
        });
        let tls = client_config(&crate::tls::TlsTrust::InsecureAcceptAny).unwrap();
        let http = Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let url = format!("http://{addr}/x");
        let get = http.get(&url).send().expect_err("no reply");
        assert!(transport_retryable(&Method::GET, &get), "{get:?}");
        let post = http.post(&url).send().expect_err("no reply");
        assert!(!transport_retryable(&Method::POST, &post), "{post:?}");
        // Nothing listens here: a connect failure.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}/x", closed.local_addr().unwrap());
        drop(closed);
        let refused = http.post(&dead).send().expect_err("refused");
        assert!(transport_retryable(&Method::POST, &refused), "{refused:?}");
    }
}
