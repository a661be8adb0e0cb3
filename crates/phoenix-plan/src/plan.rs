//! `plan(&DesiredState, &ObservedState, &Request) -> Plan`: pure and deterministic. Waves of
//! actions in order, each action with its reason, and every managed file with its diff:
//!
//! 1. host network, DNS and firewall files;
//! 2. guests, by dependency level (create / update);
//! 3. starts, by boot order;
//! 4. trust: the CA bundle on the host and in every guest, `update-ca-certificates`, reload of
//!    Traefik/Nginx — before any certificate from a new root is served;
//! 5. certificates: issue / renew each manifest entry, then its post-renewal actions — the
//!    guests run and trust the root by now;
//! 6. files inside guests (their configs reference the certificates);
//! 7. provisioning inside guests ([`crate::provision`], with [`plan_full`]): packages, files,
//!    downloads and services per feature, each checked by the executor before it changes
//!    anything. A guest whose inside was not observed has all its steps planned as unchecked.
//!
//! Waves 4–5 come from [`crate::certs`] and need a [`PlanContext`] ([`plan_with`]). No I/O.

use std::collections::{BTreeMap, BTreeSet};

use phoenix_model::model::{DesiredState, GuestId};
use phoenix_render::{RenderOptions, RenderedFile};

use crate::action::{Action, Effect, Reason};
use crate::certs::{self, PlanContext};
pub(crate) use crate::files::plan_file;
pub use crate::files::{unified_diff, unserved_files};
use crate::guests::{guest_actions, known, larger_disks, push_starts, stop_action};
use crate::observed::{GuestStatus, ObservedState};
use crate::order;
pub use crate::plan_types::{FileStatus, Plan, PlanError, PlannedFile, Request, Summary, Wave};
use crate::provision::{self, ProvisionOptions};
use crate::spec::{GuestSpec, guest_spec};

/// Plan `request` against `observed`, with no CA known (see [`plan_with`]).
pub fn plan(
    d: &DesiredState,
    observed: &ObservedState,
    request: &Request,
    opts: &RenderOptions,
) -> Result<Plan, PlanError> {
    plan_with(d, observed, request, opts, &PlanContext::default())
}

/// Plan `request` against `observed`, with the time and the CA's public material in `ctx`.
pub fn plan_with(
    d: &DesiredState,
    observed: &ObservedState,
    request: &Request,
    opts: &RenderOptions,
    ctx: &PlanContext,
) -> Result<Plan, PlanError> {
    plan_full(d, observed, request, opts, ctx, None)
}

