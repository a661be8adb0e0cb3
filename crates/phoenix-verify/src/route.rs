//! Route trace: one routed name (`https://portainer.<domain>/`) probed hop by hop, outermost
//! first — from the outside to the gateway, from the gateway to the proxy, from the proxy to
//! the backend — each from the namespace of the hop before it, with the Host header and SNI
//! that hop is sent, expecting 200. Every hop is a result naming its status, the Host/SNI sent
//! and the certificate presented; a summary result judges the outer hop and, when it fails,
//! names the deepest failing hop as the cause (a dead backend makes every hop above it fail
//! too; the deepest one is where it broke). Each hop polls until 200 or its deadline (a proxy
//! may still be loading its routes). Plain-HTTP hops use [`http_get`]. Does I/O: TCP + TLS.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::endpoint::{Endpoint, ProbeTarget, with_net};
use crate::https::{self, CertInfo, HttpResponse, HttpsRequest};
use crate::report::{ProbeResult, Status, Subject};

/// One hop of a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// `wan → gateway (guest 101)`.
    pub label: String,
    /// Where the request is sent from.
    pub from: Subject,
    /// Where it goes; `None` when unknown (the reason is in `missing`).
    pub addr: Option<SocketAddr>,
    pub missing: Option<String>,
    /// TLS (with `sni`) or plain HTTP.
    pub tls: bool,
    pub sni: String,
    pub host: String,
}

/// A routed name and its hops, outermost first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteSpec {
    pub name: String,
    pub path: String,
    pub want: u16,
    pub hops: Vec<Hop>,
    /// The proxy entrypoints the route's router listens on (for the cause text).
    pub entrypoints: Vec<String>,
}

/// GET `http://addr{path}` with `Host: host` (HTTP/1.0, no keep-alive) from inside `ep`.
pub fn http_get(
    ep: &(impl Endpoint + ?Sized),
    addr: SocketAddr,
    host: &str,
    path: &str,
    deadline: Duration,
) -> Result<HttpResponse, String> {
    let head = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: phoenix-verify\r\nConnection: close\r\n\r\n"
    );
    with_net(ep, move || {
        let start = Instant::now();
        let left = || {
            deadline
                .saturating_sub(start.elapsed())
                .max(Duration::from_millis(1))
        };
        let mut s = TcpStream::connect_timeout(&addr, left())
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(left()))
            .map_err(|e| e.to_string())?;
        s.write_all(head.as_bytes())
            .map_err(|e| format!("send request to {addr}: {e}"))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(_) if !buf.is_empty() => break,
                Err(e) => return Err(format!("read response from {addr}: {e}")),
            }
            if buf.len() > 1 << 20 {
                break;
            }
        }
        https::parse_http(&buf)
    })
    .map_err(|e| e.to_string())?
}

/// Who answered a response, read from its body and headers: Traefik's own error pages are
/// the bare status text (`404 page not found`, `Bad Gateway`, …) in `text/plain`; nginx's
/// name it (`<center>nginx</center>`) or its `Server` header does.
pub fn answered_by(r: &HttpResponse) -> Option<String> {
    let body = r.body.trim();
    let header = |name: &str| {
        r.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let plain = header("content-type").is_none_or(|c| c.starts_with("text/plain"));
    const TRAEFIK_BODIES: [&str; 5] = [
        "404 page not found",
        "Bad Gateway",
        "Gateway Timeout",
        "Internal Server Error",
        "Service Unavailable",
    ];
    if r.status >= 400 && plain && TRAEFIK_BODIES.contains(&body) {
        return Some("Traefik".into());
    }
    if body.contains("<center>nginx") {
        return Some("nginx".into());
    }
    header("server").map(|s| s.split('/').next().unwrap_or(s).to_string())
}

/// What the last attempt at a hop saw, structured for the cause ([`diagnose`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HopSeen {
    /// The HTTP status, when a response came back.
    pub status: Option<u16>,
    /// Who answered ([`answered_by`]), when it can be told.
    pub answered_by: Option<String>,
    /// The certificate presented (TLS hops).
    pub cert: Option<CertInfo>,
    /// Why no response came back (connect, handshake, certificate), if none did.
    pub error: Option<String>,
}

