//! A guest's disk size as a managed key, against fakepve (an external process): a resize that
//! failed while the guest was created is retried by the next `sync all`, `status` shows the
//! smaller disk as drift until then, a size raised in the configuration grows the disk with
//! one `resize`, and a size lowered is a plan note (Proxmox cannot shrink), never an action.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../phoenix-pve/tests/common/mod.rs"]
mod common;
mod pve_support;

use common::{FakePve, fakepve_available};
use pve_support::*;
use serde_json::json;

/// `(id, disk key, from, to)` of every `resize_disk` action of a report.
fn resizes(r: &serde_json::Value) -> Vec<(u64, String, String, String)> {
    actions(r)
        .into_iter()
        .filter(|a| a["action"] == "resize_disk")
        .map(|a| {
            let c = &a["reason"]["changes"][0];
            (
                a["id"].as_u64().unwrap(),
                c["key"].as_str().unwrap().to_string(),
                c["from"].as_str().unwrap_or_default().to_string(),
                c["to"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn size_of(pve: &FakePve, kind: &str, id: u64, key: &str) -> String {
    let cfg = guest_config(pve, kind, id);
    let v = cfg[key].as_str().unwrap_or_default().to_string();
    prop(&v, "size").unwrap_or_default().to_string()
}

/// 102's configured disk raised 16G → 20G; the resize fails once (`lvextend` out of space).
#[test]
fn a_failed_resize_is_retried_by_the_next_sync() {
    if !fakepve_available() {
        return;
    }
    let (pve, root) = converged();
    let raised = homelab_with_lxc(|v| v["lxc_configs"]["102"]["storage_size_gb"] = json!(20));
    let run = || sync_with(&pve, root.path(), raised.path());
    pve.control(&json!({
        "op": "fail", "method": "PUT", "suffix": "/lxc/102/resize",
        "status": 500, "message": "disk resize failed: lvextend: out of space", "times": 1,
    }));
    let (code, r, stderr) = run();
    print_journal("resize fails", &r);
    assert_eq!(code, 3, "{stderr}");
    assert_journal_complete(&r);
    let failed: Vec<_> = failed_entries(&r);
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0]["action"]["action"], "resize_disk");
    assert!(
        failed[0]["detail"]
            .as_str()
            .unwrap()
            .contains("out of space"),
        "{:#}",
        failed[0]
    );
    assert_eq!(size_of(&pve, "lxc", 102, "rootfs"), "16G");

    // status: the smaller disk is drift of `rootfs.size`, nothing written.
    let (code, st) = status_of(&pve, root.path(), raised.path());
    assert_eq!(code, 2, "{st:#}");
    assert_eq!(st["requests"]["writes"], 0);
    let g = st["status"]["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == 102)
        .unwrap();
    let drift: Vec<(&str, &str, &str)> = g["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["key"].as_str().unwrap(),
                d["from"].as_str().unwrap(),
                d["to"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(drift, vec![("rootfs.size", "16G", "20G")], "{g:#}");

    // The next sync grows it; the one after writes nothing.
    let (code, r, stderr) = run();
    print_journal("retry", &r);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        resizes(&r),
        vec![(102, "rootfs.size".into(), "16G".into(), "20G".into())]
    );
    assert_eq!(size_of(&pve, "lxc", 102, "rootfs"), "20G");
    let (code, r, stderr) = run();
    assert_eq!(code, 0, "{stderr}");
    assert!(resizes(&r).is_empty());
    assert_eq!(r["requests"]["total"]["writes"], 0, "{:#?}", actions(&r));
}

#[test]
fn a_raised_size_grows_the_disk_and_a_lowered_one_is_a_note() {
    if !fakepve_available() {
        return;
    }
    let (pve, root) = converged();
    assert_eq!(size_of(&pve, "lxc", 102, "rootfs"), "16G");

    let set_102 =
        |gb: u64| homelab_with_lxc(move |v| v["lxc_configs"]["102"]["storage_size_gb"] = json!(gb));
    let raised = set_102(20);
    let run = |cfg: &std::path::Path| sync_with(&pve, root.path(), cfg);
    let (code, r, stderr) = run(raised.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        resizes(&r),
        vec![(102, "rootfs.size".into(), "16G".into(), "20G".into())]
    );
    assert_eq!(
        guest_actions(&r).len(),
        1,
        "only the resize: {:#?}",
        guest_actions(&r)
    );
    assert_eq!(size_of(&pve, "lxc", 102, "rootfs"), "20G");
    let (code, r, stderr) = run(raised.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(r["requests"]["total"]["writes"], 0);

    // Back to 16G: Proxmox cannot shrink; the plan says so and changes nothing.
    let (code, r, stderr) = run(&homelab_dir());
    assert_eq!(code, 0, "{stderr}");
    assert!(resizes(&r).is_empty());
    assert_eq!(r["requests"]["total"]["writes"], 0);
    let notes = r["plan"]["notes"].to_string();
    assert!(
        notes.contains("guest 102: its rootfs is 20G, the configuration says 16G"),
        "{notes}"
    );
    assert_eq!(size_of(&pve, "lxc", 102, "rootfs"), "20G");
}
