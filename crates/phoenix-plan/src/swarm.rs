//! The plan's Docker Swarm part: what the Swarm should be ([`SwarmDesired`], from the model),
//! what it is ([`SwarmObserved`], gathered elsewhere from each node's Engine API), and the
//! ordered actions between the two ([`plan`]): init → join managers → join workers → roles and
//! labels → overlays → secrets → stacks. Nothing to do gives an empty list, so a second
//! `sync` after a converged one reports zero Swarm changes.
//!
//! Rules shared with the lab (`phoenix_lab::swarm::plan`), so that lab and plan agree:
//! - the node address (advertise and data path) is the VM's static address on the mesh bridge
//!   when it has one, else its first static address. The homelab VMs have two NICs (management
//!   `vmbr0` 10.0.0.x and mesh `vmbr100` 172.16.100.x); Swarm traffic, the mesh DNS's node names
//!   and the guest firewalls' 2377/7946/4789 rules all use the mesh address, so the management
//!   NIC must not win just because it is `net0`;
//! - the overlay's `com.docker.network.driver.mtu` option is the smallest underlay MTU of the
//!   nodes: Docker's overlay driver subtracts the 50 bytes of VXLAN itself, so containers get
//!   underlay − 50 ([`overlay_mtu_option`], [`container_mtu`]).
//!
//! Secrets are planned by name and content hash only: the caller hashes the content it can read
//! (certificate files, the admin password) and passes the hashes in; no secret value ever
//! reaches a desired value, an action or a reason. Secrets are immutable in Swarm, so a new
//! content is a new versioned secret `<name>-<first 12 hex of sha256>` and the services that use
//! it are updated. No I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use phoenix_model::model::{CertKind, DesiredState, Guest, GuestId, SwarmRole};
use serde::{Deserialize, Serialize};

/// The attachable overlay the ingress proxy and the stacks share.
pub const OVERLAY_NETWORK: &str = "traefik-public";
/// Bytes of VXLAN encapsulation (outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14).
pub const VXLAN_OVERHEAD: u16 = 50;
/// The overlay option carrying the MTU.
pub const MTU_OPTION: &str = "com.docker.network.driver.mtu";
/// Label with the SHA-256 (hex) of a secret's content.
pub const LABEL_SECRET_HASH: &str = "phoenix.sha256";
/// Label with the SHA-256 (hex) of a service's spec.
pub const LABEL_SPEC_HASH: &str = "phoenix.spec.sha256";
/// Label `docker stack deploy` puts on every object of a stack.
pub const LABEL_STACK_NAMESPACE: &str = "com.docker.stack.namespace";
/// MTU Docker assumes for an overlay without the option.
const DEFAULT_UNDERLAY_MTU: u16 = 1500;

/// One Swarm VM as the model wants it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredNode {
    pub guest: GuestId,
    /// VM name: hostname and Swarm node name.
    pub name: String,
    pub role: SwarmRole,
    /// The NIC carrying Swarm traffic (`eth1`) and its bridge.
    pub nic: String,
    pub bridge: String,
    pub advertise_addr: IpAddr,
    pub data_path_addr: IpAddr,
    /// MTU of that NIC's underlay (the NIC's own MTU when lower than its bridge's).
    pub underlay_mtu: u16,
    pub labels: BTreeMap<String, String>,
}

/// An overlay network the Swarm needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredOverlay {
    pub name: String,
    pub attachable: bool,
    /// The value of [`MTU_OPTION`] (the underlay MTU).
    pub mtu_option: u16,
    /// What containers get (`mtu_option` − 50).
    pub container_mtu: u16,
}

/// Where a secret's content comes from. Carries references, never values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum SecretSource {
    /// The certificate file of a manifest entry (host path as the manifest writes it).
    Certificate {
        guest: GuestId,
        common_name: String,
        path: String,
    },
    /// The key file of a manifest entry.
    Key {
        guest: GuestId,
        common_name: String,
        path: String,
    },
    /// The CA's root certificate.
    CaRoot,
    /// `portainer_api.admin_password`: its reference (`env:NAME`, `file:PATH`, or redacted).
    AdminPassword { reference: String },
    /// Nothing in the model says where it comes from.
    Unknown { why: String },
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Certificate {
                guest, common_name, ..
            } => write!(f, "certificate {common_name} of guest {guest}"),
            SecretSource::Key {
                guest, common_name, ..
            } => write!(f, "key of {common_name} of guest {guest}"),
            SecretSource::CaRoot => f.write_str("the CA root certificate"),
            SecretSource::AdminPassword { reference } => {
                write!(f, "portainer_api.admin_password ({reference})")
            }
            SecretSource::Unknown { why } => write!(f, "unknown source: {why}"),
        }
    }
}

