//! Docker over TLS on a Proxmox node, from phoenix's CA: `phoenix sync all --target pve
//! --ca-dir CA` on examples/homelab against fakepve (a bare node). The plan carries each Swarm
//! VM's Engine API server certificate and its daemon.json / drop-in, and phoenix's client
//! certificate is kept in `CA/engine-client` (key 0600); a second run issues no client
//! certificate again. `phoenix swarm status --target pve` without `--docker-cert-path` looks
//! there and says clearly when it is missing (no engine is contacted in these runs: the Swarm
//! is out of scope with `--only pki`, and the status errors come before any connection).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../phoenix-pve/tests/common/mod.rs"]
mod common;
mod pve_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{FakePve, fakepve_available};
use pve_support::{homelab_dir, node_cmd, run_json, storages};

fn phoenix(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(args)
        .env(PASS_ENV, PASS)
        .env_remove("PHOENIX_CONFIG")
        .env_remove("PHOENIX_CA_DIR")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap()
}

/// The scratch CA's passphrase (the homelab's step_ca.password names a file not here).
const PASS_ENV: &str = "PHX_TEST_CA_PASS";
const PASS: &str = "scratch-ca-passphrase";

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// `sync all --target pve --ca-dir CA --only pki --output json` (+ `extra`).
fn sync_pki(
    pve: &FakePve,
    root: &Path,
    ca: &Path,
    extra: &[&str],
) -> (i32, serde_json::Value, String) {
    let ca = ca.display().to_string();
    let mut args = vec![
        "sync",
        "all",
        "--target",
        "pve",
        "--output",
        "json",
        "--only",
        "pki",
        "--ca-dir",
        &ca,
        "--passphrase-env",
        PASS_ENV,
    ];
    args.extend_from_slice(extra);
    let mut c = node_cmd(pve, root, &homelab_dir(), &args);
    c.env(PASS_ENV, PASS);
    run_json(c)
}

#[test]
fn bare_node_plan_has_the_engine_tls_and_phoenix_keeps_its_client_certificate() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let ca = scratch.path().join("ca");
    let o = phoenix(&[
        "ca",
        "init",
        "--ca-dir",
        &ca.display().to_string(),
        "--passphrase-env",
        PASS_ENV,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let client = ca.join("engine-client");

    // Dry run: the plan names both Swarm VMs' server certificates and the client certificate;
    // nothing is written.
    let (code, dry, stderr) = sync_pki(&pve, root.path(), &ca, &["--dry-run"]);
    println!("{stderr}");
    assert!(code == 0 || code == 2, "{stderr}");
    let text = dry.to_string();
    assert!(!text.contains("PRIVATE KEY"));
    let plan = &dry["plan"];
    let engine: Vec<u64> = plan["waves"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["actions"].as_array().unwrap().iter())
        .filter(|a| {
            a["action"] == "issue_certificate" && a["cert_path"] == "/etc/docker/tls/cert.pem"
        })
        .map(|a| a["guest"].as_u64().unwrap())
        .collect();
    assert_eq!(engine, [1001, 1002], "{plan:#}");
    let notes = plan["notes"].to_string();
    assert!(notes.contains("Engine API client certificate"), "{notes}");
    assert!(!client.exists(), "a dry run writes nothing");
    // With provisioning, each Swarm VM's docker steps place its rendered dockerd files.
    let (code, dry, stderr) = sync_pki(
        &pve,
        root.path(),
        &ca,
        &["--dry-run", "--only", "provision", "--provision"],
    );
    assert!(code == 0 || code == 2, "{stderr}");
    let files: Vec<(u64, String)> = dry["plan"]["waves"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["actions"].as_array().unwrap().iter())
        .filter(|a| a["action"] == "provision" && a["step"]["kind"]["kind"] == "file")
        .map(|a| {
            (
                a["guest"].as_u64().unwrap_or_default(),
                a["step"]["kind"]["path"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .filter(|(_, p)| p.contains("docker"))
        .collect();
    for id in [1001, 1002] {
        for path in [
            "/etc/docker/daemon.json",
            "/etc/systemd/system/docker.service.d/phoenix-hosts.conf",
        ] {
            assert!(files.contains(&(id, path.to_string())), "{files:?}");
        }
    }
    assert!(!client.exists(), "a dry run writes nothing");

    // A real run keeps phoenix's client certificate beside the CA.
    let (_, first, stderr) = sync_pki(&pve, root.path(), &ca, &[]);
    println!("{stderr}");
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        assert!(client.join(f).is_file(), "{f}: {stderr}");
    }
    assert_eq!(mode(&client), 0o700);
    assert_eq!(mode(&client.join("key.pem")), 0o600);
    let leaf =
        phoenix_pki::parse_leaf_pem(&std::fs::read_to_string(client.join("cert.pem")).unwrap())
            .unwrap();
    assert_eq!(leaf.common_name.as_deref(), Some("phoenix"));
    assert_eq!(leaf.kind, Some(phoenix_model::model::CertKind::Client));
    assert!(
        first["plan"]["notes"]
            .to_string()
            .contains("issued the Engine API client certificate")
    );
    assert!(!first.to_string().contains("PRIVATE KEY"));

    // The second run keeps it: same bytes, no note.
    let before = std::fs::read(client.join("cert.pem")).unwrap();
    let (_, second, _) = sync_pki(&pve, root.path(), &ca, &[]);
    assert_eq!(std::fs::read(client.join("cert.pem")).unwrap(), before);
    assert!(
        !second["plan"]["notes"]
            .to_string()
            .contains("Engine API client certificate")
    );

    // `swarm status --target pve` resolves CA/engine-client by default; without it, clear
    // errors before any engine is contacted.
    let config = homelab_dir().display().to_string();
    let status = |extra: &[&str]| {
        let mut a = vec!["swarm", "status", "--target", "pve", "--config", &config];
        a.extend_from_slice(extra);
        phoenix(&a)
    };
    let o = status(&[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("neither --docker-cert-path nor --ca-dir"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    let empty = scratch.path().join("empty-ca");
    std::fs::create_dir_all(&empty).unwrap();
    let o = status(&["--ca-dir", &empty.display().to_string()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "no Engine API client certificate in {}",
            empty.join("engine-client").display()
        )),
        "{err}"
    );
    assert!(err.contains("sync all --target pve --ca-dir"), "{err}");
}
