//! Proxmox VE firewall files at their real paths: `/etc/pve/firewall/cluster.fw` (options,
//! aliases for every guest address, ipsets, the operator's cluster rules),
//! `/etc/pve/nodes/NODE/host.fw` (management access and mesh DNS on the hypervisor) and
//! `/etc/pve/firewall/VMID.fw` for every guest (options and rules).
//!
//! **Rule identity.** Proxmox rules have no identity but their position; phoenix writes whole
//! files in a stable order and treats the comment as the rule's identity: a rule without a
//! comment gets one describing what it matches, and a comment used twice in one file gets a
//! deterministic ` (2)`, ` (3)` suffix. Exact duplicates (same match, see
//! [`FirewallRule::match_key`]) are written once: the second could never match anything new.
//!
//! **Derived rules (decision).** The rules the platform needs are *not* added to the model;
//! [`derived_rules`] computes them from the roles and current addresses, each with a stable
//! comment starting `phoenix:`, and they are merged *after* the operator's rules (the
//! operator's explicit choices match first) skipping exact duplicates. They cover: management
//! access (8006/22/tcp from the management subnet) and mesh DNS (53 tcp+udp from the mesh to
//! the mesh gateway) on the host, so enabling the cluster firewall never locks the operator
//! out; Docker Swarm (2377/tcp to managers, 7946/tcp+udp, 4789/udp) between Swarm nodes; the
//! Swarm nodes' Engine API over TLS (2376/tcp) from the hypervisor's mesh address (phoenix
//! manages the Swarm from there); the
//! gateway on 80/443 from anywhere; Traefik's entrypoints only from the gateway (the
//! `traefik` dashboard entrypoint is not opened); each routed service's port only from
//! Traefik; the CA's port from the guests that hold certificates. Sources and destinations
//! are cluster aliases and ipsets rendered from the model, so rules follow address changes.
//!
//! **Effective filtering.** A guest NIC is filtered only when the cluster firewall, the guest's
//! firewall and the NIC's `firewall=1` are all on; [`filtering`] reports, per guest, whether
//! that holds and what is off when the guest has rules. Macvlan NICs bypass the bridge and
//! are never filtered.
//!
//! No I/O. Relied on: <https://pve.proxmox.com/wiki/Firewall> and
//! <https://pve.proxmox.com/pve-docs/chapter-pve-firewall.html> (file format, options,
//! ip aliases and sets, the three switches, default host rules).

use std::collections::{BTreeMap, HashSet};
use std::fmt::{self, Write};
use std::net::IpAddr;

use ipnet::IpNet;
use phoenix_model::model::{
    BridgeRole, DesiredState, Direction, Endpoint, FirewallRule, Guest, GuestId, NicKind,
    PortRange, Verdict,
};
use phoenix_model::source::Location;
use serde::Serialize;

use crate::{RenderOptions, RenderedFile};

pub const CLUSTER_FW_PATH: &str = "/etc/pve/firewall/cluster.fw";

/// `/etc/pve/nodes/NODE/host.fw`.
pub fn host_fw_path(node: &str) -> String {
    format!("/etc/pve/nodes/{node}/host.fw")
}

/// `/etc/pve/firewall/VMID.fw` (containers and VMs alike).
pub fn guest_fw_path(id: GuestId) -> String {
    format!("/etc/pve/firewall/{id}.fw")
}

/// Ipset of the management subnet.
pub const IPSET_MANAGEMENT: &str = "management";
/// Ipset of the mesh subnet.
pub const IPSET_MESH: &str = "mesh";
/// Ipset of every Swarm node's addresses.
pub const IPSET_SWARM: &str = "swarm";
/// Ipset of the guests holding certificates (clients of the CA).
pub const IPSET_PKI_CLIENTS: &str = "pki_clients";

/// Every firewall file, in a stable order: cluster, host, then guests by id.
pub fn firewall_files(d: &DesiredState, opts: &RenderOptions) -> Vec<RenderedFile> {
    let derived = derived_rules(d);
    let mut out = vec![cluster_fw(d), host_fw(opts, &derived)];
    for g in d.guests.values() {
        out.push(guest_fw(g, &derived));
    }
    out
}

/// Rules phoenix adds, by file.
#[derive(Debug, Clone, Default)]
pub struct DerivedRules {
    pub host: Vec<FirewallRule>,
    pub guests: BTreeMap<GuestId, Vec<FirewallRule>>,
}

