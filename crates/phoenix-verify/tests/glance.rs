//! The text at a glance: families with counts, one line per cause, the recap, `--failed-only`
//! and terminal widths (snapshots of constructed reports, fixed durations).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use phoenix_model::model::GuestId;
use phoenix_verify::glance::{cause_key, family};
use phoenix_verify::{ProbeResult, Report, Status, Subject, TextOptions};

fn result(id: &str, subject: Subject, status: Status) -> ProbeResult {
    ProbeResult {
        id: id.into(),
        subject,
        check: id.replace('/', " "),
        status,
        observed: String::new(),
        duration: Duration::from_millis(4),
    }
}

fn fail(evidence: &str) -> Status {
    Status::Fail {
        evidence: evidence.into(),
    }
}

fn guest(id: u32) -> Subject {
    Subject::Guest(GuestId(id))
}

/// A lab whose resolver is down: three DNS checks from three guests share one cause, a
/// firewall pair fails on its own, the Swarm is skipped, DHCP and TLS pass.
fn mixed() -> Report {
    let mut r = Report::new();
    r.push(result("dhcp/guest:101/eth0", guest(101), Status::Pass));
    for g in [101, 102, 103] {
        r.push(result(
            &format!("dns/guest:{g}/portainer.internal.example"),
            guest(g),
            fail(&format!(
                "probe could not run from guest:{g}: no answer from 172.16.100.{g}:53 in 1500ms"
            )),
        ));
    }
    r.push(result(
        "dns/guest:101/ca.internal.example",
        guest(101),
        Status::Pass,
    ));
    r.push(result(
        "fw/guest:103/172.16.100.12:443",
        guest(103),
        fail("expected denied, connected"),
    ));
    r.push(result("fw/matrix", Subject::Host, Status::Pass));
    r.push(result(
        "tls/guest:101/172.16.100.12:443",
        guest(101),
        Status::Pass,
    ));
    r.push(result(
        "swarm",
        Subject::Named("swarm".into()),
        Status::Skip {
            reason: "no dockerd on this machine".into(),
        },
    ));
    r
}

#[test]
fn families_come_from_the_id_prefix() {
    assert_eq!(family("dhcp/guest:101/eth0"), "DHCP");
    assert_eq!(family("fw/matrix"), "firewall");
    assert_eq!(family("tcp/host/10.0.0.1:22"), "firewall");
    assert_eq!(family("route/portainer.example/hop2"), "route");
    assert_eq!(family("swarm"), "Swarm");
    assert_eq!(family("other/x"), "other");
}

#[test]
fn one_cause_keys_failures_without_their_subject() {
    let r = mixed();
    let keys: Vec<Option<String>> = r.results.iter().map(cause_key).collect();
    assert_eq!(keys[1], keys[2]);
    assert_eq!(keys[2], keys[3]);
    assert_ne!(keys[3], keys[5]);
    assert_eq!(keys[0], None);
}

#[test]
fn route_failures_broken_at_the_same_hop_share_a_cause() {
    let a = result(
        "route/a.example",
        Subject::Named("wan".into()),
        fail(
            "outer hop got 502; broken at hop 3/3 (proxy → backend): cause: connection refused [sent Host a.example SNI a.example; no certificate seen]; nothing listens",
        ),
    );
    let b = result(
        "route/b.example",
        Subject::Named("wan".into()),
        fail(
            "outer hop got 502; broken at hop 3/3 (proxy → backend): cause: connection refused [sent Host b.example SNI b.example; certificate CN=b]; nothing listens",
        ),
    );
    assert_eq!(cause_key(&a), cause_key(&b));
}

#[test]
fn grouped_text() {
    let text = mixed().render_text();
    assert!(text.ends_with("4 passed, 4 failed, 1 skipped\n"));
    insta::assert_snapshot!("grouped", text);
}

#[test]
fn failed_only_text() {
    let opts = TextOptions {
        failed_only: true,
        width: None,
    };
    let text = mixed().render_text_with(&opts);
    assert!(!text.contains("PASS"), "{text}");
    insta::assert_snapshot!("failed_only", text);
}

#[test]
fn lines_fit_the_terminal() {
    let opts = TextOptions {
        failed_only: false,
        width: Some(40),
    };
    let text = mixed().render_text_with(&opts);
    assert!(text.lines().all(|l| l.chars().count() <= 40), "{text}");
    assert!(text.contains('…'));
    insta::assert_snapshot!("width_40", text);
}

#[test]
fn all_passing_has_no_recap() {
    let mut r = Report::new();
    r.push(result("dns/guest:101/a", guest(101), Status::Pass));
    let text = r.render_text();
    assert!(!text.contains("Failures"), "{text}");
    assert!(text.ends_with("1 passed, 0 failed, 0 skipped\n"));
}

#[test]
fn a_broken_route_is_one_cause_with_its_hops() {
    let mut r = Report::new();
    r.push(result(
        "route/a.example",
        Subject::Named("wan".into()),
        fail("outer hop got HTTP 502; broken at hop 2/2 (proxy → backend): cause: connection refused"),
    ));
    r.push(result(
        "route/a.example/hop1",
        Subject::Named("wan".into()),
        fail("hop 1/2 wan → proxy: expected HTTP 200, got HTTP 502"),
    ));
    r.push(result(
        "route/a.example/hop2",
        guest(102),
        fail("hop 2/2 proxy → backend: expected HTTP 200, got connect 10.0.0.2:443: Connection refused"),
    ));
    let text = r.render_text();
    assert!(
        text.contains("Failures: 1 cause of 3 failed checks"),
        "{text}"
    );
    insta::assert_snapshot!("broken_route", text);
}
