//! The Swarm through the Engine API over TCP+TLS (what `phoenix swarm status --target pve`
//! reads): `swarm/node/<name>` (the engine answers, its Swarm state is active in the role the
//! model gives it), `swarm/cluster` (the first answering manager lists every node ready) and
//! `swarm/stack/<namespace>` (every service of each configured stack runs all its replicas).
//! Without the engines (no client certificate) one `swarm` skip says why. GETs only.

use phoenix_exec::docker::observe::{Engine, observe_engines};
use phoenix_model::DesiredState;
use phoenix_model::model::SwarmRole;
use phoenix_plan::swarm::{LocalState, SwarmObserved};
use phoenix_verify::report::{ProbeResult, Status, Subject};

fn line(id: String, subject: Subject, check: String, r: Result<String, String>) -> ProbeResult {
    let (status, observed) = match r {
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
        duration: std::time::Duration::ZERO,
    }
}

/// Every Swarm check of `d` (none when it has no Swarm).
pub fn checks(d: &DesiredState, engines: &Result<Vec<Engine>, String>) -> Vec<ProbeResult> {
    let Some(desired) = phoenix_plan::swarm::desired(d) else {
        return Vec::new();
    };
    let engines = match engines {
        Ok(e) => e,
        Err(why) => {
            return vec![ProbeResult::skip(
                "swarm".into(),
                Subject::Named("swarm".into()),
                format!("swarm of {} node(s) (Engine API)", desired.nodes.len()),
                why.clone(),
            )];
        }
    };
    let start = std::time::Instant::now();
    let observed = observe_engines(engines);
    let mut out = nodes(&desired, engines, &observed);
    out.push(cluster(&desired, &observed));
    let leader = desired
        .leader()
        .and_then(|l| engines.iter().find(|e| e.guest == l.guest.0));
    for s in &desired.stacks {
        let listed = match leader.map(|e| (e, &e.client)) {
            Some((_, Ok(c))) => {
                phoenix_exec::docker::stack::replicas(c, &s.namespace).map_err(|e| e.to_string())
            }
            Some((e, Err(why))) => Err(format!("manager {} ({}) unreachable: {why}", e.name, e.at)),
            None => Err("no manager engine".into()),
        };
        let r = listed.and_then(|l| {
            let shown: Vec<String> = l.iter().map(|(n, r, w)| format!("{n} {r}/{w}")).collect();
            let shown = shown.join(", ");
            if l.is_empty() {
                Err(format!(
                    "stack {} is not deployed (no service)",
                    s.namespace
                ))
            } else if l.iter().all(|(_, r, w)| r == w && *w > 0) {
                Ok(shown)
            } else {
                Err(shown)
            }
        });
        out.push(line(
            format!("swarm/stack/{}", s.namespace),
            Subject::Named(s.manager.clone()),
            format!(
                "every service of stack {} has its replicas running (Engine API via {})",
                s.namespace, s.manager
            ),
            r,
        ));
    }
    for r in &mut out {
        r.duration = start.elapsed();
    }
    out
}

fn nodes(
    desired: &phoenix_plan::swarm::SwarmDesired,
    engines: &[Engine],
    observed: &SwarmObserved,
) -> Vec<ProbeResult> {
    desired
        .nodes
        .iter()
        .map(|n| {
            let manager = n.role == SwarmRole::Manager;
            let role = if manager { "manager" } else { "worker" };
            let at = engines
                .iter()
                .find(|e| e.guest == n.guest.0)
                .map_or_else(String::new, |e| e.at.clone());
            let r = match observed.node(&n.name) {
                None => Err(format!("engine of {} not observed", n.name)),
                Some(o) => match (&o.engine, o.local_state) {
                    (Err(why), _) => Err(format!("engine at {at} unreachable: {why}")),
                    (Ok(()), Some(LocalState::Active)) if o.is_manager == manager => {
                        Ok(format!("active {role}"))
                    }
                    (Ok(()), Some(LocalState::Active)) => Err(format!(
                        "active, but {} (the configuration says {role})",
                        if o.is_manager { "manager" } else { "worker" }
                    )),
                    (Ok(()), Some(s)) => Err(format!("swarm state {s}")),
                    (Ok(()), None) => Err("swarm state unknown".into()),
                },
            };
            line(
                format!("swarm/node/{}", n.name),
                Subject::Guest(n.guest),
                format!("{} is an active Swarm {role} (Engine API at {at})", n.name),
                r,
            )
        })
        .collect()
}

fn cluster(desired: &phoenix_plan::swarm::SwarmDesired, observed: &SwarmObserved) -> ProbeResult {
    let r = match &observed.cluster {
        None => Err("no manager answered with the cluster's view".into()),
        Some(c) => {
            let missing: Vec<String> = desired
                .nodes
                .iter()
                .filter(|n| {
                    !c.nodes
                        .iter()
                        .any(|m| m.hostname == n.name && m.state == "ready")
                })
                .map(|n| n.name.clone())
                .collect();
            let seen: Vec<String> = c
                .nodes
                .iter()
                .map(|m| format!("{} {} {}", m.hostname, m.role, m.state))
                .collect();
            if missing.is_empty() {
                Ok(format!("via {}: {}", c.via, seen.join(", ")))
            } else {
                Err(format!(
                    "not ready in the cluster: {}; the managers list: {}",
                    missing.join(", "),
                    seen.join(", ")
                ))
            }
        }
    };
    line(
        "swarm/cluster".into(),
        Subject::Named("swarm".into()),
        format!(
            "the cluster lists all {} node(s) ready",
            desired.nodes.len()
        ),
        r,
    )
}
