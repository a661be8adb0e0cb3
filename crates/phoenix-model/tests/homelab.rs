//! `examples/homelab`: the seed's post-migration topology validates with zero findings, and the
//! model built from it has the roles, bridges, NICs and firewall policy the example promises.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::net::IpAddr;
use std::path::Path;

use phoenix_model::model::{
    Addressing, BridgeRole, CertKind, Direction, Endpoint, Guest, GuestKind, GuestSource, NicKind,
    San, Scheme, SwarmRole, Verdict,
};
use phoenix_model::raw::GuestId;
use phoenix_model::{DesiredState, Validation, validate_dir};

mod common;
use common::copy_tree;

fn homelab() -> Validation {
    validate_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab"))
}

fn desired(v: &Validation) -> &DesiredState {
    v.desired.as_ref().expect("the hypervisor file loads")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn guest(d: &DesiredState, id: u32) -> &Guest {
    d.guest(GuestId(id))
        .unwrap_or_else(|| panic!("guest {id} exists"))
}

/// The guest's own firewall accepts `proto` traffic from `src` to `port` (rules only; the
/// default input policy is DROP everywhere in the example).
fn accepts(g: &Guest, src: IpAddr, proto: &str, port: u16) -> bool {
    g.firewall.enabled
        && g.firewall.rules.iter().any(|r| {
            r.enabled
                && r.direction == Direction::In
                && r.action == Verdict::Accept
                && r.proto.as_deref().is_none_or(|p| p == proto)
                && match &r.source {
                    None => true,
                    Some(Endpoint::Net(n)) => n.contains(&src),
                    Some(_) => false,
                }
                && (r.dport.is_empty() || r.dport.iter().any(|p| p.from <= port && port <= p.to))
        })
}

fn mesh_address(g: &Guest) -> IpAddr {
    g.static_on("vmbr100")
        .and_then(|n| n.address())
        .unwrap_or_else(|| panic!("guest {} has a static mesh address", g.id))
}

#[test]
fn no_findings_but_the_bind_mounts() {
    let v = homelab();
    let findings = v.findings();
    let text: Vec<String> = findings
        .iter()
        .map(|f| {
            format!(
                "{} {}:{}:{} {} {}",
                f.code,
                f.file.display(),
                f.line,
                f.column,
                f.pointer,
                f.message
            )
        })
        .collect();
    // Clean but for the bind mounts, read (certificates land at the paths they map to) but
    // not created as `mpN` yet.
    assert!(
        findings
            .iter()
            .all(|f| f.code == "PHX-W002" && f.pointer.ends_with("/mount_points")),
        "examples/homelab must validate cleanly:\n{}",
        text.join("\n")
    );
    assert!(!v.has_errors());
}

#[test]
fn roles() {
    let v = homelab();
    let d = desired(&v);
    assert_eq!(d.domain, "internal.thinkheads.ai");
    assert_eq!(d.roles.gateway, Some(GuestId(101)));
    assert_eq!(d.roles.internal_proxy, Some(GuestId(102)));
    assert_eq!(d.roles.ca, Some(GuestId(103)));
    assert_eq!(d.roles.swarm_managers, [GuestId(1001)]);
    assert_eq!(d.roles.swarm_workers, [GuestId(1002)]);
    for id in [101, 102, 103] {
        assert_eq!(guest(d, id).kind, GuestKind::Lxc, "{id}");
    }
    for id in [1001, 1002, 9000] {
        assert_eq!(guest(d, id).kind, GuestKind::Vm, "{id}");
    }
    assert_eq!(
        guest(d, 1001).swarm.as_ref().map(|s| s.role),
        Some(SwarmRole::Manager)
    );
    assert_eq!(guest(d, 1001).docker_stacks, ["portainer_service"]);
}

#[test]
fn bridges() {
    let v = homelab();
    let d = desired(&v);
    let names: Vec<&str> = d.bridges.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["vmbr0", "vmbr0.20", "vmbr100"]);

    let mgmt = d.bridge("vmbr0").expect("vmbr0");
    assert_eq!(mgmt.role, BridgeRole::Management);
    assert!(mgmt.vlan_aware);
    assert_eq!(mgmt.ports, ["enp6s0"]);
    assert_eq!(mgmt.address, Some("10.0.0.13/24".parse().expect("cidr")));
    assert_eq!(mgmt.gateway, Some(ip("10.0.0.1")));

    let public = d.bridge("vmbr0.20").expect("vmbr0.20");
    assert_eq!(public.role, BridgeRole::PublicVlan);
    assert_eq!(public.vlan, Some(("vmbr0".to_string(), 20)));
    assert_eq!(public.subnet, Some("203.0.113.0/24".parse().expect("cidr")));

    let mesh = d.mesh().expect("mesh bridge");
    assert_eq!(mesh.name, "vmbr100");
    assert_eq!(mesh.subnet, Some("172.16.100.0/24".parse().expect("cidr")));
    assert_eq!(mesh.address, Some("172.16.100.1/24".parse().expect("cidr")));
    assert_eq!(mesh.nat.as_ref().map(|n| n.uplink.as_str()), Some("vmbr0"));

    assert!(d.dns.enabled);
    assert_eq!(d.dns.listen, [ip("172.16.100.1")]);
    assert!(!d.dns.upstream.is_empty());
}