/// [`plan_with`], plus provisioning inside guests when `provision` is given (a `sync all`
/// gets the wave "provisioning inside guests"; `None` plans as [`plan_with`]).
pub fn plan_full(
    d: &DesiredState,
    observed: &ObservedState,
    request: &Request,
    opts: &RenderOptions,
    ctx: &PlanContext,
    provision: Option<&ProvisionOptions>,
) -> Result<Plan, PlanError> {
    let mut waves = Vec::new();
    let mut notes = Vec::new();
    let mut certificates = Vec::new();
    let mut files = Vec::new();
    let snippets = observed.snippet_store();
    let specs: BTreeMap<GuestId, GuestSpec> = d
        .guests
        .values()
        .map(|g| {
            let spec = guest_spec(g, d);
            match (&snippets, g.kind) {
                (Some(store), phoenix_model::model::GuestKind::Vm) => {
                    (g.id, crate::spec::with_vendor_data(spec, store, g.id))
                }
                _ => (g.id, spec),
            }
        })
        .collect();
    notes.extend(crate::vendor::note(d, observed));
    notes.extend(larger_disks(&specs, observed));

    let scope: BTreeSet<GuestId> = match request {
        Request::SyncAll | Request::LetsGo | Request::Shutdown => {
            d.guests.keys().copied().collect()
        }
        Request::Create(ids)
        | Request::Converge(ids)
        | Request::Start(ids)
        | Request::Stop(ids)
        | Request::Restart(ids) => {
            let mut s = BTreeSet::new();
            for id in ids {
                known(d, *id)?;
                s.extend(order::chain(d, *id));
            }
            s
        }
        Request::Delete { ids, force } => {
            let mut s = BTreeSet::new();
            for id in ids {
                known(d, *id)?;
                let deps = order::dependents(d, *id);
                // Dependents deleted in the same request do not hold it back.
                let others: Vec<GuestId> =
                    deps.iter().copied().filter(|x| !ids.contains(x)).collect();
                if !others.is_empty() && !force {
                    return Err(PlanError::HasDependents {
                        id: *id,
                        dependents: others,
                    });
                }
                s.extend(deps);
                s.insert(*id);
            }
            s
        }
    };

    // Files inside guests are written once the guests exist and run (last wave).
    let mut guest_file_actions = Vec::new();
    let mut provision_actions = Vec::new();
    if matches!(request, Request::SyncAll) {
        let mut rendered =
            phoenix_render::render_all(d, opts).map_err(|e| PlanError::Render(e.to_string()))?;
        rendered.extend(crate::vendor::snippet_files(d, observed));
        if let Some(popts) = provision {
            provision_actions = provision_actions_for(d, observed, &rendered, popts, &mut notes);
        }
        notes.extend(unserved_files(d, &rendered));
        let mut actions = Vec::new();
        for f in rendered {
            let on_host = f.target == phoenix_render::FileTarget::Host;
            let (planned, action) = plan_file(f, observed);
            if on_host {
                actions.extend(action);
            } else {
                guest_file_actions.extend(action);
            }
            files.push(planned);
        }
        waves.push(Wave {
            name: "host network, DNS and firewall files".into(),
            actions,
        });
    }

    match request {
        Request::SyncAll | Request::LetsGo | Request::Create(_) | Request::Converge(_) => {
            let update_existing = !matches!(request, Request::Create(_) | Request::LetsGo);
            if !matches!(request, Request::SyncAll) {
                // The snippets of the VMs this run creates or converges, before they start.
                let mut actions = Vec::new();
                for f in crate::vendor::snippet_files(d, observed) {
                    let in_scope = scope.iter().any(|id| {
                        f.path.ends_with(&format!(
                            "/{}",
                            phoenix_render::cloudinit::snippet_name(*id)
                        ))
                    });
                    if in_scope {
                        let (planned, action) = plan_file(f, observed);
                        actions.extend(action);
                        files.push(planned);
                    }
                }
                if !actions.is_empty() {
                    waves.push(Wave {
                        name: "cloud-init snippets".into(),
                        actions,
                    });
                }
            }
            let creating: Vec<GuestId> = scope
                .iter()
                .copied()
                .filter(|id| observed.guest(*id).is_none())
                .collect();
            crate::snapshots::check_clones(d, observed, &creating)?;
            for (level, ids) in order::creation_waves(d).into_iter().enumerate() {
                let mut actions = Vec::new();
                for id in ids.into_iter().filter(|id| scope.contains(id)) {
                    if let (Some(g), Some(spec)) = (d.guests.get(&id), specs.get(&id)) {
                        let snaps = crate::snapshots::at_creation(g, observed)
                            .into_iter()
                            .map(|n| crate::snapshots::take(g, n))
                            .collect();
                        guest_actions(
                            g.id,
                            g.kind,
                            &g.name,
                            spec,
                            observed,
                            update_existing,
                            snaps,
                            &mut actions,
                        );
                    }
                }
                if !actions.is_empty() {
                    waves.push(Wave {
                        name: format!("guests, level {level}"),
                        actions,
                    });
                }
            }
            // `create X` only creates; the others leave every guest that should run running.
            if !matches!(request, Request::Create(_)) {
                let start_all = matches!(request, Request::LetsGo);
                let to_start: BTreeSet<GuestId> = scope
                    .iter()
                    .copied()
                    .filter(|id| {
                        specs
                            .get(id)
                            .is_some_and(|s| s.running || (start_all && !d.guests[id].is_template))
                    })
                    .filter(|id| {
                        observed
                            .guest(*id)
                            .is_none_or(|o| o.status != GuestStatus::Running)
                    })
                    .collect();
                push_starts(d, observed, &to_start, &mut waves);
            }
        }
        Request::Start(ids) => {
            let set: BTreeSet<GuestId> = scope
                .iter()
                .copied()
                .filter(|g| ids.contains(g) || specs.get(g).is_some_and(|s| s.running))
                .filter(|g| {
                    observed
                        .guest(*g)
                        .is_none_or(|o| o.status != GuestStatus::Running)
                })
                .collect();
            push_starts(d, observed, &set, &mut waves);
        }
        Request::Shutdown => {
            // The reverse of the start waves: last started, first stopped.
            let running: BTreeSet<GuestId> = scope
                .iter()
                .copied()
                .filter(|g| stop_action(d, observed, *g, Reason::Requested).is_some())
                .collect();
            for group in order::start_groups(d, &running).into_iter().rev() {
                let actions = group
                    .into_iter()
                    .filter_map(|id| stop_action(d, observed, id, Reason::Requested))
                    .collect();
                waves.push(Wave {
                    name: "stop (reverse boot order)".into(),
                    actions,
                });
            }
        }
        Request::Stop(ids) | Request::Restart(ids) => {
            let named: BTreeSet<GuestId> = ids.iter().copied().collect();
            // Stopped in reverse boot order (last started, first stopped).
            for group in order::start_groups(d, &named).into_iter().rev() {
                let actions: Vec<Action> = group
                    .into_iter()
                    .filter_map(|id| stop_action(d, observed, id, Reason::Requested))
                    .collect();
                if !actions.is_empty() {
                    waves.push(Wave {
                        name: "stop".into(),
                        actions,
                    });
                }
            }
            if matches!(request, Request::Restart(_)) {
                for group in order::start_groups(d, &named) {
                    let actions = group
                        .into_iter()
                        .map(|id| Action::StartGuest {
                            id,
                            kind: d.guests[&id].kind,
                            reason: Reason::Requested,
                        })
                        .collect();
                    waves.push(Wave {
                        name: "start".into(),
                        actions,
                    });
                }
            }
        }
        Request::Delete { .. } => {
            // Reverse creation order: dependents first.
            let mut by_level: Vec<(usize, GuestId)> = {
                let levels = order::levels(d);
                scope
                    .iter()
                    .map(|id| (levels.get(id).copied().unwrap_or(0), *id))
                    .collect()
            };
            by_level.sort_by(|a, b| b.cmp(a));
            for (_, id) in by_level {
                let g = &d.guests[&id];
                let Some(o) = observed.guest(id) else {
                    continue;
                };
                let mut actions = Vec::new();
                if o.status == GuestStatus::Running {
                    actions.push(Action::StopGuest {
                        id,
                        kind: g.kind,
                        reason: Reason::Requested,
                    });
                }
                actions.push(Action::DeleteGuest {
                    id,
                    kind: g.kind,
                    reason: Reason::Requested,
                });
                waves.push(Wave {
                    name: format!("delete {id}"),
                    actions,
                });
            }
        }
    }

    if matches!(request, Request::SyncAll) {
        match &ctx.pki {
            Some(pki) => {
                let (actions, trust_files) = certs::plan_trust(&pki.trust, observed);
                files.extend(trust_files);
                waves.push(Wave {
                    name: "trust: CA roots on the host and in the guests".into(),
                    actions,
                });
            }
            None => {
                notes.push(certs::NO_CA_NOTE.to_string());
                let engines: Vec<String> = certs::engine_certificates(d)
                    .iter()
                    .map(|c| c.guest.to_string())
                    .collect();
                if !engines.is_empty() && provision.is_some() {
                    notes.push(format!(
                        "guests {}: dockerd is configured for TLS on 2376 (daemon.json), but \
                         without a CA its server certificate is not issued and docker does not \
                         start with it: pass --ca-dir",
                        engines.join(", ")
                    ));
                }
            }
        }
        let (actions, planned) = certs::plan_certificates(d, observed, ctx)?;
        certificates = planned;
        waves.push(Wave {
            name: "certificates".into(),
            actions,
        });
    }
    waves.push(Wave {
        name: "files inside guests".into(),
        actions: guest_file_actions,
    });
    waves.push(Wave {
        name: "provisioning inside guests".into(),
        actions: provision_actions,
    });
    if matches!(request, Request::SyncAll) {
        waves.push(Wave {
            name: "snapshots after provisioning".into(),
            actions: final_snapshots(d, observed, provision.is_some(), &mut notes),
        });
    }
    let orphans = observed
        .guests
        .iter()
        .map(|g| g.id)
        .filter(|id| !d.guests.contains_key(id))
        .collect();
    let mut summary = Summary::default();
    for a in waves.iter().flat_map(|w| w.actions.iter()) {
        match a.effect() {
            Effect::Create => summary.create += 1,
            Effect::Change => summary.change += 1,
            Effect::Delete => summary.delete += 1,
            Effect::Check => summary.check += 1,
        }
    }
    waves.retain(|w| !w.actions.is_empty());
    let swarm = match (&observed.swarm, matches!(request, Request::SyncAll)) {
        (Some(obs), true) => swarm_actions(d, obs, &mut notes),
        _ => Vec::new(),
    };
    for a in &swarm {
        match a.effect() {
            Effect::Create => summary.create += 1,
            Effect::Change => summary.change += 1,
            Effect::Delete => summary.delete += 1,
            Effect::Check => summary.check += 1,
        }
    }
    Ok(Plan {
        node: opts.node.clone(),
        waves,
        files,
        orphans,
        certificates,
        notes,
        swarm,
        summary,
    })
}

