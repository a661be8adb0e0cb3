//! Host networking: `/etc/network/interfaces` in the Proxmox/ifupdown2 style, the mesh NAT as
//! an nftables ruleset, and the forwarding sysctl. No I/O.
//!
//! The NAT follows Proxmox's own "masquerading" recipe
//! (<https://pve.proxmox.com/wiki/Network_Configuration#sysadmin_network_masquerading>):
//! a bridge with `bridge-ports none`, `ip_forward`, and a MASQUERADE rule out of the uplink,
//! plus conntrack zones for the firewall bridges when the PVE firewall is on. Every `post-up`
//! has a matching `post-down`, and each `post-up` checks (`-C`) before it appends, so an
//! `ifreload -a` never stacks duplicate rules. All values come from the validated model
//! (addresses, CIDRs and interface names), never from free text.

use std::fmt::Write;

use phoenix_model::model::{Bridge, BridgeRole, DesiredState};

use crate::RenderedFile;

pub const INTERFACES_PATH: &str = "/etc/network/interfaces";
pub const NAT_RULESET_PATH: &str = "/etc/phoenix/nat.nft";
pub const SYSCTL_PATH: &str = "/etc/sysctl.d/99-phoenix.conf";
/// nftables table phoenix owns; nothing else in the host's ruleset is touched.
pub const NAT_TABLE: &str = "phoenix_nat";

const HEADER: &str = "# Managed by phoenix: edits are overwritten by the next `phoenix sync`.\n";

/// `/etc/network/interfaces`.
pub fn interfaces(d: &DesiredState) -> RenderedFile {
    let mut s = String::new();
    s.push_str(HEADER);
    s.push_str("\nauto lo\niface lo inet loopback\n");
    let _ = write!(s, "\niface {} inet manual\n", d.host.uplink);
    if d.host.mtu != 1500 {
        let _ = writeln!(s, "\tmtu {}", d.host.mtu);
    }
    let firewall_on = d.firewall.enabled;
    for b in &d.bridges {
        s.push('\n');
        match b.role {
            BridgeRole::Management => management(&mut s, b),
            BridgeRole::PublicVlan => vlan(&mut s, b),
            BridgeRole::Mesh => mesh(&mut s, b, firewall_on),
        }
    }
    RenderedFile::host(INTERFACES_PATH, s)
}

fn management(s: &mut String, b: &Bridge) {
    let _ = writeln!(s, "auto {}", b.name);
    match b.address {
        Some(a) => {
            let _ = writeln!(s, "iface {} inet static", b.name);
            let _ = writeln!(s, "\taddress {a}");
            if let Some(gw) = b.gateway {
                let _ = writeln!(s, "\tgateway {gw}");
            }
        }
        None => {
            let _ = writeln!(s, "iface {} inet manual", b.name);
        }
    }
    bridge_common(s, b, &b.ports.join(" "));
    if b.vlan_aware {
        s.push_str("\tbridge-vlan-aware yes\n\tbridge-vids 2-4094\n");
    }
}

fn vlan(s: &mut String, b: &Bridge) {
    let _ = writeln!(s, "auto {}", b.name);
    let _ = writeln!(s, "iface {} inet manual", b.name);
    if let Some((parent, tag)) = &b.vlan {
        let _ = writeln!(s, "\tvlan-raw-device {parent}");
        let _ = writeln!(s, "\tvlan-id {tag}");
    }
    if b.mtu != 1500 {
        let _ = writeln!(s, "\tmtu {}", b.mtu);
    }
    let _ = writeln!(s, "#public VLAN");
}

