//! Identity and references: duplicate VMIDs, addresses, MACs and hostnames; dependencies and
//! clone sources that do not exist; dependency cycles (every member named). No I/O.

use crate::diag::Quote;
use std::collections::{BTreeMap, HashMap};

use petgraph::graph::DiGraph;

use crate::diag::{Code, Diagnostics};
use crate::load::RawConfig;
use crate::model::{DesiredState, Guest, GuestId, GuestSource};
use crate::source::Location;

pub fn check(d: &DesiredState, raw: &RawConfig, diags: &mut Diagnostics) {
    duplicate_vmids(raw, diags);
    duplicates(d, diags);
    references(d, diags);
    cycles(d, diags);
    templates_with_snapshots(d, diags);
}

/// A template that takes snapshots stays a guest: Proxmox neither snapshots a template nor
/// converts a guest that holds snapshots.
fn templates_with_snapshots(d: &DesiredState, diags: &mut Diagnostics) {
    for g in d.guests.values().filter(|g| g.is_template) {
        let snaps = g.snapshots();
        if snaps.is_empty() {
            continue;
        }
        diags.push(
            crate::diag::Diagnostic::new(
                Code::TemplateWithSnapshots,
                &g.loc.child("is_template"),
                format!(
                    "guest {} is a template that takes snapshots ({}); Proxmox cannot convert a guest holding snapshots, so phoenix takes them and keeps {} a stopped guest instead of a template",
                    g.id,
                    snaps.join(", "),
                    g.id
                ),
                "clones from its snapshots need it this way; drop its snapshots (and `template_snapshot_name` from its clones) to have it converted",
            )
            .at_key(),
        );
    }
}

fn duplicate_vmids(raw: &RawConfig, diags: &mut Diagnostics) {
    let mut first: HashMap<GuestId, &Location> = HashMap::new();
    let all = raw
        .lxcs
        .iter()
        .map(|(id, l)| (*id, &l.loc))
        .chain(raw.vms.iter().map(|v| (v.value.vmid, &v.loc)));
    for (id, loc) in all {
        if let Some(prev) = first.get(&id) {
            let at = if loc.pointer.starts_with("/vms/") {
                loc.child("vmid")
            } else {
                loc.clone()
            };
            diags.emit(
                Code::DuplicateVmid,
                &at,
                format!(
                    "VMID {id} is already used by the guest at {}",
                    describe(prev)
                ),
                "every container and VM needs its own VMID; renumber one of them",
            );
        } else {
            first.insert(id, loc);
        }
    }
}

fn describe(loc: &Location) -> String {
    if loc.pointer.starts_with("/vms/") {
        format!("phoenix_vm_configs.json{}", loc.pointer)
    } else {
        format!("phoenix_lxc_configs.json{}", loc.pointer)
    }
}

fn duplicates(d: &DesiredState, diags: &mut Diagnostics) {
    let mut ips: HashMap<std::net::IpAddr, GuestId> = HashMap::new();
    let mut macs: HashMap<crate::model::MacAddr, GuestId> = HashMap::new();
    let mut names: HashMap<String, GuestId> = HashMap::new();
    let host_addrs: Vec<_> = d
        .bridges
        .iter()
        .filter_map(|b| b.address.map(|a| (a.addr(), b.name.clone())))
        .collect();
    for g in d.guests.values() {
        match names.get(&g.name.to_ascii_lowercase()) {
            Some(other) => diags.emit(
                Code::DuplicateHostname,
                &g.loc.child("name"),
                format!("hostname `{}` is also guest {other}'s", g.name),
                "hostnames become DNS names; give each guest its own",
            ),
            None => {
                names.insert(g.name.to_ascii_lowercase(), g.id);
            }
        }
        for n in &g.nics {
            if let Some(a) = n.address() {
                if let Some((_, bridge)) = host_addrs.iter().find(|(h, _)| *h == a) {
                    diags.emit(
                        Code::DuplicateAddress,
                        &n.loc.child("ip"),
                        format!("{a} is the host's own address on {bridge}"),
                        "give the guest a free address in the subnet",
                    );
                } else if let Some(other) = ips.get(&a) {
                    diags.emit(
                        Code::DuplicateAddress,
                        &n.loc.child("ip"),
                        format!("{a} is already guest {other}'s address"),
                        "every NIC needs its own address; renumber one of them",
                    );
                } else {
                    ips.insert(a, g.id);
                }
            }
            if let Some(m) = n.mac {
                if let Some(other) = macs.get(&m) {
                    let at = n.loc.child("hwaddr");
                    diags.emit(
                        Code::DuplicateMac,
                        &at,
                        format!("MAC {m} is already used by guest {other}"),
                        "remove the MAC to let Proxmox generate one, or pick another",
                    );
                } else {
                    macs.insert(m, g.id);
                }
            }
        }
    }
}

