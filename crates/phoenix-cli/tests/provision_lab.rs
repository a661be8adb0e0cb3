//! `phoenix sync all --target lab --provision`: the provision steps of every guest run against
//! the lab's guest namespaces and file roots (files for real, packages and services provided by
//! the lab, never installed here). First run: steps applied and the verify report passes;
//! second run: the lab plans zero changes and provisioning applies nothing; a provisioned file
//! changed behind phoenix's back is drift (the lab is rebuilt, naming it) and placed again. Root only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use common::*;
use phoenix_lab::LabGuard;
use serde_json::Value;

fn sync_provision(prefix: &str) -> (Option<i32>, Value) {
    let o = phoenix(&[
        "sync",
        "all",
        "--target",
        "lab",
        "--config",
        CONFIG,
        "--prefix",
        prefix,
        "--provision",
        "--output",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("json ({e}): {}\n{}", text(&o.stdout), text(&o.stderr)));
    (o.status.code(), v)
}

/// (applied, failed) steps and the applied steps' names.
fn outcomes(v: &Value) -> (Vec<String>, usize) {
    let mut applied = Vec::new();
    let mut failed = 0;
    for g in v["provision"]["guests"].as_array().expect("guests") {
        for s in g["steps"].as_array().expect("steps") {
            match s["outcome"].as_str() {
                Some("applied") => {
                    applied.push(format!("{}: {}", g["guest"], s["step"].as_str().unwrap()))
                }
                Some("failed") => failed += 1,
                _ => {}
            }
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
    assert_eq!(failed, 0, "{:#}", v["provision"]);
    assert!(!applied.is_empty(), "{:#}", v["provision"]);

    let (code, v) = sync_provision(&prefix);
    assert_eq!(code, Some(0));
    assert!(v["plan"]["changes"].as_array().unwrap().is_empty());
    let (applied, failed) = outcomes(&v);
    assert_eq!((applied.len(), failed), (0, 0), "{applied:?}");

    // A provisioned file in Traefik's root (102), changed behind phoenix's back.
    let root = phoenix_lab::state_dir(&prefix).join("root").join("102");
    let unit = walk(&root)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "service"))
        .expect("a provisioned systemd unit in 102's root");
    std::fs::write(&unit, "[Unit]\nDescription=changed by hand\n").unwrap();
    // The lab treats a changed file under a guest root as drift of the whole lab (rebuilt,
    // naming the file); provisioning then places the file again.
    let (code, v) = sync_provision(&prefix);
    assert_eq!(code, Some(0));
    let changes = v["plan"]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(changes[0]["action"], "rebuild");
    let name = unit.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        changes[0]["reason"].as_str().unwrap().contains(&name),
        "{changes:#?}"
    );
    let (applied, failed) = outcomes(&v);
    assert_eq!(failed, 0);
    assert!(applied.iter().any(|a| a.contains(&name)), "{applied:?}");
    assert!(
        std::fs::read_to_string(&unit)
            .unwrap()
            .contains("ExecStart"),
        "{}",
        unit.display()
    );
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