impl HopSeen {
    fn who(&self) -> String {
        self.answered_by
            .as_ref()
            .map_or_else(String::new, |w| format!(" (answered by {w})"))
    }
}

/// One request Traefik's JSON access log recorded (`RequestHost`, `RouterName`,
/// `DownstreamStatus`, `ClientHost`). Traefik rewrites the forwarded headers of untrusted
/// clients (`X-Real-Ip`, `X-Forwarded-*`), so the gateway's requests and the prober's direct
/// ones (both from the gateway's namespace) cannot be told apart: the Host tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Received {
    pub host: String,
    /// Empty when no router matched.
    pub router: String,
    pub status: u16,
    pub service_url: String,
    pub client: String,
}

/// What the services' own logs said during a trace: Traefik's access log entries and the
/// gateway nginx's `[error]` lines about its upstream (timestamps and ids cut).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Logs {
    pub received: Vec<Received>,
    pub gateway_errors: Vec<String>,
}

/// Where a trace finds those logs (each optional).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogPaths<'a> {
    /// Traefik's JSON access log.
    pub proxy_access: Option<&'a Path>,
    /// The gateway nginx's error log.
    pub gateway_error: Option<&'a Path>,
}

/// The `[error]` lines of an nginx error log that concern its upstream, each without the
/// timestamp, pid and connection id, distinct, in order.
pub fn parse_nginx_errors(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in text
        .lines()
        .filter(|l| l.contains("[error]") && l.contains("upstream"))
    {
        let msg = l.split_once("[error]").map_or(l, |(_, m)| m).trim();
        // `1355#1355: *12 upstream …`: drop the pid#tid and the connection id.
        let msg = msg.split_once(": ").map_or(
            msg,
            |(head, rest)| {
                if head.contains('#') { rest } else { msg }
            },
        );
        let msg = match msg.strip_prefix('*') {
            Some(m) => m.split_once(' ').map_or(m, |(_, r)| r),
            None => msg,
        };
        // Keep the reason, not the per-request tail (client, request, upstream URL).
        let msg = msg
            .split(", client:")
            .next()
            .unwrap_or(msg)
            .trim()
            .to_string();
        if !out.contains(&msg) {
            out.push(msg);
        }
    }
    out
}

/// The JSON lines of a Traefik access log (other lines are skipped); requests of
/// `phoenix-verify` only when the log kept `User-Agent`.
pub fn parse_access_log(text: &str) -> Vec<Received> {
    text.lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("RequestHost").is_some())
        .filter(|v| {
            v.as_object().is_none_or(|o| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("request_User-Agent"))
                    .is_none_or(|(_, ua)| ua.as_str().is_some_and(|s| s.contains("phoenix-verify")))
            })
        })
        .map(|v| {
            let s = |k: &str| {
                v.get(k)
                    .and_then(|x| x.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            Received {
                host: s("RequestHost"),
                router: s("RouterName"),
                status: v
                    .get("DownstreamStatus")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|n| u16::try_from(n).ok())
                    .unwrap_or(0),
                service_url: s("ServiceURL"),
                client: s("ClientHost"),
            }
        })
        .collect()
}

/// What Traefik's access log says it received during the trace: each distinct (Host, router,
/// status) with how many requests, and from where.
fn received_text(received: &[Received]) -> Option<String> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for r in received {
        let router = if r.router.is_empty() {
            "no router matched".to_string()
        } else {
            format!("router {}", r.router)
        };
        let line = format!("Host `{}` → {router}, {}", r.host, r.status);
        match seen.iter_mut().find(|(l, _)| *l == line) {
            Some((_, n)) => *n += 1,
            None => seen.push((line, 1)),
        }
    }
    let mut clients: Vec<&str> = received.iter().map(|r| r.client.as_str()).collect();
    clients.sort_unstable();
    clients.dedup();
    (!seen.is_empty()).then(|| {
        let lines: Vec<String> = seen.iter().map(|(l, n)| format!("{l} ×{n}")).collect();
        format!(
            "Traefik's access log during the trace (from {}): received {}",
            clients.join(", "),
            lines.join("; ")
        )
    })
}

