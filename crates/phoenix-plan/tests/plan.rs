//! Planner tests on the upstream fixture: ordering, reasons, idempotence against a model
//! executor, planted drift showing up as exactly that action, and the verbs.

mod common;

use common::{desired, execute, homelab};
use phoenix_model::model::{DesiredState, GuestId};
use phoenix_plan::action::Action;
use phoenix_plan::observed::{GuestStatus, ObservedGuest, ObservedState};
use phoenix_plan::{Plan, PlanError, Request, plan};
use phoenix_render::RenderOptions;

fn sync(d: &DesiredState, o: &ObservedState) -> Plan {
    plan(d, o, &Request::SyncAll, &RenderOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn position(p: &Plan, pred: impl Fn(&Action) -> bool) -> Option<usize> {
    p.actions().position(pred)
}

#[test]
fn empty_host_creates_in_dependency_order_and_starts_in_boot_order() {
    let d = desired("rootesting-2025-11-25");
    let p = sync(&d, &ObservedState::default());
    assert!(p.summary.create > 0);
    let created = |id: u32| {
        position(
            &p,
            |a| matches!(a, Action::CreateGuest { id: g, .. } if g.0 == id),
        )
    };
    // 102 depends on 101, which depends on 103; all clone 900.
    let (c900, c103, c101, c102) = (created(900), created(103), created(101), created(102));
    assert!(c900.is_some() && c103.is_some() && c101.is_some() && c102.is_some());
    assert!(c900 < c103 && c103 < c101 && c101 < c102);
    let started = |id: u32| {
        position(
            &p,
            |a| matches!(a, Action::StartGuest { id: g, .. } if g.0 == id),
        )
    };
    // boot_order: 103 → 1, 101 → 2, 102 → 3; templates never start.
    assert!(started(103) < started(101) && started(101) < started(102));
    assert!(started(900).is_none());
    assert!(
        p.actions()
            .all(|a| !matches!(a, Action::DeleteGuest { .. }))
    );
}

#[test]
fn second_plan_after_execution_is_empty() {
    let d = desired("rootesting-2025-11-25");
    let first = sync(&d, &ObservedState::default());
    let after = execute(&d, &first, &ObservedState::default());
    let second = sync(&d, &after);
    assert!(
        second.is_empty(),
        "second plan not empty: {:#?}",
        second.waves
    );
    assert_eq!(
        second.summary.create + second.summary.change + second.summary.delete,
        0
    );
}

#[test]
fn planted_drift_shows_up_as_exactly_that_action() {
    let d = desired("rootesting-2025-11-25");
    let mut o = execute(
        &d,
        &sync(&d, &ObservedState::default()),
        &ObservedState::default(),
    );
    if let Some(g) = o.guests.iter_mut().find(|g| g.id == GuestId(102)) {
        g.config.insert("memory".into(), "512".into());
    }
    if let Some(f) = o
        .files
        .iter_mut()
        .find(|f| f.path == "/etc/network/interfaces")
    {
        f.content = Some("# edited by hand\n".into());
        f.sha256 = None;
    }
    let p = sync(&d, &o);
    let actions: Vec<&Action> = p.actions().collect();
    assert_eq!(actions.len(), 2, "{actions:#?}");
    assert!(actions.iter().any(|a| matches!(a, Action::UpdateGuest { id, set, .. } if id.0 == 102 && set.len() == 1 && set.get("memory").is_some_and(|m| m == "2048"))));
    assert!(
        actions.iter().any(
            |a| matches!(a, Action::WriteFile { path, .. } if path == "/etc/network/interfaces")
        )
    );
    let f = p
        .files
        .iter()
        .find(|f| f.file.path == "/etc/network/interfaces");
    assert!(
        f.and_then(|f| f.diff.as_deref())
            .is_some_and(|d| d.contains("-# edited by hand"))
    );
}

#[test]
fn an_address_change_reads_as_that_field_in_the_text_plan() {
    let d = desired("rootesting-2025-11-25");
    let mut o = execute(
        &d,
        &sync(&d, &ObservedState::default()),
        &ObservedState::default(),
    );
    let Some(net0) = o
        .guests
        .iter_mut()
        .find(|g| g.id == GuestId(102))
        .and_then(|g| g.config.get_mut("net0"))
    else {
        panic!("guest 102 has no net0");
    };
    let desired_net0 = net0.clone();
    let ip = desired_net0
        .split(',')
        .find_map(|f| f.strip_prefix("ip="))
        .unwrap_or_else(|| panic!("no ip= in {desired_net0}"));
    *net0 = desired_net0.replace(&format!("ip={ip}"), "ip=192.0.2.99/24");
    let fields = desired_net0.split(',').count();
    let text = phoenix_plan::display::text(&sync(&d, &o), false);
    assert!(
        text.contains(&format!("      net0.ip: 192.0.2.99/24 → {ip}\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("(net0: {} fields unchanged)", fields - 1)),
        "{text}"
    );
    assert!(!text.contains(&desired_net0), "{text}");
}

#[test]
fn orphans_are_reported_not_deleted() {
    let d = desired("rootesting-2025-11-25");
    let mut o = execute(
        &d,
        &sync(&d, &ObservedState::default()),
        &ObservedState::default(),
    );
    o.guests.push(ObservedGuest {
        id: GuestId(555),
        kind: phoenix_model::model::GuestKind::Lxc,
        status: GuestStatus::Running,
        config: Default::default(),
        raw_lxc: Vec::new(),
        template: false,
        snapshots: Vec::new(),
    });
    let p = sync(&d, &o);
    assert_eq!(p.orphans, vec![GuestId(555)]);
    assert!(p.is_empty());
}

#[test]
fn delete_refuses_while_others_depend() {
    let d = desired("rootesting-2025-11-25");
    let o = execute(
        &d,
        &sync(&d, &ObservedState::default()),
        &ObservedState::default(),
    );
    let r = plan(
        &d,
        &o,
        &Request::Delete {
            ids: vec![GuestId(103)],
            force: false,
        },
        &RenderOptions::default(),
    );
    match r {
        Err(PlanError::HasDependents { dependents, .. }) => {
            assert!(dependents.contains(&GuestId(101)))
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let forced = plan(
        &d,
        &o,
        &Request::Delete {
            ids: vec![GuestId(103)],
            force: true,
        },
        &RenderOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let deleted: Vec<u32> = forced
        .actions()
        .filter_map(|a| match a {
            Action::DeleteGuest { id, .. } => Some(id.0),
            _ => None,
        })
        .collect();
    // Dependents go first, 103 last.
    assert_eq!(deleted.last(), Some(&103));
    assert!(deleted.contains(&102) && deleted.contains(&101));
}

#[test]
fn create_builds_missing_prerequisites_only() {
    let d = desired("rootesting-2025-11-25");
    let p = plan(
        &d,
        &ObservedState::default(),
        &Request::Create(vec![GuestId(102)]),
        &RenderOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut created: Vec<u32> = p
        .actions()
        .filter_map(|a| match a {
            Action::CreateGuest { id, .. } => Some(id.0),
            _ => None,
        })
        .collect();
    created.sort();
    assert_eq!(created, vec![101, 102, 103, 900]);
    assert!(
        p.actions()
            .all(|a| !matches!(a, Action::StartGuest { .. } | Action::WriteFile { .. }))
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    /// From any partially converged state (some guests missing, some drifted or stopped,
    /// some files stale or absent), executing the plan gives a state that plans to nothing.
    #[test]
    fn converges_from_any_partial_state(
        which in 0usize..2,
        keep in proptest::collection::vec(proptest::bool::ANY, 32),
        drift in proptest::collection::vec(0u8..4, 32),
    ) {
        let d = if which == 0 { desired("rootesting-2025-11-25") } else { homelab() };
        let full = execute(&d, &sync(&d, &ObservedState::default()), &ObservedState::default());
        let mut partial = full.clone();
        let ids: Vec<GuestId> = full.guests.iter().map(|g| g.id).collect();
        for (i, id) in ids.iter().enumerate() {
            let k = keep[i % keep.len()];
            if !k {
                partial.guests.retain(|g| g.id != *id);
                continue;
            }
            if let Some(g) = partial.guests.iter_mut().find(|g| g.id == *id) {
                match drift[i % drift.len()] {
                    0 => { g.config.insert("memory".into(), "64".into()); }
                    1 => g.status = GuestStatus::Stopped,
                    2 => { g.config.remove("cores"); }
                    _ => {}
                }
            }
        }
        for (i, f) in partial.files.iter_mut().enumerate() {
            if drift[i % drift.len()] == 3 {
                f.content = Some(String::from("stale\n"));
                f.sha256 = None;
            }
        }
        let p = sync(&d, &partial);
        let after = execute(&d, &p, &partial);
        let again = sync(&d, &after);
        proptest::prop_assert!(again.is_empty(), "not converged: {:#?}", again.waves);
    }
}

#[test]
fn plan_text_golden() {
    for (name, d) in [
        ("homelab", homelab()),
        ("rootesting", desired("rootesting-2025-11-25")),
    ] {
        let p = sync(&d, &ObservedState::default());
        insta::assert_snapshot!(
            format!("plan_{name}"),
            phoenix_plan::display::text(&p, false)
        );
    }
}

/// With a CA: trust wave and certificate decisions on an empty host (the text holds no PEM,
/// so a random scratch CA gives the same text every run).
#[test]
fn plan_text_golden_with_ca() {
    let (ca, _) = common::ca_and_rotated();
    for (name, d) in [
        ("homelab", homelab()),
        ("rootesting", desired("rootesting-2025-11-25")),
    ] {
        let ctx = common::context(&ca, &d, common::T0);
        let p = phoenix_plan::plan_with(
            &d,
            &ObservedState::default(),
            &Request::SyncAll,
            &RenderOptions::default(),
            &ctx,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        insta::assert_snapshot!(
            format!("plan_{name}_ca"),
            phoenix_plan::display::text(&p, false)
        );
    }
}

#[test]
fn shutdown_stops_running_guests_in_reverse_boot_order() {
    let d = desired("rootesting-2025-11-25");
    let first = phoenix_plan::plan(
        &d,
        &ObservedState::default(),
        &Request::LetsGo,
        &RenderOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let running = execute(&d, &first, &ObservedState::default());
    let p = phoenix_plan::plan(&d, &running, &Request::Shutdown, &RenderOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let stopped: Vec<u32> = p
        .actions()
        .filter_map(|a| match a {
            Action::StopGuest { id, .. } => Some(id.0),
            _ => None,
        })
        .collect();
    let started: Vec<u32> = first
        .actions()
        .filter_map(|a| match a {
            Action::StartGuest { id, .. } => Some(id.0),
            _ => None,
        })
        .collect();
    assert!(!stopped.is_empty());
    // Every started guest is stopped, the last started first (boot order 3, 2, 1: 102, 101, 103).
    let mut want = started.clone();
    want.sort();
    let mut got = stopped.clone();
    got.sort();
    assert_eq!(got, want);
    let pos = |id: u32| stopped.iter().position(|g| *g == id).unwrap_or(usize::MAX);
    assert!(pos(102) < pos(101) && pos(101) < pos(103), "{stopped:?}");
    assert!(p.actions().all(|a| matches!(a, Action::StopGuest { .. })));
    // Nothing running: nothing to stop.
    let after = execute(&d, &p, &running);
    let again = phoenix_plan::plan(&d, &after, &Request::Shutdown, &RenderOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(again.is_empty(), "{:#?}", again.waves);
}

/// A verb naming several guests is one plan: `stop 101 102` stops both in reverse boot order,
/// `restart` starts them again in boot order, and `delete` is refused only for dependents that
/// are not named too.
#[test]
fn verbs_take_several_guests_in_one_plan() {
    let d = homelab();
    let empty = ObservedState::default();
    let running = execute(
        &d,
        &plan(&d, &empty, &Request::LetsGo, &RenderOptions::default())
            .unwrap_or_else(|e| panic!("{e}")),
        &empty,
    );
    let ids = |p: &Plan, stop: bool| -> Vec<u32> {
        p.actions()
            .filter_map(|a| match a {
                Action::StopGuest { id, .. } if stop => Some(id.0),
                Action::StartGuest { id, .. } if !stop => Some(id.0),
                _ => None,
            })
            .collect()
    };
    let two = vec![GuestId(102), GuestId(101)];
    let stop = plan(
        &d,
        &running,
        &Request::Stop(two.clone()),
        &RenderOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Boot order: 102 (2) before 101 (3); stopping is the reverse.
    assert_eq!(ids(&stop, true), vec![101, 102]);
    assert!(ids(&stop, false).is_empty());
    let restart = plan(
        &d,
        &running,
        &Request::Restart(two),
        &RenderOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(&restart, true), vec![101, 102]);
    assert_eq!(ids(&restart, false), vec![102, 101]);

    let delete = |ids: &[u32]| {
        plan(
            &d,
            &running,
            &Request::Delete {
                ids: ids.iter().map(|i| GuestId(*i)).collect(),
                force: false,
            },
            &RenderOptions::default(),
        )
    };
    match delete(&[1001]) {
        Err(PlanError::HasDependents { id, dependents }) => {
            assert_eq!((id, dependents), (GuestId(1001), vec![GuestId(1002)]));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let both = delete(&[1001, 1002]).unwrap_or_else(|e| panic!("{e}"));
    let deleted: Vec<u32> = both
        .actions()
        .filter_map(|a| match a {
            Action::DeleteGuest { id, .. } => Some(id.0),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, vec![1002, 1001], "dependents first");
    assert!(matches!(
        plan(
            &d,
            &running,
            &Request::Stop(vec![GuestId(4242)]),
            &RenderOptions::default()
        ),
        Err(PlanError::UnknownGuest(GuestId(4242)))
    ));
}
