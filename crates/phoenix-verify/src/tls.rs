//! TLS checks: every TLS service of the lab presents a chain to the internal root holding the
//! SANs the model expects. [`plan`] derives the services from the desired state (pure);
//! [`verify`] handshakes with each one from a guest's namespace (I/O through a
//! [`ProbeTarget`]).
//!
//! Services and what they are expected to present:
//! - **the gateway's nginx**, port 443 on its mesh address
//!   ([`preferred_address`]): per manifest server certificate of the gateway that a public
//!   route's `server` block uses (the render's choice: the first one covering the routed name,
//!   else the first one), that certificate's SANs, with SNI = the routed name (nginx picks the
//!   block by it). Probed from the gateway's own namespace: no mesh guest is admitted to the
//!   gateway's 443, and a local connection is not filtered.
//! - **the internal proxy (Traefik)** on its mesh address and the `websecure` port the gateway
//!   connects to: per server certificate its dynamic configuration references
//!   ([`Ingress::proxy_certs`]), that manifest certificate's SANs, with SNI = its common name
//!   when that is one of its DNS SANs, else its first non-wildcard DNS SAN. Probed from the
//!   gateway (the guest that talks to it).
//! - **every HTTPS route backend** (`Route.backend`), with SNI = the backend's
//!   `server_name`: the SANs of the manifest certificate of the backend's guest covering that
//!   name. Probed from the proxy.
//! - **step-ca** in the CA guest (its static mesh address, `step_ca.port`): the names its
//!   `ca.json` lists in `dnsNames` (`step_ca.dns_name` and the mesh address). When a route's
//!   backend is step-ca the route's check is that check (from the proxy); otherwise it is
//!   probed from the proxy, else the gateway, else another guest on the mesh.
//!
//! When the model cannot tell what a service presents (no manifest certificate, several
//! candidates, no address), the check is a skip with the reason, never a guess.
//!
//! A check passes when the handshake with the SNI verifies against the lab root (chain,
//! validity, name) and the leaf holds every expected SAN (DNS case-insensitively, IP by
//! value). The evidence of a failure names what was presented (subject, issuer, SANs,
//! not-after) against what was expected, the missing SANs, or the TLS error.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use phoenix_model::DesiredState;
use phoenix_model::model::{Certificate, GuestId, San, Scheme};
use phoenix_render::traefik::ingress::{
    Ingress, RouteOrigin, ingress, is_client, preferred_address, public_routes,
};
use serde::Serialize;

use crate::endpoint::ProbeTarget;
use crate::https::{self, CertInfo, HttpsRequest};
use crate::report::{ProbeResult, Status, Subject};

/// Port nginx's public server blocks listen on (the render writes `listen 443 ssl`).
const GATEWAY_PORT: u16 = 443;

/// One TLS service to check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsCheck {
    /// `tls/<from>/<addr>:<port>` (plus `/<sni>` when one address serves several names).
    pub id: String,
    /// What listens there, for humans: `gateway nginx (guest 101)`.
    pub service: String,
    /// Where the handshake is made from.
    pub from: Subject,
    /// Where the service listens; `None` when the model does not say (then `skip` is set).
    pub addr: Option<SocketAddr>,
    /// TLS server name sent and verified.
    pub sni: String,
    /// SANs the presented leaf must hold.
    pub expected: Vec<San>,
    /// Where the expectation comes from (`manifest certificate `x``, `step-ca dnsNames`).
    pub source: String,
    /// Why the check cannot be made (the model cannot tell): reported as a skip.
    pub skip: Option<String>,
}

impl TlsCheck {
    fn new(service: String, from: Subject, addr: Option<SocketAddr>) -> Self {
        TlsCheck {
            id: String::new(),
            service,
            from,
            addr,
            sni: String::new(),
            expected: Vec::new(),
            source: String::new(),
            skip: None,
        }
    }

    fn skipped(mut self, reason: impl Into<String>) -> Self {
        self.skip = Some(reason.into());
        self
    }

    fn expecting(mut self, sni: String, expected: Vec<San>, source: String) -> Self {
        self.sni = sni;
        self.expected = expected;
        self.source = source;
        self
    }
}

