//! The `ip -batch` text that builds a [`LabTopology`]. Pure: text out, no I/O.
//!
//! Three phases, because `ip -batch` lines carry no `-n`: the root batch creates the
//! namespaces, the bridges and every veth pair directly inside their target namespaces
//! (`link add … netns A type veth peer name … netns B` never leaves a device in the root
//! namespace); the hypervisor batch (`ip -n HV -batch`) enslaves ports, addresses the
//! bridges and creates the macvlans straight into their guests (the parent bridge lives there);
//! then one batch per other namespace (run in parallel) sets MACs, addresses, links up and
//! routes.

use std::fmt::Write;

use crate::topology::LabTopology;

/// Phase 1, run in the root namespace: namespaces, bridges, veth pairs.
pub fn root_batch(t: &LabTopology) -> String {
    let mut s = String::new();
    for n in &t.namespaces {
        let _ = writeln!(s, "netns add {}", n.name);
    }
    for b in &t.bridges {
        let _ = writeln!(s, "link add {} netns {} type bridge", b.name, b.ns);
    }
    for v in &t.veths {
        let _ = writeln!(
            s,
            "link add {} netns {} type veth peer name {} netns {}",
            v.host_name, v.host_ns, v.peer_name, v.peer_ns
        );
    }
    s
}

/// Phase 2 (hypervisor) and 3 (everything else): the batch for namespace `ns`, run with
/// `ip -n NS -batch`.
pub fn ns_batch(t: &LabTopology, ns: &str) -> String {
    let mut s = String::from("link set lo up\n");
    for b in t.bridges.iter().filter(|b| b.ns == ns) {
        let _ = writeln!(s, "link set {} up", b.name);
    }
    for v in &t.veths {
        if v.host_ns == ns {
            if let Some(m) = &v.master {
                let _ = writeln!(s, "link set {} master {m}", v.host_name);
            }
            let _ = writeln!(s, "link set {} up", v.host_name);
        }
        if v.peer_ns == ns {
            if let Some(mac) = &v.peer_mac {
                let _ = writeln!(s, "link set {} address {mac}", v.peer_name);
            }
            let _ = writeln!(s, "link set {} up", v.peer_name);
        }
    }
    for m in &t.macvlans {
        if m.parent_ns == ns {
            let mac = m
                .mac
                .as_ref()
                .map(|a| format!(" address {a}"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "link add link {} name {} netns {}{mac} type macvlan mode bridge",
                m.parent, m.name, m.ns
            );
        }
        if m.ns == ns {
            let _ = writeln!(s, "link set {} up", m.name);
        }
    }
    for a in t.addresses.iter().filter(|a| a.ns == ns) {
        let _ = writeln!(s, "addr add {} dev {}", a.cidr, a.dev);
    }
    for r in t.routes.iter().filter(|r| r.ns == ns) {
        match r.dest {
            Some(d) => writeln!(s, "route add {d} via {}", r.via),
            None => writeln!(s, "route add default via {}", r.via),
        }
        .unwrap_or_default();
    }
    s
}

/// The practical floor for benchmarks: the same namespaces and veth pairs, one root batch,
/// nothing else.
pub fn floor_batch(t: &LabTopology) -> String {
    root_batch(t)
}
