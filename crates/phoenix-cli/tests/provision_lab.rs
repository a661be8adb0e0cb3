//! `phoenix sync all --target lab --provision`: the provision steps of every guest run against
//! the lab's guest namespaces and file roots (files for real, services started as the lab's
//! processes, packages never installed here). First run: steps applied and the verify report
//! passes; second run: nothing planned and provisioning applies nothing; a provisioned file
//! changed behind phoenix's back is found by its step's check at apply time and placed again,
//! nothing else. Root only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use common::*;
use phoenix_lab::LabGuard;
use serde_json::Value;

fn sync_provision(prefix: &str) -> (Option<i32>, Value) {
    lab_sync(prefix, CONFIG)
}

/// The provision steps the journal applied (guest: step) and how many failed.
fn outcomes(v: &Value) -> (Vec<String>, usize) {
    let mut applied = Vec::new();
    let mut failed = 0;
    for e in v["journal"]["entries"].as_array().expect("journal") {
        if e["action"]["action"] != "provision" {
            continue;
        }
        match e["outcome"].as_str() {
            Some("done") => {
                applied.push(format!("{}: {}", e["action"]["guest"], e["action"]["step"]))
            }
            Some("failed") => failed += 1,
            _ => {}
        }
    }
    (applied, failed)
}

#[test]
fn sync_lab_provision_applies_once_and_repairs_a_changed_file() {
    if !root_or_skip("sync_lab provision") {
        return;
    }
    let prefix = unique_prefix('v');
    let guard = LabGuard::new(&prefix);
    let (code, v) = sync_provision(&prefix);
    assert_eq!(code, Some(0), "{:#}", v["verify"]["counts"]);
    let (applied, failed) = outcomes(&v);
    assert_eq!(failed, 0, "{:#}", v["journal"]);
    assert!(!applied.is_empty(), "{:#}", v["journal"]);

    let (code, v) = sync_provision(&prefix);
    assert_eq!(code, Some(0));
    assert_eq!(planned(&v), 0, "{:#}", v["plan"]["summary"]);
    let (applied, failed) = outcomes(&v);
    assert_eq!((applied.len(), failed), (0, 0), "{applied:?}");

    // A provisioned file in Traefik's root (102), changed behind phoenix's back: its step's
    // check finds it at apply time and places it again; nothing else is applied.
    let root = phoenix_lab::state_dir(&prefix).join("root").join("102");
    let unit = walk(&root)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "service"))
        .expect("a provisioned systemd unit in 102's root");
    std::fs::write(&unit, "[Unit]\nDescription=changed by hand\n").unwrap();
    let (code, v) = sync_provision(&prefix);
    assert_eq!(code, Some(0));
    let name = unit.file_name().unwrap().to_string_lossy().into_owned();
    let (applied, failed) = outcomes(&v);
    assert_eq!(failed, 0);
    assert!(applied.iter().any(|a| a.contains(&name)), "{applied:?}");
    assert!(
        applied.iter().all(|a| a.starts_with("102: ")),
        "only Traefik's guest: {applied:?}"
    );
    assert!(
        std::fs::read_to_string(&unit)
            .unwrap()
            .contains("ExecStart"),
        "{}",
        unit.display()
    );
    lab_down(&prefix);
    drop(guard);
    assert_gone(&prefix);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
