//! ZFS planning and applying over the recorded stand-in (`support/standin.py` first on PATH
//! as `zpool`, `zfs`, `lsblk`, `blkid`, `wipefs`): a disk that holds something is refused
//! (nothing runs) unless `--wipe-disks`, which wipes exactly that disk; pools and datasets
//! are made with their properties, a changed property is one `zfs set` in place, the ARC
//! limit is written live and persisted; a second run writes nothing. No real disk is touched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use phoenix_host::plan::PlanInputs;
use phoenix_host::{Scope, SetupPlan, Step, apply, observe, plan};
use phoenix_model::host::HostSetup;
use serde_json::json;
use support::{StandinNode, rootesting, writes};

const D1: &str = "/dev/disk/by-id/nvme-Samsung_SSD_990_EVO_Plus_2TB_S7U6NJ0Y320880M";
const D2: &str = "/dev/disk/by-id/nvme-Samsung_SSD_990_EVO_Plus_2TB_S7U6NJ0Y310536X";
const D3: &str = "/dev/disk/by-id/nvme-Samsung_SSD_990_EVO_Plus_4TB_S7U8NJ0Y402334Y";

/// rootesting's `zfs` alone (no users or Samba: nothing else runs on this machine).
fn zfs_only() -> HostSetup {
    HostSetup {
        zfs: rootesting().zfs,
        ..HostSetup::default()
    }
}

fn node(d2: serde_json::Value) -> StandinNode {
    let node = StandinNode::new(&json!({"disks": {D1: {}, D2: d2, D3: {}}}));
    let params = node.root().join("sys/module/zfs/parameters");
    std::fs::create_dir_all(&params).unwrap();
    std::fs::write(params.join("zfs_arc_max"), "0\n").unwrap();
    node
}

fn plan_on(node: &StandinNode, setup: &HostSetup, wipe: bool) -> SetupPlan {
    let observed = observe(node, setup, Scope::Live).unwrap();
    let inputs = PlanInputs {
        wipe_disks: wipe,
        ..PlanInputs::default()
    };
    plan(setup, &observed, &inputs)
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_string()).collect()
}

#[test]
fn a_disk_holding_partitions_is_refused_and_nothing_runs() {
    let node = node(json!({"partitions": [format!("{D2}-part1")]}));
    let setup = zfs_only();
    let p = plan_on(&node, &setup, false);
    let refused: Vec<String> = p.refusals().map(ToString::to_string).collect();
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert!(
        refused[0].contains("creating pool quickOS"),
        "{}",
        refused[0]
    );
    assert!(
        refused[0].contains(&format!("{D2} holds partitions {D2}-part1")),
        "{}",
        refused[0]
    );
    assert!(refused[0].contains("--wipe-disks"), "{}", refused[0]);
    // The clean pool is still planned; quickOS's datasets wait for their pool.
    assert!(
        p.steps
            .iter()
            .any(|s| matches!(s, Step::CreatePool { pool, .. } if pool == "fastData"))
    );
    assert!(
        p.steps
            .iter()
            .any(|s| matches!(s, Step::Skip { what, .. } if what == "dataset quickOS/vm-disks"))
    );
    assert!(!p.steps.iter().any(|s| matches!(s, Step::WipeDisk { .. })));

    node.clear_calls();
    let journal = apply(&node, &p, None);
    assert!(journal.failed());
    assert_eq!(journal.done(), 0, "{:#?}", journal.entries);
    assert!(writes(&node.calls()).is_empty(), "{:?}", node.calls());
    assert!(!node.root().join("etc/modprobe.d/zfs.conf").exists());
    assert!(
        node.state().get("pools").is_none(),
        "the stand-in's state changed"
    );
}

#[test]
fn a_mounted_disk_is_refused_even_with_wipe_disks() {
    let node = node(json!({"fstype": "ext4", "mountpoint": "/srv"}));
    let p = plan_on(&node, &zfs_only(), true);
    let refused: Vec<String> = p.refusals().map(ToString::to_string).collect();
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert!(refused[0].contains("mounted on /srv"), "{}", refused[0]);
    assert!(!p.steps.iter().any(|s| matches!(s, Step::WipeDisk { .. })));
}

