//! The plan's guest actions: create, update key by key, grow the disk, raw `lxc.*` lines,
//! template conversion; starts in boot order and stops; a disk larger than configured noted.
//! Pure, no I/O.

use std::collections::{BTreeMap, BTreeSet};

use phoenix_model::model::{DesiredState, GuestId};

use crate::action::{Action, KeyChange, Reason};
use crate::observed::{GuestStatus, ObservedState};
use crate::order;
use crate::plan_types::{PlanError, Wave};
use crate::spec::GuestSpec;

pub(crate) fn known(d: &DesiredState, id: GuestId) -> Result<(), PlanError> {
    if d.guests.contains_key(&id) {
        Ok(())
    } else {
        Err(PlanError::UnknownGuest(id))
    }
}

pub(crate) fn stop_action(
    d: &DesiredState,
    observed: &ObservedState,
    id: GuestId,
    reason: Reason,
) -> Option<Action> {
    let g = d.guests.get(&id)?;
    let o = observed.guest(id)?;
    (o.status == GuestStatus::Running).then_some(Action::StopGuest {
        id,
        kind: g.kind,
        reason,
    })
}

pub(crate) fn push_starts(
    d: &DesiredState,
    observed: &ObservedState,
    ids: &BTreeSet<GuestId>,
    waves: &mut Vec<Wave>,
) {
    for group in order::start_groups(d, ids) {
        let actions = group
            .into_iter()
            .map(|id| {
                let reason = match observed.guest(id) {
                    Some(_) => Reason::State {
                        from: "stopped".into(),
                        to: "running".into(),
                    },
                    None => Reason::Missing,
                };
                Action::StartGuest {
                    id,
                    kind: d.guests[&id].kind,
                    reason,
                }
            })
            .collect();
        waves.push(Wave {
            name: "start".into(),
            actions,
        });
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn guest_actions(
    id: GuestId,
    kind: phoenix_model::model::GuestKind,
    name: &str,
    spec: &GuestSpec,
    observed: &ObservedState,
    update_existing: bool,
    snaps: Vec<Action>,
    out: &mut Vec<Action>,
) {
    match observed.guest(id) {
        None => {
            if let Some(via) = &spec.via {
                out.push(Action::CreateGuest {
                    id,
                    kind,
                    name: name.to_string(),
                    via: via.clone(),
                    calls: spec.create_calls.clone(),
                    image_import: spec.image_import.clone(),
                    image_source: spec.image_source.clone(),
                    reason: Reason::Missing,
                });
                if !spec.raw_lxc.is_empty() {
                    out.push(Action::WriteRawLxc {
                        id,
                        lines: spec.raw_lxc.clone(),
                        reason: Reason::Missing,
                    });
                }
                // A template is snapshotted before it is converted (never after).
                out.extend(snaps);
                if spec.convert_to_template {
                    out.push(Action::ConvertToTemplate { id, kind });
                }
            }
        }
        Some(o) if update_existing => {
            let changes = crate::compare::config_changes(kind, &spec.config, &o.config);
            if !changes.is_empty() {
                let set = changes
                    .iter()
                    .filter_map(|c| Some((c.key.clone(), c.to.clone()?)))
                    .collect();
                out.push(Action::UpdateGuest {
                    id,
                    kind,
                    set,
                    delete: Vec::new(),
                    reason: Reason::Differs { changes },
                });
            }
            if let Some(call) = &spec.grow_disk
                && let crate::disk::DiskDecision::Grow(change) = crate::disk::decide(call, o)
            {
                out.push(Action::ResizeDisk {
                    id,
                    kind,
                    call: call.clone(),
                    reason: Reason::Differs {
                        changes: vec![change],
                    },
                });
            }
            let raw =
                phoenix_render::guestparams::carry_observed_raw_macs(&spec.raw_lxc, &o.raw_lxc);
            let want: BTreeSet<&String> = raw.iter().collect();
            let have: BTreeSet<&String> = o.raw_lxc.iter().collect();
            if want != have && !raw.is_empty() {
                let changes = want
                    .symmetric_difference(&have)
                    .map(|l| KeyChange {
                        key: (*l).clone(),
                        from: have.contains(l).then(|| "present".into()),
                        to: want.contains(l).then(|| "present".into()),
                    })
                    .collect();
                out.push(Action::WriteRawLxc {
                    id,
                    lines: raw.clone(),
                    reason: Reason::Differs { changes },
                });
            }
            out.extend(snaps);
        }
        Some(_) => {}
    }
}

/// A note per guest whose disk is larger than configured (Proxmox cannot shrink it).
pub(crate) fn larger_disks(
    specs: &BTreeMap<GuestId, GuestSpec>,
    observed: &ObservedState,
) -> Vec<String> {
    specs
        .iter()
        .filter_map(|(id, spec)| {
            let o = observed.guest(*id)?;
            match crate::disk::decide(spec.grow_disk.as_ref()?, o) {
                crate::disk::DiskDecision::Larger { disk, have, want } => Some(format!(
                    "guest {id}: its {disk} is {have}, the configuration says {want}; Proxmox cannot shrink a disk, so it stays {have} (raise the configured size to {have}, or recreate the guest)"
                )),
                _ => None,
            }
        })
        .collect()
}
