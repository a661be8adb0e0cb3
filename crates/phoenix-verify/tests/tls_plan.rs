//! TLS check planning on `examples/homelab` (pure): which services are checked, from where,
//! with which SNI and which expected SANs; and skips (never guesses) when the model cannot
//! tell what a service presents.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use phoenix_model::model::{GuestId, San};
use phoenix_verify::Subject;
use phoenix_verify::tls::{TlsCheck, plan};

fn homelab() -> phoenix_model::DesiredState {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    phoenix_model::validate_dir(&dir)
        .desired
        .expect("examples/homelab builds")
}

fn line(c: &TlsCheck) -> String {
    let sans: Vec<String> = c.expected.iter().map(ToString::to_string).collect();
    match &c.skip {
        Some(why) => format!("{} [{}] SKIP {why}", c.id, c.service),
        None => format!(
            "{} [{}] sni={} sans=[{}] from {}",
            c.id,
            c.service,
            c.sni,
            sans.join(", "),
            c.source
        ),
    }
}

#[test]
fn homelab_tls_services_and_expected_sans() {
    let checks = plan(&homelab());
    let lines: Vec<String> = checks.iter().map(line).collect();
    eprintln!("{}", lines.join("\n"));
    assert!(checks.iter().all(|c| c.skip.is_none()), "{lines:#?}");
    let by_id = |id: &str| {
        checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no check {id}: {lines:#?}"))
    };
    let dns = |n: &str| San::Dns(n.into());
    let ip = |a: &str| San::Ip(a.parse().unwrap());

    // The gateway's nginx on its mesh address, from itself, with the gateway's certificate.
    let gw = by_id("tls/guest:101/172.16.100.10:443");
    assert_eq!(gw.from, Subject::Guest(GuestId(101)));
    assert_eq!(gw.sni, "portainer.internal.thinkheads.ai");
    assert_eq!(
        gw.expected,
        [
            dns("nginx.internal.thinkheads.ai"),
            dns("portainer.internal.thinkheads.ai"),
            ip("172.16.100.10")
        ]
    );

    // Traefik on websecure, from the gateway, with the proxy's certificate.
    let tr = by_id("tls/guest:101/172.16.100.12:443");
    assert_eq!(tr.sni, "traefik.internal.thinkheads.ai");
    assert_eq!(
        tr.expected,
        [
            dns("ca.internal.thinkheads.ai"),
            dns("portainer.internal.thinkheads.ai"),
            dns("traefik.internal.thinkheads.ai"),
            ip("172.16.100.12")
        ]
    );
    assert!(tr.service.contains("Traefik"), "{}", tr.service);

    // The Portainer backend, from the proxy, with its manifest certificate.
    let pt = by_id("tls/guest:102/172.16.100.21:9443");
    assert_eq!(pt.sni, "portainer.internal.thinkheads.ai");
    assert_eq!(
        pt.expected,
        [dns("portainer.internal.thinkheads.ai"), ip("172.16.100.21")]
    );
    assert!(pt.service.contains("route `portainer."), "{}", pt.service);

    // step-ca: a route backend too, so one check from the proxy with ca.json's dnsNames.
    let ca = by_id("tls/guest:102/172.16.100.11:9000");
    assert_eq!(ca.sni, "ca.internal.thinkheads.ai");
    assert_eq!(
        ca.expected,
        [dns("ca.internal.thinkheads.ai"), ip("172.16.100.11")]
    );
    assert!(
        ca.service.starts_with("step-ca (guest 103)"),
        "{}",
        ca.service
    );
    assert_eq!(ca.source, "step-ca's ca.json dnsNames");

    assert_eq!(checks.len(), 4, "{lines:#?}");
}

#[test]
fn unknown_certificates_are_skips_with_the_reason() {
    let mut d = homelab();
    // No manifest certificate for the Portainer VM, none for the proxy.
    d.certificates
        .retain(|c| c.guest != GuestId(1001) && c.guest != GuestId(102));
    let checks = plan(&d);
    let lines: Vec<String> = checks.iter().map(line).collect();
    let backend = checks
        .iter()
        .find(|c| c.id == "tls/guest:102/172.16.100.21:9443")
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(
        backend
            .skip
            .as_deref()
            .is_some_and(|w| w.contains("no certificate of guest 1001 covering")),
        "{lines:#?}"
    );
    let proxy = checks
        .iter()
        .find(|c| c.id == "tls/guest:101/172.16.100.12:443")
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(
        proxy
            .skip
            .as_deref()
            .is_some_and(|w| w.contains("no server certificate for the proxy")),
        "{lines:#?}"
    );
    // The gateway and step-ca do not depend on those certificates.
    assert!(
        checks
            .iter()
            .filter(|c| c.skip.is_none())
            .any(|c| c.id == "tls/guest:101/172.16.100.10:443")
    );
    assert!(
        checks
            .iter()
            .filter(|c| c.skip.is_none())
            .any(|c| c.id == "tls/guest:102/172.16.100.11:9000")
    );
}

#[test]
fn step_ca_without_a_route_is_checked_from_the_proxy() {
    let mut d = homelab();
    d.guests
        .get_mut(&GuestId(103))
        .expect("CA guest")
        .traefik_service = None;
    let checks = plan(&d);
    let lines: Vec<String> = checks.iter().map(line).collect();
    let ca = checks
        .iter()
        .find(|c| c.id == "tls/guest:102/172.16.100.11:9000")
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(ca.service, "step-ca (guest 103)");
    assert_eq!(ca.sni, "ca.internal.thinkheads.ai");
    assert_eq!(
        ca.expected,
        [
            San::Dns("ca.internal.thinkheads.ai".into()),
            San::Ip("172.16.100.11".parse().unwrap())
        ]
    );
    assert_eq!(checks.len(), 4, "{lines:#?}");
}
