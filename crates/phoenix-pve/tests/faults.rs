//! fakepve's failure and slowness modes against the library (fakepve as an external process,
//! modes switched through the launcher's control lines): replies that never come, dropped
//! connections, lock timeouts and tasks that never finish. The client retries what is safe to
//! retry (reads; writes that provably did nothing), counts the retries, never sends a create
//! twice, and gives up at its deadlines with an error that names the request or the task; the
//! journal has an entry for every action and says where the run stopped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{FakePve, fakepve_available};
use phoenix_model::model::{DesiredState, GuestId, GuestKind};
use phoenix_plan::action::Action;
use phoenix_plan::{Plan, Request};
use phoenix_pve::apply::{ApplyOptions, Journal, Outcome, apply_plan};
use phoenix_pve::observe::{Observation, observe_guests};
use phoenix_pve::tls::TlsTrust;
use phoenix_pve::{PveClient, PveError};
use phoenix_render::RenderOptions;
use reqwest::Method;
use serde_json::json;

fn homelab() -> DesiredState {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    phoenix_model::validate_dir(&dir)
        .desired
        .expect("homelab builds")
}

fn opts() -> RenderOptions {
    RenderOptions {
        node: "pve1".into(),
    }
}

fn storages(plan: &Plan) -> serde_json::Value {
    common::storages_for(plan)
}

fn start() -> (FakePve, DesiredState) {
    let d = homelab();
    let plan = plan_for(&d, &Observation::default());
    (FakePve::start(&storages(&plan)), d)
}

/// A client with short deadlines, so the faults show in seconds.
fn client(pve: &FakePve) -> PveClient {
    let mut c = pve.client(TlsTrust::CaFile(pve.pki.ca_pem.clone()));
    c.retry.initial_delay = Duration::from_millis(20);
    c.retry.max_delay = Duration::from_millis(100);
    c.request_timeout = Duration::from_secs(2);
    c
}

fn observe(client: &PveClient, d: &DesiredState) -> Observation {
    let managed: BTreeSet<GuestId> = d.guests.keys().copied().collect();
    observe_guests(client, &managed, 4).expect("observe")
}

fn plan_for(d: &DesiredState, obs: &Observation) -> Plan {
    phoenix_plan::plan(d, &obs.state, &Request::SyncAll, &opts()).unwrap()
}

fn options() -> ApplyOptions<'static> {
    ApplyOptions {
        parallelism: 4,
        shell: None,
        image_store: Some("local".into()),
        issuer: None,
    }
}

fn print_journal(label: &str, j: &Journal) {
    println!("{label}: failed wave {:?}", j.failed_wave);
    for e in &j.entries {
        println!("  [{}] {} → {}", e.wave, e.action, e.outcome);
    }
}

/// Every action has an entry, in plan order; after the failed wave nothing started; the
/// failed wave has a failure.
fn assert_journal_complete(plan: &Plan, j: &Journal) {
    let planned: Vec<&Action> = plan.actions().collect();
    assert_eq!(planned.len(), j.entries.len(), "an action without an entry");
    for (a, e) in planned.iter().zip(&j.entries) {
        assert_eq!(**a, e.action, "journal order");
    }
    if let Some(failed) = &j.failed_wave {
        let mut seen = false;
        for e in &j.entries {
            if &e.wave == failed {
                seen = true;
            } else if seen {
                assert!(
                    matches!(e.outcome, Outcome::NotStarted),
                    "{} after the failed wave: {}",
                    e.action,
                    e.outcome
                );
            }
        }
        assert!(
            j.entries
                .iter()
                .any(|e| &e.wave == failed && e.outcome.is_blocking()),
            "the failed wave has a failed entry"
        );
    }
}

fn guest_api_actions(plan: &Plan) -> Vec<&Action> {
    plan.actions()
        .filter(|a| {
            matches!(
                a,
                Action::CreateGuest { .. }
                    | Action::UpdateGuest { .. }
                    | Action::StartGuest { .. }
                    | Action::StopGuest { .. }
                    | Action::DeleteGuest { .. }
                    | Action::ConvertToTemplate { .. }
            )
        })
        .collect()
}

/// Converge the homelab on a clean network.
fn converge(client: &PveClient, d: &DesiredState) {
    let obs = observe(client, d);
    let plan = plan_for(d, &obs);
    let j = apply_plan(client, &plan, &obs, &options());
    print_journal("converge", &j);
    assert!(j.is_success());
    let obs = observe(client, d);
    assert!(guest_api_actions(&plan_for(d, &obs)).is_empty());
}

fn is_timeout(e: &PveError) -> bool {
    matches!(e, PveError::Transport { source, .. } if source.is_timeout())
}

