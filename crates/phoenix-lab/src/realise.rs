//! The lab's network: build a [`LabTopology`] with `ip -batch` files, write each namespace's
//! `resolv.conf` first, turn forwarding on, load the NAT ruleset in the hypervisor, then start
//! the lab's own world ([`crate::services`]); records the topology in
//! `/run/phoenix-lab/<prefix>/state.json` (runtime only). [`ensure_network`] is what the
//! lab's executor calls when a guest action needs the network (built once, kept whole, the
//! mesh DNS and NAT following the configuration); [`upkeep`] restarts the lab's own services.
//! `lab up` runs the whole pipeline ([`crate::target::up`]); `--network-only`
//! ([`up_network`]) builds the network alone and refuses a lab that exists unless
//! `recreate`. A failed build tears down what it made.
//! I/O: processes, `/etc/netns`, `/run/phoenix-lab`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use phoenix_model::model::DesiredState;
use serde::Serialize;

use crate::batch::{ns_batch, root_batch};
use crate::ingress::IngressState;
use crate::run::{finish, run};
use crate::services::{self, ServicesState};
use crate::teardown::{NETNS_ETC, down, entries_with_prefix, namespaces};
use crate::topology::{LabTopology, topology, validate_prefix};
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
    /// The Swarm ([`crate::swarm`]), when the model has Swarm VMs and `dockerd` is installed.
    pub swarm: Option<crate::swarm::SwarmState>,
}

/// How much of the model [`up_with`] realises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything: network, services, ingress, the Swarm; recorded as a finished run.
    Full,
    /// Namespaces, links, addresses, routes, forwarding, NAT and guest firewalls only: no
    /// process is started in the lab, and no completion is recorded (a `sync all` on it
    /// rebuilds).
    NetworkOnly,
}

/// The network of `d` alone under `opts.prefix` (`lab up --network-only`): namespaces,
/// links, addresses, routes, forwarding, NAT and guest firewalls, no process.
pub fn up_network(d: &DesiredState, opts: &UpOptions) -> Result<UpReport, LabError> {
    validate_prefix(&opts.prefix)?;
    require_root()?;
    let t = topology(d, &opts.prefix)?;
    realise_model(&t, opts.recreate, Some(d), Scope::NetworkOnly)
}

/// Build `t` (root only). On failure everything made so far is torn down.
/// Network and the lab's own services only.
pub fn realise(t: &LabTopology, recreate: bool) -> Result<UpReport, LabError> {
    realise_model(t, recreate, None, Scope::Full)
}

fn realise_model(
    t: &LabTopology,
    recreate: bool,
    d: Option<&DesiredState>,
    scope: Scope,
) -> Result<UpReport, LabError> {
    require_root()?;
    let prefix = t.prefix.as_str();
    let _active = crate::procs::Active::enter(prefix);
    if let Some(note) = crate::teardown::finish_interrupted(prefix)? {
        eprintln!("note: {note}");
    }
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
    let built = build(t, d, scope, &mut phases);
    let (services, ingress, swarm) = match built {
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
        swarm,
    })
}

