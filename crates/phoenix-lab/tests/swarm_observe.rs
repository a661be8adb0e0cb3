//! The Swarm observation against the lab's real two-node Swarm (`examples/homelab`), fed to the
//! pure planner: after `up` (which did init, join, labels and the overlay) the plan has no
//! engine, init, join, role, label or overlay step — the lab and the planner agree on node
//! addresses, labels and the overlay's MTU option; only the stacks' secrets and the stack
//! itself remain (the lab deploys no stack). With the worker's dockerd stopped the observation
//! still succeeds, records the engine as unreachable, and the plan names the worker. The
//! teardown leaves nothing behind. Root and dockerd only; see `common::lab_available`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use phoenix_lab::LabGuard;
use phoenix_lab::swarm::{self, observe::observe};
use phoenix_plan::swarm::{LocalState, SwarmAction, SwarmActionKind, desired, plan};

fn show(title: &str, actions: &[SwarmAction]) {
    eprintln!("{title}:");
    for a in actions {
        eprintln!("  {a}");
    }
}

#[test]
fn observed_lab_swarm_plans_only_what_the_lab_does_not_do() {
    if !lab_available() || !dockerd_available() {
        return;
    }
    let prefix = unique_prefix();
    let guard = LabGuard::new(&prefix);
    let d = homelab_unfiltered();
    let report = lab_up(&d, &prefix);
    let lab = report.swarm.as_ref().expect("swarm").plan.clone();
    let want = desired(&d).expect("the homelab has a Swarm");
    let none = BTreeMap::new();

    let t0 = Instant::now();
    let seen = observe(&lab);
    eprintln!(
        "observe {:?}: {}",
        t0.elapsed(),
        serde_json::to_string_pretty(&seen).unwrap()
    );
    assert_eq!(seen.nodes.len(), 2);
    for n in &seen.nodes {
        assert_eq!(n.engine, Ok(()), "{n:?}");
        assert_eq!(n.local_state, Some(LocalState::Active), "{n:?}");
        let node = want.nodes.iter().find(|w| w.name == n.name).expect("node");
        assert_eq!(n.node_addr, node.advertise_addr.to_string());
        assert_eq!(n.labels, node.labels);
    }
    let cluster = seen.cluster.as_ref().expect("a manager answered");
    assert_eq!(cluster.via, "portainer-manager");
    assert_eq!(cluster.nodes.len(), 2);
    let overlay = cluster
        .networks
        .iter()
        .find(|n| n.name == swarm::OVERLAY_NETWORK)
        .expect("the overlay");
    assert!(overlay.attachable);
    assert_eq!(
        overlay.options.get(phoenix_plan::swarm::MTU_OPTION),
        Some(&want.overlays[0].mtu_option.to_string())
    );

    let actions = plan(&want, &seen, &none, &none);
    show("plan after lab up", &actions);
    use SwarmActionKind::*;
    assert!(
        actions
            .iter()
            .all(|a| !matches!(a.kind, Engine | Init | Join | Role | Label | Overlay)),
        "{actions:#?}"
    );
    // What the lab does not do: the stack's secrets and the stack.
    assert!(
        actions
            .iter()
            .any(|a| a.kind == StackDeploy && a.subject == "production_portainer_service")
    );
    // The admin password is in no secret yet; the TLS secrets of the lab's Portainer stand-in
    // (versions `portainer_tls_cert-<hash>`) are kept, as no content hash was passed in.
    assert!(
        actions
            .iter()
            .any(|a| a.kind == Secret && a.subject == "portainer_admin_password"),
        "{actions:#?}"
    );
    for s in ["portainer_tls_cert", "portainer_tls_key"] {
        let exists = cluster
            .secrets
            .iter()
            .any(|x| x.name.starts_with(&format!("{s}-")));
        let planned = actions.iter().any(|a| a.kind == Secret && a.subject == s);
        assert_eq!(planned, !exists, "{s}: {actions:#?}");
    }

    // The worker's engine stops: the observation still works and the plan names the worker.
    swarm::stop_engine(&lab, 1002, Duration::from_secs(10)).expect("stop engine");
    let t1 = Instant::now();
    let down = observe(&lab);
    eprintln!(
        "observe with the worker's engine stopped: {:?}",
        t1.elapsed()
    );
    let worker = down.node("drphoenix").expect("worker observed");
    assert!(worker.engine.is_err(), "{worker:?}");
    assert_eq!(
        down.node("portainer-manager").expect("manager").engine,
        Ok(())
    );
    assert!(down.cluster.is_some());
    let actions = plan(&want, &down, &none, &none);
    show("plan with the worker's engine stopped", &actions);
    assert!(
        actions.iter().any(|a| matches!(a.kind, Engine | Join)
            && a.subject == "drphoenix"
            && a.reason.contains("drphoenix")),
        "{actions:#?}"
    );
    assert!(
        actions
            .iter()
            .all(|a| !matches!(a.kind, Init | Overlay | Label | Role)),
        "{actions:#?}"
    );

    drop(guard);
    assert_gone(&prefix);
}
