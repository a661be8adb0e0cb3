//! `phoenix sync all --target pve` twice against fakepve (an external process, started by the
//! launcher shared with phoenix-pve's tests) with `--host-root` a scratch directory: the first
//! run applies without failure, the second makes zero writes (API and host files) and plans no
//! guest or host-file change besides the staged `/etc/network/interfaces` awaiting its switch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../phoenix-pve/tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use common::{FakePve, SECRET, TOKEN_ID, fakepve_available};
use phoenix_plan::{Action, ObservedState, Request};
use phoenix_render::RenderOptions;

fn homelab_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab")
}

/// Storage ids the homelab's create calls name, for fakepve's storage.cfg (as in
/// phoenix-pve's guests test); `local` accepts imported cloud images.
fn storages() -> serde_json::Value {
    let d = phoenix_model::validate_dir(&homelab_dir()).desired.unwrap();
    let opts = RenderOptions {
        node: "pve1".into(),
    };
    let plan = phoenix_plan::plan(&d, &ObservedState::default(), &Request::SyncAll, &opts).unwrap();
    let mut names = BTreeSet::new();
    for a in plan.actions() {
        if let Action::CreateGuest { calls, .. } = a {
            for v in calls.iter().flat_map(|c| c.params.values()) {
                for part in v.split(',') {
                    let part = part.split_once('=').map_or(part, |(_, v)| v);
                    if let Some((sid, _)) = part.split_once(':')
                        && sid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !["local", "local-lvm"].contains(&sid)
                        && sid.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    {
                        names.insert(sid.to_string());
                    }
                }
            }
        }
    }
    let mut map: serde_json::Map<String, serde_json::Value> = names
        .into_iter()
        .map(|n| {
            let path = format!("/mnt/pve/{n}");
            let v = serde_json::json!({"type": "dir", "path": path,
                "content": "images,rootdir,vztmpl,iso,snippets,import"});
            (n, v)
        })
        .collect();
    map.insert(
        "local".into(),
        serde_json::json!({"type": "dir", "path": "/var/lib/vz",
            "content": "iso,vztmpl,backup,import"}),
    );
    serde_json::Value::Object(map)
}

fn sync(pve: &FakePve, root: &std::path::Path) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(["sync", "all", "--target", "pve", "--output", "json"])
        .arg("--config")
        .arg(homelab_dir())
        .args([
            "--endpoint",
            &format!("https://{}:{}", common::HOST, pve.port),
        ])
        .args(["--node", "pve1", "--image-store", "local"])
        .arg("--ca-file")
        .arg(&pve.pki.ca_pem)
        .arg("--host-root")
        .arg(root)
        // The secret goes through the environment, never argv.
        .env("PROXMOX_VE_API_TOKEN", format!("{TOKEN_ID}={SECRET}"))
        .env_remove("PROXMOX_VE_FINGERPRINT")
        .env_remove("PROXMOX_VE_CA_FILE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains(SECRET), "the secret was printed");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}); stderr: {stderr}"));
    (out.status.code().unwrap_or(-1), json, stderr)
}

fn actions(report: &serde_json::Value) -> Vec<serde_json::Value> {
    report["plan"]["waves"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["actions"].as_array().unwrap().clone())
        .collect()
}

fn print_summary(label: &str, report: &serde_json::Value) {
    println!(
        "{label}: requests {} (observe {}), writes {}, host file writes {}",
        report["requests"]["total"]["requests"],
        report["requests"]["observe"]["requests"],
        report["requests"]["total"]["writes"],
        report["host_writes"]
    );
}

#[test]
fn sync_all_twice_second_run_writes_nothing() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();

    let (code, first, stderr) = sync(&pve, root.path());
    print_summary("first run", &first);
    for e in first["journal"]["entries"].as_array().unwrap() {
        println!(
            "  [{}] {} → {}",
            e["wave"], e["action"]["action"], e["outcome"]
        );
    }
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(first["journal"]["success"], true);
    assert!(first["host_writes"].as_u64().unwrap() > 0);
    assert!(
        root.path().join("etc/network/interfaces.new").exists(),
        "interfaces is staged"
    );
    assert!(
        !root.path().join("etc/network/interfaces").exists(),
        "the live interfaces file is never written by sync (the switch is separate)"
    );

    let (code, second, stderr) = sync(&pve, root.path());
    print_summary("second run", &second);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(second["requests"]["total"]["writes"], 0, "API writes");
    assert_eq!(second["host_writes"], 0, "host file writes");
    let left: Vec<_> = actions(&second)
        .into_iter()
        .filter(|a| {
            let guest_file = a["action"] == "write_file" && a["target"]["kind"] != "host";
            let certificate = a["action"] == "issue_certificate";
            !(guest_file || certificate)
        })
        .collect();
    // Only the staged interfaces file remains, reported as already staged.
    assert_eq!(left.len(), 1, "{left:#?}");
    assert_eq!(left[0]["path"], "/etc/network/interfaces");
    let staged = second["journal"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"]["path"] == "/etc/network/interfaces")
        .unwrap();
    assert_eq!(staged["outcome"], "staged");
    assert!(
        staged["detail"]
            .as_str()
            .unwrap()
            .contains("already staged")
    );
}
