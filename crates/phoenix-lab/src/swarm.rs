//! Docker Swarm in the lab: one real dockerd (Debian `docker.io` 20.10) per Swarm VM namespace,
//! the Swarm initialised on the first manager and joined by the other nodes, node labels, and
//! the attachable overlay `traefik-public`; [`checks`] verifies it with real traffic.
//!
//! How each engine runs (LAB.md): `nsenter --net=/run/netns/<ns> --uts=… unshare -m
//! --propagation private dockerd …` — not under `ip netns exec`, which remounts `/sys` and hides the cgroup
//! hierarchy dockerd needs. The private mount namespace keeps dockerd's overlay mounts and its
//! container namespaces' bind mounts out of the root namespace (they vanish with the process);
//! a UTS namespace of its own (held by a `busybox sleep`, see `uts_holder`) carries the VM's
//! name as hostname, which becomes the Swarm node name.
//! Every path is the engine's own, under `/run/phoenix-lab/<prefix>/swarm/g<id>/`: data root,
//! exec root (containerd's state and socket), API socket, pid file, `daemon.json` (which also
//! moves the engine key off the host's `/etc/docker/key.json`, so two engines never share an
//! engine ID). `--dns` is the guest namespace's resolver (the mesh DNS).
//! `--iptables` stays on (the default): the rules land in the guest's own namespace, and the
//! embedded DNS of containers, the `docker_gwbridge` NAT and `--publish mode=host` need them.
//! No registry is ever contacted: the only image is imported (`POST /images/create?fromSrc=-`,
//! what `docker import` does) from a rootfs built from the host's busybox and iputils `ping`
//! (busybox's ping cannot set don't-fragment; iputils' can: `ping -M do`).
//!
//! Addresses: the node address (advertise and data path) is the VM's static address on the
//! mesh bridge when it has one, else its first static address — the rule the mesh DNS uses for
//! Swarm node names. Overlay subnets come from an address pool that overlaps no subnet of the
//! model ([`ADDR_POOLS`]): Docker's default pool 10.0.0.0/8 would hand out 10.0.0.0/24, the
//! seed's management network. The overlay's MTU option is the underlay MTU: Docker's overlay
//! driver subtracts the 50 bytes of VXLAN itself (checked: option 1450 gives containers 1400).
//!
//! Idempotent: a running engine is reused, the image imported only when missing, `init` only
//! when the first manager is in no Swarm, `join` only for non-members, labels updated only when
//! they differ, the network created only when missing — through [`members`], the same code
//! `phoenix swarm` and `sync all --target pve` use on a Proxmox node's engines;
//! [`SwarmState::changes`] lists what was done, empty on a second run.
//! `lab down` stops the engines with everything else in the lab's namespaces (and the
//! containers under their shims, see [`crate::teardown`]).
//! A node whose guest root holds the plan's `daemon.json` (a provisioned Swarm VM) also serves
//! the Engine API over TCP + TLS on 2376 (`tlsverify`) with the server certificate the plan
//! delivered ([`tls`], [`engine::daemon_json`]); a change of those files restarts the engine
//! through the plan's `docker` step ([`start_node`]) or a post-renewal restart.
//! I/O: processes, the Engine API over each engine's unix socket (bollard), the state dir.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Instant;

use bollard::Docker;
use bollard::errors::Error as ApiError;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;
use phoenix_model::model::{DesiredState, Guest, SwarmRole};
use serde::{Deserialize, Serialize};

use crate::topology::LabTopology;
use crate::{LabError, state_dir};

#[path = "swarm_checks.rs"]
pub mod checks;
#[path = "swarm_engine.rs"]
pub mod engine;
#[path = "swarm_observe.rs"]
pub mod observe;
#[path = "swarm_service.rs"]
pub mod service;
#[path = "swarm_tls.rs"]
pub mod tls;
pub use checks::{SwarmCheck, checks};
pub use engine::{
    await_overlay, build_rootfs, daemon_json, dockerd_args, engine_pid, engine_pids, parse_ldd,
    remove_cgroups, settled, settled_in, stop_engine, unsettled, unsettled_in,
};
use engine::{running_engine, start_engine, stop_leftovers, wait_engine};
pub use phoenix_exec::docker::members::ADDR_POOLS;
pub use phoenix_exec::docker::{MANAGER_PORT, is_not_found, members, runtime, stack};
pub use service::{deploy_stand_in, stand_in_running};

