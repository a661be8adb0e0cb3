//! The desired state: what the operator's files mean, with every default made explicit.
//! Later stages (plan, render, lab, pve) read only this. Every element keeps the location it
//! came from so that later findings can point at the file. No I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

pub use crate::ports::{published_port, published_ports};
pub use crate::raw::{GuestId, Secret};
use crate::source::Location;

/// The whole platform as the configuration describes it.
#[derive(Debug, Clone, Serialize)]
pub struct DesiredState {
    /// Internal DNS domain.
    pub domain: String,
    pub host: Host,
    /// Bridges of the host, management bridge first.
    pub bridges: Vec<Bridge>,
    pub roles: Roles,
    pub guests: BTreeMap<GuestId, Guest>,
    pub firewall: ClusterFirewall,
    pub dns: DnsServer,
    pub traefik: TraefikSettings,
    pub step_ca: StepCaSettings,
    pub portainer: Option<PortainerApi>,
    /// How to reach the Proxmox VE API, when the configuration says (`proxmox_api`).
    pub proxmox_api: Option<ProxmoxApi>,
    pub certificates: Vec<Certificate>,
    pub stacks: BTreeMap<String, Stack>,
    /// The hypervisor's own setup (`phoenix setup`).
    pub host_setup: crate::host::HostSetup,
}

impl DesiredState {
    pub fn bridge(&self, name: &str) -> Option<&Bridge> {
        self.bridges.iter().find(|b| b.name == name)
    }

    pub fn guest(&self, id: GuestId) -> Option<&Guest> {
        self.guests.get(&id)
    }

    /// The mesh bridge (NAT'd internal network), if the host has one.
    pub fn mesh(&self) -> Option<&Bridge> {
        self.bridges.iter().find(|b| b.role == BridgeRole::Mesh)
    }
}

/// The hypervisor itself.
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    /// Physical NIC enslaved to the management bridge.
    pub uplink: String,
    /// Resolvers of the host.
    pub nameservers: Vec<IpAddr>,
    pub mtu: u16,
    #[serde(skip)]
    pub loc: Location,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BridgeRole {
    /// `vmbr0`: the uplink, the host's address and default route.
    Management,
    /// `vmbr0.20`: the public VLAN on top of the VLAN-aware management bridge.
    PublicVlan,
    /// `vmbr100`: the isolated mesh with NAT out of the host.
    Mesh,
}

/// A Linux bridge (or VLAN interface acting as one) on the host.
#[derive(Debug, Clone, Serialize)]
pub struct Bridge {
    pub name: String,
    pub role: BridgeRole,
    /// Ports enslaved (`enp6s0`; none for the mesh).
    pub ports: Vec<String>,
    /// The host's own address on it, with prefix.
    pub address: Option<IpNet>,
    /// Default gateway reached through it (management bridge only).
    pub gateway: Option<IpAddr>,
    /// Subnet of the segment (truncated address), when known.
    pub subnet: Option<IpNet>,
    pub vlan_aware: bool,
    /// For a VLAN bridge: parent and tag.
    pub vlan: Option<(String, u16)>,
    /// Masquerade this bridge's subnet out of `nat.uplink`.
    pub nat: Option<Nat>,
    pub mtu: u16,
    #[serde(skip)]
    pub loc: Location,
}

#[derive(Debug, Clone, Serialize)]
pub struct Nat {
    /// Interface the traffic leaves through.
    pub uplink: String,
}

/// Which guest plays which part of the platform.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Roles {
    pub gateway: Option<GuestId>,
    pub internal_proxy: Option<GuestId>,
    pub ca: Option<GuestId>,
    pub swarm_managers: Vec<GuestId>,
    pub swarm_workers: Vec<GuestId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestKind {
    Lxc,
    Vm,
}

impl std::fmt::Display for GuestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GuestKind::Lxc => "lxc",
            GuestKind::Vm => "vm",
        })
    }
}

/// How a guest comes into existence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestSource {
    /// From an OS template / cloud image.
    Template { image: String },
    /// Clone of another guest (an implicit dependency).
    Clone {
        from: GuestId,
        snapshot: Option<String>,
    },
    /// Nothing said: an existing guest phoenix only manages.
    Unspecified,
}