/// An external secret a stack names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredSecret {
    /// The name the compose file uses (the base of the versioned names).
    pub name: String,
    pub source: SecretSource,
    /// Stacks (namespaces) that use it.
    pub stacks: Vec<String>,
}

/// One stack deployment `<env>_<stack>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredStack {
    /// The namespace: `<env>_<stack>`, as the bash system deployed it.
    pub namespace: String,
    pub stack: String,
    pub environment: String,
    /// The VM whose `docker_stacks` lists it, and the manager it is deployed through.
    pub guest: GuestId,
    pub manager: String,
    /// Full service names `<namespace>_<service>`.
    pub services: Vec<String>,
    /// External secrets and networks it needs.
    pub secrets: Vec<String>,
    pub networks: Vec<String>,
    /// Names of the environment's variables (values stay in the model).
    pub variables: Vec<String>,
}

/// What the Swarm should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwarmDesired {
    /// Managers first (the first one initialises the Swarm), then workers, each by id.
    pub nodes: Vec<DesiredNode>,
    pub overlays: Vec<DesiredOverlay>,
    pub secrets: Vec<DesiredSecret>,
    pub stacks: Vec<DesiredStack>,
}

impl SwarmDesired {
    /// The manager that initialises the Swarm and deploys the stacks.
    pub fn leader(&self) -> Option<&DesiredNode> {
        self.nodes.first()
    }
}

/// The node address of `g`: its static address on the mesh bridge when it has one, else its
/// first static address (the rule of `phoenix_lab::swarm::plan` and the mesh DNS). Pure.
pub fn node_nic<'a>(d: &DesiredState, g: &'a Guest) -> Option<&'a phoenix_model::model::Nic> {
    let mesh = d.mesh().map(|b| b.name.as_str());
    mesh.and_then(|m| g.static_on(m))
        .or_else(|| g.nics.iter().find(|n| n.address().is_some()))
}

/// The overlay MTU option for the given underlay MTUs: the smallest of them (1500 when none).
pub fn overlay_mtu_option(underlays: impl IntoIterator<Item = u16>) -> u16 {
    underlays.into_iter().min().unwrap_or(DEFAULT_UNDERLAY_MTU)
}

/// The MTU containers get on an overlay with `option`.
pub fn container_mtu(option: u16) -> u16 {
    option.saturating_sub(VXLAN_OVERHEAD)
}

/// `<base>-<first 12 hex of hash>`: the versioned name of a secret with content hash `hash`.
pub fn versioned_secret(base: &str, hash: &str) -> String {
    let short: String = hash.chars().take(12).collect();
    format!("{base}-{short}")
}

/// The Swarm of `d`; `None` when the model has no Swarm VM with a static address. Nodes
/// without a usable address are left out (validation reports them).
pub fn desired(d: &DesiredState) -> Option<SwarmDesired> {
    let ids = d.roles.swarm_managers.iter().chain(&d.roles.swarm_workers);
    let nodes: Vec<DesiredNode> = ids
        .filter_map(|id| d.guest(*id))
        .filter_map(|g| desired_node(d, g))
        .collect();
    let leader = nodes.iter().find(|n| n.role == SwarmRole::Manager)?.clone();
    let mtu = overlay_mtu_option(nodes.iter().map(|n| n.underlay_mtu));
    let stacks = desired_stacks(d, &nodes, &leader);
    let mut networks: BTreeSet<String> = BTreeSet::from([OVERLAY_NETWORK.to_string()]);
    networks.extend(stacks.iter().flat_map(|s| s.networks.iter().cloned()));
    let mut overlays: Vec<DesiredOverlay> = networks
        .into_iter()
        .map(|name| DesiredOverlay {
            name,
            attachable: true,
            mtu_option: mtu,
            container_mtu: container_mtu(mtu),
        })
        .collect();
    // traefik-public first, the stacks' own external networks after it.
    overlays.sort_by_key(|o| o.name != OVERLAY_NETWORK);
    let secrets = desired_secrets(d, &stacks, &leader);
    Some(SwarmDesired {
        nodes,
        overlays,
        secrets,
        stacks,
    })
}

