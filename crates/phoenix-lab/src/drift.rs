//! Drift of a running lab's network that is repaired in place (no namespace is rebuilt): a
//! link set down, an address or a route gone, a namespace's `resolv.conf` edited, the NAT
//! table flushed or changed. [`observe`] lists it (for the plan's notes and `verify`),
//! [`repair`] puts it back. I/O: `ip`, `nft` in the lab's namespaces, `/etc/netns`.

use std::fmt;
use std::path::Path;
use std::time::Instant;

use ipnet::IpNet;
use phoenix_verify::report::{ProbeResult, Status, Subject};
use serde_json::Value;

use crate::run::run;
use crate::status::LinkStatus;
use crate::teardown::NETNS_ETC;
use crate::topology::{LabTopology, Namespace, Route};
use crate::{LabError, state_dir};

/// The NAT table as listed right after it was loaded (normalised), to compare with later.
const NAT_LISTING: &str = "nat.listing";

/// One difference between the running lab and its topology, repaired in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    LinkDown {
        ns: String,
        dev: String,
    },
    AddressMissing {
        ns: String,
        dev: String,
        cidr: IpNet,
    },
    RouteMissing {
        route: Route,
    },
    /// A DHCP client's namespace without a default route (its lease gives it).
    DhcpRouteMissing {
        ns: String,
        nic: String,
    },
    ResolvConf {
        ns: String,
    },
    Nat {
        ns: String,
        why: String,
    },
}

impl Drift {
    /// The namespace it is in.
    pub fn ns(&self) -> &str {
        match self {
            Drift::LinkDown { ns, .. }
            | Drift::AddressMissing { ns, .. }
            | Drift::DhcpRouteMissing { ns, .. }
            | Drift::ResolvConf { ns }
            | Drift::Nat { ns, .. } => ns,
            Drift::RouteMissing { route } => &route.ns,
        }
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::LinkDown { ns, dev } => write!(f, "{ns}: link {dev} is down"),
            Drift::AddressMissing { ns, dev, cidr } => write!(f, "{ns}: {dev} lacks {cidr}"),
            Drift::RouteMissing { route } => write!(
                f,
                "{}: no route {} via {}",
                route.ns,
                route
                    .dest
                    .map_or_else(|| "default".to_string(), |d| d.to_string()),
                route.via
            ),
            Drift::DhcpRouteMissing { ns, nic } => {
                write!(
                    f,
                    "{ns}: no default route (the DHCP lease of {nic} gives it)"
                )
            }
            Drift::ResolvConf { ns } => write!(
                f,
                "{ns}: {NETNS_ETC}/{ns}/resolv.conf is not the lab's (edited or gone)"
            ),
            Drift::Nat { ns, why } => write!(f, "{ns}: the NAT ruleset {why}"),
        }
    }
}

