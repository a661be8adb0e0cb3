//! `phoenix verify --target pve`: the lab's probe families against a real node, read-only
//! (API GETs only; in-guest commands that only read; nothing written on the node or in a
//! guest). Families, each check saying its vantage: `guest/<id>` (API), `dns/…` (`pct exec` in
//! each running container, [`inside`]), `tls/…` (from where phoenix runs,
//! [`phoenix_verify::tlsview`]), `route/…` (hop by hop, [`route`]), `swarm/…` (the Engine
//! API, [`swarm`]). Families run concurrently, each probe with a deadline. Does I/O.

pub mod inside;
pub mod route;
pub mod swarm;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use phoenix_exec::docker::observe::Engine;
use phoenix_exec::shell::HostShell;
use phoenix_model::DesiredState;
use phoenix_model::model::{GuestId, GuestKind};
use phoenix_verify::report::{ProbeResult, Report, Status, Subject};
use phoenix_verify::{LocalEndpoint, tlsview};

use crate::client::PveClient;
use crate::observe::{InventoryEntry, inventory};

/// The report's name for where phoenix runs (the TLS checks' and the route's outer vantage).
pub const PHOENIX: &str = "phoenix";

/// The probe families (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    Guests,
    Dns,
    Tls,
    Route,
    Swarm,
}

impl Family {
    pub const ALL: [Family; 5] = [
        Family::Guests,
        Family::Dns,
        Family::Tls,
        Family::Route,
        Family::Swarm,
    ];
}

/// Per-probe deadlines.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// One command inside a guest (`pct exec`: `getent`, `curl`, `cat`).
    pub guest_command: Duration,
    /// One TLS handshake or HTTPS request from here.
    pub tls: Duration,
    /// One route hop.
    pub route: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            guest_command: Duration::from_secs(5),
            tls: Duration::from_secs(3),
            route: Duration::from_secs(5),
        }
    }
}

/// Everything the node's checks need.
pub struct NodeVerify<'a> {
    pub d: &'a DesiredState,
    /// Used for GETs only.
    pub client: &'a PveClient,
    /// The node's shell: `pct exec` (commands that only read), never a file write.
    pub shell: &'a dyn HostShell,
    /// PEM of phoenix's root (`--ca-dir`), or why there is none (the chain checks are skipped).
    pub root_pem: Result<String, String>,
    /// The Swarm nodes' engines, or why they are not reached (one skip).
    pub engines: Result<Vec<Engine>, String>,
    pub deadlines: Deadlines,
    /// The families to run (the guest states are always read: the others need them).
    pub families: BTreeSet<Family>,
}

/// What the API says about a configured guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestState {
    Running,
    /// Exists, in another state (`stopped`, or on another node).
    Other(String),
    Missing,
}

/// Run every family and collect the report: guests first, then DNS, TLS, route, Swarm.
pub fn verify(v: &NodeVerify<'_>) -> Report {
    let start = Instant::now();
    let inv = inventory(v.client).map_err(|e| e.to_string());
    let took = start.elapsed();
    let (guests, states) = guest_checks(v, &inv, took);
    let on = |f: Family| v.families.contains(&f);
    let (dns, tls, routes, swarm) = std::thread::scope(|s| {
        let dns = s.spawn(|| {
            if on(Family::Dns) {
                inside::dns(v, &states)
            } else {
                Vec::new()
            }
        });
        let tls = s.spawn(|| {
            if !on(Family::Tls) {
                return Vec::new();
            }
            let checks = phoenix_verify::tls::plan(v.d);
            tlsview::verify_from(
                &LocalEndpoint,
                &Subject::Named(PHOENIX.into()),
                &checks,
                &v.root_pem,
                v.deadlines.tls,
            )
        });
        let routes = s.spawn(|| {
            if on(Family::Route) {
                route::routes(v, &states)
            } else {
                Vec::new()
            }
        });
        let swarm = s.spawn(|| {
            if on(Family::Swarm) {
                swarm::checks(v.d, &v.engines)
            } else {
                Vec::new()
            }
        });
        let j =
            |h: std::thread::ScopedJoinHandle<'_, Vec<ProbeResult>>| h.join().unwrap_or_default();
        (j(dns), j(tls), j(routes), j(swarm))
    });
    let mut report = Report::new();
    if on(Family::Guests) {
        report.extend(guests);
    }
    report.extend(dns);
    report.extend(tls);
    report.extend(routes);
    report.extend(swarm);
    report
}

fn kind_name(k: GuestKind) -> &'static str {
    match k {
        GuestKind::Lxc => "container",
        GuestKind::Vm => "VM",
    }
}

/// `guest/<id>`: every configured guest exists on this node (a template: exists) and runs —
/// from one `GET /cluster/resources?type=vm`.
pub fn guest_checks(
    v: &NodeVerify<'_>,
    inv: &Result<Vec<InventoryEntry>, String>,
    took: Duration,
) -> (Vec<ProbeResult>, BTreeMap<GuestId, GuestState>) {
    let node = v.client.node();
    let mut out = Vec::new();
    let mut states = BTreeMap::new();
    for g in v.d.guests.values() {
        let want = if g.is_template {
            "exists"
        } else {
            "exists and is running"
        };
        let check = format!(
            "{} {} ({}) {want} on node {node} (API)",
            kind_name(g.kind),
            g.id,
            g.name
        );
        let (status, observed, state) = match inv {
            Err(e) => (
                Status::Fail {
                    evidence: format!("GET /cluster/resources failed: {e}"),
                },
                e.clone(),
                GuestState::Missing,
            ),
            Ok(rows) => match rows.iter().find(|r| r.id == g.id) {
                None => (
                    Status::Fail {
                        evidence: format!("guest {} ({}) does not exist", g.id, g.name),
                    },
                    "absent".into(),
                    GuestState::Missing,
                ),
                Some(r) if r.node != node => (
                    Status::Fail {
                        evidence: format!(
                            "guest {} ({}) is on node {}, not {node}",
                            g.id, g.name, r.node
                        ),
                    },
                    format!("on {}", r.node),
                    GuestState::Other(format!("on node {}", r.node)),
                ),
                Some(r) if r.status == "running" => {
                    (Status::Pass, "running".into(), GuestState::Running)
                }
                Some(r) if g.is_template => (
                    Status::Pass,
                    r.status.clone(),
                    GuestState::Other(r.status.clone()),
                ),
                Some(r) => (
                    Status::Fail {
                        evidence: format!("guest {} ({}) is {}", g.id, g.name, r.status),
                    },
                    r.status.clone(),
                    GuestState::Other(r.status.clone()),
                ),
            },
        };
        states.insert(g.id, state);
        out.push(ProbeResult {
            id: format!("guest/{}", g.id),
            subject: Subject::Guest(g.id),
            check,
            status,
            observed,
            duration: took,
        });
    }
    (out, states)
}

/// Why a guest's inside is not probed, or `None` when it can be (a running container).
pub(crate) fn unreachable_inside(
    d: &DesiredState,
    states: &BTreeMap<GuestId, GuestState>,
    id: GuestId,
) -> Option<String> {
    let Some(g) = d.guest(id) else {
        return Some(format!("guest {id} is not in the configuration"));
    };
    if g.kind == GuestKind::Vm {
        return Some(format!(
            "VM {id}: commands in a VM go through the guest agent's exec, a POST; read-only \
             verify does not use it"
        ));
    }
    match states.get(&id) {
        Some(GuestState::Running) => None,
        Some(GuestState::Other(s)) => Some(format!("container {id} is not running ({s})")),
        Some(GuestState::Missing) | None => Some(format!("container {id} does not exist")),
    }
}
