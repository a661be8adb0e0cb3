//! `phoenix lab` end to end through the binary (root only; skipped with a note otherwise,
//! failing when `CI` is set): up, status (text and JSON), exec by name, a refused second up,
//! down, and the absence of everything afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::process::{Command, Output};

fn phoenix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(args)
        .env_remove("PHOENIX_CONFIG")
        .env_remove("PHOENIX_LAB_PREFIX")
        .env("NO_COLOR", "1")
        .output()
        .expect("phoenix runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn lab_up_status_exec_down() {
    if !phoenix_lab::is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "lab tests need root in CI"
        );
        eprintln!("note: lab CLI test skipped: not root");
        return;
    }
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let prefix = format!("t{:05x}", h.finish() & 0xf_ffff);
    let _guard = phoenix_lab::LabGuard::new(&prefix);
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/homelab");

    let up = phoenix(&["lab", "up", "--config", config, "--prefix", &prefix]);
    assert_eq!(up.status.code(), Some(0), "{}", text(&up.stderr));
    assert!(text(&up.stdout).contains("7 namespaces"));

    let again = phoenix(&["lab", "up", "--config", config, "--prefix", &prefix]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("hint: pass --recreate"));

    let st = phoenix(&["lab", "status", "--prefix", &prefix]);
    assert_eq!(st.status.code(), Some(0), "{}", text(&st.stdout));
    let out = text(&st.stdout);
    for want in [
        "-hv",
        "-wan",
        "guest 101 nginx",
        "guest 1002 drphoenix",
        "172.16.100.12/24",
    ] {
        assert!(out.contains(want), "{want} missing from\n{out}");
    }
    let js = phoenix(&["lab", "status", "--prefix", &prefix, "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&js.stdout).expect("json");
    assert_eq!(v["namespaces"].as_array().map(Vec::len), Some(7));

    let ex = phoenix(&[
        "lab", "exec", "--prefix", &prefix, "step-ca", "--", "ip", "-br", "addr",
    ]);
    assert_eq!(ex.status.code(), Some(0));
    assert!(text(&ex.stdout).contains("172.16.100.11/24"));
    let bad = phoenix(&["lab", "exec", "--prefix", &prefix, "nosuch", "--", "true"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("hint:"));

    let down = phoenix(&["lab", "down", "--prefix", &prefix]);
    assert_eq!(down.status.code(), Some(0), "{}", text(&down.stderr));
    let gone = phoenix(&["lab", "status", "--prefix", &prefix]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(text(&gone.stdout).contains("no lab"));
    assert!(phoenix_lab::teardown::namespaces(&prefix).is_empty());
}

#[test]
fn lab_rejects_a_bad_prefix() {
    let out = phoenix(&["lab", "down", "--prefix", "Bad-Prefix"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("invalid lab prefix") || err.contains("needs root"),
        "{err}"
    );
    assert!(err.contains("hint:"));
}
