//! Every public route (`https://NAME/`) hop by hop: phoenix → the gateway's nginx (from where
//! phoenix runs, at the gateway's mesh address, the chain verified when a root is given),
//! gateway → Traefik and Traefik → backend (`curl` inside the hop's source container through
//! `pct exec`, `--resolve` so SNI and Host are the route's name; `-k`: the chains are the TLS
//! family's). A hop passes on HTTP 2xx/3xx. `route/<name>` judges the route and names the
//! deepest failing hop (where it broke); `route/<name>/<n>` is each hop with its vantage.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use phoenix_model::model::{GuestId, Scheme};
use phoenix_render::traefik::ingress::{Route, ingress, preferred_address, public_routes};
use phoenix_verify::LocalEndpoint;
use phoenix_verify::https::{self, HttpsRequest};
use phoenix_verify::report::{ProbeResult, Status, Subject};

use super::inside::run_in;
use super::{GuestState, NodeVerify, PHOENIX, unreachable_inside};

/// One hop: from where, to where, plain or TLS.
#[derive(Debug, Clone)]
struct Hop {
    label: String,
    /// `None`: from where phoenix runs; else inside this container.
    from: Option<GuestId>,
    addr: SocketAddr,
    tls: bool,
}

fn upstream_port(
    d: &phoenix_model::DesiredState,
    ing: &phoenix_render::traefik::ingress::Ingress,
) -> u16 {
    phoenix_render::nginx::upstream(d, ing)
        .ok()
        .and_then(|u| {
            u.url
                .rsplit(':')
                .next()
                .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        })
        .unwrap_or(443)
}

