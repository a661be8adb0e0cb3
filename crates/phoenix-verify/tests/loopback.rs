//! Probes on loopback with `LocalEndpoint`: real dnsmasq (bound to 127.0.0.x on a free
//! port), a TCP listener and a closed port, a rustls HTTPS server with an rcgen CA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use phoenix_verify::dns::{self, DnsCheck, DnsExpect};
use phoenix_verify::https::{self, HttpsRequest};
use phoenix_verify::tcp::{self, Expect};
use phoenix_verify::{LocalEndpoint, Report, Status, Subject};
use support::{Dnsmasq, free_port, https_server, pki};

const D: Duration = Duration::from_secs(3);

fn evidence(s: &Status) -> &str {
    match s {
        Status::Fail { evidence } => evidence,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn dns_probe_against_real_dnsmasq() {
    let up_ip = Ipv4Addr::new(127, 0, 0, 78);
    let up_port = free_port(up_ip);
    let _upstream = Dnsmasq::start(
        &[],
        up_ip,
        up_port,
        &[("www.outside.example", "198.51.100.7")],
        &[],
    );
    let ip = Ipv4Addr::new(127, 0, 0, 77);
    let port = free_port(ip);
    let _dns = Dnsmasq::start(
        &[],
        ip,
        port,
        &[
            ("ca.lab.test", "10.0.0.10"),
            ("traefik.lab.test", "10.0.0.12"),
        ],
        &[format!("--server={up_ip}#{up_port}")],
    );
    let server = SocketAddr::from((ip, port));
    let s = Subject::Named("local".into());
    let ep = LocalEndpoint;
    let check = |name: &str, expect| DnsCheck {
        name: name.into(),
        expect,
    };

    let mut report = Report::new();
    let known = dns::probe(
        &ep,
        &s,
        server,
        &check(
            "ca.lab.test",
            DnsExpect::Address("10.0.0.10".parse().unwrap()),
        ),
        D,
    );
    assert_eq!(known.status, Status::Pass, "{known:?}");
    assert!(
        known
            .observed
            .contains("rcode NOERROR answers [A 10.0.0.10]"),
        "{}",
        known.observed
    );
    report.push(known);

    let nx = dns::probe(
        &ep,
        &s,
        server,
        &check("nope.lab.test", DnsExpect::NxDomain),
        D,
    );
    assert_eq!(nx.status, Status::Pass, "{nx:?}");
    assert!(nx.observed.contains("NXDOMAIN"));
    report.push(nx);

    let outside = dns::probe(
        &ep,
        &s,
        server,
        &check("www.outside.example", DnsExpect::Answered),
        D,
    );
    assert_eq!(outside.status, Status::Pass, "{outside:?}");
    report.push(outside);

    let wrong = dns::probe(
        &ep,
        &s,
        server,
        &check(
            "traefik.lab.test",
            DnsExpect::Address("10.0.0.99".parse().unwrap()),
        ),
        D,
    );
    let ev = evidence(&wrong.status);
    assert!(
        ev.contains("expected → 10.0.0.99")
            && ev.contains("A 10.0.0.12")
            && ev.contains(&server.to_string()),
        "{ev}"
    );
    report.push(wrong);

    let unknown_is_not_an_address = dns::probe(
        &ep,
        &s,
        server,
        &check(
            "gone.lab.test",
            DnsExpect::Address("10.0.0.1".parse().unwrap()),
        ),
        D,
    );
    assert!(evidence(&unknown_is_not_an_address.status).contains("rcode NXDOMAIN"));

    assert_eq!((report.counts.pass, report.counts.fail), (3, 1));
    assert_eq!(report.exit_code(), 1);
    let text = report.render_text();
    assert!(
        text.contains("FAIL") && text.contains("3 passed, 1 failed, 0 skipped"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert_eq!(json["counts"]["fail"], 1);
    assert_eq!(json["results"][3]["status"], "fail");
    assert!(
        json["results"][3]["evidence"]
            .as_str()
            .unwrap()
            .contains("10.0.0.12")
    );
}

#[test]
fn dns_probe_times_out_with_evidence_when_nothing_answers() {
    let ip = Ipv4Addr::new(127, 0, 0, 79);
    let server = SocketAddr::from((ip, free_port(ip)));
    let r = dns::probe(
        &LocalEndpoint,
        &Subject::Host,
        server,
        &DnsCheck {
            name: "a.lab.test".into(),
            expect: DnsExpect::NxDomain,
        },
        Duration::from_millis(600),
    );
    let ev = evidence(&r.status);
    assert!(ev.contains("gave no answer"), "{ev}");
    assert!(r.duration < Duration::from_secs(2));
}

#[test]
fn tcp_probe_connected_refused_and_wrong_expectation() {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let open = l.local_addr().unwrap();
    let closed = {
        let t = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        t.local_addr().unwrap()
    };
    let ep = LocalEndpoint;
    let s = Subject::Host;
    let a = tcp::probe(&ep, &s, open, Expect::Allow, "test", D);
    assert_eq!(a.status, Status::Pass, "{a:?}");
    assert!(a.observed.starts_with("connected"));
    let d = tcp::probe(&ep, &s, closed, Expect::Deny, "", D);
    assert_eq!(d.status, Status::Pass, "{d:?}");
    assert!(d.observed.starts_with("refused"));
    let bad = tcp::probe(
        &ep,
        &s,
        closed,
        Expect::Allow,
        "",
        Duration::from_millis(400),
    );
    assert!(
        evidence(&bad.status).contains("expected allowed, refused"),
        "{bad:?}"
    );
    let bad = tcp::probe(&ep, &s, open, Expect::Deny, "", D);
    assert!(evidence(&bad.status).contains("expected denied, connected"));
}

fn req(addr: SocketAddr, sni: &str, host: &str, root_pem: &str) -> HttpsRequest {
    HttpsRequest {
        addr,
        sni: sni.into(),
        host: host.into(),
        path: "/".into(),
        root_pem: root_pem.into(),
    }
}

#[test]
fn https_probe_host_sni_and_chain() {
    let p = pki("Phoenix Test Root", &["svc.lab.test", "alt.lab.test"]);
    let addr = https_server(&p, "svc.lab.test");
    let ep = LocalEndpoint;
    let s = Subject::Named("local".into());

    let ok = https::probe_get(
        &ep,
        &s,
        &req(addr, "svc.lab.test", "svc.lab.test", &p.root_pem),
        200,
        D,
    );
    assert_eq!(ok.status, Status::Pass, "{ok:?}");
    assert!(
        ok.observed.contains("HTTP 200")
            && ok.observed.contains("SANs [svc.lab.test, alt.lab.test]"),
        "{}",
        ok.observed
    );
    assert!(ok.observed.contains("Phoenix Test Root"));

    let wrong_host = https::probe_get(
        &ep,
        &s,
        &req(addr, "svc.lab.test", "other.lab.test", &p.root_pem),
        200,
        D,
    );
    let ev = evidence(&wrong_host.status);
    assert!(
        ev.contains("expected HTTP 200, got HTTP 404") && ev.contains("svc.lab.test"),
        "{ev}"
    );

    let wrong_sni = https::probe_get(
        &ep,
        &s,
        &req(addr, "other.lab.test", "svc.lab.test", &p.root_pem),
        200,
        D,
    );
    let ev = evidence(&wrong_sni.status);
    assert!(
        ev.contains("TLS handshake with SNI \"other.lab.test\"")
            && ev.contains("not valid for name"),
        "{ev}"
    );
    assert!(
        ev.contains("SANs [svc.lab.test, alt.lab.test]"),
        "certificate named even on failure: {ev}"
    );

    let other_root = pki("Some Other Root", &["svc.lab.test"]).root_pem;
    let untrusted = https::probe_get(
        &ep,
        &s,
        &req(addr, "svc.lab.test", "svc.lab.test", &other_root),
        200,
        D,
    );
    assert!(
        evidence(&untrusted.status).contains("UnknownIssuer"),
        "{untrusted:?}"
    );

    let r = req(addr, "svc.lab.test", "svc.lab.test", &p.root_pem);
    let tls_ok = https::probe_tls(
        &ep,
        &s,
        &r,
        &["svc.lab.test".into(), "alt.lab.test".into()],
        D,
    );
    assert_eq!(tls_ok.status, Status::Pass, "{tls_ok:?}");
    let tls_bad = https::probe_tls(&ep, &s, &r, &["missing.lab.test".into()], D);
    assert!(evidence(&tls_bad.status).contains("SANs missing [\"missing.lab.test\"]"));
}

#[test]
fn commands_run_with_a_deadline() {
    use phoenix_verify::Endpoint;
    let ok = LocalEndpoint.run(&["echo", "hi"], D).unwrap();
    assert!(ok.success() && ok.stdout == "hi\n", "{ok:?}");
    let slow = LocalEndpoint
        .run(&["sleep", "5"], Duration::from_millis(200))
        .unwrap();
    assert!(
        slow.timed_out && slow.code.is_none() && !slow.success(),
        "{slow:?}"
    );
    assert!(slow.elapsed < Duration::from_secs(2));
    assert!(LocalEndpoint.run(&[], D).is_err());
}

/// A target whose subjects all probe from the current namespace, except `Named("absent")`.
struct LoopbackTarget;

impl phoenix_verify::ProbeTarget for LoopbackTarget {
    fn endpoint(
        &self,
        subject: &Subject,
    ) -> Result<Box<dyn phoenix_verify::Endpoint>, phoenix_verify::ProbeError> {
        match subject {
            Subject::Named(n) if n == "absent" => Err(phoenix_verify::ProbeError::NoEndpoint {
                subject: subject.to_string(),
            }),
            _ => Ok(Box::new(LocalEndpoint)),
        }
    }
}

#[test]
fn matrix_runs_concurrently_and_counts_both_kinds() {
    use phoenix_model::model::GuestId;
    use phoenix_verify::matrix::Reach;
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let open = l.local_addr().unwrap();
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap();
    let pair = |from: Subject, port, expect| Reach {
        to: GuestId(102),
        port,
        expect,
        from,
        from_addr: "127.0.0.1".parse().unwrap(),
        addr: "127.0.0.1".parse().unwrap(),
        why: "test".into(),
    };
    let pairs = vec![
        pair(Subject::Host, open.port(), Expect::Allow),
        pair(Subject::Guest(GuestId(101)), closed.port(), Expect::Deny),
        pair(Subject::Guest(GuestId(103)), closed.port(), Expect::Deny),
        pair(Subject::Named("absent".into()), open.port(), Expect::Allow),
    ];
    let mut report = Report::new();
    report.extend(phoenix_verify::run::verify_matrix(
        &LoopbackTarget,
        &pairs,
        D,
    ));
    assert_eq!(
        (report.counts.pass, report.counts.fail, report.counts.skip),
        (3, 0, 1),
        "{}",
        report.render_text()
    );
    assert_eq!(report.exit_code(), 0);
    assert!(report.results[3].id.starts_with("tcp/absent/"));
}
