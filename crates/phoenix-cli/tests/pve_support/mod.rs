//! Helpers for the CLI tests against fakepve (`drift_pve`, `faults_pve`, `verbs_pve`): the
//! homelab's storages, `phoenix … --target pve` with the connection as flags and the token in
//! the environment, and readers for the JSON reports. fakepve itself is started by the
//! launcher shared with phoenix-pve's tests (`common`, included by each test file).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use phoenix_plan::{ObservedState, Request};
use phoenix_render::RenderOptions;

use crate::common::{self, FakePve, SECRET, TOKEN_ID};

pub fn homelab_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab")
}

/// `from` copied to `to`, recursively (plain files and directories).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dst = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &dst);
        } else {
            std::fs::copy(&p, &dst).unwrap();
        }
    }
}

/// `edit` applied to the JSON file at `path`, written back.
fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// A copy of examples/homelab with `edit` applied to its LXC file's JSON (a test's own
/// configuration change).
pub fn homelab_with_lxc(edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    homelab_with(edit, |_| {})
}

/// A copy of examples/homelab with `lxc` applied to its LXC file's JSON and `vms` to its VM
/// file's (a test's own configuration change).
pub fn homelab_with(
    lxc: impl FnOnce(&mut serde_json::Value),
    vms: impl FnOnce(&mut serde_json::Value),
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&homelab_dir(), dir.path());
    edit_json(&dir.path().join("phoenix_lxc_configs.json"), lxc);
    edit_json(&dir.path().join("phoenix_vm_configs.json"), vms);
    dir
}

/// fakepve's storage.cfg for the homelab's create calls (`local` accepts imported cloud images).
pub fn storages() -> serde_json::Value {
    let d = phoenix_model::validate_dir(&homelab_dir()).desired.unwrap();
    let opts = RenderOptions {
        node: "pve1".into(),
    };
    let plan = phoenix_plan::plan(&d, &ObservedState::default(), &Request::SyncAll, &opts).unwrap();
    common::storages_for(&plan)
}

/// The homelab's guests: id → kind (`lxc`/`vm`).
pub fn homelab_guests() -> BTreeMap<u64, &'static str> {
    let d = phoenix_model::validate_dir(&homelab_dir()).desired.unwrap();
    d.guests
        .iter()
        .map(|(id, g)| {
            let kind = match g.kind {
                phoenix_model::model::GuestKind::Lxc => "lxc",
                phoenix_model::model::GuestKind::Vm => "qemu",
            };
            (u64::from(id.0), kind)
        })
        .collect()
}

/// `phoenix ARGS… --config CONFIG` against `pve`; the token through the environment; `--yes`
/// for `sync all`, `apply` and `setup`.
pub fn node_cmd(pve: &FakePve, root: &Path, config: &Path, args: &[&str]) -> Command {
    let mut c = node_cmd_asking(pve, root, config, args);
    // A node asks before it changes: these runs are scripts (`sync all`, `apply`).
    if args.starts_with(&["sync", "all"]) || matches!(args.first(), Some(&"apply" | &"setup")) {
        c.arg("--yes");
    }
    c
}

/// [`node_cmd`] without `--yes`: a run that would ask before changing the node.
pub fn node_cmd_asking(pve: &FakePve, root: &Path, config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phoenix"));
    c.args(args);
    c.arg("--config")
        .arg(config)
        .args([
            "--endpoint",
            &format!("https://{}:{}", common::HOST, pve.port),
        ])
        .args(["--node", "pve1"])
        .arg("--ca-file")
        .arg(&pve.pki.ca_pem)
        .arg("--host-root")
        .arg(root)
        .env("PROXMOX_VE_API_TOKEN", format!("{TOKEN_ID}={SECRET}"))
        .env_remove("PROXMOX_VE_FINGERPRINT")
        .env_remove("PROXMOX_VE_CA_FILE")
        .env_remove("PROXMOX_VE_USERNAME")
        .env_remove("PROXMOX_VE_PASSWORD")
        .env_remove("PROXMOX_VE_PASSWORD_FILE");
    c
}

/// Exit code, stdout as JSON, stderr.
pub fn run_json(mut cmd: Command) -> (i32, serde_json::Value, String) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains(SECRET), "the secret was printed");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}); exit {:?}; stdout: {}; stderr: {stderr}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code().unwrap_or(-1), json, stderr)
}

/// The argv of [`sync`].
pub const SYNC_ARGS: [&str; 8] = [
    "sync",
    "all",
    "--target",
    "pve",
    "--output",
    "json",
    "--image-store",
    "local",
];

/// `phoenix sync all --target pve --output json --image-store local`.
pub fn sync(pve: &FakePve, root: &Path) -> (i32, serde_json::Value, String) {
    sync_with(pve, root, &homelab_dir())
}

/// [`sync`] of the configuration in `config`.
pub fn sync_with(pve: &FakePve, root: &Path, config: &Path) -> (i32, serde_json::Value, String) {
    run_json(node_cmd(pve, root, config, &SYNC_ARGS))
}

/// `phoenix apply --target pve --output json --image-store local VERB…`.
pub fn apply(pve: &FakePve, root: &Path, verb: &[&str]) -> (i32, serde_json::Value, String) {
    let mut c = node_cmd(
        pve,
        root,
        &homelab_dir(),
        &[
            "apply",
            "--target",
            "pve",
            "--output",
            "json",
            "--image-store",
            "local",
        ],
    );
    c.args(verb);
    run_json(c)
}

/// `phoenix status --target pve --output json --detailed-exitcode` on the homelab.
pub fn status(pve: &FakePve, root: &Path) -> (i32, serde_json::Value) {
    status_of(pve, root, &homelab_dir())
}

