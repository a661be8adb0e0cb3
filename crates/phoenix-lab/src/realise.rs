//! `lab up`: build a [`LabTopology`] with `ip -batch` files, write each namespace's
//! `resolv.conf` first, turn forwarding on, load the NAT ruleset in the hypervisor, then start
//! the services ([`crate::services`]).
//! Records the topology in `/run/phoenix-lab/<prefix>/state.json` (runtime only).
//!
//! Idempotency (the simple, documented choice): if any namespace or `/etc/netns` directory of
//! the prefix exists, `up` refuses with a hint, or rebuilds from scratch with `recreate`.
//! A failed `up` tears down everything it made.
//! I/O: processes, `/etc/netns`, `/run/phoenix-lab`.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Instant;

use phoenix_model::model::DesiredState;
use serde::Serialize;

use crate::batch::{ns_batch, root_batch};
use crate::ingress::{self, IngressState};
use crate::run::{finish, run, spawn};
use crate::services::{self, ServicesState};
use crate::teardown::{NETNS_ETC, down, entries_with_prefix, namespaces};
use crate::topology::{LabTopology, Namespace, topology, validate_prefix};
use crate::{LabError, require_root, state_dir};

#[derive(Debug, Clone)]
pub struct UpOptions {
    pub prefix: String,
    /// Tear down an existing lab of the same prefix first instead of refusing.
    pub recreate: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpReport {
    pub prefix: String,
    pub namespaces: usize,
    pub veths: usize,
    pub macvlans: usize,
    pub state_dir: PathBuf,
    pub elapsed_ms: u128,
    /// Time per phase, in milliseconds.
    pub phases: Vec<(String, u128)>,
    /// The services started and the DHCP leases obtained.
    pub services: ServicesState,
    /// The ingress path ([`crate::ingress`]), when the model has one.
    pub ingress: Option<IngressState>,
}

/// Realise the network of `d` under `opts.prefix`.
pub fn up(d: &DesiredState, opts: &UpOptions) -> Result<UpReport, LabError> {
    validate_prefix(&opts.prefix)?;
    require_root()?;
    let t = topology(d, &opts.prefix)?;
    realise_model(&t, opts.recreate, Some(d))
}

/// Build `t` (root only). On failure everything made so far is torn down.
/// Network and base services only; [`up`] also starts the ingress path of the model.
pub fn realise(t: &LabTopology, recreate: bool) -> Result<UpReport, LabError> {
    realise_model(t, recreate, None)
}

fn realise_model(
    t: &LabTopology,
    recreate: bool,
    d: Option<&DesiredState>,
) -> Result<UpReport, LabError> {
    require_root()?;
    let prefix = t.prefix.as_str();
    let mut existing = namespaces(prefix);
    existing.extend(entries_with_prefix(NETNS_ETC, prefix));
    existing.sort();
    existing.dedup();
    if !existing.is_empty() {
        if !recreate {
            return Err(LabError::AlreadyUp {
                prefix: prefix.to_string(),
                namespaces: existing,
            });
        }
        down(prefix)?;
    }
    let start = Instant::now();
    let mut phases = Phases(Vec::new(), Instant::now());
    let built = build(t, d, &mut phases).and_then(|s| {
        if let Some(d) = d {
            crate::converge::record_completion(d, t)?;
        }
        Ok(s)
    });
    let (services, ingress) = match built {
        Ok(s) => s,
        Err(e) => {
            if let Err(cleanup) = down(prefix) {
                eprintln!("warning: cleanup after a failed `lab up` {prefix}: {cleanup}");
            }
            return Err(e);
        }
    };
    Ok(UpReport {
        prefix: prefix.to_string(),
        namespaces: t.namespaces.len(),
        veths: t.veths.len(),
        macvlans: t.macvlans.len(),
        state_dir: state_dir(prefix),
        elapsed_ms: start.elapsed().as_millis(),
        phases: phases.0,
        services,
        ingress,
    })
}

/// The `resolv.conf` of namespace `n` (bind-mounted by `ip netns exec`).
pub(crate) fn resolv_conf(t: &LabTopology, n: &Namespace) -> String {
    format!(
        "# phoenix lab {}: {}\nnameserver {}\n",
        t.prefix, n.name, n.resolver
    )
}

fn write(path: &Path, content: &str) -> Result<(), LabError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| LabError::io(parent, e))?;
    }
    std::fs::write(path, content).map_err(|e| LabError::io(path, e))
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Phase timings: name and milliseconds since the previous mark.
struct Phases(Vec<(String, u128)>, Instant);

