//! The reachability matrix derived from the firewall intent (pure, no I/O).
//!
//! Semantics implemented (Proxmox VE firewall, <https://pve.proxmox.com/wiki/Firewall>):
//! - A guest NIC is filtered only when the cluster firewall, the guest firewall and the NIC's
//!   `firewall=1` are all on, and the NIC is a bridged veth (macvlan bypasses the bridge).
//!   For an unfiltered destination no *deny* is expected (everything is admitted).
//! - A guest's chain is its own rules followed by phoenix's derived rules, exactly as
//!   [`phoenix_render::firewall::merge`] writes them into `VMID.fw`; cluster `[RULES]` apply
//!   to the hosts, not to guests, so they play no part here.
//! - Rules are evaluated in order, the first enabled match wins, otherwise the direction's
//!   policy applies. A packet is admitted when the source's OUT chain (if the source is a
//!   filtered guest) and the destination's IN chain both accept. REJECT and DROP both deny.
//! - Matching: protocol (`tcp`/`6` or any), destination port, `iface netN`, source and dest
//!   (CIDR, range, cluster alias, phoenix ipset). A rule with a source-port condition or an
//!   unknown alias/ipset makes the outcome undecidable: that pair is left out (not guessed).
//! - Probed destination: the guest's mesh address (else its first static address); sources:
//!   every other guest with a static address on the same bridge, and the host's own address
//!   on it. Allowed pairs come from IN ACCEPT rules whose source is exactly one such address
//!   and that name ports; each named TCP port of a guest also gets one *denied* pair from the
//!   first source (guests by id, then the host) the chain does not admit.
//! - Only TCP is probed (UDP has no connect; DNS covers UDP 53).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use phoenix_model::DesiredState;
use phoenix_model::model::{Direction, Endpoint, FirewallRule, Guest, GuestId, NicKind, Verdict};
use phoenix_render::firewall::{derived_rules, lookup_tables, merge};
use serde::Serialize;

use crate::report::Subject;
use crate::tcp::Expect;

/// One pair to probe.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Reach {
    pub to: GuestId,
    pub port: u16,
    pub expect: Expect,
    pub from: Subject,
    pub from_addr: IpAddr,
    pub addr: IpAddr,
    /// The rule comment or the policy that decides it.
    pub why: String,
}

struct Resolver {
    aliases: BTreeMap<String, IpAddr>,
    sets: BTreeMap<String, Vec<IpNet>>,
}

impl Resolver {
    /// `Some(bool)`: matches or not; `None`: cannot tell.
    fn matches(&self, ep: &Option<Endpoint>, addr: IpAddr) -> Option<bool> {
        let strip = |s: &str| {
            s.trim_start_matches("dc/")
                .trim_start_matches("guest/")
                .to_ascii_lowercase()
        };
        match ep {
            None => Some(true),
            Some(Endpoint::Net(n)) => Some(n.contains(&addr)),
            Some(Endpoint::Range(a, b)) => Some(*a <= addr && addr <= *b),
            Some(Endpoint::Alias(a)) => self.aliases.get(&strip(a)).map(|x| *x == addr),
            Some(Endpoint::IpSet(s)) => self
                .sets
                .get(&strip(s))
                .map(|v| v.iter().any(|n| n.contains(&addr))),
        }
    }
}

struct Packet<'a> {
    dir: Direction,
    /// `tcp` or `udp`.
    proto: &'a str,
    /// The other side: source for IN, destination for OUT.
    peer: IpAddr,
    local: IpAddr,
    iface: &'a str,
    port: u16,
}