/// Cluster aliases: one per static guest address, `<hostname>_<segment>` (`nginx_mesh`).
pub fn aliases(d: &DesiredState) -> BTreeMap<String, IpAddr> {
    let mut out = BTreeMap::new();
    for g in d.guests.values().filter(|g| !g.is_template) {
        for nic in &g.nics {
            let Some(addr) = nic.address() else { continue };
            let name = alias_name(d, g, &nic.bridge);
            let name = if out.contains_key(&name) {
                format!("{}_{}", name, nic.index)
            } else {
                name
            };
            out.insert(name, addr);
        }
    }
    out
}

/// The alias of `g`'s address on `bridge`.
pub fn alias_name(d: &DesiredState, g: &Guest, bridge: &str) -> String {
    let segment = match d.bridge(bridge).map(|b| b.role) {
        Some(BridgeRole::Mesh) => "mesh".to_string(),
        Some(BridgeRole::Management) => "mgmt".to_string(),
        Some(BridgeRole::PublicVlan) => "public".to_string(),
        None => sanitize(bridge),
    };
    let mut host = sanitize(&g.name);
    if !host.starts_with(|c: char| c.is_ascii_lowercase()) {
        host = format!("g{}_{host}", g.id);
    }
    format!("{host}_{segment}")
}

/// Alias and ipset names: lower-case letters, digits, `-` and `_`.
fn sanitize(s: &str) -> String {
    s.to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Cluster ipsets: `management`, `mesh` (subnets), `swarm` (node addresses), `pki_clients`.
/// Aliases and ipsets keyed by lower-case name: how pve-firewall resolves a rule's
/// `+name` / alias reference (names are case-insensitive).
pub type LookupTables = (BTreeMap<String, IpAddr>, BTreeMap<String, Vec<IpNet>>);

/// [`aliases`] and [`ipsets`] by lower-case name (see [`LookupTables`]).
pub fn lookup_tables(d: &DesiredState) -> LookupTables {
    (
        aliases(d)
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        ipsets(d)
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
    )
}

pub fn ipsets(d: &DesiredState) -> BTreeMap<&'static str, Vec<IpNet>> {
    let mut out = BTreeMap::new();
    let subnet = |role| {
        d.bridges
            .iter()
            .filter(|b| b.role == role)
            .filter_map(|b| b.subnet.or_else(|| b.address.map(|a| a.trunc())))
            .collect::<Vec<_>>()
    };
    out.insert(IPSET_MANAGEMENT, subnet(BridgeRole::Management));
    out.insert(IPSET_MESH, subnet(BridgeRole::Mesh));
    let swarm: Vec<IpNet> = swarm_nodes(d)
        .flat_map(|g| g.addresses().map(IpNet::from))
        .collect();
    out.insert(IPSET_SWARM, swarm);
    let mut clients: Vec<IpNet> = Vec::new();
    for id in pki_client_ids(d) {
        if let Some(g) = d.guest(id) {
            clients.extend(g.addresses().map(IpNet::from));
        }
    }
    out.insert(IPSET_PKI_CLIENTS, clients);
    out.retain(|_, v| !v.is_empty());
    for v in out.values_mut() {
        v.sort();
        v.dedup();
    }
    out
}

fn swarm_nodes(d: &DesiredState) -> impl Iterator<Item = &Guest> {
    d.roles
        .swarm_managers
        .iter()
        .chain(&d.roles.swarm_workers)
        .filter_map(|id| d.guest(*id))
}

