//! What the lab is made of, computed from the desired state and a run prefix. Pure: no I/O.
//!
//! Decisions (LAB.md): the public VLAN is its own plain bridge (no 802.1Q on this kernel), so a
//! NIC `bridge=vmbr0,tag=20` lands on the public bridge. Bridges keep the model's names inside
//! the hypervisor namespace, so rendered configuration (the NAT ruleset's `oifname "vmbr0"`)
//! applies unchanged; the uplink port keeps the model's port name too. Links the lab adds
//! (guest veth host ends) are named from the prefix. The `wan` namespace plays the upstream
//! router: it holds the management gateway address (10.0.0.1 in the seed) on the uplink veth,
//! 203.0.113.1/24 on the public segment and 198.51.100.1/24 on a port-less bridge as "internet".

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use phoenix_model::model::{BridgeRole, DesiredState, Guest, GuestId, Nic, NicKind};
use serde::{Deserialize, Serialize};

use crate::LabError;

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;
/// The wan's address on the public segment.
pub const WAN_PUBLIC: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(203, 0, 113, 1), 24);
/// The wan's "internet" address (on a bridge without ports: dummy devices are missing).
pub const WAN_INTERNET: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(198, 51, 100, 1), 24);
/// Resolver written for the hypervisor and wan namespaces: the wan's "internet" DNS server
/// (an extra address on the internet bridge, see [`crate::services`]).
pub const INTERNET_RESOLVER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 53));
/// The wan's HTTP endpoint for egress checks (an extra address on the internet bridge).
pub const INTERNET_HTTP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 80));
/// Names of the wan's own links.
pub const WAN_UPLINK: &str = "up0";
pub const WAN_PUBLIC_LEG: &str = "pub0";
pub const WAN_INTERNET_BRIDGE: &str = "inet0";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum NsRole {
    Hypervisor,
    Wan,
    Guest { id: u32, name: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub name: String,
    pub role: NsRole,
    /// Written to `/etc/netns/<name>/resolv.conf` before anything runs inside.
    pub resolver: IpAddr,
    /// `net.ipv4.ip_forward=1` inside.
    pub forwarding: bool,
}

/// A bridge (always inside one namespace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabBridge {
    pub ns: String,
    pub name: String,
    pub role: LabBridgeRole,
}

/// What a lab bridge stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabBridgeRole {
    Management,
    /// The public VLAN, as its own plain bridge.
    PublicVlan,
    Mesh,
    /// The wan's port-less "internet" bridge.
    Internet,
}

impl From<BridgeRole> for LabBridgeRole {
    fn from(r: BridgeRole) -> Self {
        match r {
            BridgeRole::Management => LabBridgeRole::Management,
            BridgeRole::PublicVlan => LabBridgeRole::PublicVlan,
            BridgeRole::Mesh => LabBridgeRole::Mesh,
        }
    }
}

/// A veth pair created directly in its two namespaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Veth {
    pub host_ns: String,
    pub host_name: String,
    /// Bridge the host end is enslaved to.
    pub master: Option<String>,
    pub peer_ns: String,
    pub peer_name: String,
    pub peer_mac: Option<String>,
}

/// A macvlan (bridge mode) on a bridge of `parent_ns`, created directly in `ns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Macvlan {
    pub parent_ns: String,
    pub parent: String,
    pub ns: String,
    pub name: String,
    pub mac: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub ns: String,
    pub dev: String,
    pub cidr: IpNet,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub ns: String,
    /// `None`: the default route.
    pub dest: Option<IpNet>,
    pub via: IpAddr,
}

/// Everything `lab up` builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabTopology {
    pub prefix: String,
    pub hv: String,
    pub wan: String,
    pub namespaces: Vec<Namespace>,
    pub bridges: Vec<LabBridge>,
    pub veths: Vec<Veth>,
    pub macvlans: Vec<Macvlan>,
    pub addresses: Vec<Address>,
    pub routes: Vec<Route>,
    /// nftables ruleset loaded in the hypervisor namespace (`nft -f`).
    pub nat_ruleset: String,
    /// The mesh DNS configuration for dnsmasq in the hypervisor (none: the model runs no DNS).
    #[serde(default)]
    pub mesh_dns: Option<String>,
    /// Its IPv4 listen addresses (readiness: dnsmasq holds UDP 53 on each).
    #[serde(default)]
    pub mesh_dns_listen: Vec<Ipv4Addr>,
    /// Guest NICs that take their address by DHCP from the wan.
    #[serde(default)]
    pub dhcp_clients: Vec<crate::services::DhcpClient>,
}

impl LabTopology {
    /// The namespace of a guest given by id, by name, or `hv` / `wan`.
    pub fn namespace_of(&self, guest: &str) -> Option<&Namespace> {
        self.namespaces.iter().find(|n| match &n.role {
            NsRole::Hypervisor => guest == "hv",
            NsRole::Wan => guest == "wan",
            NsRole::Guest { id, name } => guest == name || guest == id.to_string(),
        })
    }

