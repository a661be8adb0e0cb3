//! Unit tests of the Swarm plan and the pure helpers on `examples/homelab`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;

use super::checks::{ping_by_name, ping_df};
use super::*;
use crate::topology::topology;

fn homelab() -> DesiredState {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    phoenix_model::validate_dir(&dir)
        .desired
        .expect("examples/homelab validates")
}

fn homelab_plan() -> SwarmPlan {
    let d = homelab();
    let t = topology(&d, "t1a2b3").expect("topology");
    plan(&d, &t).expect("plan").expect("homelab has a Swarm")
}

#[test]
fn homelab_nodes_use_the_mesh_nic() {
    let p = homelab_plan();
    let got: Vec<(u32, &str, SwarmRoleName, &str, String)> = p
        .nodes
        .iter()
        .map(|n| {
            (
                n.guest,
                n.ns.as_str(),
                n.role,
                n.nic.as_str(),
                n.addr.to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                1001,
                "t1a2b3-g1001",
                SwarmRoleName::Manager,
                "eth1",
                "172.16.100.21".into()
            ),
            (
                1002,
                "t1a2b3-g1002",
                SwarmRoleName::Worker,
                "eth1",
                "172.16.100.22".into()
            ),
        ]
    );
    let leader = p.leader().expect("leader");
    assert_eq!(leader.name, "portainer-manager");
    assert_eq!(leader.underlay, "vmbr100");
    assert_eq!(leader.dns.to_string(), "172.16.100.1");
    assert_eq!(
        leader.labels.get("role").map(String::as_str),
        Some("management")
    );
    assert_eq!(
        p.node(1002)
            .and_then(|n| n.labels.get("role"))
            .map(String::as_str),
        Some("apps")
    );
}

#[test]
fn overlay_mtu_is_underlay_minus_vxlan_and_pool_avoids_model_subnets() {
    let p = homelab_plan();
    assert_eq!(p.overlay, "traefik-public");
    assert_eq!(p.underlay_mtu, 1500);
    assert_eq!(p.overlay_mtu, 1450);
    assert_eq!(
        overlay_options(&p).get("com.docker.network.driver.mtu"),
        Some(&"1500".to_string())
    );
    assert_eq!(p.addr_pool, "10.200.0.0/16");
}

#[test]
fn no_swarm_vm_no_plan() {
    let mut d = homelab();
    d.roles.swarm_managers.clear();
    d.roles.swarm_workers.clear();
    let t = topology(&d, "t1a2b3").expect("topology");
    assert!(plan(&d, &t).expect("plan").is_none());
}

#[test]
fn dockerd_runs_in_the_guest_namespace_with_its_own_paths() {
    let p = homelab_plan();
    let n = p.node(1002).expect("worker");
    let argv = dockerd_args(n, 4242, false);
    let dir = "/run/phoenix-lab/t1a2b3/swarm/g1002";
    assert_eq!(
        argv,
        vec![
            "nsenter".to_string(),
            "--net=/run/netns/t1a2b3-g1002".into(),
            "--uts=/proc/4242/ns/uts".into(),
            "unshare".into(),
            "-m".into(),
            "--propagation".into(),
            "private".into(),
            "dockerd".into(),
            format!("--config-file={dir}/daemon.json"),
            format!("--data-root={dir}/data"),
            format!("--exec-root={dir}/exec"),
            format!("--pidfile={dir}/docker.pid"),
            "--dns=172.16.100.1".into(),
            "--shutdown-timeout=2".into(),
            "--cgroup-parent=/phoenix-lab-t1a2b3".into(),
            format!("--host=unix://{dir}/docker.sock"),
        ]
    );
    // Unix socket paths must fit sun_path (108 bytes) with the longest prefix.
    assert!(n.socket().as_os_str().len() < 100);
    assert_eq!(
        daemon_json(n, None, Path::new("/unused")),
        format!("{{\"deprecated-key-path\":\"{dir}/key.json\"}}")
    );
}