/// The lab's network for `t`, as a plan's guest actions need it (root only): built (the
/// namespaces, links, addresses, routes and NAT, then the lab's world and the hypervisor's
/// services: the wan's DNS, DHCP and HTTP, the mesh DNS, the guests' DHCP clients) when
/// nothing is up; when it is up and recorded for another configuration, the mesh DNS and
/// the NAT ruleset follow the new one in place. Any other difference (bridges, NICs,
/// addresses) is refused: running namespaces are not rewired. Returns what it said.
pub fn ensure_network(t: &LabTopology) -> Result<Vec<String>, LabError> {
    require_root()?;
    let prefix = t.prefix.as_str();
    if namespaces(prefix).is_empty() {
        // `/etc/netns` entries of a crashed run are the lab's own (by prefix).
        for stray in entries_with_prefix(NETNS_ETC, prefix) {
            let p = Path::new(NETNS_ETC).join(&stray);
            std::fs::remove_dir_all(&p).map_err(|e| LabError::io(&p, e))?;
        }
        build_network(t)?;
        return Ok(vec![format!(
            "the lab's network was built: {} namespaces, {} veth pairs, {} macvlans",
            t.namespaces.len(),
            t.veths.len(),
            t.macvlans.len()
        )]);
    }
    let problems = network_problems(t);
    let Some(was) = crate::status::load_state(prefix).filter(|_| problems.is_empty()) else {
        // A build that did not finish (killed), or links and addresses gone: the network is
        // made again (its processes end with it); the node root and the guest roots stay,
        // so the plan's provision steps start the guests' programs again.
        let why = if problems.is_empty() {
            "no recorded network".to_string()
        } else {
            problems.join("; ")
        };
        crate::teardown::down_network(prefix)?;
        build_network(t)?;
        return Ok(vec![format!(
            "the lab's network was incomplete ({why}): built again, its programs restart with their provision steps"
        )]);
    };
    if was == *t {
        return Ok(Vec::new());
    }
    let same_wiring = LabTopology {
        nat_ruleset: t.nat_ruleset.clone(),
        mesh_dns: t.mesh_dns.clone(),
        ..was.clone()
    } == *t;
    if !same_wiring {
        return Err(LabError::Provision(format!(
            "the lab's network differs from the configuration (bridges, NICs, addresses or routes): running namespaces are not rewired in place; `phoenix lab down --prefix {prefix}` and sync again"
        )));
    }
    let dir = state_dir(prefix);
    let mut said = Vec::new();
    if was.nat_ruleset != t.nat_ruleset {
        crate::drift::load_nat(t)?;
        said.push("the NAT ruleset was reloaded in the lab's hypervisor".to_string());
    }
    if was.mesh_dns != t.mesh_dns {
        let rec = services::load(prefix)
            .and_then(|s| s.services.into_iter().find(|r| r.name == "dnsmasq-hv"));
        match (&t.mesh_dns, rec) {
            (Some(conf), Some(rec)) => {
                write(&dir.join("dnsmasq-hv.conf"), conf)?;
                services::restart(prefix, &rec)?;
                said.push("the mesh DNS was restarted with the new configuration".to_string());
            }
            _ => {
                return Err(LabError::Provision(format!(
                    "the mesh DNS was added or removed: `phoenix lab down --prefix {prefix}` and sync again"
                )));
            }
        }
    }
    let state = serde_json::to_string_pretty(t).map_err(LabError::State)?;
    write(&dir.join("state.json"), &state)?;
    Ok(said)
}

/// Build the network of `t` and the lab's own world; on failure what was made of the network
/// is taken down again, the state dir (node root, guest roots, CA) kept, so the next run
/// observes its guests as stopped and builds again.
fn build_network(t: &LabTopology) -> Result<(), LabError> {
    let mut phases = Phases(Vec::new(), Instant::now());
    let built = build(t, None, Scope::Full, &mut phases).map(drop);
    if built.is_err()
        && let Err(cleanup) = crate::teardown::down_network(&t.prefix)
    {
        eprintln!(
            "warning: cleanup after a failed lab network {}: {cleanup}",
            t.prefix
        );
    }
    built
}

/// What is missing from the lab's network for `t` (empty: complete, or nothing is up):
/// namespaces and links that are gone, which only a rebuild makes again. A link down, an
/// address or route lost, an edited `resolv.conf` or NAT are repaired in place instead
/// ([`crate::drift`], by [`upkeep`]).
pub fn network_problems(t: &LabTopology) -> Vec<String> {
    if namespaces(&t.prefix).is_empty() {
        return Vec::new();
    }
    let Ok(st) = crate::status::status(&t.prefix) else {
        return vec!["its status cannot be read".to_string()];
    };
    let mut out = Vec::new();
    for n in &t.namespaces {
        let Some(s) = st.namespaces.iter().find(|s| s.name == n.name && s.present) else {
            out.push(format!("namespace {} is gone", n.name));
            continue;
        };
        for l in &s.missing_links {
            out.push(format!("{}: link {l} is gone", n.name));
        }
    }
    if out.is_empty() && !state_dir(&t.prefix).join(BUILT).exists() {
        // Killed halfway (addresses, routes, NAT or the lab's own services missing), built
        // with --network-only, or by a phoenix from before the marker: built again.
        out.push("its build did not finish".to_string());
    }
    out
}

