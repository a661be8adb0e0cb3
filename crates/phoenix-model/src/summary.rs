//! A human summary of the desired state (`phoenix validate` prints it). No I/O.

use std::fmt::Write;

use crate::model::{Addressing, DesiredState, NicKind};

pub fn render(d: &DesiredState) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "domain {}", d.domain);
    for b in &d.bridges {
        let mut parts = vec![format!("{:?}", b.role).to_lowercase()];
        if let Some(a) = b.address {
            parts.push(format!("address {a}"));
        }
        if let Some(g) = b.gateway {
            parts.push(format!("gateway {g}"));
        }
        if let Some(sn) = b.subnet {
            parts.push(format!("subnet {sn}"));
        }
        if !b.ports.is_empty() {
            parts.push(format!("ports {}", b.ports.join(",")));
        }
        if b.vlan_aware {
            parts.push("vlan-aware".into());
        }
        if let Some(n) = &b.nat {
            parts.push(format!("nat via {}", n.uplink));
        }
        let _ = writeln!(s, "bridge {}: {}", b.name, parts.join(", "));
    }
    let role =
        |id: Option<crate::model::GuestId>| id.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
    let _ = writeln!(
        s,
        "roles: gateway {}, internal proxy {}, ca {}, swarm managers [{}], workers [{}]",
        role(d.roles.gateway),
        role(d.roles.internal_proxy),
        role(d.roles.ca),
        d.roles
            .swarm_managers
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        d.roles
            .swarm_workers
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    );
    if d.dns.enabled {
        let _ = writeln!(
            s,
            "dns: listen {} upstream {}",
            d.dns
                .listen
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(","),
            d.dns
                .upstream
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    for g in d.guests.values() {
        let nics: Vec<String> = g
            .nics
            .iter()
            .map(|n| {
                let addr = match &n.addressing {
                    Addressing::Dhcp => "dhcp".to_string(),
                    Addressing::Manual => "manual".to_string(),
                    Addressing::Static { cidr, gateway } => match gateway {
                        Some(gw) => format!("{cidr} gw {gw}"),
                        None => cidr.to_string(),
                    },
                };
                let kind = if n.kind == NicKind::Macvlan {
                    " macvlan"
                } else {
                    ""
                };
                let tag = n.tag.map(|t| format!(" tag {t}")).unwrap_or_default();
                format!("net{} {}{tag} {addr}{kind}", n.index, n.bridge)
            })
            .collect();
        let _ = writeln!(s, "{} {} {}: {}", g.kind, g.id, g.name, nics.join("; "));
    }
    let _ = writeln!(
        s,
        "{} guests, {} cluster firewall rules, {} certificates, {} stacks",
        d.guests.len(),
        d.firewall.rules.len(),
        d.certificates.len(),
        d.stacks.len()
    );
    s
}