/// Is a `dockerd` binary on `PATH` (Debian `docker.io`, installed by `scripts/setup.sh`)?
pub fn dockerd_available() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join("dockerd").is_file()))
}

/// The attachable overlay the ingress proxy and the stacks share.
pub const OVERLAY_NETWORK: &str = "traefik-public";
/// The imported image (repository and tag).
pub const IMAGE_REPO: &str = "phoenix-lab/busybox";
pub const IMAGE_TAG: &str = "1";
/// iputils `ping` inside the image (busybox's ping has no don't-fragment option).
pub const DF_PING: &str = "/usr/bin/ping-df";
/// Bytes of VXLAN encapsulation (outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14).
pub const VXLAN_OVERHEAD: u16 = 50;

/// One Swarm VM of the model, as the lab runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmNode {
    pub guest: u32,
    /// VM name: hostname and Swarm node name.
    pub name: String,
    pub ns: String,
    pub role: SwarmRoleName,
    /// The NIC carrying Swarm traffic and its address (advertise and data path).
    pub nic: String,
    pub addr: Ipv4Addr,
    /// The bridge under that NIC (the underlay) and its MTU.
    pub underlay: String,
    pub underlay_mtu: u16,
    /// The resolver the engine gives containers (`--dns`).
    pub dns: IpAddr,
    pub labels: BTreeMap<String, String>,
    /// The engine's own directory.
    pub dir: PathBuf,
}

/// [`SwarmRole`] with serde (the model's type is serialise-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SwarmRoleName {
    Manager,
    Worker,
}

impl From<SwarmRole> for SwarmRoleName {
    fn from(r: SwarmRole) -> Self {
        match r {
            SwarmRole::Manager => SwarmRoleName::Manager,
            SwarmRole::Worker => SwarmRoleName::Worker,
        }
    }
}

impl std::fmt::Display for SwarmRoleName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SwarmRoleName::Manager => "manager",
            SwarmRoleName::Worker => "worker",
        })
    }
}

impl SwarmNode {
    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("docker.pid")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("dockerd.out")
    }
    /// `name (id)` for messages.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.guest)
    }
}

/// What the lab's Swarm should be. Pure value, computed by [`plan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmPlan {
    pub prefix: String,
    /// Managers first (the first one initialises the Swarm), then workers, each by id.
    pub nodes: Vec<SwarmNode>,
    pub overlay: String,
    /// The overlay's MTU option (the smallest underlay MTU); containers get this − 50.
    pub underlay_mtu: u16,
    pub overlay_mtu: u16,
    pub addr_pool: String,
    /// The rootfs tarball imported as the image.
    pub rootfs_tar: PathBuf,
}

impl SwarmPlan {
    /// The manager that initialises the Swarm and answers for it.
    pub fn leader(&self) -> Option<&SwarmNode> {
        self.nodes.first()
    }
    pub fn node(&self, guest: u32) -> Option<&SwarmNode> {
        self.nodes.iter().find(|n| n.guest == guest)
    }
}

/// The Swarm of `d` in the lab `t`; `None` when the model has no Swarm VM. Pure.
pub fn plan(d: &DesiredState, t: &LabTopology) -> Result<Option<SwarmPlan>, LabError> {
    let ids: Vec<_> = d
        .roles
        .swarm_managers
        .iter()
        .chain(&d.roles.swarm_workers)
        .copied()
        .collect();
    if ids.is_empty() {
        return Ok(None);
    }
    if d.roles.swarm_managers.is_empty() {
        return Err(swarm_err("the model has Swarm workers but no manager"));
    }
    let dir = state_dir(&t.prefix).join("swarm");
    let mut nodes = Vec::new();
    for id in ids {
        let g = d
            .guest(id)
            .ok_or_else(|| swarm_err(format!("no guest {}", id.0)))?;
        nodes.push(node(d, t, g, &dir)?);
    }
    let underlay_mtu = nodes.iter().map(|n| n.underlay_mtu).min().unwrap_or(1500);
    let addr_pool = addr_pool(d)?;
    Ok(Some(SwarmPlan {
        prefix: t.prefix.clone(),
        nodes,
        overlay: OVERLAY_NETWORK.into(),
        underlay_mtu,
        overlay_mtu: underlay_mtu.saturating_sub(VXLAN_OVERHEAD),
        addr_pool: (*addr_pool).to_string(),
        rootfs_tar: dir.join("rootfs.tar"),
    }))
}

