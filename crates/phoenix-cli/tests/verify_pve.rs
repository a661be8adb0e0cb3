//! `phoenix verify --target pve` against fakepve (the node's API, an external process) with a
//! host root and `pct` on PATH as a recording stand-in that answers `getent`/`cat` inside the
//! containers from files: after `sync all` the healthy node passes its guest and DNS checks
//! (exit 0); a stopped container then fails naming itself (exit 1) and its inside is skipped.
//! Every request is a GET, the host root is unchanged, only reading commands run in guests.
//! TLS, route and Swarm are left out (`--only`): the homelab's addresses are not this
//! machine's to probe (LAB.md, safety rules).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../phoenix-pve/tests/common/mod.rs"]
mod common;
mod pve_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{FakePve, fakepve_available};
use pve_support::*;

/// `pct exec ID -- getent ahosts NAME | cat PATH`, answered from `$FAKE_PCT/ID.hosts` and
/// `$FAKE_PCT/ID/PATH`; every call logged to `$FAKE_PCT/log`.
const FAKE_PCT: &str = r#"#!/bin/sh
echo "$*" >> "$FAKE_PCT/log"
[ "$1" = exec ] && [ "$3" = -- ] || exit 127
id=$2
shift 3
case "$1 $2" in
  "getent ahosts") awk -v n="$3" '$2 == n { print $1 "   STREAM " n; f = 1 } END { exit f ? 0 : 2 }' "$FAKE_PCT/$id.hosts" ;;
  "cat /etc/resolv.conf") cat "$FAKE_PCT/$id/etc/resolv.conf" ;;
  *) echo "fake pct: $*: not found" >&2; exit 127 ;;
esac
"#;

fn fake_pct(dir: &Path, d: &phoenix_model::DesiredState) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("pct"), FAKE_PCT).unwrap();
    std::fs::set_permissions(bin.join("pct"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let hosts: String = phoenix_render::dnsmasq::records(d)
        .iter()
        .map(|(n, (a, _))| format!("{a} {n}\n"))
        .collect();
    for id in d.guests.keys() {
        std::fs::write(dir.join(format!("{id}.hosts")), &hosts).unwrap();
        let etc = dir.join(id.to_string()).join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(
            etc.join("resolv.conf"),
            format!("nameserver {}\n", d.dns.listen[0]),
        )
        .unwrap();
    }
    bin
}

fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

fn verify(pve: &FakePve, root: &Path, pct: &Path, bin: &Path) -> (i32, serde_json::Value) {
    let mut c = node_cmd(
        pve,
        root,
        &homelab_dir(),
        &[
            "verify",
            "--target",
            "pve",
            "--only",
            "guests,dns",
            "--output",
            "json",
        ],
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    c.env("PATH", path).env("FAKE_PCT", pct);
    let (code, json, stderr) = run_json(c);
    eprintln!("{stderr}");
    (code, json)
}

fn check<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}: {report:#}"))
}

#[test]
fn verify_pve_passes_a_healthy_node_and_names_a_stopped_guest() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let (code, report, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "sync: {stderr}\n{report:#}");
    let d = phoenix_model::validate_dir(&homelab_dir()).desired.unwrap();
    let pct = tempfile::tempdir().unwrap();
    let bin = fake_pct(pct.path(), &d);
    let files = tree(root.path());
    let before = pve.requests().len();

    // Healthy: every guest runs, every container resolves every name.
    let (code, report) = verify(&pve, root.path(), pct.path(), &bin);
    let failed: Vec<&serde_json::Value> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "fail")
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(code, 0, "{report:#}");
    for (id, g) in &d.guests {
        assert_eq!(check(&report, &format!("guest/{id}"))["status"], "pass");
        if g.is_template {
            continue;
        }
        if g.kind == phoenix_model::model::GuestKind::Lxc {
            assert_eq!(
                check(&report, &format!("dns/guest:{id}/resolver"))["status"],
                "pass"
            );
        } else {
            assert_eq!(check(&report, &format!("dns/guest:{id}"))["status"], "skip");
        }
    }
    let lxc: Vec<_> = d
        .guests
        .values()
        .filter(|g| g.kind == phoenix_model::model::GuestKind::Lxc && !g.is_template)
        .map(|g| g.id)
        .collect();
    let names = phoenix_render::dnsmasq::records(&d);
    assert_eq!(
        report["counts"]["pass"].as_u64().unwrap() as usize,
        d.guests.len() + lxc.len() * (names.len() + 2),
        "{report:#}"
    );

    let first_done = pve.requests().len();
    let first_log = std::fs::read_to_string(pct.path().join("log")).unwrap();
    assert!(only_reads(&first_log), "{first_log}");
    std::fs::remove_file(pct.path().join("log")).unwrap();

    // One container stopped: it fails naming itself, its inside is skipped, exit 1.
    let stopped = lxc[1];
    let client = pve.client(phoenix_pve::TlsTrust::CaFile(pve.pki.ca_pem.clone()));
    client
        .write_and_wait(
            reqwest::Method::POST,
            &format!("/nodes/pve1/lxc/{stopped}/status/stop"),
            &Default::default(),
        )
        .unwrap();
    let after_stop = pve.requests().len();
    let (code, report) = verify(&pve, root.path(), pct.path(), &bin);
    assert_eq!(code, 1, "{report:#}");
    let g = check(&report, &format!("guest/{stopped}"));
    assert_eq!(g["status"], "fail");
    let evidence = g["evidence"].as_str().unwrap();
    let name = &d.guest(stopped).unwrap().name;
    assert!(
        evidence.contains(&stopped.to_string()) && evidence.contains(name.as_str()),
        "{evidence}"
    );
    assert_eq!(
        check(&report, &format!("dns/guest:{stopped}"))["status"],
        "skip"
    );
    assert_eq!(report["counts"]["fail"], 1, "{report:#}");

    // Read-only: GETs only (the stop above is the test's), the host root unchanged, only
    // getent and cat in the guests.
    let requests = pve.requests();
    let verify_requests: Vec<_> = requests[before..first_done]
        .iter()
        .chain(&requests[after_stop..])
        .collect();
    assert!(!verify_requests.is_empty());
    assert!(
        verify_requests.iter().all(|(m, _)| m == "GET"),
        "{verify_requests:#?}"
    );
    assert_eq!(tree(root.path()), files, "verify changed the host root");
    let log = std::fs::read_to_string(pct.path().join("log")).unwrap();
    assert!(only_reads(&log), "{log}");
    assert!(
        !log.contains(&format!("exec {stopped} ")),
        "the stopped container was entered: {log}"
    );
}