/// A reading of a TLS failure (rustls' certificate errors).
fn tls_reason(err: &str, cert: Option<&CertInfo>, sni: &str) -> Option<String> {
    let issuer = cert.map_or_else(String::new, |c| format!(" (issuer {:?})", c.issuer));
    if err.contains("UnknownIssuer") || err.contains("BadSignature") {
        Some(format!(
            "its certificate does not chain to the internal root{issuer}"
        ))
    } else if err.contains("NotValidForName") {
        let sans = cert.map_or_else(String::new, |c| format!(" (SANs [{}])", c.sans.join(", ")));
        Some(format!("its certificate is not valid for {sni}{sans}"))
    } else if err.contains("Expired") {
        Some(format!("its certificate has expired{issuer}"))
    } else {
        None
    }
}

/// The cause of a broken route (pure): which hop (index) and why, from what each hop saw when
/// probed on its own. `None` when the outer hop passed. The hops are read as gateway (first),
/// proxy (Traefik, second of three), backend (last); a failing hop whose inner hops pass is
/// where the route breaks, and the status it got plus who answered it says why.
pub fn diagnose(
    spec: &RouteSpec,
    pass: &[bool],
    seen: &[HopSeen],
    logs: &Logs,
) -> Option<(usize, String)> {
    if pass.first().copied().unwrap_or(true) {
        return None;
    }
    let n = spec.hops.len();
    let i = pass.iter().rposition(|p| !p)?;
    let hop = spec.hops.get(i)?;
    let s = seen.get(i).cloned().unwrap_or_default();
    let name = &spec.name;
    let from_traefik = s.answered_by.as_deref() == Some("Traefik");
    let above = i
        .checked_sub(1)
        .and_then(|j| seen.get(j))
        .and_then(|a| a.status.map(|st| format!("{st}{}", a.who())));
    let is_backend = i + 1 == n && n > 1;
    let is_proxy = i > 0 && !is_backend;
    let mut cause = match (&s.error, s.status) {
        (Some(e), _) if is_backend => match tls_reason(e, s.cert.as_ref(), &hop.sni) {
            Some(why) => format!(
                "Traefik does not trust the backend's certificate: {why}{}",
                above.map_or_else(String::new, |a| format!("; Traefik answers HTTP {a}"))
            ),
            None => format!("the backend does not answer: {e}"),
        },
        (Some(e), _) => match tls_reason(e, s.cert.as_ref(), &hop.sni) {
            Some(why) => format!(
                "{}: {why}",
                if is_proxy { "Traefik" } else { "the gateway" }
            ),
            None => format!(
                "{} does not answer: {e}",
                if is_proxy { "Traefik" } else { "the gateway" }
            ),
        },
        (None, Some(404)) if is_proxy && from_traefik => format!(
            "Traefik has no router matching Host(`{name}`) on entrypoint {}",
            if spec.entrypoints.is_empty() {
                "?".to_string()
            } else {
                spec.entrypoints.join(", ")
            }
        ),
        (None, Some(404)) if i == 0 && from_traefik => format!(
            "the gateway forwards a Host header / SNI other than `{name}`: Traefik answers 404 \
             for the Host it receives (check nginx `proxy_set_header Host` / `proxy_ssl_name`)"
        ),
        (None, Some(421)) if i == 0 => format!(
            "the gateway's SNI and Host disagree: Traefik answers 421 (check nginx \
             `proxy_ssl_name` against `proxy_set_header Host`, both `{name}`)"
        ),
        (None, Some(404)) if i == 0 => format!(
            "the gateway's nginx has no server for `{name}` (its `server_name`){}",
            s.who()
        ),
        (None, Some(st @ (500 | 502 | 503 | 504))) if is_proxy && from_traefik => format!(
            "Traefik answers {st} although the backend answers the prober: Traefik cannot reach \
             or does not trust the backend (check its service URL and serversTransport)"
        ),
        (None, Some(st @ (500 | 502 | 503 | 504))) if i == 0 && from_traefik => format!(
            "Traefik answers {st} to the gateway although it answers the prober: it treats the \
             gateway's request differently (Host / SNI / entrypoint)"
        ),
        (None, Some(st @ (502 | 504))) if i == 0 => format!(
            "the gateway's nginx answers {st}: it cannot reach or does not trust Traefik (check \
             `proxy_pass`, `proxy_ssl_name`, `proxy_ssl_trusted_certificate`; nginx's error log)"
        ),
        (None, Some(st)) => format!("expected HTTP {}, got HTTP {st}{}", spec.want, s.who()),
        (None, None) => "no response".to_string(),
    };
    // What Traefik says it received: the gateway's request (hop 1) or the prober's (hop 2).
    if (i == 0 || is_proxy)
        && let Some(r) = received_text(&logs.received)
    {
        cause.push_str(&format!("; {r}"));
    }
    // What the gateway's nginx said about its upstream, when it answered itself.
    if i == 0 && s.answered_by.as_deref() == Some("nginx") && !logs.gateway_errors.is_empty() {
        let tail = &logs.gateway_errors[logs.gateway_errors.len().saturating_sub(2)..];
        cause.push_str(&format!("; nginx's error log: {}", tail.join("; ")));
    }
    Some((i, cause))
}

