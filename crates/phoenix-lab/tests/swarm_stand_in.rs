//! The Portainer stand-in as a Docker Swarm service (library layer, issue 6/6): on the lab's
//! real two-node Swarm, `swarm::service::deploy` builds an nginx image from the host's nginx
//! (imported, no registry), puts the certificate and key in Swarm secrets and the page in a
//! Swarm config, and runs `portainer-stand-in` 1/1 on the manager with its port published in
//! host mode on the overlay `traefik-public`. From the proxy's namespace the service answers
//! HTTPS with the manifest certificate (chain to the lab root) and its page; a second deploy
//! changes nothing; a stopped task is reported 0/1 and restarted by the next deploy; `lab down`
//! leaves no namespace, engine, container or mount behind. Root and dockerd only.
//!
//! `lab up` still serves the route with the nginx stand-in process on 9443 (the Swarm service
//! is not yet wired into the route), so the service here publishes 9444.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use phoenix_lab::ingress::{TRUST_BUNDLE, guest_root, under};
use phoenix_lab::swarm::{self, service};
use phoenix_lab::{LabGuard, UpOptions, up};
use phoenix_verify::NetnsEndpoint;
use phoenix_verify::https::{HttpsOutcome, HttpsRequest, get};

const NAME: &str = "portainer.internal.thinkheads.ai";
const PORT: u16 = 9444;

fn dockerd_available() -> bool {
    let found = swarm::dockerd_available();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "the Swarm stand-in test needs dockerd (scripts/setup.sh installs docker.io)"
        );
        eprintln!("note: Swarm stand-in test skipped: dockerd missing");
    }
    found
}

/// GET from `ns`, retried for up to 10 s.
fn fetch(ns: &str, addr: SocketAddr, root_pem: &str) -> HttpsOutcome {
    let req = HttpsRequest {
        addr,
        sni: NAME.into(),
        host: NAME.into(),
        path: "/".into(),
        root_pem: root_pem.into(),
    };
    let start = Instant::now();
    loop {
        let o = get(&NetnsEndpoint::new(ns), &req, Duration::from_secs(3), true).expect("probe");
        let ok = matches!(&o.result, Ok(Some(r)) if r.status == 200);
        if ok || start.elapsed() > Duration::from_secs(10) {
            return o;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn portainer_stand_in_runs_as_a_swarm_service() {
    if !lab_available() || !dockerd_available() {
        return;
    }
    let prefix = unique_prefix();
    let guard = LabGuard::new(&prefix);
    // No guest firewalls: the test port 9444 is not in the homelab's policy.
    let d = homelab_unfiltered();
    let report = up(
        &d,
        &UpOptions {
            prefix: prefix.clone(),
            recreate: false,
        },
    )
    .expect("lab up");
    let plan = report.swarm.as_ref().expect("swarm").plan.clone();
    let root = guest_root(&prefix, 1001);
    let cert_path = d
        .certificates
        .iter()
        .find(|c| c.guest.0 == 1001)
        .expect("the manifest has Portainer's certificate");
    let cert = std::fs::read_to_string(under(&root, &cert_path.cert_path)).expect("cert");
    let key = std::fs::read_to_string(under(&root, &cert_path.key_path)).expect("key");
    let page = "Portainer stand-in (phoenix lab), a Swarm service";
    let stand_in = service::StandIn {
        guest: 1001,
        port: PORT,
        cert_pem: &cert,
        key_pem: &key,
        page,
    };
    let t0 = Instant::now();
    let changes = service::deploy(&plan, &stand_in).expect("deploy");
    eprintln!("deploy {:?}: {changes:#?}", t0.elapsed());
    assert!(!changes.is_empty());

    let root_pem = std::fs::read_to_string(under(&guest_root(&prefix, 102), TRUST_BUNDLE))
        .expect("trust bundle");
    let addr = SocketAddr::new("172.16.100.21".parse::<IpAddr>().unwrap(), PORT);
    let proxy = format!("{prefix}-g102");
    let ok = fetch(&proxy, addr, &root_pem);
    let resp = ok
        .result
        .as_ref()
        .expect("request")
        .as_ref()
        .expect("response");
    assert_eq!(resp.status, 200, "{ok}: {}", resp.body);
    assert!(resp.body.contains("a Swarm service"), "{}", resp.body);

    let check = service::stand_in_running_on(&plan, 1001, PORT);
    assert!(check.pass, "{check:?}");
    assert!(check.observed.starts_with("1/1 running"), "{check:?}");

    let t1 = Instant::now();
    let again = service::deploy(&plan, &stand_in).expect("deploy again");
    eprintln!("second deploy {:?}: {again:?}", t1.elapsed());
    assert_eq!(again, Vec::<String>::new());

    // The task's nginx stops: 0/1, and the next deploy restarts it.
    let pid: u32 = std::fs::read_to_string(service::pid_file(&prefix))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert!(
        std::process::Command::new("kill")
            .arg(pid.to_string())
            .status()
            .expect("kill")
            .success()
    );
    let t2 = Instant::now();
    let mut down = service::stand_in_running_on(&plan, 1001, PORT);
    while !down.observed.starts_with("0/1") && t2.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
        down = service::stand_in_running_on(&plan, 1001, PORT);
    }
    assert!(!down.pass, "{down:?}");
    let healed = service::deploy(&plan, &stand_in).expect("deploy after the fault");
    assert_eq!(healed.len(), 1, "{healed:?}");
    assert!(service::stand_in_running_on(&plan, 1001, PORT).pass);
    let ok = fetch(&proxy, addr, &root_pem);
    assert!(matches!(&ok.result, Ok(Some(r)) if r.status == 200), "{ok}");

    drop(guard);
    assert_gone(&prefix);
}