/// Every `pct` call of `log` is `exec ID -- getent ahosts NAME` or `-- cat /etc/resolv.conf`.
fn only_reads(log: &str) -> bool {
    !log.is_empty()
        && log.lines().all(|l| {
            l.starts_with("exec ")
                && (l.contains(" -- getent ahosts ") || l.ends_with(" -- cat /etc/resolv.conf"))
        })
}

/// The Swarm family finds phoenix's client certificate where `sync all` keeps it
/// (`<--ca-dir>/engine-client`): without one there, its checks are skipped naming that path
/// (and the engines, at mesh addresses this namespace must not reach, are never contacted).
#[test]
fn verify_pve_looks_for_the_engine_client_certificate_under_the_ca_dir() {
    if !fakepve_available() {
        return;
    }
    let (pve, root) = converged();
    let work = tempfile::tempdir().unwrap();
    let ca = work.path().join("ca");
    let pass = work.path().join("ca.pass");
    std::fs::write(&pass, "a passphrase for this test\n").unwrap();
    let init = std::process::Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(["ca", "init", "--ca-dir"])
        .arg(&ca)
        .arg("--passphrase-file")
        .arg(&pass)
        .arg("--config")
        .arg(homelab_dir())
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let mut c = node_cmd(
        &pve,
        root.path(),
        &homelab_dir(),
        &["verify", "--target", "pve", "--only", "swarm", "-o", "json"],
    );
    c.arg("--ca-dir").arg(&ca).env_remove("DOCKER_CERT_PATH");
    let (_, report, stderr) = run_json(c);
    let results = report["results"].as_array().unwrap();
    assert!(!results.is_empty(), "{report:#} {stderr}");
    let want = format!(
        "no Engine API client certificate in {}",
        ca.join("engine-client").display()
    );
    for r in results {
        assert_eq!(r["status"], "skip", "{r:#}");
        assert!(r["reason"].as_str().unwrap().contains(&want), "{r:#}");
    }
}