/// First match wins; `None` when undecidable. Returns the verdict and why.
fn evaluate(
    rules: &[FirewallRule],
    policy: Verdict,
    p: &Packet,
    r: &Resolver,
) -> Option<(Verdict, String)> {
    for rule in rules.iter().filter(|x| x.enabled && x.direction == p.dir) {
        let number = match p.proto {
            "tcp" => "6",
            "udp" => "17",
            other => other,
        };
        if rule
            .proto
            .as_deref()
            .is_some_and(|x| !x.eq_ignore_ascii_case(p.proto) && x != number)
        {
            continue;
        }
        if rule.iface.as_deref().is_some_and(|i| i != p.iface) {
            continue;
        }
        if !rule.dport.is_empty()
            && !rule
                .dport
                .iter()
                .any(|d| d.from <= p.port && p.port <= d.to)
        {
            continue;
        }
        let (src, dst) = match p.dir {
            Direction::In => (p.peer, p.local),
            Direction::Out => (p.local, p.peer),
        };
        let m = r.matches(&rule.source, src)? && r.matches(&rule.dest, dst)?;
        if m && !rule.sport.is_empty() {
            return None;
        }
        if m {
            let why = rule
                .comment
                .clone()
                .unwrap_or_else(|| format!("{} rule", rule.action));
            return Some((rule.action, why));
        }
    }
    Some((policy, format!("policy {policy}")))
}

/// The probed address of a guest: its mesh address, else its first static one.
fn probe_nic<'g>(d: &DesiredState, g: &'g Guest) -> Option<&'g phoenix_model::model::Nic> {
    let mesh = d.mesh().map(|b| b.name.as_str());
    mesh.and_then(|m| g.static_on(m))
        .or_else(|| g.nics.iter().find(|n| n.address().is_some()))
}

fn filtered(d: &DesiredState, g: &Guest, nic: &phoenix_model::model::Nic) -> bool {
    d.firewall.enabled && g.firewall.enabled && nic.firewall && nic.kind == NicKind::Veth
}

/// The firewall intent of every live guest: its whole chain (own rules, then phoenix's
/// derived ones) and the aliases/ipsets to resolve them.
struct Policy<'d> {
    d: &'d DesiredState,
    chains: BTreeMap<GuestId, Vec<FirewallRule>>,
    r: Resolver,
}

impl<'d> Policy<'d> {
    fn new(d: &'d DesiredState) -> Self {
        let derived = derived_rules(d);
        let (aliases, sets) = lookup_tables(d);
        let r = Resolver { aliases, sets };
        let chains = d
            .guests
            .values()
            .filter(|g| !g.is_template)
            .map(|g| {
                let own = derived.guests.get(&g.id).map(Vec::as_slice).unwrap_or(&[]);
                (g.id, merge(&g.firewall.rules, own))
            })
            .collect();
        Policy { d, chains, r }
    }

    /// Is a `proto`/`port` packet from `src` (guest `sg`'s address on `nic`'s bridge, or the
    /// host's) to guest `g`'s `nic` admitted? `None` when undecidable.
    fn admits(
        &self,
        (src, sg): (IpAddr, Option<&Guest>),
        (g, nic): (&Guest, &phoenix_model::model::Nic),
        proto: &str,
        port: u16,
    ) -> Option<(bool, String)> {
        let addr = nic.address()?;
        if let Some(s) = sg {
            let snic = s.static_on(&nic.bridge)?;
            if filtered(self.d, s, snic) {
                let p = Packet {
                    dir: Direction::Out,
                    proto,
                    peer: addr,
                    local: src,
                    iface: &format!("net{}", snic.index),
                    port,
                };
                let (v, why) = evaluate(&self.chains[&s.id], s.firewall.policy_out, &p, &self.r)?;
                if v != Verdict::Accept {
                    return Some((false, format!("source OUT: {why}")));
                }
            }
        }
        if !filtered(self.d, g, nic) {
            return Some((true, "destination not filtered".into()));
        }
        let p = Packet {
            dir: Direction::In,
            proto,
            peer: src,
            local: addr,
            iface: &format!("net{}", nic.index),
            port,
        };
        let (v, why) = evaluate(&self.chains[&g.id], g.firewall.policy_in, &p, &self.r)?;
        Some((v == Verdict::Accept, why))
    }
}

/// One Swarm port between two nodes, judged against the firewall intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwarmPort {
    pub from: GuestId,
    pub to: GuestId,
    pub proto: &'static str,
    pub port: u16,
    pub from_addr: IpAddr,
    pub addr: IpAddr,
    /// `Some(true)` admitted, `Some(false)` denied, `None` undecidable.
    pub admitted: Option<bool>,
    /// The rule comment or policy that decides it.
    pub why: String,
}

