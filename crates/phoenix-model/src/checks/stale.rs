//! Addresses left behind by a renumbering: firewall rules (W010), nameservers (W011) and
//! certificate IP SANs (W012) naming an address inside one of the platform's subnets that no
//! guest and no host interface has; certificates that do not cover the guest they are meant
//! for (W013); firewall rules repeating an earlier rule of the same list (W033).
//!
//! No I/O. Every occurrence is reported at its own location; the lookups are hash sets, so the
//! cost is linear in the number of rules, nameservers and SANs.

use crate::diag::Quote;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::diag::{Code, Diagnostics};
use crate::load::RawConfig;
use crate::model::{
    BridgeRole, CertKind, Certificate, DesiredState, Endpoint, FirewallRule, Guest, GuestId, San,
};
use crate::raw::{OneOrMany, RawNic};
use crate::source::Location;

pub fn check(d: &DesiredState, raw: &RawConfig, diags: &mut Diagnostics) {
    let book = AddressBook::new(d);
    for (what, rules) in rule_lists(d) {
        for r in rules {
            stale_endpoints(&book, &what, r, diags);
        }
        duplicate_rules(&what, rules, diags);
    }
    nameservers(&book, &MeshDns::new(d), raw, diags);
    certificate_sans(&book, raw, diags);
    certificate_gaps(d, raw, diags);
}

/// The platform's subnets and every address that belongs to someone in them.
///
/// The subnets are those of the bridges whose addresses the configuration plans: the
/// management bridge and the mesh. The public VLAN is left out even when `public_subnet` is
/// known: its addresses are handed out by an upstream DHCP server, so an address there that no
/// guest has is not evidence of a renumbering.
pub(crate) struct AddressBook {
    subnets: Vec<IpNet>,
    owned: HashSet<IpAddr>,
}

impl AddressBook {
    pub(crate) fn new(d: &DesiredState) -> Self {
        let subnets = d
            .bridges
            .iter()
            .filter(|b| b.role != BridgeRole::PublicVlan)
            .filter_map(|b| b.subnet)
            .collect();
        let mut owned: HashSet<IpAddr> = d.guests.values().flat_map(Guest::addresses).collect();
        for b in &d.bridges {
            owned.extend(b.address.map(|a| a.addr()));
            owned.extend(b.gateway);
        }
        owned.extend(d.dns.listen.iter().copied());
        AddressBook { subnets, owned }
    }

    /// The platform subnet `a` lies in when nobody has it; `None` when it is owned or outside
    /// every platform subnet (public addresses are not ours to judge).
    pub(crate) fn stale(&self, a: IpAddr) -> Option<IpNet> {
        if self.owned.contains(&a) {
            return None;
        }
        self.subnets.iter().copied().find(|s| s.contains(&a))
    }
}

const STALE_HINT: &str = "the address belongs to no guest or host interface (left over from a renumbering?); write the current address of the guest it meant, or remove it";

/// Every rule list with a description for messages.
fn rule_lists(d: &DesiredState) -> Vec<(String, &[FirewallRule])> {
    let mut out: Vec<(String, &[FirewallRule])> =
        vec![("cluster firewall rule".to_string(), &d.firewall.rules)];
    for g in d.guests.values() {
        out.push((
            format!("firewall rule of guest {}", g.id),
            &g.firewall.rules,
        ));
    }
    for s in d.stacks.values() {
        for (env, e) in &s.environments {
            out.push((
                format!("firewall rule of stack {} ({env})", s.name),
                &e.firewall_rules,
            ));
        }
    }
    out
}

/// A single address (`10.0.0.10` or `10.0.0.10/32`); subnets, ranges, aliases are not.
fn single_address(e: &Endpoint) -> Option<IpAddr> {
    match e {
        Endpoint::Net(n) if n.prefix_len() == n.max_prefix_len() => Some(n.addr()),
        _ => None,
    }
}

fn stale_endpoints(book: &AddressBook, what: &str, r: &FirewallRule, diags: &mut Diagnostics) {
    for (key, e) in [("source", &r.source), ("dest", &r.dest)] {
        let Some(a) = e.as_ref().and_then(single_address) else {
            continue;
        };
        if let Some(subnet) = book.stale(a) {
            let comment = r
                .comment
                .as_deref()
                .map(|c| format!(" (\"{}\")", c.quoted()))
                .unwrap_or_default();
            diags.emit(
                Code::StaleRuleAddress,
                &r.loc.child(key),
                format!("{what}{comment} names {key} {a}, which is in {subnet} but belongs to no guest or host"),
                STALE_HINT,
            );
        }
    }
}