/// A reply that never comes: a `GET` gives up at the request deadline and is retried (counted);
/// a `POST` create is sent exactly once (its reply was lost: it may have been applied).
#[test]
fn hung_replies_time_out_reads_are_retried_creates_are_not_resent() {
    if !fakepve_available() {
        return;
    }
    let (pve, _) = start();
    let mut c = client(&pve);
    c.request_timeout = Duration::from_millis(700);
    c.retry.max_attempts = 3;
    pve.control(&json!({"op": "flaky", "hang_rate": 1.0, "hang_secs": 3, "seed": 1}));

    let before = c.counts();
    let t = Instant::now();
    let err = c.get("/version", &[]).expect_err("every reply hangs");
    let took = t.elapsed();
    let used = c.counts().since(before);
    println!("GET under hangs: {err} after {took:?}, {used:?}");
    assert!(is_timeout(&err), "{err:?}");
    assert!(err.to_string().contains("GET /version"), "{err}");
    assert_eq!(used.requests, 3);
    assert_eq!(used.retries, 2, "retries are counted");
    assert!(
        took < Duration::from_secs(5),
        "{took:?}: the deadline holds"
    );

    let before = c.counts();
    let params = BTreeMap::from([
        ("vmid".to_string(), "150".to_string()),
        ("name".to_string(), "hung-create".to_string()),
        ("memory".to_string(), "512".to_string()),
    ]);
    let err = c
        .write_and_wait(Method::POST, "/nodes/pve1/qemu", &params)
        .expect_err("the reply hangs");
    let used = c.counts().since(before);
    println!("POST under hangs: {err}, {used:?}");
    assert!(is_timeout(&err), "{err:?}");
    assert!(err.to_string().contains("POST /nodes/pve1/qemu"), "{err}");
    assert_eq!(
        used.requests, 1,
        "a create whose reply was lost is not resent"
    );
    assert_eq!(used.retries, 0);

    pve.control(&json!({"op": "flaky"}));
    // fakepve drops a hung request when the client hangs up (a real node may still act on
    // it: hence no resend). Nothing was created, and the next plan simply creates it.
    std::thread::sleep(Duration::from_secs(3));
    assert!(c.get("/nodes/pve1/qemu/150/config", &[]).is_err());
    let creates = pve
        .requests()
        .into_iter()
        .filter(|(m, p)| m == "POST" && p.ends_with("/nodes/pve1/qemu"))
        .count();
    assert_eq!(creates, 0, "the hung create was not resent");
}

/// Slow responses (latency above the request deadline): every attempt times out, the retries
/// are counted and the error says which request.
#[test]
fn responses_slower_than_the_deadline_fail_with_the_request_named() {
    if !fakepve_available() {
        return;
    }
    let (pve, _) = start();
    let mut c = client(&pve);
    c.request_timeout = Duration::from_millis(500);
    c.retry.max_attempts = 4;
    pve.control(&json!({"op": "time_scale", "value": 1.0}));
    pve.control(&json!({"op": "slow", "latency": 2.0}));
    let before = c.counts();
    let err = c
        .get("/nodes/pve1/lxc", &[])
        .expect_err("slower than the deadline");
    let used = c.counts().since(before);
    println!("slow network: {err}; {used:?}");
    assert!(is_timeout(&err), "{err:?}");
    assert!(err.to_string().contains("GET /nodes/pve1/lxc"), "{err}");
    assert_eq!((used.requests, used.retries), (4, 3));
    // Within the deadline, the same request works.
    c.request_timeout = Duration::from_secs(10);
    c.get("/nodes/pve1/lxc", &[]).expect("a patient client");
}

/// Dropped connections while a whole sync runs (fakepve closes a quarter of the connections
/// before acting on them): reads are retried; a write that lost its connection fails its
/// action, the wave finishes and later waves do not start; every action has an entry. Once the
/// network is good again, the next runs converge and every guest was created exactly once.
#[test]
fn dropped_connections_during_a_sync_are_journaled_and_creates_happen_once() {
    if !fakepve_available() {
        return;
    }
    let (pve, d) = start();
    let c = client(&pve);
    pve.control(&json!({"op": "flaky", "drop_rate": 0.25, "seed": 7}));
    let obs = observe(&c, &d);
    let plan = plan_for(&d, &obs);
    let j = apply_plan(&c, &plan, &obs, &options());
    print_journal("flaky run", &j);
    let counts = c.counts();
    println!("flaky run: {counts:?}");
    assert!(counts.retries > 0, "dropped reads were retried: {counts:?}");
    assert_journal_complete(&plan, &j);
    for (action, err) in j.failures() {
        // Only a write whose connection dropped fails (reads are retried).
        let text = err.to_string();
        assert!(
            matches!(err, PveError::Transport { method, .. } if method != "GET"),
            "{action}: {text}"
        );
        let id = action.guest().expect("a guest action");
        assert!(
            text.contains(&format!("/{id}")) || matches!(action, Action::CreateGuest { .. }),
            "{action}: {text}"
        );
    }

    pve.control(&json!({"op": "flaky"}));
    let mut runs = 0;
    loop {
        let obs = observe(&c, &d);
        let plan = plan_for(&d, &obs);
        if guest_api_actions(&plan).is_empty() {
            break;
        }
        runs += 1;
        assert!(runs <= 2, "still not converged after {runs} clean runs");
        let j = apply_plan(&c, &plan, &obs, &options());
        print_journal("clean run", &j);
        assert!(j.is_success());
    }
    // Every planned guest was created by exactly one create request that reached fakepve
    // (a dropped POST never did; none was resent after it did).
    let requests = pve.requests();
    for kind in [GuestKind::Lxc, GuestKind::Vm] {
        let seg = if kind == GuestKind::Lxc {
            "lxc"
        } else {
            "qemu"
        };
        let fresh = d
            .guests
            .values()
            .filter(|g| {
                g.kind == kind
                    && !matches!(g.source, phoenix_model::model::GuestSource::Clone { .. })
            })
            .count();
        let posts = requests
            .iter()
            .filter(|(m, p)| m == "POST" && p.ends_with(&format!("/nodes/pve1/{seg}")))
            .count();
        println!("{seg}: {posts} create requests for {fresh} guests");
        assert_eq!(posts, fresh, "{seg} creates");
    }
}