fn guest(id: GuestId) -> Subject {
    Subject::Guest(id)
}

pub(crate) fn sans_text(sans: &[San]) -> String {
    sans.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first DNS SAN that is not a wildcard.
fn first_dns(sans: &[San]) -> Option<String> {
    sans.iter().find_map(|s| match s {
        San::Dns(n) if !n.starts_with("*.") => Some(n.to_ascii_lowercase()),
        _ => None,
    })
}

/// Manifest server certificates of guest `id`.
fn server_certs(d: &DesiredState, id: GuestId) -> Vec<&Certificate> {
    d.certificates
        .iter()
        .filter(|c| c.guest == id && !is_client(c))
        .collect()
}

/// The CA guest, and step-ca's listen address with the names its `ca.json` gives it
/// (`dnsNames`: the configured DNS name and the mesh address), or why the model does not say.
type StepCaTarget = (GuestId, Result<(SocketAddr, Vec<San>), String>);

/// The CA role's [`StepCaTarget`], if the model has a CA role.
fn step_ca_target(d: &DesiredState) -> Option<StepCaTarget> {
    let id = d.roles.ca?;
    let addr = (|| {
        let g = d
            .guest(id)
            .ok_or_else(|| format!("the CA role names guest {id}, which is not defined"))?;
        let mesh = d
            .mesh()
            .ok_or("the host has no mesh bridge, so step-ca's address is unknown")?;
        g.static_on(&mesh.name)
            .and_then(|n| n.address())
            .ok_or_else(|| {
                format!(
                    "the CA guest {id} has no static address on the mesh `{}`",
                    mesh.name
                )
            })
    })();
    Some((
        id,
        addr.map(|a| {
            (
                SocketAddr::new(a, d.step_ca.port),
                vec![
                    San::Dns(d.step_ca.dns_name.to_ascii_lowercase()),
                    San::Ip(a),
                ],
            )
        }),
    ))
}

/// Derive the TLS checks from the desired state (pure).
pub fn plan(d: &DesiredState) -> Vec<TlsCheck> {
    let mut out = Vec::new();
    let ing = ingress(d).map_err(|e| format!("no ingress path: {e}"));
    if let Some(gw) = d.roles.gateway {
        gateway_checks(d, gw, &ing, &mut out);
    }
    if let Some(proxy) = d.roles.internal_proxy {
        proxy_checks(d, proxy, &ing, &mut out);
    }
    let step_ca = step_ca_target(d);
    let mut step_ca_done = false;
    if let Ok(ing) = &ing {
        backend_checks(d, ing, step_ca.as_ref(), &mut step_ca_done, &mut out);
    }
    if let (Some((ca, target)), false) = (step_ca, step_ca_done) {
        let from = d
            .roles
            .internal_proxy
            .or(d.roles.gateway)
            .filter(|g| *g != ca)
            .or_else(|| {
                let mesh = d.mesh()?;
                d.guests
                    .values()
                    .find(|g| !g.is_template && g.id != ca && g.static_on(&mesh.name).is_some())
                    .map(|g| g.id)
            });
        let service = format!("step-ca (guest {ca})");
        let c = match (target, from) {
            (Ok((addr, sans)), Some(from)) => TlsCheck::new(service, guest(from), Some(addr))
                .expecting(
                    first_dns(&sans).unwrap_or_default(),
                    sans,
                    "step-ca's ca.json dnsNames".into(),
                ),
            (Ok((addr, _)), None) => TlsCheck::new(service, guest(ca), Some(addr))
                .skipped("no other guest on the mesh to connect from"),
            (Err(why), _) => TlsCheck::new(service, guest(ca), None).skipped(why),
        };
        out.push(c);
    }
    finish(out)
}

/// Drop exact duplicates and give every check a unique id.
fn finish(checks: Vec<TlsCheck>) -> Vec<TlsCheck> {
    let mut seen = BTreeSet::new();
    let mut out: Vec<TlsCheck> = checks
        .into_iter()
        .filter(|c| seen.insert((c.from.clone(), c.addr, c.sni.clone(), c.service.clone())))
        .collect();
    let base = |c: &TlsCheck| match c.addr {
        Some(a) => format!("tls/{}/{a}", c.from),
        None => format!("tls/{}/{}", c.from, c.service),
    };
    let bases: Vec<String> = out.iter().map(base).collect();
    for (i, c) in out.iter_mut().enumerate() {
        let shared = bases.iter().filter(|b| **b == bases[i]).count() > 1;
        c.id = if shared && !c.sni.is_empty() {
            format!("{}/{}", bases[i], c.sni)
        } else {
            bases[i].clone()
        };
    }
    let mut ids = BTreeSet::new();
    for c in &mut out {
        let mut n = 2;
        let first = c.id.clone();
        while !ids.insert(c.id.clone()) {
            c.id = format!("{first}#{n}");
            n += 1;
        }
    }
    out
}

fn gateway_checks(
    d: &DesiredState,
    gw: GuestId,
    ing: &Result<Ingress, String>,
    out: &mut Vec<TlsCheck>,
) {
    let service = format!("gateway nginx (guest {gw})");
    let from = guest(gw);
    let Some(g) = d.guest(gw) else {
        out.push(TlsCheck::new(service, from, None).skipped(format!(
            "the gateway role names guest {gw}, which is not defined"
        )));
        return;
    };
    let Some(a) = preferred_address(d, g) else {
        out.push(
            TlsCheck::new(service, from, None)
                .skipped(format!("the gateway (guest {gw}) has no static address")),
        );
        return;
    };
    let addr = SocketAddr::new(a, GATEWAY_PORT);
    let ing = match ing {
        Ok(i) => i,
        Err(why) => {
            out.push(
                TlsCheck::new(service, from, Some(addr))
                    .skipped(format!("{why}; which certificate nginx serves is unknown")),
            );
            return;
        }
    };
    let certs = server_certs(d, gw);
    let (routes, _) = public_routes(d, ing);
    if certs.is_empty() {
        out.push(TlsCheck::new(service, from, Some(addr)).skipped(format!(
            "the manifest has no server certificate for the gateway (guest {gw}): nginx serves \
             files phoenix installs, whose SANs the model does not name"
        )));
        return;
    }
    if routes.is_empty() {
        out.push(TlsCheck::new(service, from, Some(addr)).skipped(
            "the gateway proxies no public route, so nginx has no TLS server block".to_string(),
        ));
        return;
    }
    // The render's choice per routed name: the first certificate covering it, else the first.
    let mut used: Vec<(usize, String)> = Vec::new();
    for r in routes {
        let i = certs
            .iter()
            .position(|c| c.sans.iter().any(|s| s.covers_name(&r.host)))
            .unwrap_or(0);
        if !used.iter().any(|(j, _)| *j == i) {
            used.push((i, r.host.clone()));
        }
    }
    for (i, host) in used {
        let Some(c) = certs.get(i) else { continue };
        out.push(
            TlsCheck::new(service.clone(), from.clone(), Some(addr)).expecting(
                host,
                c.sans.clone(),
                format!("manifest certificate `{}`", c.common_name),
            ),
        );
    }
}

fn proxy_checks(
    d: &DesiredState,
    proxy: GuestId,
    ing: &Result<Ingress, String>,
    out: &mut Vec<TlsCheck>,
) {
    let service = format!("internal proxy Traefik (guest {proxy})");
    let from = guest(d.roles.gateway.unwrap_or(proxy));
    let ing = match ing {
        Ok(i) => i,
        Err(why) => {
            out.push(TlsCheck::new(service, from, None).skipped(why.clone()));
            return;
        }
    };
    let port = match phoenix_render::nginx::upstream(d, ing) {
        Ok(up) => up
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok()),
        Err(e) => {
            out.push(TlsCheck::new(service, from, None).skipped(e.to_string()));
            return;
        }
    };
    let Some(port) = port else {
        out.push(
            TlsCheck::new(service, from, None)
                .skipped("the proxy's upstream URL names no port".to_string()),
        );
        return;
    };
    let addr = SocketAddr::new(ing.proxy_address, port);
    if ing.proxy_certs.is_empty() {
        out.push(TlsCheck::new(service, from, Some(addr)).skipped(format!(
            "the manifest has no server certificate for the proxy (guest {proxy}): Traefik \
             serves its self-signed default, which the model does not describe"
        )));
        return;
    }
    let certs = server_certs(d, proxy);
    for pair in &ing.proxy_certs {
        let check = TlsCheck::new(service.clone(), from.clone(), Some(addr));
        let Some(c) = certs.iter().find(|c| c.common_name == pair.common_name) else {
            out.push(check.skipped(format!(
                "the proxy's certificate `{}` is not in the manifest",
                pair.common_name
            )));
            continue;
        };
        // SNI: the certificate's own name when it is a DNS SAN, else its first DNS SAN.
        let own = c.sans.iter().any(|s| match s {
            San::Dns(n) => n.eq_ignore_ascii_case(&c.common_name) && !n.starts_with("*."),
            San::Ip(_) => false,
        });
        let sni = if own {
            Some(c.common_name.to_ascii_lowercase())
        } else {
            first_dns(&c.sans)
        };
        match sni {
            Some(sni) => out.push(check.expecting(
                sni,
                c.sans.clone(),
                format!("manifest certificate `{}`", c.common_name),
            )),
            None => out.push(check.skipped(format!(
                "the proxy's certificate `{}` has no DNS name to select it by SNI",
                c.common_name
            ))),
        }
    }
}

