//! One run at a time on a node (issue 17): while a `sync all --target pve` against fakepve
//! holds the node's lock (`/run/phoenix.lock` through the host shell, here under
//! `--host-root`) — kept busy by fakepve holding guest 102's config lock, so its update is
//! retried — a second `sync all --target pve --lock-timeout 0` exits 4 naming the holder (its
//! pid and command) and changes nothing; once the first is done, the next run takes the lock
//! and converges. fakepve is an external process (AGPL, never vendored).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../phoenix-pve/tests/common/mod.rs"]
mod common;
mod pve_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::fakepve_available;
use pve_support::*;
use serde_json::json;

#[test]
fn a_second_sync_exits_4_naming_the_node_locks_holder() {
    if !fakepve_available() {
        return;
    }
    // Drift on 102 whose repair fakepve keeps busy (its config lock held by "another task").
    let (pve, root) = converged_with_102_locked();

    let mut first = node_cmd(&pve, root.path(), &homelab_dir(), &SYNC_ARGS)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = root.path().join("run/phoenix.lock");
    let t = Instant::now();
    let holder = loop {
        let pid = std::fs::read_to_string(&lock)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["pid"].as_u64());
        if let Some(pid) = pid {
            break pid;
        }
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended before it was seen holding the lock"
        );
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no lock file at {lock:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        holder,
        u64::from(first.id()),
        "the first run holds the lock"
    );

    let mut second = node_cmd(&pve, root.path(), &homelab_dir(), &SYNC_ARGS);
    second.args(["--lock-timeout", "0"]);
    let out = second.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run ended while the second ran: the refusal proves nothing"
    );
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("node pve1"), "{stderr}");
    assert!(stderr.contains(&format!("pid {holder}")), "{stderr}");
    assert!(
        stderr.contains("sync all"),
        "the holder's command: {stderr}"
    );
    // A refused run plans nothing: its JSON is the error, naming the holder.
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["kind"], "error", "{doc}");
    assert_eq!(doc["error"]["exit_code"], 4, "{doc}");
    assert!(doc.get("plan").is_none(), "{doc}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {holder}")),
        "{doc}"
    );

    pve.control(&json!({"op": "release_lock", "vmid": 102}));
    let status = first.wait().unwrap();
    eprintln!("first run: {status}");
    assert!(!lock.exists(), "the first run released the lock");
    let (code, _, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "{stderr}");
    let (code, r, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(r["requests"]["total"]["writes"], 0);
}