/// Written in the state dir when a full network build finished (removed when one starts).
const BUILT: &str = "network.built";

/// The topology the running lab `t.prefix` was built with (recorded), else `t`: drift is
/// judged against what was built.
fn as_built(t: &LabTopology) -> LabTopology {
    crate::status::load_state(&t.prefix).unwrap_or_else(|| t.clone())
}

/// The world services of the lab (restarted by [`upkeep`] when gone).
const WORLD: &[&str] = &["dnsmasq-wan", "httpd-wan", "dnsmasq-hv"];

/// What [`upkeep`] would do now, said for the plan's notes (empty: nothing, or no network).
/// A namespace or link that is gone is not judged here ([`network_problems`]: rebuilt).
pub fn upkeep_due(t: &LabTopology) -> Vec<String> {
    if namespaces(&t.prefix).is_empty() {
        return Vec::new();
    }
    let built = as_built(t);
    let mut out: Vec<String> = crate::drift::observe(&built)
        .iter()
        .filter(|d| !matches!(d, crate::drift::Drift::DhcpRouteMissing { .. }))
        .map(ToString::to_string)
        .collect();
    let (live, leases) = services::status(&t.prefix, nic_addresses);
    for s in live
        .iter()
        .filter(|s| !s.alive && WORLD.contains(&s.name.as_str()))
    {
        out.push(format!("{} in {} is not running", s.name, s.ns));
    }
    for l in leases
        .iter()
        .filter(|l| !l.held || !has_default(&l.lease.ns))
    {
        out.push(format!(
            "guest {} {} lost its DHCP lease or its default route",
            l.lease.guest, l.lease.nic
        ));
    }
    out
}

fn nic_addresses(ns: &str, nic: &str) -> Vec<String> {
    crate::status::links(ns)
        .unwrap_or_default()
        .into_iter()
        .find(|l| l.name == nic)
        .map(|l| l.addresses)
        .unwrap_or_default()
}

/// Does `ns` have a default route?
fn has_default(ns: &str) -> bool {
    run("ip", &["-n", ns, "-j", "route", "show", "default"]).is_ok_and(|o| o.contains("\"dst\""))
}

/// The lab's own world kept running (not part of any plan: a node's hypervisor services
/// and the upstream the lab stands in for): the network's drift repaired in place
/// ([`crate::drift`]), the wan's DNS, DHCP and HTTP and the mesh DNS restarted when their
/// process is gone, a DHCP lease (or the default route it gives) a guest lost obtained again.
/// Nothing when the lab's network is not up; what is gone of it is left to the rebuild
/// ([`ensure_network`]). Returns what it did.
pub fn upkeep(t: &LabTopology) -> Result<Vec<String>, LabError> {
    let prefix = t.prefix.as_str();
    if namespaces(prefix).is_empty() {
        return Ok(Vec::new());
    }
    let built = as_built(t);
    let mut said = crate::drift::repair(&built, &crate::drift::observe(&built))?;
    let Some(mut state) = services::load(prefix) else {
        return Ok(said);
    };
    let (live, leases) = services::status(prefix, nic_addresses);
    for s in live
        .iter()
        .filter(|s| !s.alive && WORLD.contains(&s.name.as_str()))
    {
        if let Some(rec) = state.services.iter().find(|r| r.name == s.name) {
            services::restart(prefix, rec)?;
            said.push(format!(
                "restarted {} in {}: it was not running",
                s.name, s.ns
            ));
        }
    }
    let mut renewed = false;
    for l in leases
        .iter()
        .filter(|l| !l.held || !has_default(&l.lease.ns))
    {
        if let Some(rec) = state
            .leases
            .iter_mut()
            .find(|r| r.guest == l.lease.guest && r.nic == l.lease.nic)
        {
            *rec = services::renew(prefix, rec)?;
            renewed = true;
            said.push(format!(
                "renewed the DHCP lease of guest {} {}: the NIC had lost it or its default route",
                rec.guest, rec.nic
            ));
        }
    }
    if renewed {
        services::save(prefix, &state)?;
    }
    Ok(said)
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
    scope: Scope,
    phases: &mut Phases,
) -> Result<
    (
        ServicesState,
        Option<IngressState>,
        Option<crate::swarm::SwarmState>,
    ),
    LabError,