/// W033 at every rule whose match key an earlier rule of the same list already has.
fn duplicate_rules(what: &str, rules: &[FirewallRule], diags: &mut Diagnostics) {
    let mut first = HashMap::with_capacity(rules.len());
    for r in rules {
        match first.get(&r.match_key()) {
            Some(earlier) => {
                let earlier: &&FirewallRule = earlier;
                diags.emit(
                    Code::DuplicateRule,
                    &r.loc,
                    format!(
                        "{what} repeats the rule at {} (same direction, action, protocol, addresses, ports and interface)",
                        earlier.loc.pointer
                    ),
                    "remove the repeated rule: it matches exactly the packets the earlier one does (only the comment may differ)",
                );
            }
            None => {
                first.insert(r.match_key(), r);
            }
        }
    }
}

/// The addresses of the host and those the mesh DNS listens on (when it runs).
struct MeshDns {
    host: HashSet<IpAddr>,
    listen: Option<Vec<IpAddr>>,
}

impl MeshDns {
    fn new(d: &DesiredState) -> Self {
        MeshDns {
            host: d
                .bridges
                .iter()
                .filter_map(|b| b.address.map(|a| a.addr()))
                .collect(),
            listen: d.dns.enabled.then(|| d.dns.listen.clone()),
        }
    }

    /// A host address the mesh DNS does not listen on: `Some(listen addresses)`.
    fn misses(&self, a: IpAddr) -> Option<&[IpAddr]> {
        let listen = self.listen.as_deref()?;
        (self.host.contains(&a) && !listen.contains(&a) && !listen.is_empty()).then_some(listen)
    }
}

fn nameservers(book: &AddressBook, dns: &MeshDns, raw: &RawConfig, diags: &mut Diagnostics) {
    if let Some(h) = &raw.hypervisor {
        let ifaces = h.value.network.as_ref().and_then(|n| n.interfaces.as_ref());
        let loc = h
            .loc
            .child("network")
            .child("interfaces")
            .child("dns_nameservers");
        for (i, s) in ifaces
            .map(|f| f.dns_nameservers.as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            stale_nameserver(book, "the host", s, &loc.child(i), diags);
        }
    }
    let lxcs = raw.lxcs.iter().map(|(id, l)| {
        (
            *id,
            &l.loc,
            [&l.value.network_config, &l.value.secondary_network_config],
        )
    });
    let vms = raw.vms.iter().map(|l| {
        (
            l.value.vmid,
            &l.loc,
            [&l.value.network_config, &l.value.secondary_network_config],
        )
    });
    for (id, loc, nics) in lxcs.chain(vms) {
        let who = format!("guest {id}");
        for (field, nic) in ["network_config", "secondary_network_config"]
            .into_iter()
            .zip(nics)
        {
            let Some(nic) = nic else { continue };
            guest_nameservers(book, dns, &who, nic, &loc.child(field), diags);
        }
    }
}

fn guest_nameservers(
    book: &AddressBook,
    dns: &MeshDns,
    who: &str,
    nic: &RawNic,
    loc: &Location,
    diags: &mut Diagnostics,
) {
    for (key, v) in [
        ("nameservers", &nic.nameservers),
        ("nameserver", &nic.nameserver),
    ] {
        let items: Vec<(String, Location)> = match v {
            None => Vec::new(),
            Some(OneOrMany::One(s)) => OneOrMany::One(s.clone())
                .items()
                .into_iter()
                .map(|i| (i, loc.child(key)))
                .collect(),
            Some(OneOrMany::Many(items)) => items
                .iter()
                .enumerate()
                .map(|(i, s)| (s.clone(), loc.child(key).child(i)))
                .collect(),
        };
        for (item, at) in items {
            stale_nameserver(book, who, &item, &at, diags);
            let Ok(a) = item.trim().parse::<IpAddr>() else {
                continue;
            };
            if let Some(listen) = dns.misses(a) {
                let listen: Vec<String> = listen.iter().map(|l| l.to_string()).collect();
                diags.emit(
                    Code::NameserverNotMeshDns,
                    &at,
                    format!(
                        "nameserver {a} of {who} is a host address, but the mesh DNS listens on {} only; its lookups go unanswered",
                        listen.join(", ")
                    ),
                    format!(
                        "use {} if the guest can reach it, or add {a} to `dns_server.listen_addresses`",
                        listen.join(" or ")
                    ),
                );
            }
        }
    }
}

fn stale_nameserver(
    book: &AddressBook,
    who: &str,
    s: &str,
    loc: &Location,
    diags: &mut Diagnostics,
) {
    let Ok(a) = s.trim().parse::<IpAddr>() else {
        return; // reported by build
    };
    if let Some(subnet) = book.stale(a) {
        diags.emit(
            Code::StaleNameserver,
            loc,
            format!(
                "nameserver {a} of {who} is in {subnet} but belongs to no guest or host; name resolution through it fails"
            ),
            "use the mesh DNS server on the host (the mesh bridge's address) or another live resolver",
        );
    }
}