#[test]
fn nics() {
    let v = homelab();
    let d = desired(&v);

    // The gateway: a veth on the VLAN-aware vmbr0 tagged 20 (what the Proxmox API can
    // express), DHCP from the public VLAN; a static mesh NIC without a second default route.
    let gw = guest(d, 101);
    assert_eq!(gw.nics.len(), 2);
    let net0 = &gw.nics[0];
    assert_eq!((net0.bridge.as_str(), net0.tag), ("vmbr0", Some(20)));
    assert_eq!(net0.addressing, Addressing::Dhcp);
    assert_eq!(net0.kind, NicKind::Veth);
    assert!(gw.raw_lxc.is_empty(), "no raw lxc.* lines");
    let net1 = &gw.nics[1];
    assert_eq!(net1.bridge, "vmbr100");
    assert_eq!(net1.address(), Some(ip("172.16.100.10")));
    assert_eq!(net1.gateway(), None);

    for (id, addr) in [(102, "172.16.100.12"), (103, "172.16.100.11")] {
        let g = guest(d, id);
        assert_eq!(g.nics.len(), 1, "{id} is mesh-only");
        assert_eq!(g.nics[0].bridge, "vmbr100");
        assert_eq!(g.nics[0].address(), Some(ip(addr)));
        assert_eq!(g.nics[0].gateway(), Some(ip("172.16.100.1")));
        assert_eq!(g.nameservers, [ip("172.16.100.1")]);
    }

    // The Swarm VMs keep their management addresses and gain a mesh NIC, so Traefik (on the
    // mesh only) reaches Portainer directly.
    for (id, lan, mesh) in [
        (1001, "10.0.0.111", "172.16.100.21"),
        (1002, "10.0.0.102", "172.16.100.22"),
    ] {
        let g = guest(d, id);
        assert_eq!(g.nics.len(), 2, "{id}");
        assert_eq!(g.nics[0].bridge, "vmbr0");
        assert_eq!(g.nics[0].address(), Some(ip(lan)));
        assert_eq!(g.nics[0].gateway(), Some(ip("10.0.0.1")));
        assert_eq!(mesh_address(g), ip(mesh));
        assert_eq!(g.nics[1].gateway(), None);
        assert_eq!(
            g.source,
            GuestSource::Clone {
                from: GuestId(9000),
                snapshot: None
            }
        );
    }
    assert!(guest(d, 9000).is_template);

    // Every NIC has a fixed MAC (no drift) except the template's.
    for g in d.guests.values().filter(|g| !g.is_template) {
        assert!(g.nics.iter().all(|n| n.mac.is_some()), "guest {}", g.id);
        assert!(g.nics.iter().all(|n| n.firewall), "guest {}", g.id);
    }
}

