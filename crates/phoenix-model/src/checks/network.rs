//! Guest addressing against the host's networks: an address outside its bridge's subnet
//! (E020), a NIC on a bridge the host does not define (E021), a gateway outside the NIC's
//! subnet (E022), more than one default gateway on one guest (E023), macvlan NICs written as
//! raw `lxc.net.N.*` lines (W020) and macvlan children the host cannot reach (W021).
//!
//! Only written gateways (`gw`) count towards E023: a DHCP NIC's route comes from the DHCP
//! server, and the gateway guest (DHCP on the public VLAN plus a static mesh NIC with `gw`)
//! is the seed's intended shape. W020 is reported once per NIC, at its `lxc.net.N.type` line.
//!
//! No I/O: reads the desired state and the raw `lxc_options` (for their positions).

use crate::diag::Quote;
use std::collections::HashMap;

use ipnet::IpNet;

use crate::diag::{Code, Diagnostics};
use crate::load::RawConfig;
use crate::model::{Bridge, DesiredState, Guest, Nic, NicKind};
use crate::values;

pub fn check(d: &DesiredState, raw: &RawConfig, diags: &mut Diagnostics) {
    let bridges: HashMap<&str, &Bridge> = d.bridges.iter().map(|b| (b.name.as_str(), b)).collect();
    for g in d.guests.values() {
        let mut first_gateway: Option<&Nic> = None;
        for nic in &g.nics {
            match bridges.get(nic.bridge.as_str()) {
                None => unknown_bridge(d, g, nic, diags),
                Some(b) => {
                    if let (Some(cidr), Some(subnet)) = (nic.cidr(), segment_subnet(d, b, nic)) {
                        outside_subnet(g, nic, cidr, subnet, diags);
                    }
                }
            }
            if let (Some(cidr), Some(gw)) = (nic.cidr(), nic.gateway())
                && !cidr.contains(&gw)
            {
                diags.emit(
                    Code::GatewayOutsideSubnet,
                    &nic.loc.child("gw"),
                    format!(
                        "gateway {gw} of guest {} {} is outside the NIC's subnet {}",
                        g.id,
                        nic_label(nic),
                        cidr.trunc()
                    ),
                    format!(
                        "a gateway must be on the NIC's own segment: pick an address in {}, usually the bridge's",
                        cidr.trunc()
                    ),
                );
            }
            if nic.gateway().is_some() {
                match first_gateway {
                    None => first_gateway = Some(nic),
                    Some(first) => diags.emit(
                        Code::MultipleGateways,
                        &nic.loc.child("gw"),
                        format!(
                            "guest {} has a second default gateway on {} (the first is on {})",
                            g.id,
                            nic_label(nic),
                            nic_label(first)
                        ),
                        format!(
                            "a guest has one default route; remove `gw` from {} or from {}",
                            nic_label(first),
                            nic_label(nic)
                        ),
                    ),
                }
            }
            if nic.kind == NicKind::Macvlan {
                macvlan_unreachable(g, nic, diags);
            }
        }
    }
    macvlan_raw_lines(d, raw, diags);
}

/// `net1 (eth1)`.
fn nic_label(nic: &Nic) -> String {
    format!("net{} ({})", nic.index, nic.name)
}

/// The subnet a NIC's address must lie in: its bridge's, or — for a tagged NIC on a VLAN-aware
/// bridge — the subnet of the VLAN bridge with that tag. `None` when unknown (then nothing is
/// checked): the public VLAN without `public_subnet`, or a tag the host does not describe.
fn segment_subnet(d: &DesiredState, bridge: &Bridge, nic: &Nic) -> Option<IpNet> {
    match nic.tag {
        None => bridge.subnet,
        Some(tag) if bridge.vlan_aware => d
            .bridges
            .iter()
            .find(|b| {
                b.vlan
                    .as_ref()
                    .is_some_and(|(parent, t)| *parent == bridge.name && *t == tag)
            })
            .and_then(|b| b.subnet),
        Some(_) => None,
    }
}

fn outside_subnet(g: &Guest, nic: &Nic, cidr: IpNet, subnet: IpNet, diags: &mut Diagnostics) {
    if subnet.contains(&cidr.addr()) {
        return;
    }
    diags.emit(
        Code::AddressOutsideBridge,
        &nic.loc.child("ip"),
        format!(
            "{} of guest {} {} is outside {subnet}, the subnet of {}",
            cidr.addr(),
            g.id,
            nic_label(nic),
            nic.bridge
        ),
        format!(
            "give the NIC an address in {subnet}, or attach it to the bridge that carries {}",
            cidr.trunc()
        ),
    );
}