/// The Swarm's overlay address pool for `d` ([`members::addr_pool`]).
pub fn addr_pool(d: &DesiredState) -> Result<&'static str, LabError> {
    Ok(members::addr_pool(d)?)
}

fn node(d: &DesiredState, t: &LabTopology, g: &Guest, dir: &Path) -> Result<SwarmNode, LabError> {
    let membership = g
        .swarm
        .as_ref()
        .ok_or_else(|| swarm_err(format!("guest {} has no Swarm role", g.id.0)))?;
    let mesh = d.mesh().map(|b| b.name.as_str());
    let nic = mesh
        .and_then(|m| g.static_on(m))
        .or_else(|| g.nics.iter().find(|n| n.address().is_some()))
        .ok_or_else(|| swarm_err(format!("Swarm VM {} has no static address", g.id.0)))?;
    let addr = match nic.address() {
        Some(IpAddr::V4(a)) => a,
        _ => {
            return Err(swarm_err(format!(
                "Swarm VM {}: no IPv4 node address",
                g.id.0
            )));
        }
    };
    let ns = t
        .namespace_of(&g.id.0.to_string())
        .ok_or_else(|| swarm_err(format!("no lab namespace for guest {}", g.id.0)))?;
    let bridge = d
        .bridge(&nic.bridge)
        .ok_or_else(|| swarm_err(format!("unknown bridge {}", nic.bridge)))?;
    Ok(SwarmNode {
        guest: g.id.0,
        name: g.name.clone(),
        ns: ns.name.clone(),
        role: membership.role.into(),
        nic: nic.name.clone(),
        addr,
        underlay: bridge.name.clone(),
        underlay_mtu: nic.mtu.unwrap_or(bridge.mtu).min(bridge.mtu),
        dns: ns.resolver,
        labels: membership.labels.clone(),
        dir: dir.join(format!("g{}", g.id.0)),
    })
}

pub(crate) fn swarm_err(reason: impl Into<String>) -> LabError {
    LabError::Service {
        name: "swarm".into(),
        reason: reason.into(),
    }
}

pub(crate) fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// An engine as started (or found running) by [`up`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineRecord {
    pub guest: u32,
    pub ns: String,
    pub pid: u32,
    pub socket: PathBuf,
    pub log: PathBuf,
    /// Started by this run (false: found running).
    pub started: bool,
}

/// What [`up`] did; also written to `<state dir>/swarm.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwarmState {
    pub plan: SwarmPlan,
    pub engines: Vec<EngineRecord>,
    /// Every change made, for humans (`swarm init on …`); empty when nothing was to do.
    pub changes: Vec<String>,
    pub elapsed_ms: u128,
    /// Time per phase, milliseconds.
    pub phases: Vec<(String, u128)>,
}

/// Name of the record in the state dir.
pub const SWARM_FILE: &str = "swarm.json";

