//! A real two-node Docker Swarm in the lab (`examples/homelab`: manager 1001, worker 1002 on
//! the mesh bridge): one dockerd per VM namespace, Swarm init/join on the mesh NIC, node
//! labels, the attachable overlay `traefik-public`; all checks pass; a second `up` changes
//! nothing; faults: VXLAN (udp 4789) dropped in the worker's namespace → the overlay checks
//! fail with evidence while the underlay ping passes; the worker's dockerd stopped → the checks
//! name the node. The teardown leaves no engine, container, namespace or mount behind.
//! Root only (and dockerd); see `common::lab_available`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::time::{Duration, Instant};

use common::*;
use phoenix_lab::swarm::{self, SwarmCheck, SwarmPlan};
use phoenix_lab::topology::topology;
use phoenix_lab::{LabGuard, realise::realise};

fn show(title: &str, checks: &[SwarmCheck]) {
    eprintln!("{title}:");
    for c in checks {
        eprintln!(
            "  {} {} [{}] {} ms: {}",
            if c.pass { "pass" } else { "FAIL" },
            c.id,
            c.subject,
            c.duration_ms,
            c.observed
        );
    }
}

fn by_id<'a>(checks: &'a [SwarmCheck], id: &str) -> &'a SwarmCheck {
    checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id}"))
}

