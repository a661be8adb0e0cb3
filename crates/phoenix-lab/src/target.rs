//! The lab twin as a [`Target`] of the one `sync all` pipeline (docs/lab-executor.md): it is
//! observed through its own node root ([`crate::node`]) and the guests' file roots, planned
//! with exactly the node's planner ([`phoenix_exec::plan::plan_target`]), and applied by the
//! lab's executor ([`crate::executor`]), so the lab runs the same actions, in the same order,
//! for the same reasons as a node. Root only; does I/O.

use std::collections::BTreeSet;

use phoenix_exec::guest::observe::{guest_certificates, guest_files, managed_paths_of};
use phoenix_exec::journal::{Journal, apply_waves};
use phoenix_exec::plan::{PlanInput, plan_target};
use phoenix_exec::target::{Failure, Stage, SyncRequest, Target};
use phoenix_model::model::{DesiredState, GuestId};
use phoenix_plan::Request;
use phoenix_plan::firewall_api::FirewallState;
use phoenix_plan::observed::{GuestStatus, ObservedGuest, ObservedState};
use phoenix_plan::plan::Plan;
use phoenix_plan::subsystem::Subsystem;
use phoenix_render::RenderOptions;

use crate::node::{LabNode, parse_conf};
use crate::topology::{LabTopology, topology};
use crate::{LabError, guest_services, state_dir};

/// Guests worked on at once within a wave.
const PARALLELISM: usize = 8;

/// The lab of one prefix, for one configuration.
pub struct LabTarget {
    pub prefix: String,
    pub opts: RenderOptions,
    pub topology: LabTopology,
    /// The desired firewall of the last plan (the lab's firewall state after it applied).
    firewall: Option<FirewallState>,
    /// What the Swarm step after the waves changed ([`crate::executor::converge_swarm`]).
    pub swarm_changes: Vec<String>,
    /// What the lab did differently from a node, said once per run.
    pub notes: Vec<String>,
    /// Processes started while this target lives are recorded as the lab's.
    _active: crate::procs::Active,
}

/// What observing the lab gives.
#[derive(Debug)]
pub struct LabObserved {
    pub state: ObservedState,
    pub existing: BTreeSet<GuestId>,
    pub firewall: Option<FirewallState>,
    pub pki: Option<phoenix_plan::PkiContext>,
    pub notes: Vec<String>,
}

fn observe_failure(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(
        Stage::Observe,
        format!("{what}: {e}"),
        "`phoenix lab status` shows what is up; `phoenix lab down` removes the lab",
    )
}

impl LabTarget {
    pub fn new(d: &DesiredState, prefix: &str, opts: RenderOptions) -> Result<Self, LabError> {
        crate::topology::validate_prefix(prefix)?;
        crate::require_root()?;
        Ok(LabTarget {
            prefix: prefix.to_string(),
            opts,
            topology: topology(d, prefix)?,
            firewall: None,
            swarm_changes: Vec::new(),
            notes: Vec::new(),
            _active: crate::procs::Active::enter(prefix),
        })
    }

    /// The desired firewall of the last [`Target::plan`] (for `status`).
    pub fn desired_firewall(&self) -> Option<&FirewallState> {
        self.firewall.as_ref()
    }

    pub fn node(&self) -> LabNode {
        LabNode::new(&self.prefix)
    }

    /// What a run needs before it observes: the lab's CA (the lab's stand-in for the
    /// operator's `--ca-dir`; not part of the plan). Not called on a dry run, so an empty lab
    /// plans exactly as an empty node without a CA.
    /// An interrupted `lab down` is finished first, said so (a half-deleted state dir is
    /// never built on).
    pub fn prepare(&mut self, d: &DesiredState) -> Result<(), LabError> {
        if let Some(note) = crate::teardown::finish_interrupted(&self.prefix)? {
            eprintln!("note: {note}");
            self.notes.push(note);
        }
        crate::roots::lab_ca(d, &self.prefix).map(drop)
    }

