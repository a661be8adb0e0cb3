//! The TLS services of [`crate::tls::plan`] seen from one vantage (where phoenix runs, for a
//! Proxmox node): per service one handshake, reported as two checks — `…/chain` (the chain
//! verifies against the given root for the SNI; a skip with the reason when no root is given)
//! and `…/sans` (the presented leaf holds every SAN the model expects). Does I/O: TCP + TLS.

use std::time::{Duration, Instant};

use crate::endpoint::Endpoint;
use crate::https::{self, HttpsOutcome, HttpsRequest};
use crate::report::{ProbeResult, Status, Subject};
use crate::tls::{TlsCheck, explain, missing_sans, presented_text, sans_text};

/// The id base of a check seen from one vantage: `tls/<addr>/<sni>` (`tls/<service>` without
/// an address), unique within `checks`.
fn ids(checks: &[TlsCheck]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in checks {
        let base = match (c.addr, c.sni.is_empty()) {
            (Some(a), false) => format!("tls/{a}/{}", c.sni),
            (Some(a), true) => format!("tls/{a}"),
            (None, _) => format!("tls/{}", c.service),
        };
        let mut id = base.clone();
        let mut n = 2;
        while out.contains(&id) {
            id = format!("{base}#{n}");
            n += 1;
        }
        out.push(id);
    }
    out
}

fn fail(evidence: String) -> Status {
    Status::Fail { evidence }
}

/// Both checks of one service from the handshake's outcome.
fn judge(
    c: &TlsCheck,
    id: &str,
    vantage: &Subject,
    from: &str,
    outcome: Result<HttpsOutcome, String>,
    no_root: Option<&str>,
    took: Duration,
) -> [ProbeResult; 2] {
    let at = c.addr.map_or_else(|| "?".into(), |a| a.to_string());
    let chain_check = format!(
        "tls {}: {at} (SNI {}) chains to phoenix's root, from {from}",
        c.service, c.sni
    );
    let sans_check = format!(
        "tls {}: {at} (SNI {}) presents SANs ⊇ [{}] ({}), from {from}",
        c.service,
        c.sni,
        sans_text(&c.expected),
        c.source
    );
    let result = |suffix: &str, check: String, status: Status, observed: String| ProbeResult {
        id: format!("{id}/{suffix}"),
        subject: vantage.clone(),
        check,
        status,
        observed,
        duration: took,
    };
    let o = match outcome {
        Ok(o) => o,
        Err(e) => {
            let ev = format!("from {from}: {e}");
            return [
                result("chain", chain_check, fail(ev.clone()), ev.clone()),
                result("sans", sans_check, fail(ev.clone()), ev),
            ];
        }
    };
    let presented = o
        .cert
        .as_ref()
        .map_or_else(|| "presented: no certificate seen".into(), presented_text);
    let chain = match (no_root, &o.result) {
        (Some(why), _) => Status::Skip {
            reason: why.to_string(),
        },
        (None, Ok(_)) => Status::Pass,
        (None, Err(e)) => {
            let mut lines: Vec<String> = explain(e, o.cert.as_ref(), &c.sni)
                .map(|x| x.replace("the lab root", "phoenix's root"))
                .into_iter()
                .collect();
            lines.push(format!("TLS error: {e}"));
            lines.push(presented.clone());
            fail(format!("from {from}: {}", lines.join("\n")))
        }
    };
    let sans = match &o.cert {
        None => fail(format!(
            "from {from}: no certificate seen ({})",
            o.result.as_ref().err().map_or("", String::as_str)
        )),
        Some(cert) => {
            let missing = missing_sans(&c.expected, cert);
            if missing.is_empty() {
                Status::Pass
            } else {
                fail(format!(
                    "SANs missing: [{}]\n{presented}\nexpected: SANs ⊇ [{}] ({})",
                    sans_text(&missing),
                    sans_text(&c.expected),
                    c.source
                ))
            }
        }
    };
    [
        result("chain", chain_check, chain, presented.clone()),
        result("sans", sans_check, sans, presented),
    ]
}

/// Every service of `checks` from `ep` (named `vantage` in the report, `from` in the
/// evidence), concurrently; results in plan order, `…/chain` before `…/sans`. `root_pem`:
/// the root to verify chains against, or why there is none (every chain check a skip).
pub fn verify_from(
    ep: &(dyn Endpoint + Sync),
    vantage: &Subject,
    checks: &[TlsCheck],
    root_pem: &Result<String, String>,
    deadline: Duration,
) -> Vec<ProbeResult> {
    let ids = ids(checks);
    let from = ep.label();
    let one = |c: &TlsCheck, id: &str| -> Vec<ProbeResult> {
        if let Some(why) = &c.skip {
            return vec![ProbeResult::skip(
                id.to_string(),
                vantage.clone(),
                format!("tls {}", c.service),
                why.clone(),
            )];
        }
        let Some(addr) = c.addr else {
            return vec![ProbeResult::skip(
                id.to_string(),
                vantage.clone(),
                format!("tls {}", c.service),
                "the service's address is unknown".into(),
            )];
        };
        let start = Instant::now();
        let mut req = HttpsRequest {
            addr,
            sni: c.sni.clone(),
            host: c.sni.clone(),
            path: "/".into(),
            root_pem: String::new(),
        };
        let outcome = match root_pem {
            Ok(pem) => {
                req.root_pem = pem.clone();
                https::get(ep, &req, deadline, false)
            }
            Err(_) => https::get_unverified(ep, &req, deadline, false),
        };
        let no_root = root_pem.as_ref().err().map(String::as_str);
        judge(
            c,
            id,
            vantage,
            &from,
            outcome.map_err(|e| e.to_string()),
            no_root,
            start.elapsed(),
        )
        .into()
    };
    std::thread::scope(|s| {
        let hs: Vec<_> = checks
            .iter()
            .zip(&ids)
            .map(|(c, id)| s.spawn(move || one(c, id)))
            .collect();
        hs.into_iter()
            .zip(checks.iter().zip(&ids))
            .flat_map(|(h, (c, id))| {
                h.join().unwrap_or_else(|_| {
                    vec![ProbeResult::skip(
                        id.clone(),
                        vantage.clone(),
                        format!("tls {}", c.service),
                        "the probe thread panicked".into(),
                    )]
                })
            })
            .collect()
    })
}
