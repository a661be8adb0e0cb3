//! A Proxmox VE node as a [`Target`] of the one `sync all` pipeline: guests and the firewall
//! observed through the API, the managed host files through the node's shell; the plan is
//! the planner's with the firewall's API actions merged in; apply runs every wave through
//! [`crate::apply`]. Does network and file I/O.

use std::collections::BTreeSet;

use phoenix_exec::guest::GuestExec;
use phoenix_exec::guest::observe::{guest_certificates, guest_files, managed_paths};
use phoenix_exec::guest::provision::Materials;
use phoenix_exec::plan::{PlanInput, TargetPlan, plan_target};
use phoenix_exec::shell::HostShell;
use phoenix_exec::target::{Failure, Stage, SyncRequest, Target};
use phoenix_model::model::{DesiredState, GuestId, GuestKind};
use phoenix_pki::LeafIssuer;
use phoenix_plan::Request;
use phoenix_plan::firewall_api::FirewallState;
use phoenix_plan::observed::{GuestStatus, ObservedCertificate, ObservedFile};
use phoenix_plan::plan::Plan;
use phoenix_plan::subsystem::{self, Subsystem};
use phoenix_render::{FileTarget, RenderOptions};

use crate::apply::{ApplyOptions, Journal, apply_plan_with};
use crate::client::PveClient;
use crate::error::PveError;
use crate::firewall::observe_firewall;
use crate::guestexec::{LxcExec, QemuAgentExec};
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
    /// Who issues the manifest's certificates (the built-in CA, unlocked); `None`: they are
    /// planned but not issued, said so in the journal.
    pub issuer: Option<&'a (dyn LeafIssuer + Sync)>,
    /// The issuer's public side for the planner (with `issuer`).
    pub pki: Option<phoenix_plan::PkiContext>,
}

/// What observing a node gives.
#[derive(Debug)]
pub struct PveObserved {
    pub observation: Observation,
    /// The firewall through the API (when this run includes it).
    pub firewall: Option<FirewallState>,
    /// What could not be observed (a guest's certificates), said in the plan's notes.
    pub notes: Vec<String>,
}

fn observe_failure(what: &str, e: impl std::fmt::Display, hint: &str) -> Failure {
    Failure::new(Stage::Observe, format!("{what}: {e}"), hint)
}

impl PveTarget<'_> {
    /// The files this run reads ([`managed_paths`]).
    fn host_paths(
        &self,
        d: &DesiredState,
        req: &SyncRequest,
    ) -> Result<Vec<(FileTarget, String)>, Failure> {
        managed_paths(d, &self.opts, req, self.pki.as_ref())
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
            pki: self.pki.clone(),
        };
        let mut planned = plan_target(d, &input, req, &self.opts)?;
        planned.plan.notes.extend(observed.notes.iter().cloned());
        Ok(planned)
    }
}

impl PveTarget<'_> {
    /// Guest `id`'s inside: `pct` through the host shell for a container, the guest agent
    /// for a VM.
    pub fn guest_exec(
        &self,
        observation: &Observation,
        id: GuestId,
        kind: GuestKind,
    ) -> Box<dyn GuestExec + '_> {
        match kind {
            GuestKind::Lxc => Box::new(LxcExec::new(self.shell, id)),
            GuestKind::Vm => {
                let node = observation.node_of(id).unwrap_or(self.client.node());
                Box::new(QemuAgentExec::new(self.client, node.to_string(), id))
            }
        }
    }

    /// The rendered files and the manifest's certificates inside the running guests, and
    /// why some were not looked at (a guest that is not running is planned as missing them).
    fn observe_guests_inside(
        &self,
        d: &DesiredState,
        observation: &Observation,
        wanted: &[(FileTarget, String)],
        certificates: bool,
    ) -> (Vec<ObservedFile>, Vec<ObservedCertificate>, Vec<String>) {
        let mut files = Vec::new();
        let mut certs = Vec::new();
        let mut notes = Vec::new();
        for g in observation
            .state
            .guests
            .iter()
            .filter(|g| g.status == GuestStatus::Running)
        {
            let exec = self.guest_exec(observation, g.id, g.kind);
            // A container's files with owner and mode (`pct exec stat`, a read); a VM's
            // content alone (the agent's `file-read`: its `exec` would be a write request).
            let with_owner = g.kind == GuestKind::Lxc;
            files.extend(guest_files(exec.as_ref(), wanted, with_owner, &mut notes));
            if certificates {
                certs.extend(guest_certificates(d, exec.as_ref(), &mut notes));
            }
        }
        (files, certs, notes)
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
        let mut notes = Vec::new();
        match crate::observe::observe_storages(self.client) {
            Ok(storages) => observation.state.storages = storages,
            Err(e) => notes.push(format!(
                "storages not observed ({e}): no VM vendor data is planned this run"
            )),
        }
        let mut host_paths = self.host_paths(d, req)?;
        host_paths.extend(
            phoenix_plan::vendor::snippet_files(d, &observation.state)
                .into_iter()
                .map(|f| (f.target, f.path))
                .filter(|(t, p)| req.includes(subsystem::of_file(t, p))),
        );
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
        let certificates = req.request == Request::SyncAll && req.includes(Subsystem::Pki);
        let (files, certs, why) =
            self.observe_guests_inside(d, &observation, &host_paths, certificates);
        observation.state.files.extend(files);
        observation.state.certificates = certs;
        notes.extend(why);
        Ok(PveObserved {
            observation,
            firewall,
            notes,
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
        _progress: &mut dyn FnMut(&str),
    ) -> Journal {
        let options = ApplyOptions {
            parallelism: self.parallelism,
            image_store: self.image_store.clone(),
            shell: Some(self.shell),
            issuer: self.issuer,
        };
        apply_plan_with(
            self.client,
            plan,
            &observed.observation,
            &options,
            self.materials,
        )
    }

    fn export(&self, observed: &PveObserved) -> phoenix_exec::saved::ObservedExport {
        phoenix_exec::saved::ObservedExport {
            format_version: phoenix_exec::saved::FORMAT_VERSION,
            target: format!("pve {}", self.client.node()),
            state: observed.observation.state.clone(),
            existing: observed
                .observation
                .inventory
                .iter()
                .map(|e| e.id)
                .collect(),
            firewall: observed.firewall.clone(),
        }
    }
}