/// The ports Docker Swarm needs between its nodes (2377/tcp to every manager, 7946/tcp+udp
/// and 4789/udp between every pair, both ways; Docker's documentation), each judged against
/// the firewall intent on the nodes' probed (mesh) addresses. Pure.
pub fn swarm_ports(d: &DesiredState) -> Vec<SwarmPort> {
    let policy = Policy::new(d);
    let nodes: Vec<&Guest> = d
        .guests
        .values()
        .filter(|g| !g.is_template && g.swarm.is_some())
        .collect();
    let mut out = Vec::new();
    for to in &nodes {
        let Some(nic) = probe_nic(d, to) else {
            continue;
        };
        let Some(addr) = nic.address() else { continue };
        let manager = to
            .swarm
            .as_ref()
            .is_some_and(|m| m.role == phoenix_model::model::SwarmRole::Manager);
        for from in nodes.iter().filter(|f| f.id != to.id) {
            let Some(from_addr) = from.static_on(&nic.bridge).and_then(|n| n.address()) else {
                continue;
            };
            let mut wanted = vec![("tcp", 7946), ("udp", 7946), ("udp", 4789)];
            if manager {
                wanted.insert(0, ("tcp", 2377));
            }
            for (proto, port) in wanted {
                let verdict = policy.admits((from_addr, Some(from)), (to, nic), proto, port);
                out.push(SwarmPort {
                    from: from.id,
                    to: to.id,
                    proto,
                    port,
                    from_addr,
                    addr,
                    admitted: verdict.as_ref().map(|v| v.0),
                    why: verdict.map_or_else(
                        || "undecidable (source-port rule or unknown alias)".into(),
                        |v| v.1,
                    ),
                });
            }
        }
    }
    out
}

/// Derive the matrix for every live guest.
pub fn reachability(d: &DesiredState) -> Vec<Reach> {
    let policy = Policy::new(d);
    let (chains, r) = (&policy.chains, &policy.r);
    let live: Vec<&Guest> = d.guests.values().filter(|g| !g.is_template).collect();
    let mut out = BTreeSet::new();
    for g in &live {
        let Some(nic) = probe_nic(d, g) else { continue };
        let Some(addr) = nic.address() else { continue };
        let iface = format!("net{}", nic.index);
        let rules = &chains[&g.id];
        // Sources on the same segment: other guests, then the host.
        let mut sources: Vec<(Subject, IpAddr, Option<&Guest>)> = live
            .iter()
            .filter(|s| s.id != g.id)
            .filter_map(|s| {
                s.static_on(&nic.bridge)
                    .and_then(|n| n.address())
                    .map(|a| (Subject::Guest(s.id), a, Some(*s)))
            })
            .collect();
        if let Some(a) = d.bridge(&nic.bridge).and_then(|b| b.address) {
            sources.push((Subject::Host, a.addr(), None));
        }
        let admitted = |src: IpAddr, sg: Option<&Guest>, port: u16| {
            policy.admits((src, sg), (g, nic), "tcp", port)
        };
        let mut ports = BTreeSet::new();
        for rule in rules
            .iter()
            .filter(|x| x.enabled && x.direction == Direction::In)
        {
            if rule.proto.as_deref() != Some("tcp")
                || rule.iface.as_deref().is_some_and(|i| i != iface)
            {
                continue;
            }
            let named: Vec<u16> = rule.dport.iter().map(|p| p.from).collect();
            ports.extend(named.iter().copied());
            if rule.action != Verdict::Accept {
                continue;
            }
            for (subject, src, sg) in &sources {
                if !matches!(&rule.source, Some(Endpoint::Net(n)) if n.prefix_len() == n.max_prefix_len() && n.addr() == *src)
                    && !matches!(&rule.source, Some(Endpoint::Alias(_)) if r.matches(&rule.source, *src) == Some(true))
                {
                    continue;
                }
                for &port in &named {
                    if let Some((ok, why)) = admitted(*src, *sg, port) {
                        let expect = if ok { Expect::Allow } else { Expect::Deny };
                        out.insert(Reach {
                            to: g.id,
                            port,
                            expect,
                            from: subject.clone(),
                            from_addr: *src,
                            addr,
                            why,
                        });
                    }
                }
            }
        }
        if !filtered(d, g, nic) {
            continue;
        }
        for port in ports {
            let denied =
                sources
                    .iter()
                    .find_map(|(subject, src, sg)| match admitted(*src, *sg, port) {
                        Some((false, why)) => Some((subject.clone(), *src, why)),
                        _ => None,
                    });
            if let Some((from, from_addr, why)) = denied {
                out.insert(Reach {
                    to: g.id,
                    port,
                    expect: Expect::Deny,
                    from,
                    from_addr,
                    addr,
                    why,
                });
            }
        }
    }
    out.into_iter().collect()
}