    /// Every interface name per namespace, for checks.
    pub fn links_in(&self, ns: &str) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .bridges
            .iter()
            .filter(|b| b.ns == ns)
            .map(|b| b.name.as_str())
            .collect();
        for v in &self.veths {
            if v.host_ns == ns {
                out.push(&v.host_name);
            }
            if v.peer_ns == ns {
                out.push(&v.peer_name);
            }
        }
        out.extend(
            self.macvlans
                .iter()
                .filter(|m| m.ns == ns)
                .map(|m| m.name.as_str()),
        );
        out
    }
}

/// A prefix is 1–6 characters of `[a-z0-9]`, so every derived name stays short and a prefix
/// never matches another prefix's namespaces (`<prefix>-…`).
pub fn validate_prefix(prefix: &str) -> Result<(), LabError> {
    let ok = (1..=6).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(LabError::InvalidPrefix(prefix.to_string()))
    }
}

/// Namespace names of a lab.
pub fn hv_ns(prefix: &str) -> String {
    format!("{prefix}-hv")
}
pub fn wan_ns(prefix: &str) -> String {
    format!("{prefix}-wan")
}
pub fn guest_ns(prefix: &str, id: GuestId) -> String {
    format!("{prefix}-g{}", id.0)
}

/// Compute the lab for `d`.
pub fn topology(d: &DesiredState, prefix: &str) -> Result<LabTopology, LabError> {
    validate_prefix(prefix)?;
    let hv = hv_ns(prefix);
    let wan = wan_ns(prefix);
    let mgmt = d
        .bridges
        .iter()
        .find(|b| b.role == BridgeRole::Management)
        .ok_or(LabError::NoManagementBridge)?;
    let mut t = LabTopology {
        prefix: prefix.to_string(),
        hv: hv.clone(),
        wan: wan.clone(),
        namespaces: vec![
            infra_ns(&hv, NsRole::Hypervisor),
            infra_ns(&wan, NsRole::Wan),
        ],
        bridges: Vec::new(),
        veths: Vec::new(),
        macvlans: Vec::new(),
        addresses: Vec::new(),
        routes: Vec::new(),
        nat_ruleset: phoenix_render::hostnet::nat_ruleset(d).content,
        mesh_dns: crate::services::mesh_dns_config(d),
        mesh_dns_listen: d
            .dns
            .listen
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            })
            .collect(),
        dhcp_clients: Vec::new(),
    };
    for b in &d.bridges {
        t.bridges.push(LabBridge {
            ns: hv.clone(),
            name: b.name.clone(),
            role: b.role.into(),
        });
        if let Some(a) = b.address {
            t.addresses.push(Address {
                ns: hv.clone(),
                dev: b.name.clone(),
                cidr: a,
            });
        }
    }
    add_wan(&mut t, d, mgmt)?;
    let resolver = guest_resolver(d);
    let mut veth_index = 0usize;
    for g in d.guests.values().filter(|g| !g.is_template) {
        let ns = guest_ns(prefix, g.id);
        t.namespaces.push(Namespace {
            name: ns.clone(),
            role: NsRole::Guest {
                id: g.id.0,
                name: g.name.clone(),
            },
            resolver: resolver
                .or_else(|| g.nameservers.first().copied())
                .unwrap_or(INTERNET_RESOLVER),
            forwarding: false,
        });
        add_guest_nics(&mut t, d, g, &ns, &mut veth_index)?;
    }
    t.dhcp_clients = crate::services::dhcp_clients(d, &t);
    Ok(t)
}

fn infra_ns(name: &str, role: NsRole) -> Namespace {
    Namespace {
        name: name.to_string(),
        role,
        resolver: INTERNET_RESOLVER,
        forwarding: true,
    }
}

/// The mesh DNS address when the model runs one.
fn guest_resolver(d: &DesiredState) -> Option<IpAddr> {
    d.dns.listen.first().copied().filter(|_| d.dns.enabled)
}

