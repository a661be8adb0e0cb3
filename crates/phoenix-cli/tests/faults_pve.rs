//! fakepve's failure and slowness modes through the CLI (`phoenix sync all --target pve
//! --output json` against fakepve as an external process, modes switched through the
//! launcher's control lines): the client's retries show in `requests.total.retries`, the run
//! ends with an error that names the action and guest, and the journal has an entry for every
//! planned action saying where the run stopped (done / failed / not started).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../phoenix-pve/tests/common/mod.rs"]
mod common;
mod pve_support;

use common::{FakePve, fakepve_available};
use pve_support::*;
use serde_json::json;

/// Another task holds 102's config lock: the update of 102 is retried (PVE's `got timeout`
/// means nothing was done) and then fails; exit 3, the journal names guest 102 and its config
/// path, later waves are not started. With the lock free, the next run repairs it and the one
/// after writes nothing.
#[test]
fn lock_timeout_is_retried_then_the_journal_says_where_it_stopped() {
    if !fakepve_available() {
        return;
    }
    // Drift on 102 whose repair fakepve keeps busy (its config lock held by "another task").
    let (pve, root) = converged_with_102_locked();

    let (code, r, stderr) = sync(&pve, root.path());
    print_journal("locked", &r);
    assert_eq!(code, 3, "{stderr}");
    assert_journal_complete(&r);
    let retries = r["requests"]["total"]["retries"].as_u64().unwrap();
    assert!(retries >= 5, "the lock timeout was retried: {retries}");
    let failed: Vec<_> = failed_entries(&r);
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let e = &failed[0];
    assert_eq!(e["action"]["action"], "update_guest");
    assert_eq!(e["action"]["id"].as_u64(), Some(102));
    let detail = e["detail"].as_str().unwrap();
    assert!(
        detail.contains("/lxc/102/config") && detail.contains("got timeout"),
        "{detail}"
    );
    let wave = r["journal"]["failed_wave"].as_str().unwrap();
    assert_eq!(e["wave"], wave);
    assert!(
        stderr.contains(&format!("apply stopped in wave `{wave}`")),
        "{stderr}"
    );
    assert_eq!(r["journal"]["success"], false);

    pve.control(&json!({"op": "release_lock", "vmid": 102}));
    let (code, r, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(r["requests"]["total"]["retries"], 0);
    let (code, r, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(r["requests"]["total"]["writes"], 0);
}

/// A failed run stopped in a named wave; each failure is a write whose connection dropped
/// (reads are retried), named by its request (a guest's path carries its id).
fn check_failures(r: &serde_json::Value, stderr: &str) {
    if r["journal"]["success"] == false {
        let wave = r["journal"]["failed_wave"].as_str().unwrap();
        assert!(stderr.contains(&format!("apply stopped in wave `{wave}`")));
        for e in journal(r).iter().filter(|e| e["outcome"] == "failed") {
            let detail = e["detail"].as_str().unwrap();
            assert!(detail.contains("transport error"), "{detail}");
            assert!(!detail.starts_with("GET "), "reads are retried: {detail}");
            // The request is named (a guest's path carries its id, a create its node path).
            assert!(
                ["POST /", "PUT /", "DELETE /"]
                    .iter()
                    .any(|m| detail.starts_with(m)),
                "{detail}"
            );
            if let Some(id) = e["action"]["id"].as_u64()
                && e["action"]["action"] != "create_guest"
            {
                assert!(
                    detail.contains(&format!("/{id}")),
                    "names guest {id}: {detail}"
                );
            }
        }
    }
}

/// A flaky network (fakepve resets a fifth of the connections before acting on them) during a
/// first sync: reads are retried (counted); if a write lost its connection, its action fails
/// with the request named, its wave finishes and the later waves are `not_started` — every
/// planned action has an entry. On a good network the next runs converge; every guest was
/// created by exactly one create request (a create is never resent).
#[test]
fn flaky_network_sync_retries_and_journals_every_action() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    // Deterministic: the inventory read is answered 502 twice (a proxy hiccup; retried).
    pve.control(
        &json!({"op": "fail", "method": "GET", "suffix": "/cluster/resources",
        "status": 502, "message": "Bad Gateway", "times": 2}),
    );
    pve.control(&json!({"op": "flaky", "drop_rate": 0.2, "seed": 3}));
    let (code, r, stderr) = sync(&pve, root.path());
    print_journal("flaky", &r);
    assert!(code == 0 || code == 3, "exit {code}: {stderr}");
    assert_journal_complete(&r);
    let retries = r["requests"]["total"]["retries"].as_u64().unwrap();
    assert!(retries >= 2, "failed reads were retried: {retries}");
    check_failures(&r, &stderr);

    pve.control(&json!({"op": "flaky"}));
    let mut runs = 0;
    loop {
        let (code, r, stderr) = sync(&pve, root.path());
        assert_eq!(code, 0, "{stderr}");
        if guest_actions(&r).is_empty() {
            break;
        }
        runs += 1;
        assert!(runs <= 2, "not converged after {runs} clean runs");
    }
    // Flaky again, with guest writes to do: three guests drifted.
    for id in [101, 102, 103] {
        put_config(&pve, "lxc", id, &[("cores", "3")]);
    }
    pve.control(
        &json!({"op": "fail", "method": "GET", "suffix": "/cluster/resources",
        "status": 502, "message": "Bad Gateway", "times": 2}),
    );
    pve.control(&json!({"op": "flaky", "drop_rate": 0.3, "seed": 9}));
    let (code, r, stderr) = sync(&pve, root.path());
    print_journal("flaky updates", &r);
    assert!(code == 0 || code == 3, "exit {code}: {stderr}");
    assert_journal_complete(&r);
    check_failures(&r, &stderr);
    assert!(r["requests"]["total"]["retries"].as_u64().unwrap() >= 2);
    pve.control(&json!({"op": "flaky"}));
    let (code, _, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "{stderr}");
    for id in [101, 102, 103] {
        let cores = guest_config(&pve, "lxc", id)["cores"].to_string();
        assert_ne!(cores.trim_matches('"'), "3", "{id} repaired");
    }

    let d = phoenix_model::validate_dir(&homelab_dir()).desired.unwrap();
    let requests = pve.requests();
    for (seg, kind) in [
        ("lxc", phoenix_model::model::GuestKind::Lxc),
        ("qemu", phoenix_model::model::GuestKind::Vm),
    ] {
        let fresh = d
            .guests
            .values()
            .filter(|g| {
                g.kind == kind
                    && !matches!(g.source, phoenix_model::model::GuestSource::Clone { .. })
            })
            .count();
        let posts = requests
            .iter()
            .filter(|(m, p)| m == "POST" && p.ends_with(&format!("/nodes/pve1/{seg}")))
            .count();
        assert_eq!(posts, fresh, "{seg}: one create request per guest");
    }
}

/// Slowness past the CLI's deadlines: a container start that takes 1000 s must end the run at
/// the task deadline (`--task-deadline`) with the task named, not after PVE's 10 min.
#[test]
fn task_past_the_cli_deadline_is_journaled() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let (code, _, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "{stderr}");
    let client = pve.client(phoenix_pve::TlsTrust::CaFile(pve.pki.ca_pem.clone()));
    client
        .write_and_wait(
            reqwest::Method::POST,
            "/nodes/pve1/lxc/102/status/stop",
            &Default::default(),
        )
        .unwrap();
    pve.control(&json!({"op": "guest_attr", "vmid": 102, "attr": "start_secs", "value": 1000}));
    pve.control(&json!({"op": "time_scale", "value": 1.0}));
    let mut cmd = node_cmd(
        &pve,
        root.path(),
        &homelab_dir(),
        &[
            "sync",
            "all",
            "--target",
            "pve",
            "--output",
            "json",
            "--image-store",
            "local",
            "--request-timeout",
            "2",
            "--task-deadline",
            "2",
        ],
    );
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(2),
        "the CLI does not accept --request-timeout/--task-deadline yet: {stderr}"
    );
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_journal_complete(&r);
    let failed: Vec<_> = failed_entries(&r);
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0]["action"]["action"], "start_guest");
    assert_eq!(failed[0]["action"]["id"].as_u64(), Some(102));
    let detail = failed[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains(":vzstart:102:") && detail.contains("still running"),
        "{detail}"
    );
}