fn mesh(s: &mut String, b: &Bridge, firewall_on: bool) {
    let _ = writeln!(s, "auto {}", b.name);
    match b.address {
        Some(a) => {
            let _ = writeln!(s, "iface {} inet static", b.name);
            let _ = writeln!(s, "\taddress {a}");
        }
        None => {
            let _ = writeln!(s, "iface {} inet manual", b.name);
        }
    }
    bridge_common(s, b, "none");
    let (Some(nat), Some(subnet)) = (&b.nat, b.subnet) else {
        return;
    };
    let (mesh, up) = (&b.name, &nat.uplink);
    s.push_str("\tpost-up   echo 1 > /proc/sys/net/ipv4/ip_forward\n");
    let rules = [
        format!("-t nat POSTROUTING -s {subnet} -o {up} -j MASQUERADE"),
        format!("FORWARD -i {up} -o {mesh} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        // Nothing from outside opens a connection into the mesh.
        format!("FORWARD -i {up} -o {mesh} -j DROP"),
        format!("FORWARD -i {mesh} -o {up} -j ACCEPT"),
    ];
    let mut all: Vec<String> = rules.to_vec();
    if firewall_on {
        // With the PVE firewall, guest traffic passes fwbr* bridges; without a conntrack zone
        // the reply of masqueraded traffic is matched in the wrong zone and dropped.
        all.push("-t raw PREROUTING -i fwbr+ -j CT --zone 1".to_string());
    }
    for r in &all {
        let (table, chain_rule) = split_table(r);
        let _ = writeln!(
            s,
            "\tpost-up   iptables {table}-C {chain_rule} 2>/dev/null || iptables {table}-A {chain_rule}"
        );
    }
    for r in all.iter().rev() {
        let (table, chain_rule) = split_table(r);
        let _ = writeln!(
            s,
            "\tpost-down iptables {table}-D {chain_rule} 2>/dev/null || true"
        );
    }
}

/// `"-t nat POSTROUTING …"` → (`"-t nat "`, `"POSTROUTING …"`).
fn split_table(rule: &str) -> (String, &str) {
    match rule.strip_prefix("-t ") {
        Some(rest) => {
            let (table, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            (format!("-t {table} "), tail)
        }
        None => (String::new(), rule),
    }
}

fn bridge_common(s: &mut String, b: &Bridge, ports: &str) {
    let _ = writeln!(s, "\tbridge-ports {ports}");
    s.push_str("\tbridge-stp off\n\tbridge-fd 0\n");
    if b.mtu != 1500 {
        let _ = writeln!(s, "\tmtu {}", b.mtu);
    }
}

/// The mesh NAT as one nftables ruleset, for hosts that prefer nftables to `post-up` lines
/// and for the lab twin. Loading it twice gives the same ruleset (the table is re-created).
pub fn nat_ruleset(d: &DesiredState) -> RenderedFile {
    let mut s = String::from("#!/usr/sbin/nft -f\n");
    s.push_str(HEADER);
    let _ = writeln!(s, "table ip {NAT_TABLE}\ndelete table ip {NAT_TABLE}\n");
    let _ = writeln!(s, "table ip {NAT_TABLE} {{");
    let nat: Vec<(&Bridge, &str, ipnet::IpNet)> = d
        .bridges
        .iter()
        .filter_map(|b| Some((b, b.nat.as_ref()?.uplink.as_str(), b.subnet?)))
        .filter(|(_, _, sn)| matches!(sn, ipnet::IpNet::V4(_)))
        .collect();
    s.push_str(
        "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n",
    );
    for (_, up, subnet) in &nat {
        let _ = writeln!(s, "\t\tip saddr {subnet} oifname \"{up}\" masquerade");
    }
    s.push_str(
        "\t}\n\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n",
    );
    for (b, up, _) in &nat {
        let mesh = &b.name;
        let _ = writeln!(
            s,
            "\t\tiifname \"{up}\" oifname \"{mesh}\" ct state established,related accept"
        );
        let _ = writeln!(
            s,
            "\t\tiifname \"{up}\" oifname \"{mesh}\" counter drop comment \"nothing from outside opens into the mesh\""
        );
        let _ = writeln!(s, "\t\tiifname \"{mesh}\" oifname \"{up}\" accept");
    }
    s.push_str("\t}\n}\n");
    RenderedFile::host(NAT_RULESET_PATH, s)
}

/// Forwarding on (the NAT needs it); also set at `post-up` so it holds before sysctl runs.
pub fn sysctl(d: &DesiredState) -> RenderedFile {
    let mut s = String::from(HEADER);
    let forward = d.bridges.iter().any(|b| b.nat.is_some());
    let _ = writeln!(s, "net.ipv4.ip_forward = {}", u8::from(forward));
    RenderedFile::host(SYSCTL_PATH, s)
}