fn certificate_sans(book: &AddressBook, raw: &RawConfig, diags: &mut Diagnostics) {
    for c in &raw.certificates {
        for (i, s) in c.value.sans.iter().enumerate() {
            let Ok(a) = s.parse::<IpAddr>() else { continue };
            if let Some(subnet) = book.stale(a) {
                diags.emit(
                    Code::StaleSan,
                    &c.loc.child("sans").child(i),
                    format!(
                        "certificate `{}` has the IP SAN {a}, which is in {subnet} but belongs to no guest or host",
                        c.value.common_name.quoted()
                    ),
                    "replace it with the guest's current address so clients that dial it can verify the certificate",
                );
            }
        }
    }
}

/// W013. For each guest with server certificates, the certificates *together* must cover:
///
/// - its service name `<traefik_service.name>.<domain>` (wildcards count), when it has a
///   Traefik service: the proxy verifies the backend by that name;
/// - the static address the platform dials: its address on the mesh bridge if it has one,
///   else its address on the management bridge (Traefik routes and mesh clients use it).
///
/// Together, because a guest often holds several server certificates for different listeners
/// (Portainer's UI and its Docker daemon): each need only be covered by one of them. Client
/// certificates are not checked. The finding points at the `sans` of the certificate that
/// covers the service name (the one meant for the service), else the guest's first one.
fn certificate_gaps(d: &DesiredState, raw: &RawConfig, diags: &mut Diagnostics) {
    let mut by_guest: HashMap<GuestId, Vec<&Certificate>> = HashMap::new();
    for c in d.certificates.iter().filter(|c| c.kind == CertKind::Server) {
        by_guest.entry(c.guest).or_default().push(c);
    }
    let with_sans: HashSet<&str> = raw
        .certificates
        .iter()
        .filter(|c| !c.value.sans.is_empty())
        .map(|c| c.loc.pointer.as_str())
        .collect();
    let mut guests: Vec<_> = by_guest.into_iter().collect();
    guests.sort_by_key(|(id, _)| *id);
    for (id, certs) in guests {
        let Some(g) = d.guest(id) else { continue };
        let name = g
            .traefik_service
            .as_ref()
            .map(|t| format!("{}.{}", t.name, d.domain));
        let covers_name = |c: &&Certificate| {
            name.as_deref()
                .is_some_and(|n| c.sans.iter().any(|s| s.covers_name(n)))
        };
        let Some(anchor) = certs
            .iter()
            .copied()
            .find(covers_name)
            .or(certs.first().copied())
        else {
            continue;
        };
        let at = if with_sans.contains(anchor.loc.pointer.as_str()) {
            anchor.loc.child("sans")
        } else {
            anchor.loc.clone()
        };
        if let Some(n) = &name
            && !certs.iter().any(covers_name)
        {
            diags.emit(
                Code::CertificateGap,
                &at,
                format!("no server certificate of guest {id} covers its service name {n}"),
                format!(
                    "add `{n}` (or `*.{}`) to the SANs of `{}`",
                    d.domain,
                    anchor.common_name.quoted()
                ),
            );
        }
        if let Some((bridge, a)) = dialled_address(d, g) {
            let ip = San::Ip(a);
            if !certs.iter().any(|c| c.sans.contains(&ip)) {
                diags.emit(
                    Code::CertificateGap,
                    &at,
                    format!("no server certificate of guest {id} covers its address {a} on {bridge}"),
                    format!("add `{a}` to the SANs of `{}` so clients dialling the address can verify it", anchor.common_name.quoted()),
                );
            }
        }
    }
}

/// The mesh address of `g`, else its management address, with the bridge name.
fn dialled_address<'a>(d: &'a DesiredState, g: &Guest) -> Option<(&'a str, IpAddr)> {
    [BridgeRole::Mesh, BridgeRole::Management]
        .into_iter()
        .filter_map(|role| d.bridges.iter().find(|b| b.role == role))
        .find_map(|b| {
            g.static_on(&b.name)
                .and_then(|n| n.address())
                .map(|a| (b.name.as_str(), a))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_addresses_only() {
        let net = |s: &str| Endpoint::Net(s.parse().unwrap_or_else(|_| IpNet::default()));
        assert_eq!(
            single_address(&net("10.0.0.10/32")),
            Some(IpAddr::from([10, 0, 0, 10]))
        );
        assert_eq!(single_address(&net("10.0.0.0/24")), None);
        assert_eq!(single_address(&net("0.0.0.0/0")), None);
        assert_eq!(single_address(&Endpoint::Alias("dns".into())), None);
    }

    #[test]
    fn stale_needs_a_platform_subnet_and_no_owner() {
        let book = AddressBook {
            subnets: vec!["10.0.0.0/24".parse().unwrap_or_default()],
            owned: [IpAddr::from([10, 0, 0, 13])].into_iter().collect(),
        };
        assert!(book.stale(IpAddr::from([10, 0, 0, 153])).is_some());
        assert!(book.stale(IpAddr::from([10, 0, 0, 13])).is_none());
        assert!(book.stale(IpAddr::from([8, 8, 8, 8])).is_none());
    }
}