    fn pki(&self, d: &DesiredState) -> Option<phoenix_plan::PkiContext> {
        let dir = crate::roots::lab_ca_dir(&self.prefix);
        if !dir.join(phoenix_pki::ca::STATE).is_file() {
            return None;
        }
        let ca = phoenix_pki::CaStore::open(&dir, None).ok()?;
        phoenix_plan::PkiContext::from_ca(ca.public(), d, Default::default()).ok()
    }

    /// Is guest `id` running: started, and its namespace present?
    fn running(&self, node: &LabNode, id: GuestId, present: &BTreeSet<String>) -> bool {
        node.started(id)
            && guest_services::ns_of_guest(&self.topology, id)
                .is_some_and(|ns| present.contains(&ns))
    }
}

impl Target for LabTarget {
    type Error = LabError;
    type Observation = LabObserved;

    fn observe(&mut self, d: &DesiredState, req: &SyncRequest) -> Result<LabObserved, Failure> {
        let node = self.node();
        let mut notes = Vec::new();
        // A network that is not whole runs no guest: they are planned as stopped, and their
        // start makes the network again (`realise::ensure_network`).
        // Judged as it was built: a configuration that rewires the lab (a new guest, an
        // address changed) is a change the plan carries, not a broken network.
        let built = crate::status::load_state(&self.prefix);
        let problems = crate::realise::network_problems(built.as_ref().unwrap_or(&self.topology));
        let present: BTreeSet<String> = if problems.is_empty() {
            crate::teardown::namespaces(&self.prefix)
                .into_iter()
                .collect()
        } else {
            notes.push(format!(
                "the lab's network is not whole ({}): its guests are planned as stopped",
                problems.join("; ")
            ));
            BTreeSet::new()
        };
        // What the lab repairs of its own before the plan's actions (never silently).
        let due = crate::realise::upkeep_due(&self.topology);
        if !due.is_empty() {
            notes.push(format!(
                "lab upkeep before the plan's actions: {}",
                due.join("; ")
            ));
        }
        // Guest tables flushed or edited since they were loaded: reloaded after the waves.
        if req.includes(Subsystem::Firewall) {
            let due = crate::guestfw::loads_due(d, &self.topology, &present);
            if !due.is_empty() {
                notes.push(format!(
                    "guest firewall tables to load after the plan's actions: {}",
                    due.join("; ")
                ));
            }
        }
        let mut state = ObservedState {
            storages: crate::node::storages(),
            ..ObservedState::default()
        };
        let mut existing = BTreeSet::new();
        for (id, kind, text) in node.confs() {
            existing.insert(id);
            if !d.guests.contains_key(&id) {
                continue;
            }
            let config = parse_conf(&text);
            let template = config.get("template").is_some_and(|t| t == "1");
            let status = if !template && self.running(&node, id, &present) {
                GuestStatus::Running
            } else {
                GuestStatus::Stopped
            };
            state.guests.push(ObservedGuest {
                id,
                kind,
                status,
                config,
                raw_lxc: phoenix_exec::shell::raw_lxc_lines(&text),
                template,
                snapshots: crate::node::snapshot_names(&text),
            });
        }
        let pki = self.pki(d);
        let rendered = phoenix_render::render_all(d, &self.opts).map_err(|e| {
            Failure::new(
                Stage::Plan,
                format!("render: {e}"),
                "`phoenix render` shows the same error",
            )
        })?;
        let mut paths = managed_paths_of(rendered.clone(), req, pki.as_ref());
        paths.extend(
            phoenix_plan::vendor::snippet_files(d, &state)
                .into_iter()
                .map(|f| (f.target, f.path))
                .filter(|(t, p)| req.includes(phoenix_plan::subsystem::of_file(t, p))),
        );
        if node.exists() {
            state.files = phoenix_exec::shell::files::observe_host_files(&node.shell(), &paths)
                .map_err(|e| observe_failure("observe the lab node's files", e))?;
        }
        let certificates = req.request == Request::SyncAll && req.includes(Subsystem::Pki);
        for g in state
            .guests
            .iter()
            .filter(|g| g.status == GuestStatus::Running)
        {
            let Some(exec) = crate::provision::exec_for(d, &self.topology, g.id, &rendered) else {
                continue;
            };
            state
                .files
                .extend(guest_files(&exec, &paths, true, &mut notes));
            if certificates {
                state
                    .certificates
                    .extend(guest_certificates(d, &exec, &mut notes));
            }
        }
        let firewall = if req.request == Request::SyncAll && req.includes(Subsystem::Firewall) {
            Some(
                node.firewall()
                    .map_err(|e| observe_failure("read the lab's firewall state", e))?,
            )
        } else {
            None
        };
        Ok(LabObserved {
            state,
            existing,
            firewall,
            pki,
            notes,
        })
    }

