//! Lifecycle and template snapshots in the lab: `phoenix sync all --target lab --provision`
//! on examples/homelab with `enable_lifecycle_snapshots` on its containers and 1001/1002
//! cloning 9000@initial_clean_state, as root in the lab's own namespaces. The lab executes
//! the node's TakeSnapshot actions into its node root (PVE's `[name]` sections and `parent`),
//! `pre-configured` in the creation waves and `final-form` after provisioning; its
//! observation reads them back, so the second run plans nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use phoenix_lab::LabGuard;

#[test]
fn lab_takes_the_snapshots_once() {
    if !root_or_skip("snapshots_lab") {
        return;
    }
    let cfg = tempfile::tempdir().unwrap();
    copy_tree(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab"),
        cfg.path(),
    );
    let edit = |file: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let path = cfg.path().join(file);
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    };
    edit("phoenix_lxc_configs.json", &|v| {
        for (_, g) in v["lxc_configs"].as_object_mut().unwrap() {
            g["enable_lifecycle_snapshots"] = true.into();
        }
    });
    edit("phoenix_vm_configs.json", &|v| {
        for g in v["vms"].as_array_mut().unwrap() {
            if g["vmid"] == 9000 || g["clone_from_vmid"] == 9000 {
                g["template_snapshot_name"] = "initial_clean_state".into();
            }
        }
    });
    let config = cfg.path().to_str().unwrap().to_string();
    let prefix = unique_prefix('n');
    let _guard = LabGuard::new(&prefix);

    let (code, v) = lab_sync(&prefix, &config);
    assert_eq!(code, Some(0), "{:#}", v["journal"]);
    let taken: Vec<(String, String)> = done(&v)
        .into_iter()
        .filter(|(_, a)| a["action"] == "take_snapshot")
        .map(|(w, a)| (w, format!("{}@{}", a["id"], a["name"].as_str().unwrap())))
        .collect();
    for id in [101, 102, 103] {
        let pre = taken
            .iter()
            .find(|(_, s)| *s == format!("{id}@pre-configured"))
            .unwrap_or_else(|| panic!("{id}@pre-configured not taken: {taken:?}"));
        assert!(pre.0.starts_with("guests, level"), "{pre:?}");
        let fin = taken
            .iter()
            .find(|(_, s)| *s == format!("{id}@final-form"))
            .unwrap_or_else(|| panic!("{id}@final-form not taken: {taken:?}"));
        assert_eq!(fin.0, "snapshots after provisioning");
    }
    assert!(taken.iter().any(|(_, s)| s == "9000@initial_clean_state"));
    // The lab node holds them as PVE does.
    let node = phoenix_lab::node::LabNode::new(&prefix);
    let conf = node
        .read_conf(
            phoenix_model::model::GuestId(101),
            phoenix_model::model::GuestKind::Lxc,
        )
        .unwrap();
    assert_eq!(
        phoenix_lab::node::snapshot_names(&conf),
        ["pre-configured", "final-form"],
        "{conf}"
    );
    assert!(conf.contains("parent: final-form"), "{conf}");

    let (code, v) = lab_sync(&prefix, &config);
    assert_eq!(code, Some(0), "{:#}", v["journal"]);
    assert_eq!(planned(&v), 0, "{:#}", v["plan"]);
    assert!(done(&v).is_empty(), "{:?}", done(&v));
}
