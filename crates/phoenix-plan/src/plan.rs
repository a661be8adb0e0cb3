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
use serde::Serialize;

use crate::action::{Action, Effect, KeyChange, Reason};
use crate::certs::{self, PlanContext, PlannedCertificate};
use crate::observed::{GuestStatus, ObservedState, sha256_hex};
use crate::order;
use crate::provision::{self, ProvisionOptions};
use crate::spec::{GuestSpec, guest_spec};

/// What the operator asked for (the bash verbs on top of one planner). A verb names one or
/// more guests (`stop 101 102`): one plan for all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Converge everything (`sync all`).
    SyncAll,
    /// Create the guests and their missing prerequisites (`create X…`).
    Create(Vec<GuestId>),
    /// Re-apply the guests' whole chains (`converge X…`).
    Converge(Vec<GuestId>),
    /// Create everything, then start in boot order (`LetsGo`).
    LetsGo,
    Start(Vec<GuestId>),
    Stop(Vec<GuestId>),
    Restart(Vec<GuestId>),
    /// Stop every running guest in reverse boot order (the opposite of `LetsGo`).
    Shutdown,
    /// Delete the guests; refused while others not named depend on them unless `force`.
    Delete {
        ids: Vec<GuestId>,
        force: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    UnknownGuest(GuestId),
    HasDependents {
        id: GuestId,
        dependents: Vec<GuestId>,
    },
    /// A renderer refused the configuration (e.g. a value unsafe to write into a file).
    Render(String),
    /// A manifest entry that cannot be planned.
    Certificate {
        common_name: String,
        reason: String,
    },
    /// A clone from `from@snapshot` whose snapshot is neither there nor taken before it.
    CloneSnapshot {
        id: GuestId,
        from: GuestId,
        snapshot: String,
        why: String,
        hint: String,
    },
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::UnknownGuest(id) => write!(f, "guest {id} is not in the configuration"),
            PlanError::HasDependents { id, dependents } => {
                let d: Vec<String> = dependents.iter().map(|d| d.to_string()).collect();
                write!(
                    f,
                    "guest {id} is needed by {}; delete those first or pass --force",
                    d.join(", ")
                )
            }
            PlanError::Render(m) => write!(f, "cannot render the configuration: {m}"),
            PlanError::Certificate {
                common_name,
                reason,
            } => write!(f, "certificate `{common_name}`: {reason}"),
            PlanError::CloneSnapshot {
                id,
                from,
                snapshot,
                why,
                hint,
            } => write!(
                f,
                "guest {id} clones {from}@{snapshot}, but {why}; nothing was changed (hint: {hint})"
            ),
        }
    }
}

impl std::error::Error for PlanError {}

/// A file phoenix manages, its content and how it differs from the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedFile {
    #[serde(flatten)]
    pub file: RenderedFile,
    pub sha256: String,
    pub status: FileStatus,
    /// Unified diff against the observed content (when it is known and differs).
    pub diff: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    Create,
    Update,
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wave {
    pub name: String,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub create: usize,
    pub change: usize,
    pub delete: usize,
    /// Provision steps inside guests not observed: checked when applied, changed only if needed.
    #[serde(skip_serializing_if = "is_zero")]
    pub check: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} to create, {} to change, {} to delete",
            self.create, self.change, self.delete
        )?;
        if self.check > 0 {
            write!(f, ", {} to check inside guests", self.check)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Proxmox node the API paths refer to.
    pub node: String,
    pub waves: Vec<Wave>,
    pub files: Vec<PlannedFile>,
    /// Guests on the target that the configuration does not know (never deleted by a sync).
    pub orphans: Vec<GuestId>,
    /// Every manifest entry with its decision (issue / renew / keep), in manifest order.
    pub certificates: Vec<PlannedCertificate>,
    /// What the plan could not consider, and why.
    pub notes: Vec<String>,
    /// Swarm actions (init, join, labels, overlays, secrets, stacks), when the Swarm was
    /// observed (see [`crate::swarm`]); they follow the guest waves.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub swarm: Vec<crate::swarm::SwarmAction>,
    pub summary: Summary,
}