/// What one attempt at a hop saw: whether it matched, the outcome text, and its parts.
fn attempt_hop(
    ep: &dyn Endpoint,
    hop: &Hop,
    addr: SocketAddr,
    path: &str,
    root_pem: &str,
    want: u16,
    deadline: Duration,
) -> (bool, String, HopSeen) {
    if hop.tls {
        let req = HttpsRequest {
            addr,
            sni: hop.sni.clone(),
            host: hop.host.clone(),
            path: path.to_string(),
            root_pem: root_pem.to_string(),
        };
        match https::get(ep, &req, deadline, true) {
            Ok(o) => {
                let ok = matches!(&o.result, Ok(Some(r)) if r.status == want);
                let seen = HopSeen {
                    status: o
                        .result
                        .as_ref()
                        .ok()
                        .and_then(|r| r.as_ref().map(|r| r.status)),
                    answered_by: o
                        .result
                        .as_ref()
                        .ok()
                        .and_then(|r| r.as_ref().and_then(answered_by)),
                    cert: o.cert.clone(),
                    error: o.result.as_ref().err().cloned(),
                };
                let cert = match &o.cert {
                    Some(_) => String::new(),
                    None => "; no certificate seen".to_string(),
                };
                let who = if ok { String::new() } else { seen.who() };
                (ok, format!("{o}{who}{cert}"), seen)
            }
            Err(e) => {
                let e = format!("probe could not run from {}: {e}", ep.label());
                let seen = HopSeen {
                    error: Some(e.clone()),
                    ..HopSeen::default()
                };
                (false, e, seen)
            }
        }
    } else {
        match http_get(ep, addr, &hop.host, path, deadline) {
            Ok(r) => {
                let seen = HopSeen {
                    status: Some(r.status),
                    answered_by: answered_by(&r),
                    ..HopSeen::default()
                };
                let who = seen.who();
                (r.status == want, format!("HTTP {}{who}", r.status), seen)
            }
            Err(e) => (
                false,
                e.clone(),
                HopSeen {
                    error: Some(e),
                    ..HopSeen::default()
                },
            ),
        }
    }
}

/// Pause between the tries of a hop.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// The least time a retry gets (else the hop's last answer stands).
const MIN_ATTEMPT: Duration = Duration::from_millis(300);