fn backend_checks(
    d: &DesiredState,
    ing: &Ingress,
    step_ca: Option<&StepCaTarget>,
    step_ca_done: &mut bool,
    out: &mut Vec<TlsCheck>,
) {
    let from = guest(ing.proxy);
    for r in ing
        .routes
        .iter()
        .filter(|r| r.backend.scheme == Scheme::Https)
    {
        let b = &r.backend;
        let addr = SocketAddr::new(b.address, b.port);
        let route = format!("backend of route `{}`", r.host);
        // step-ca behind the proxy: its names come from ca.json, not the manifest.
        if let Some((ca, Ok((ca_addr, sans)))) = step_ca
            && *ca_addr == addr
        {
            *step_ca_done = true;
            out.push(
                TlsCheck::new(
                    format!("step-ca (guest {ca}), {route}"),
                    from.clone(),
                    Some(addr),
                )
                .expecting(
                    b.server_name.clone(),
                    sans.clone(),
                    "step-ca's ca.json dnsNames".into(),
                ),
            );
            continue;
        }
        let owner = match &r.origin {
            RouteOrigin::Guest(id) => Some(*id),
            RouteOrigin::Stack { .. } => d
                .guests
                .values()
                .find(|g| !g.is_template && g.addresses().any(|a| a == b.address))
                .map(|g| g.id),
        };
        let service = match owner {
            Some(id) => format!("{route} (guest {id})"),
            None => route.clone(),
        };
        let check = TlsCheck::new(service, from.clone(), Some(addr));
        let Some(owner) = owner else {
            out.push(check.skipped(format!(
                "no guest holds the backend address {}, so its certificate is unknown",
                b.address
            )));
            continue;
        };
        let covering: Vec<&Certificate> = server_certs(d, owner)
            .into_iter()
            .filter(|c| c.sans.iter().any(|s| s.covers_name(&b.server_name)))
            .collect();
        match covering.as_slice() {
            [] => out.push(check.skipped(format!(
                "the manifest has no certificate of guest {owner} covering `{}`, so what the \
                 backend presents is not in the model",
                b.server_name
            ))),
            [c, rest @ ..] if rest.iter().all(|o| o.sans == c.sans) => {
                out.push(check.expecting(
                    b.server_name.clone(),
                    c.sans.clone(),
                    format!("manifest certificate `{}`", c.common_name),
                ));
            }
            many => out.push(check.skipped(format!(
                "{} manifest certificates of guest {owner} cover `{}` with different SANs; \
                 which one the backend serves is not in the model",
                many.len(),
                b.server_name
            ))),
        }
    }
}

