//! NIC drift against fakepve (an external process): after a converging `phoenix sync all
//! --target pve` of examples/homelab, a guest's NIC is changed behind phoenix's back through
//! the API (a container's `net0` address, a VM's `net1` bridge). `phoenix status` shows exactly
//! that drift (guest, key, from → to, nothing else for guests), the next `sync all` plans
//! exactly one update of that key and keeps the MAC, and a third run makes zero writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../phoenix-pve/tests/common/mod.rs"]
mod common;
mod pve_support;

use common::{FakePve, fakepve_available};
use pve_support::*;

/// One drifted key: `(key, from, to)`.
type Drift = (String, String, String);

/// The guests `status` reports with drift: `(id, [(key, from, to)])`.
fn drifted(st: &serde_json::Value) -> Vec<(u64, Vec<Drift>)> {
    st["status"]["guests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| !g["drift"].as_array().unwrap().is_empty())
        .map(|g| {
            let keys = g["drift"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let s = |k: &str| {
                        d[k].as_str()
                            .map_or_else(|| d[k].to_string(), str::to_string)
                    };
                    (s("key"), s("from"), s("to"))
                })
                .collect();
            (g["id"].as_u64().unwrap(), keys)
        })
        .collect()
}

/// Change `key` of guest `id` to `drifted` behind phoenix's back and check status, the
/// repairing sync (one update of `key`, MAC kept) and the no-op third run.
fn drift_and_repair(
    pve: &FakePve,
    root: &std::path::Path,
    kind: &str,
    id: u64,
    key: &str,
    option: &str,
    value: &str,
) {
    let before = guest_config(pve, kind, id);
    let original = before[key].as_str().expect("the NIC exists").to_string();
    let mac = prop(&original, "hwaddr")
        .or_else(|| prop(&original, "virtio"))
        .expect("a MAC")
        .to_string();
    let changed = with_prop(&original, option, value);
    assert_ne!(changed, original);
    put_config(pve, kind, id, &[(key, &changed)]);
    let live = guest_config(pve, kind, id);
    assert_eq!(prop(live[key].as_str().unwrap(), option), Some(value));

    // status: exactly this guest, exactly this key, from the live value to the desired one.
    let (code, st) = status(pve, root);
    assert_eq!(code, 2, "drift is a difference: {st:#}");
    assert_eq!(st["requests"]["writes"], 0, "status never writes");
    let d = drifted(&st);
    println!("drift after changing {id} {key}: {d:?}");
    assert_eq!(d.len(), 1, "only guest {id} drifted: {d:?}");
    assert_eq!(d[0].0, id);
    assert_eq!(d[0].1.len(), 1, "only {key} drifted: {d:?}");
    let (k, from, to) = &d[0].1[0];
    assert_eq!(k, key);
    assert_eq!(
        prop(from, option),
        Some(value),
        "from is the live value: {from}"
    );
    assert_eq!(
        prop(to, option),
        prop(&original, option),
        "to is the desired value: {to}"
    );

    // sync: exactly one update of that key; the MAC is kept.
    let (code, r, stderr) = sync(pve, root);
    print_journal("repair", &r);
    assert_eq!(code, 0, "{stderr}");
    // A stopped guest is also started again (nothing else).
    let acts: Vec<_> = guest_actions(&r)
        .into_iter()
        .filter(|a| !(a["action"] == "start_guest" && a["id"].as_u64() == Some(id)))
        .collect();
    assert_eq!(acts.len(), 1, "one guest update: {acts:#?}");
    let a = &acts[0];
    assert_eq!(a["action"], "update_guest", "{a:#}");
    assert_eq!(a["id"].as_u64(), Some(id), "{a:#}");
    let set: Vec<&String> = a["set"].as_object().expect("set").keys().collect();
    assert_eq!(set, vec![key], "{a:#}");
    assert!(
        a["delete"].as_array().is_none_or(Vec::is_empty),
        "nothing deleted: {a:#}"
    );
    let after = guest_config(pve, kind, id);
    let now = after[key].as_str().unwrap();
    assert_eq!(prop(now, option), prop(&original, option), "{now}");
    let mac_now = prop(now, "hwaddr").or_else(|| prop(now, "virtio")).unwrap();
    assert_eq!(
        mac_now.to_ascii_lowercase(),
        mac.to_ascii_lowercase(),
        "MAC kept"
    );
    // A VM's start is three writes: the start, the agent's ping and `cloud-init status
    // --wait` through the agent.
    let starts: u64 = guest_actions(&r)
        .iter()
        .filter(|a| a["action"] == "start_guest")
        .map(|a| if a["kind"] == "vm" { 3 } else { 1 })
        .sum();
    assert_eq!(
        r["requests"]["total"]["writes"].as_u64(),
        Some(1 + starts),
        "one API write (the PUT), and the start"
    );

    // Third run: nothing to do.
    let (code, r, stderr) = sync(pve, root);
    assert_eq!(code, 0, "{stderr}");
    assert!(guest_actions(&r).is_empty(), "{:#?}", guest_actions(&r));
    assert_eq!(r["requests"]["total"]["writes"], 0, "API writes");
    assert_eq!(r["host_writes"], 0, "host file writes");
    let (_, st) = status(pve, root);
    assert!(drifted(&st).is_empty(), "{:?}", drifted(&st));
}

#[test]
fn container_address_drift_is_one_update_of_net0() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let (code, r, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(r["journal"]["success"], true);
    drift_and_repair(
        &pve,
        root.path(),
        "lxc",
        102,
        "net0",
        "ip",
        "172.16.100.99/24",
    );
    // A VLAN tag added by hand is drift of the same key.
    drift_and_repair(&pve, root.path(), "lxc", 102, "net0", "tag", "42");
}

#[test]
fn vm_bridge_drift_is_one_update_of_net1() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let (code, _, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "{stderr}");
    // fakepve queues NIC changes of a running VM as pending (PVE with network hotplug applies
    // them at once): drift the stopped VM, whose config changes directly.
    let client = pve.client(phoenix_pve::TlsTrust::CaFile(pve.pki.ca_pem.clone()));
    client
        .write_and_wait(
            reqwest::Method::POST,
            "/nodes/pve1/qemu/1002/status/stop",
            &Default::default(),
        )
        .expect("stop 1002");
    drift_and_repair(&pve, root.path(), "qemu", 1002, "net1", "bridge", "vmbr0");
    assert_eq!(guest_status(&pve, "qemu", 1002).as_deref(), Some("running"));
}