fn probe_hop<T: ProbeTarget + Sync>(
    target: &T,
    spec: &RouteSpec,
    root_pem: &str,
    n: usize,
    hop: &Hop,
    deadline: Duration,
) -> (ProbeResult, HopSeen) {
    let total = spec.hops.len();
    let id = format!("route/{}/hop{}", spec.name, n + 1);
    let scheme = if hop.tls { "https" } else { "http" };
    let at = hop.addr.map_or_else(|| "?".to_string(), |a| a.to_string());
    let check = format!(
        "route {} hop {}/{total} {}: {scheme}://{at}{} Host {} SNI {} → {}",
        spec.name,
        n + 1,
        hop.label,
        spec.path,
        hop.host,
        if hop.tls { hop.sni.as_str() } else { "-" },
        spec.want
    );
    let start = Instant::now();
    let done = |status: Status, observed: String| ProbeResult {
        id: id.clone(),
        subject: hop.from.clone(),
        check: check.clone(),
        status,
        observed,
        duration: start.elapsed(),
    };
    let Some(addr) = hop.addr else {
        let why = hop.missing.clone().unwrap_or_else(|| "no address".into());
        let seen = HopSeen {
            error: Some(why.clone()),
            ..HopSeen::default()
        };
        return (done(Status::Fail { evidence: why }, String::new()), seen);
    };
    let ep = match target.endpoint(&hop.from) {
        Ok(ep) => ep,
        Err(e) => {
            let skip = Status::Skip {
                reason: e.to_string(),
            };
            return (done(skip, String::new()), HopSeen::default());
        }
    };
    let mut attempts = 0;
    // The last attempt that got a response: a retry cut short by the deadline (a read timeout)
    // must not hide what the hop answered.
    let mut answered: Option<(String, HopSeen)> = None;
    loop {
        attempts += 1;
        let left = deadline.saturating_sub(start.elapsed());
        let (ok, mut text, mut seen) =
            attempt_hop(&*ep, hop, addr, &spec.path, root_pem, spec.want, left);
        // Another try only with time for a whole one (a pause and a request).
        let again = start.elapsed() + RETRY_PAUSE + MIN_ATTEMPT < deadline;
        if seen.status.is_some() {
            answered = Some((text.clone(), seen.clone()));
        } else if !again && let Some((t, s)) = answered.take() {
            text = t;
            seen = s;
        }
        if ok {
            // On a pass the table shows only the check: name what the hop answered there.
            let mut r = done(Status::Pass, text.clone());
            r.check = format!("{} — {text}", r.check);
            return (r, seen);
        }
        if !again {
            let evidence = format!(
                "hop {}/{total} {} ({scheme}://{addr}, Host {}, SNI {}): expected HTTP {}, got {text} [{attempts} tries]",
                n + 1,
                hop.label,
                hop.host,
                if hop.tls { hop.sni.as_str() } else { "-" },
                spec.want
            );
            return (done(Status::Fail { evidence }, text), seen);
        }
        std::thread::sleep(RETRY_PAUSE);
    }
}