fn desired_node(d: &DesiredState, g: &Guest) -> Option<DesiredNode> {
    let m = g.swarm.as_ref()?;
    let nic = node_nic(d, g)?;
    let addr = nic.address()?;
    let bridge = d.bridge(&nic.bridge);
    let bridge_mtu = bridge.map_or(DEFAULT_UNDERLAY_MTU, |b| b.mtu);
    Some(DesiredNode {
        guest: g.id,
        name: g.name.clone(),
        role: m.role,
        nic: nic.name.clone(),
        bridge: nic.bridge.clone(),
        advertise_addr: addr,
        data_path_addr: addr,
        underlay_mtu: nic.mtu.unwrap_or(bridge_mtu).min(bridge_mtu),
        labels: m.labels.clone(),
    })
}

/// The names under a compose top-level section (`secrets`, `networks`) marked external; an
/// explicit `name:` wins over the key (compose 3.5+).
fn external_names(compose: &serde_json::Value, section: &str) -> Vec<String> {
    let Some(map) = compose.get(section).and_then(|s| s.as_object()) else {
        return Vec::new();
    };
    let mut out: Vec<String> = map
        .iter()
        .filter_map(|(key, v)| {
            let ext = v.get("external")?;
            let named_in_ext = ext.get("name").and_then(|n| n.as_str());
            if !(ext.as_bool() == Some(true) || ext.is_object()) {
                return None;
            }
            let name = v
                .get("name")
                .and_then(|n| n.as_str())
                .or(named_in_ext)
                .unwrap_or(key);
            Some(name.to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn desired_stacks(
    d: &DesiredState,
    nodes: &[DesiredNode],
    leader: &DesiredNode,
) -> Vec<DesiredStack> {
    let mut out = Vec::new();
    for n in nodes {
        let Some(g) = d.guest(n.guest) else { continue };
        for name in &g.docker_stacks {
            let Some(stack) = d.stacks.get(name) else {
                continue;
            };
            let compose = stack.compose.as_ref();
            let services: Vec<String> = compose
                .and_then(|c| c.get("services"))
                .and_then(|s| s.as_object())
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            let secrets = compose.map_or_else(Vec::new, |c| external_names(c, "secrets"));
            let networks = compose.map_or_else(Vec::new, |c| external_names(c, "networks"));
            for (env, e) in &stack.environments {
                let namespace = format!("{env}_{name}");
                out.push(DesiredStack {
                    services: services
                        .iter()
                        .map(|s| format!("{namespace}_{s}"))
                        .collect(),
                    namespace,
                    stack: name.clone(),
                    environment: env.clone(),
                    guest: g.id,
                    manager: leader.name.clone(),
                    secrets: secrets.clone(),
                    networks: networks.clone(),
                    variables: e.variables.iter().map(|(k, _)| k.clone()).collect(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    out.dedup_by(|a, b| a.namespace == b.namespace);
    out
}

fn desired_secrets(
    d: &DesiredState,
    stacks: &[DesiredStack],
    leader: &DesiredNode,
) -> Vec<DesiredSecret> {
    let mut users: BTreeMap<String, (GuestId, Vec<String>)> = BTreeMap::new();
    for s in stacks {
        for name in &s.secrets {
            let e = users
                .entry(name.clone())
                .or_insert_with(|| (s.guest, Vec::new()));
            e.1.push(s.namespace.clone());
        }
    }
    users
        .into_iter()
        .map(|(name, (guest, stacks))| DesiredSecret {
            source: secret_source(d, &name, guest, leader.guest),
            name,
            stacks,
        })
        .collect()
}

/// Map a secret name to its source by its words (`portainer_tls_cert.pem` → cert, key, ca,
/// password; `client` picks the guest's client certificate). TLS material comes from the
/// manifest entry of the guest that deploys the stack, else of the first manager.
fn secret_source(d: &DesiredState, name: &str, guest: GuestId, leader: GuestId) -> SecretSource {
    let lower = name.to_ascii_lowercase();
    let words: Vec<&str> = lower.split(['_', '-', '.']).collect();
    let has = |w: &str| words.contains(&w);
    if has("password") {
        return match d.portainer.as_ref().and_then(|p| p.admin_password.as_ref()) {
            Some(s) => SecretSource::AdminPassword {
                reference: s.to_string(),
            },
            None => SecretSource::Unknown {
                why: "the configuration has no portainer_api.admin_password".into(),
            },
        };
    }
    if has("ca") {
        return SecretSource::CaRoot;
    }
    let want_kind = if has("client") {
        CertKind::Client
    } else {
        CertKind::Server
    };
    // A guest may hold several (Portainer's and the Docker daemon's on 1001 upstream): the
    // one whose common name starts with the secret's first word wins, else the first.
    let first = words.first().copied().unwrap_or_default();
    let cert = [guest, leader].iter().find_map(|g| {
        let mut of_guest = d
            .certificates
            .iter()
            .filter(|c| c.guest == *g && c.kind == want_kind);
        let all: Vec<_> = of_guest.clone().collect();
        of_guest
            .find(|c| !first.is_empty() && c.common_name.to_ascii_lowercase().starts_with(first))
            .or_else(|| all.first().copied())
    });
    let is_key = has("key");
    let is_cert = has("cert") || has("crt") || has("certificate");
    match (cert, is_key, is_cert) {
        (Some(c), true, _) => SecretSource::Key {
            guest: c.guest,
            common_name: c.common_name.clone(),
            path: c.key_path.clone(),
        },
        (Some(c), false, true) => SecretSource::Certificate {
            guest: c.guest,
            common_name: c.common_name.clone(),
            path: c.cert_path.clone(),
        },
        (None, true, _) | (None, false, true) => SecretSource::Unknown {
            why: format!("no {want_kind:?} certificate for guest {guest} in the manifest")
                .to_lowercase(),
        },
        _ => SecretSource::Unknown {
            why: "the name says neither cert, key, ca nor password".into(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Observed

/// A node's own view of its Swarm membership (`docker info`'s `Swarm.LocalNodeState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocalState {
    Inactive,
    Pending,
    Active,
    Error,
    Locked,
}

impl fmt::Display for LocalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LocalState::Inactive => "inactive",
            LocalState::Pending => "pending",
            LocalState::Active => "active",
            LocalState::Error => "error",
            LocalState::Locked => "locked",
        })
    }
}

/// What one node's engine says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedNode {
    pub guest: u32,
    pub name: String,
    /// `Ok(())` when the Engine API answered, else why not.
    pub engine: Result<(), String>,
    /// `None` when the engine did not answer.
    pub local_state: Option<LocalState>,
    pub node_id: String,
    pub is_manager: bool,
    /// Its address as the Swarm knows it (`Swarm.NodeAddr`).
    pub node_addr: String,
    /// Its labels as the engine reports them (the cluster's view is in [`ClusterNode`]).
    pub labels: BTreeMap<String, String>,
}

/// A node as the managers list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNode {
    pub id: String,
    pub hostname: String,
    /// `manager` / `worker`.
    pub role: String,
    /// `active` / `pause` / `drain`.
    pub availability: String,
    /// `ready` / `down` / `unknown` / `disconnected`.
    pub state: String,
    pub addr: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedNetwork {
    pub name: String,
    pub driver: String,
    pub attachable: bool,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedSecret {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedService {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Names of the secrets its tasks mount.
    #[serde(default)]
    pub secrets: Vec<String>,
}

impl ObservedService {
    pub fn namespace(&self) -> Option<&str> {
        self.labels.get(LABEL_STACK_NAMESPACE).map(String::as_str)
    }
    pub fn spec_hash(&self) -> Option<&str> {
        self.labels.get(LABEL_SPEC_HASH).map(String::as_str)
    }
}

/// The Swarm as a manager sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterObserved {
    /// The node that answered.
    pub via: String,
    pub nodes: Vec<ClusterNode>,
    pub networks: Vec<ObservedNetwork>,
    pub secrets: Vec<ObservedSecret>,
    pub services: Vec<ObservedService>,
}

/// What exists: each node's own view, and the cluster's from the first manager that answered
/// (`None`: no engine is a reachable manager).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmObserved {
    pub nodes: Vec<ObservedNode>,
    pub cluster: Option<ClusterObserved>,
}

impl SwarmObserved {
    pub fn node(&self, name: &str) -> Option<&ObservedNode> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

// ---------------------------------------------------------------------------------------------
// Plan

/// What a Swarm action does; the declaration order is the order of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SwarmActionKind {
    /// Start (or repair) a node's dockerd: its Engine API did not answer.
    Engine,
    Init,
    Join,
    /// Promote or demote a member.
    Role,
    Label,
    Overlay,
    Secret,
    StackDeploy,
    StackUpdate,
    StackRemove,
}

impl fmt::Display for SwarmActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SwarmActionKind::Engine => "start engine",
            SwarmActionKind::Init => "swarm init on",
            SwarmActionKind::Join => "swarm join",
            SwarmActionKind::Role => "node role",
            SwarmActionKind::Label => "node labels",
            SwarmActionKind::Overlay => "overlay",
            SwarmActionKind::Secret => "secret",
            SwarmActionKind::StackDeploy => "stack deploy",
            SwarmActionKind::StackUpdate => "stack update",
            SwarmActionKind::StackRemove => "stack remove",
        })
    }
}

/// One Swarm step: what, on which subject (node, network, secret or stack), and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwarmAction {
    pub kind: SwarmActionKind,
    pub subject: String,
    pub reason: String,
}

impl SwarmAction {
    fn new(kind: SwarmActionKind, subject: &str, reason: String) -> SwarmAction {
        SwarmAction {
            kind,
            subject: subject.to_string(),
            reason,
        }
    }

    /// How it counts in the summary line (as [`crate::action::Action::effect`]).
    pub fn effect(&self) -> crate::action::Effect {
        use crate::action::Effect;
        match self.kind {
            SwarmActionKind::Init | SwarmActionKind::Join | SwarmActionKind::StackDeploy => {
                Effect::Create
            }
            SwarmActionKind::Overlay | SwarmActionKind::Secret
                if self.reason.contains("missing") =>
            {
                Effect::Create
            }
            SwarmActionKind::StackRemove => Effect::Delete,
            _ => Effect::Change,
        }
    }
}

impl fmt::Display for SwarmAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.subject, self.reason)
    }
}