/// Guests (other than the CA) that hold a certificate from the manifest.
fn pki_client_ids(d: &DesiredState) -> Vec<GuestId> {
    let mut ids: Vec<GuestId> = d
        .certificates
        .iter()
        .map(|c| c.guest)
        .filter(|id| Some(*id) != d.roles.ca)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// `/etc/pve/firewall/cluster.fw`.
pub fn cluster_fw(d: &DesiredState) -> RenderedFile {
    let fw = &d.firewall;
    let mut s = String::new();
    options(
        &mut s,
        &[
            ("enable", flag(fw.enabled)),
            ("policy_in", fw.policy_in.to_string()),
            ("policy_out", fw.policy_out.to_string()),
        ],
    );
    let aliases = aliases(d);
    if !aliases.is_empty() {
        s.push_str("[ALIASES]\n\n");
        for (name, addr) in &aliases {
            let _ = writeln!(s, "{name} {addr}");
        }
        s.push('\n');
    }
    for (name, members) in ipsets(d) {
        let _ = writeln!(s, "[IPSET {name}]\n");
        for m in members {
            let _ = writeln!(s, "{}", Endpoint::Net(m));
        }
        s.push('\n');
    }
    rules(&mut s, &merge(&fw.rules, &[]));
    RenderedFile::host(CLUSTER_FW_PATH, s)
}

/// `/etc/pve/nodes/NODE/host.fw`.
pub fn host_fw(opts: &RenderOptions, derived: &DerivedRules) -> RenderedFile {
    let mut s = String::new();
    options(&mut s, &[("enable", flag(true))]);
    rules(&mut s, &merge(&[], &derived.host));
    RenderedFile::host(host_fw_path(&opts.node), s)
}

/// `/etc/pve/firewall/VMID.fw`.
pub fn guest_fw(g: &Guest, derived: &DerivedRules) -> RenderedFile {
    let fw = &g.firewall;
    let mut s = String::new();
    let mut opts = vec![("enable", flag(fw.enabled))];
    // Without `dhcp: 1` the guest firewall drops DHCP replies to a DHCP NIC.
    if g.nics.iter().any(|n| n.is_dhcp()) {
        opts.insert(0, ("dhcp", flag(true)));
    }
    opts.push(("policy_in", fw.policy_in.to_string()));
    opts.push(("policy_out", fw.policy_out.to_string()));
    options(&mut s, &opts);
    let extra = derived.guests.get(&g.id).map_or(&[][..], Vec::as_slice);
    rules(&mut s, &merge(&fw.rules, extra));
    RenderedFile::host(guest_fw_path(g.id), s)
}

fn flag(b: bool) -> String {
    if b { "1" } else { "0" }.to_string()
}

fn options(s: &mut String, opts: &[(&str, String)]) {
    s.push_str("[OPTIONS]\n\n");
    for (k, v) in opts {
        let _ = writeln!(s, "{k}: {v}");
    }
    s.push('\n');
}

fn rules(s: &mut String, rules: &[FirewallRule]) {
    if rules.is_empty() {
        return;
    }
    s.push_str("[RULES]\n\n");
    for r in rules {
        let _ = writeln!(s, "{}", RuleLine(r));
    }
    s.push('\n');
}

/// The operator's rules, then the derived ones, without exact duplicates, each with a unique
/// comment (its identity).
pub fn merge(explicit: &[FirewallRule], derived: &[FirewallRule]) -> Vec<FirewallRule> {
    let mut seen = HashSet::new();
    let mut kept: Vec<&FirewallRule> = Vec::new();
    for r in explicit.iter().chain(derived) {
        if seen.insert(r.match_key()) {
            kept.push(r);
        }
    }
    let mut used: BTreeMap<String, u32> = BTreeMap::new();
    kept.into_iter()
        .map(|r| {
            let mut r = r.clone();
            let base = r
                .comment
                .as_deref()
                .map(clean_comment)
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| describe(&r));
            let n = used.entry(base.clone()).or_insert(0);
            *n += 1;
            r.comment = Some(if *n == 1 {
                base
            } else {
                format!("{base} ({n})")
            });
            r
        })
        .collect()
}

/// A comment on one line, without surrounding space.
fn clean_comment(c: &str) -> String {
    c.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// A comment for a rule that has none: what it matches.
fn describe(r: &FirewallRule) -> String {
    let mut s = format!("{} {}", dir(r.direction), r.action).to_ascii_lowercase();
    if let Some(p) = &r.proto {
        let _ = write!(s, " {p}");
    }
    if !r.dport.is_empty() {
        let _ = write!(s, " port {}", ports(&r.dport));
    }
    if let Some(src) = &r.source {
        let _ = write!(s, " from {src}");
    }
    if let Some(dst) = &r.dest {
        let _ = write!(s, " to {dst}");
    }
    if let Some(i) = &r.iface {
        let _ = write!(s, " on {i}");
    }
    s
}

fn dir(d: Direction) -> &'static str {
    match d {
        Direction::In => "IN",
        Direction::Out => "OUT",
    }
}

fn ports(p: &[PortRange]) -> String {
    p.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// One rule as a `.fw` line: `[|]IN|OUT ACTION [-i netN] [-source S] [-dest D] [-p proto]
/// [-dport P] [-sport P] [# comment]`.
pub struct RuleLine<'a>(pub &'a FirewallRule);