/// A long-running container on `guest`'s engine, left for the teardown; its pid.
fn leave_container(plan: &SwarmPlan, guest: u32) -> u32 {
    use bollard::models::ContainerCreateBody;
    use bollard::query_parameters::CreateContainerOptionsBuilder;
    let n = plan.node(guest).expect("node");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let c = swarm::client(n).expect("client");
        let body = ContainerCreateBody {
            image: Some(format!("{}:{}", swarm::IMAGE_REPO, swarm::IMAGE_TAG)),
            cmd: Some(vec!["sleep".into(), "3600".into()]),
            stop_timeout: Some(1),
            host_config: Some(bollard::models::HostConfig {
                network_mode: Some(plan.overlay.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = format!("left-behind-{guest}");
        c.create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            body,
        )
        .await
        .expect("create");
        c.start_container(&name, None).await.expect("start");
        let i = c.inspect_container(&name, None).await.expect("inspect");
        u32::try_from(i.state.and_then(|s| s.pid).expect("pid")).expect("pid fits")
    })
}

/// The VXLAN fault: drop udp 4789 arriving in `ns` (an nft table of its own).
fn drop_vxlan(ns: &str, dir: &std::path::Path) {
    let file = dir.join("fault-vxlan.nft");
    std::fs::write(
        &file,
        "table inet phoenix_fault {\n\tchain input {\n\t\ttype filter hook input priority -10; policy accept;\n\t\tudp dport 4789 counter drop\n\t}\n}\n",
    )
    .expect("write fault");
    assert!(in_ns(ns, &["nft", "-f", &file.to_string_lossy()]));
}

#[test]
fn swarm_up_checks_idempotence_faults_and_down() {
    if !lab_available() || !dockerd_available() {
        return;
    }
    let prefix = unique_prefix();
    let guard = LabGuard::new(&prefix);
    let d = homelab();
    let t = topology(&d, &prefix).expect("topology");
    let t0 = Instant::now();
    realise(&t, false).expect("lab network");
    let network_time = t0.elapsed();

    let t1 = Instant::now();
    let state = swarm::up(&d, &t, true)
        .expect("swarm up")
        .expect("homelab has a Swarm");
    let up_time = t1.elapsed();
    eprintln!(
        "lab network {network_time:?}; swarm up {up_time:?} (phases {:?})",
        state.phases
    );
    for c in &state.changes {
        eprintln!("  change: {c}");
    }
    assert_eq!(state.engines.len(), 2);
    assert!(state.changes.iter().any(|c| c.starts_with("swarm init")));
    assert!(state.changes.iter().any(|c| c.contains("joined as worker")));
    let plan = state.plan.clone();

    let t2 = Instant::now();
    let checks = swarm::checks(&plan);
    let verify_time = t2.elapsed();
    show(&format!("checks ({verify_time:?})"), &checks);
    let failed: Vec<&SwarmCheck> = checks.iter().filter(|c| !c.pass).collect();
    assert!(failed.is_empty(), "failed: {failed:#?}");
    let ready = checks
        .iter()
        .filter(|c| c.id.starts_with("swarm/node/") && c.pass)
        .count();
    assert_eq!(ready, 2, "two nodes Ready");
    assert!(
        by_id(&checks, "swarm/node/1001")
            .observed
            .contains("role=management")
    );
    assert!(
        by_id(&checks, "swarm/node/1002")
            .observed
            .contains("role=apps")
    );
    assert!(
        by_id(&checks, "swarm/overlay-mtu/1002")
            .observed
            .contains("MTU 1450")
    );
    for kind in ["overlay-name", "overlay-addr", "overlay-df", "underlay"] {
        for p in ["1001-1002", "1002-1001"] {
            assert!(by_id(&checks, &format!("swarm/{kind}/{p}")).pass);
        }
    }

    // Idempotence: a second run finds everything in place.
    let t3 = Instant::now();
    let again = swarm::up(&d, &t, true)
        .expect("swarm up again")
        .expect("swarm");
    eprintln!(
        "second swarm up {:?}: changes {:?}",
        t3.elapsed(),
        again.changes
    );
    assert_eq!(again.changes, Vec::<String>::new());
    assert!(again.engines.iter().all(|e| !e.started));
    assert_eq!(
        again.engines.iter().map(|e| e.pid).collect::<Vec<_>>(),
        state.engines.iter().map(|e| e.pid).collect::<Vec<_>>()
    );

    // Fault 1: VXLAN dropped on the worker's underlay; the underlay itself still works.
    let worker = plan.node(1002).expect("worker").clone();
    drop_vxlan(&worker.ns, &phoenix_lab::state_dir(&prefix));
    let t4 = Instant::now();
    let mut faulty = swarm::checks::underlay(&plan);
    faulty.extend(swarm::checks::overlay(&plan));
    show(
        &format!("VXLAN dropped in {} ({:?})", worker.ns, t4.elapsed()),
        &faulty,
    );
    for p in ["1001-1002", "1002-1001"] {
        assert!(by_id(&faulty, &format!("swarm/underlay/{p}")).pass);
        for kind in ["overlay-name", "overlay-addr", "overlay-df"] {
            let c = by_id(&faulty, &format!("swarm/{kind}/{p}"));
            assert!(!c.pass, "{kind} {p} passed with VXLAN dropped");
            assert!(c.observed.contains("ping"), "evidence: {}", c.observed);
        }
    }
    let listing = in_ns_out(
        &worker.ns,
        &["nft", "list", "table", "inet", "phoenix_fault"],
    );
    assert!(packets(&listing) > 0, "the fault rule saw VXLAN: {listing}");
    assert!(in_ns(
        &worker.ns,
        &["nft", "delete", "table", "inet", "phoenix_fault"]
    ));
    let healed = swarm::checks::overlay(&plan);
    assert!(
        healed.iter().all(|c| c.pass),
        "after the fault: {healed:#?}"
    );

    // A container left running for the teardown to find.
    let left_pid = leave_container(&plan, 1002);

    // Fault 2: the worker's dockerd stopped; the checks name the node.
    swarm::stop_engine(&plan, 1002, Duration::from_secs(10)).expect("stop engine");
    let t5 = Instant::now();
    let mut seen = swarm::checks::engines_and_nodes(&plan);
    // The manager marks the node Down once its heartbeats stop; poll for it (informational).
    while by_id(&seen, "swarm/node/1002").pass && t5.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_secs(1));
        seen = swarm::checks::engines_and_nodes(&plan);
    }
    show(
        &format!(
            "worker dockerd stopped (node check settled after {:?})",
            t5.elapsed()
        ),
        &seen,
    );
    let engine = by_id(&seen, "swarm/engine/1002");
    assert!(!engine.pass);
    assert!(
        engine.observed.contains("drphoenix (1002)"),
        "{}",
        engine.observed
    );
    assert!(by_id(&seen, "swarm/engine/1001").pass);

    // `up` heals it: the engine comes back and is still a member.
    let t6 = Instant::now();
    let healed = swarm::up(&d, &t, true)
        .expect("swarm up after the fault")
        .expect("swarm");
    eprintln!(
        "swarm up after the fault {:?}: changes {:?} (phases {:?})",
        t6.elapsed(),
        healed.changes,
        healed.phases
    );
    let after = swarm::checks(&plan);
    let failed: Vec<&SwarmCheck> = after.iter().filter(|c| !c.pass).collect();
    assert!(failed.is_empty(), "after the engine came back: {failed:#?}");
    assert!(
        healed.changes.iter().all(|c| !c.contains("joined")),
        "{:?}",
        healed.changes
    );

    // Teardown: nothing of the lab is left.
    let shim_sockets = |dir: &str| std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0);
    let shims_before = shim_sockets("/run/containerd/s");
    let left_pid2 = leave_container(&plan, 1001);
    let t7 = Instant::now();
    drop(guard);
    eprintln!("lab down with the Swarm {:?}", t7.elapsed());
    assert_gone(&prefix);
    assert_eq!(processes_of(&prefix), Vec::<String>::new());
    for pid in [left_pid, left_pid2] {
        let alive =
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
        assert!(!alive, "container process {pid} survived the teardown");
    }
    let cgroups: Vec<String> = std::fs::read_dir("/sys/fs/cgroup")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join(format!("phoenix-lab-{prefix}")))
                .filter(|p| p.exists())
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(cgroups, Vec::<String>::new(), "container cgroups left");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let ours: Vec<&str> = mounts.lines().filter(|l| l.contains(&prefix)).collect();
    assert!(ours.is_empty(), "mounts left: {ours:?}");
    eprintln!(
        "containerd shim sockets in /run/containerd/s: {shims_before} before, {} after",
        shim_sockets("/run/containerd/s")
    );
}

