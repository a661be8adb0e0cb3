//! The homelab example realised in namespaces, checked with real traffic to addresses inside
//! the lab only: mesh to mesh, mesh to the wan's "internet" through the hypervisor's NAT (the
//! wan sees the hypervisor's address), nothing from the wan into the mesh; then teardown,
//! also after a crash (state dir gone). Root only; see `common::lab_available`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::process::{Command, Stdio};
use std::time::Instant;

use common::*;
use phoenix_lab::{LabError, LabGuard, UpOptions, status, up};

#[test]
fn homelab_up_traffic_status_down() {
    if !lab_available() {
        return;
    }
    let prefix = unique_prefix();
    let guard = LabGuard::new(&prefix);
    let d = homelab_unfiltered();
    let opts = UpOptions {
        prefix: prefix.clone(),
        recreate: false,
    };
    let t0 = Instant::now();
    let report = up(&d, &opts).expect("lab up");
    eprintln!(
        "homelab lab up: {:?} ({} namespaces)",
        t0.elapsed(),
        report.namespaces
    );
    let (hv, wan) = (format!("{prefix}-hv"), format!("{prefix}-wan"));
    let g102 = phoenix_lab::status::resolve_namespace(&prefix, "traefik").expect("by name");
    assert_eq!(g102, format!("{prefix}-g102"));

    // Mesh to mesh.
    assert!(ping(&g102, "172.16.100.11"), "102 → 103 over the mesh");
    assert!(
        ping(&format!("{prefix}-g1001"), "172.16.100.22"),
        "1001 → 1002"
    );

    // Mesh → "internet" through the NAT; the wan counts echo requests from the hv's address.
    for argv in [
        vec!["nft", "add", "table", "ip", "probe"],
        vec![
            "nft",
            "add",
            "chain",
            "ip",
            "probe",
            "input",
            "{ type filter hook input priority 0; }",
        ],
        vec![
            "nft",
            "add",
            "rule",
            "ip",
            "probe",
            "input",
            "ip",
            "saddr",
            "10.0.0.13",
            "icmp",
            "type",
            "echo-request",
            "counter",
        ],
    ] {
        in_ns_out(&wan, &argv);
    }
    assert!(ping(&g102, "198.51.100.1"), "mesh reaches the internet");
    let seen = in_ns_out(&wan, &["nft", "list", "table", "ip", "probe"]);
    assert!(
        packets(&seen) >= 1,
        "wan saw the masqueraded source:\n{seen}"
    );

    // Nothing on the wan opens into the mesh, even with a route to it.
    in_ns_out(
        &wan,
        &["ip", "route", "add", "172.16.100.0/24", "via", "10.0.0.13"],
    );
    assert!(!ping(&wan, "172.16.100.11"), "wan must not reach the mesh");
    let fwd = in_ns_out(
        &hv,
        &["nft", "list", "chain", "ip", "phoenix_nat", "forward"],
    );
    assert!(packets(&fwd) >= 1, "the NAT's drop rule counted it:\n{fwd}");

    // The gateway's public NIC sits on the public VLAN's plain bridge.
    let st = status(&prefix).expect("status");
    assert!(st.is_complete(), "{st:#?}");
    let hv_links = &st
        .namespaces
        .iter()
        .find(|n| n.name == hv)
        .expect("hv listed")
        .links;
    let gw_port = hv_links
        .iter()
        .find(|l| l.name == format!("{prefix}101n0"))
        .expect("gateway port");
    assert_eq!(gw_port.master.as_deref(), Some("vmbr0.20"));
    let g101 = st
        .namespaces
        .iter()
        .find(|n| n.name == format!("{prefix}-g101"))
        .expect("gateway listed");
    let eth0 = g101.links.iter().find(|l| l.name == "eth0").expect("eth0");
    assert_eq!(eth0.mac.as_deref(), Some("02:00:00:01:01:00"));
    assert_eq!(st.namespaces.len(), 7);

    // A second `up` refuses.
    assert!(matches!(up(&d, &opts), Err(LabError::AlreadyUp { .. })));

    let t1 = Instant::now();
    let down = phoenix_lab::down(&prefix).expect("lab down");
    eprintln!(
        "homelab lab down: {:?} ({} namespaces)",
        t1.elapsed(),
        down.namespaces.len()
    );
    assert_gone(&prefix);
    drop(guard);
}

#[test]
fn down_cleans_up_after_a_crash() {
    if !lab_available() {
        return;
    }
    let prefix = unique_prefix();
    let _guard = LabGuard::new(&prefix);
    let opts = UpOptions {
        prefix: prefix.clone(),
        recreate: false,
    };
    up(&homelab_unfiltered(), &opts).expect("lab up");
    // A crashed run: the state is gone and a process still runs inside a guest.
    // The lab's daemons (dockerd, step-ca) keep writing under the state
    // directory, so one pass can race a new file: retry briefly.
    let state = phoenix_lab::state_dir(&prefix);
    let t0 = Instant::now();
    while let Err(e) = std::fs::remove_dir_all(&state) {
        assert!(t0.elapsed().as_secs() < 10, "drop state: {e}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut sleeper = Command::new("ip")
        .args(["netns", "exec", &format!("{prefix}-g103"), "sleep", "60"])
        .stdout(Stdio::null())
        .spawn()
        .expect("sleep in the guest");
    let st = status(&prefix).expect("status");
    assert!(!st.state_recorded && !st.is_empty());
    let t0 = Instant::now();
    while phoenix_lab::teardown::pids(&format!("{prefix}-g103")).is_empty() {
        assert!(t0.elapsed().as_secs() < 5, "sleep never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let report = phoenix_lab::down(&prefix).expect("lab down");
    assert_eq!(report.namespaces.len(), 7);
    assert!(!report.killed.is_empty());
    let _ = sleeper.wait();
    assert_gone(&prefix);
    assert!(status(&prefix).expect("status").is_empty());
}

#[test]
fn recreate_rebuilds() {
    if !lab_available() {
        return;
    }
    let prefix = unique_prefix();
    let _guard = LabGuard::new(&prefix);
    let mut opts = UpOptions {
        prefix: prefix.clone(),
        recreate: false,
    };
    up(&homelab_unfiltered(), &opts).expect("lab up");
    opts.recreate = true;
    up(&homelab_unfiltered(), &opts).expect("lab up --recreate");
    assert!(status(&prefix).expect("status").is_complete());
    assert!(ping(&format!("{prefix}-g102"), "172.16.100.11"));
}