/// [`status`] of the configuration in `config`.
pub fn status_of(pve: &FakePve, root: &Path, config: &Path) -> (i32, serde_json::Value) {
    let (code, json, _) = run_json(node_cmd(
        pve,
        root,
        config,
        &[
            "status",
            "--target",
            "pve",
            "--output",
            "json",
            "--detailed-exitcode",
        ],
    ));
    (code, json)
}

/// The plan's actions, in wave order.
pub fn actions(report: &serde_json::Value) -> Vec<serde_json::Value> {
    report["plan"]["waves"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["actions"].as_array().unwrap().clone())
        .collect()
}

/// The plan's guest actions (not files, certificates or provisioning steps).
pub fn guest_actions(report: &serde_json::Value) -> Vec<serde_json::Value> {
    actions(report)
        .into_iter()
        .filter(|a| {
            let kind = a["action"].as_str().unwrap_or_default();
            !matches!(
                kind,
                "write_file" | "issue_certificate" | "provision" | "update_trust_store"
            ) && !kind.contains("reload")
        })
        .collect()
}

pub fn journal(report: &serde_json::Value) -> Vec<serde_json::Value> {
    report["journal"]["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The journal entries that failed.
pub fn failed_entries(report: &serde_json::Value) -> Vec<serde_json::Value> {
    journal(report)
        .into_iter()
        .filter(|e| e["outcome"] == "failed")
        .collect()
}

pub fn print_journal(label: &str, report: &serde_json::Value) {
    println!(
        "{label}: requests {} (retries {}), writes {}, failed wave {}",
        report["requests"]["total"]["requests"],
        report["requests"]["total"]["retries"],
        report["requests"]["total"]["writes"],
        report["journal"]["failed_wave"]
    );
    for e in journal(report) {
        println!(
            "  [{}] {} {} → {} {}",
            e["wave"],
            e["action"]["action"],
            e["action"]["id"],
            e["outcome"],
            e["detail"].as_str().unwrap_or_default()
        );
    }
}

/// Every planned action has exactly one journal entry (same order); once a wave failed, every
/// entry of a later wave is `not_started`.
pub fn assert_journal_complete(report: &serde_json::Value) {
    let planned = actions(report);
    let entries = journal(report);
    assert_eq!(planned.len(), entries.len(), "an action without an entry");
    for (a, e) in planned.iter().zip(&entries) {
        assert_eq!(a, &e["action"], "journal order differs from the plan");
    }
    if let Some(failed) = report["journal"]["failed_wave"].as_str() {
        let mut after = false;
        let mut seen = false;
        for e in &entries {
            if e["wave"] == failed {
                seen = true;
            } else if seen {
                after = true;
            }
            if after {
                assert_eq!(e["outcome"], "not_started", "{e:#}");
            }
        }
        assert!(seen, "the failed wave {failed} has entries");
    }
}

/// A guest's config through the API.
pub fn guest_config(pve: &FakePve, kind: &str, id: u64) -> serde_json::Value {
    let client = pve.client(phoenix_pve::TlsTrust::CaFile(pve.pki.ca_pem.clone()));
    client
        .get(&format!("/nodes/pve1/{kind}/{id}/config"), &[])
        .expect("config")
}

/// A guest's status (`running`/`stopped`) through the API.
pub fn guest_status(pve: &FakePve, kind: &str, id: u64) -> Option<String> {
    let client = pve.client(phoenix_pve::TlsTrust::CaFile(pve.pki.ca_pem.clone()));
    client
        .get(&format!("/nodes/pve1/{kind}/{id}/status/current"), &[])
        .ok()
        .and_then(|v| v["status"].as_str().map(str::to_string))
}

/// fakepve with the homelab converged by one sync, and the scratch host root it used.
pub fn converged() -> (FakePve, tempfile::TempDir) {
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let (code, _, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "{stderr}");
    (pve, root)
}

/// fakepve with the homelab converged by one sync, then guest 102 drifted (`memory`) while
/// fakepve holds 102's config lock for "another task": the next sync's repair of 102 is kept
/// waiting. The scratch host root goes with it.
pub fn converged_with_102_locked() -> (FakePve, tempfile::TempDir) {
    let (pve, root) = converged();
    put_config(&pve, "lxc", 102, &[("memory", "4096")]);
    pve.control(&serde_json::json!({"op": "hold_lock", "vmid": 102, "secs": null}));
    (pve, root)
}

/// PUT `params` on a guest's config behind phoenix's back.
pub fn put_config(pve: &FakePve, kind: &str, id: u64, params: &[(&str, &str)]) {
    let client = pve.client(phoenix_pve::TlsTrust::CaFile(pve.pki.ca_pem.clone()));
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    client
        .write_and_wait(
            reqwest::Method::PUT,
            &format!("/nodes/pve1/{kind}/{id}/config"),
            &params,
        )
        .expect("drift write");
}

/// One `key=value` option of a PVE property string (`net0`).
pub fn prop<'a>(value: &'a str, key: &str) -> Option<&'a str> {
    value
        .split(',')
        .find_map(|p| p.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
}

/// `value` with option `key` set to `new` (added when missing).
pub fn with_prop(value: &str, key: &str, new: &str) -> String {
    let mut found = false;
    let mut parts: Vec<String> = value
        .split(',')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k == key => {
                found = true;
                format!("{key}={new}")
            }
            _ => p.to_string(),
        })
        .collect();
    if !found {
        parts.push(format!("{key}={new}"));
    }
    parts.join(",")
}
