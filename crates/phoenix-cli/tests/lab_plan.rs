//! The lab runs the node's plan, nothing else (`sync all --target lab --provision`, the real
//! binary as root, `examples/homelab` copies):
//! - the Portainer route's port moved to 9444 on a running lab: the run writes the route's
//!   file in the proxy and moves the backend's firewall rule to the new port (nothing else:
//!   no guest, certificate or other file), and `verify` fails at the route's backend hop;
//! - the gateway's `nginx` feature dropped: the plan says nothing serves the gateway's file,
//!   no nginx runs in the gateway, and `verify` fails at the route's first hop;
//! - the operator's own configuration (the upstream rootesting fixture): the programs running
//!   in its guests are exactly those its plan's `service` steps start.
//!
//! Root only: without root a note and return, unless `CI` is set (then it fails).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::path::Path;
use std::time::Instant;

mod common;

use common::*;
use phoenix_lab::LabGuard;
use serde_json::Value;

fn sync(prefix: &str, config: &Path) -> (Option<i32>, Value) {
    lab_sync(prefix, &config.display().to_string())
}

/// The actions the journal says changed something.
fn changed(v: &Value) -> Vec<Value> {
    done(v).into_iter().map(|(_, a)| a).collect()
}

/// The verify check `id` of a sync document.
fn check<'v>(v: &'v Value, id: &str) -> &'v Value {
    v["verify"]["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}"))
}

/// The route check's evidence (it failed).
fn route_failure(v: &Value) -> String {
    let route = check(v, "route/portainer.internal.thinkheads.ai");
    assert_eq!(route["status"], "fail", "{route:#}");
    route["evidence"].as_str().unwrap_or_default().to_string()
}

/// A copy of the homelab with `edit` applied to one of its files.
fn homelab_with(file: &str, edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(Path::new(CONFIG), dir.path());
    let path = dir.path().join(file);
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    dir
}

#[test]
fn lab_route_change_rewrites_only_its_file() {
    if !root_or_skip("lab_plan route change") {
        return;
    }
    let prefix = unique_prefix('r');
    let guard = LabGuard::new(&prefix);
    let (code, v) = sync(&prefix, Path::new(CONFIG));
    assert_eq!(code, Some(0), "{:#}", v["journal"]["failed_wave"]);

    let moved = homelab_with("phoenix_vm_configs.json", |v| {
        let manager = v["vms"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|vm| vm["vmid"] == 1001)
            .unwrap();
        manager["traefik_service"]["port"] = 9444.into();
    });
    let t = Instant::now();
    let (code, v) = sync(&prefix, moved.path());
    eprintln!("route change: sync and verify in {:?}", t.elapsed());
    assert_eq!(code, Some(1), "verify fails: {:#}", v["verify"]["counts"]);
    let changed = changed(&v);
    assert!(!changed.is_empty());
    // The route's file in the proxy, and the backend's firewall rule following its port.
    for a in &changed {
        let route_file = a.to_string().contains("/etc/traefik/dynamic/phoenix.yml")
            && (a["guest"] == 102 || a["target"]["id"] == 102);
        let backend_rule = a["action"] == "firewall"
            && a["scope"]["id"] == 1001
            && a["change"]["set"]["dport"] == "9444";
        assert!(
            route_file || backend_rule,
            "only what the route touches: {a:#}"
        );
    }
    assert!(
        changed
            .iter()
            .any(|a| a.to_string().contains("/etc/traefik/dynamic/phoenix.yml")),
        "{changed:#?}"
    );
    let evidence = route_failure(&v);
    assert!(
        evidence.contains("hop 3/3") && evidence.contains("172.16.100.21:9444"),
        "{evidence}"
    );

    lab_down(&prefix);
    drop(guard);
    assert_gone(&prefix);
}

