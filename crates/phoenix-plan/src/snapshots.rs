//! Lifecycle and template snapshots: which snapshots a guest's creation wave takes (a
//! template's all, and it is then not converted: Proxmox converts no guest holding
//! snapshots; `pre-configured` otherwise), which wait for
//! provisioning (`final-form`), and whether every clone `ID@snapshot` finds its snapshot
//! taken before it. A snapshot that exists is never taken again nor deleted. No I/O.

use phoenix_model::model::{DesiredState, Guest, GuestId, GuestSource, SNAPSHOT_PRE_CONFIGURED};

use crate::action::{Action, Reason};
use crate::observed::ObservedState;
use crate::plan_types::PlanError;

/// The snapshots taken right after the guest is created and configured (before
/// provisioning), minus those it has. Empty for an existing template:
/// Proxmox cannot snapshot one.
pub fn at_creation(g: &Guest, observed: &ObservedState) -> Vec<String> {
    let o = observed.guest(g.id);
    if o.is_some_and(|o| o.template) {
        return Vec::new();
    }
    g.snapshots()
        .into_iter()
        .filter(|s| g.is_template || *s == SNAPSHOT_PRE_CONFIGURED)
        .filter(|s| o.is_none_or(|o| !o.snapshots.iter().any(|h| h == s)))
        .map(str::to_string)
        .collect()
}

/// The snapshots taken once the guest's provisioning completes (`final-form` of a guest that
/// is not a template), minus those it has.
pub fn after_provisioning(g: &Guest, observed: &ObservedState) -> Vec<String> {
    if g.is_template {
        return Vec::new();
    }
    let o = observed.guest(g.id);
    g.snapshots()
        .into_iter()
        .filter(|s| *s != SNAPSHOT_PRE_CONFIGURED)
        .filter(|s| o.is_none_or(|o| !o.snapshots.iter().any(|h| h == s)))
        .map(str::to_string)
        .collect()
}

/// The action for one snapshot.
pub fn take(g: &Guest, name: String) -> Action {
    Action::TakeSnapshot {
        id: g.id,
        kind: g.kind,
        name,
        reason: Reason::Missing,
    }
}

/// Every clone this plan creates from `ID@snapshot` needs that snapshot before it: it exists,
/// or the source's creation wave (a level before the clone's) takes it. Otherwise a
/// [`PlanError::CloneSnapshot`] naming the clone, its source, the snapshot and the fix.
pub fn check_clones(
    d: &DesiredState,
    observed: &ObservedState,
    creating: &[GuestId],
) -> Result<(), PlanError> {
    for id in creating {
        let Some(g) = d.guests.get(id) else { continue };
        let GuestSource::Clone {
            from,
            snapshot: Some(snap),
        } = &g.source
        else {
            continue;
        };
        let Some(src) = d.guests.get(from) else {
            continue;
        };
        let has = observed
            .guest(*from)
            .is_some_and(|o| o.snapshots.iter().any(|s| s == snap));
        if has || at_creation(src, observed).iter().any(|s| s == snap) {
            continue;
        }
        let (why, hint) = if after_provisioning(src, observed).iter().any(|s| s == snap) {
            (
                format!(
                    "{from} takes `{snap}` only after its provisioning, which runs after {id} is created"
                ),
                format!(
                    "make {from} a template (\"is_template\": true: its snapshots are taken when it is created), or clone {from}'s current state by removing `template_snapshot_name` from {id}"
                ),
            )
        } else if observed.guest(*from).is_some_and(|o| o.template) {
            (
                format!(
                    "{from} is a template without `{snap}`, and a template cannot be snapshotted"
                ),
                format!(
                    "delete {from} and let phoenix recreate it: a template that takes `{snap}` stays a guest holding it (PHX-W044); or remove `template_snapshot_name` from {id} to clone {from}'s current state"
                ),
            )
        } else {
            (
                format!("{from} has no snapshot `{snap}` and nothing in this plan takes it"),
                format!(
                    "give {from} \"template_snapshot_name\": \"{snap}\" as a template (or \"enable_lifecycle_snapshots\": true for `pre-configured` / `final-form`), or remove `template_snapshot_name` from {id}"
                ),
            )
        };
        return Err(PlanError::CloneSnapshot {
            id: *id,
            from: *from,
            snapshot: snap.clone(),
            why,
            hint,
        });
    }
    Ok(())
}
