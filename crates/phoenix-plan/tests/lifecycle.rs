//! Lifecycle and template snapshots on the operator's configuration (rootesting): templates
//! that take snapshots are snapshotted when created and never converted, clones from `ID@snapshot` come after the
//! snapshot, `final-form` follows provisioning, a second plan takes nothing, and a clone whose
//! snapshot nothing takes is a located error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{desired, execute};
use phoenix_model::model::{DesiredState, GuestId};
use phoenix_plan::action::{Action, CreateVia};
use phoenix_plan::observed::{GuestStatus, ObservedGuest};
use phoenix_plan::provision::ProvisionOptions;
use phoenix_plan::{ObservedState, Plan, PlanContext, PlanError, Request};
use phoenix_render::RenderOptions;

fn sync(d: &DesiredState, o: &ObservedState, provision: bool) -> Result<Plan, PlanError> {
    phoenix_plan::plan_full(
        d,
        o,
        &Request::SyncAll,
        &RenderOptions::default(),
        &PlanContext::default(),
        provision.then(ProvisionOptions::default).as_ref(),
    )
}

/// (wave index, action) of every action, in plan order.
fn indexed(p: &Plan) -> Vec<(usize, &Action)> {
    p.waves
        .iter()
        .enumerate()
        .flat_map(|(i, w)| w.actions.iter().map(move |a| (i, a)))
        .collect()
}

fn position(p: &Plan, f: impl Fn(&Action) -> bool) -> (usize, usize) {
    indexed(p)
        .into_iter()
        .enumerate()
        .find(|(_, (_, a))| f(a))
        .map(|(n, (w, _))| (w, n))
        .unwrap_or_else(|| {
            panic!(
                "not in the plan:\n{}",
                p.waves
                    .iter()
                    .map(|w| w.name.clone())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })
}

fn snap(id: u32, name: &'static str) -> impl Fn(&Action) -> bool {
    move |a| matches!(a, Action::TakeSnapshot { id: i, name: n, .. } if *i == GuestId(id) && n == name)
}

#[test]
fn templates_snapshot_before_conversion_and_clones_follow() {
    let d = desired("rootesting-2025-11-25");
    let p = sync(&d, &ObservedState::default(), true).unwrap();
    // 901 is a template with lifecycle snapshots: both taken in its creation wave, and it is
    // not converted (Proxmox converts no guest holding snapshots; PHX-W044 says so).
    for name in ["pre-configured", "final-form"] {
        let (w, _) = position(&p, snap(901, name));
        let (wc, _) = position(&p, |a| {
            matches!(
                a,
                Action::CreateGuest {
                    id: GuestId(901),
                    ..
                }
            )
        });
        assert_eq!(w, wc, "{name} of 901 is in 901's creation wave");
    }
    assert!(!p.actions().any(|a| matches!(
        a,
        Action::ConvertToTemplate {
            id: GuestId(901),
            ..
        }
    )));
    assert!(!p.actions().any(|a| matches!(
        a,
        Action::StartGuest {
            id: GuestId(901),
            ..
        }
    )));
    // 910 clones 901@final-form: a later wave than the snapshot.
    let (w910, _) = position(
        &p,
        |a| matches!(a, Action::CreateGuest { id: GuestId(910), via: CreateVia::Clone { from: GuestId(901), snapshot: Some(s) }, .. } if s == "final-form"),
    );
    assert!(w910 > position(&p, snap(901, "final-form")).0);
    // 101 (not a template): pre-configured in its creation wave, final-form after provisioning.
    let (wpre, _) = position(&p, snap(101, "pre-configured"));
    let (wcreate, _) = position(&p, |a| {
        matches!(
            a,
            Action::CreateGuest {
                id: GuestId(101),
                ..
            }
        )
    });
    assert_eq!(wpre, wcreate);
    let (wfinal, _) = position(&p, snap(101, "final-form"));
    let last_provision = indexed(&p)
        .into_iter()
        .filter(|(_, a)| {
            matches!(
                a,
                Action::Provision {
                    guest: GuestId(101),
                    ..
                }
            )
        })
        .map(|(w, _)| w)
        .max()
        .expect("101 has provision steps");
    assert!(wfinal > last_provision, "final-form after provisioning");
    let text = phoenix_plan::display::text(&p, false);
    assert!(
        text.contains("take snapshot final-form of lxc 101 (missing)"),
        "{text}"
    );
    let json = serde_json::to_value(&p).unwrap();
    assert!(json.to_string().contains(r#""action":"take_snapshot""#));
    // Guests without lifecycle snapshots get none (801).
    assert!(!p.actions().any(|a| matches!(
        a,
        Action::TakeSnapshot {
            id: GuestId(801),
            ..
        }
    )));
}

#[test]
fn a_second_plan_takes_nothing() {
    let d = desired("rootesting-2025-11-25");
    let first = sync(&d, &ObservedState::default(), true).unwrap();
    let taken = first
        .actions()
        .filter(|a| matches!(a, Action::TakeSnapshot { .. }))
        .count();
    assert!(taken > 10, "{taken}");
    // The model executor refuses a snapshot of a template or one taken twice.
    let after = execute(&d, &first, &ObservedState::default());
    let second = sync(&d, &after, true).unwrap();
    let again: Vec<String> = second
        .actions()
        .filter(|a| matches!(a, Action::TakeSnapshot { .. }))
        .map(|a| a.to_string())
        .collect();
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn without_provisioning_final_form_waits_with_a_note() {
    let d = desired("rootesting-2025-11-25");
    let p = sync(&d, &ObservedState::default(), false).unwrap();
    assert!(!p.actions().any(snap(101, "final-form")));
    assert!(p.actions().any(snap(101, "pre-configured")));
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("101@final-form") && n.contains("--provision")),
        "{:?}",
        p.notes
    );
}

fn observed_template(id: u32, snapshots: &[&str]) -> ObservedGuest {
    ObservedGuest {
        id: GuestId(id),
        kind: phoenix_model::model::GuestKind::Lxc,
        status: GuestStatus::Stopped,
        config: Default::default(),
        raw_lxc: Vec::new(),
        template: true,
        snapshots: snapshots.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn a_clone_of_a_missing_snapshot_is_an_error_naming_both() {
    let d = desired("rootesting-2025-11-25");
    // 901 exists as a template without final-form: nothing can take it any more.
    let mut o = ObservedState::default();
    o.guests.push(observed_template(901, &["pre-configured"]));
    let e = sync(&d, &o, true).unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            e,
            PlanError::CloneSnapshot {
                from: GuestId(901),
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("901@final-form")
            && text.contains("template cannot be snapshotted")
            && text.contains("hint"),
        "{text}"
    );
    // With the snapshot there the plan clones from it and takes nothing of 901.
    o.guests[0] = observed_template(901, &["pre-configured", "final-form"]);
    let p = sync(&d, &o, true).unwrap();
    assert!(!p.actions().any(|a| matches!(
        a,
        Action::TakeSnapshot {
            id: GuestId(901),
            ..
        }
    )));
    assert!(p.actions().any(|a| matches!(
        a,
        Action::CreateGuest {
            id: GuestId(910),
            ..
        }
    )));
}