/// Lock errors: another task holds 102's config lock. The update's `got timeout` is retried
/// (counted) and then fails naming the guest's config path; once the lock is free the same
/// plan succeeds.
#[test]
fn held_lock_is_retried_then_journaled() {
    if !fakepve_available() {
        return;
    }
    let (pve, d) = start();
    let c = client(&pve);
    converge(&c, &d);
    let mut params = BTreeMap::from([("memory".to_string(), "4096".to_string())]);
    c.write_and_wait(Method::PUT, "/nodes/pve1/lxc/102/config", &params)
        .unwrap();
    pve.control(&json!({"op": "hold_lock", "vmid": 102, "secs": null}));
    let obs = observe(&c, &d);
    let plan = plan_for(&d, &obs);
    assert_eq!(guest_api_actions(&plan).len(), 1);
    let before = c.counts();
    let j = apply_plan(&c, &plan, &obs, &options());
    print_journal("locked", &j);
    let used = c.counts().since(before);
    assert_journal_complete(&plan, &j);
    let failed: Vec<_> = j.failures().collect();
    assert_eq!(failed.len(), 1);
    let (action, err) = failed[0];
    assert_eq!(action.guest(), Some(GuestId(102)));
    let text = err.to_string();
    assert!(
        text.contains("/lxc/102/config") && text.contains("got timeout"),
        "{text}"
    );
    assert!(
        matches!(err, PveError::Http { status: 500, attempts, .. } if *attempts == c.retry.max_attempts),
        "{err:?}"
    );
    assert_eq!(
        used.retries,
        u64::from(c.retry.max_attempts - 1),
        "{used:?}"
    );
    assert!(j.failed_wave.is_some());

    pve.control(&json!({"op": "release_lock", "vmid": 102}));
    let obs = observe(&c, &d);
    let plan = plan_for(&d, &obs);
    let j = apply_plan(&c, &plan, &obs, &options());
    assert!(j.is_success());
    params.insert("memory".into(), String::new());
    let cfg = c.get("/nodes/pve1/lxc/102/config", &[]).unwrap();
    assert_ne!(cfg["memory"].to_string().trim_matches('"'), "4096");
}

/// A task that never finishes before the client's deadline (a container start that takes
/// 1000 s): the action fails with a task timeout naming the UPID (type and guest), the wave's
/// other guests complete, the later waves are not started.
#[test]
fn task_past_its_deadline_stops_the_wave() {
    if !fakepve_available() {
        return;
    }
    let (pve, d) = start();
    let mut c = client(&pve);
    converge(&c, &d);
    c.write_and_wait(
        Method::POST,
        "/nodes/pve1/lxc/102/status/stop",
        &BTreeMap::new(),
    )
    .unwrap();
    pve.control(&json!({"op": "guest_attr", "vmid": 102, "attr": "start_secs", "value": 1000}));
    pve.control(&json!({"op": "time_scale", "value": 1.0}));
    c.task.deadline = Duration::from_millis(1500);
    let obs = observe(&c, &d);
    let plan = plan_for(&d, &obs);
    let t = Instant::now();
    let j = apply_plan(&c, &plan, &obs, &options());
    let took = t.elapsed();
    print_journal("slow start", &j);
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_journal_complete(&plan, &j);
    let failed: Vec<_> = j.failures().collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let (action, err) = failed[0];
    assert!(
        matches!(
            action,
            Action::StartGuest {
                id: GuestId(102),
                ..
            }
        ),
        "{action}"
    );
    let PveError::TaskTimeout { upid, waited } = err else {
        panic!("{err:?}")
    };
    assert!(upid.contains(":vzstart:102:"), "{upid}");
    assert!(
        *waited >= Duration::from_millis(1500),
        "polled up to the deadline: {waited:?}"
    );
    assert!(err.to_string().contains("still running"), "{err}");
    assert!(j.failed_wave.is_some());
}