/// The drift of every namespace of `t` that exists (a missing namespace or link is not drift
/// but a network to rebuild: [`crate::realise::network_problems`]).
pub fn observe(t: &LabTopology) -> Vec<Drift> {
    let present = crate::teardown::namespaces(&t.prefix);
    // One thread per namespace: each asks `ip` (and `nft`) in its own processes.
    std::thread::scope(|s| {
        let running: Vec<_> = t
            .namespaces
            .iter()
            .filter(|n| present.contains(&n.name))
            .map(|n| s.spawn(move || observe_ns(t, n)))
            .collect();
        running
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

fn observe_ns(t: &LabTopology, n: &Namespace) -> Vec<Drift> {
    let ns = n.name.as_str();
    let mut out = Vec::new();
    // Links and routes by one `ip` (a batch, one JSON document per line).
    let listed =
        crate::run::run_stdin("ip", &["-n", ns, "-j", "-batch", "-"], BATCH).unwrap_or_default();
    let mut docs = listed
        .lines()
        .map(|l| serde_json::from_str::<Vec<Value>>(l).unwrap_or_default());
    let links = crate::status::parse_links(&docs.next().unwrap_or_default());
    let routes = parse_routes(&docs.next().unwrap_or_default());
    let link = |dev: &str| -> Option<&LinkStatus> { links.iter().find(|l| l.name == dev) };
    for dev in t.links_in(ns) {
        if link(dev).is_some_and(|l| !l.up) {
            out.push(Drift::LinkDown {
                ns: ns.to_string(),
                dev: dev.to_string(),
            });
        }
    }
    for a in t.addresses.iter().filter(|a| a.ns == ns) {
        let want = a.cidr.to_string();
        if link(&a.dev).is_some_and(|l| !l.addresses.contains(&want)) {
            out.push(Drift::AddressMissing {
                ns: ns.to_string(),
                dev: a.dev.clone(),
                cidr: a.cidr,
            });
        }
    }
    for r in t.routes.iter().filter(|r| r.ns == ns) {
        if !routes
            .iter()
            .any(|(dest, via)| *dest == r.dest && *via == Some(r.via))
        {
            out.push(Drift::RouteMissing { route: r.clone() });
        }
    }
    for c in t.dhcp_clients.iter().filter(|c| c.ns == ns) {
        if !routes.iter().any(|(dest, _)| dest.is_none()) {
            out.push(Drift::DhcpRouteMissing {
                ns: ns.to_string(),
                nic: c.nic.clone(),
            });
        }
    }
    let resolv = Path::new(NETNS_ETC).join(ns).join("resolv.conf");
    if std::fs::read_to_string(&resolv).ok() != Some(resolv_conf(t, n)) {
        out.push(Drift::ResolvConf { ns: ns.to_string() });
    }
    if ns == t.hv
        && let Some(why) = nat_drift(t)
    {
        out.push(Drift::Nat {
            ns: ns.to_string(),
            why,
        });
    }
    out
}

/// What [`observe_ns`] asks `ip` in one run.
const BATCH: &[u8] = b"addr show\nroute show\n";

/// The routes of `ns`: (destination, `None` for the default; gateway).
fn routes(ns: &str) -> Vec<(Option<IpNet>, Option<std::net::IpAddr>)> {
    let Ok(out) = run("ip", &["-n", ns, "-j", "route", "show"]) else {
        return Vec::new();
    };
    parse_routes(&serde_json::from_str::<Vec<Value>>(&out).unwrap_or_default())
}

/// The routes of `ip -j route show`'s document. Pure.
fn parse_routes(v: &[Value]) -> Vec<(Option<IpNet>, Option<std::net::IpAddr>)> {
    v.iter()
        .filter_map(|r| {
            let dst = r.get("dst")?.as_str()?;
            let dest = if dst == "default" {
                None
            } else if dst.contains('/') {
                Some(dst.parse().ok()?)
            } else {
                Some(IpNet::from(dst.parse::<std::net::IpAddr>().ok()?))
            };
            let via = r
                .get("gateway")
                .and_then(Value::as_str)
                .and_then(|g| g.parse().ok());
            Some((dest, via))
        })
        .collect()
}

/// The tables the NAT ruleset declares (`table FAMILY NAME`), in order.
fn nat_tables(ruleset: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for l in ruleset.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if let ["table", family, name, ..] = w.as_slice() {
            let t = (family.to_string(), name.trim_end_matches('{').to_string());
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// A listing without the counters' values (they change with traffic). Pure.
pub fn normalise_listing(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut words = line.split_whitespace().peekable();
        let mut kept: Vec<&str> = Vec::new();
        while let Some(w) = words.next() {
            kept.push(w);
            if w == "packets" || w == "bytes" {
                words.next();
            }
        }
        out.push_str(&kept.join(" "));
        out.push('\n');
    }
    out
}

/// The NAT tables of `t`'s hypervisor as they are now (normalised); `None` when one cannot be
/// listed (gone).
fn nat_listing(t: &LabTopology) -> Option<String> {
    let mut out = String::new();
    for (family, name) in nat_tables(&t.nat_ruleset) {
        let listed = run(
            "ip",
            &[
                "netns", "exec", &t.hv, "nft", "list", "table", &family, &name,
            ],
        )
        .ok()?;
        out.push_str(&normalise_listing(&listed));
    }
    Some(out)
}

/// Record the NAT tables just loaded in `t`'s hypervisor (what [`observe`] compares with).
pub fn record_nat(t: &LabTopology) -> Result<(), LabError> {
    let Some(listing) = nat_listing(t) else {
        return Err(LabError::Provision(format!(
            "the NAT ruleset of {} cannot be listed after loading it",
            t.hv
        )));
    };
    crate::services::write(&state_dir(&t.prefix).join(NAT_LISTING), &listing)
}

/// Why the NAT differs from what was loaded, if it does (nothing recorded: not judged).
fn nat_drift(t: &LabTopology) -> Option<String> {
    let recorded = std::fs::read_to_string(state_dir(&t.prefix).join(NAT_LISTING)).ok()?;
    match nat_listing(t) {
        None => Some("table is gone".to_string()),
        Some(now) if now != recorded => Some("differs from the one loaded".to_string()),
        Some(_) => None,
    }
}

/// Load the NAT ruleset of `t` in its hypervisor again (idempotent: the file deletes its
/// tables first) and record it.
pub fn load_nat(t: &LabTopology) -> Result<(), LabError> {
    let file = state_dir(&t.prefix).join("nat.nft");
    crate::services::write(&file, &t.nat_ruleset)?;
    let path = file.to_string_lossy().into_owned();
    run("ip", &["netns", "exec", &t.hv, "nft", "-f", &path])?;
    record_nat(t)
}

/// Put back what `drift` lists (links up, addresses, then routes observed again, as a lost
/// address takes its routes with it; `resolv.conf` rewritten in place, so processes that
/// bind-mounted it see the fix; the NAT reloaded). A DHCP client's route comes back with its
/// lease ([`crate::realise::upkeep`]), not here. Returns what it did.
pub fn repair(t: &LabTopology, drift: &[Drift]) -> Result<Vec<String>, LabError> {
    let mut said = Vec::new();
    for d in drift {
        match d {
            Drift::LinkDown { ns, dev } => {
                run("ip", &["-n", ns, "link", "set", dev, "up"])?;
            }
            Drift::AddressMissing { ns, dev, cidr } => {
                let cidr = cidr.to_string();
                run("ip", &["-n", ns, "addr", "replace", &cidr, "dev", dev])?;
            }
            Drift::ResolvConf { ns } => {
                let Some(n) = t.namespaces.iter().find(|n| n.name == *ns) else {
                    continue;
                };
                let file = Path::new(NETNS_ETC).join(ns).join("resolv.conf");
                // Written in place (not renamed over): processes started with the file
                // bind-mounted see the same inode.
                std::fs::write(&file, resolv_conf(t, n)).map_err(|e| LabError::io(&file, e))?;
            }
            Drift::Nat { .. } => load_nat(t)?,
            Drift::RouteMissing { .. } | Drift::DhcpRouteMissing { .. } => continue,
        }
        said.push(format!("repaired: {d}"));
    }
    // Routes after the addresses they go through.
    if drift
        .iter()
        .any(|d| !matches!(d, Drift::ResolvConf { .. } | Drift::Nat { .. }))
    {
        let present = crate::teardown::namespaces(&t.prefix);
        for r in t.routes.iter().filter(|r| present.contains(&r.ns)) {
            let now = routes(&r.ns);
            if now
                .iter()
                .any(|(dest, via)| *dest == r.dest && *via == Some(r.via))
            {
                continue;
            }
            let dest = r
                .dest
                .map_or_else(|| "default".to_string(), |d| d.to_string());
            let via = r.via.to_string();
            run("ip", &["-n", &r.ns, "route", "replace", &dest, "via", &via])?;
            said.push(format!(
                "repaired: {}",
                Drift::RouteMissing { route: r.clone() }
            ));
        }
    }
    Ok(said)
}

/// `verify`'s view of the same drift: one check per namespace of `t` (links up, addresses,
/// routes, `resolv.conf`; the NAT in the hypervisor), failing with what drifted.
pub fn checks(t: &LabTopology) -> Vec<ProbeResult> {
    let start = Instant::now();
    let drift = observe(t);
    let present = crate::teardown::namespaces(&t.prefix);
    t.namespaces
        .iter()
        .map(|n| {
            let mine: Vec<String> = drift
                .iter()
                .filter(|d| d.ns() == n.name)
                .map(ToString::to_string)
                .collect();
            let (status, observed) = if !present.contains(&n.name) {
                let e = format!("namespace {} is gone", n.name);
                (Status::Fail { evidence: e.clone() }, e)
            } else if mine.is_empty() {
                (Status::Pass, "as built".to_string())
            } else {
                let e = mine.join("; ");
                (Status::Fail { evidence: e.clone() }, e)
            };
            ProbeResult {
                id: format!("lab/net/{}", n.name),
                subject: Subject::Named(n.name.clone()),
                check: if n.name == t.hv {
                    "links up, addresses, routes, resolv.conf and the NAT ruleset as the lab built them"
                        .to_string()
                } else {
                    "links up, addresses, routes and resolv.conf as the lab built them".to_string()
                },
                status,
                observed,
                duration: start.elapsed(),
            }
        })
        .collect()
}

/// The `resolv.conf` of namespace `n` (bind-mounted by `ip netns exec`): what a build writes
/// and what drift is measured against. Pure.
pub(crate) fn resolv_conf(t: &LabTopology, n: &Namespace) -> String {
    format!(
        "# phoenix lab {}: {}\nnameserver {}\n",
        t.prefix, n.name, n.resolver
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_left_out_of_a_listing() {
        let a = "\t\tiifname \"vmbr0\" counter packets 12 bytes 3400 drop comment \"x\"\n";
        let b = "\t\tiifname \"vmbr0\" counter packets 0 bytes 0 drop comment \"x\"\n";
        assert_eq!(normalise_listing(a), normalise_listing(b));
        assert_ne!(
            normalise_listing(a),
            normalise_listing("\t\tiifname \"vmbr0\" accept\n")
        );
    }

    #[test]
    fn routes_of_an_ip_document() {
        let v: Vec<Value> = serde_json::from_str(
            r#"[{"dst":"default","gateway":"172.16.100.1","dev":"eth0","flags":[]},
                {"dst":"172.16.100.0/24","dev":"eth0","protocol":"kernel","scope":"link"},
                {"dst":"198.51.100.80","gateway":"10.0.0.1","dev":"eth0"}]"#,
        )
        .unwrap_or_default();
        let gw = |s: &str| s.parse::<std::net::IpAddr>().ok();
        let net = |s: &str| s.parse::<IpNet>().ok();
        assert_eq!(
            parse_routes(&v),
            vec![
                (None, gw("172.16.100.1")),
                (net("172.16.100.0/24"), None),
                (net("198.51.100.80/32"), gw("10.0.0.1")),
            ]
        );
    }

    #[test]
    fn the_tables_a_ruleset_declares() {
        let text = "#!/usr/sbin/nft -f\ntable ip phoenix_nat\ndelete table ip phoenix_nat\ntable ip phoenix_nat {\n  chain postrouting {\n  }\n}\n";
        assert_eq!(
            nat_tables(text),
            vec![("ip".to_string(), "phoenix_nat".to_string())]
        );
    }
}
