//! `phoenix verify --target lab` against `examples/homelab` up in namespaces: a clean lab
//! passes every check and lists the route's hops; then faults make the *right* checks fail
//! with evidence — (a) the Portainer stand-in stopped → the route fails at the backend hop,
//! (b) the mesh dnsmasq stopped → the DNS checks fail naming the server and "no answer".
//! Root only: without root a note and return, unless `CI` is set (then it fails).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::process::{Command, Output};
use std::time::Instant;

use phoenix_lab::LabGuard;

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/homelab");

fn phoenix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(args)
        .env_remove("PHOENIX_CONFIG")
        .env_remove("PHOENIX_LAB_PREFIX")
        .output()
        .expect("phoenix runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn verify(prefix: &str, output: &str) -> (Output, String) {
    let t = Instant::now();
    let o = phoenix(&[
        "verify", "--target", "lab", "--config", CONFIG, "--prefix", prefix, "--output", output,
    ]);
    let stdout = text(&o.stdout);
    eprintln!(
        "verify ({output}) wall time {:?}, exit {:?}\n{}",
        t.elapsed(),
        o.status.code(),
        text(&o.stderr)
    );
    (o, stdout)
}

/// The FAIL blocks of a text report: the FAIL line plus its evidence lines.
fn failures(report: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut prev_fail = false;
    for l in report.lines() {
        if l.starts_with("FAIL") {
            out.push(l.to_string());
        } else if l.starts_with("      ")
            && prev_fail
            && let Some(last) = out.last_mut()
        {
            last.push('\n');
            last.push_str(l);
        }
        prev_fail = l.starts_with("FAIL") || (prev_fail && l.starts_with("      "));
    }
    out
}

fn pid_of(prefix: &str, name: &str) -> u32 {
    let f = phoenix_lab::state_dir(prefix).join(format!("{name}.pid"));
    std::fs::read_to_string(&f)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid")
}

fn stop(pid: u32) {
    let ok = Command::new("kill")
        .arg(pid.to_string())
        .status()
        .expect("kill")
        .success();
    assert!(ok);
    // Wait until it is gone (deadline 2 s).
    let t = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() && t.elapsed().as_millis() < 2000 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn verify_lab_passes_then_pins_faults() {
    if !phoenix_lab::is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "verify_lab needs root in CI"
        );
        eprintln!("note: verify_lab skipped: not root");
        return;
    }
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let prefix = format!("v{:05x}", h.finish() & 0xf_ffff);
    let guard = LabGuard::new(&prefix);
    let up = phoenix(&["lab", "up", "--config", CONFIG, "--prefix", &prefix]);
    assert!(up.status.success(), "lab up: {}", text(&up.stderr));

    // Clean lab: exit 0, no failure, the hops listed, the count line last.
    let (o, report) = verify(&prefix, "text");
    assert_eq!(o.status.code(), Some(0), "{report}");
    assert!(failures(&report).is_empty(), "{report}");
    for hop in [
        "hop 1/3 wan → gateway",
        "hop 2/3 gateway → proxy",
        "hop 3/3 proxy → backend",
    ] {
        assert!(report.contains(hop), "{hop} missing:\n{report}");
    }
    assert!(report.contains("certificate subject"), "{report}");
    for group in ["dhcp address on", "dns ", "nat: GET", "denied"] {
        assert!(report.contains(group), "{group} missing:\n{report}");
    }
    let last = report.lines().last().unwrap_or_default();
    assert!(
        last.ends_with(" failed, 0 skipped") && last.contains(" passed, 0 failed"),
        "{last}"
    );
    let (o, json) = verify(&prefix, "json");
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&json).expect("json report");
    assert_eq!(v["counts"]["fail"], 0);

    // (b) Portainer stand-in stopped: the route fails and names the backend hop.
    stop(pid_of(&prefix, "portainer-stand-in"));
    let (o, report) = verify(&prefix, "text");
    assert_eq!(o.status.code(), Some(1), "{report}");
    let fails = failures(&report);
    let summary = fails
        .iter()
        .find(|f| f.contains("route https://portainer."))
        .unwrap_or_else(|| panic!("no route failure:\n{report}"));
    assert!(
        summary.contains("broken at hop 3/3 (proxy → backend")
            && summary.contains("172.16.100.21:9443"),
        "{summary}"
    );
    assert!(
        fails.iter().all(|f| f.contains("route ")),
        "only the route fails: {fails:#?}"
    );

    // (a) Mesh dnsmasq stopped: the DNS checks fail naming the server and "no answer".
    stop(pid_of(&prefix, "dnsmasq-hv"));
    let (o, report) = verify(&prefix, "text");
    assert_eq!(o.status.code(), Some(1));
    let dns: Vec<String> = failures(&report)
        .into_iter()
        .filter(|f| f.contains(" dns "))
        .collect();
    assert!(!dns.is_empty(), "{report}");
    for f in &dns {
        assert!(
            f.contains("server 172.16.100.1:53") && f.contains("no answer"),
            "{f}"
        );
    }

    let down = phoenix(&["lab", "down", "--prefix", &prefix]);
    assert!(down.status.success(), "lab down: {}", text(&down.stderr));
    drop(guard);
    let listed = text(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip")
            .stdout,
    );
    assert!(
        !listed.lines().any(|l| l.starts_with(&format!("{prefix}-"))),
        "{listed}"
    );
}
