//! Unit tests of the topology on `examples/homelab`.

#![allow(clippy::expect_used)]

use std::path::Path;

use super::*;

fn homelab() -> DesiredState {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    let v = phoenix_model::validate_dir(&dir);
    v.desired.expect("examples/homelab validates")
}

#[test]
fn prefix_is_validated() {
    for ok in ["a", "phx", "t1a2b3", "000000"] {
        assert!(validate_prefix(ok).is_ok(), "{ok}");
    }
    for bad in ["", "toolong", "PHX", "a-b", "a b", "ä", "a/b", "a."] {
        assert!(validate_prefix(bad).is_err(), "{bad:?}");
    }
    assert!(topology(&homelab(), "Bad").is_err());
}

#[test]
fn names_are_unique_short_and_prefixed() {
    let t = topology(&homelab(), "t1a2b3").expect("topology");
    assert_eq!(name_problems(&t), Vec::<String>::new());
    let names: Vec<&str> = t.namespaces.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "t1a2b3-hv",
            "t1a2b3-wan",
            "t1a2b3-g101",
            "t1a2b3-g102",
            "t1a2b3-g103",
            "t1a2b3-g1001",
            "t1a2b3-g1002"
        ],
        "templates (9000) are not realised"
    );
    for v in &t.veths {
        assert!(v.host_name.len() <= IFNAME_MAX && v.peer_name.len() <= IFNAME_MAX);
    }
}

#[test]
fn long_ids_fall_back_to_short_host_names() {
    let mut d = homelab();
    let mut g = d.guests.values().next().expect("a guest").clone();
    g.id = GuestId(999_999_999);
    d.guests.insert(g.id, g);
    let t = topology(&d, "abcdef").expect("topology");
    assert_eq!(name_problems(&t), Vec::<String>::new());
}

#[test]
fn homelab_wiring() {
    let t = topology(&homelab(), "phx").expect("topology");
    let bridges: Vec<(&str, &str)> = t
        .bridges
        .iter()
        .map(|b| (b.ns.as_str(), b.name.as_str()))
        .collect();
    assert_eq!(
        bridges,
        [
            ("phx-hv", "vmbr0"),
            ("phx-hv", "vmbr0.20"),
            ("phx-hv", "vmbr100"),
            ("phx-wan", "inet0")
        ]
    );
    // The gateway's tagged NIC lands on the public VLAN's plain bridge.
    let gw_public: Vec<&Veth> = t
        .veths
        .iter()
        .filter(|v| v.peer_ns == "phx-g101" && v.peer_name == "eth0")
        .collect();
    let gw_macvlan = t.macvlans.iter().find(|m| m.ns == "phx-g101");
    let parent = gw_public
        .first()
        .and_then(|v| v.master.as_deref())
        .or(gw_macvlan.map(|m| m.parent.as_str()));
    assert_eq!(parent, Some("vmbr0.20"));
    // Uplink: the model's port on vmbr0, the management gateway inside wan.
    let up = t
        .veths
        .iter()
        .find(|v| v.peer_name == WAN_UPLINK)
        .expect("uplink");
    assert_eq!(
        (up.host_name.as_str(), up.master.as_deref()),
        ("enp6s0", Some("vmbr0"))
    );
    let addr = |ns: &str, dev: &str| {
        t.addresses
            .iter()
            .filter(|a| a.ns == ns && a.dev == dev)
            .map(|a| a.cidr.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(addr("phx-wan", "up0"), ["10.0.0.1/24"]);
    assert_eq!(addr("phx-wan", "pub0"), ["203.0.113.1/24"]);
    assert_eq!(
        addr("phx-wan", "inet0"),
        ["198.51.100.1/24", "198.51.100.53/32", "198.51.100.80/32"]
    );
    assert_eq!(addr("phx-hv", "vmbr100"), ["172.16.100.1/24"]);
    assert_eq!(addr("phx-g102", "eth0"), ["172.16.100.12/24"]);
    assert_eq!(addr("phx-g101", "eth0"), Vec::<String>::new(), "DHCP");
    let default = |ns: &str| {
        t.routes
            .iter()
            .find(|r| r.ns == ns && r.dest.is_none())
            .map(|r| r.via.to_string())
    };
    assert_eq!(default("phx-hv").as_deref(), Some("10.0.0.1"));
    assert_eq!(default("phx-g103").as_deref(), Some("172.16.100.1"));
    assert_eq!(default("phx-g1001").as_deref(), Some("10.0.0.1"));
    let g102 = t.namespace_of("traefik").expect("by name");
    assert_eq!(g102.resolver.to_string(), "172.16.100.1");
    assert_eq!(
        t.namespace_of("102").map(|n| n.name.as_str()),
        Some("phx-g102")
    );
    assert!(t.nat_ruleset.contains("masquerade"));
}

#[test]
fn batches_never_address_the_root_namespace() {
    let t = topology(&homelab(), "phx").expect("topology");
    let root = crate::batch::root_batch(&t);
    for line in root.lines() {
        assert!(
            line.starts_with("netns add phx-") || line.contains(" netns phx-"),
            "root batch line without a target namespace: {line}"
        );
        if line.contains("type veth") {
            assert_eq!(line.matches(" netns phx-").count(), 2, "{line}");
        }
    }
    let hv = crate::batch::ns_batch(&t, "phx-hv");
    assert!(hv.contains("link set enp6s0 master vmbr0"));
    assert!(hv.contains("route add default via 10.0.0.1"));
}
