//! The provisioning wave on examples/homelab: where it sits, how unchecked steps count, and
//! that an observation of the guests' insides leaves nothing to do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::{execute, homelab};
use phoenix_plan::action::{Action, Reason};
use phoenix_plan::provision::ProvisionOptions;
use phoenix_plan::subsystem::{self, Subsystem};
use phoenix_plan::{ObservedState, Plan, PlanContext, Request};
use phoenix_render::RenderOptions;

fn sync(d: &phoenix_model::model::DesiredState, o: &ObservedState) -> Plan {
    phoenix_plan::plan_full(
        d,
        o,
        &Request::SyncAll,
        &RenderOptions::default(),
        &PlanContext::default(),
        Some(&ProvisionOptions::default()),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn provisions(p: &Plan) -> Vec<&Action> {
    p.actions()
        .filter(|a| matches!(a, Action::Provision { .. }))
        .collect()
}

#[test]
fn provisioning_is_the_last_wave_and_unchecked_steps_count_as_checks() {
    let d = homelab();
    let p = sync(&d, &ObservedState::default());
    let names: Vec<&str> = p.waves.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(
        names.last(),
        Some(&"provisioning inside guests"),
        "{names:?}"
    );
    let files = names.iter().position(|n| *n == "files inside guests");
    assert_eq!(files, Some(names.len() - 2), "{names:?}");
    let steps = provisions(&p);
    assert!(!steps.is_empty());
    assert!(steps.iter().all(|a| matches!(
        a,
        Action::Provision {
            reason: Reason::Unchecked,
            ..
        }
    )));
    assert_eq!(p.summary.check, steps.len());
    assert!(p.notes.iter().any(|n| n.contains("checked at apply time")));
    let guests: BTreeSet<u32> = steps
        .iter()
        .filter_map(|a| a.guest())
        .map(|g| g.0)
        .collect();
    assert_eq!(guests, BTreeSet::from([101, 102, 103, 1001, 1002]));
    // Without provisioning options the plan is exactly what it was.
    let without = phoenix_plan::plan(
        &d,
        &ObservedState::default(),
        &Request::SyncAll,
        &RenderOptions::default(),
    )
    .unwrap();
    assert!(provisions(&without).is_empty());
    assert_eq!(without.summary.check, 0);
}

#[test]
fn observed_insides_plan_only_what_is_missing_and_converge() {
    let d = homelab();
    let first = sync(&d, &ObservedState::default());
    let after = execute(&d, &first, &ObservedState::default());
    let again = sync(&d, &after);
    assert!(provisions(&again).is_empty(), "{:#?}", provisions(&again));
    assert!(again.is_empty(), "{:#?}", again.waves);

    // Drop one done step in 102: exactly that step is planned, as missing.
    let mut drift = after.clone();
    let p102 = drift
        .provisioned
        .iter_mut()
        .find(|p| p.guest.0 == 102)
        .unwrap();
    p102.done.retain(|k| k != "service:traefik");
    let p = sync(&d, &drift);
    let left = provisions(&p);
    assert_eq!(left.len(), 1, "{left:#?}");
    let text = left[0].to_string();
    assert!(text.starts_with("in guest 102: service traefik"), "{text}");
    assert!(text.ends_with("(missing)"), "{text}");

    // A rendered file whose content changed is not done any more.
    let mut changed = after;
    let p101 = changed
        .provisioned
        .iter_mut()
        .find(|p| p.guest.0 == 101)
        .unwrap();
    for k in &mut p101.done {
        if k.starts_with("file:/etc/nginx/") {
            k.push_str("-old");
        }
    }
    let left: Vec<String> = provisions(&sync(&d, &changed))
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(left.len(), 1, "{left:#?}");
    assert!(left[0].contains("/etc/nginx/conf.d/phoenix-gateway.conf"));
}

#[test]
fn provision_steps_belong_to_the_provision_subsystem() {
    let d = homelab();
    let mut p = sync(&d, &ObservedState::default());
    let n = provisions(&p).len();
    assert!(
        provisions(&p)
            .iter()
            .all(|a| subsystem::of_action(a) == Subsystem::Provision)
    );
    subsystem::restrict(&mut p, &BTreeSet::from([Subsystem::Provision]));
    assert_eq!(provisions(&p).len(), n);
    assert_eq!(p.summary.check, n);
}

#[test]
fn plan_text_golden_with_provisioning() {
    let d = homelab();
    let p = sync(&d, &ObservedState::default());
    insta::assert_snapshot!(
        "plan_homelab_provision",
        phoenix_plan::display::text(&p, false)
    );
}

#[test]
fn no_secret_or_key_material_in_the_plan_json() {
    let d = homelab();
    let p = sync(&d, &ObservedState::default());
    let json = serde_json::to_string(&p).unwrap();
    assert!(!json.contains("PRIVATE KEY"));
    assert!(json.contains("\"from\":\"material\""));
}