/// Every public route's checks (one skip when the model has no ingress path).
pub fn routes(v: &NodeVerify<'_>, states: &BTreeMap<GuestId, GuestState>) -> Vec<ProbeResult> {
    let me = Subject::Named(PHOENIX.into());
    let skip = |why: String| {
        vec![ProbeResult::skip(
            "route".into(),
            me.clone(),
            "route trace".into(),
            why,
        )]
    };
    let ing = match ingress(v.d) {
        Ok(i) => i,
        Err(e) => return skip(format!("no ingress path: {e}")),
    };
    let Some(gw) = v.d.roles.gateway else {
        return skip("the configuration has no gateway role".into());
    };
    let Some(gw_addr) = v.d.guest(gw).and_then(|g| preferred_address(v.d, g)) else {
        return skip(format!("the gateway (guest {gw}) has no static address"));
    };
    let (public, _) = public_routes(v.d, &ing);
    if public.is_empty() {
        return skip("the gateway proxies no public route".into());
    }
    let port = upstream_port(v.d, &ing);
    std::thread::scope(|s| {
        let hs: Vec<_> = public
            .iter()
            .map(|r| {
                let hops = vec![
                    Hop {
                        label: format!("{PHOENIX} → gateway (guest {gw}, nginx)"),
                        from: None,
                        addr: SocketAddr::new(gw_addr, 443),
                        tls: true,
                    },
                    Hop {
                        label: format!("gateway → proxy (guest {}, Traefik)", ing.proxy),
                        from: Some(gw),
                        addr: SocketAddr::new(ing.proxy_address, port),
                        tls: true,
                    },
                    Hop {
                        label: format!("proxy → backend ({})", r.id),
                        from: Some(ing.proxy),
                        addr: SocketAddr::new(r.backend.address, r.backend.port),
                        tls: r.backend.scheme == Scheme::Https,
                    },
                ];
                s.spawn(move || trace(v, states, r, &hops))
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

fn trace(
    v: &NodeVerify<'_>,
    states: &BTreeMap<GuestId, GuestState>,
    r: &Route,
    hops: &[Hop],
) -> Vec<ProbeResult> {
    let start = Instant::now();
    let results: Vec<ProbeResult> = std::thread::scope(|s| {
        let hs: Vec<_> = hops
            .iter()
            .enumerate()
            .map(|(n, h)| s.spawn(move || hop(v, states, r, n + 1, h)))
            .collect();
        hs.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut out = vec![summary(r, hops, &results, start)];
    out.extend(results);
    out
}

fn summary(r: &Route, hops: &[Hop], results: &[ProbeResult], start: Instant) -> ProbeResult {
    let check = format!(
        "route https://{}/ answers through {} hop(s)",
        r.host,
        hops.len()
    );
    let status = match results.first().map(|h| &h.status) {
        None => Status::Skip {
            reason: "the route has no hops".into(),
        },
        Some(Status::Skip { reason }) => Status::Skip {
            reason: reason.clone(),
        },
        _ if results.iter().all(|h| h.status == Status::Pass) => Status::Pass,
        _ => {
            let deepest = results
                .iter()
                .zip(hops)
                .rev()
                .find(|(h, _)| h.is_fail())
                .or_else(|| {
                    results
                        .iter()
                        .zip(hops)
                        .find(|(h, _)| !matches!(h.status, Status::Pass))
                });
            match deepest {
                Some((h, hop)) => Status::Fail {
                    evidence: format!(
                        "broken at hop `{}`: {}",
                        hop.label,
                        match &h.status {
                            Status::Fail { evidence } => evidence.clone(),
                            Status::Skip { reason } => format!("not probed: {reason}"),
                            Status::Pass => String::new(),
                        }
                    ),
                },
                None => Status::Pass,
            }
        }
    };
    ProbeResult {
        id: format!("route/{}", r.host),
        subject: Subject::Named(PHOENIX.into()),
        check,
        observed: results
            .iter()
            .map(|h| format!("{}: {}", h.id, h.observed))
            .collect::<Vec<_>>()
            .join("; "),
        status,
        duration: start.elapsed(),
    }
}

fn ok_code(code: u16) -> bool {
    (200..400).contains(&code)
}

fn hop(
    v: &NodeVerify<'_>,
    states: &BTreeMap<GuestId, GuestState>,
    r: &Route,
    n: usize,
    h: &Hop,
) -> ProbeResult {
    let start = Instant::now();
    let id = format!("route/{}/{n}", r.host);
    let scheme = if h.tls { "https" } else { "http" };
    let (subject, vantage) = match h.from {
        None => (
            Subject::Named(PHOENIX.into()),
            format!("from {PHOENIX} (local)"),
        ),
        Some(g) => (
            Subject::Guest(g),
            format!("curl in container {g} (pct exec)"),
        ),
    };
    let check = format!(
        "{}: {scheme}://{}/ via {} → 2xx/3xx, {vantage}",
        h.label, r.host, h.addr
    );
    let got: Result<String, String> = match h.from {
        None => outer(v, r, h),
        Some(g) => match unreachable_inside(v.d, states, g) {
            Some(why) => return ProbeResult::skip(id, subject, check, why),
            None => curl(v, g, r, h),
        },
    };
    let (status, observed) = match got {
        Ok(o) => (Status::Pass, o),
        Err(e) => (
            Status::Fail {
                evidence: e.clone(),
            },
            e,
        ),
    };
    ProbeResult {
        id,
        subject,
        check,
        status,
        observed,
        duration: start.elapsed(),
    }
}

/// The outer hop from here, trusting phoenix's root when given.
fn outer(v: &NodeVerify<'_>, r: &Route, h: &Hop) -> Result<String, String> {
    let mut req = HttpsRequest {
        addr: h.addr,
        sni: r.host.clone(),
        host: r.host.clone(),
        path: "/".into(),
        root_pem: String::new(),
    };
    let dl = v.deadlines.route;
    let o = match &v.root_pem {
        Ok(pem) => {
            req.root_pem = pem.clone();
            https::get(&LocalEndpoint, &req, dl, true)
        }
        Err(_) => https::get_unverified(&LocalEndpoint, &req, dl, true),
    }
    .map_err(|e| e.to_string())?;
    match &o.result {
        Ok(Some(resp)) if ok_code(resp.status) => Ok(o.to_string()),
        _ => Err(format!("from {PHOENIX}: {o}")),
    }
}

/// `curl` inside container `g`: the status code of `scheme://host:port/` at the hop's address.
fn curl(v: &NodeVerify<'_>, g: GuestId, r: &Route, h: &Hop) -> Result<String, String> {
    let port = h.addr.port();
    let at = match h.addr.ip() {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let resolve = format!("{}:{port}:{at}", r.host);
    let url = format!(
        "{}://{}:{port}/",
        if h.tls { "https" } else { "http" },
        r.host
    );
    let secs = v.deadlines.route.as_secs().max(1).to_string();
    let mut argv = vec![
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        &secs,
        "--resolve",
        &resolve,
    ];
    if h.tls {
        argv.push("-k");
    }
    argv.push(&url);
    let (status, stdout, stderr) =
        run_in(v, g, &argv).map_err(|e| format!("pct exec {g} failed: {e}"))?;
    let code: Option<u16> = stdout.trim().parse().ok();
    match (status, code) {
        (127, _) => Err(format!("no curl in container {g}: {}", stderr.trim())),
        (0, Some(c)) if ok_code(c) => Ok(format!("HTTP {c}")),
        (0, Some(c)) => Err(format!("HTTP {c} from {} (Host {})", h.addr, r.host)),
        (st, _) => Err(format!("curl exited {st}: {}", stderr.trim())),
    }
}
