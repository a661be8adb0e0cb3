//! `phoenix sync all --target pve --ssh …`: the node's host files through OpenSSH (a real
//! sshd on a loopback address, tests/sshd in phoenix-pve) while the API is fakepve: the first
//! run writes the host files under the node's scratch root over ssh, the second makes zero API
//! writes and zero host writes; `status` over ssh sees them in sync; `--switch-network` with
//! `--ssh` is refused before anything is read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../phoenix-pve/tests/common/mod.rs"]
mod common;
mod pve_support;
#[path = "../../phoenix-exec/tests/sshd/mod.rs"]
mod sshd;

use common::{FakePve, fakepve_available};
use pve_support::*;

fn over_ssh(mut c: std::process::Command, s: &sshd::Sshd) -> std::process::Command {
    c.args(["--ssh", &s.destination()])
        .args(["--ssh-port", &s.port.to_string()])
        .arg("--ssh-identity")
        .arg(&s.identity)
        .arg("--ssh-known-hosts")
        .arg(&s.known_hosts);
    c
}

#[test]
fn host_files_over_ssh_converge_then_nothing() {
    if !fakepve_available() || !sshd::sshd_available() {
        return;
    }
    let s = sshd::Sshd::start();
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let sync_args = [
        "sync",
        "all",
        "--target",
        "pve",
        "--output",
        "json",
        "--image-store",
        "local",
    ];
    let (code, first, stderr) = run_json(over_ssh(
        node_cmd(&pve, root.path(), &homelab_dir(), &sync_args),
        &s,
    ));
    assert_eq!(code, 0, "{stderr}");
    let host_writes = first["host_writes"].as_u64().unwrap();
    assert!(host_writes > 0, "{first:#}");
    // Written on the "node" (over ssh, under its scratch root): the staged interfaces file.
    let staged = root.path().join("etc/network/interfaces.new");
    assert!(staged.exists(), "{}", staged.display());

    let (code, second, stderr) = run_json(over_ssh(
        node_cmd(&pve, root.path(), &homelab_dir(), &sync_args),
        &s,
    ));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(second["requests"]["total"]["writes"], 0, "{second:#}");
    assert_eq!(second["host_writes"], 0, "{second:#}");

    let (_, st, _) = run_json(over_ssh(
        node_cmd(
            &pve,
            root.path(),
            &homelab_dir(),
            &["status", "--target", "pve", "--output", "json"],
        ),
        &s,
    ));
    assert_eq!(st["requests"]["writes"], 0);

    let out = over_ssh(
        node_cmd(
            &pve,
            root.path(),
            &homelab_dir(),
            &["sync", "all", "--target", "pve", "--switch-network"],
        ),
        &s,
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ssh"));
}