/// A container or VM.
#[derive(Debug, Clone, Serialize)]
pub struct Guest {
    pub id: GuestId,
    pub kind: GuestKind,
    /// Hostname.
    pub name: String,
    pub cores: Option<u32>,
    pub memory_mb: Option<u64>,
    pub swap_mb: Option<u64>,
    pub disk_gb: Option<u64>,
    pub storage: Option<String>,
    pub unprivileged: bool,
    pub start_at_boot: bool,
    pub boot_order: Option<u32>,
    pub boot_delay: Option<u32>,
    pub source: GuestSource,
    pub is_template: bool,
    /// `enable_lifecycle_snapshots`: `pre-configured` after creation, `final-form` after
    /// provisioning (LXC).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lifecycle_snapshots: bool,
    /// A template's own `template_snapshot_name`, taken before it becomes a template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_snapshot: Option<String>,
    pub nics: Vec<Nic>,
    /// Nameservers given to the guest (from its NICs), in order.
    pub nameservers: Vec<IpAddr>,
    /// Provisioning features (`base_setup`, `traefik`, …).
    pub features: Vec<String>,
    /// Proxmox `features` (`nesting=1`).
    pub pct_features: Vec<String>,
    /// Raw `lxc.*` lines for `ID.conf`, including the macvlan lines phoenix derives.
    pub raw_lxc: Vec<RawLxcLine>,
    /// Explicit dependencies (clone source is added by the planner).
    pub dependencies: Vec<GuestId>,
    pub traefik_service: Option<TraefikService>,
    pub firewall: GuestFirewall,
    pub mount_points: Vec<MountPoint>,
    pub swarm: Option<SwarmMembership>,
    pub docker_stacks: Vec<String>,
    /// User the guest's TLS consumers run as (key file group).
    pub service_user: Option<String>,
    /// Cloud-init user (VMs).
    pub cloud_init_user: Option<String>,
    /// Where the node downloads a template VM's cloud image (`template_image_url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_source: Option<crate::image::ImageSource>,
    #[serde(skip)]
    pub loc: Location,
}

/// The snapshot a guest with lifecycle snapshots gets once it is created and configured.
pub const SNAPSHOT_PRE_CONFIGURED: &str = "pre-configured";
/// The snapshot a guest with lifecycle snapshots gets once its provisioning completes.
pub const SNAPSHOT_FINAL_FORM: &str = "final-form";

impl Guest {
    /// Every snapshot this guest's configuration has phoenix take, in order.
    pub fn snapshots(&self) -> Vec<&str> {
        let mut out = Vec::new();
        if self.lifecycle_snapshots {
            out.push(SNAPSHOT_PRE_CONFIGURED);
            out.push(SNAPSHOT_FINAL_FORM);
        }
        if let Some(s) = &self.template_snapshot
            && !out.contains(&s.as_str())
        {
            out.push(s.as_str());
        }
        out
    }

    /// The first statically addressed NIC on `bridge`, if any.
    pub fn static_on(&self, bridge: &str) -> Option<&Nic> {
        self.nics
            .iter()
            .find(|n| n.bridge == bridge && n.address().is_some())
    }

    /// Every static address of the guest.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.nics.iter().filter_map(|n| n.address())
    }

    pub fn has_feature(&self, f: &str) -> bool {
        self.features.iter().any(|x| x == f)
    }
}

/// One `lxc.*` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawLxcLine {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Addressing {
    Dhcp,
    Static {
        cidr: IpNet,
        gateway: Option<IpAddr>,
    },
    /// No address configured by Proxmox.
    Manual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NicKind {
    Veth,
    /// Realised with raw `lxc.net.N.*` lines (LXC only).
    Macvlan,
}

/// A guest NIC (`netN`).
#[derive(Debug, Clone, Serialize)]
pub struct Nic {
    /// N of `netN`.
    pub index: u8,
    /// Name inside the guest (`eth0`).
    pub name: String,
    pub bridge: String,
    pub addressing: Addressing,
    pub mac: Option<MacAddr>,
    pub tag: Option<u16>,
    /// `firewall=1` on the NIC.
    pub firewall: bool,
    pub kind: NicKind,
    pub mtu: Option<u16>,
    #[serde(skip)]
    pub loc: Location,
}

impl Nic {
    pub fn address(&self) -> Option<IpAddr> {
        match &self.addressing {
            Addressing::Static { cidr, .. } => Some(cidr.addr()),
            _ => None,
        }
    }

    pub fn cidr(&self) -> Option<IpNet> {
        match &self.addressing {
            Addressing::Static { cidr, .. } => Some(*cidr),
            _ => None,
        }
    }