impl fmt::Display for RuleLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        if !r.enabled {
            f.write_str("|")?;
        }
        write!(f, "{} {}", dir(r.direction), r.action)?;
        if let Some(i) = &r.iface {
            write!(f, " -i {i}")?;
        }
        if let Some(s) = &r.source {
            write!(f, " -source {s}")?;
        }
        if let Some(d) = &r.dest {
            write!(f, " -dest {d}")?;
        }
        if let Some(p) = &r.proto {
            write!(f, " -p {p}")?;
        }
        if !r.dport.is_empty() {
            write!(f, " -dport {}", ports(&r.dport))?;
        }
        if !r.sport.is_empty() {
            write!(f, " -sport {}", ports(&r.sport))?;
        }
        if let Some(c) = &r.comment {
            let c = clean_comment(c);
            if !c.is_empty() {
                write!(f, " # {c}")?;
            }
        }
        Ok(())
    }
}

/// A phoenix rule: accept, enabled, comment `phoenix: …`.
struct Rule<'a> {
    direction: Direction,
    proto: Option<&'a str>,
    source: Option<Endpoint>,
    dest: Option<Endpoint>,
    dport: Vec<u16>,
    comment: String,
}

impl Rule<'_> {
    fn build(self, loc: &Location) -> FirewallRule {
        FirewallRule {
            direction: self.direction,
            action: Verdict::Accept,
            proto: self.proto.map(str::to_string),
            source: self.source,
            dest: self.dest,
            dport: self
                .dport
                .into_iter()
                .map(|p| PortRange { from: p, to: p })
                .collect(),
            sport: Vec::new(),
            iface: None,
            comment: Some(format!("phoenix: {}", self.comment)),
            enabled: true,
            loc: loc.clone(),
        }
    }
}

fn inbound(proto: &str, source: Option<Endpoint>, dport: Vec<u16>, comment: String) -> Rule<'_> {
    Rule {
        direction: Direction::In,
        proto: Some(proto),
        source,
        dest: None,
        dport,
        comment,
    }
}

/// The rules the platform needs, from roles and current addresses (see the module header).
pub fn derived_rules(d: &DesiredState) -> DerivedRules {
    let mut out = DerivedRules {
        host: host_rules(d),
        guests: BTreeMap::new(),
    };
    let aliases = aliases(d);
    let sets = ipsets(d);
    let alias_of = |g: &Guest| -> Vec<Endpoint> {
        g.nics
            .iter()
            .filter(|n| n.address().is_some())
            .map(|n| alias_name(d, g, &n.bridge))
            .filter(|a| aliases.contains_key(a))
            .map(Endpoint::Alias)
            .collect()
    };
    let mut add = |id: GuestId, r: FirewallRule| out.guests.entry(id).or_default().push(r);

    // Docker Swarm between Swarm nodes.
    if sets.contains_key(IPSET_SWARM) {
        let swarm = || Some(Endpoint::IpSet(IPSET_SWARM.into()));
        for g in swarm_nodes(d) {
            let loc = g.loc.child("firewall");
            if d.roles.swarm_managers.contains(&g.id) {
                add(
                    g.id,
                    inbound(
                        "tcp",
                        swarm(),
                        vec![2377],
                        "swarm cluster management".into(),
                    )
                    .build(&loc),
                );
            }
            add(
                g.id,
                inbound(
                    "tcp",
                    swarm(),
                    vec![7946],
                    "swarm node communication (tcp)".into(),
                )
                .build(&loc),
            );
            add(
                g.id,
                inbound(
                    "udp",
                    swarm(),
                    vec![7946],
                    "swarm node communication (udp)".into(),
                )
                .build(&loc),
            );
            add(
                g.id,
                inbound(
                    "udp",
                    swarm(),
                    vec![4789],
                    "swarm overlay network (vxlan)".into(),
                )
                .build(&loc),
            );
        }
    }

    // The Engine API (TLS, 2376) of every Swarm node, from the hypervisor: phoenix runs there
    // and manages the Swarm through it (the manager for the cluster, each node for its join).
    if let Some(hv) = d.mesh().and_then(|m| m.address) {
        for g in swarm_nodes(d) {
            let loc = g.loc.child("firewall");
            add(
                g.id,
                inbound(
                    "tcp",
                    Some(Endpoint::Net(IpNet::from(hv.addr()))),
                    vec![2376],
                    "docker engine api (tls) from the hypervisor".into(),
                )
                .build(&loc),
            );
        }
    }

    // The public gateway, from anywhere.
    let gateway = d.roles.gateway.and_then(|id| d.guest(id));
    if let Some(g) = gateway {
        let loc = g.loc.child("firewall");
        add(
            g.id,
            inbound(
                "tcp",
                None,
                vec![80, 443],
                "public http/https to the gateway".into(),
            )
            .build(&loc),
        );
    }

    // Traefik's entrypoints, only from the gateway.
    let proxy = d.roles.internal_proxy.and_then(|id| d.guest(id));
    if let (Some(p), Some(g)) = (proxy, gateway) {
        let loc = p.loc.child("firewall");
        let mut entry: Vec<u16> = d
            .traefik
            .entrypoints
            .iter()
            .filter(|(name, _)| name.as_str() != "traefik")
            .map(|(_, port)| *port)
            .collect();
        entry.sort_unstable();
        entry.dedup();
        if !entry.is_empty() {
            for src in alias_of(g) {
                let c = format!("traefik entrypoints from the gateway ({src})");
                add(
                    p.id,
                    inbound("tcp", Some(src), entry.clone(), c).build(&loc),
                );
            }
        }
    }

    // Routed services, only from Traefik.
    if let Some(p) = proxy {
        for g in d.guests.values().filter(|g| !g.is_template && g.id != p.id) {
            let Some(ts) = &g.traefik_service else {
                continue;
            };
            let loc = g.loc.child("firewall");
            for src in alias_of(p) {
                let c = format!("service {} from traefik ({src})", ts.name);
                add(
                    g.id,
                    inbound("tcp", Some(src), vec![ts.port], c).build(&loc),
                );
            }
        }
    }

    // The CA's port from the guests holding certificates.
    let ca = d.roles.ca.and_then(|id| d.guest(id));
    if let (Some(ca), true) = (ca, sets.contains_key(IPSET_PKI_CLIENTS)) {
        let loc = ca.loc.child("firewall");
        let src = Some(Endpoint::IpSet(IPSET_PKI_CLIENTS.into()));
        let c = "certificate requests to the ca".to_string();
        add(
            ca.id,
            inbound("tcp", src, vec![d.step_ca.port], c).build(&loc),
        );
    }
    out
}