#[test]
fn order() {
    let v = homelab();
    let d = desired(&v);
    let deps = |id| guest(d, id).dependencies.clone();
    assert_eq!(deps(102), [GuestId(103)]);
    assert_eq!(deps(101), [GuestId(103), GuestId(102)]);
    assert_eq!(deps(1001), [GuestId(103), GuestId(102)]);
    assert_eq!(deps(1002), [GuestId(1001)]);
    // Boot order follows the dependencies: CA, Traefik, gateway, manager, worker.
    let boot: Vec<Option<u32>> = [103, 102, 101, 1001, 1002]
        .iter()
        .map(|id| guest(d, *id).boot_order)
        .collect();
    assert_eq!(boot, [Some(1), Some(2), Some(3), Some(4), Some(5)]);
}

#[test]
fn routes() {
    let v = homelab();
    let d = desired(&v);
    let ca = guest(d, 103);
    let ts = ca.traefik_service.as_ref().expect("ca route");
    assert_eq!(
        (ts.name.as_str(), ts.port, ts.scheme),
        ("ca", 9000, Scheme::Https)
    );
    assert!(ca.has_feature("step_ca"));
    let portainer = guest(d, 1001)
        .traefik_service
        .as_ref()
        .expect("portainer route");
    assert_eq!(
        (portainer.name.as_str(), portainer.port, portainer.scheme),
        ("portainer", 9443, Scheme::Https)
    );
    for t in [ts, portainer] {
        assert_eq!(t.entrypoints, ["websecure"]);
        assert!(d.traefik.entrypoints.contains_key("websecure"));
    }
    let stack = d.stacks.get("portainer_service").expect("stack");
    assert!(
        stack.compose.is_some(),
        "stacks/portainer_service/docker-compose.yml is read"
    );
    let labels = &stack.environments["production"].traefik_labels["portainer"];
    for want in [
        "traefik.http.routers.portainer.entrypoints=websecure",
        "traefik.http.services.portainer.loadbalancer.server.port=9443",
        "traefik.http.services.portainer.loadbalancer.server.scheme=https",
    ] {
        assert!(labels.iter().any(|l| l == want), "missing label {want}");
    }
}

#[test]
fn firewall_policy() {
    let v = homelab();
    let d = desired(&v);
    assert!(d.firewall.enabled);
    assert_eq!(d.firewall.policy_in, Verdict::Drop);
    for g in d.guests.values() {
        assert!(g.firewall.enabled, "guest {} firewall", g.id);
        assert_eq!(g.firewall.policy_in, Verdict::Drop, "guest {}", g.id);
    }
    let (gateway, traefik, ca) = (guest(d, 101), guest(d, 102), guest(d, 103));
    let (manager, worker) = (guest(d, 1001), guest(d, 1002));
    let outside = ip("198.51.100.7");

    // The gateway answers the outside world on 80/443, nothing else.
    assert!(accepts(gateway, outside, "tcp", 80));
    assert!(accepts(gateway, outside, "tcp", 443));
    assert!(!accepts(gateway, outside, "tcp", 22));

    // Traefik only from the gateway.
    assert!(accepts(traefik, mesh_address(gateway), "tcp", 443));
    for other in [
        mesh_address(ca),
        mesh_address(manager),
        mesh_address(worker),
        outside,
    ] {
        assert!(
            !accepts(traefik, other, "tcp", 443),
            "{other} reaches Traefik"
        );
    }

    // Traefik reaches Portainer where it routes to: the manager's mesh address.
    assert!(accepts(manager, mesh_address(traefik), "tcp", 9443));
    assert!(!accepts(manager, outside, "tcp", 9443));

    // The CA answers every guest that needs certificates, and the hypervisor.
    assert!(accepts(ca, ip("172.16.100.1"), "tcp", 9000));
    for g in d
        .guests
        .values()
        .filter(|g| !g.is_template && (g.has_feature("trusted_ca") || g.has_feature("step_cli")))
    {
        assert!(
            accepts(ca, mesh_address(g), "tcp", 9000),
            "guest {} → CA",
            g.id
        );
    }
    assert!(!accepts(ca, outside, "tcp", 9000));

    // Swarm between the nodes, on the mesh.
    let (m, w) = (mesh_address(manager), mesh_address(worker));
    assert!(accepts(manager, w, "tcp", 2377));
    for (to, from) in [(manager, w), (worker, m)] {
        assert!(accepts(to, from, "tcp", 7946));
        assert!(accepts(to, from, "udp", 7946));
        assert!(accepts(to, from, "udp", 4789));
    }

    // Mesh DNS on the mesh gateway, for the mesh only.
    let dns = |proto: &str| {
        d.firewall.rules.iter().any(|r| {
            r.direction == Direction::In
                && r.action == Verdict::Accept
                && r.proto.as_deref() == Some(proto)
                && r.dport.iter().any(|p| p.from <= 53 && 53 <= p.to)
                && r.dest == Some(Endpoint::Net("172.16.100.1/32".parse().expect("cidr")))
                && r.source == Some(Endpoint::Net("172.16.100.0/24".parse().expect("cidr")))
        })
    };
    assert!(dns("udp") && dns("tcp"));
}