/// The SANs of `expected` the presented certificate lacks.
pub fn missing_sans(expected: &[San], presented: &CertInfo) -> Vec<San> {
    expected
        .iter()
        .filter(|e| {
            !presented.sans.iter().any(|p| match e {
                San::Dns(n) => p.eq_ignore_ascii_case(n),
                San::Ip(a) => p.parse::<IpAddr>().is_ok_and(|x| x == *a),
            })
        })
        .cloned()
        .collect()
}

pub(crate) fn presented_text(c: &CertInfo) -> String {
    format!(
        "presented: subject {:?}, issuer {:?}, SANs [{}], not after {}",
        c.subject,
        c.issuer,
        c.sans.join(", "),
        c.not_after
    )
}

/// A reading of rustls' certificate errors for the evidence.
pub(crate) fn explain(err: &str, c: Option<&CertInfo>, sni: &str) -> Option<String> {
    if err.contains("UnknownIssuer") {
        Some(match c {
            Some(c) => format!(
                "untrusted issuer: the chain does not lead to the lab root (leaf issued by {:?})",
                c.issuer
            ),
            None => "untrusted issuer: the chain does not lead to the lab root".into(),
        })
    } else if err.contains("NotValidForName") {
        Some(format!(
            "the certificate is not valid for the SNI name {sni}"
        ))
    } else if err.contains("Expired") {
        Some("the certificate has expired".into())
    } else if err.contains("NotValidYet") {
        Some("the certificate is not valid yet".into())
    } else {
        None
    }
}

