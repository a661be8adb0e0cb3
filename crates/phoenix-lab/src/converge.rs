//! `phoenix sync all --target lab`: the lab twin observed, planned and applied like any
//! target, so that a second run changes nothing (by the plan's own count).
//!
//! Observed (all local reads, no probes): the lab's namespaces, `/etc/netns` directories and
//! state dir; the completion record [`MARKER`] a successful run leaves (fingerprint of the
//! configuration and of the topology, SHA-256 of every file under the guest roots, the NAT
//! listing as nft printed it after loading); each namespace's links and `resolv.conf`; the
//! NAT table in the hypervisor; each guest's firewall table; each recorded service's process;
//! each recorded DHCP lease.
//!
//! Planned — one [`LabChange`] per difference, each with its reason:
//! - **build** when nothing of the lab exists; **rebuild** (tear down, build from scratch)
//!   when a previous run did not finish (no completion record), the configuration changed
//!   since the last sync, a namespace or link is gone, or a file under a guest root was
//!   changed behind phoenix's back. The decision (documented): network, certificate and
//!   rendered-file changes rebuild the whole lab, which takes well under a second for the
//!   seed — cheaper and safer than a partial in-place edit of a namespace graph;
//! - **write** a namespace's `resolv.conf` that differs;
//! - **reload** the NAT ruleset when the hypervisor's table is missing or differs from what
//!   was loaded; **load** a guest's firewall table when missing or not the desired one;
//! - **restart** a recorded service whose process is gone (same argv, waits until it holds
//!   its sockets); **renew** a DHCP lease the NIC no longer holds;
//! - **swarm up** when the model has Swarm VMs (and `dockerd` is installed) but the Swarm was
//!   never set up or an engine is not running: [`crate::swarm::up`] starts what is missing,
//!   rejoins, and changes nothing that is already right; also when the Portainer stand-in
//!   Swarm service is recorded but does not serve: **deploy** (the Swarm brought up as above,
//!   then the service redeployed, see [`crate::ingress`]).
//!
//! Applied in that order; the completion record is removed before the first change and
//! written after the last, so a run killed halfway is recognised by the next one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use phoenix_model::model::DesiredState;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::guestfw;
use crate::realise::{UpOptions, resolv_conf, up};
use crate::run::output;
use crate::services::{self, ServicesState};
use crate::status::{LabStatus, status};
use crate::teardown::{NETNS_ETC, entries_with_prefix, namespaces};
use crate::topology::{LabTopology, topology, validate_prefix};
use crate::{LabError, require_root, state_dir};

/// The completion record in the state dir.
pub const MARKER: &str = "converged.json";

/// What a successful run leaves behind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// [`fingerprint`] of the configuration the lab was built from.
    pub fingerprint: String,
    /// SHA-256 of the recorded topology alone (tells a network change from another one).
    pub topology: String,
    /// SHA-256 of every file under the guest roots, by path relative to the state dir.
    pub files: BTreeMap<String, String>,
    /// `nft list table` of the NAT table right after loading it.
    pub nat_listing: Option<String>,
    /// What the lab does not model, as configured at the last sync (see [`not_modelled`]).
    #[serde(default)]
    pub not_modelled: BTreeMap<String, String>,
}

/// The kind of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LabAction {
    Build,
    Rebuild,
    Write,
    ReloadNat,
    LoadFirewall,
    Restart,
    Renew,
    Swarm,
    Deploy,
}

impl std::fmt::Display for LabAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LabAction::Build => "build",
            LabAction::Rebuild => "rebuild",
            LabAction::Write => "write",
            LabAction::ReloadNat => "reload nat",
            LabAction::LoadFirewall => "load firewall",
            LabAction::Restart => "restart",
            LabAction::Renew => "renew lease",
            LabAction::Swarm => "swarm up",
            LabAction::Deploy => "deploy",
        })
    }
}

/// One planned change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabChange {
    pub action: LabAction,
    /// What it acts on: the lab, a namespace, a service, a NIC.
    pub subject: String,
    pub reason: String,
}

/// The plan of one `sync all --target lab`.
#[derive(Debug, Clone, Serialize)]
pub struct LabPlan {
    pub prefix: String,
    pub fingerprint: String,
    pub changes: Vec<LabChange>,
    /// How many things were observed in sync (namespaces, links, files, services, …).
    pub in_sync: usize,
    /// Configured changes the lab does not model (a guest's memory, cores, disk): a node
    /// applies them; the lab records them and changes nothing.
    pub not_modelled: Vec<String>,
    #[serde(skip)]
    topology: LabTopology,
}