/// Host rules: management access, then mesh DNS on the mesh gateway.
fn host_rules(d: &DesiredState) -> Vec<FirewallRule> {
    let loc = &d.host.loc;
    let mut out = Vec::new();
    let mgmt = || Some(Endpoint::IpSet(IPSET_MANAGEMENT.into()));
    if d.bridges
        .iter()
        .any(|b| b.role == BridgeRole::Management && (b.subnet.is_some() || b.address.is_some()))
    {
        out.push(
            inbound(
                "tcp",
                mgmt(),
                vec![8006],
                "proxmox web ui and api from management".into(),
            )
            .build(loc),
        );
        out.push(inbound("tcp", mgmt(), vec![22], "ssh from management".into()).build(loc));
    }
    if let Some(addr) = d.mesh().and_then(|m| m.address)
        && d.dns.enabled
    {
        for proto in ["udp", "tcp"] {
            let mut r = inbound(
                proto,
                Some(Endpoint::IpSet(IPSET_MESH.into())),
                vec![53],
                format!("mesh dns on the mesh gateway ({proto})"),
            );
            r.dest = Some(Endpoint::Net(IpNet::from(addr.addr())));
            out.push(r.build(loc));
        }
    }
    out
}

/// Whether a guest's traffic is really filtered, and what is off when it has rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestFiltering {
    pub id: GuestId,
    /// Cluster enable AND guest enable AND at least one NIC with `firewall=1`.
    pub effective: bool,
    /// `netN` indexes whose traffic is filtered.
    pub filtered_nics: Vec<u8>,
    /// Only when the guest has rules (its own or phoenix's).
    pub findings: Vec<FilteringFinding>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FilteringFinding {
    ClusterFirewallDisabled,
    GuestFirewallDisabled,
    /// A veth NIC without `firewall=1`.
    NicFirewallOff {
        index: u8,
    },
    /// A macvlan NIC bypasses the bridge firewall.
    MacvlanUnfiltered {
        index: u8,
    },
}