/// Debug aid: bring the homelab network and Swarm up under `PHX_KEEP_PREFIX` and leave them
/// (`phoenix lab down --prefix …` removes them). Ignored by default.
#[test]
#[ignore]
fn keep_swarm_lab() {
    let Ok(prefix) = std::env::var("PHX_KEEP_PREFIX") else {
        return;
    };
    let d = homelab();
    let t = topology(&d, &prefix).expect("topology");
    realise(&t, false).expect("lab network");
    let state = swarm::up(&d, &t, true).expect("swarm up").expect("swarm");
    eprintln!("{:#?}", state.changes);
}

/// The Swarm on the full `lab up` (ingress, guest firewalls from the model) — what
/// `sync all --target lab` will run. Checks printed; all must pass.
#[test]
fn swarm_on_the_full_lab() {
    if !lab_available() || !dockerd_available() {
        return;
    }
    let prefix = unique_prefix();
    let _guard = LabGuard::new(&prefix);
    let d = homelab();
    phoenix_lab::up(
        &d,
        &phoenix_lab::UpOptions {
            prefix: prefix.clone(),
            recreate: false,
        },
    )
    .expect("lab up");
    let t = topology(&d, &prefix).expect("topology");
    let t0 = Instant::now();
    let state = swarm::up(&d, &t, true).expect("swarm up").expect("swarm");
    let up_time = t0.elapsed();
    let t1 = Instant::now();
    let checks = swarm::checks(&state.plan);
    show(
        &format!("full lab: swarm up {up_time:?}, checks {:?}", t1.elapsed()),
        &checks,
    );
    let failed: Vec<&SwarmCheck> = checks.iter().filter(|c| !c.pass).collect();
    assert!(failed.is_empty(), "failed: {failed:#?}");
}