fn check_text(c: &TlsCheck) -> String {
    let at = c.addr.map_or_else(|| "?".to_string(), |a| a.to_string());
    if c.skip.is_some() && c.sni.is_empty() {
        return format!("tls {}: {at}", c.service);
    }
    format!(
        "tls {}: {at} (SNI {}) chains to the lab root, SANs ⊇ [{}]",
        c.service,
        c.sni,
        sans_text(&c.expected)
    )
}

/// One handshake.
fn run_one(
    t: &(impl ProbeTarget + ?Sized),
    c: &TlsCheck,
    root_pem: &str,
    deadline: Duration,
) -> ProbeResult {
    let check = check_text(c);
    let skip =
        |reason: String| ProbeResult::skip(c.id.clone(), c.from.clone(), check.clone(), reason);
    if let Some(why) = &c.skip {
        return skip(why.clone());
    }
    let Some(addr) = c.addr else {
        return skip("the service's address is unknown".into());
    };
    let ep = match t.endpoint(&c.from) {
        Ok(ep) => ep,
        Err(e) => return skip(e.to_string()),
    };
    let start = Instant::now();
    let req = HttpsRequest {
        addr,
        sni: c.sni.clone(),
        host: c.sni.clone(),
        path: "/".into(),
        root_pem: root_pem.to_string(),
    };
    let expected = format!(
        "expected: a chain to the lab root and SANs ⊇ [{}] ({})",
        sans_text(&c.expected),
        c.source
    );
    let (status, observed) = match https::get(&*ep, &req, deadline, false) {
        Err(e) => {
            let ev = format!("probe could not run from {}: {e}", ep.label());
            (
                Status::Fail {
                    evidence: ev.clone(),
                },
                ev,
            )
        }
        Ok(o) => {
            let presented = o.cert.as_ref().map(presented_text);
            let missing = o
                .cert
                .as_ref()
                .map(|cert| missing_sans(&c.expected, cert))
                .unwrap_or_default();
            let missing_line =
                (!missing.is_empty()).then(|| format!("SANs missing: [{}]", sans_text(&missing)));
            match &o.result {
                Ok(_) if o.cert.is_some() && missing.is_empty() => (
                    Status::Pass,
                    format!(
                        "chain to the lab root ok; {}",
                        presented.unwrap_or_default()
                    ),
                ),
                Ok(_) => {
                    let mut lines = Vec::new();
                    lines.extend(missing_line);
                    lines
                        .push(presented.unwrap_or_else(|| "presented: no certificate seen".into()));
                    lines.push(expected);
                    let ev = lines.join("\n");
                    (
                        Status::Fail {
                            evidence: ev.clone(),
                        },
                        ev,
                    )
                }
                Err(e) => {
                    let mut lines = Vec::new();
                    lines.extend(explain(e, o.cert.as_ref(), &c.sni));
                    lines.extend(missing_line);
                    lines.push(format!("TLS error: {e}"));
                    lines
                        .push(presented.unwrap_or_else(|| "presented: no certificate seen".into()));
                    lines.push(expected);
                    let ev = format!("from {}: {}", ep.label(), lines.join("\n"));
                    (
                        Status::Fail {
                            evidence: ev.clone(),
                        },
                        ev,
                    )
                }
            }
        }
    };
    ProbeResult {
        id: c.id.clone(),
        subject: c.from.clone(),
        check,
        status,
        observed,
        duration: start.elapsed(),
    }
}