    pub fn gateway(&self) -> Option<IpAddr> {
        match &self.addressing {
            Addressing::Static { gateway, .. } => *gateway,
            _ => None,
        }
    }

    pub fn is_dhcp(&self) -> bool {
        self.addressing == Addressing::Dhcp
    }
}

/// A MAC address, kept in Proxmox's upper-case form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub fn parse(s: &str) -> Option<MacAddr> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return None;
        }
        let mut out = [0u8; 6];
        for (o, p) in out.iter_mut().zip(parts) {
            if p.len() != 2 {
                return None;
            }
            *o = u8::from_str_radix(p, 16).ok()?;
        }
        Some(MacAddr(out))
    }

    /// Multicast MACs cannot be assigned to a NIC.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02X}:{:02X}:{:02X}:{:02X}:{:02X}:{:02X}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

/// A route `<name>.<domain>` → guest.
#[derive(Debug, Clone, Serialize)]
pub struct TraefikService {
    pub name: String,
    pub port: u16,
    pub scheme: Scheme,
    /// Whether the scheme was written in the file (else inferred).
    pub scheme_explicit: bool,
    pub entrypoints: Vec<String>,
    #[serde(skip)]
    pub loc: Location,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Direction {
    In,
    Out,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Accept,
    Drop,
    Reject,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Accept => "ACCEPT",
            Verdict::Drop => "DROP",
            Verdict::Reject => "REJECT",
        })
    }
}

/// A source or destination of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Endpoint {
    /// An address or CIDR (`10.0.0.13`, `10.0.0.0/24`, `0.0.0.0/0`).
    Net(IpNet),
    /// An inclusive address range `a-b`.
    Range(IpAddr, IpAddr),
    /// A firewall alias name.
    Alias(String),
    /// An ipset `+name`.
    IpSet(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Net(n) if n.prefix_len() == n.max_prefix_len() => write!(f, "{}", n.addr()),
            Endpoint::Net(n) => write!(f, "{n}"),
            Endpoint::Range(a, b) => write!(f, "{a}-{b}"),
            Endpoint::Alias(a) => f.write_str(a),
            Endpoint::IpSet(s) => write!(f, "+{s}"),
        }
    }
}

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PortRange {
    pub from: u16,
    pub to: u16,
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}:{}", self.from, self.to)
        }
    }
}

/// A firewall rule with every field parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct FirewallRule {
    pub direction: Direction,
    pub action: Verdict,
    /// Protocol name or number, lower case; `None` = any.
    pub proto: Option<String>,
    pub source: Option<Endpoint>,
    pub dest: Option<Endpoint>,
    pub dport: Vec<PortRange>,
    pub sport: Vec<PortRange>,
    /// `netN`.
    pub iface: Option<String>,
    pub comment: Option<String>,
    pub enabled: bool,
    #[serde(skip)]
    pub loc: Location,
}