#[test]
fn lab_gateway_without_nginx_feature_fails_at_the_gateway() {
    if !root_or_skip("lab_plan no nginx") {
        return;
    }
    let copy = homelab_with("phoenix_lxc_configs.json", |v| {
        let features = v["lxc_configs"]["101"]["features"]
            .as_array_mut()
            .expect("features of 101");
        let before = features.len();
        features.retain(|f| f != "nginx");
        assert_eq!(features.len() + 1, before, "101 had the nginx feature");
    });
    let prefix = unique_prefix('n');
    let guard = LabGuard::new(&prefix);
    let (code, v) = sync(&prefix, copy.path());
    assert_eq!(code, Some(1), "verify fails: {:#}", v["verify"]["counts"]);
    let notes: Vec<&str> = v["plan"]["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("guest 101")
            && n.contains("/etc/nginx/conf.d/phoenix-gateway.conf")
            && n.contains("no provision step installs or starts nginx")),
        "{notes:#?}"
    );
    let services = phoenix_lab::services::load(&prefix).expect("services.json");
    assert!(
        services.services.iter().all(|s| s.name != "nginx-gw"),
        "nothing in the plan starts nginx: {:?}",
        services.services
    );
    let evidence = route_failure(&v);
    assert!(evidence.contains("hop 1/3"), "{evidence}");

    lab_down(&prefix);
    drop(guard);
    assert_gone(&prefix);
}

/// The operator's own configuration (rootesting): the lab runs in each guest exactly the
/// programs its plan's `service` steps start — Traefik and step-ca, dockerd on the Swarm VMs —
/// and no nginx on the gateway, which no feature provisions (the bash system installed it in
/// the guest's own script): the plan says so and the route fails at its first hop.
#[test]
fn lab_rootesting_runs_only_what_its_plan_starts() {
    if !root_or_skip("lab_plan rootesting") {
        return;
    }
    let config = ROOTESTING;
    if !Path::new(config).is_dir() {
        assert!(std::env::var_os("CI").is_none(), "the fixture is missing");
        eprintln!("note: skipped: no rootesting fixture at {config}");
        return;
    }
    let prefix = unique_prefix('o');
    let guard = LabGuard::new(&prefix);
    let (code, v) = lab_sync(&prefix, config);
    assert!(
        v["journal"]["success"] == true,
        "exit {code:?}: {:#}",
        v["journal"]["failed_wave"]
    );
    // The `service` steps of the journal that started or kept a program in a guest.
    let mut started: Vec<String> = v["journal"]["entries"]
        .as_array()
        .expect("journal")
        .iter()
        .filter(|e| e["action"]["action"] == "provision")
        .filter(|e| e["action"]["step"]["kind"]["kind"] == "service")
        .filter(|e| e["outcome"] == "done")
        .map(|e| {
            format!(
                "{}:{}",
                e["action"]["guest"],
                e["action"]["step"]["kind"]["name"]
                    .as_str()
                    .unwrap_or_default()
            )
        })
        .collect();
    started.sort();
    let dockerd = phoenix_lab::swarm::dockerd_available();
    let mut want = vec!["102:traefik", "103:step-ca"];
    if dockerd {
        want.extend(["1001:docker", "1002:docker"]);
    }
    want.sort_unstable();
    assert_eq!(started, want, "{:#}", v["journal"]);
    // …and nothing else runs in a guest.
    let services = phoenix_lab::services::load(&prefix).expect("services.json");
    let mut in_guests: Vec<String> = services
        .services
        .iter()
        .filter(|s| !s.ns.ends_with("-hv") && !s.ns.ends_with("-wan"))
        .map(|s| s.name.clone())
        .collect();
    in_guests.sort();
    assert_eq!(in_guests, ["step-ca", "traefik"], "{:?}", services.services);
    let notes: Vec<&str> = v["plan"]["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("guest 101")
                && n.contains("no provision step installs or starts nginx")),
        "{notes:#?}"
    );
    assert_eq!(code, Some(1), "verify fails");
    let hop1 = check(&v, "route/portainer.internal.thinkheads.ai/hop1");
    assert_eq!(hop1["status"], "fail", "{hop1:#}");

    lab_down(&prefix);
    drop(guard);
    assert_gone(&prefix);
}
