//! The `Target` interface and the one `sync all` pipeline every target runs: observe → plan
//! (pure, [`phoenix_plan`]) → apply (the plan's actions through [`crate::journal`]) → the
//! Swarm phase over the engines → verify. The lab twin and a Proxmox node implement
//! [`Target`]; the CLI only calls [`sync_all`] and prints what it returns.

use std::collections::BTreeSet;

use phoenix_model::model::DesiredState;
use phoenix_plan::Request;
use phoenix_plan::plan::Plan;
use phoenix_plan::subsystem::Subsystem;
use phoenix_plan::swarm::{SwarmAction, SwarmObserved};

use crate::journal::Journal;

/// What the operator asked `sync` (or a verb) for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub request: Request,
    /// Only these subsystems (all when empty).
    pub only: BTreeSet<Subsystem>,
    /// Also plan and run the provision steps inside guests.
    pub provision: bool,
    /// Observe and plan only.
    pub dry_run: bool,
}

impl SyncRequest {
    /// Is `s` part of this run?
    pub fn includes(&self, s: Subsystem) -> bool {
        self.only.is_empty() || self.only.contains(&s)
    }
}

/// Why the pipeline stopped before the journal: the stage, what happened and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub stage: Stage,
    pub message: String,
    pub hint: String,
}

impl Failure {
    pub fn new(stage: Stage, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Failure {
            stage,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// Where the pipeline stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Observe,
    /// The configuration cannot be planned (a renderer or the planner refused it).
    Plan,
    Swarm,
    /// The run was refused before anything changed (a saved plan that no longer holds, an
    /// operator who did not confirm).
    Refused,
}

/// The stages [`sync_all`] announces through its `progress`, in order.
pub const OBSERVING: &str = "observing";
pub const PLANNING: &str = "planning";
/// Said right before the target applies (observation is over: its counters are final).
pub const APPLYING: &str = "applying";
pub const SWARM: &str = "docker swarm";

/// A place the plan is applied to.
pub trait Target {
    /// The target's own error in the journal.
    type Error: std::error::Error + Send;
    /// What observing gives besides the planner's [`phoenix_plan::ObservedState`].
    type Observation;

    /// What exists now (read-only).
    fn observe(
        &mut self,
        d: &DesiredState,
        req: &SyncRequest,
    ) -> Result<Self::Observation, Failure>;

    /// The plan for what was observed: [`phoenix_plan::plan::plan_full`] and the target's
    /// API-level refinements; pure given the observation.
    fn plan(
        &mut self,
        d: &DesiredState,
        observed: &Self::Observation,
        req: &SyncRequest,
    ) -> Result<Plan, Failure>;

    /// Carry out every action of `plan`; `progress` may hear what the target is doing.
    fn apply(
        &mut self,
        d: &DesiredState,
        plan: &Plan,
        observed: &Self::Observation,
        progress: &mut dyn FnMut(&str),
    ) -> Journal<Self::Error>;

    /// What `observed` holds for the planner, as data (`phoenix observe`, saved plans).
    fn export(&self, observed: &Self::Observation) -> crate::observed::ObservedExport;
}

/// Asked between the plan and the apply (a saved plan's check, the operator's answer): an
/// `Err` stops the run before anything changes.
pub type Gate<'a> =
    &'a mut dyn FnMut(&Plan, &crate::observed::ObservedExport) -> Result<(), Failure>;

/// The Swarm of a target, through its nodes' engines (the lab's unix sockets, a node's VMs
/// over TLS): observed, planned and converged after the guests are in place.
pub trait SwarmPhase {
    fn observe(&self) -> SwarmObserved;
    /// The actions for what was observed and notes (what was left out, and why).
    fn plan(&self, observed: &SwarmObserved) -> (Vec<SwarmAction>, Vec<String>);
    /// The change lines, or the failure.
    fn apply(&self, actions: &[SwarmAction]) -> Result<Vec<String>, Failure>;
}

/// What one `sync all` did.
#[derive(Debug)]
pub struct SyncRun<O, E> {
    pub observed: O,
    pub plan: Plan,
    /// `None` on a dry run.
    pub journal: Option<Journal<E>>,
    /// The Swarm phase's change lines (empty when it had nothing to do or did not run).
    pub swarm_applied: Vec<String>,
}

/// Observe, plan and (unless a dry run) apply `d` on `target`, then converge the Swarm
/// through `swarm` once every wave succeeded.
pub fn sync_all<T: Target>(
    target: &mut T,
    d: &DesiredState,
    req: &SyncRequest,
    swarm: Option<&dyn SwarmPhase>,
    progress: &mut dyn FnMut(&str),
) -> Result<SyncRun<T::Observation, T::Error>, Failure> {
    sync_all_gated(target, d, req, swarm, progress, None)
}

/// [`sync_all`], asking `gate` with the plan and the observation before applying (on a dry
/// run too: a saved plan is then checked without applying it).
pub fn sync_all_gated<T: Target>(
    target: &mut T,
    d: &DesiredState,
    req: &SyncRequest,
    swarm: Option<&dyn SwarmPhase>,
    progress: &mut dyn FnMut(&str),
    gate: Option<Gate<'_>>,
) -> Result<SyncRun<T::Observation, T::Error>, Failure> {
    progress(OBSERVING);
    let observed = target.observe(d, req)?;
    let swarm_observed = swarm.map(|s| s.observe());
    progress(PLANNING);
    let mut plan = target.plan(d, &observed, req)?;
    if let (Some(s), Some(o)) = (swarm, &swarm_observed) {
        let (actions, notes) = s.plan(o);
        plan.set_swarm(actions);
        plan.notes.extend(notes);
    }
    if let Some(gate) = gate {
        gate(&plan, &target.export(&observed))?;
    }
    if req.dry_run {
        return Ok(SyncRun {
            observed,
            plan,
            journal: None,
            swarm_applied: Vec::new(),
        });
    }
    progress(APPLYING);
    let journal = target.apply(d, &plan, &observed, progress);
    let mut swarm_applied = Vec::new();
    if let Some(s) = swarm
        && journal.is_success()
        && !plan.swarm.is_empty()
    {
        progress(SWARM);
        swarm_applied = s.apply(&plan.swarm)?;
    }
    Ok(SyncRun {
        observed,
        plan,
        journal: Some(journal),
        swarm_applied,
    })
}