impl fmt::Display for FilteringFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilteringFinding::ClusterFirewallDisabled => f.write_str(
                "the cluster firewall is disabled, so no guest rule applies\nhint: set `firewall.enabled: true` in the hypervisor file",
            ),
            FilteringFinding::GuestFirewallDisabled => f.write_str(
                "the guest has firewall rules but its firewall is disabled\nhint: set `firewall.enabled: true` on the guest",
            ),
            FilteringFinding::NicFirewallOff { index } => write!(
                f,
                "net{index} has `firewall=0`: its traffic bypasses the guest's rules\nhint: set `firewall: true` on the NIC"
            ),
            FilteringFinding::MacvlanUnfiltered { index } => write!(
                f,
                "net{index} is a macvlan NIC, which the Proxmox firewall cannot filter\nhint: use a veth NIC on a VLAN-aware bridge (`bridge: vmbr0, tag: 20`)"
            ),
        }
    }
}

/// The three-switch check for every guest, by id.
pub fn filtering(d: &DesiredState) -> Vec<GuestFiltering> {
    let derived = derived_rules(d);
    d.guests
        .values()
        .map(|g| {
            let has_rules = !g.firewall.rules.is_empty()
                || derived.guests.get(&g.id).is_some_and(|r| !r.is_empty());
            let on = d.firewall.enabled && g.firewall.enabled;
            let filtered_nics: Vec<u8> = g
                .nics
                .iter()
                .filter(|n| on && n.firewall && n.kind == NicKind::Veth)
                .map(|n| n.index)
                .collect();
            let mut findings = Vec::new();
            if has_rules {
                if !d.firewall.enabled {
                    findings.push(FilteringFinding::ClusterFirewallDisabled);
                }
                if !g.firewall.enabled {
                    findings.push(FilteringFinding::GuestFirewallDisabled);
                }
                for n in &g.nics {
                    match n.kind {
                        NicKind::Macvlan => {
                            findings.push(FilteringFinding::MacvlanUnfiltered { index: n.index })
                        }
                        NicKind::Veth if !n.firewall => {
                            findings.push(FilteringFinding::NicFirewallOff { index: n.index })
                        }
                        NicKind::Veth => {}
                    }
                }
            }
            GuestFiltering {
                id: g.id,
                effective: !filtered_nics.is_empty(),
                filtered_nics,
                findings,
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use phoenix_model::source::FileId;

    fn rule(dir: Direction, port: u16, comment: Option<&str>) -> FirewallRule {
        FirewallRule {
            direction: dir,
            action: Verdict::Accept,
            proto: Some("tcp".into()),
            source: Some(Endpoint::Net("10.0.0.0/24".parse().unwrap())),
            dest: None,
            dport: vec![PortRange {
                from: port,
                to: port,
            }],
            sport: Vec::new(),
            iface: None,
            comment: comment.map(str::to_string),
            enabled: true,
            loc: Location::new(FileId(0), ""),
        }
    }

    #[test]
    fn rule_line_has_pve_order_and_disabled_prefix() {
        let mut r = rule(Direction::In, 443, Some("web"));
        r.iface = Some("net1".into());
        r.dest = Some(Endpoint::Alias("traefik_mesh".into()));
        r.dport.push(PortRange {
            from: 8000,
            to: 8010,
        });
        r.sport = vec![PortRange {
            from: 1024,
            to: 65535,
        }];
        assert_eq!(
            RuleLine(&r).to_string(),
            "IN ACCEPT -i net1 -source 10.0.0.0/24 -dest traefik_mesh -p tcp -dport 443,8000:8010 -sport 1024:65535 # web"
        );
        r.enabled = false;
        r.comment = Some("multi\nline".into());
        assert!(RuleLine(&r).to_string().starts_with("|IN ACCEPT"));
        assert!(RuleLine(&r).to_string().ends_with("# multi line"));
    }

    #[test]
    fn merge_drops_exact_duplicates_and_disambiguates_comments() {
        let explicit = vec![
            rule(Direction::In, 22, Some("ssh")),
            rule(Direction::In, 22, Some("ssh again")),
            rule(Direction::In, 80, Some("ssh")),
            rule(Direction::Out, 53, None),
        ];
        let derived = vec![
            rule(Direction::In, 22, Some("phoenix: ssh")),
            rule(Direction::In, 9000, Some("phoenix: ca")),
        ];
        let merged = merge(&explicit, &derived);
        let comments: Vec<_> = merged.iter().map(|r| r.comment.clone().unwrap()).collect();
        assert_eq!(
            comments,
            [
                "ssh",
                "ssh (2)",
                "out accept tcp port 53 from 10.0.0.0/24",
                "phoenix: ca"
            ]
        );
        // Stable: merging the result again changes nothing.
        assert_eq!(merge(&merged, &[]), merged);
    }
}
