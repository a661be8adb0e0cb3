//! The bash system's verbs end to end through the CLI against fakepve (an external process):
//! `phoenix apply --target pve create 103` on an empty node creates it and what it needs
//! first; `converge 102` repairs drift of that guest only; `restart 102` stops and starts it
//! (running afterwards, by fakepve's status and task log); `LetsGo` on an empty node creates
//! everything and starts it in boot order (fakepve's task log), and a second `LetsGo` makes
//! zero writes; `shutdown` stops them all in the reverse order, and a second one writes
//! nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../phoenix-pve/tests/common/mod.rs"]
mod common;
mod pve_support;

use std::collections::BTreeMap;

use common::{FakePve, fakepve_available};
use pve_support::*;

fn desired() -> phoenix_model::DesiredState {
    phoenix_model::validate_dir(&homelab_dir()).desired.unwrap()
}

/// fakepve's tasks of one type prefix set (`vzcreate`, `qmclone`, …) as guest ids, in order.
fn task_ids(pve: &FakePve, types: &[&str]) -> Vec<u64> {
    pve.tasks()
        .into_iter()
        .filter(|(t, _, _)| types.contains(&t.as_str()))
        .filter_map(|(_, id, _)| id.parse().ok())
        .collect()
}

const CREATES: [&str; 3] = ["vzcreate", "qmcreate", "qmclone"];
const STARTS: [&str; 2] = ["vzstart", "qmstart"];

#[test]
fn create_103_creates_what_it_needs_first() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let (code, r, stderr) = apply(&pve, root.path(), &["create", "103"]);
    print_journal("create 103", &r);
    assert_eq!(code, 0, "{stderr}");
    assert_journal_complete(&r);
    let d = desired();
    let g = d.guests.values().find(|g| g.id.0 == 103).unwrap();
    // What 103 needs: its dependencies (transitively) and the template it is made from.
    let mut needed: Vec<u64> = g.dependencies.iter().map(|d| u64::from(d.0)).collect();
    let mut i = 0;
    while i < needed.len() {
        let dep = d
            .guests
            .values()
            .find(|x| u64::from(x.id.0) == needed[i])
            .unwrap();
        needed.extend(dep.dependencies.iter().map(|d| u64::from(d.0)));
        i += 1;
    }
    let created = task_ids(&pve, &CREATES);
    println!("created in order: {created:?}; 103 needs {needed:?}");
    assert_eq!(
        created.last(),
        Some(&103),
        "103 is created last: {created:?}"
    );
    for n in &needed {
        assert!(created.contains(n), "{n} (needed by 103) was created");
    }
    for id in &created {
        assert!(
            *id == 103 || needed.contains(id),
            "{id} is not needed by 103"
        );
    }
    assert!(guest_status(&pve, "lxc", 103).is_some(), "103 exists");
    for (id, kind) in homelab_guests() {
        if id != 103 && !needed.contains(&id) {
            assert_eq!(guest_status(&pve, kind, id), None, "{id} was not created");
        }
    }
    // Again: nothing to create.
    let (code, r, stderr) = apply(&pve, root.path(), &["create", "103"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !guest_actions(&r)
            .iter()
            .any(|a| a["action"] == "create_guest"),
        "{:#?}",
        guest_actions(&r)
    );
}

