//! Probes from inside a network namespace of our own (`phxv-<random>`, loopback up) through
//! `NetnsEndpoint`: real dnsmasq and a TCP listener inside it, reached on that namespace's
//! loopback. Nothing in the root namespace is touched; the namespace is deleted in `Drop`.
//! Needs root: skipped with a note when not root and `CI` is unset, fails when `CI` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use phoenix_verify::dns::{self, DnsCheck, DnsExpect};
use phoenix_verify::hostinfo::probe_dhcp_address;
use phoenix_verify::tcp::{self, Expect};
use phoenix_verify::{
    LocalEndpoint, NetnsEndpoint, NetnsTarget, ProbeTarget, Status, Subject, with_net,
};
use support::{Dnsmasq, Netns, require_root};

const D: Duration = Duration::from_secs(3);

#[test]
fn dns_and_tcp_probes_from_inside_a_namespace() {
    if !require_root("dns_and_tcp_probes_from_inside_a_namespace") {
        return;
    }
    let ns = Netns::create();
    let subject = Subject::Named(ns.name.clone());
    let target = NetnsTarget::new().with(subject.clone(), ns.name.clone());
    let ep = target.endpoint(&subject).unwrap();

    // Port 53 on the namespace's own loopback: no clash with anything outside it.
    let lo = Ipv4Addr::LOCALHOST;
    let _dns = Dnsmasq::start(
        &["ip", "netns", "exec", &ns.name],
        lo,
        53,
        &[("gw.lab.test", "172.16.100.10")],
        &[],
    );
    let server = SocketAddr::from((lo, 53));
    let known = dns::probe(
        &*ep,
        &subject,
        server,
        &DnsCheck {
            name: "gw.lab.test".into(),
            expect: DnsExpect::Address("172.16.100.10".parse().unwrap()),
        },
        D,
    );
    assert_eq!(known.status, Status::Pass, "{known:?}");
    let nx = dns::probe(
        &*ep,
        &subject,
        server,
        &DnsCheck {
            name: "nope.lab.test".into(),
            expect: DnsExpect::NxDomain,
        },
        D,
    );
    assert_eq!(nx.status, Status::Pass, "{nx:?}");

    let ns_only = NetnsEndpoint::new(ns.name.clone());
    // A listener created *inside* the namespace (on the setns thread), then probed from there.
    let listener: TcpListener = with_net(&ns_only, || TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .unwrap()
        .unwrap();
    let open = listener.local_addr().unwrap();
    let a = tcp::probe(
        &ns_only,
        &subject,
        open,
        Expect::Allow,
        "listener in namespace",
        D,
    );
    assert_eq!(a.status, Status::Pass, "{a:?}");
    let closed = SocketAddr::from((lo, 9));
    let d = tcp::probe(
        &ns_only,
        &subject,
        closed,
        Expect::Deny,
        "nothing listens",
        D,
    );
    assert_eq!(d.status, Status::Pass, "{d:?}");

    // The listener lives in the namespace's loopback: from the root namespace's loopback the
    // same port does not connect (proves the socket was opened after setns).
    let outside = tcp::probe(&LocalEndpoint, &Subject::Host, open, Expect::Deny, "", D);
    assert_eq!(outside.status, Status::Pass, "{outside:?}");

    // Commands run inside too: the namespace has only `lo`.
    let links = ep.run(&["ip", "-o", "link", "show"], D).unwrap();
    assert!(links.success(), "{links:?}");
    assert_eq!(links.stdout.lines().count(), 1, "{}", links.stdout);
    assert!(links.stdout.contains("lo:"));
}

#[test]
fn dhcp_address_probe_reads_ip_addr_inside_a_namespace() {
    if !require_root("dhcp_address_probe_reads_ip_addr_inside_a_namespace") {
        return;
    }
    let ns = Netns::create();
    let ep = NetnsEndpoint::new(ns.name.clone());
    let s = Subject::Named(ns.name.clone());
    let net = "192.0.2.0/24".parse().ok();
    let fast = Duration::from_millis(400);
    // No address yet: fails with what it saw.
    let none = probe_dhcp_address(&ep, &s, "lo", net, true, fast);
    match &none.status {
        Status::Fail { evidence } => {
            assert!(evidence.contains("no matching address"), "{evidence}")
        }
        other => panic!("{other:?}"),
    }
    // A static address is not a lease; one with a lifetime (as a DHCP client sets) is.
    support::run(&[
        "ip",
        "-n",
        &ns.name,
        "addr",
        "add",
        "192.0.2.5/24",
        "dev",
        "lo",
    ]);
    let static_only = probe_dhcp_address(&ep, &s, "lo", net, true, fast);
    assert!(
        matches!(static_only.status, Status::Fail { .. }),
        "{static_only:?}"
    );
    assert!(static_only.observed.contains("192.0.2.5/24"));
    support::run(&[
        "ip",
        "-n",
        &ns.name,
        "addr",
        "add",
        "192.0.2.6/24",
        "dev",
        "lo",
        "valid_lft",
        "300",
        "preferred_lft",
        "300",
    ]);
    let leased = probe_dhcp_address(&ep, &s, "lo", net, true, D);
    assert_eq!(leased.status, Status::Pass, "{leased:?}");
    assert!(
        leased.observed.contains("192.0.2.6/24 dynamic"),
        "{}",
        leased.observed
    );
}

#[test]
fn missing_namespace_is_an_error_not_a_pass() {
    let ep = NetnsEndpoint::new("phxv-does-not-exist-0");
    let r = tcp::probe(
        &ep,
        &Subject::Host,
        SocketAddr::from((Ipv4Addr::LOCALHOST, 1)),
        Expect::Deny,
        "",
        D,
    );
    match r.status {
        Status::Fail { evidence } => assert!(
            evidence.contains("cannot open network namespace handle"),
            "{evidence}"
        ),
        other => panic!("{other:?}"),
    }
}