    fn plan(
        &mut self,
        d: &DesiredState,
        observed: &LabObserved,
        req: &SyncRequest,
    ) -> Result<Plan, Failure> {
        let input = PlanInput {
            state: &observed.state,
            existing: &observed.existing,
            firewall: observed.firewall.as_ref(),
            now: phoenix_pki::issue::unix_seconds(std::time::SystemTime::now()),
            pki: observed.pki.clone(),
        };
        let mut planned = plan_target(d, &input, req, &self.opts)?;
        planned.plan.notes.extend(observed.notes.iter().cloned());
        self.firewall = planned.firewall;
        Ok(planned.plan)
    }

    fn apply(
        &mut self,
        d: &DesiredState,
        plan: &Plan,
        _observed: &LabObserved,
        progress: &mut dyn FnMut(&str),
    ) -> Journal<LabError> {
        match crate::realise::upkeep(&self.topology) {
            Ok(said) => self.notes.extend(said),
            Err(e) => self.notes.push(format!("the lab's own services: {e}")),
        }
        // An engine of a Swarm that exists, started again, leaves the overlay broken for a
        // while: the run waits for it ([`crate::swarm::await_overlay`]).
        let swarm_existed = crate::swarm::load(&self.prefix).is_some();
        let x = crate::executor::LabExecutor::new(d, &self.topology, plan, &self.prefix);
        let journal = apply_waves(plan, PARALLELISM, &x);
        self.notes.extend(x.notes());
        // The firewall actions of the run, all done: the lab's firewall state is the desired
        // one, compiled per guest (the node's API stores the same state).
        let mut journal = journal;
        if journal.is_success()
            && let Some(fw) = &self.firewall
        {
            match crate::executor::load_firewall(d, &self.topology, &self.node(), fw) {
                Ok(said) => self.notes.extend(said),
                Err(e) => journal.failed_wave = Some(format!("firewall: {e}")),
            }
        }
        if journal.is_success() {
            progress("docker swarm");
            match crate::executor::converge_swarm(d, &self.topology, plan) {
                Ok(changes) => self.swarm_changes = changes,
                Err(e) => journal.failed_wave = Some(format!("docker swarm: {e}")),
            }
        }
        if journal.is_success() && crate::swarm::unsettled_in(d, &self.topology) {
            if swarm_existed {
                progress("docker swarm: the overlay after an engine restart");
                match crate::swarm::await_overlay(d, &self.topology) {
                    Ok(said) => self.swarm_changes.extend(said),
                    Err(e) => journal.failed_wave = Some(format!("docker swarm: {e}")),
                }
            } else {
                crate::swarm::settled_in(d, &self.topology);
            }
        }
        journal
    }

    fn export(&self, observed: &LabObserved) -> phoenix_exec::saved::ObservedExport {
        phoenix_exec::saved::ObservedExport {
            format_version: phoenix_exec::saved::FORMAT_VERSION,
            target: format!("lab {}", self.prefix),
            state: observed.state.clone(),
            existing: observed.existing.clone(),
            firewall: observed.firewall.clone(),
        }
    }
}

/// Is there anything of lab `prefix` (namespaces, `/etc/netns` entries, the state dir)?
pub fn exists(prefix: &str) -> bool {
    !crate::teardown::namespaces(prefix).is_empty()
        || !crate::teardown::entries_with_prefix(crate::teardown::NETNS_ETC, prefix).is_empty()
        || state_dir(prefix).exists()
}