/// The new requests of Traefik's access log since byte `from` ([`parse_access_log`]); waits
/// a moment for the lines of requests that just finished.
fn read_received(log: &Path, from: u64, expect_some: bool) -> Vec<Received> {
    let start = Instant::now();
    loop {
        let got = parse_access_log(&log_since(log, from));
        if !got.is_empty() || !expect_some || start.elapsed() > Duration::from_millis(500) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The text a log gained since byte `from`.
fn log_since(log: &Path, from: u64) -> String {
    std::fs::read(log)
        .ok()
        .map(|b| {
            let from = usize::try_from(from).unwrap_or(usize::MAX).min(b.len());
            String::from_utf8_lossy(&b[from..]).into_owned()
        })
        .unwrap_or_default()
}

fn log_len(log: Option<&Path>) -> u64 {
    log.and_then(|l| std::fs::metadata(l).ok())
        .map_or(0, |m| m.len())
}

/// Probe every hop of `spec` (concurrently), trusting `root_pem`. Returns the summary result
/// first, then one result per hop, outermost first. With `logs` (Traefik's JSON access log,
/// the gateway's nginx error log) a broken route's cause also says which Host Traefik received
/// and through which router, and what nginx said about its upstream.
pub fn trace<T: ProbeTarget + Sync>(
    target: &T,
    spec: &RouteSpec,
    root_pem: &str,
    deadline: Duration,
    logs: LogPaths<'_>,
) -> Vec<ProbeResult> {
    let start = Instant::now();
    let access_log = logs.proxy_access;
    let log_from = log_len(access_log);
    let err_from = log_len(logs.gateway_error);
    let (hops, seen): (Vec<ProbeResult>, Vec<HopSeen>) = std::thread::scope(|s| {
        let handles: Vec<_> = spec
            .hops
            .iter()
            .enumerate()
            .map(|(n, hop)| s.spawn(move || probe_hop(target, spec, root_pem, n, hop, deadline)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).unzip()
    });
    let broken = hops.first().is_some_and(ProbeResult::is_fail);
    let mut found = Logs::default();
    if broken {
        if let Some(l) = access_log {
            found.received = read_received(l, log_from, seen.iter().any(|s| s.status.is_some()));
        }
        if let Some(l) = logs.gateway_error {
            found.gateway_errors = parse_nginx_errors(&log_since(l, err_from));
        }
    }
    let mut out = vec![summary(spec, &hops, &seen, &found, start.elapsed())];
    out.extend(hops);
    out
}

/// The summary: the outer hop's verdict; on failure, the hop where the route breaks (the
/// deepest failing one), who answered there, and the cause ([`diagnose`]).
pub fn summary(
    spec: &RouteSpec,
    hops: &[ProbeResult],
    seen: &[HopSeen],
    logs: &Logs,
    took: Duration,
) -> ProbeResult {
    let subject = spec
        .hops
        .first()
        .map_or(Subject::Named("route".into()), |h| h.from.clone());
    let check = format!(
        "route https://{}{} → {} through {} hop(s)",
        spec.name,
        spec.path,
        spec.want,
        spec.hops.len()
    );
    let outer = hops.first();
    let status = match outer.map(|h| &h.status) {
        Some(Status::Pass) => Status::Pass,
        None => Status::Skip {
            reason: "the route has no hops".into(),
        },
        Some(Status::Skip { reason }) => Status::Skip {
            reason: reason.clone(),
        },
        Some(Status::Fail { .. }) => {
            let outer_seen = outer.map(|h| h.observed.as_str()).unwrap_or_default();
            let pass: Vec<bool> = hops.iter().map(|h| !h.is_fail()).collect();
            let evidence = match diagnose(spec, &pass, seen, logs) {
                Some((i, cause)) => {
                    let hop = spec.hops.get(i);
                    let label = hop.map_or("?", |h| h.label.as_str());
                    let why = match &hops[i].status {
                        Status::Fail { evidence } => evidence.as_str(),
                        _ => "",
                    };
                    let sent = hop.map_or_else(String::new, |h| {
                        format!(
                            "sent Host {} SNI {}",
                            h.host,
                            if h.tls { h.sni.as_str() } else { "-" }
                        )
                    });
                    let cert = seen.get(i).and_then(|s| s.cert.as_ref()).map_or_else(
                        || "no certificate seen".into(),
                        |c| format!("certificate {c}"),
                    );
                    format!(
                        "outer hop got {outer_seen}; broken at hop {}/{} ({label}): cause: {cause} \
                         [{sent}; {cert}]; {why}",
                        i + 1,
                        spec.hops.len()
                    )
                }
                None => format!("outer hop got {outer_seen}"),
            };
            Status::Fail { evidence }
        }
    };
    ProbeResult {
        id: format!("route/{}", spec.name),
        subject,
        check,
        status,
        observed: outer.map(|h| h.observed.clone()).unwrap_or_default(),
        duration: took,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NAME: &str = "portainer.example";

    fn hop(label: &str) -> Hop {
        Hop {
            label: label.into(),
            from: Subject::Named("wan".into()),
            addr: None,
            missing: None,
            tls: true,
            sni: NAME.into(),
            host: NAME.into(),
        }
    }

    fn spec() -> RouteSpec {
        RouteSpec {
            name: NAME.into(),
            path: "/".into(),
            want: 200,
            hops: vec![
                hop("wan → gateway"),
                hop("gateway → proxy"),
                hop("proxy → backend"),
            ],
            entrypoints: vec!["websecure".into()],
        }
    }

    fn res(status: Status) -> ProbeResult {
        ProbeResult {
            id: "i".into(),
            subject: Subject::Host,
            check: "c".into(),
            status,
            observed: "HTTP 502".into(),
            duration: Duration::ZERO,
        }
    }

    fn fail(e: &str) -> Status {
        Status::Fail { evidence: e.into() }
    }

    fn http(status: u16, who: Option<&str>) -> HopSeen {
        HopSeen {
            status: Some(status),
            answered_by: who.map(String::from),
            ..HopSeen::default()
        }
    }

    fn cert(issuer: &str) -> CertInfo {
        CertInfo {
            subject: format!("CN={NAME}"),
            issuer: issuer.into(),
            sans: vec![NAME.into()],
            not_after: "later".into(),
        }
    }

    #[test]
    fn summary_names_the_deepest_failing_hop() {
        let spec = spec();
        let none = [HopSeen::default(), HopSeen::default(), HopSeen::default()];
        let hops = [res(fail("a")), res(fail("b")), res(fail("refused"))];
        let s = summary(&spec, &hops, &none, &Logs::default(), Duration::ZERO);
        let Status::Fail { evidence } = &s.status else {
            panic!("{s:?}")
        };
        assert!(
            evidence.contains("hop 3/3 (proxy → backend): cause: ") && evidence.contains("refused"),
            "{evidence}"
        );
        let hops = [res(fail("a")), res(fail("404")), res(Status::Pass)];
        let s = summary(&spec, &hops, &none, &Logs::default(), Duration::ZERO);
        assert!(format!("{:?}", s.status).contains("hop 2/3 (gateway → proxy)"));
        let hops = [res(Status::Pass), res(Status::Pass), res(Status::Pass)];
        let s = summary(&spec, &hops, &none, &Logs::default(), Duration::ZERO);
        assert_eq!(s.status, Status::Pass);
    }

    #[test]
    fn a_wrong_host_from_the_gateway_is_blamed_on_the_gateway() {
        let seen = [http(404, Some("Traefik")), http(200, None), http(200, None)];
        let received = parse_access_log(concat!(
            "2026-11-26T05:11:33Z INF Starting provider\n",
            r#"{"RequestHost":"wrong.example","RouterName":"","DownstreamStatus":404,"request_User-Agent":"phoenix-verify","ClientHost":"10.0.0.10"}"#,
            "\n",
            r#"{"RequestHost":"portainer.example","RouterName":"portainer@file","DownstreamStatus":200,"ServiceURL":"https://b:9443","request_User-Agent":"phoenix-verify","ClientHost":"10.0.0.10"}"#,
            "\n",
            r#"{"RequestHost":"other.example","RouterName":"","DownstreamStatus":404,"request_User-Agent":"curl/8"}"#,
            "\n",
        ));
        assert_eq!(received.len(), 2, "{received:?}");
        let logs = Logs {
            received,
            gateway_errors: Vec::new(),
        };
        let (i, cause) = diagnose(&spec(), &[false, true, true], &seen, &logs).unwrap();
        assert_eq!(i, 0);
        assert!(
            cause.contains(
                "the gateway forwards a Host header / SNI other than `portainer.example`"
            ) && cause.contains("proxy_set_header Host")
                && cause.contains(
                    "received Host `wrong.example` → no router matched, 404 ×1; \
                     Host `portainer.example` → router portainer@file, 200 ×1"
                ),
            "{cause}"
        );
        // Without the log the cause stands on the statuses alone.
        let (_, cause) = diagnose(&spec(), &[false, true, true], &seen, &Logs::default()).unwrap();
        assert!(!cause.contains("access log"), "{cause}");
    }

    #[test]
    fn a_missing_router_is_blamed_on_traefik() {
        let seen = [
            http(404, Some("Traefik")),
            http(404, Some("Traefik")),
            http(200, Some("nginx")),
        ];
        let (i, cause) = diagnose(&spec(), &[false, false, true], &seen, &Logs::default()).unwrap();
        assert_eq!(i, 1);
        assert_eq!(
            cause,
            "Traefik has no router matching Host(`portainer.example`) on entrypoint websecure"
        );
    }

    #[test]
    fn an_untrusted_backend_certificate_is_blamed_on_the_backend_hop() {
        let seen = [
            http(500, Some("Traefik")),
            http(500, Some("Traefik")),
            HopSeen {
                cert: Some(cert("CN=Some Other Intermediate")),
                error: Some(
                    "TLS handshake with SNI \"portainer.example\": invalid peer certificate: UnknownIssuer"
                        .into(),
                ),
                ..HopSeen::default()
            },
        ];
        let (i, cause) =
            diagnose(&spec(), &[false, false, false], &seen, &Logs::default()).unwrap();
        assert_eq!(i, 2);
        assert!(
            cause.starts_with("Traefik does not trust the backend's certificate: its certificate does not chain to the internal root (issuer \"CN=Some Other Intermediate\")")
                && cause.ends_with("Traefik answers HTTP 500 (answered by Traefik)"),
            "{cause}"
        );
        // Wrong SANs.
        let mut seen = seen;
        seen[2].error = Some("invalid peer certificate: NotValidForName".into());
        let (_, cause) =
            diagnose(&spec(), &[false, false, false], &seen, &Logs::default()).unwrap();
        assert!(
            cause.contains("not valid for portainer.example (SANs [portainer.example])"),
            "{cause}"
        );
        // The backend down.
        seen[2] = HopSeen {
            error: Some("connect 172.16.100.21:9443: Connection refused".into()),
            ..HopSeen::default()
        };
        let (_, cause) =
            diagnose(&spec(), &[false, false, false], &seen, &Logs::default()).unwrap();
        assert!(
            cause.contains("the backend does not answer: connect"),
            "{cause}"
        );
    }

    #[test]
    fn nginx_errors_are_told_from_traefik_ones() {
        let seen = [http(502, Some("nginx")), http(200, None), http(200, None)];
        let (i, cause) = diagnose(&spec(), &[false, true, true], &seen, &Logs::default()).unwrap();
        assert_eq!(i, 0);
        assert!(
            cause.starts_with("the gateway's nginx answers 502"),
            "{cause}"
        );
        let log = concat!(
            "2026/11/26 05:12:22 [notice] 1355#1355: start worker process 7842\n",
            "2026/11/26 05:22:01 [error] 7842#7842: *3 upstream SSL certificate does not match ",
            "\"wrong.example.org\" while SSL handshaking to upstream, client: 203.0.113.1, ",
            "server: portainer.example, request: \"GET / HTTP/1.1\", upstream: \"https://10.0.0.12:443/\"\n",
            "2026/11/26 05:22:01 [error] 7842#7842: *5 upstream SSL certificate does not match ",
            "\"wrong.example.org\" while SSL handshaking to upstream, client: 203.0.113.1\n",
        );
        let errors = parse_nginx_errors(log);
        assert_eq!(
            errors,
            [
                "upstream SSL certificate does not match \"wrong.example.org\" while SSL handshaking to upstream"
            ]
        );
        let logs = Logs {
            received: Vec::new(),
            gateway_errors: errors,
        };
        let (_, cause) = diagnose(&spec(), &[false, true, true], &seen, &logs).unwrap();
        assert!(
            cause.ends_with("; nginx's error log: upstream SSL certificate does not match \"wrong.example.org\" while SSL handshaking to upstream"),
            "{cause}"
        );
        let seen = [http(404, Some("nginx")), http(200, None), http(200, None)];
        let (_, cause) = diagnose(&spec(), &[false, true, true], &seen, &Logs::default()).unwrap();
        assert!(cause.contains("nginx has no server for"), "{cause}");
        assert_eq!(
            diagnose(&spec(), &[true, false, true], &seen, &Logs::default()),
            None
        );
    }

    #[test]
    fn who_answered() {
        let r = |status: u16, headers: &[(&str, &str)], body: &str| HttpResponse {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            body: body.into(),
        };
        let traefik_404 = r(
            404,
            &[
                ("server", "nginx/1.22.1"),
                ("content-type", "text/plain; charset=utf-8"),
            ],
            "404 page not found\n",
        );
        assert_eq!(answered_by(&traefik_404).as_deref(), Some("Traefik"));
        assert_eq!(
            answered_by(&r(500, &[], "Internal Server Error")).as_deref(),
            Some("Traefik")
        );
        let nginx_502 = r(
            502,
            &[("server", "nginx/1.22.1"), ("content-type", "text/html")],
            "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx/1.22.1</center></body></html>",
        );
        assert_eq!(answered_by(&nginx_502).as_deref(), Some("nginx"));
        assert_eq!(answered_by(&r(200, &[], "ok")), None);
    }
}