> {
    let dir = state_dir(&t.prefix);
    let _ = std::fs::remove_file(dir.join(BUILT));
    let state = serde_json::to_string_pretty(t).map_err(LabError::State)?;
    let root = dir.join("batch").join("root.ip");
    write(&root, &root_batch(t))?;
    let nat = dir.join("nat.nft");
    write(&nat, &t.nat_ruleset)?;
    // The state file and every resolv.conf (which must exist before anything runs inside, LAB.md:
    // `ip netns exec` bind-mounts it) are written while the kernel builds the namespaces.
    let (files, batch) = std::thread::scope(|s| {
        let files = s.spawn(|| -> Result<(), LabError> {
            write(&dir.join("state.json"), &state)?;
            for n in &t.namespaces {
                write(
                    &Path::new(NETNS_ETC).join(&n.name).join("resolv.conf"),
                    &crate::drift::resolv_conf(t, n),
                )?;
            }
            Ok(())
        });
        let batch = run("ip", &["-batch", &path_str(&root)]);
        (files.join(), batch)
    });
    files.map_err(|_| LabError::Service {
        name: "lab files".into(),
        reason: "the writer thread panicked".into(),
    })??;
    batch?;
    phases.mark("root batch, state and resolv.conf");
    // The NAT ruleset and the guest firewalls load in their own processes while the links and
    // addresses are configured (tables need only their namespace).
    let mut loads: Vec<(Vec<String>, std::process::Child)> = Vec::new();
    let mut load = |ns: &str, file: &Path| -> Result<(), LabError> {
        let argv = vec!["-f".to_string(), path_str(file)];
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        let child = crate::run::spawn_in(ns, "nft", &args)?;
        loads.push((argv, child));
        Ok(())
    };
    load(&t.hv, &nat)?;
    if let Some(d) = d {
        // Guest firewalls: the policy of the `.fw` files as an nftables table per guest.
        for (ns, text) in crate::guestfw::rulesets(d, t) {
            let file = dir.join(format!("fw-{ns}.nft"));
            write(&file, &text)?;
            load(&ns, &file)?;
        }
    }
    // Macvlans are created from the hypervisor's bridges into the guests, by its own batch
    // first; without them the hypervisor is configured over rtnetlink with everything else.
    let hv_macvlans = t.macvlans.iter().any(|m| m.parent_ns == t.hv);
    let hv_batch = if hv_macvlans {
        let hv_file = dir.join("batch").join(format!("{}.ip", t.hv));
        write(&hv_file, &ns_batch(t, &t.hv))?;
        run("ip", &["-n", &t.hv, "-batch", &path_str(&hv_file)]).map(drop)
    } else {
        Ok(())
    };
    let configured = hv_batch.and_then(|()| {
        // Every namespace in-process over rtnetlink (no process per namespace); the
        // hypervisor first, the largest.
        let mut nss: Vec<String> = t
            .namespaces
            .iter()
            .filter(|n| n.name != t.hv)
            .map(|n| n.name.clone())
            .collect();
        nss.insert(0, t.hv.clone());
        crate::netlink::configure(t, &nss, hv_macvlans, 4)
    });
    // The base services start once the addresses exist; the rulesets finish loading meanwhile
    // (the lab's own services talk only to the wan and the hypervisor, which no guest table
    // filters, and nothing is verified before both are done).
    let started = configured.and_then(|()| match scope {
        Scope::Full => services::start(t),
        Scope::NetworkOnly => Ok(ServicesState::default()),
    });
    let mut loaded = Ok(());
    for (argv, child) in loads {
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        if let Err(e) = finish("nft", &args, child) {
            loaded = loaded.and(Err(e));
        }
    }
    let s = started?;
    loaded?;
    crate::drift::record_nat(t)?;
    if scope == Scope::Full {
        write(&dir.join(BUILT), "")?;
    }
    phases.mark("hypervisor batch, namespaces (netlink), NAT, firewalls and services");
    Ok((s, None, None))
}
