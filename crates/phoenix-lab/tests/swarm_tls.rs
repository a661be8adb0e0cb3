//! The Swarm nodes' Engine API over TCP + TLS 2376, brought up by the plan itself:
//! `sync all --target lab --provision` on the homelab (guest firewalls on, so the derived rule
//! "docker engine api (tls) from the hypervisor" is what lets phoenix in) delivers each Swarm
//! VM's server certificate (the `certificates` wave, CN the VM's name, SANs its name and
//! addresses), writes its rendered `daemon.json` and drop-in (the `docker` steps), starts
//! dockerd from them, and keeps phoenix's client certificate under the lab CA's directory.
//! From the hypervisor's namespace `swarm::tls::check` passes (each engine answers `/info` in
//! its role with the client certificate from the plan's location and refuses a client without
//! one); keys are 0600; a second run plans nothing and restarts nothing; a server certificate
//! gone is issued again and the engine restarts with it; from the proxy guest (102, not allowed
//! by the firewall) the TLS connection does not succeed. Root and dockerd only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use phoenix_lab::LabGuard;
use phoenix_lab::roots::{guest_root, under};
use phoenix_lab::swarm::{self, tls};
use phoenix_lab::topology::topology;
use phoenix_model::model::San;
use phoenix_plan::Action;
use phoenix_render::dockerd;

fn print_checks(checks: &[swarm::SwarmCheck]) {
    for c in checks {
        eprintln!(
            "  [{}] {} {}: {} — {}",
            if c.pass { "PASS" } else { "FAIL" },
            c.id,
            c.subject,
            c.check,
            c.observed
        );
    }
}

fn issued_for(plan: &phoenix_plan::Plan) -> Vec<(u32, String)> {
    plan.actions()
        .filter_map(|a| match a {
            Action::IssueCertificate {
                guest, cert_path, ..
            } => Some((guest.0, cert_path.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn the_plan_brings_up_dockerd_with_tls_from_the_pki_on_both_swarm_vms() {
    if !lab_available() || !dockerd_available() {
        return;
    }
    let prefix = unique_prefix();
    let guard = LabGuard::new(&prefix);
    let d = homelab();
    assert!(d.firewall.enabled, "the homelab filters guest traffic");
    let t0 = Instant::now();
    let first = lab_sync_all(&d, &prefix);
    eprintln!("sync all {:?}", t0.elapsed());
    assert!(first.ok, "the first sync succeeds");
    // The plan issued both Swarm VMs' Engine API certificates.
    let issued = issued_for(&first.plan);
    for id in [1001, 1002] {
        assert!(
            issued.contains(&(id, dockerd::SERVER_CERT.to_string())),
            "{issued:?}"
        );
    }
    let t = topology(&d, &prefix).expect("topology");
    let sp = swarm::plan(&d, &t).expect("swarm plan").expect("swarm");
    let manager = sp.node(1001).expect("manager").clone();
    let worker = sp.node(1002).expect("worker").clone();

    // The files the plan wrote into each Swarm VM's root.
    for n in [&manager, &worker] {
        let root = guest_root(&prefix, n.guest);
        let (cert, key) = tls::server_files(n).expect("server files");
        assert_eq!(mode(&key), 0o600, "{}", key.display());
        let conf = std::fs::read_to_string(under(&root, dockerd::DAEMON_JSON)).expect("conf");
        assert!(conf.contains(&format!("tcp://{}:2376", n.addr)), "{conf}");
        assert!(under(&root, dockerd::DROP_IN).is_file());
        let leaf =
            phoenix_pki::parse_leaf_pem(&std::fs::read_to_string(&cert).unwrap()).expect("leaf");
        assert_eq!(leaf.common_name.as_deref(), Some(n.name.as_str()));
        let g = d.guest(phoenix_model::model::GuestId(n.guest)).unwrap();
        for a in g.addresses() {
            assert!(leaf.sans.contains(&San::Ip(a)), "{a} in {:?}", leaf.sans);
        }
        assert!(leaf.sans.contains(&San::Dns(n.name.clone())));
    }
    let client = tls::client_dir(&prefix);
    assert!(client.starts_with(phoenix_lab::roots::lab_ca_dir(&prefix)));
    assert_eq!(mode(&client), 0o700);
    assert_eq!(mode(&client.join(tls::KEY_FILE)), 0o600);

    // From the hypervisor: answers with the client certificate, refuses one without.
    let hv = format!("{prefix}-hv");
    let checks = tls::check(&sp, &prefix, &hv);
    print_checks(&checks);
    assert_eq!(checks.len(), 2, "two nodes: {checks:#?}");
    assert_eq!(checks[0].id, "swarm/engine-tls/1001");
    assert!(checks.iter().all(|c| c.pass), "{checks:#?}");
    assert!(checks[0].observed.contains("(manager)"), "{checks:#?}");
    assert!(checks[1].observed.contains("(worker)"), "{checks:#?}");
    // dockerd's own account of the anonymous client.
    let log = std::fs::read_to_string(manager.log()).unwrap_or_default();
    assert!(
        log.lines()
            .any(|l| l.contains("client didn't provide a certificate")),
        "{log}"
    );

    // The second run plans nothing and restarts nothing.
    let mpid = swarm::engine_pid(&manager).expect("manager engine");
    let client_before = std::fs::read(client.join(tls::CERT_FILE)).unwrap();
    let again = lab_sync_all(&d, &prefix);
    assert!(again.ok);
    let s = &again.plan.summary;
    assert_eq!(
        (s.create, s.change, s.delete),
        (0, 0, 0),
        "second run plans {:#?}",
        again
            .plan
            .actions()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
    );
    assert!(again.done.is_empty(), "{:#?}", again.done);
    assert_eq!(swarm::engine_pid(&manager), Some(mpid));
    assert_eq!(
        std::fs::read(client.join(tls::CERT_FILE)).unwrap(),
        client_before
    );
    assert!(
        !again
            .swarm_changes
            .iter()
            .any(|c| c.contains("client certificate")),
        "{:?}",
        again.swarm_changes
    );

    // A server certificate gone: the plan issues it again and the engine restarts with it.
    let (cert, _) = tls::server_files(&manager).unwrap();
    std::fs::remove_file(&cert).unwrap();
    let renewed = lab_sync_all(&d, &prefix);
    assert!(renewed.ok);
    assert_eq!(
        issued_for(&renewed.plan),
        vec![(1001, dockerd::SERVER_CERT.to_string())]
    );
    let new_pid = swarm::engine_pid(&manager).expect("manager engine again");
    assert_ne!(new_pid, mpid, "the renewal restarted the engine");
    let checks = tls::check(&sp, &prefix, &hv);
    print_checks(&checks);
    assert!(checks.iter().all(|c| c.pass), "{checks:#?}");

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
    assert!(Path::new(&client).is_dir());

    drop(guard);
    assert_gone(&prefix);
}
