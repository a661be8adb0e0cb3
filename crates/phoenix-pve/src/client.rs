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
//! - Lock timeouts (HTTP 500 `… got timeout`), 596 and 502–504 are retried with bounded
//!   exponential backoff (attempt count and deadline).
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
            .timeout(Duration::from_secs(60))
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
            if start.elapsed() + interval > self.task.deadline {
                return Err(PveError::TaskTimeout {
                    upid: upid.to_string(),
                    waited: start.elapsed(),
                });
            }
            std::thread::sleep(interval);
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
            let rb = self.http.request(method.clone(), &url);
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
                    Err(e) => (is_retryable(&e), e),
                },
                Err(source) => (
                    // Nothing reached the server: safe to retry even a write. A refused
                    // certificate is final: retrying cannot fix trust.
                    source.is_connect() && !is_tls_failure(&source),
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

fn is_retryable(e: &PveError) -> bool {
    match e {
        PveError::Http {
            status, message, ..
        } => {
            matches!(status, 502..=504 | 596) || (*status == 500 && message.contains("got timeout"))
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
        assert!(is_retryable(&http(596, "")));
        assert!(is_retryable(&http(503, "")));
        assert!(is_retryable(&http(
            500,
            "can't lock file '/var/lock/qemu-server/lock-104.conf' - got timeout"
        )));
        assert!(!is_retryable(&http(500, "VM 104 already running")));
        assert!(!is_retryable(&http(401, "")));
    }
}
