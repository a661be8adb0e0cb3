//! `phoenix doctor --target pve` against fakepve (an external process): with the node's CA and
//! the right token every node check passes; a foreign CA fails "TLS trust", a wrong token
//! fails "credentials", nothing listening fails "node reachable" — each with its fix, exit 1,
//! and the token never printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../phoenix-pve/tests/common/mod.rs"]
mod common;
mod pve_support;

use common::{FakePve, HOST, SECRET, TOKEN_ID, fakepve_available};
use pve_support::*;

/// `phoenix doctor --target pve -o json` with `ca_file` and `token`: exit code and checks by name.
fn doctor(
    pve: &FakePve,
    ca_file: &std::path::Path,
    token: &str,
) -> (i32, std::collections::BTreeMap<String, serde_json::Value>) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(["doctor", "--target", "pve", "-o", "json", "--node", "pve1"])
        .arg("--config")
        .arg(homelab_dir())
        .args(["--endpoint", &format!("https://{HOST}:{}", pve.port)])
        .arg("--ca-file")
        .arg(ca_file)
        .env("PROXMOX_VE_API_TOKEN", token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains(SECRET) && !stdout.contains("wrong-secret"),
        "{stdout}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["kind"], "doctor", "{doc}");
    let checks = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["check"].as_str().unwrap().to_string(), c.clone()))
        .collect();
    (out.status.code().unwrap(), checks)
}

fn state(checks: &std::collections::BTreeMap<String, serde_json::Value>, name: &str) -> String {
    checks.get(name).map_or("absent".into(), |c| {
        c["state"].as_str().unwrap().to_string()
    })
}

#[test]
fn doctor_names_what_is_wrong_with_a_node_and_how_to_fix_it() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let good = format!("{TOKEN_ID}={SECRET}");

    let (code, c) = doctor(&pve, &pve.pki.ca_pem, &good);
    assert_eq!(code, 0, "{c:#?}");
    for name in [
        "configuration",
        "node settings",
        "node reachable",
        "TLS trust",
        "credentials",
    ] {
        assert_eq!(state(&c, name), "pass", "{name}: {c:#?}");
    }
    assert!(
        c["credentials"]["detail"]
            .as_str()
            .unwrap()
            .contains("Proxmox VE")
    );

    // A CA that did not sign the node's certificate.
    let foreign = tempfile::tempdir().unwrap();
    let (foreign_ca, _) = common::make_ca(foreign.path(), "someone else");
    let (code, c) = doctor(&pve, &foreign_ca, &good);
    assert_eq!(code, 1);
    assert_eq!(state(&c, "TLS trust"), "fail", "{c:#?}");
    assert!(
        c["TLS trust"]["fix"]
            .as_str()
            .unwrap()
            .contains("pve-root-ca.pem")
    );
    assert_eq!(
        state(&c, "credentials"),
        "absent",
        "not judged past a TLS failure"
    );

    let (code, c) = doctor(&pve, &pve.pki.ca_pem, &format!("{TOKEN_ID}=wrong-secret"));
    assert_eq!(code, 1);
    assert_eq!(state(&c, "node reachable"), "pass", "{c:#?}");
    assert_eq!(state(&c, "credentials"), "fail", "{c:#?}");
    assert!(c["credentials"]["fix"].as_str().unwrap().contains("token"));

    // Nothing listens any more: not reachable.
    let kept = tempfile::tempdir().unwrap();
    let ca = kept.path().join("ca.pem");
    std::fs::copy(&pve.pki.ca_pem, &ca).unwrap();
    let port = pve.port;
    drop(pve);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args([
            "doctor",
            "--target",
            "pve",
            "--node",
            "pve1",
            "--request-timeout",
            "2",
        ])
        .arg("--config")
        .arg(homelab_dir())
        .args(["--endpoint", &format!("https://{HOST}:{port}")])
        .arg("--ca-file")
        .arg(&ca)
        .env("PROXMOX_VE_API_TOKEN", &good)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  node reachable"), "{text}");
    assert!(text.contains("fix: check the endpoint"), "{text}");
}