/// A guest with prerequisites: `create 1002` makes the template it is cloned from and the
/// guests it depends on first, and nothing else.
#[test]
fn create_1002_creates_its_template_and_dependencies_first() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let (code, r, stderr) = apply(&pve, root.path(), &["create", "1002"]);
    print_journal("create 1002", &r);
    assert_eq!(code, 0, "{stderr}");
    assert_journal_complete(&r);
    // The journal's creates, in order (fakepve names a clone's task after its source).
    let created: Vec<u64> = journal(&r)
        .iter()
        .filter(|e| e["action"]["action"] == "create_guest")
        .map(|e| {
            assert_eq!(e["outcome"], "done", "{e:#}");
            e["action"]["id"].as_u64().unwrap()
        })
        .collect();
    println!("created in order: {created:?}");
    let at = |id: u64| created.iter().position(|c| *c == id);
    assert_eq!(created.last(), Some(&1002), "{created:?}");
    let (template, manager) = (at(9000).expect("9000"), at(1001).expect("1001"));
    assert!(
        template < manager,
        "the template before its clone: {created:?}"
    );
    // Every other create is something 1002 needs: the template or a dependency, transitively.
    let d = desired();
    let mut needed = vec![1002u64, 9000];
    let mut i = 0;
    while i < needed.len() {
        if let Some(g) = d.guests.values().find(|x| u64::from(x.id.0) == needed[i]) {
            needed.extend(g.dependencies.iter().map(|d| u64::from(d.0)));
        }
        i += 1;
    }
    for id in &created {
        assert!(
            needed.contains(id),
            "{id} is not needed by 1002 ({needed:?})"
        );
    }
    for (id, kind) in homelab_guests() {
        assert_eq!(
            guest_status(&pve, kind, id).is_some(),
            needed.contains(&id),
            "{id}"
        );
    }
}

#[test]
fn converge_102_repairs_only_102() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let (code, _, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "{stderr}");
    let cfg = guest_config(&pve, "lxc", 102);
    let memory = cfg["memory"].to_string().trim_matches('"').to_string();
    let net0 = cfg["net0"].as_str().unwrap().to_string();
    put_config(
        &pve,
        "lxc",
        102,
        &[
            ("memory", "4096"),
            ("net0", &with_prop(&net0, "ip", "172.16.100.98/24")),
        ],
    );
    // Drift of another guest that `converge 102` must leave alone.
    put_config(&pve, "lxc", 101, &[("cores", "3")]);
    let before = pve.requests().len();

    let (code, r, stderr) = apply(&pve, root.path(), &["converge", "102"]);
    print_journal("converge 102", &r);
    assert_eq!(code, 0, "{stderr}");
    assert_journal_complete(&r);
    let acts = guest_actions(&r);
    assert!(!acts.is_empty());
    for a in &acts {
        assert_eq!(a["id"].as_u64(), Some(102), "only 102: {a:#}");
    }
    let cfg = guest_config(&pve, "lxc", 102);
    assert_eq!(cfg["memory"].to_string().trim_matches('"'), memory);
    assert_eq!(prop(cfg["net0"].as_str().unwrap(), "ip"), prop(&net0, "ip"));
    assert_eq!(
        prop(cfg["net0"].as_str().unwrap(), "hwaddr"),
        prop(&net0, "hwaddr")
    );
    // Every write went to 102.
    let writes: Vec<(String, String)> = pve.requests()[before..]
        .iter()
        .filter(|(m, _)| m != "GET")
        .cloned()
        .collect();
    assert!(!writes.is_empty());
    for (m, p) in &writes {
        assert!(p.contains("/lxc/102/"), "{m} {p} is not a write to 102");
    }
    assert_eq!(
        guest_config(&pve, "lxc", 101)["cores"]
            .to_string()
            .trim_matches('"'),
        "3"
    );
}

/// `action id` of each guest action of a report, in order.
fn action_ids(r: &serde_json::Value) -> Vec<String> {
    guest_actions(r)
        .iter()
        .map(|a| format!("{} {}", a["action"].as_str().unwrap(), a["id"]))
        .collect()
}