/// Run every check concurrently (results in plan order). Without a root every check is a
/// skip naming why.
pub fn verify<T: ProbeTarget + Sync + ?Sized>(
    t: &T,
    checks: &[TlsCheck],
    root_pem: &Result<String, String>,
    deadline: Duration,
) -> Vec<ProbeResult> {
    let pem = match root_pem {
        Ok(p) => p.as_str(),
        Err(why) => {
            return checks
                .iter()
                .map(|c| {
                    ProbeResult::skip(
                        c.id.clone(),
                        c.from.clone(),
                        check_text(c),
                        c.skip.clone().unwrap_or_else(|| why.clone()),
                    )
                })
                .collect();
        }
    };
    std::thread::scope(|s| {
        let hs: Vec<_> = checks
            .iter()
            .map(|c| s.spawn(move || run_one(t, c, pem, deadline)))
            .collect();
        hs.into_iter()
            .zip(checks)
            .map(|(h, c)| {
                h.join().unwrap_or_else(|_| {
                    ProbeResult::skip(
                        c.id.clone(),
                        c.from.clone(),
                        check_text(c),
                        "the probe thread panicked".into(),
                    )
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(sans: &[&str]) -> CertInfo {
        CertInfo {
            subject: "CN=x".into(),
            issuer: "CN=root".into(),
            sans: sans.iter().map(ToString::to_string).collect(),
            not_after: "never".into(),
        }
    }

    #[test]
    fn missing_sans_compares_dns_without_case_and_ips_by_value() {
        let want = vec![
            San::Dns("a.example".into()),
            San::Dns("b.example".into()),
            San::Ip("10.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))),
            San::Ip("fd00::1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))),
        ];
        let got = info(&["A.Example", "10.0.0.1", "fd00:0:0::1"]);
        assert_eq!(
            missing_sans(&want, &got),
            vec![San::Dns("b.example".into())]
        );
        assert!(missing_sans(&[], &got).is_empty());
    }

    #[test]
    fn ids_are_unique_and_name_the_sni_only_when_an_address_is_shared() {
        let a: SocketAddr = "10.0.0.1:443"
            .parse()
            .unwrap_or(SocketAddr::from(([0; 4], 0)));
        let b: SocketAddr = "10.0.0.2:443"
            .parse()
            .unwrap_or(SocketAddr::from(([0; 4], 0)));
        let mk = |addr, sni: &str| {
            TlsCheck::new("s".into(), Subject::Guest(GuestId(1)), Some(addr)).expecting(
                sni.into(),
                Vec::new(),
                String::new(),
            )
        };
        let out = finish(vec![mk(a, "x"), mk(a, "y"), mk(b, "z"), mk(b, "z")]);
        let ids: Vec<&str> = out.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "tls/guest:1/10.0.0.1:443/x",
                "tls/guest:1/10.0.0.1:443/y",
                "tls/guest:1/10.0.0.2:443"
            ]
        );
    }

    #[test]
    fn explain_names_an_untrusted_issuer() {
        let c = info(&["a.example"]);
        let e = explain(
            "invalid peer certificate: UnknownIssuer",
            Some(&c),
            "a.example",
        );
        assert!(e.is_some_and(|e| e.contains("untrusted issuer") && e.contains("CN=root")));
    }
}