#[test]
fn the_guests_rendered_daemon_json_becomes_the_engines_with_the_labs_places() {
    let p = homelab_plan();
    let n = p.node(1001).expect("manager");
    let d = homelab();
    let node = phoenix_render::dockerd::engine_nodes(&d)
        .into_iter()
        .find(|e| e.guest.0 == 1001)
        .expect("1001 is a Swarm VM");
    let guest: serde_json::Value =
        serde_json::from_str(&phoenix_render::dockerd::daemon_json(&node)).expect("json");
    let root = Path::new("/run/phoenix-lab/t1a2b3/root/1001");
    let lab: serde_json::Value =
        serde_json::from_str(&daemon_json(n, Some(&guest), root)).expect("json");
    let dir = "/run/phoenix-lab/t1a2b3/swarm/g1001";
    assert_eq!(
        lab["hosts"],
        serde_json::json!([
            format!("unix://{dir}/docker.sock"),
            "tcp://172.16.100.21:2376"
        ])
    );
    assert_eq!(lab["tlsverify"], true);
    assert_eq!(lab["tls"], true);
    assert_eq!(
        lab["tlscert"],
        format!("{}/etc/docker/tls/cert.pem", root.display())
    );
    assert_eq!(
        lab["tlskey"],
        format!("{}/etc/docker/tls/key.pem", root.display())
    );
    assert_eq!(
        lab["tlscacert"],
        format!(
            "{}/usr/local/share/ca-certificates/phoenix-root-ca.crt",
            root.display()
        )
    );
    assert_eq!(lab["deprecated-key-path"], format!("{dir}/key.json"));
    // The hosts are in the file, so none on the command line (dockerd refuses both).
    let argv = dockerd_args(n, 4242, true);
    assert!(!argv.iter().any(|a| a.starts_with("--host")), "{argv:?}");
    assert_eq!(tls::root_of(n), root);
    assert_eq!(
        tls::client_dir("t1a2b3"),
        Path::new("/run/phoenix-lab/t1a2b3/ca/engine-client")
    );
    assert_eq!(tls::endpoint(n), "tcp://172.16.100.21:2376");
}

#[test]
fn tls_connect_names_the_missing_file() {
    let dir = std::env::temp_dir().join(format!("phoenix-tls-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), "x").unwrap();
    let err = tls::connect("tcp://127.0.0.1:2376", &dir)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cert.pem"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ping_argv() {
    assert_eq!(
        ping_by_name("phoenix-probe-1002"),
        ["ping", "-c1", "-W1", "phoenix-probe-1002"]
    );
    assert_eq!(
        ping_df("10.200.1.4", 1450),
        [
            "/usr/bin/ping-df",
            "-c1",
            "-W1",
            "-M",
            "do",
            "-s",
            "1422",
            "10.200.1.4"
        ]
    );
}

#[test]
fn ldd_output_is_parsed() {
    let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibresolv.so.2 => /lib/x86_64-linux-gnu/libresolv.so.2 (0x1)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x2)\n\t/lib64/ld-linux-x86-64.so.2 (0x3)\n/usr/bin/ping:\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x2)\n";
    assert_eq!(
        parse_ldd(text),
        vec![
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/x86_64-linux-gnu/libresolv.so.2",
            "/lib64/ld-linux-x86-64.so.2",
        ]
    );
}

#[test]
fn judge_node_names_what_differs() {
    let p = homelab_plan();
    let n = p.node(1002).expect("worker");
    let ready = bollard::models::Node {
        spec: Some(bollard::models::NodeSpec {
            labels: Some(HashMap::from([("role".to_string(), "apps".to_string())])),
            role: Some(bollard::models::NodeSpecRoleEnum::WORKER),
            ..Default::default()
        }),
        status: Some(bollard::models::NodeStatus {
            state: Some(bollard::models::NodeState::READY),
            addr: Some("172.16.100.22".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(checks::judge_node(n, &ready).is_ok());
    let mut down = ready.clone();
    down.status.as_mut().unwrap().state = Some(bollard::models::NodeState::DOWN);
    down.spec.as_mut().unwrap().labels = None;
    let err = checks::judge_node(n, &down).unwrap_err();
    assert!(
        err.contains("drphoenix") && err.contains("DOWN") && err.contains("labels"),
        "{err}"
    );
}
