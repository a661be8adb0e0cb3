//! Lifecycle and template snapshots on a bare node: `phoenix sync all --target pve` against
//! fakepve (an external process) on examples/homelab with `enable_lifecycle_snapshots` on its
//! containers, `template_snapshot_name` on its VM template and the VMs cloned from that
//! snapshot. The first run takes `pre-configured` of each container and the template's
//! snapshot (which keeps it from becoming a template: Proxmox converts no guest holding
//! snapshots), then clones from it; fakepve answers no request
//! with a 4xx; the second run observes the snapshots (`GET …/snapshot`) and writes nothing.
//! `final-form` waits for a run that provisions (a note says so).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../phoenix-pve/tests/common/mod.rs"]
mod common;
mod pve_support;

use common::{FakePve, fakepve_available};
use pve_support::{actions, homelab_with, journal, storages, sync_with as sync};

const SNAP: &str = "initial_clean_state";

/// examples/homelab with snapshots: lifecycle on every container, `SNAP` on template 9000
/// and the VMs cloning 9000@`SNAP`.
fn config() -> tempfile::TempDir {
    homelab_with(
        |lxc| {
            for (_, g) in lxc["lxc_configs"].as_object_mut().unwrap() {
                g["enable_lifecycle_snapshots"] = true.into();
            }
        },
        |vms| {
            for v in vms["vms"].as_array_mut().unwrap() {
                if v["vmid"] == 9000 || v["clone_from_vmid"] == 9000 {
                    v["template_snapshot_name"] = SNAP.into();
                }
            }
        },
    )
}

/// The homelab's storages, the guests' disks on storages that can snapshot (zfspool).
fn snapshot_storages() -> serde_json::Value {
    let mut s = storages();
    for (name, pool) in [
        ("quickOS-lxc-disks", "rpool/lxc"),
        ("quickOS-vm-disks", "rpool/vm"),
    ] {
        s[name] = serde_json::json!({"type": "zfspool", "pool": pool, "content": "images,rootdir"});
    }
    s
}

/// The names of a guest's snapshots as fakepve lists them (`current` left out).
fn snapshots(pve: &FakePve, kind: &str, id: u64) -> Vec<String> {
    let client = pve.client(phoenix_pve::TlsTrust::CaFile(pve.pki.ca_pem.clone()));
    let list = client
        .get(&format!("/nodes/pve1/{kind}/{id}/snapshot"), &[])
        .unwrap();
    let mut names: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .filter(|n| n != "current")
        .collect();
    names.sort();
    names
}

#[test]
fn bare_node_takes_the_snapshots_once_and_clones_from_them() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&snapshot_storages());
    let root = tempfile::tempdir().unwrap();
    let cfg = config();

    let (code, first, stderr) = sync(&pve, root.path(), cfg.path());
    for e in journal(&first) {
        println!(
            "  [{}] {} {} {} → {} {}",
            e["wave"],
            e["action"]["action"],
            e["action"]["id"],
            e["action"]["name"],
            e["outcome"],
            e["detail"].as_str().unwrap_or_default()
        );
    }
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(first["journal"]["success"], true);

    // Every container has pre-configured; final-form waits for a provisioning run.
    for id in [101, 102, 103] {
        assert_eq!(snapshots(&pve, "lxc", id), ["pre-configured"], "lxc {id}");
    }
    let notes = first["plan"]["notes"].to_string();
    assert!(
        notes.contains("101@final-form") && notes.contains("--provision"),
        "{notes}"
    );
    // The template has its snapshot (taken before the conversion: a template cannot be
    // snapshotted) and the clones were made from it.
    assert_eq!(snapshots(&pve, "qemu", 9000), [SNAP]);
    let order: Vec<(String, String)> = journal(&first)
        .iter()
        .filter(|e| e["action"]["id"] == 9000 || e["action"]["id"] == 1001)
        .map(|e| {
            (
                e["action"]["action"].as_str().unwrap().to_string(),
                e["action"]["id"].to_string(),
            )
        })
        .collect();
    let at = |action: &str, id: &str| {
        order
            .iter()
            .position(|(a, i)| a == action && i == id)
            .unwrap_or_else(|| panic!("{action} {id} not in {order:?}"))
    };
    assert!(at("take_snapshot", "9000") < at("create_guest", "1001"));
    // Proxmox converts no guest holding snapshots: 9000 stays a stopped guest (PHX-W044).
    assert!(
        !order.iter().any(|(a, _)| a == "convert_to_template"),
        "{order:?}"
    );
    assert_eq!(
        pve_support::guest_status(&pve, "qemu", 9000).as_deref(),
        Some("stopped")
    );
    let clones = pve.request_bodies("/clone");
    assert!(
        clones
            .iter()
            .any(|(_, path, body)| path.contains("/qemu/9000/")
                && body.contains(&format!("snapname={SNAP}"))),
        "{clones:?}"
    );
    let bad: Vec<_> = pve
        .statuses()
        .into_iter()
        .filter(|(_, _, s)| (400..500).contains(s))
        .collect();
    assert!(bad.is_empty(), "4xx answers: {bad:?}");

    let (code, second, stderr) = sync(&pve, root.path(), cfg.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(second["requests"]["total"]["writes"], 0, "API writes");
    let again: Vec<_> = actions(&second)
        .into_iter()
        .filter(|a| a["action"] == "take_snapshot")
        .collect();
    assert!(again.is_empty(), "{again:?}");
    for id in [101, 102, 103] {
        assert_eq!(snapshots(&pve, "lxc", id), ["pre-configured"], "lxc {id}");
    }
}