/// The Swarm steps from `observed` to `desired`, in order: engines, init, join managers, join
/// workers, roles and labels, overlays, secrets, stacks. `stack_hashes` maps a full service
/// name (`production_portainer_service_portainer`) to the hash of its desired spec,
/// `secret_hashes` a secret's base name to the SHA-256 of its desired content; a missing entry
/// means "not known", and that item is then only created when missing, never compared.
pub fn plan(
    desired: &SwarmDesired,
    observed: &SwarmObserved,
    stack_hashes: &BTreeMap<String, String>,
    secret_hashes: &BTreeMap<String, String>,
) -> Vec<SwarmAction> {
    let Some(leader) = desired.leader() else {
        return Vec::new();
    };
    let mut out = engines(desired, observed);
    let joining = membership(desired, leader, observed, &mut out);
    nodes(desired, observed, &joining, &mut out);
    overlays(desired, observed, &mut out);
    let rotated = secrets(desired, observed, secret_hashes, &mut out);
    stacks(
        desired,
        observed,
        stack_hashes,
        secret_hashes,
        &rotated,
        &mut out,
    );
    // Stable: within a kind the order above (managers before workers) is kept.
    out.sort_by_key(|a| a.kind);
    out
}

fn role_name(r: SwarmRole) -> &'static str {
    match r {
        SwarmRole::Manager => "manager",
        SwarmRole::Worker => "worker",
    }
}