impl Phases {
    fn mark(&mut self, name: &str) {
        self.0
            .push((name.to_string(), self.1.elapsed().as_millis()));
        self.1 = Instant::now();
    }
}

fn build(
    t: &LabTopology,
    d: Option<&DesiredState>,
    phases: &mut Phases,
) -> Result<(ServicesState, Option<IngressState>), LabError> {
    let dir = state_dir(&t.prefix);
    let state = serde_json::to_string_pretty(t).map_err(LabError::State)?;
    write(&dir.join("state.json"), &state)?;
    // resolv.conf before anything runs inside (LAB.md): `ip netns exec` bind-mounts it.
    for n in &t.namespaces {
        write(
            &Path::new(NETNS_ETC).join(&n.name).join("resolv.conf"),
            &resolv_conf(t, n),
        )?;
    }
    phases.mark("state and resolv.conf");
    let root = dir.join("batch").join("root.ip");
    write(&root, &root_batch(t))?;
    run("ip", &["-batch", &path_str(&root)])?;
    phases.mark("root batch");
    // The hypervisor first: the macvlans are created from its bridges into the guests.
    let hv_file = dir.join("batch").join(format!("{}.ip", t.hv));
    write(&hv_file, &ns_batch(t, &t.hv))?;
    run("ip", &["-n", &t.hv, "-batch", &path_str(&hv_file)])?;
    phases.mark("hypervisor batch");
    let mut jobs: Vec<Vec<String>> = Vec::new();
    for n in t.namespaces.iter().filter(|n| n.name != t.hv) {
        let file = dir.join("batch").join(format!("{}.ip", n.name));
        write(&file, &ns_batch(t, &n.name))?;
        jobs.push(vec![
            "-n".into(),
            n.name.clone(),
            "-batch".into(),
            path_str(&file),
        ]);
    }
    for n in t.namespaces.iter().filter(|n| n.forwarding) {
        jobs.push(
            ["netns", "exec", &n.name, "sysctl", "-q", "-w"]
                .iter()
                .map(|s| s.to_string())
                .chain(["net.ipv4.ip_forward=1".to_string()])
                .collect(),
        );
    }
    run_parallel("ip", &jobs)?;
    phases.mark("namespace batches and forwarding");
    let nat = dir.join("nat.nft");
    write(&nat, &t.nat_ruleset)?;
    run(
        "ip",
        &["netns", "exec", &t.hv, "nft", "-f", &path_str(&nat)],
    )?;
    phases.mark("nat");
    if let Some(d) = d {
        // Guest firewalls: the policy of the `.fw` files as an nftables table per guest.
        for (ns, text) in crate::guestfw::rulesets(d, t) {
            crate::guestfw::load(&ns, &text, &dir)?;
        }
        phases.mark("guest firewalls");
    }
    let mut s = services::start(t)?;
    phases.mark("services");
    let ingress = match d {
        Some(d) => ingress::start(d, t, &mut s.services)?,
        None => None,
    };
    if ingress.is_some() {
        services::save(&t.prefix, &s)?;
        phases.mark("ingress");
    }
    Ok((s, ingress))
}

/// Run every job, at most `window` at a time; the first failure is returned.
fn run_parallel(program: &str, jobs: &[Vec<String>]) -> Result<(), LabError> {
    // Process start-up dominates; a window keeps the process table small without costing time
    // (measured: 2, 4, 16 and unbounded give the same figures on 2 cores).
    let window = 16;
    let mut running: std::collections::VecDeque<(Vec<&str>, Child)> = Default::default();
    let mut first_err = None;
    for args in jobs {
        if running.len() >= window
            && let Some((argv, child)) = running.pop_front()
            && let Err(e) = finish(program, &argv, child)
        {
            first_err.get_or_insert(e);
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        match spawn(program, &argv) {
            Ok(c) => running.push_back((argv, c)),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    for (argv, child) in running {
        if let Err(e) = finish(program, &argv, child) {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}
