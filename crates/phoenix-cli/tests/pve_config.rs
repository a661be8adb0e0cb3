//! The connection named by the configuration (`proxmox_api` in the hypervisor file): with no
//! flag and no `PROXMOX_VE_*` variable, `phoenix status --target pve` reaches fakepve with the
//! endpoint, node, CA file and the token the configuration names (the token as an `{"env"}`
//! reference); a flag still wins over it; a reference that cannot be resolved is a usage error
//! naming the key. The token never appears in the output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../phoenix-pve/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{FakePve, SECRET, TOKEN_ID, fakepve_available};

const TOKEN_VAR: &str = "PHX_TEST_CONFIG_PVE_TOKEN";

fn homelab_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab")
}

/// A copy of the homelab whose hypervisor file names the connection.
fn config_naming(dir: &Path, proxmox_api: serde_json::Value) {
    for entry in std::fs::read_dir(homelab_dir()).unwrap() {
        let entry = entry.unwrap();
        let to = dir.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            let status = Command::new("cp")
                .arg("-r")
                .arg(entry.path())
                .arg(&to)
                .status()
                .unwrap();
            assert!(status.success());
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
    let file = dir.join("phoenix_hypervisor_config.json");
    let mut h: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    h["proxmox_api"] = proxmox_api;
    std::fs::write(&file, serde_json::to_string_pretty(&h).unwrap()).unwrap();
}

fn status(config: &Path, root: &Path, args: &[&str], token: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phoenix"));
    c.args(["status", "--target", "pve", "--output", "json", "--config"])
        .arg(config)
        .arg("--host-root")
        .arg(root)
        .args(args);
    for k in [
        "PROXMOX_VE_ENDPOINT",
        "PROXMOX_VE_NODE",
        "PROXMOX_VE_API_TOKEN",
        "PROXMOX_VE_CA_FILE",
        "PROXMOX_VE_FINGERPRINT",
        "PROXMOX_VE_USERNAME",
        "PROXMOX_VE_PASSWORD",
        "PROXMOX_VE_PASSWORD_FILE",
        "PHOENIX_CONFIG",
        TOKEN_VAR,
    ] {
        c.env_remove(k);
    }
    if let Some(t) = token {
        c.env(TOKEN_VAR, t);
    }
    let out = c.output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(SECRET));
    out
}

#[test]
fn status_connects_with_what_the_configuration_names() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&serde_json::json!({}));
    let root = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    config_naming(
        config.path(),
        serde_json::json!({
            "endpoint": format!("https://{}:{}", common::HOST, pve.port),
            "node": "pve1",
            "api_token": {"env": TOKEN_VAR},
            "ca_file": pve.pki.ca_pem.to_string_lossy(),
        }),
    );
    let token = format!("{TOKEN_ID}={SECRET}");

    // Nothing but the configuration: status observes the empty node (every guest missing).
    let out = status(config.path(), root.path(), &[], Some(&token));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let guests = st["status"]["guests"].as_array().unwrap();
    assert!(!guests.is_empty() && guests.iter().all(|g| g["exists"] == false));
    assert_eq!(st["requests"]["writes"], 0);

    // The token reference cannot be resolved: a usage error naming the key, nothing sent.
    let out = status(config.path(), root.path(), &[], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("proxmox_api.api_token") && stderr.contains(TOKEN_VAR),
        "{stderr}"
    );

    // Credentials from the environment replace the configuration's as a unit: its token
    // reference (unset here) is then not even read.
    let mut c = Command::new(env!("CARGO_BIN_EXE_phoenix"));
    c.args(["status", "--target", "pve", "--output", "json", "--config"])
        .arg(config.path())
        .arg("--host-root")
        .arg(root.path())
        .env_remove(TOKEN_VAR)
        .env_remove("PHOENIX_CONFIG")
        .env("PROXMOX_VE_API_TOKEN", &token);
    let out = c.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A flag wins over the configuration: an endpoint on the command line where nothing
    // listens is used (and refused), the configuration's working one is not silently preferred.
    let out = status(
        config.path(),
        root.path(),
        &["--endpoint", "https://127.0.0.2:9"],
        Some(&token),
    );
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Connection refused"), "{stderr}");
}
