//! The ingress path with `examples/homelab` up: from the wan, `https://portainer.<domain>/`
//! through the gateway's DHCP address (SNI and Host = that name, trusting the lab CA's root)
//! goes Nginx → Traefik → the Portainer stand-in and returns 200 with the stand-in's page; a
//! wrong Host does not reach it (the gateway answers 502: Traefik's certificate does not cover
//! that name); `lab down` leaves no process behind. Root only; see `common::lab_available`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use phoenix_lab::LabGuard;
use phoenix_lab::ingress::{STAND_IN_PAGE, TRUST_BUNDLE, guest_root, under};

const NAME: &str = PORTAINER;

fn pgrep(pattern: &str) -> String {
    let o = std::process::Command::new("pgrep")
        .args(["-a", "-f", pattern])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn portainer_through_gateway_traefik_and_stand_in() {
    if !lab_available() {
        return;
    }
    let prefix = unique_prefix();
    let guard = LabGuard::new(&prefix);
    let d = homelab();
    let t0 = Instant::now();
    let report = lab_up(&d, &prefix);
    eprintln!(
        "homelab lab up with ingress: {:?} (phases {:?})",
        t0.elapsed(),
        report.phases
    );
    let ing = report
        .ingress
        .as_ref()
        .expect("the homelab has an ingress path");
    eprintln!("ingress: {ing:?}");
    assert!(ing.stand_in.is_some());
    // With dockerd the stand-in is a Swarm service on the manager, else an nginx process.
    let as_service = phoenix_lab::swarm::dockerd_available();
    assert_eq!(ing.swarm_stand_in.is_some(), as_service, "{ing:?}");
    for name in ["traefik", "nginx-gw", "portainer-stand-in"] {
        let process = report.services.services.iter().any(|s| s.name == name);
        let want = name != "portainer-stand-in" || !as_service;
        assert_eq!(process, want, "{name} started as a process: {process}");
    }
    if as_service {
        let plan = &report.swarm.as_ref().expect("the Swarm is up").plan;
        let check = phoenix_lab::swarm::service::stand_in_running(plan);
        assert!(check.pass, "{check:?}");
    }
    // The CA stays outside the guest roots; the roots hold the trust bundle.
    let roots = phoenix_lab::state_dir(&prefix).join("root");
    assert!(!ing.ca_dir.starts_with(&roots));
    let root_pem = std::fs::read_to_string(under(&guest_root(&prefix, 101), TRUST_BUNDLE))
        .expect("trust bundle in the gateway's root");

    let lease = report
        .services
        .leases
        .iter()
        .find(|l| l.guest == 101)
        .and_then(|l| l.address.clone())
        .expect("the gateway holds a lease");
    let ip: IpAddr = lease.split('/').next().unwrap().parse().unwrap();
    let addr = SocketAddr::new(ip, 443);
    let wan = format!("{prefix}-wan");

    let t1 = Instant::now();
    let ok = fetch(
        &wan,
        addr,
        NAME,
        &root_pem,
        Some(200),
        Duration::from_secs(5),
    );
    eprintln!("GET https://{NAME}/ via {addr}: {ok} in {:?}", t1.elapsed());
    let resp = ok
        .result
        .as_ref()
        .expect("request")
        .as_ref()
        .expect("response");
    assert_eq!(resp.status, 200, "{ok}: {}", resp.body);
    assert!(resp.body.contains(STAND_IN_PAGE), "{}", resp.body);
    let cert = ok.cert.as_ref().expect("gateway certificate");
    assert!(format!("{cert}").contains("nginx"), "{cert}");

    // A wrong Host (SNI still the name): the gateway's only TLS server takes it and, with
    // `proxy_ssl_name $host`, checks Traefik's certificate for that Host, which it does not
    // cover: nginx answers 502 itself and says why in its error log. A response must come
    // back (a transport failure does not pass), and it must not be the stand-in's.
    let wrong = fetch(
        &wan,
        addr,
        "wrong.example.org",
        &root_pem,
        Some(502),
        Duration::from_secs(5),
    );
    eprintln!("wrong Host: {wrong}");
    let r = match &wrong.result {
        Ok(Some(r)) => r,
        other => panic!("wrong Host: no HTTP response: {other:?}"),
    };
    assert!(
        !r.body.contains(STAND_IN_PAGE),
        "wrong Host reached the stand-in"
    );
    assert_eq!(r.status, 502, "{wrong}: {}", r.body);
    assert_eq!(
        phoenix_verify::route::answered_by(r).as_deref(),
        Some("nginx"),
        "the gateway's own 502: {}",
        r.body
    );
    let gw_log =
        std::fs::read_to_string(phoenix_lab::state_dir(&prefix).join("nginx-gw.error.log"))
            .unwrap_or_default();
    assert!(
        gw_log.contains("upstream SSL certificate does not match \"wrong.example.org\""),
        "nginx-gw.error.log: {gw_log}"
    );

    // Each hop saw the request: Traefik's access log (its stdout) and the stand-in's.
    let state = phoenix_lab::state_dir(&prefix);
    let traefik_log = std::fs::read_to_string(state.join("traefik.out")).unwrap_or_default();
    assert!(traefik_log.contains("portainer"), "traefik: {traefik_log}");
    let stand_in_log =
        std::fs::read_to_string(state.join("portainer-stand-in.access.log")).unwrap_or_default();
    assert!(stand_in_log.contains("GET / "), "stand-in: {stand_in_log}");

    let marker = phoenix_lab::state_dir(&prefix)
        .to_string_lossy()
        .into_owned();
    assert!(
        !pgrep(&marker).is_empty(),
        "no process runs from the state dir"
    );
    drop(guard);
    assert_gone(&prefix);
    let left = pgrep(&marker);
    assert!(left.is_empty(), "left behind: {left}");
}
