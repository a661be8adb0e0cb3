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
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::endpoint::{Endpoint, ProbeTarget, with_net};
use crate::https::{self, HttpResponse, HttpsRequest};
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

/// What one attempt at a hop saw: the outcome text and whether it matched.
fn attempt_hop(
    ep: &dyn Endpoint,
    hop: &Hop,
    addr: SocketAddr,
    path: &str,
    root_pem: &str,
    want: u16,
    deadline: Duration,
) -> (bool, String) {
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
                let cert = match &o.cert {
                    Some(_) => String::new(),
                    None => "; no certificate seen".to_string(),
                };
                (ok, format!("{o}{cert}"))
            }
            Err(e) => (
                false,
                format!("probe could not run from {}: {e}", ep.label()),
            ),
        }
    } else {
        match http_get(ep, addr, &hop.host, path, deadline) {
            Ok(r) => (r.status == want, format!("HTTP {}", r.status)),
            Err(e) => (false, e),
        }
    }
}

fn probe_hop<T: ProbeTarget + Sync>(
    target: &T,
    spec: &RouteSpec,
    root_pem: &str,
    n: usize,
    hop: &Hop,
    deadline: Duration,
) -> ProbeResult {
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
        return done(Status::Fail { evidence: why }, String::new());
    };
    let ep = match target.endpoint(&hop.from) {
        Ok(ep) => ep,
        Err(e) => {
            return done(
                Status::Skip {
                    reason: e.to_string(),
                },
                String::new(),
            );
        }
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let left = deadline.saturating_sub(start.elapsed());
        let (ok, seen) = attempt_hop(&*ep, hop, addr, &spec.path, root_pem, spec.want, left);
        let again = start.elapsed() + Duration::from_millis(100) < deadline;
        if ok {
            // On a pass the table shows only the check: name what the hop answered there.
            let mut r = done(Status::Pass, seen.clone());
            r.check = format!("{} — {seen}", r.check);
            return r;
        }
        if !again {
            let evidence = format!(
                "hop {}/{total} {} ({scheme}://{addr}, Host {}, SNI {}): expected HTTP {}, got {seen} [{attempts} tries]",
                n + 1,
                hop.label,
                hop.host,
                hop.sni,
                spec.want
            );
            return done(Status::Fail { evidence }, seen);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Probe every hop of `spec` (concurrently), trusting `root_pem`. Returns the summary result
/// first, then one result per hop, outermost first.
pub fn trace<T: ProbeTarget + Sync>(
    target: &T,
    spec: &RouteSpec,
    root_pem: &str,
    deadline: Duration,
) -> Vec<ProbeResult> {
    let start = Instant::now();
    let hops: Vec<ProbeResult> = std::thread::scope(|s| {
        let handles: Vec<_> = spec
            .hops
            .iter()
            .enumerate()
            .map(|(n, hop)| s.spawn(move || probe_hop(target, spec, root_pem, n, hop, deadline)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut out = vec![summary(spec, &hops, start.elapsed())];
    out.extend(hops);
    out
}

/// The summary: the outer hop's verdict; on failure, the deepest failing hop as the cause.
pub fn summary(spec: &RouteSpec, hops: &[ProbeResult], took: Duration) -> ProbeResult {
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
            let cause = hops.iter().rposition(ProbeResult::is_fail);
            let evidence = match cause {
                Some(i) => {
                    let label = spec.hops.get(i).map_or("?", |h| h.label.as_str());
                    let why = match &hops[i].status {
                        Status::Fail { evidence } => evidence.as_str(),
                        _ => "",
                    };
                    format!(
                        "outer hop got {outer_seen}; broken at hop {}/{} ({label}): {why}",
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

    fn hop(label: &str) -> Hop {
        Hop {
            label: label.into(),
            from: Subject::Named("wan".into()),
            addr: None,
            missing: None,
            tls: true,
            sni: "x".into(),
            host: "x".into(),
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

    #[test]
    fn summary_names_the_deepest_failing_hop() {
        let spec = RouteSpec {
            name: "p.example".into(),
            path: "/".into(),
            want: 200,
            hops: vec![
                hop("wan → gateway"),
                hop("gateway → proxy"),
                hop("proxy → backend"),
            ],
        };
        let fail = |e: &str| Status::Fail { evidence: e.into() };
        let hops = [res(fail("a")), res(fail("b")), res(fail("refused"))];
        let s = summary(&spec, &hops, Duration::ZERO);
        let Status::Fail { evidence } = &s.status else {
            panic!("{s:?}")
        };
        assert!(
            evidence.contains("hop 3/3 (proxy → backend): refused"),
            "{evidence}"
        );
        let hops = [res(fail("a")), res(fail("404")), res(Status::Pass)];
        let s = summary(&spec, &hops, Duration::ZERO);
        assert!(format!("{:?}", s.status).contains("hop 2/3 (gateway → proxy)"));
        let hops = [res(Status::Pass), res(Status::Pass), res(Status::Pass)];
        assert_eq!(summary(&spec, &hops, Duration::ZERO).status, Status::Pass);
    }
}