/// The Swarm actions against `obs`: stacks compared by their rendered services' hashes (a
/// stack whose variables are secret references is compared only by existence, said in a
/// note); services that mount the environment's files and secrets only by existence (their
/// content is read by `phoenix swarm` / `sync all --target pve`, which plan with it; the plan
/// itself does no I/O).
fn swarm_actions(
    d: &DesiredState,
    obs: &crate::swarm::SwarmObserved,
    notes: &mut Vec<String>,
) -> Vec<crate::swarm::SwarmAction> {
    let Some(desired) = crate::swarm::desired(d) else {
        return Vec::new();
    };
    let mut hashes = BTreeMap::new();
    for s in &desired.stacks {
        match phoenix_render::stack::render(d, &s.stack, &s.environment) {
            Ok(r) => hashes.extend(
                r.services
                    .iter()
                    .filter(|svc| !r.mounts_files(&svc.name))
                    .map(|svc| (svc.name.clone(), svc.sha256.clone())),
            ),
            Err(e) => notes.push(format!(
                "stack {}: not compared by content ({e})",
                s.namespace
            )),
        }
    }
    crate::swarm::plan(&desired, obs, &hashes, &BTreeMap::new())
}

/// The provision steps of every guest, minus those an observation found done; a note when
/// some guest's inside was not observed.
fn provision_actions_for(
    d: &DesiredState,
    observed: &ObservedState,
    rendered: &[RenderedFile],
    popts: &ProvisionOptions,
    notes: &mut Vec<String>,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut unchecked = Vec::new();
    for (id, gp) in provision::plan_steps(d, rendered, popts) {
        notes.extend(gp.notes);
        let kind = d.guests[&id].kind;
        let done = observed.provisioned(id);
        if done.is_none() && !gp.steps.is_empty() {
            unchecked.push(id.to_string());
        }
        for step in gp.steps {
            let reason = match done {
                None => Reason::Unchecked,
                Some(p) if p.done.contains(&step.done_key()) => continue,
                Some(_) => Reason::Missing,
            };
            actions.push(Action::Provision {
                guest: id,
                kind,
                step,
                reason,
            });
        }
    }
    if !unchecked.is_empty() {
        notes.push(format!(
            "the inside of guests {} was not observed: their provision steps are unchecked and checked at apply time (a step already done is kept)",
            unchecked.join(", ")
        ));
    }
    actions
}

/// `final-form` (and the like) of every guest that lacks it, once provisioning has run in
/// this plan; without `--provision` a note says which wait for it.
fn final_snapshots(
    d: &DesiredState,
    observed: &ObservedState,
    provisioning: bool,
    notes: &mut Vec<String>,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut waiting = Vec::new();
    for g in d.guests.values() {
        for name in crate::snapshots::after_provisioning(g, observed) {
            if provisioning {
                actions.push(crate::snapshots::take(g, name));
            } else {
                waiting.push(format!("{}@{name}", g.id));
            }
        }
    }
    if !waiting.is_empty() {
        notes.push(format!(
            "snapshots {} are taken after provisioning: run `sync all --provision` to take them",
            waiting.join(", ")
        ));
    }
    actions
}