fn cluster_node<'a>(
    o: &'a SwarmObserved,
    name: &str,
    node: Option<&ObservedNode>,
) -> Option<&'a ClusterNode> {
    let c = o.cluster.as_ref()?;
    let id = node.map(|n| n.node_id.as_str()).filter(|i| !i.is_empty());
    c.nodes
        .iter()
        .find(|cn| id.is_some_and(|i| cn.id == i))
        .or_else(|| c.nodes.iter().find(|cn| cn.hostname == name))
}

fn engines(desired: &SwarmDesired, observed: &SwarmObserved) -> Vec<SwarmAction> {
    let mut out = Vec::new();
    for n in &desired.nodes {
        let Some(o) = observed.node(&n.name) else {
            continue;
        };
        if let Err(e) = &o.engine {
            let seen = match cluster_node(observed, &n.name, Some(o)) {
                Some(c) => format!("; the managers see it {}", c.state),
                None => String::new(),
            };
            out.push(SwarmAction::new(
                SwarmActionKind::Engine,
                &n.name,
                format!("engine unreachable on {} ({e}){seen}", n.name),
            ));
        }
    }
    out
}

/// Init and joins; returns the nodes that become members in this plan.
fn membership(
    desired: &SwarmDesired,
    leader: &DesiredNode,
    observed: &SwarmObserved,
    out: &mut Vec<SwarmAction>,
) -> BTreeSet<String> {
    let mut joining = BTreeSet::new();
    let any_active = observed
        .nodes
        .iter()
        .any(|n| n.local_state == Some(LocalState::Active));
    if observed.cluster.is_none() && !any_active {
        let lo = observed.node(&leader.name);
        let state = match lo {
            None => Some("not observed".to_string()),
            Some(o) if o.engine.is_err() => None,
            Some(o) => Some(format!(
                "engine state {}",
                o.local_state.unwrap_or(LocalState::Error)
            )),
        };
        if let Some(state) = state {
            out.push(SwarmAction::new(
                SwarmActionKind::Init,
                &leader.name,
                format!(
                    "no Swarm on {} ({state}); advertise and data path {} on {}",
                    leader.name, leader.advertise_addr, leader.nic
                ),
            ));
            joining.insert(leader.name.clone());
        }
    }
    // Joined through the leader when it initialises now; else through the manager that
    // answered (the leader itself may be the one that left).
    let via = match &observed.cluster {
        Some(c) if joining.is_empty() => c.via.as_str(),
        _ => leader.name.as_str(),
    };
    let skip = usize::from(!joining.is_empty() || observed.cluster.is_none());
    let mut others: Vec<&DesiredNode> = desired.nodes.iter().skip(skip).collect();
    others.sort_by_key(|n| n.role != SwarmRole::Manager);
    for n in others {
        let o = observed.node(&n.name);
        let known = cluster_node(observed, &n.name, o).is_some();
        let why = match o {
            None if known => None,
            None => Some("not observed".to_string()),
            Some(o) => match (&o.engine, o.local_state) {
                (Err(_), _) if known => None,
                (Err(_), _) => Some("engine unreachable".to_string()),
                (Ok(()), Some(LocalState::Active | LocalState::Pending)) => {
                    (observed.cluster.is_some() && !known)
                        .then(|| format!("in another Swarm as node {} → leave first", o.node_id))
                }
                (Ok(()), s) => Some(format!("engine state {}", s.unwrap_or(LocalState::Error))),
            },
        };
        if let Some(why) = why {
            let role = role_name(n.role);
            out.push(SwarmAction::new(
                SwarmActionKind::Join,
                &n.name,
                format!(
                    "{role} {} not in the Swarm ({why}); join {} as {role}, advertise and data path {} on {}",
                    n.name, via, n.advertise_addr, n.nic
                ),
            ));
            joining.insert(n.name.clone());
        }
    }
    joining
}

