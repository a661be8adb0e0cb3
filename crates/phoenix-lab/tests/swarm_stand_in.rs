//! The Portainer stand-in as a Docker Swarm service (issue 6/6): `lab up` on the homelab
//! deploys `portainer-stand-in` on the lab's real two-node Swarm (`swarm::service::deploy`:
//! an nginx image built from the host's nginx, imported, no registry; the certificate and
//! key as Swarm secrets, the page as a Swarm config), 1/1 on the manager with port 9443
//! published in host mode on the overlay `traefik-public`. From the proxy's namespace the
//! service answers HTTPS with the manifest certificate (chain to the lab root) and its page;
//! a second deploy changes nothing; a stopped task is reported 0/1 and restarted by the next
//! deploy; `lab down` leaves no namespace, engine, container or mount behind. Root and
//! dockerd only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use phoenix_lab::LabGuard;
use phoenix_lab::ingress::{STAND_IN_PAGE, TRUST_BUNDLE, guest_root, under};
use phoenix_lab::swarm::service;

const PORT: u16 = service::STAND_IN_PORT;

#[test]
fn portainer_stand_in_runs_as_a_swarm_service() {
    if !lab_available() || !dockerd_available() {
        return;
    }
    let prefix = unique_prefix();
    let guard = LabGuard::new(&prefix);
    let d = homelab();
    let report = lab_up(&d, &prefix);
    let plan = report.swarm.as_ref().expect("swarm").plan.clone();
    // `lab up` recorded and deployed the stand-in on the manager, with Portainer's own
    // manifest certificate.
    let si = phoenix_lab::ingress::swarm_stand_in(&prefix).expect("stand-in recorded");
    assert_eq!((si.guest, si.port), (1001, PORT));
    let cert_entry = d
        .certificates
        .iter()
        .find(|c| c.guest.0 == 1001)
        .expect("the manifest has Portainer's certificate");
    assert_eq!(
        si.cert,
        under(&guest_root(&prefix, 1001), &cert_entry.cert_path)
    );
    let swarm_changes = &report.swarm.as_ref().expect("swarm").changes;
    assert!(
        swarm_changes
            .iter()
            .any(|c| c.contains(service::STAND_IN_SERVICE)),
        "{swarm_changes:#?}"
    );

    let root_pem = std::fs::read_to_string(under(&guest_root(&prefix, 102), TRUST_BUNDLE))
        .expect("trust bundle");
    let addr = SocketAddr::new("172.16.100.21".parse::<IpAddr>().unwrap(), PORT);
    let proxy = format!("{prefix}-g102");
    let ok = fetch(
        &proxy,
        addr,
        PORTAINER,
        &root_pem,
        Some(200),
        Duration::from_secs(10),
    );
    let resp = ok
        .result
        .as_ref()
        .expect("request")
        .as_ref()
        .expect("response");
    assert_eq!(resp.status, 200, "{ok}: {}", resp.body);
    assert!(resp.body.contains(STAND_IN_PAGE), "{}", resp.body);

    let check = service::stand_in_running_on(&plan, 1001, PORT);
    assert!(check.pass, "{check:?}");
    assert!(check.observed.starts_with("1/1 running"), "{check:?}");

    let t1 = Instant::now();
    let again = phoenix_lab::ingress::deploy_swarm_stand_in(&plan, &si).expect("deploy again");
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
    let healed =
        phoenix_lab::ingress::deploy_swarm_stand_in(&plan, &si).expect("deploy after the fault");
    assert_eq!(healed.len(), 1, "{healed:?}");
    assert!(service::stand_in_running_on(&plan, 1001, PORT).pass);
    let ok = fetch(
        &proxy,
        addr,
        PORTAINER,
        &root_pem,
        Some(200),
        Duration::from_secs(10),
    );
    assert!(matches!(&ok.result, Ok(Some(r)) if r.status == 200), "{ok}");

    drop(guard);
    assert_gone(&prefix);
}
