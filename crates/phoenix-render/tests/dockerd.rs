//! The Swarm VMs' dockerd files on `examples/homelab`: golden snapshots of `daemon.json` and the
//! drop-in per Swarm VM, and the facts dockerd depends on checked directly (hosts only in the
//! file, TLS on the node's mesh address, the server certificate paths).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use phoenix_model::DesiredState;
use phoenix_render::{FileTarget, dockerd};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn homelab() -> DesiredState {
    let dir = repo_root().join("examples/homelab");
    phoenix_model::validate_dir(&dir)
        .desired
        .unwrap_or_else(|| panic!("{} does not build", dir.display()))
}

#[test]
fn homelab_swarm_vms_get_daemon_json_and_drop_in() {
    let d = homelab();
    let nodes = dockerd::engine_nodes(&d);
    let swarm: Vec<_> = d
        .guests
        .values()
        .filter(|g| g.swarm.is_some() && !g.is_template)
        .map(|g| g.id)
        .collect();
    assert!(!swarm.is_empty(), "examples/homelab has Swarm VMs");
    assert_eq!(nodes.iter().map(|n| n.guest).collect::<Vec<_>>(), swarm);
    let files = dockerd::files(&d);
    assert_eq!(files.len(), 2 * nodes.len());
    let mesh = d.mesh().expect("homelab has a mesh bridge").name.clone();
    for n in &nodes {
        let g = d.guest(n.guest).unwrap();
        let mesh_addr = g.static_on(&mesh).and_then(|nic| nic.address()).unwrap();
        assert_eq!(n.listen, mesh_addr, "dockerd listens on the mesh address");
        let mine: Vec<_> = files
            .iter()
            .filter(|f| f.target == FileTarget::Guest(n.guest))
            .collect();
        let conf = mine
            .iter()
            .find(|f| f.path == dockerd::DAEMON_JSON)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&conf.content).unwrap();
        assert_eq!(
            v["hosts"],
            serde_json::json!([
                "unix:///var/run/docker.sock",
                format!("tcp://{mesh_addr}:2376")
            ])
        );
        assert_eq!(v["tlsverify"], true);
        assert_eq!(v["tlscert"], dockerd::SERVER_CERT);
        assert_eq!(v["tlskey"], dockerd::SERVER_KEY);
        assert_eq!(v["tlscacert"], dockerd::CLIENT_CA);
        let drop_in = mine.iter().find(|f| f.path == dockerd::DROP_IN).unwrap();
        // The unit's ExecStart is cleared and set again without any -H.
        let starts: Vec<_> = drop_in
            .content
            .lines()
            .filter(|l| l.starts_with("ExecStart="))
            .collect();
        assert_eq!(starts.len(), 2);
        assert_eq!(starts[0], "ExecStart=");
        assert!(!starts[1].contains("-H") && !starts[1].contains("fd://"));
        // reload-or-restart must restart: no reload command is left.
        assert!(drop_in.content.lines().any(|l| l == "ExecReload="));
        insta::assert_snapshot!(format!("homelab_daemon_json_{}", n.guest), conf.content);
    }
    insta::assert_snapshot!("homelab_drop_in", dockerd::drop_in());
}

#[test]
fn the_client_ca_is_the_trust_bundle() {
    assert_eq!(dockerd::CLIENT_CA, phoenix_pki_trust_file());
}

fn phoenix_pki_trust_file() -> &'static str {
    // phoenix-render does not depend on phoenix-pki; the traefik renderer names the same file.
    phoenix_render::traefik::ROOT_CA_IN_GUEST
}