#[test]
fn wipe_disks_wipes_exactly_the_named_disk_then_a_second_run_writes_nothing() {
    let node = node(json!({"fstype": "zfs_member", "label": "oldpool"}));
    let setup = zfs_only();
    let p = plan_on(&node, &setup, true);
    assert_eq!(p.refusals().count(), 0);
    let destructive: Vec<String> = p.destructive().map(ToString::to_string).collect();
    assert_eq!(destructive.len(), 3, "{destructive:#?}");
    assert!(destructive[0].starts_with(&format!(
        "DESTRUCTIVE wipe {D2}, which holds a label of the ZFS pool oldpool"
    )));

    node.clear_calls();
    let journal = apply(&node, &p, None);
    assert!(!journal.failed(), "{:#?}", journal.entries);
    let all = writes(&node.calls());
    assert!(
        all.contains(&s(&["update-initramfs", "-u", "-k", "all"])),
        "{all:?}"
    );
    let w: Vec<Vec<String>> = all
        .into_iter()
        .filter(|c| c[0] != "update-initramfs")
        .collect();
    assert_eq!(w[0], s(&["zpool", "labelclear", "-f", D2]));
    assert_eq!(w[1], s(&["wipefs", "--all", D2]));
    assert_eq!(
        w[2],
        s(&[
            "zpool",
            "create",
            "-f",
            "-o",
            "ashift=12",
            "quickOS",
            "mirror",
            D1,
            D2
        ])
    );
    assert_eq!(
        w[3],
        s(&["zpool", "create", "-o", "ashift=12", "fastData", D3])
    );
    assert!(!w.iter().any(|c| c[0] == "wipefs" && c[2] != D2), "{w:?}");
    assert!(
        w.contains(&s(&[
            "zfs",
            "create",
            "-o",
            "recordsize=128K",
            "-o",
            "compression=lz4",
            "-o",
            "sync=standard",
            "-o",
            "quota=800G",
            "quickOS/vm-disks",
        ])),
        "{w:?}"
    );
    let state = node.state();
    assert_eq!(
        state["datasets"]["fastData/shared-bulk-data"]["quota"],
        "1539316278886"
    );
    assert_eq!(
        std::fs::read_to_string(node.root().join("sys/module/zfs/parameters/zfs_arc_max")).unwrap(),
        "34359738368\n"
    );
    let conf = std::fs::read_to_string(node.root().join("etc/modprobe.d/zfs.conf")).unwrap();
    assert_eq!(conf, "options zfs zfs_arc_max=34359738368\n");

    node.clear_calls();
    let again = plan_on(&node, &setup, true);
    assert_eq!(again.changes(), 0, "{:#?}", again.steps);
    let journal = apply(&node, &again, None);
    assert_eq!(journal.done(), 0);
    assert!(writes(&node.calls()).is_empty(), "{:?}", node.calls());
}

#[test]
fn a_changed_property_is_set_in_place_never_re_created() {
    let node = node(json!({}));
    let setup = zfs_only();
    let first = plan_on(&node, &setup, false);
    assert!(!apply(&node, &first, None).failed());

    let mut changed = setup.clone();
    let zfs = changed.zfs.as_mut().unwrap();
    let ds = zfs
        .datasets
        .iter_mut()
        .find(|d| d.name == "quickOS/vm-disks")
        .unwrap();
    for (k, v) in &mut ds.properties {
        if k == "quota" {
            *v = "900G".into();
        }
        if k == "compression" {
            *v = "zstd".into();
        }
    }
    node.clear_calls();
    let p = plan_on(&node, &changed, false);
    let steps: Vec<String> = p
        .steps
        .iter()
        .filter(|s| s.is_change())
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        steps,
        [
            "run `zfs set compression=zstd quota=900G quickOS/vm-disks` (changed in place: compression lz4 → zstd, quota 858993459200 → 900G)"
        ],
    );
    assert!(!apply(&node, &p, None).failed());
    let w = writes(&node.calls());
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(
        node.state()["datasets"]["quickOS/vm-disks"]["quota"],
        "966367641600"
    );
    assert_eq!(plan_on(&node, &changed, false).changes(), 0);
}

#[test]
fn zfs_installed_but_not_loaded_is_a_skip_with_the_reason() {
    let node =
        StandinNode::new(&json!({"module_loaded": false, "disks": {D1: {}, D2: {}, D3: {}}}));
    let p = plan_on(&node, &zfs_only(), false);
    let skip = p
        .steps
        .iter()
        .find(|s| matches!(s, Step::Skip { what, .. } if what == "ZFS pools and datasets"))
        .expect("a skip for the pools");
    assert!(
        skip.to_string()
            .contains("`zpool list` failed: The ZFS modules are not loaded."),
        "{skip}"
    );
    assert!(
        !p.steps
            .iter()
            .any(|s| matches!(s, Step::CreatePool { .. } | Step::Refused { .. }))
    );
    // The ARC limit persists for when the module loads; the live value cannot be set.
    assert!(p.needs_reboot().count() == 1, "{:#?}", p.steps);
}
