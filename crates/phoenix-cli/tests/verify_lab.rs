//! `phoenix verify --target lab` against `examples/homelab` up in namespaces: a clean lab
//! passes every check and lists the route's hops; then faults make the *right* checks fail
//! with evidence — (a) the Portainer stand-in stopped → the route fails at the backend hop,
//! (b) the mesh dnsmasq stopped → the DNS checks fail naming the server and "no answer".
//! Root only: without root a note and return, unless `CI` is set (then it fails).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::process::{Command, Output};
use std::time::Instant;

mod common;

use common::*;
use phoenix_lab::LabGuard;

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

#[test]
fn verify_lab_passes_then_pins_faults() {
    if !root_or_skip("verify_lab") {
        return;
    }
    let prefix = unique_prefix('v');
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
    if phoenix_lab::ingress::swarm_stand_in(&prefix).is_some() {
        // The task's docker-proxy outlives nginx by a moment; wait until the port is free.
        let ns = format!("{prefix}-g1001");
        let t0 = std::time::Instant::now();
        loop {
            let ss = Command::new("ip")
                .args(["netns", "exec", &ns, "ss", "-Hltn", "sport = :9443"])
                .output()
                .expect("ss");
            if text(&ss.stdout).trim().is_empty() {
                break;
            }
            assert!(
                t0.elapsed().as_secs() < 10,
                "9443 still held: {}",
                text(&ss.stdout)
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
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
    // The route and the backend's TLS check; with dockerd the stand-in is a Swarm service and
    // its own check fails too, naming the task that stopped.
    let service = "the Portainer stand-in runs as a Swarm service";
    assert!(
        fails
            .iter()
            .all(|f| f.contains("route ") || f.contains(service)),
        "only the route and the service fail: {fails:#?}"
    );
    if phoenix_lab::ingress::swarm_stand_in(&prefix).is_some() {
        let f = fails
            .iter()
            .find(|f| f.contains(service))
            .unwrap_or_else(|| panic!("no service failure: {fails:#?}"));
        assert!(f.contains("0/1 running"), "{f}");
    }

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
    assert_gone(&prefix);
}

/// The `tls/…` results of a JSON report, by id.
fn tls_results(json: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(json).expect("json report");
    v["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["id"].as_str().is_some_and(|id| id.starts_with("tls/")))
        .cloned()
        .collect()
}

/// Up a lab for a TLS test, or `None` when not root (outside CI).
fn tls_lab(tag: char) -> Option<(String, LabGuard)> {
    if !root_or_skip("verify_lab TLS test") {
        return None;
    }
    let prefix = unique_prefix(tag);
    let guard = LabGuard::new(&prefix);
    let up = phoenix(&["lab", "up", "--config", CONFIG, "--prefix", &prefix]);
    assert!(up.status.success(), "lab up: {}", text(&up.stderr));
    Some((prefix, guard))
}

fn tls_down(prefix: &str, guard: LabGuard) {
    let down = phoenix(&["lab", "down", "--prefix", prefix]);
    assert!(down.status.success(), "lab down: {}", text(&down.stderr));
    drop(guard);
    assert_gone(prefix);
}

/// The Portainer backend's TLS check (the proxy → stand-in).
const BACKEND_TLS: &str = "tls/guest:102/172.16.100.21:9443";

#[test]
fn verify_lab_tls_every_service_presents_its_expected_chain() {
    let Some((prefix, guard)) = tls_lab('x') else {
        return;
    };
    let (_, json) = verify(&prefix, "json");
    let tls = tls_results(&json);
    let ids: Vec<&str> = tls.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(
        ids,
        [
            "tls/guest:101/172.16.100.10:443",
            "tls/guest:101/172.16.100.12:443",
            "tls/guest:102/172.16.100.11:9000",
            BACKEND_TLS,
        ],
        "gateway nginx, Traefik, step-ca (a route backend), the Portainer backend"
    );
    for r in &tls {
        assert_eq!(r["status"], "pass", "{r:#}");
    }
    tls_down(&prefix, guard);
}

/// Exactly the backend's TLS check fails; its evidence is returned.
fn only_backend_tls_fails(prefix: &str) -> String {
    let (_, json) = verify(prefix, "json");
    let tls = tls_results(&json);
    let failed: Vec<&serde_json::Value> = tls.iter().filter(|r| r["status"] == "fail").collect();
    assert_eq!(failed.len(), 1, "{tls:#?}");
    assert_eq!(failed[0]["id"], BACKEND_TLS, "{tls:#?}");
    assert_eq!(tls.len(), 4, "{tls:#?}");
    failed[0]["evidence"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn verify_lab_tls_pins_a_bad_backend_certificate() {
    use phoenix_model::model::{CertKind, San};
    use phoenix_pki::{CaStore, LeafIssuer, LeafRequest};

    let Some((prefix, guard)) = tls_lab('y') else {
        return;
    };
    let now = std::time::SystemTime::now();
    let name = "portainer.internal.thinkheads.ai";

    // (a) From the lab CA but without the backend's IP SAN.
    let lab_ca = CaStore::open(&phoenix_lab::state_dir(&prefix).join("ca"), None).expect("lab CA");
    let leaf = lab_ca
        .issue(
            &LeafRequest {
                common_name: name,
                sans: &[San::Dns(name.into())],
                kind: CertKind::Server,
                lifetime_hours: 1,
            },
            now,
        )
        .expect("issue");
    replace_backend_cert(&prefix, &leaf.cert_file(false), leaf.key.expose());
    let evidence = only_backend_tls_fails(&prefix);
    assert!(
        evidence.contains("SANs missing: [172.16.100.21]") && evidence.contains("presented:"),
        "{evidence}"
    );

    // (b) Every SAN, but from another CA.
    let (cert, key) = foreign_backend_cert(name);
    replace_backend_cert(&prefix, &cert, &key);
    let evidence = only_backend_tls_fails(&prefix);
    assert!(
        evidence.contains("untrusted issuer")
            && evidence.contains("Some Other Intermediate")
            && !evidence.contains("SANs missing"),
        "{evidence}"
    );

    tls_down(&prefix, guard);
}