#[test]
fn restart_102_leaves_it_running() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let (code, _, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(guest_status(&pve, "lxc", 102).as_deref(), Some("running"));
    let tasks_before = pve.tasks().len();
    let (code, r, stderr) = apply(&pve, root.path(), &["restart", "102"]);
    print_journal("restart 102", &r);
    assert_eq!(code, 0, "{stderr}");
    assert_journal_complete(&r);
    let kinds = action_ids(&r);
    assert_eq!(kinds, ["stop_guest 102", "start_guest 102"]);
    let tasks: Vec<(String, String)> = pve.tasks()[tasks_before..]
        .iter()
        .map(|(t, id, exit)| {
            assert_eq!(exit, "OK", "{t} {id}");
            (t.clone(), id.clone())
        })
        .collect();
    println!("restart tasks: {tasks:?}");
    let types: Vec<&str> = tasks.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["vzshutdown", "vzstart"], "{tasks:?}");
    assert!(tasks.iter().all(|(_, id)| id == "102"));
    assert_eq!(guest_status(&pve, "lxc", 102).as_deref(), Some("running"));

    // Several guests in one run: stopped in reverse boot order, started again in boot order.
    let (code, r, stderr) = apply(&pve, root.path(), &["restart", "101", "102"]);
    print_journal("restart 101 102", &r);
    assert_eq!(code, 0, "{stderr}");
    assert_journal_complete(&r);
    let kinds = action_ids(&r);
    assert_eq!(
        kinds,
        [
            "stop_guest 101",
            "stop_guest 102",
            "start_guest 102",
            "start_guest 101"
        ]
    );
    for id in [101, 102] {
        assert_eq!(guest_status(&pve, "lxc", id).as_deref(), Some("running"));
    }
}

#[test]
fn lets_go_on_an_empty_node_starts_in_boot_order_then_does_nothing() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let (code, r, stderr) = apply(&pve, root.path(), &["LetsGo"]);
    print_journal("LetsGo", &r);
    assert_eq!(code, 0, "{stderr}");
    assert_journal_complete(&r);
    let d = desired();
    let guests = homelab_guests();
    for (id, kind) in &guests {
        assert!(guest_status(&pve, kind, *id).is_some(), "{id} exists");
    }
    // Started: every non-template guest marked start_at_boot, in boot order.
    let order: BTreeMap<u64, (u32, u64)> = d
        .guests
        .values()
        .filter(|g| !g.is_template && g.start_at_boot)
        .map(|g| {
            let id = u64::from(g.id.0);
            (id, (g.boot_order.unwrap_or(u32::MAX), id))
        })
        .collect();
    let started = task_ids(&pve, &STARTS);
    println!("started in order: {started:?}; boot order {order:?}");
    let mut expected: Vec<u64> = order.keys().copied().collect();
    expected.sort_by_key(|id| order[id]);
    assert_eq!(started, expected, "start order");
    for id in &expected {
        assert_eq!(
            guest_status(&pve, guests[id], *id).as_deref(),
            Some("running"),
            "{id}"
        );
    }
    // The journal agrees: its start entries are in the same order.
    let journal_starts: Vec<u64> = journal(&r)
        .iter()
        .filter(|e| e["action"]["action"] == "start_guest")
        .map(|e| e["action"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(journal_starts, expected);

    let (code, r, stderr) = apply(&pve, root.path(), &["LetsGo"]);
    print_journal("LetsGo again", &r);
    assert_eq!(code, 0, "{stderr}");
    assert!(guest_actions(&r).is_empty(), "{:#?}", guest_actions(&r));
    assert_eq!(r["requests"]["total"]["writes"], 0, "API writes");
    assert_eq!(r["host_writes"], 0, "host file writes");

    // `shutdown`: every running guest stopped, in the reverse of the start order.
    let (code, r, stderr) = apply(&pve, root.path(), &["shutdown"]);
    print_journal("shutdown", &r);
    assert_eq!(code, 0, "{stderr}");
    assert_journal_complete(&r);
    let stopped = task_ids(&pve, &["vzshutdown", "qmshutdown"]);
    let mut reverse = expected.clone();
    reverse.reverse();
    assert_eq!(stopped, reverse, "stop order");
    for id in &expected {
        assert_eq!(
            guest_status(&pve, guests[id], *id).as_deref(),
            Some("stopped"),
            "{id}"
        );
    }
    let (code, r, stderr) = apply(&pve, root.path(), &["shutdown"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(guest_actions(&r).is_empty(), "{:#?}", guest_actions(&r));
    assert_eq!(r["requests"]["total"]["writes"], 0, "API writes");
}
