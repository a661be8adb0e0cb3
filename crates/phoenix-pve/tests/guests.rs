//! Guests against fakepve: create `examples/homelab` on an empty node from the planner's calls,
//! a second observe + plan is empty with zero writes, and memory changed behind phoenix's back
//! is exactly one `UpdateGuest`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use common::{FakePve, SECRET, fakepve_available};
use phoenix_model::model::{DesiredState, GuestId};
use phoenix_plan::action::Action;
use phoenix_plan::{Plan, Request};
use phoenix_pve::apply::{ApplyOptions, Outcome, apply_plan};
use phoenix_pve::observe::{Observation, observe_guests};
use phoenix_pve::tls::TlsTrust;
use phoenix_pve::{PveClient, PveError};
use phoenix_render::RenderOptions;
use serde_json::json;

const NODE: &str = "pve1";

fn homelab() -> DesiredState {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    phoenix_model::validate_dir(&dir)
        .desired
        .expect("homelab builds")
}

fn opts() -> RenderOptions {
    RenderOptions { node: NODE.into() }
}

fn storages(plan: &Plan) -> serde_json::Value {
    common::storages_for(plan)
}

fn print_journal(journal: &phoenix_pve::apply::Journal) {
    for e in &journal.entries {
        println!("  [{}] {} → {}", e.wave, e.action, e.outcome);
    }
}

fn apply_options() -> ApplyOptions<'static> {
    ApplyOptions {
        parallelism: 4,
        shell: None,
        image_store: Some("local".into()),
        issuer: None,
    }
}

fn observe(client: &PveClient, d: &DesiredState) -> Observation {
    let managed: BTreeSet<GuestId> = d.guests.keys().copied().collect();
    observe_guests(client, &managed, 4).expect("observe")
}

fn guest_actions(plan: &Plan) -> Vec<&Action> {
    plan.actions().filter(|a| is_guest_api_action(a)).collect()
}

fn is_guest_api_action(a: &Action) -> bool {
    matches!(
        a,
        Action::CreateGuest { .. }
            | Action::UpdateGuest { .. }
            | Action::StartGuest { .. }
            | Action::StopGuest { .. }
            | Action::DeleteGuest { .. }
            | Action::ConvertToTemplate { .. }
    )
}

#[test]
fn homelab_guests_create_noop_and_drift() {
    if !fakepve_available() {
        return;
    }
    let d = homelab();
    let empty_plan = phoenix_plan::plan(
        &d,
        &phoenix_plan::ObservedState::default(),
        &Request::SyncAll,
        &opts(),
    )
    .unwrap();
    let pve = FakePve::start(&storages(&empty_plan));
    let client = pve.client(TlsTrust::CaFile(pve.pki.ca_pem.clone()));

    // (b) empty node → plan → apply the guest waves.
    let obs = observe(&client, &d);
    assert!(obs.state.guests.is_empty(), "{:?}", obs.state.guests);
    let plan = phoenix_plan::plan(&d, &obs.state, &Request::SyncAll, &opts()).unwrap();
    assert!(!guest_actions(&plan).is_empty());
    let journal = apply_plan(&client, &plan, &obs, &apply_options());
    let mut report = Vec::new();
    for e in &journal.entries {
        if let Outcome::NeedsHostStep { what } = &e.outcome {
            report.push(format!(
                "{}: {:?}: needs host step: {what}",
                e.wave,
                e.action.guest()
            ));
        }
        if let Outcome::Failed(err) = &e.outcome {
            assert!(!err.to_string().contains(SECRET));
            assert!(!format!("{err:?}").contains(SECRET));
            report.push(format!("{}: {:?}: {err}", e.wave, e.action.guest()));
        }
    }
    assert!(report.is_empty(), "failed actions:\n{}", report.join("\n"));
    print_journal(&journal);
    assert!(journal.is_success(), "{:?}", journal.failed_wave);
    let no_400 = journal
        .failures()
        .all(|(_, e)| !matches!(e, PveError::Parameters { .. }));
    assert!(no_400);

    // (c) observe again: no guest actions, and the no-op run writes nothing.
    let before = client.counts();
    let start = Instant::now();
    let obs = observe(&client, &d);
    let plan = phoenix_plan::plan(&d, &obs.state, &Request::SyncAll, &opts()).unwrap();
    let wall = start.elapsed();
    let used = client.counts().since(before);
    println!(
        "no-op observe+plan: {} requests, {} writes, {} retries, {:?} wall ({} managed guests)",
        used.requests,
        used.writes,
        used.retries,
        wall,
        d.guests.len()
    );
    assert_eq!(used.writes, 0);
    let left: Vec<String> = guest_actions(&plan)
        .iter()
        .map(|a| format!("{a:?}"))
        .collect();
    assert!(
        left.is_empty(),
        "second plan not empty:\n{}",
        left.join("\n")
    );

    // (d) drift: memory changed behind phoenix's back → exactly that UpdateGuest.
    let (&id, guest) = obs
        .state
        .guests
        .iter()
        .map(|g| (&g.id, g))
        .find(|(_, g)| g.config.contains_key("memory"))
        .expect("a guest with memory");
    let seg = phoenix_pve::observe::kind_segment(guest.kind);
    let old: u64 = guest.config["memory"].parse().unwrap();
    let path = format!("/nodes/{NODE}/{seg}/{id}/config");
    let params = BTreeMap::from([("memory".to_string(), (old + 512).to_string())]);
    client
        .write_and_wait(reqwest::Method::PUT, &path, &params)
        .expect("drift write");
    let obs = observe(&client, &d);
    let plan = phoenix_plan::plan(&d, &obs.state, &Request::SyncAll, &opts()).unwrap();
    let actions = guest_actions(&plan);
    assert_eq!(actions.len(), 1, "{actions:#?}");
    match actions[0] {
        Action::UpdateGuest {
            id: got,
            set,
            delete,
            ..
        } => {
            assert_eq!(*got, id);
            assert_eq!(set.keys().collect::<Vec<_>>(), vec!["memory"]);
            assert_eq!(set["memory"], old.to_string());
            assert!(delete.is_empty());
        }
        other => panic!("expected UpdateGuest, got {other:?}"),
    }
    // Converge it back (with the digest) and the plan is empty again.
    let journal = apply_plan(&client, &plan, &obs, &apply_options());
    assert!(journal.is_success());
    let obs = observe(&client, &d);
    let plan = phoenix_plan::plan(&d, &obs.state, &Request::SyncAll, &opts()).unwrap();
    assert!(guest_actions(&plan).is_empty());
    let total = client.counts();
    println!(
        "whole test: {} requests, {} writes, {} retries",
        total.requests, total.writes, total.retries
    );
}