/// The wan namespace: uplink leg on the management bridge, public leg, "internet" bridge.
fn add_wan(
    t: &mut LabTopology,
    d: &DesiredState,
    mgmt: &phoenix_model::model::Bridge,
) -> Result<(), LabError> {
    let (hv, wan, prefix) = (t.hv.clone(), t.wan.clone(), t.prefix.clone());
    let uplink = mgmt
        .ports
        .first()
        .cloned()
        .filter(|p| p.len() <= IFNAME_MAX)
        .unwrap_or_else(|| format!("{prefix}up"));
    t.veths.push(Veth {
        host_ns: hv.clone(),
        host_name: uplink,
        master: Some(mgmt.name.clone()),
        peer_ns: wan.clone(),
        peer_name: WAN_UPLINK.into(),
        peer_mac: None,
    });
    if let (Some(gw), Some(addr)) = (mgmt.gateway, mgmt.address) {
        let cidr = IpNet::new(gw, addr.prefix_len()).map_err(|e| LabError::Nic {
            guest: 0,
            nic: mgmt.name.clone(),
            reason: e.to_string(),
        })?;
        t.addresses.push(Address {
            ns: wan.clone(),
            dev: WAN_UPLINK.into(),
            cidr,
        });
        t.routes.push(Route {
            ns: hv.clone(),
            dest: None,
            via: gw,
        });
    }
    if let Some(public) = d.bridges.iter().find(|b| b.role == BridgeRole::PublicVlan) {
        t.veths.push(Veth {
            host_ns: hv.clone(),
            host_name: format!("{prefix}pub"),
            master: Some(public.name.clone()),
            peer_ns: wan.clone(),
            peer_name: WAN_PUBLIC_LEG.into(),
            peer_mac: None,
        });
        t.addresses.push(Address {
            ns: wan.clone(),
            dev: WAN_PUBLIC_LEG.into(),
            cidr: IpNet::V4(WAN_PUBLIC),
        });
    }
    t.bridges.push(LabBridge {
        ns: wan.clone(),
        name: WAN_INTERNET_BRIDGE.into(),
        role: LabBridgeRole::Internet,
    });
    t.addresses.push(Address {
        ns: wan.clone(),
        dev: WAN_INTERNET_BRIDGE.into(),
        cidr: IpNet::V4(WAN_INTERNET),
    });
    for service in [INTERNET_RESOLVER, INTERNET_HTTP] {
        t.addresses.push(Address {
            ns: wan.clone(),
            dev: WAN_INTERNET_BRIDGE.into(),
            cidr: IpNet::from(service),
        });
    }
    Ok(())
}

/// The hv bridge a NIC lands on: a tagged NIC on the management bridge goes to the public
/// VLAN's plain bridge.
fn lab_bridge<'a>(d: &'a DesiredState, g: &Guest, nic: &Nic) -> Result<&'a str, LabError> {
    let err = |reason: String| LabError::Nic {
        guest: g.id.0,
        nic: nic.name.clone(),
        reason,
    };
    let bridge = d
        .bridge(&nic.bridge)
        .ok_or_else(|| err(format!("unknown bridge {}", nic.bridge)))?;
    let Some(tag) = nic.tag else {
        return Ok(&bridge.name);
    };
    d.bridges
        .iter()
        .find(|b| {
            b.role == BridgeRole::PublicVlan
                && b.vlan
                    .as_ref()
                    .is_some_and(|(p, t)| *p == bridge.name && *t == tag)
        })
        .map(|b| b.name.as_str())
        .ok_or_else(|| err(format!("no bridge for VLAN {tag} on {}", nic.bridge)))
}

/// Host end of a guest veth: `<prefix><id>n<index>`, or `<prefix>x<k>` when that is too long.
fn host_veth_name(prefix: &str, id: GuestId, nic: &Nic, k: usize) -> String {
    let name = format!("{prefix}{}n{}", id.0, nic.index);
    if name.len() <= IFNAME_MAX {
        name
    } else {
        format!("{prefix}x{k}")
    }
}

fn add_guest_nics(
    t: &mut LabTopology,
    d: &DesiredState,
    g: &Guest,
    ns: &str,
    veth_index: &mut usize,
) -> Result<(), LabError> {
    let mut has_default = false;
    for nic in &g.nics {
        let bridge = lab_bridge(d, g, nic)?.to_string();
        let mac = nic.mac.map(|m| m.to_string());
        match nic.kind {
            NicKind::Veth => {
                *veth_index += 1;
                t.veths.push(Veth {
                    host_ns: t.hv.clone(),
                    host_name: host_veth_name(&t.prefix, g.id, nic, *veth_index),
                    master: Some(bridge),
                    peer_ns: ns.to_string(),
                    peer_name: nic.name.clone(),
                    peer_mac: mac,
                });
            }
            NicKind::Macvlan => t.macvlans.push(Macvlan {
                parent_ns: t.hv.clone(),
                parent: bridge,
                ns: ns.to_string(),
                name: nic.name.clone(),
                mac,
            }),
        }
        if let Some(cidr) = nic.cidr() {
            t.addresses.push(Address {
                ns: ns.to_string(),
                dev: nic.name.clone(),
                cidr,
            });
        }
        if let Some(gw) = nic.gateway().filter(|_| !has_default) {
            has_default = true;
            t.routes.push(Route {
                ns: ns.to_string(),
                dest: None,
                via: gw,
            });
        }
    }
    Ok(())
}

/// Every name problem of a topology (duplicates, names too long); empty when sound.
pub fn name_problems(t: &LabTopology) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for n in &t.namespaces {
        if !seen.insert(n.name.as_str()) {
            out.push(format!("namespace {} twice", n.name));
        }
        if !n.name.starts_with(&format!("{}-", t.prefix)) {
            out.push(format!("namespace {} lacks the prefix", n.name));
        }
        let mut links = BTreeSet::new();
        for l in t.links_in(&n.name) {
            if l.len() > IFNAME_MAX {
                out.push(format!("{}: link {l} longer than {IFNAME_MAX}", n.name));
            }
            if !links.insert(l) {
                out.push(format!("{}: link {l} twice", n.name));
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "topology_tests.rs"]
mod tests;
