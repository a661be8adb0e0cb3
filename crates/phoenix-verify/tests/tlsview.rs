//! TLS seen from one vantage ([`phoenix_verify::tlsview`]) against a real rustls server on
//! loopback with a test CA: the chain and the SANs are separate checks; a SAN the model expects
//! but the leaf lacks fails naming it; without a root the chain check is a skip with the
//! reason and the SANs are still checked; a foreign root fails the chain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use phoenix_model::model::San;
use phoenix_verify::report::{Status, Subject};
use phoenix_verify::tls::TlsCheck;
use phoenix_verify::tlsview::verify_from;
use phoenix_verify::{LocalEndpoint, ProbeResult};
use support::{https_server, pki};

fn check(addr: std::net::SocketAddr, expected: &[&str]) -> TlsCheck {
    TlsCheck {
        id: String::new(),
        service: "gateway nginx (guest 101)".into(),
        from: Subject::Guest(phoenix_model::model::GuestId(101)),
        addr: Some(addr),
        sni: "gw.lab.test".into(),
        expected: expected.iter().map(|n| San::Dns((*n).into())).collect(),
        source: "manifest certificate `gw.lab.test`".into(),
        skip: None,
    }
}

fn run(c: &TlsCheck, root: Result<String, String>) -> Vec<ProbeResult> {
    let me = Subject::Named("phoenix".into());
    verify_from(
        &LocalEndpoint,
        &me,
        std::slice::from_ref(c),
        &root,
        Duration::from_secs(3),
    )
}

fn by_suffix<'a>(rs: &'a [ProbeResult], suffix: &str) -> &'a ProbeResult {
    rs.iter().find(|r| r.id.ends_with(suffix)).unwrap()
}

#[test]
fn chain_and_sans_are_checked_separately() {
    let p = pki("Phoenix Test Root", &["gw.lab.test", "gw.mesh.test"]);
    let addr = https_server(&p, "gw.lab.test");

    // Both hold: a chain to the root, the SANs present.
    let ok = run(
        &check(addr, &["gw.lab.test", "gw.mesh.test"]),
        Ok(p.root_pem.clone()),
    );
    assert_eq!(ok.len(), 2, "{ok:#?}");
    assert_eq!(ok[0].id, format!("tls/{addr}/gw.lab.test/chain"));
    assert_eq!(ok[1].id, format!("tls/{addr}/gw.lab.test/sans"));
    assert!(ok.iter().all(|r| r.status == Status::Pass), "{ok:#?}");
    assert_eq!(ok[0].subject.to_string(), "phoenix");
    assert!(ok[0].check.contains("from local"), "{}", ok[0].check);

    // The model expects a SAN the leaf lacks: the chain passes, the SANs fail naming it.
    let bad = run(
        &check(addr, &["gw.lab.test", "portainer.lab.test"]),
        Ok(p.root_pem.clone()),
    );
    assert_eq!(by_suffix(&bad, "/chain").status, Status::Pass);
    match &by_suffix(&bad, "/sans").status {
        Status::Fail { evidence } => {
            assert!(
                evidence.contains("SANs missing: [portainer.lab.test]"),
                "{evidence}"
            );
            assert!(evidence.contains("gw.mesh.test"), "presented: {evidence}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn without_a_root_the_chain_is_skipped_and_the_sans_still_checked() {
    let p = pki("Phoenix Test Root", &["gw.lab.test"]);
    let addr = https_server(&p, "gw.lab.test");
    let why = "no --ca-dir: the chain is not checked".to_string();
    let rs = run(&check(addr, &["gw.lab.test"]), Err(why.clone()));
    assert_eq!(
        by_suffix(&rs, "/chain").status,
        Status::Skip {
            reason: why.clone()
        }
    );
    assert_eq!(by_suffix(&rs, "/sans").status, Status::Pass, "{rs:#?}");
    let rs = run(&check(addr, &["gw.lab.test", "x.lab.test"]), Err(why));
    assert!(by_suffix(&rs, "/sans").is_fail(), "{rs:#?}");
}

#[test]
fn a_foreign_root_fails_the_chain() {
    let served = pki("Some Other Root", &["gw.lab.test"]);
    let ours = pki("Phoenix Test Root", &["unused.lab.test"]);
    let addr = https_server(&served, "gw.lab.test");
    let rs = run(&check(addr, &["gw.lab.test"]), Ok(ours.root_pem));
    match &by_suffix(&rs, "/chain").status {
        Status::Fail { evidence } => {
            assert!(evidence.contains("untrusted issuer"), "{evidence}");
            assert!(evidence.contains("phoenix's root"), "{evidence}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    // What it presents still holds the SAN: that check is independent of the chain.
    assert_eq!(by_suffix(&rs, "/sans").status, Status::Pass);
}

#[test]
fn nothing_listening_fails_both_with_the_connect_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let rs = verify_from(
        &LocalEndpoint,
        &Subject::Named("phoenix".into()),
        &[check(addr, &["gw.lab.test"])],
        &Ok(pki("R", &["a.lab.test"]).root_pem),
        Duration::from_millis(300),
    );
    assert!(rs.iter().all(ProbeResult::is_fail), "{rs:#?}");
    assert!(
        rs.iter().all(
            |r| matches!(&r.status, Status::Fail { evidence } if evidence.contains("connect"))
        ),
        "{rs:#?}"
    );
}