/// The record of the last [`up`] of lab `prefix`, if any.
pub fn load(prefix: &str) -> Option<SwarmState> {
    let text = std::fs::read_to_string(state_dir(prefix).join(SWARM_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// An Engine API client for `n`'s socket.
pub fn client(n: &SwarmNode) -> Result<Docker, LabError> {
    phoenix_exec::docker::connect_unix(&n.socket())
        .map_err(|e| swarm_err(format!("{} connect: {e}", n.label())))
}

pub(crate) fn api_err(n: &SwarmNode, what: &str, e: ApiError) -> LabError {
    swarm_err(format!("{} {what}: {e}", n.label()))
}

/// Serialises the engine starts of [`start_node`] (they share the image rootfs).
static ENGINE_START: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Start the dockerd of Swarm VM `guest` in the running lab `t` (the plan's `docker` service
/// step), from the guest's own `daemon.json` and TLS files when the plan wrote them
/// ([`engine`]); with `restart` (its files changed in this run) a running engine is stopped
/// and started again. `None` when it already runs and nothing asks for a restart.
pub fn start_node(
    d: &DesiredState,
    t: &LabTopology,
    guest: u32,
    restart: bool,
) -> Result<Option<String>, LabError> {
    crate::require_root()?;
    let plan = plan(d, t)?.ok_or_else(|| swarm_err("the configuration has no Swarm VM"))?;
    let n = plan.node(guest).ok_or_else(|| {
        swarm_err(format!(
            "guest {guest} is not a Swarm node of the configuration"
        ))
    })?;
    let said = match running_engine(n) {
        Some(_) if !restart => return Ok(None),
        Some(pid) => {
            stop_engine(&plan, n.guest, std::time::Duration::from_secs(10))?;
            format!(
                "restarted dockerd for {} (was pid {pid}): its files changed",
                n.label()
            )
        }
        None => {
            stop_leftovers(n);
            format!("started dockerd for {}", n.label())
        }
    };
    {
        // The image rootfs is shared by every node: made by one start.
        let _one = ENGINE_START.lock().unwrap_or_else(|p| p.into_inner());
        build_rootfs(&plan.rootfs_tar)?;
    }
    let pid = start_engine(n)?;
    runtime()?.block_on(wait_engine(n, pid))?;
    Ok(Some(format!("{said} (pid {pid})")))
}

/// Restart the running engine of Swarm node `n` (a post-renewal `systemctl restart docker`
/// inside the guest): `false` when it does not run (its start reads the new files).
pub fn restart_node(n: &SwarmNode) -> Result<bool, LabError> {
    let Some(pid) = engine_pid(n) else {
        return Ok(false);
    };
    engine::stop_pid(pid, std::time::Duration::from_secs(10));
    stop_leftovers(n);
    let pid = start_engine(n)?;
    runtime()?.block_on(wait_engine(n, pid))?;
    Ok(true)
}

/// Bring the Swarm of `d` up in the running lab `t` (after [`crate::up`] or
/// [`crate::realise::realise`]). `None` when the model has no Swarm VM. With
/// `start_engines` false, an engine that does not run is an error naming the guest (the
/// plan's `docker` step starts engines, [`start_node`]), never started here.
pub fn up(
    d: &DesiredState,
    t: &LabTopology,
    start_engines: bool,
) -> Result<Option<SwarmState>, LabError> {
    crate::require_root()?;
    let Some(plan) = plan(d, t)? else {
        return Ok(None);
    };
    if !start_engines {
        let missing: Vec<String> = plan
            .nodes
            .iter()
            .filter(|n| engine_pid(n).is_none())
            .map(SwarmNode::label)
            .collect();
        if !missing.is_empty() {
            return Err(swarm_err(format!(
                "dockerd does not run on {}: nothing in the plan starts it (a `docker` feature's service step, with --provision)",
                missing.join(", ")
            )));
        }
    }
    let start = Instant::now();
    let mut phases = Vec::new();
    let mut mark = {
        let mut last = Instant::now();
        move |name: &str, phases: &mut Vec<(String, u128)>| {
            phases.push((name.to_string(), last.elapsed().as_millis()));
            last = Instant::now();
        }
    };
    let mut changes = Vec::new();
    let rootfs_built = build_rootfs(&plan.rootfs_tar)?;
    if rootfs_built {
        changes.push(format!("built the image rootfs {}", p(&plan.rootfs_tar)));
    }
    mark("rootfs", &mut phases);
    // An engine runs with the files it read at its start; a change restarts it through the
    // plan's `docker` step (or a post-renewal restart), not here.
    let mut engines = Vec::new();
    let mut pending = Vec::new();
    for n in &plan.nodes {
        match running_engine(n) {
            Some(pid) => engines.push(engine_record(n, pid, false)),
            None => {
                stop_leftovers(n);
                pending.push((n, start_engine(n)?));
            }
        }
    }
    let rt = runtime()?;
    rt.block_on(async {
        let waits = pending.iter().map(|(n, pid)| wait_engine(n, *pid));
        for r in futures_util::future::join_all(waits).await {
            r?;
        }
        Ok::<_, LabError>(())
    })?;
    for (n, pid) in pending {
        changes.push(format!("started dockerd for {} (pid {pid})", n.label()));
        engines.push(engine_record(n, pid, true));
    }
    engines.sort_by_key(|e| e.guest);
    mark("engines", &mut phases);
    // The probes' image goes in beside the membership work (the same engines, nothing shared).
    let plan_ref = &plan;
    let (imported, members_done) = std::thread::scope(|scope| {
        let images = scope.spawn(move || {
            let mut said = Vec::new();
            runtime()?.block_on(import_images(plan_ref, &mut said))?;
            Ok::<_, LabError>(said)
        });
        let members_done = converge_members(d, plan_ref, &mut mark, &mut phases);
        let imported = images
            .join()
            .unwrap_or_else(|_| Err(swarm_err("the image import panicked")));
        (imported, members_done)
    });
    changes.extend(imported?);
    changes.extend(members_done?);
    let state = SwarmState {
        plan,
        engines,
        changes,
        elapsed_ms: start.elapsed().as_millis(),
        phases,
    };
    let path = state_dir(&t.prefix).join(SWARM_FILE);
    let text = serde_json::to_string_pretty(&state).map_err(LabError::State)?;
    std::fs::write(&path, text).map_err(|e| LabError::io(&path, e))?;
    Ok(Some(state))
}

/// Membership, labels and the overlay: the same code as on a Proxmox node (`members`).
fn converge_members(
    d: &DesiredState,
    plan: &SwarmPlan,
    mark: &mut impl FnMut(&str, &mut Vec<(String, u128)>),
    phases: &mut Vec<(String, u128)>,
) -> Result<Vec<String>, LabError> {
    let desired = phoenix_plan::swarm::desired(d)
        .ok_or_else(|| swarm_err("the model's Swarm has no node with a static address"))?;
    let clients = plan
        .nodes
        .iter()
        .map(client)
        .collect::<Result<Vec<_>, _>>()?;
    let nodes: Vec<members::NodeEngine> = plan
        .nodes
        .iter()
        .zip(&clients)
        .map(|(n, c)| members::NodeEngine {
            guest: n.guest,
            client: c,
        })
        .collect();
    let mut changes = members::init(&desired, &nodes, &plan.addr_pool)?;
    mark("init", phases);
    changes.extend(members::join(&desired, &nodes)?);
    mark("join and labels", phases);
    changes.extend(members::overlays(&desired, &nodes)?);
    changes.extend(engine::readdress_workers(plan)?);
    mark("network", phases);
    Ok(changes)
}

/// Import the image into every engine that lacks it.
async fn import_images(plan: &SwarmPlan, changes: &mut Vec<String>) -> Result<(), LabError> {
    let image = format!("{IMAGE_REPO}:{IMAGE_TAG}");
    let imports = plan.nodes.iter().map(|n| import_image(n, &plan.rootfs_tar));
    for (n, r) in plan
        .nodes
        .iter()
        .zip(futures_util::future::join_all(imports).await)
    {
        if r? {
            changes.push(format!("imported {image} into {}", n.label()));
        }
    }
    Ok(())
}

fn engine_record(n: &SwarmNode, pid: u32, started: bool) -> EngineRecord {
    EngineRecord {
        guest: n.guest,
        ns: n.ns.clone(),
        pid,
        socket: n.socket(),
        log: n.log(),
        started,
    }
}

/// Import the image into `n`'s engine unless present; true when imported.
async fn import_image(n: &SwarmNode, tar: &Path) -> Result<bool, LabError> {
    let c = client(n)?;
    let image = format!("{IMAGE_REPO}:{IMAGE_TAG}");
    match c.inspect_image(&image).await {
        Ok(_) => return Ok(false),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(api_err(n, "inspect image", e)),
    }
    let bytes = std::fs::read(tar).map_err(|e| LabError::io(tar, e))?;
    let opts = CreateImageOptionsBuilder::new()
        .from_src("-")
        .repo(IMAGE_REPO)
        .tag(IMAGE_TAG)
        .build();
    let mut stream = c.create_image(
        Some(opts),
        Some(bollard::body_full(bytes::Bytes::from(bytes))),
        None,
    );
    while let Some(item) = stream.next().await {
        item.map_err(|e| api_err(n, "import image", e))?;
    }
    Ok(true)
}

/// The overlay options phoenix sets (the underlay MTU; Docker subtracts VXLAN's 50). Pure.
pub fn overlay_options(plan: &SwarmPlan) -> HashMap<String, String> {
    HashMap::from([(
        phoenix_plan::swarm::MTU_OPTION.to_string(),
        plan.underlay_mtu.to_string(),
    )])
}

#[cfg(test)]
#[path = "swarm_tests.rs"]
mod tests;