impl Plan {
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.waves.iter().flat_map(|w| w.actions.iter())
    }

    pub fn is_empty(&self) -> bool {
        self.actions().next().is_none() && self.swarm.is_empty()
    }

    /// Replace the Swarm actions (e.g. by ones planned with the secrets' content known) and
    /// keep the summary's counts right.
    pub fn set_swarm(&mut self, actions: Vec<crate::swarm::SwarmAction>) {
        let count = |s: &mut Summary, e: Effect, up: bool| {
            let n = match e {
                Effect::Create => &mut s.create,
                Effect::Change => &mut s.change,
                Effect::Delete => &mut s.delete,
                Effect::Check => &mut s.check,
            };
            *n = if up { *n + 1 } else { n.saturating_sub(1) };
        };
        for a in &self.swarm {
            count(&mut self.summary, a.effect(), false);
        }
        for a in &actions {
            count(&mut self.summary, a.effect(), true);
        }
        self.swarm = actions;
    }
}

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

/// The program that reads the rendered files under a directory inside a guest.
const SERVICE_DIRS: &[(&str, &str)] = &[("/etc/nginx/", "nginx"), ("/etc/traefik/", "traefik")];

/// A note for each rendered file placed in a guest where no provision step starts the
/// program that reads it (its `features` lack it): on a node nothing would serve it. Pure.
pub fn unserved_files(d: &DesiredState, rendered: &[phoenix_render::RenderedFile]) -> Vec<String> {
    let steps = crate::provision::plan_steps(d, rendered, &ProvisionOptions::default());
    let runs = |guest: GuestId, service: &str| {
        steps.iter().any(|(g, p)| {
            *g == guest
                && p.steps.iter().any(|s| {
                    matches!(&s.kind, crate::provision::StepKind::Service { name, .. } if name == service)
                })
        })
    };
    let mut notes = Vec::new();
    for f in rendered {
        let phoenix_render::FileTarget::Guest(g) = f.target else {
            continue;
        };
        if let Some((_, service)) = SERVICE_DIRS.iter().find(|(dir, _)| f.path.starts_with(dir))
            && !runs(g, service)
        {
            notes.push(format!(
                "guest {g} gets {} but no provision step installs or starts {service} there (its `features` lack `{service}`): nothing will serve it",
                f.path
            ));
        }
    }
    notes
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

fn known(d: &DesiredState, id: GuestId) -> Result<(), PlanError> {
    if d.guests.contains_key(&id) {
        Ok(())
    } else {
        Err(PlanError::UnknownGuest(id))
    }
}

fn stop_action(
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

fn push_starts(
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
fn guest_actions(
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
fn larger_disks(specs: &BTreeMap<GuestId, GuestSpec>, observed: &ObservedState) -> Vec<String> {
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

pub(crate) fn plan_file(
    f: RenderedFile,
    observed: &ObservedState,
) -> (PlannedFile, Option<Action>) {
    let sha = sha256_hex(&f.content);
    let Some(o) = observed.file(f.target, &f.path) else {
        let action = Action::WriteFile {
            target: f.target,
            path: f.path.clone(),
            reason: Reason::Missing,
        };
        return (
            PlannedFile {
                file: f,
                sha256: sha,
                status: FileStatus::Create,
                diff: None,
            },
            Some(action),
        );
    };
    let mut changes = Vec::new();
    let mut diff = None;
    if o.hash().as_deref() != Some(sha.as_str()) {
        changes.push(KeyChange {
            key: "content".into(),
            from: o.hash(),
            to: Some(sha.clone()),
        });
        diff = o
            .content
            .as_deref()
            .map(|old| unified_diff(old, &f.content, &f.path));
    }
    for (key, have, want) in [
        ("owner", o.owner.clone(), f.owner.clone()),
        ("group", o.group.clone(), f.group.clone()),
        (
            "mode",
            o.mode.map(|m| format!("{m:o}")),
            format!("{:o}", f.mode),
        ),
    ] {
        if have.as_deref().is_some_and(|h| h != want) {
            changes.push(KeyChange {
                key: key.into(),
                from: have,
                to: Some(want),
            });
        }
    }
    if changes.is_empty() {
        return (
            PlannedFile {
                file: f,
                sha256: sha,
                status: FileStatus::Unchanged,
                diff: None,
            },
            None,
        );
    }
    let action = Action::WriteFile {
        target: f.target,
        path: f.path.clone(),
        reason: Reason::Differs { changes },
    };
    (
        PlannedFile {
            file: f,
            sha256: sha,
            status: FileStatus::Update,
            diff,
        },
        Some(action),
    )
}

/// A unified diff (no colour; the CLI colours it).
pub fn unified_diff(old: &str, new: &str, path: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{path} (on target)"), &format!("{path} (planned)"))
        .to_string()
}