fn label_text(l: &BTreeMap<String, String>) -> String {
    if l.is_empty() {
        return "none".into();
    }
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Roles and labels of members (and the labels of nodes joining now).
fn nodes(
    desired: &SwarmDesired,
    observed: &SwarmObserved,
    joining: &BTreeSet<String>,
    out: &mut Vec<SwarmAction>,
) {
    for n in &desired.nodes {
        let entry = cluster_node(observed, &n.name, observed.node(&n.name));
        let Some(c) = entry.filter(|_| !joining.contains(&n.name)) else {
            if !n.labels.is_empty() {
                out.push(SwarmAction::new(
                    SwarmActionKind::Label,
                    &n.name,
                    format!(
                        "labels {} missing (not in the Swarm yet)",
                        label_text(&n.labels)
                    ),
                ));
            }
            continue;
        };
        let want = role_name(n.role);
        if !c.role.eq_ignore_ascii_case(want) {
            let verb = if n.role == SwarmRole::Manager {
                "promote"
            } else {
                "demote"
            };
            out.push(SwarmAction::new(
                SwarmActionKind::Role,
                &n.name,
                format!("{} is a {}, want {want} → {verb}", n.name, c.role),
            ));
        }
        let has = label_text(&c.labels);
        let mut why = Vec::new();
        for (k, v) in &n.labels {
            match c.labels.get(k) {
                None => why.push(format!("label {k}={v} missing (has {has})")),
                Some(h) if h != v => why.push(format!("label {k}={h}, want {k}={v}")),
                Some(_) => {}
            }
        }
        for (k, v) in &c.labels {
            if !n.labels.contains_key(k) {
                why.push(format!("label {k}={v} not in the config → remove"));
            }
        }
        if !why.is_empty() {
            out.push(SwarmAction::new(
                SwarmActionKind::Label,
                &n.name,
                why.join("; "),
            ));
        }
    }
}

fn overlays(desired: &SwarmDesired, observed: &SwarmObserved, out: &mut Vec<SwarmAction>) {
    let networks = observed.cluster.as_ref().map(|c| c.networks.as_slice());
    for want in &desired.overlays {
        let have = networks
            .unwrap_or_default()
            .iter()
            .find(|n| n.name == want.name);
        let Some(have) = have else {
            out.push(SwarmAction::new(
                SwarmActionKind::Overlay,
                &want.name,
                format!(
                    "overlay {} missing → create (attachable, MTU option {}: containers {})",
                    want.name, want.mtu_option, want.container_mtu
                ),
            ));
            continue;
        };
        let mut why = Vec::new();
        if have.driver != "overlay" {
            why.push(format!("driver {}, want overlay", have.driver));
        }
        if have.attachable != want.attachable {
            why.push(if want.attachable {
                "not attachable".to_string()
            } else {
                "attachable".to_string()
            });
        }
        let option = have.options.get(MTU_OPTION);
        let mtu = option
            .and_then(|m| m.parse::<u16>().ok())
            .unwrap_or(DEFAULT_UNDERLAY_MTU);
        if mtu != want.mtu_option {
            let shown = option.map_or_else(|| format!("{mtu} (default)"), |m| m.clone());
            why.push(format!(
                "overlay MTU {shown} (containers {}), want {} (containers {})",
                container_mtu(mtu),
                want.mtu_option,
                want.container_mtu
            ));
        }
        if !why.is_empty() {
            out.push(SwarmAction::new(
                SwarmActionKind::Overlay,
                &want.name,
                format!("{} → recreate (detach services first)", why.join("; ")),
            ));
        }
    }
}

/// Is `name` the secret `base` or one of its versions `<base>-<12 hex>`?
fn is_version_of(name: &str, base: &str) -> bool {
    name == base
        || name
            .strip_prefix(base)
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(|h| h.len() == 12 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The secret (of `base`'s versions) holding content `hash`, if any.
fn current_secret<'a>(o: &'a SwarmObserved, base: &str, hash: &str) -> Option<&'a str> {
    o.cluster.as_ref()?.secrets.iter().find_map(|s| {
        (is_version_of(&s.name, base)
            && s.labels.get(LABEL_SECRET_HASH).map(String::as_str) == Some(hash))
        .then_some(s.name.as_str())
    })
}

/// Secret creations and rotations; returns the rotated secrets' base names.
fn secrets(
    desired: &SwarmDesired,
    observed: &SwarmObserved,
    hashes: &BTreeMap<String, String>,
    out: &mut Vec<SwarmAction>,
) -> BTreeSet<String> {
    let mut rotated = BTreeSet::new();
    let observed_secrets = observed.cluster.as_ref().map(|c| c.secrets.as_slice());
    for want in &desired.secrets {
        let versions: Vec<&ObservedSecret> = observed_secrets
            .unwrap_or_default()
            .iter()
            .filter(|s| is_version_of(&s.name, &want.name))
            .collect();
        let hash = hashes.get(&want.name);
        let target = hash.map_or_else(
            || format!("{}-<hash>", want.name),
            |h| versioned_secret(&want.name, h),
        );
        if versions.is_empty() {
            let unread = if hash.is_none() {
                " (content not read yet)"
            } else {
                ""
            };
            out.push(SwarmAction::new(
                SwarmActionKind::Secret,
                &want.name,
                format!(
                    "secret {} missing → create {target} from {}{unread}",
                    want.name, want.source
                ),
            ));
            continue;
        }
        let Some(h) = hash else { continue };
        if current_secret(observed, &want.name, h).is_some() {
            continue;
        }
        let labelled = versions
            .iter()
            .any(|s| s.labels.contains_key(LABEL_SECRET_HASH));
        let why = if !labelled {
            format!(
                "secret {} has no {LABEL_SECRET_HASH} label (content unknown)",
                want.name
            )
        } else {
            let cause = match want.source {
                SecretSource::Certificate { .. } | SecretSource::Key { .. } => "PKI renewal",
                SecretSource::CaRoot => "new CA root",
                SecretSource::AdminPassword { .. } => "password changed",
                SecretSource::Unknown { .. } => "source changed",
            };
            format!("secret {} content changed ({cause})", want.name)
        };
        out.push(SwarmAction::new(
            SwarmActionKind::Secret,
            &want.name,
            format!(
                "{why} → rotate: create {target}, update services of {}",
                want.stacks.join(", ")
            ),
        ));
        rotated.insert(want.name.clone());
    }
    rotated
}

fn stacks(
    desired: &SwarmDesired,
    observed: &SwarmObserved,
    stack_hashes: &BTreeMap<String, String>,
    secret_hashes: &BTreeMap<String, String>,
    rotated: &BTreeSet<String>,
    out: &mut Vec<SwarmAction>,
) {
    let services = observed
        .cluster
        .as_ref()
        .map(|c| c.services.as_slice())
        .unwrap_or_default();
    for want in &desired.stacks {
        let have: Vec<&ObservedService> = services
            .iter()
            .filter(|s| s.namespace() == Some(want.namespace.as_str()))
            .collect();
        if have.is_empty() {
            let names: Vec<&str> = want
                .services
                .iter()
                .map(|s| s.strip_prefix(&format!("{}_", want.namespace)).unwrap_or(s))
                .collect();
            out.push(SwarmAction::new(
                SwarmActionKind::StackDeploy,
                &want.namespace,
                format!(
                    "stack {} not deployed (services {}) → deploy on {}",
                    want.namespace,
                    names.join(", "),
                    want.manager
                ),
            ));
            continue;
        }
        let why = stack_drift(want, &have, observed, stack_hashes, secret_hashes, rotated);
        if !why.is_empty() {
            out.push(SwarmAction::new(
                SwarmActionKind::StackUpdate,
                &want.namespace,
                format!("stack {}: {}", want.namespace, why.join("; ")),
            ));
        }
    }
    let wanted: BTreeSet<&str> = desired
        .stacks
        .iter()
        .map(|s| s.namespace.as_str())
        .collect();
    let orphans: BTreeSet<&str> = services
        .iter()
        .filter_map(ObservedService::namespace)
        .filter(|ns| !wanted.contains(ns))
        .collect();
    for ns in orphans {
        out.push(SwarmAction::new(
            SwarmActionKind::StackRemove,
            ns,
            format!("stack {ns} no longer in the config → remove"),
        ));
    }
}

fn stack_drift(
    want: &DesiredStack,
    have: &[&ObservedService],
    observed: &SwarmObserved,
    stack_hashes: &BTreeMap<String, String>,
    secret_hashes: &BTreeMap<String, String>,
    rotated: &BTreeSet<String>,
) -> Vec<String> {
    let mut why = Vec::new();
    for svc in &want.services {
        let Some(o) = have.iter().find(|s| &s.name == svc) else {
            why.push(format!("service {svc} missing"));
            continue;
        };
        if let Some(h) = stack_hashes.get(svc) {
            match o.spec_hash() {
                Some(oh) if oh == h => {}
                Some(_) => why.push(format!("service {svc} spec changed")),
                None => why.push(format!("service {svc} has no {LABEL_SPEC_HASH} label")),
            }
        }
        for base in &want.secrets {
            if rotated.contains(base) {
                continue;
            }
            let current = secret_hashes
                .get(base)
                .and_then(|h| current_secret(observed, base, h));
            let stale = o
                .secrets
                .iter()
                .find(|s| is_version_of(s, base) && Some(s.as_str()) != current);
            if let (Some(c), Some(s)) = (current, stale) {
                why.push(format!("service {svc} uses secret {s}, current is {c}"));
            }
        }
    }
    for base in &want.secrets {
        if rotated.contains(base) {
            why.push(format!("secret {base} rotated"));
        }
    }
    for o in have {
        if !want.services.contains(&o.name) {
            why.push(format!("service {} no longer in the compose file", o.name));
        }
    }
    why
}

#[cfg(test)]
#[path = "swarm_tests.rs"]
mod tests;
