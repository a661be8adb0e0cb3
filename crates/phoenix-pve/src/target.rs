//! A Proxmox VE node as a [`Target`] of the one `sync all` pipeline: guests and the firewall
//! observed through the API, the managed host files through the node's shell; the plan is
//! the planner's with the firewall's API actions merged in; apply runs every wave through
//! [`crate::apply`]. Does network and file I/O.

use std::collections::BTreeSet;

use phoenix_exec::guest::provision::Materials;
use phoenix_exec::plan::{PlanInput, TargetPlan, plan_target};
use phoenix_exec::shell::HostShell;
use phoenix_exec::target::{Failure, Stage, SyncRequest, Target};
use phoenix_model::model::{DesiredState, GuestId};
use phoenix_plan::Request;
use phoenix_plan::firewall_api::FirewallState;
use phoenix_plan::plan::Plan;
use phoenix_plan::subsystem::{self, Subsystem};
use phoenix_render::{FileTarget, RenderOptions};

use crate::apply::{ApplyOptions, Journal, apply_plan_with};
use crate::client::PveClient;
use crate::error::PveError;
use crate::firewall::observe_firewall;
use crate::observe::{Observation, observe_guests};
use phoenix_exec::shell::files::observe_host_files;

/// Guests and firewall scopes read at once while observing.
const OBSERVE_PARALLELISM: usize = 8;

/// A node, reached through its API and its host shell.
pub struct PveTarget<'a> {
    pub client: &'a PveClient,
    pub shell: &'a dyn HostShell,
    pub opts: RenderOptions,
    /// Guests written concurrently within a wave.
    pub parallelism: usize,
    /// A storage holding imported cloud images ([`ApplyOptions::image_store`]).
    pub image_store: Option<String>,
    /// What provision steps place that phoenix only has when applying (step-ca's files).
    pub materials: &'a dyn Materials,
}

/// What observing a node gives.
#[derive(Debug)]
pub struct PveObserved {
    pub observation: Observation,
    /// The firewall through the API (when this run includes it).
    pub firewall: Option<FirewallState>,
}

fn observe_failure(what: &str, e: impl std::fmt::Display, hint: &str) -> Failure {
    Failure::new(Stage::Observe, format!("{what}: {e}"), hint)
}

impl PveTarget<'_> {
    /// The host files this run reads: the rendered host files of the subsystems in it, never
    /// the `.fw` files (the firewall goes through the API, which stores those files).
    fn host_paths(
        &self,
        d: &DesiredState,
        req: &SyncRequest,
    ) -> Result<Vec<(FileTarget, String)>, Failure> {
        let files = phoenix_render::render_all(d, &self.opts).map_err(|e| {
            Failure::new(
                Stage::Plan,
                format!("render: {e}"),
                "`phoenix render` shows the same error",
            )
        })?;
        Ok(files
            .into_iter()
            .filter(|f| f.target == FileTarget::Host)
            .map(|f| (f.target, f.path))
            .filter(|(t, p)| subsystem::of_file(t, p) != Subsystem::Firewall)
            .filter(|(t, p)| req.includes(subsystem::of_file(t, p)))
            .collect())
    }

    /// The plan and the desired firewall ([`phoenix_exec::plan::plan_target`]).
    pub fn plan_with_firewall(
        &self,
        d: &DesiredState,
        observed: &PveObserved,
        req: &SyncRequest,
    ) -> Result<TargetPlan, Failure> {
        let existing: BTreeSet<GuestId> = observed
            .observation
            .inventory
            .iter()
            .map(|e| e.id)
            .collect();
        let input = PlanInput {
            state: &observed.observation.state,
            existing: &existing,
            firewall: observed.firewall.as_ref(),
            now: phoenix_pki::issue::unix_seconds(std::time::SystemTime::now()),
        };
        plan_target(d, &input, req, &self.opts)
    }
}

impl Target for PveTarget<'_> {
    type Error = PveError;
    type Observation = PveObserved;

    fn observe(&mut self, d: &DesiredState, req: &SyncRequest) -> Result<PveObserved, Failure> {
        let managed: BTreeSet<_> = d.guests.keys().copied().collect();
        let mut observation =
            observe_guests(self.client, &managed, OBSERVE_PARALLELISM).map_err(|e| {
                observe_failure(
                    "observe guests",
                    e,
                    "is the endpoint a PVE node and the token allowed to read /cluster/resources?",
                )
            })?;
        let host_paths = self.host_paths(d, req)?;
        observation.state.files = observe_host_files(self.shell, &host_paths).map_err(|e| {
            observe_failure(
                "observe host files",
                e,
                "--host-root names the node's root (default /)",
            )
        })?;
        let firewall = if req.request == Request::SyncAll && req.includes(Subsystem::Firewall) {
            let guests: Vec<_> = observation
                .inventory
                .iter()
                .filter(|e| managed.contains(&e.id))
                .map(|e| (e.id, e.kind, e.node.clone()))
                .collect();
            let fw = observe_firewall(
                self.client,
                self.client.node(),
                &guests,
                OBSERVE_PARALLELISM,
            )
            .map_err(|e| {
                observe_failure(
                    "observe the firewall",
                    e,
                    "is the token allowed to read /cluster/firewall and the guests' firewall (Sys.Audit, VM.Audit)?",
                )
            })?;
            Some(fw)
        } else {
            None
        };
        Ok(PveObserved {
            observation,
            firewall,
        })
    }

    fn plan(
        &mut self,
        d: &DesiredState,
        observed: &PveObserved,
        req: &SyncRequest,
    ) -> Result<Plan, Failure> {
        self.plan_with_firewall(d, observed, req).map(|p| p.plan)
    }

    fn apply(
        &mut self,
        _d: &DesiredState,
        plan: &Plan,
        observed: &PveObserved,
        progress: &mut dyn FnMut(&str),
    ) -> Journal {
        progress("applying");
        let options = ApplyOptions {
            parallelism: self.parallelism,
            image_store: self.image_store.clone(),
            shell: Some(self.shell),
        };
        apply_plan_with(
            self.client,
            plan,
            &observed.observation,
            &options,
            self.materials,
        )
    }
}
