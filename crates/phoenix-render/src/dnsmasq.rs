//! Mesh DNS: the dnsmasq configuration for the host, with records by role, not by guest name:
//! - infrastructure names (`ca`, `traefik`, `nginx`, every guest's hostname) → their own address
//!   (the mesh address when the guest has one, else its management address);
//! - service names routed through the internal proxy (`<service>.<domain>`, stack hostnames)
//!   → the proxy's mesh address;
//! - Swarm nodes (`<name>.<domain>`) → their node address.
//!
//! Every service name phoenix knows about resolves; everything else under the domain is
//! answered NXDOMAIN locally (`local=/domain/`), names outside go to the upstreams. No I/O.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;

use phoenix_model::model::{DesiredState, Guest};

use crate::RenderedFile;

pub const DNSMASQ_PATH: &str = "/etc/dnsmasq.d/phoenix.conf";

/// Why a name resolves to an address (kept for the plan and for `verify`'s expectations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordKind {
    Infrastructure,
    ProxiedService,
    SwarmNode,
}

/// The records the mesh DNS serves: fully qualified name → (address, why).
///
/// Later kinds win on a name clash, in this order: guest hostnames, Swarm node names,
/// services routed through the proxy, role names (`ca`, `traefik`, `nginx`, the CA's DNS
/// name). So `portainer.<domain>` is the route through Traefik even though the Portainer VM
/// is also called `portainer`, and `ca.<domain>` stays direct: the CA must be reachable
/// without the proxy to bootstrap TLS.
pub fn records(d: &DesiredState) -> BTreeMap<String, (IpAddr, RecordKind)> {
    let mut out = BTreeMap::new();
    let domain = &d.domain;
    let mesh = d.mesh().map(|b| b.name.clone());
    let preferred = |g: &Guest| -> Option<IpAddr> {
        mesh.as_deref()
            .and_then(|m| g.static_on(m))
            .and_then(|n| n.address())
            .or_else(|| g.addresses().next())
    };
    let fqdn = |name: &str| format!("{}.{domain}", name.to_ascii_lowercase());
    let live = || d.guests.values().filter(|g| !g.is_template);
    for g in live() {
        if let Some(a) = preferred(g) {
            out.insert(fqdn(&g.name), (a, RecordKind::Infrastructure));
        }
    }
    for id in d.roles.swarm_managers.iter().chain(&d.roles.swarm_workers) {
        // The node address: on the mesh when the node has a NIC there (Swarm's own traffic
        // and the proxy's routes use it), else its first static address.
        if let Some(g) = d.guest(*id)
            && let Some(a) = preferred(g)
        {
            out.insert(fqdn(&g.name), (a, RecordKind::SwarmNode));
        }
    }
    if let Some(p) = d
        .roles
        .internal_proxy
        .and_then(|id| d.guest(id))
        .and_then(preferred)
    {
        for g in live() {
            if let Some(ts) = &g.traefik_service {
                out.insert(fqdn(&ts.name), (p, RecordKind::ProxiedService));
            }
        }
        for s in d.stacks.values() {
            if let Some(h) = &s.public_hostname {
                out.insert(h.to_ascii_lowercase(), (p, RecordKind::ProxiedService));
            }
        }
    }
    let roles = [
        (d.roles.ca, "ca"),
        (d.roles.internal_proxy, "traefik"),
        (d.roles.gateway, "nginx"),
    ];
    for (id, name) in roles {
        if let Some(a) = id.and_then(|id| d.guest(id)).and_then(preferred) {
            out.insert(fqdn(name), (a, RecordKind::Infrastructure));
        }
    }
    if let Some(a) = d.roles.ca.and_then(|id| d.guest(id)).and_then(preferred) {
        out.insert(
            d.step_ca.dns_name.to_ascii_lowercase(),
            (a, RecordKind::Infrastructure),
        );
    }
    out
}

/// `/etc/dnsmasq.d/phoenix.conf`.
pub fn config(d: &DesiredState) -> RenderedFile {
    let mut s =
        String::from("# Managed by phoenix: edits are overwritten by the next `phoenix sync`.\n");
    s.push_str("bind-interfaces\nno-resolv\nno-hosts\ndomain-needed\nbogus-priv\n");
    for a in &d.dns.listen {
        let _ = writeln!(s, "listen-address={a}");
    }
    let _ = writeln!(s, "local=/{}/", d.domain);
    let _ = writeln!(s, "domain={}", d.domain);
    for u in &d.dns.upstream {
        let _ = writeln!(s, "server={u}");
    }
    for (name, (addr, kind)) in records(d) {
        let why = match kind {
            RecordKind::Infrastructure => "infrastructure",
            RecordKind::ProxiedService => "service via proxy",
            RecordKind::SwarmNode => "swarm node",
        };
        let _ = writeln!(s, "# {why}\nhost-record={name},{addr}");
    }
    RenderedFile::host(DNSMASQ_PATH, s)
}