/// How the probed matrix went: allowed and denied pairs, each counted with how many held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MatrixCounts {
    pub allowed: usize,
    pub allowed_ok: usize,
    pub denied: usize,
    pub denied_ok: usize,
}

impl MatrixCounts {
    /// Count `pairs` against their results (same order, one result per pair).
    pub fn of(pairs: &[Reach], results: &[crate::report::ProbeResult]) -> Self {
        let mut c = MatrixCounts::default();
        for (p, r) in pairs.iter().zip(results) {
            let ok = matches!(r.status, crate::report::Status::Pass);
            match p.expect {
                Expect::Allow => {
                    c.allowed += 1;
                    c.allowed_ok += usize::from(ok);
                }
                Expect::Deny => {
                    c.denied += 1;
                    c.denied_ok += usize::from(ok);
                }
            }
        }
        c
    }

    pub fn holds(&self) -> bool {
        self.allowed_ok == self.allowed && self.denied_ok == self.denied
    }
}

impl std::fmt::Display for MatrixCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "firewall matrix: {} allowed connect ({} ok), {} denied blocked ({} ok)",
            self.allowed, self.allowed_ok, self.denied, self.denied_ok
        )
    }
}

/// The matrix's summary line (`fw/matrix`): both kinds of pair counted, passing when every
/// pair held; the failing pairs are the `fw/…` lines that failed.
pub fn matrix_summary(
    pairs: &[Reach],
    results: &[crate::report::ProbeResult],
) -> crate::report::ProbeResult {
    use crate::report::{ProbeResult, Status};
    let c = MatrixCounts::of(pairs, results);
    let text = c.to_string();
    let status = if c.holds() {
        Status::Pass
    } else {
        let failed: Vec<&str> = results
            .iter()
            .filter(|r| r.is_fail())
            .map(|r| r.id.as_str())
            .collect();
        Status::Fail {
            evidence: format!("{text}; failed: {}", failed.join(", ")),
        }
    };
    ProbeResult {
        id: "fw/matrix".into(),
        subject: Subject::Named("fw".into()),
        check: text.clone(),
        status,
        observed: text,
        duration: results.iter().map(|r| r.duration).max().unwrap_or_default(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod summary_tests {
    use super::*;
    use crate::report::{ProbeResult, Status};

    #[test]
    fn the_matrix_summary_counts_both_kinds() {
        let pair = |expect| Reach {
            to: GuestId(102),
            port: 443,
            expect,
            from: Subject::Host,
            from_addr: "10.0.0.1".parse().unwrap(),
            addr: "10.0.0.2".parse().unwrap(),
            why: "x".into(),
        };
        let res = |id: &str, status| ProbeResult {
            id: id.into(),
            subject: Subject::Host,
            check: "c".into(),
            status,
            observed: String::new(),
            duration: std::time::Duration::ZERO,
        };
        let pairs = [pair(Expect::Allow), pair(Expect::Allow), pair(Expect::Deny)];
        let ok = [
            res("fw/a", Status::Pass),
            res("fw/b", Status::Pass),
            res("fw/c", Status::Pass),
        ];
        let s = matrix_summary(&pairs, &ok);
        assert_eq!(s.status, Status::Pass);
        assert_eq!(
            s.check,
            "firewall matrix: 2 allowed connect (2 ok), 1 denied blocked (1 ok)"
        );
        let bad = [
            res("fw/a", Status::Pass),
            res(
                "fw/b",
                Status::Fail {
                    evidence: "e".into(),
                },
            ),
            res("fw/c", Status::Pass),
        ];
        let s = matrix_summary(&pairs, &bad);
        assert_eq!(
            s.status,
            Status::Fail {
                evidence: "firewall matrix: 2 allowed connect (1 ok), 1 denied blocked (1 ok); failed: fw/b".into()
            }
        );
    }
}