/// Lock timeouts are retried, a task status 404 right after the UPID is tolerated; a persistent failure stops the run after its wave, and the
/// journal says what was done, what failed and what never started. A 400 names the parameter.
#[test]
fn failures_are_retried_or_journaled() {
    if !fakepve_available() {
        return;
    }
    let d = homelab();
    let empty = phoenix_plan::ObservedState::default();
    let plan = phoenix_plan::plan(&d, &empty, &Request::SyncAll, &opts()).unwrap();
    let failures = json!([
        {"method": "POST", "suffix": "/nodes/pve1/lxc", "status": 500, "times": 2,
         "message": "can't lock file '/var/lock/lxc/lock-103.conf' - got timeout"},
        // A fresh UPID that 404s briefly is tolerated by the task poll.
        {"method": "GET", "suffix": "/status", "status": 404, "times": 2,
         "message": "no such task"},
        {"method": "POST", "suffix": "/nodes/pve1/qemu", "status": 500,
         "message": "storage 'local-lvm' is not online"},
    ]);
    let pve = FakePve::start_with_failures(&storages(&plan), &failures);
    let mut client = pve.client(TlsTrust::CaFile(pve.pki.ca_pem.clone()));
    client.retry.initial_delay = std::time::Duration::from_millis(10);
    let obs = observe(&client, &d);
    let journal = apply_plan(&client, &plan, &obs, &apply_options());
    print_journal(&journal);
    assert!(client.counts().retries >= 2, "{:?}", client.counts());
    let failed_wave = journal.failed_wave.clone().expect("the qemu create fails");
    let failed: Vec<_> = journal.failures().collect();
    assert!(!failed.is_empty());
    for (action, err) in &failed {
        assert!(matches!(action, Action::CreateGuest { .. }), "{action:?}");
        assert!(matches!(err, PveError::Http { status: 500, .. }), "{err:?}");
        assert!(!format!("{err:?}").contains(SECRET));
    }
    // Nothing after the failed wave started; every action has an entry.
    assert_eq!(journal.entries.len(), plan.actions().count());
    let mut seen = false;
    for e in &journal.entries {
        seen |= e.wave == failed_wave;
        if seen && e.wave != failed_wave {
            assert!(matches!(e.outcome, Outcome::NotStarted), "{}", e.action);
        }
    }
    // The wave's independent guests (containers) still completed.
    assert!(journal.entries.iter().any(|e| e.wave == failed_wave
        && matches!(e.action, Action::CreateGuest { .. })
        && matches!(e.outcome, Outcome::Done)));

    // HTTP 400: the error names the rejected parameter.
    let path = format!("/nodes/{NODE}/lxc/101/config");
    let params = BTreeMap::from([("memory".to_string(), "lots".to_string())]);
    let err = client
        .write_and_wait(reqwest::Method::PUT, &path, &params)
        .expect_err("bad memory");
    println!("400: {err}");
    assert_eq!(err.rejected_parameters(), vec!["memory"]);
}