fn unknown_bridge(d: &DesiredState, g: &Guest, nic: &Nic, diags: &mut Diagnostics) {
    let known: Vec<&str> = d.bridges.iter().map(|b| b.name.as_str()).collect();
    diags.emit(
        Code::UnknownBridge,
        &nic.loc.child("bridge"),
        format!(
            "guest {} {} is on bridge `{}`, which the host does not define",
            g.id,
            nic_label(nic),
            nic.bridge.quoted()
        ),
        format!(
            "use one of the host's bridges ({}) or define the bridge in the hypervisor file's `network`",
            known.join(", ")
        ),
    );
}

fn macvlan_unreachable(g: &Guest, nic: &Nic, diags: &mut Diagnostics) {
    let what = match nic.address() {
        Some(a) => a.to_string(),
        None if nic.is_dhcp() => "DHCP address".to_string(),
        None => "address".to_string(),
    };
    let other = g
        .nics
        .iter()
        .find(|n| n.index != nic.index && n.kind == NicKind::Veth && n.address().is_some());
    let hint = match other.and_then(|n| n.address().map(|a| (n, a))) {
        Some((n, a)) => format!(
            "reach guest {} through {} {a}, or make {} a veth NIC on the bridge",
            g.id,
            nic_label(n),
            nic_label(nic)
        ),
        None => format!(
            "make {} a veth NIC on the bridge, or give the guest a second NIC the host can reach (e.g. on the mesh)",
            nic_label(nic)
        ),
    };
    diags.emit(
        Code::MacvlanUnreachable,
        &nic.loc,
        format!(
            "the host cannot reach guest {}'s {what} on {}, a macvlan child of the host's `{}`: a macvlan parent cannot talk to its own children",
            g.id,
            nic_label(nic),
            nic.bridge
        ),
        hint,
    );
}

/// W020 at each `lxc.net.N.type: macvlan` line, once per NIC.
fn macvlan_raw_lines(d: &DesiredState, raw: &RawConfig, diags: &mut Diagnostics) {
    for (id, l) in &raw.lxcs {
        let parsed: Vec<Option<(String, String)>> = l
            .value
            .lxc_options
            .iter()
            .map(|s| values::lxc_line(s).ok())
            .collect();
        for (i, line) in parsed.iter().enumerate() {
            let Some((key, value)) = line else { continue };
            let Some(n) = net_type_index(key) else {
                continue;
            };
            if value != "macvlan" {
                continue;
            }
            let prefix = format!("lxc.net.{n}.");
            let count = parsed
                .iter()
                .flatten()
                .filter(|(k, _)| k.starts_with(&prefix))
                .count();
            let nic = d
                .guest(*id)
                .and_then(|g| g.nics.iter().find(|x| u32::from(x.index) == n));
            let suggestion = match nic.and_then(|x| d.bridge(&x.bridge)).and_then(|b| b.vlan.clone()) {
                Some((parent, tag)) => format!("\"bridge\": \"{parent}\", \"tag\": {tag} (`bridge={parent},tag={tag}` on the VLAN-aware bridge)"),
                None => "\"bridge\": \"vmbr0\", \"tag\": 20 (`bridge=vmbr0,tag=20` on the VLAN-aware bridge)".to_string(),
            };
            diags.emit(
                Code::MacvlanRawLines,
                &l.loc.child("lxc_options").child(i),
                format!(
                    "net{n} of guest {id} is a macvlan written as {count} raw `lxc.net.{n}.*` line(s): the Proxmox API only knows veth NICs, and later `pct set` calls strip these lines"
                ),
                format!(
                    "give net{n} a veth NIC instead: set {suggestion} in its network config and remove the `lxc.net.{n}.*` lines"
                ),
            );
        }
    }
}

/// `N` of an `lxc.net.N.type` key.
fn net_type_index(key: &str) -> Option<u32> {
    key.strip_prefix("lxc.net.")?
        .strip_suffix(".type")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_type_index_reads_only_type_keys() {
        assert_eq!(net_type_index("lxc.net.0.type"), Some(0));
        assert_eq!(net_type_index("lxc.net.12.type"), Some(12));
        assert_eq!(net_type_index("lxc.net.0.link"), None);
        assert_eq!(net_type_index("lxc.net.x.type"), None);
        assert_eq!(net_type_index("lxc.apparmor.profile"), None);
    }
}