fn references(d: &DesiredState, diags: &mut Diagnostics) {
    for g in d.guests.values() {
        let dep_field = "dependencies";
        let deps_loc = g.loc.child(dep_field);
        for (i, dep) in g.dependencies.iter().enumerate() {
            if !d.guests.contains_key(dep) {
                diags.emit(
                    Code::UnknownDependency,
                    &deps_loc.child(i),
                    format!("guest {} depends on {dep}, which is not defined", g.id),
                    "define that guest or remove the dependency",
                );
            } else if *dep == g.id {
                diags.emit(
                    Code::DependencyCycle,
                    &deps_loc.child(i),
                    format!("guest {} depends on itself", g.id),
                    "remove the self-dependency",
                );
            }
        }
        if let GuestSource::Clone { from, .. } = &g.source {
            let field = match g.kind {
                crate::model::GuestKind::Lxc => "clone_from_ctid",
                crate::model::GuestKind::Vm => "clone_from_vmid",
            };
            match d.guests.get(from) {
                None => diags.emit(
                    Code::UnknownCloneSource,
                    &g.loc.child(field),
                    format!("guest {} clones {from}, which is not defined", g.id),
                    "define the clone source (usually a template) or create from a template instead",
                ),
                Some(src) if src.kind != g.kind => diags.emit(
                    Code::UnknownCloneSource,
                    &g.loc.child(field),
                    format!("guest {} ({}) cannot clone {from}, which is a {}", g.id, g.kind, src.kind),
                    "containers clone containers and VMs clone VMs",
                ),
                Some(src) => unknown_snapshot(g, src, field, diags),
            }
        }
    }
}

/// A clone of `src@snap` where `src`'s configuration takes no snapshot `snap` (its
/// `template_snapshot_name` as a template, or `pre-configured` / `final-form` with lifecycle
/// snapshots).
fn unknown_snapshot(g: &Guest, src: &Guest, field: &str, diags: &mut Diagnostics) {
    let GuestSource::Clone {
        snapshot: Some(snap),
        ..
    } = &g.source
    else {
        return;
    };
    let created = src.snapshots();
    if created.contains(&snap.as_str()) {
        return;
    }
    let why = match created.as_slice() {
        [] => format!("{} names no snapshot", src.id),
        some => format!("{} creates `{}`", src.id, some.join("`, `")),
    };
    diags.push(
        crate::diag::Diagnostic::new(
            Code::UnknownSnapshot,
            &g.loc.child("template_snapshot_name"),
            format!(
                "guest {} clones {}@{}, a snapshot no guest's configuration creates ({why}); the clone fails unless it exists on the node",
                g.id,
                src.id,
                snap.quoted()
            ),
            format!(
                "give template {} \"template_snapshot_name\": \"{}\" (or \"enable_lifecycle_snapshots\": true for `final-form`), or remove `template_snapshot_name` here to clone {}'s current state (`{field}`)",
                src.id,
                snap.quoted(),
                src.id
            ),
        ),
    );
}

/// Cycles over dependencies plus clone sources, each reported once with every member.
fn cycles(d: &DesiredState, diags: &mut Diagnostics) {
    let mut graph = DiGraph::<GuestId, ()>::with_capacity(d.guests.len(), d.guests.len());
    let nodes: BTreeMap<GuestId, _> = d
        .guests
        .keys()
        .map(|id| (*id, graph.add_node(*id)))
        .collect();
    for g in d.guests.values() {
        let clone = match &g.source {
            GuestSource::Clone { from, .. } => Some(*from),
            _ => None,
        };
        for dep in g.dependencies.iter().copied().chain(clone) {
            if dep == g.id {
                continue;
            }
            if let (Some(a), Some(b)) = (nodes.get(&g.id), nodes.get(&dep)) {
                graph.add_edge(*a, *b, ());
            }
        }
    }
    for scc in petgraph::algo::tarjan_scc(&graph) {
        if scc.len() < 2 {
            continue;
        }
        let mut members: Vec<GuestId> = scc.iter().map(|n| graph[*n]).collect();
        members.sort();
        let names: Vec<String> = members
            .iter()
            .map(|id| {
                format!(
                    "{id} ({})",
                    d.guests.get(id).map(|g| g.name.as_str()).unwrap_or("?")
                )
            })
            .collect();
        let first = members[0];
        let loc = d
            .guests
            .get(&first)
            .map(|g| g.loc.child("dependencies"))
            .unwrap_or_else(|| Location::new(crate::source::FileId(0), ""));
        diags.emit(
            Code::DependencyCycle,
            &loc,
            format!("dependency cycle between {}", names.join(", ")),
            "guests are created in dependency order; break the cycle by removing one dependency or clone source",
        );
    }
}
