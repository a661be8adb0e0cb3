//! Running derived expectations against a target: every DNS check from every subject, every
//! pair of the reachability matrix. Probes run concurrently (one scoped thread each; a denied
//! pair waits for its whole deadline, so running them one by one would add the deadlines up).
//! A subject the target has no endpoint for is a skip with the reason. Does I/O through the
//! target's endpoints.

use std::net::SocketAddr;
use std::time::Duration;

use crate::dns::{self, DnsCheck};
use crate::endpoint::ProbeTarget;
use crate::matrix::Reach;
use crate::report::{ProbeResult, Subject};
use crate::tcp;

fn run_all<J>(jobs: Vec<J>) -> Vec<ProbeResult>
where
    J: FnOnce() -> ProbeResult + Send,
{
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs.into_iter().map(|j| s.spawn(j)).collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}

/// Every check of `checks` asked of `server` from each of `subjects`, in input order.
pub fn verify_dns<T: ProbeTarget + Sync>(
    target: &T,
    subjects: &[Subject],
    server: SocketAddr,
    checks: &[DnsCheck],
    deadline: Duration,
) -> Vec<ProbeResult> {
    let mut jobs = Vec::new();
    for subject in subjects {
        for check in checks {
            jobs.push(move || match target.endpoint(subject) {
                Ok(ep) => dns::probe(&*ep, subject, server, check, deadline),
                Err(e) => ProbeResult::skip(
                    format!("dns/{subject}/{}", check.name),
                    subject.clone(),
                    format!("dns {} {} via {server}", check.name, check.expect),
                    e.to_string(),
                ),
            });
        }
    }
    run_all(jobs)
}

/// Every pair of the matrix, in input order.
pub fn verify_matrix<T: ProbeTarget + Sync>(
    target: &T,
    pairs: &[Reach],
    deadline: Duration,
) -> Vec<ProbeResult> {
    let jobs: Vec<_> = pairs
        .iter()
        .map(|r| {
            move || {
                let addr = SocketAddr::new(r.addr, r.port);
                let why = format!("→ guest:{}, {}", r.to, r.why);
                match target.endpoint(&r.from) {
                    Ok(ep) => tcp::probe(&*ep, &r.from, addr, r.expect, &why, deadline),
                    Err(e) => ProbeResult::skip(
                        format!("tcp/{}/{addr}", r.from),
                        r.from.clone(),
                        format!("tcp {addr} ({why})"),
                        e.to_string(),
                    ),
                }
            }
        })
        .collect();
    run_all(jobs)
}