impl FirewallRule {
    /// Everything but comment and location: two rules with the same key match the same packets.
    pub fn match_key(&self) -> impl Eq + std::hash::Hash + '_ {
        (
            self.direction,
            self.action,
            &self.proto,
            &self.source,
            &self.dest,
            &self.dport,
            &self.sport,
            &self.iface,
            self.enabled,
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct GuestFirewall {
    pub enabled: bool,
    pub policy_in: Verdict,
    pub policy_out: Verdict,
    pub rules: Vec<FirewallRule>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterFirewall {
    pub enabled: bool,
    pub policy_in: Verdict,
    pub policy_out: Verdict,
    pub rules: Vec<FirewallRule>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MountPoint {
    pub host_path: String,
    pub container_path: String,
    pub owner_uid: Option<u32>,
    pub owner_gid: Option<u32>,
    #[serde(skip)]
    pub loc: Location,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SwarmRole {
    Manager,
    Worker,
}

#[derive(Debug, Clone, Serialize)]
pub struct SwarmMembership {
    pub role: SwarmRole,
    /// `key=value` labels.
    pub labels: BTreeMap<String, String>,
}

/// Mesh DNS (dnsmasq on the host).
#[derive(Debug, Clone, Serialize)]
pub struct DnsServer {
    pub enabled: bool,
    pub listen: Vec<IpAddr>,
    pub upstream: Vec<IpAddr>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TraefikSettings {
    /// Entrypoint name → port.
    pub entrypoints: BTreeMap<String, u16>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepCaSettings {
    pub root_name: String,
    pub intermediate_name: String,
    pub dns_name: String,
    pub provisioner: String,
    pub port: u16,
    pub ca_dir: String,
    pub password: Option<Secret>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProxmoxApi {
    pub endpoint: Option<String>,
    pub node: Option<String>,
    pub api_token: Option<Secret>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub ca_file: Option<String>,
    pub fingerprint: Option<String>,
    #[serde(skip)]
    pub loc: Location,
}

#[derive(Debug, Clone, Serialize)]
pub struct PortainerApi {
    pub admin_user: String,
    pub admin_password: Option<Secret>,
    pub hostname: Option<String>,
    pub api_key: Option<Secret>,
}

impl Serialize for Secret {
    /// Never serializes a plaintext value.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A certificate SAN.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "value")]
pub enum San {
    Dns(String),
    Ip(IpAddr),
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Dns(d) => f.write_str(d),
            San::Ip(i) => write!(f, "{i}"),
        }
    }
}

impl San {
    /// Does this SAN cover `name` (one-label wildcard as in RFC 6125)?
    pub fn covers_name(&self, name: &str) -> bool {
        match self {
            San::Dns(d) => {
                if let Some(rest) = d.strip_prefix("*.") {
                    name.split_once('.').is_some_and(|(first, tail)| {
                        !first.is_empty() && tail.eq_ignore_ascii_case(rest)
                    })
                } else {
                    d.eq_ignore_ascii_case(name)
                }
            }
            San::Ip(_) => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CertKind {
    Server,
    Client,
}

/// One manifest entry.
#[derive(Debug, Clone, Serialize)]
pub struct Certificate {
    pub common_name: String,
    /// SANs including the common name when it is a DNS name; de-duplicated, sorted.
    pub sans: Vec<San>,
    pub guest: GuestId,
    pub cert_path: String,
    pub key_path: String,
    pub owner: String,
    pub group: String,
    pub include_ca: bool,
    /// Mode of the key file (0600, or 0640 for a consumer group).
    pub key_mode: u32,
    pub kind: CertKind,
    pub lifetime_hours: u32,
    /// The bash shell string, kept verbatim and never run without an explicit opt-in.
    pub post_renewal_command: Option<String>,
    #[serde(skip)]
    pub loc: Location,
}

/// A Docker stack.
#[derive(Debug, Clone, Serialize)]
pub struct Stack {
    pub name: String,
    pub description: Option<String>,
    pub public_hostname: Option<String>,
    /// Parsed compose file (`stacks/<name>/docker-compose.yml`), if found.
    pub compose: Option<serde_json::Value>,
    pub compose_path: Option<std::path::PathBuf>,
    pub environments: BTreeMap<String, StackEnvironment>,
    #[serde(skip)]
    pub loc: Location,
}

impl Stack {
    /// The port the compose file publishes for `svc`'s container port `target` (long form
    /// `{target, published}` or short form `"[ip:]published:target[/proto]"`), if any.
    pub fn published_port(&self, svc: &str, target: u16) -> Option<u16> {
        published_port(self.compose.as_ref()?, svc, target)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StackEnvironment {
    pub variables: Vec<(String, Secret)>,
    /// Service → Traefik labels.
    pub traefik_labels: BTreeMap<String, Vec<String>>,
    pub firewall_rules: Vec<FirewallRule>,
    /// Host files placed into every service of the stack in this environment.
    pub files: Vec<StackFile>,
}

/// One `files[]` entry of a stack environment: a host file mounted read-only (mode 0444,
/// owner root) at `destination` in *every* service of the stack, as a Swarm **config**
/// versioned by content (`phoenix_render::stack` names it, `phoenix_lab::swarm::stack`
/// creates it): a changed file is a new config, so the services using it are updated.
///
/// Configs are stored unencrypted in the Swarm's Raft log and readable by anyone who can
/// inspect them: a file holding secrets (keys, passwords) should be a Swarm secret instead
/// (compose `secrets`, external), not a `files` entry.
#[derive(Debug, Clone, Serialize)]
pub struct StackFile {
    /// `source` as written in the configuration.
    pub source: String,
    /// `source` resolved: a relative path is relative to the configuration directory (the
    /// directory phoenix was given, where `phoenix_stacks_config.json` normally is); an
    /// absolute path is used as is.
    pub path: std::path::PathBuf,
    /// Absolute path of the file in the container (`destination_in_container`).
    pub destination: String,
    #[serde(skip)]
    pub loc: Location,
}