impl LabPlan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The desired topology the plan was made for.
    pub fn topology(&self) -> &LabTopology {
        &self.topology
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Guest settings the lab does not model: a node applies them, the lab only records them.
const NOT_MODELLED: &[&str] = &[
    "cores",
    "memory_mb",
    "swap_mb",
    "disk_gb",
    "storage",
    "unprivileged",
    "start_at_boot",
    "boot_order",
    "boot_delay",
    "pct_features",
];

/// Keys holding a path on this machine: compared by the content of the file they name, so
/// the same configuration given as a relative or an absolute directory, or copied elsewhere,
/// is the same lab.
const PATH_KEYS: &[&str] = &["compose_path", "path"];

/// The desired state as the lab builds it: without the settings it does not model, every
/// path replaced by the SHA-256 of the file it names.
fn lab_view(d: &DesiredState) -> serde_json::Value {
    fn by_content(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    if PATH_KEYS.contains(&k.as_str())
                        && let Some(p) = v.as_str()
                        && let Ok(bytes) = std::fs::read(p)
                    {
                        *v = serde_json::Value::String(format!("sha256:{}", sha256_hex(&bytes)));
                    } else {
                        by_content(v);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(by_content),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(d).unwrap_or_default();
    if let Some(guests) = v.get_mut("guests").and_then(|g| g.as_object_mut()) {
        for g in guests.values_mut().filter_map(|g| g.as_object_mut()) {
            for k in NOT_MODELLED {
                g.remove(*k);
            }
        }
    }
    by_content(&mut v);
    v
}

/// The settings of [`NOT_MODELLED`] as configured, by `guest ID KEY`.
pub fn not_modelled(d: &DesiredState) -> BTreeMap<String, String> {
    let v = serde_json::to_value(d).unwrap_or_default();
    let mut out = BTreeMap::new();
    if let Some(guests) = v.get("guests").and_then(|g| g.as_object()) {
        for (id, g) in guests {
            for k in NOT_MODELLED {
                if let Some(val) = g.get(*k) {
                    out.insert(format!("guest {id} {k}"), val.to_string());
                }
            }
        }
    }
    out
}

/// What changed among the settings the lab does not model since `then`, one line each.
fn not_modelled_changes(
    then: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
) -> Vec<String> {
    let none = "unset".to_string();
    let keys: std::collections::BTreeSet<&String> = then.keys().chain(now.keys()).collect();
    keys.into_iter()
        .filter(|k| then.get(*k) != now.get(*k))
        .map(|k| {
            format!(
                "{k}: {} → {}: not modelled in the lab (a node applies it); recorded, nothing changed",
                then.get(k).unwrap_or(&none),
                now.get(k).unwrap_or(&none)
            )
        })
        .collect()
}

/// Fingerprint of what the lab is built from: the desired state as the lab models it
/// ([`lab_view`]), the topology and this phoenix's version (a new phoenix may build the lab
/// differently).
pub fn fingerprint(d: &DesiredState, t: &LabTopology) -> String {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(serde_json::to_vec(&lab_view(d)).unwrap_or_default());
    h.update(serde_json::to_vec(t).unwrap_or_default());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn topology_hash(t: &LabTopology) -> String {
    sha256_hex(&serde_json::to_vec(t).unwrap_or_default())
}

/// SHA-256 of every regular file under the guest roots (`root/` in the state dir).
fn root_files(prefix: &str) -> BTreeMap<String, String> {
    let base = state_dir(prefix);
    let mut out = BTreeMap::new();
    let mut stack = vec![base.join("root")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file()
                && let Ok(bytes) = std::fs::read(&p)
            {
                let rel = p.strip_prefix(&base).unwrap_or(&p);
                out.insert(rel.to_string_lossy().into_owned(), sha256_hex(&bytes));
            }
        }
    }
    out
}

/// The `family name` of the first table a ruleset declares.
fn table_of(ruleset: &str) -> Option<(String, String)> {
    ruleset.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.as_slice() {
            ["table", fam, name, ..] => Some((fam.to_string(), name.to_string())),
            _ => None,
        }
    })
}

/// `nft list table` of the NAT table in the hypervisor, `None` when it is not loaded.
pub fn nat_listing(t: &LabTopology) -> Option<String> {
    let (fam, name) = table_of(&t.nat_ruleset)?;
    let out = output(
        "ip",
        &["netns", "exec", &t.hv, "nft", "list", "table", &fam, &name],
    )
    .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn read_completion(prefix: &str) -> Option<Completion> {
    let text = std::fs::read_to_string(state_dir(prefix).join(MARKER)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Record a successful run (after `lab up` and after `sync all`).
pub fn record_completion(d: &DesiredState, t: &LabTopology) -> Result<(), LabError> {
    let c = Completion {
        fingerprint: fingerprint(d, t),
        topology: topology_hash(t),
        files: root_files(&t.prefix),
        nat_listing: nat_listing(t),
        not_modelled: not_modelled(d),
    };
    let path = state_dir(&t.prefix).join(MARKER);
    let json = serde_json::to_string_pretty(&c).map_err(LabError::State)?;
    std::fs::write(&path, json).map_err(|e| LabError::io(&path, e))
}

/// The completion record with `d`'s values of what the lab does not model.
fn record_not_modelled(d: &DesiredState, prefix: &str) -> Result<(), LabError> {
    let Some(mut c) = read_completion(prefix) else {
        return Ok(());
    };
    c.not_modelled = not_modelled(d);
    let path = state_dir(prefix).join(MARKER);
    let json = serde_json::to_string_pretty(&c).map_err(LabError::State)?;
    std::fs::write(&path, json).map_err(|e| LabError::io(&path, e))
}

fn clear_completion(prefix: &str) -> Result<(), LabError> {
    let path = state_dir(prefix).join(MARKER);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LabError::io(&path, e)),
    }
}

fn change(action: LabAction, subject: impl Into<String>, reason: impl Into<String>) -> LabChange {
    LabChange {
        action,
        subject: subject.into(),
        reason: reason.into(),
    }
}

/// Why the lab must be rebuilt, from what exists (`None`: it need not be).
fn rebuild_reasons(
    d: &DesiredState,
    t: &LabTopology,
    st: &LabStatus,
    done: &Option<Completion>,
    in_sync: &mut usize,
) -> Vec<String> {
    let mut why = Vec::new();
    let Some(done) = done else {
        why.push("a previous run did not finish (no completion record)".to_string());
        return why;
    };
    if done.fingerprint != fingerprint(d, t) {
        why.push(if done.topology != topology_hash(t) {
            "the configuration changed since the last sync (network topology, DNS or NAT)"
                .to_string()
        } else {
            "the configuration changed since the last sync (guests, certificates or services)"
                .to_string()
        });
        return why;
    }
    for n in &t.namespaces {
        match st.namespaces.iter().find(|s| s.name == n.name) {
            Some(s) if s.present => {
                *in_sync += 1;
                if !s.missing_links.is_empty() {
                    why.push(format!(
                        "{}: link(s) {} gone",
                        n.name,
                        s.missing_links.join(", ")
                    ));
                }
                for l in s.links.iter().filter(|l| s.down_links.contains(&l.name)) {
                    why.push(format!("{}: link {} is {}", n.name, l.name, l.operstate));
                }
                *in_sync += t.links_in(&n.name).len();
            }
            _ => why.push(format!("namespace {} is gone", n.name)),
        }
    }
    for extra in st
        .namespaces
        .iter()
        .filter(|s| s.present && !t.namespaces.iter().any(|n| n.name == s.name))
    {
        why.push(format!(
            "namespace {} is not part of the configuration",
            extra.name
        ));
    }
    let now = root_files(&t.prefix);
    for (path, hash) in &done.files {
        match now.get(path) {
            None => why.push(format!("{path} was removed")),
            Some(h) if h != hash => why.push(format!("{path} was changed behind phoenix's back")),
            Some(_) => *in_sync += 1,
        }
    }
    for path in now.keys().filter(|p| !done.files.contains_key(*p)) {
        why.push(format!("{path} was added behind phoenix's back"));
    }
    why
}

/// Observe the lab `prefix` and plan what `sync all` must change (root only).
pub fn plan(d: &DesiredState, prefix: &str) -> Result<LabPlan, LabError> {
    validate_prefix(prefix)?;
    require_root()?;
    let t = topology(d, prefix)?;
    let fp = fingerprint(d, &t);
    let mut p = LabPlan {
        prefix: prefix.to_string(),
        fingerprint: fp,
        changes: Vec::new(),
        in_sync: 0,
        not_modelled: Vec::new(),
        topology: t,
    };
    let t = &p.topology;
    let exists = !namespaces(prefix).is_empty()
        || !entries_with_prefix(NETNS_ETC, prefix).is_empty()
        || state_dir(prefix).exists();
    if !exists {
        p.changes.push(change(
            LabAction::Build,
            format!("lab {prefix}"),
            format!(
                "not up: {} namespaces, {} veth pairs, {} macvlans, services and certificates to create",
                t.namespaces.len(),
                t.veths.len(),
                t.macvlans.len()
            ),
        ));
        return Ok(p);
    }
    let st = status(prefix)?;
    let done = read_completion(prefix);
    let mut in_sync = 0;
    let why = rebuild_reasons(d, t, &st, &done, &mut in_sync);
    if let Some(done) = &done {
        p.not_modelled = not_modelled_changes(&done.not_modelled, &not_modelled(d));
    }
    if !why.is_empty() {
        p.changes.push(change(
            LabAction::Rebuild,
            format!("lab {prefix}"),
            why.join("; "),
        ));
        return Ok(p);
    }
    for n in &t.namespaces {
        let path = Path::new(NETNS_ETC).join(&n.name).join("resolv.conf");
        if std::fs::read_to_string(&path).ok().as_deref() == Some(resolv_conf(t, n).as_str()) {
            in_sync += 1;
        } else {
            p.changes.push(change(
                LabAction::Write,
                path.to_string_lossy(),
                "missing or differs from the lab's resolver",
            ));
        }
    }
    match (
        nat_listing(t),
        done.as_ref().and_then(|c| c.nat_listing.clone()),
    ) {
        (Some(now), Some(then)) if now == then => in_sync += 1,
        (None, _) if table_of(&t.nat_ruleset).is_none() => {}
        (None, _) => p.changes.push(change(
            LabAction::ReloadNat,
            t.hv.clone(),
            "the NAT table is not loaded",
        )),
        (Some(_), _) => p.changes.push(change(
            LabAction::ReloadNat,
            t.hv.clone(),
            "the NAT table differs from the ruleset phoenix loaded",
        )),
    }
    for (ns, ruleset) in guestfw::rulesets(d, t) {
        let want = guestfw::fingerprint_of(&ruleset);
        match guestfw::observed_fingerprint(&ns) {
            Some(f) if Some(&f) == want.as_ref() => in_sync += 1,
            Some(_) => p.changes.push(change(
                LabAction::LoadFirewall,
                ns,
                "the firewall table differs from the configuration",
            )),
            None => p.changes.push(change(
                LabAction::LoadFirewall,
                ns,
                "the firewall table is not loaded",
            )),
        }
    }
    for s in &st.services {
        if s.alive {
            in_sync += 1;
        } else {
            p.changes.push(change(
                LabAction::Restart,
                s.name.clone(),
                format!(
                    "not running in {} (pid {})",
                    s.ns,
                    s.pid.map_or("none".to_string(), |p| p.to_string())
                ),
            ));
        }
    }
    for l in &st.leases {
        if l.held {
            in_sync += 1;
        } else {
            p.changes.push(change(
                LabAction::Renew,
                format!("guest {} {}", l.lease.guest, l.lease.nic),
                format!(
                    "the NIC no longer holds {}",
                    l.lease.address.as_deref().unwrap_or("its lease")
                ),
            ));
        }
    }
    if crate::swarm::dockerd_available()
        && let Some(sp) = crate::swarm::plan(d, t)?
    {
        let dead: Vec<String> = sp
            .nodes
            .iter()
            .filter(|n| crate::swarm::engine_pid(n).is_none())
            .map(|n| format!("{} ({})", n.name, n.guest))
            .collect();
        if crate::swarm::load(prefix).is_none() {
            p.changes.push(change(
                LabAction::Swarm,
                "swarm",
                format!("not set up ({} nodes)", sp.nodes.len()),
            ));
        } else if !dead.is_empty() {
            p.changes.push(change(
                LabAction::Swarm,
                "swarm",
                format!(
                    "engine not running on {}: start it and rejoin",
                    dead.join(", ")
                ),
            ));
        } else {
            in_sync += sp.nodes.len();
            // The stand-in service: one task running on its node, its port answering.
            if let Some(si) = crate::ingress::swarm_stand_in(prefix) {
                let c = crate::swarm::service::stand_in_running_on(&sp, si.guest, si.port);
                if c.pass {
                    in_sync += 1;
                } else {
                    p.changes.push(change(
                        LabAction::Deploy,
                        crate::swarm::service::STAND_IN_SERVICE,
                        format!("not serving: {}; redeploy", c.observed),
                    ));
                }
            }
        }
    }
    p.in_sync = in_sync;
    Ok(p)
}

/// What [`apply`] did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub applied: Vec<LabChange>,
    pub elapsed_ms: u128,
    /// The up report when the lab was (re)built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up: Option<crate::UpReport>,
}

/// Apply `p` (made by [`plan`] for the same `d`). `progress` hears of each change before it
/// runs. On failure the completion record stays absent, so the next `plan` rebuilds.
pub fn apply(
    d: &DesiredState,
    p: &LabPlan,
    progress: &mut dyn FnMut(usize, &LabChange),
) -> Result<ApplyReport, LabError> {
    require_root()?;
    let start = std::time::Instant::now();
    let t = &p.topology;
    let mut report = ApplyReport {
        applied: Vec::new(),
        elapsed_ms: 0,
        up: None,
    };
    if p.changes.is_empty() {
        if !p.not_modelled.is_empty() {
            // Nothing to change in the lab: the record takes the new values, said once.
            record_not_modelled(d, &p.prefix)?;
        }
        return Ok(report);
    }
    if state_dir(&p.prefix).exists() {
        clear_completion(&p.prefix)?;
    }
    let dir = state_dir(&p.prefix);
    for (i, c) in p.changes.iter().enumerate() {
        progress(i, c);
        match c.action {
            LabAction::Build | LabAction::Rebuild => {
                let r = up(
                    d,
                    &UpOptions {
                        prefix: p.prefix.clone(),
                        recreate: true,
                    },
                )?;
                report.up = Some(r);
            }
            LabAction::Write => {
                let n = t
                    .namespaces
                    .iter()
                    .find(|n| c.subject.contains(&format!("/{}/", n.name)))
                    .ok_or_else(|| LabError::Service {
                        name: "resolv.conf".into(),
                        reason: format!("no namespace for {}", c.subject),
                    })?;
                let path = PathBuf::from(&c.subject);
                std::fs::write(&path, resolv_conf(t, n)).map_err(|e| LabError::io(&path, e))?;
            }
            LabAction::ReloadNat => {
                let file = dir.join("nat.nft");
                std::fs::write(&file, &t.nat_ruleset).map_err(|e| LabError::io(&file, e))?;
                crate::run::run(
                    "ip",
                    &["netns", "exec", &t.hv, "nft", "-f", &file.to_string_lossy()],
                )?;
            }
            LabAction::LoadFirewall => {
                let rulesets = guestfw::rulesets(d, t);
                let (ns, text) = rulesets
                    .iter()
                    .find(|(ns, _)| *ns == c.subject)
                    .ok_or_else(|| LabError::Service {
                        name: "firewall".into(),
                        reason: format!("no ruleset for {}", c.subject),
                    })?;
                guestfw::load(ns, text, &dir)?;
            }
            LabAction::Restart => {
                let state = services::load(&p.prefix).unwrap_or_default();
                let rec = state
                    .services
                    .iter()
                    .find(|s| s.name == c.subject)
                    .ok_or_else(|| LabError::Service {
                        name: c.subject.clone(),
                        reason: "not recorded in services.json".into(),
                    })?;
                services::restart(&p.prefix, rec)?;
            }
            LabAction::Swarm | LabAction::Deploy => {
                if let Some(st) = crate::swarm::up(d, t, true)?
                    && let Some(si) = crate::ingress::swarm_stand_in(&p.prefix)
                {
                    crate::ingress::deploy_swarm_stand_in(&st.plan, &si)?;
                }
            }
            LabAction::Renew => {
                let mut state: ServicesState = services::load(&p.prefix).unwrap_or_default();
                if let Some(l) = state
                    .leases
                    .iter_mut()
                    .find(|l| format!("guest {} {}", l.guest, l.nic) == c.subject)
                {
                    *l = services::renew(&p.prefix, l)?;
                }
                services::save(&p.prefix, &state)?;
            }
        }
        report.applied.push(c.clone());
    }
    record_completion(d, t)?;
    report.elapsed_ms = start.elapsed().as_millis();
    Ok(report)
}
