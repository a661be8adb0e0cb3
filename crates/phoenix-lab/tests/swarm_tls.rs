//! The Swarm nodes' Engine API over TCP + TLS 2376 with certificates from the lab CA:
//! `lab up` on the homelab (guest firewalls on, so the derived rule "docker engine api (tls)
//! from the hypervisor" is what lets phoenix in) issues each node's server certificate and
//! phoenix's client certificate, starts every dockerd with `--tlsverify`; from the
//! hypervisor's namespace `swarm::tls::check` passes (each engine answers `/info` in its role
//! with the client certificate and refuses a client without one); the keys are 0600 in 0700
//! directories; a second `swarm::up` changes nothing; new server files restart the engine;
//! from the proxy guest (102, not allowed by the firewall) the TLS connection does not
//! succeed. Root and dockerd only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::time::{Duration, Instant};

use common::*;
use phoenix_lab::LabGuard;
use phoenix_lab::swarm::{self, tls};
use phoenix_lab::topology::topology;

fn argv_of(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    raw.split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

#[test]
fn manager_engine_api_over_tls_from_the_hypervisor_only() {
    if !lab_available() || !dockerd_available() {
        return;
    }
    let prefix = unique_prefix();
    let guard = LabGuard::new(&prefix);
    let d = homelab();
    assert!(d.firewall.enabled, "the homelab filters guest traffic");
    let t0 = Instant::now();
    let report = lab_up(&d, &prefix);
    eprintln!("lab up {:?}", t0.elapsed());
    let plan = report.swarm.as_ref().expect("swarm").plan.clone();
    let manager = plan.node(1001).expect("manager").clone();
    let worker = plan.node(1002).expect("worker").clone();

    // The files: server side on every node, phoenix's client certificate once.
    let server = tls::tls_dir(&manager);
    let wserver = tls::tls_dir(&worker);
    let client = tls::client_dir(&prefix);
    assert_eq!(tls::server_files(&manager), Some(server.clone()));
    assert_eq!(tls::server_files(&worker), Some(wserver.clone()));
    for dir in [&server, &wserver, &client] {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
        assert_eq!(mode(&dir.join(tls::KEY_FILE)), 0o600, "{}", dir.display());
        assert!(dir.join(tls::CERT_FILE).is_file() && dir.join(tls::CA_FILE).is_file());
    }

    // Both engines serve TLS on 2376.
    let mpid = swarm::engine_pid(&manager).expect("manager engine");
    let margv = argv_of(mpid);
    assert!(margv.iter().any(|a| a == "--tlsverify"), "{margv:?}");
    assert!(
        margv.iter().any(|a| a == "--host=tcp://172.16.100.21:2376"),
        "{margv:?}"
    );
    let wpid = swarm::engine_pid(&worker).expect("worker engine");
    let wargv = argv_of(wpid);
    assert!(
        wargv.iter().any(|a| a == "--host=tcp://172.16.100.22:2376"),
        "{wargv:?}"
    );

    // From the hypervisor: answers with the client certificate, refuses one without.
    let hv = format!("{prefix}-hv");
    let t1 = Instant::now();
    let checks = tls::check(&plan, &prefix, &hv);
    eprintln!("tls checks ({:?}):", t1.elapsed());
    for c in &checks {
        eprintln!(
            "  [{}] {} {}: {} — {}",
            if c.pass { "PASS" } else { "FAIL" },
            c.id,
            c.subject,
            c.check,
            c.observed
        );
    }
    assert_eq!(checks.len(), 2, "two nodes: {checks:#?}");
    assert_eq!(checks[0].id, "swarm/engine-tls/1001");
    assert!(checks.iter().all(|c| c.pass), "{checks:#?}");
    assert!(checks[0].observed.contains("(manager)"), "{checks:#?}");
    assert!(checks[1].observed.contains("(worker)"), "{checks:#?}");

    // dockerd's own account of the anonymous client.
    let log = std::fs::read_to_string(manager.log()).unwrap_or_default();
    let handshake: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("handshake") || l.contains("certificate"))
        .collect();
    eprintln!("dockerd on the manager: {handshake:#?}");
    assert!(
        handshake
            .iter()
            .any(|l| l.contains("client didn't provide a certificate")),
        "{handshake:#?}"
    );

    // Idempotent: nothing rewritten, nothing restarted.
    let cert_before = std::fs::read(server.join(tls::CERT_FILE)).expect("cert");
    assert!(!tls::prepare(&prefix, &plan).expect("prepare again"));
    let t = topology(&d, &prefix).expect("topology");
    let again = swarm::up(&d, &t, true)
        .expect("swarm up again")
        .expect("swarm");
    assert_eq!(again.changes, Vec::<String>::new());
    assert_eq!(swarm::engine_pid(&manager), Some(mpid));
    assert_eq!(
        std::fs::read(server.join(tls::CERT_FILE)).expect("cert"),
        cert_before
    );

    // New server files (here: the old ones gone) restart the running manager engine.
    std::fs::remove_dir_all(&server).expect("remove the server files");
    let t2 = Instant::now();
    let renewed = swarm::up(&d, &t, true)
        .expect("swarm up after")
        .expect("swarm");
    eprintln!(
        "swarm up with new TLS files {:?}: {:?}",
        t2.elapsed(),
        renewed.changes
    );
    assert!(
        renewed
            .changes
            .iter()
            .any(|c| c.contains("TLS files changed")),
        "{:?}",
        renewed.changes
    );
    let new_pid = swarm::engine_pid(&manager).expect("manager engine again");
    assert_ne!(new_pid, mpid);
    assert_ne!(
        std::fs::read(server.join(tls::CERT_FILE)).expect("cert"),
        cert_before
    );
    let checks = tls::check(&plan, &prefix, &hv);
    assert!(checks.iter().all(|c| c.pass), "{checks:#?}");
    let quiet = swarm::up(&d, &t, true)
        .expect("swarm up once more")
        .expect("swarm");
    assert_eq!(quiet.changes, Vec::<String>::new());

    // From the proxy guest (102): the firewall allows 2376 only from the hypervisor.
    let proxy = format!("{prefix}-g102");
    let denied = tls::info_from(
        &proxy,
        &tls::endpoint(&manager),
        &client,
        Duration::from_secs(3),
    );
    eprintln!("from {proxy}: {denied:?}");
    assert!(denied.is_err(), "{denied:?}");

    drop(guard);
    assert_gone(&prefix);
}
