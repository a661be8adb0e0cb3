//! `phoenix_render::graph` on examples/homelab: what the picture holds (every bridge, guest,
//! NIC address, the route hop by hop, the Swarm), golden DOT and Mermaid text, and each format
//! read by a real reader — Graphviz's `dot` lays the DOT out, `xmllint` parses the SVG.

mod ingress_support;

use std::io::Write;
use std::process::{Command, Stdio};

use ingress_support::{homelab_dir, load, tool};
use phoenix_model::model::GuestId;
use phoenix_render::graph::{self, GraphEdge};

fn homelab_graph() -> graph::Graph {
    graph::graph(&load(&homelab_dir()), &["traefik-public"])
}

/// `program args…` reading `input` on stdin: its exit status and stderr.
fn feed(program: &std::path::Path, args: &[&str], input: &str) -> (bool, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    child
        .stdin
        .take()
        .map(|mut i| i.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_homelab_picture_holds_the_platform() {
    let g = homelab_graph();
    let bridges: Vec<&str> = g.bridges.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(bridges, ["vmbr0", "vmbr0.20", "vmbr100"]);
    assert!(
        g.bridges[2].label.contains("NAT out of vmbr0"),
        "{:?}",
        g.bridges[2]
    );
    let e = |from: u32, to: u32, label: &str| GraphEdge {
        from: GuestId(from),
        to: GuestId(to),
        label: label.into(),
    };
    assert_eq!(
        g.route,
        vec![
            e(101, 102, "1 https :443"),
            e(102, 103, "2 https :9000"),
            e(102, 1001, "2 https :9443"),
        ]
    );
    assert_eq!(g.swarm, vec![GuestId(1001), GuestId(1002)]);
    assert!(g.needs.contains(&e(1001, 9000, "clone of")));
    let nic = |id: u32, bridge: &str| {
        g.nics
            .iter()
            .find(|n| n.guest == GuestId(id) && n.bridge == bridge)
            .map(|n| n.label.clone())
    };
    assert_eq!(nic(101, "vmbr0").as_deref(), Some("eth0 dhcp (VLAN 20)"));
    assert_eq!(
        nic(102, "vmbr100").as_deref(),
        Some("eth0 172.16.100.12/24")
    );
    let template = g
        .guests
        .iter()
        .find(|x| x.id == GuestId(9000))
        .map(|x| x.template);
    assert_eq!(template, Some(true));
}

#[test]
fn dot_and_mermaid_golden() {
    let g = homelab_graph();
    insta::assert_snapshot!("homelab_graph_dot", graph::dot(&g));
    insta::assert_snapshot!("homelab_graph_mermaid", graph::mermaid(&g));
}

#[test]
fn graphviz_lays_out_the_dot() {
    let Some(dot) = tool("dot", &[]) else { return };
    let (ok, stderr) = feed(&dot, &["-Tsvg"], &graph::dot(&homelab_graph()));
    assert!(ok && stderr.trim().is_empty(), "dot: {stderr}");
}

#[test]
fn the_svg_is_well_formed_and_names_everything() {
    let svg = graph::svg(&homelab_graph());
    for want in [
        "vmbr0.20",
        "vmbr100",
        "lxc 101 nginx",
        "vm 1001 portainer-manager",
        "172.16.100.21/24",
        "1 https :443",
        "Docker Swarm (overlay traefik-public)",
    ] {
        assert!(svg.contains(want), "{want} missing from the SVG");
    }
    let Some(xmllint) = tool("xmllint", &[]) else {
        return;
    };
    let (ok, stderr) = feed(&xmllint, &["--noout", "-"], &svg);
    assert!(ok, "xmllint: {stderr}");
}

/// The README's picture is this renderer's output, kept current.
#[test]
fn the_readme_picture_is_current() {
    let path = ingress_support::manifest_dir().join("../../docs/homelab.svg");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == graph::svg(&homelab_graph()),
        "docs/homelab.svg is out of date: `phoenix graph --config examples/homelab --out docs/homelab.svg`"
    );
}