/// `lab up` of `d` under `opts.prefix`, as much as `scope` says ([`up`], or the network
/// alone).
pub fn up_with(
    d: &DesiredState,
    opts: &crate::UpOptions,
    scope: crate::Scope,
) -> Result<crate::UpReport, LabError> {
    match scope {
        crate::Scope::Full => up(d, opts),
        crate::Scope::NetworkOnly => crate::realise::up_network(d, opts),
    }
}

/// `lab up`: the lab of `d` under `opts.prefix` through the one pipeline (observe, the
/// node's plan with its provision steps, the lab's executor, the Swarm), refusing an
/// existing lab unless `opts.recreate` (then torn down first). Root only.
pub fn up(d: &DesiredState, opts: &crate::UpOptions) -> Result<crate::UpReport, LabError> {
    let prefix = opts.prefix.as_str();
    crate::topology::validate_prefix(prefix)?;
    crate::require_root()?;
    if let Some(note) = crate::teardown::finish_interrupted(prefix)? {
        eprintln!("note: {note}");
    }
    if exists(prefix) {
        if !opts.recreate {
            let mut found = crate::teardown::namespaces(prefix);
            found.extend(crate::teardown::entries_with_prefix(
                crate::teardown::NETNS_ETC,
                prefix,
            ));
            found.sort();
            found.dedup();
            return Err(LabError::AlreadyUp {
                prefix: prefix.to_string(),
                namespaces: found,
            });
        }
        crate::down(prefix)?;
    }
    let start = std::time::Instant::now();
    let mut target = LabTarget::new(d, prefix, RenderOptions::default())?;
    target.prepare(d)?;
    let req = SyncRequest {
        request: Request::SyncAll,
        only: BTreeSet::new(),
        provision: true,
        dry_run: false,
    };
    let run = phoenix_exec::target::sync_all(&mut target, d, &req, None, &mut |_| {})
        .map_err(|f| LabError::Provision(format!("{}: {}", f.message, f.hint)))?;
    let journal = run.journal.unwrap_or_default();
    if !journal.is_success() {
        let cause = journal
            .failures()
            .next()
            .map(|(a, e)| format!("{a}: {e}"))
            .or(journal.failed_wave.clone())
            .unwrap_or_default();
        return Err(LabError::Provision(format!("lab up {prefix}: {cause}")));
    }
    Ok(report(d, &target, start.elapsed().as_millis()))
}

/// What a lab brought up by the pipeline holds (the records its services left).
fn report(d: &DesiredState, target: &LabTarget, elapsed_ms: u128) -> crate::UpReport {
    let prefix = target.prefix.as_str();
    let t = &target.topology;
    let swarm_stand_in = crate::ingress::swarm_stand_in(prefix);
    let ingress =
        phoenix_render::traefik::ingress::ingress(d)
            .ok()
            .map(|_| crate::ingress::IngressState {
                ca_dir: crate::roots::lab_ca_dir(prefix),
                certificates: d.certificates.len(),
                files: Vec::new(),
                stand_in: swarm_stand_in.as_ref().and_then(|si| {
                    let addr = crate::swarm::load(prefix)?
                        .plan
                        .node(si.guest)
                        .map(|n| n.addr)?;
                    Some(format!(
                        "https://{}",
                        phoenix_render::traefik::ingress::host_port(addr.into(), si.port)
                    ))
                }),
                step_ca: guest_services::step_ca(prefix),
                swarm_stand_in: swarm_stand_in.clone(),
                notes: target.notes.clone(),
            });
    crate::UpReport {
        prefix: prefix.to_string(),
        namespaces: t.namespaces.len(),
        veths: t.veths.len(),
        macvlans: t.macvlans.len(),
        state_dir: state_dir(prefix),
        elapsed_ms,
        phases: vec![("sync all (the node's plan)".to_string(), elapsed_ms)],
        services: crate::services::load(prefix).unwrap_or_default(),
        ingress,
        // What this run's Swarm step changed, the stand-in's deployment included.
        swarm: crate::swarm::load(prefix).map(|mut s| {
            s.changes = target.swarm_changes.clone();
            s
        }),
    }
}