#[test]
fn certificates() {
    let v = homelab();
    let d = desired(&v);
    let by_guest = |id: u32| {
        d.certificates
            .iter()
            .filter(|c| c.guest == GuestId(id) && c.kind == CertKind::Server)
            .flat_map(|c| c.sans.iter().cloned())
            .collect::<Vec<San>>()
    };
    let dns = |s: &str| San::Dns(s.to_string());
    let gw = by_guest(101);
    assert!(gw.contains(&dns("portainer.internal.thinkheads.ai")));
    assert!(gw.contains(&San::Ip(ip("172.16.100.10"))));
    let proxy = by_guest(102);
    for name in [
        "traefik.internal.thinkheads.ai",
        "portainer.internal.thinkheads.ai",
        "ca.internal.thinkheads.ai",
    ] {
        assert!(
            proxy.contains(&dns(name)),
            "Traefik's certificate covers {name}"
        );
    }
    assert!(proxy.contains(&San::Ip(ip("172.16.100.12"))));
    let portainer = by_guest(1001);
    assert!(portainer.contains(&dns("portainer.internal.thinkheads.ai")));
    assert!(portainer.contains(&San::Ip(ip("172.16.100.21"))));
    // Secrets are references, never plaintext.
    let p = d.portainer.as_ref().expect("portainer_api");
    assert!(p.admin_password.as_ref().is_some_and(|s| !s.is_plain()));
    assert!(d.step_ca.password.as_ref().is_some_and(|s| !s.is_plain()));
}

/// The bash design's latent failure, caught: with Traefik outside the Swarm, a labelled stack
/// service whose port the compose file does not publish is reachable only on the overlay —
/// PHX-W036 at the port label, with the two working alternatives in the hint. The example
/// publishes 9443 in host mode, so it has no such warning (see `zero_findings`).
#[test]
fn overlay_only_route_is_warned() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab"),
        tmp.path(),
    );
    let compose = tmp
        .path()
        .join("stacks/portainer_service/docker-compose.yml");
    let text = std::fs::read_to_string(&compose).unwrap();
    let start = text.find("    ports:\n").unwrap();
    let end = text[start..].find("    volumes:\n").unwrap() + start;
    std::fs::write(&compose, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let v = validate_dir(tmp.path());
    let w: Vec<_> = v
        .findings()
        .into_iter()
        .filter(|f| f.code == "PHX-W036")
        .collect();
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(
        w[0].pointer,
        "/docker_stacks/portainer_service/environments/production/services/portainer/traefik_labels/5"
    );
    assert!(w[0].message.contains("port 9443"), "{}", w[0].message);
    let hint = w[0].hint.clone();
    assert!(
        hint.contains("mode: host") && hint.contains("Swarm service"),
        "{hint}"
    );
}
