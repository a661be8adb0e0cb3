//! Execute the planner's guest actions through the API, wave by wave. Does network I/O.
//!
//! Writes to one VMID are serialized (PVE's per-guest config lock times out under parallel
//! writes — the most reported provider problem); independent guests of a wave run
//! concurrently, `parallelism` at a time. The first wave with a failure is finished (its
//! independent guests still complete) and no later wave starts. The [`Journal`] records every
//! action as done, failed (with the error), skipped (not an API action) or not started.
//!
//! Firewall actions run through [`crate::firewall`]: a guest's in plan order with its other
//! actions, the cluster's, host's and groups' as one serial group.
//!
//! Provision actions (wave "provisioning inside guests") run per guest through
//! [`phoenix_exec::guest::provision`]: `pct exec`/`pct push` via the host shell for containers, the guest
//! agent for VMs. Each step is checked first; a kept step is journaled as skipped with the
//! reason "kept: already done", an applied one as done.

use phoenix_model::model::{GuestId, GuestKind};
use std::collections::BTreeMap;
use std::time::SystemTime;

use phoenix_render::FileTarget;

use phoenix_exec::guest::observe::WrittenInGuests;
use phoenix_exec::journal::{ActionExecutor, apply_waves};
use phoenix_plan::action::Action;
use phoenix_plan::plan::Plan;
use phoenix_render::guestparams::ApiCall;
use reqwest::Method;

use crate::client::PveClient;
use crate::error::PveError;
use crate::guestexec::{LxcExec, QemuAgentExec};
use crate::observe::{Observation, kind_segment};
use phoenix_exec::guest::provision::{
    Contents, Materials, NoMaterials, StepOutcome, apply_provision_after,
};
use phoenix_exec::shell::HostShell;
use phoenix_exec::shell::files as hostfiles;

/// What happened to one action ([`phoenix_exec::journal::Outcome`] with the API's error).
pub type Outcome = phoenix_exec::journal::Outcome<PveError>;
/// One action and its outcome.
pub type JournalEntry = phoenix_exec::journal::JournalEntry<PveError>;
/// Every action of the plan with its outcome, in plan order.
pub type Journal = phoenix_exec::journal::Journal<PveError>;

/// How to apply.
#[derive(Clone)]
pub struct ApplyOptions<'a> {
    /// Guests written concurrently within a wave.
    pub parallelism: usize,
    /// The storage (with `import` content) that holds the cloud images named by bare file
    /// name; the node downloads a missing one from the configuration's URL
    /// ([`crate::image`]) and the create call imports it (`import-from`). `None`: `local`.
    pub image_store: Option<String>,
    /// The node's shell for host files and raw `lxc.*` lines. `None`: those actions are
    /// reported as [`Outcome::Skipped`].
    pub shell: Option<&'a dyn HostShell>,
    /// Who issues the manifest's certificates. `None`: certificate actions are reported as
    /// [`Outcome::Skipped`] with the reason.
    pub issuer: Option<&'a (dyn phoenix_pki::LeafIssuer + Sync)>,
}

impl std::fmt::Debug for ApplyOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyOptions")
            .field("parallelism", &self.parallelism)
            .field("image_store", &self.image_store)
            .field("shell", &self.shell)
            .field("issuer", &self.issuer.map(|i| i.identity()))
            .finish()
    }
}

impl Default for ApplyOptions<'_> {
    fn default() -> Self {
        ApplyOptions {
            parallelism: 4,
            image_store: None,
            shell: None,
            issuer: None,
        }
    }
}

/// Apply the guest actions of `plan`. `observation` gives each existing guest's node and
/// config digest. Provision steps that need apply-time material (CA files, secrets) are
/// skipped; [`apply_plan_with`] supplies it.
pub fn apply_plan(
    client: &PveClient,
    plan: &Plan,
    observation: &Observation,
    options: &ApplyOptions<'_>,
) -> Journal {
    apply_plan_with(client, plan, observation, options, &NoMaterials)
}

/// [`apply_plan`] with the material provision steps place (`ca.json`, CA certificates and
/// key, the step-ca password), by guest and name.
pub fn apply_plan_with(
    client: &PveClient,
    plan: &Plan,
    observation: &Observation,
    options: &ApplyOptions<'_>,
    materials: &dyn Materials,
) -> Journal {
    let ctx = WaveContext {
        client,
        plan,
        observation,
        options,
        materials,
        written: WrittenInGuests::default(),
    };
    apply_waves(plan, options.parallelism, &ctx)
}

/// What every action of a wave may need.
struct WaveContext<'a> {
    client: &'a PveClient,
    plan: &'a Plan,
    observation: &'a Observation,
    options: &'a ApplyOptions<'a>,
    materials: &'a dyn Materials,
    /// Files inside guests this run wrote: a guest's services reload for them.
    written: WrittenInGuests,
}

impl ActionExecutor for WaveContext<'_> {
    type Error = PveError;

    fn run_action(&self, action: &Action) -> Outcome {
        let outcome = run_action(
            self.client,
            self.plan,
            self.observation,
            self.options,
            action,
        );
        if let (
            Outcome::Done,
            Action::WriteFile {
                target: FileTarget::Guest(id),
                path,
                ..
            },
        ) = (&outcome, action)
        {
            self.written.record(*id, path);
        }
        outcome
    }

    fn run_provision(&self, actions: &[&Action]) -> Vec<Outcome> {
        run_provision(self, actions)
    }
}

fn guest_path(node: &str, kind: GuestKind, id: GuestId, rest: &str) -> String {
    format!("/nodes/{node}/{}/{id}{rest}", kind_segment(kind))
}

fn run_action(
    client: &PveClient,
    plan: &Plan,
    observation: &Observation,
    options: &ApplyOptions<'_>,
    action: &Action,
) -> Outcome {
    let node_of = |id: GuestId| observation.node_of(id).unwrap_or(&plan.node).to_string();
    let none = BTreeMap::new();
    let result = match action {
        Action::CreateGuest {
            calls,
            image_import,
            image_source,
            ..
        } => create(
            client,
            plan,
            calls,
            image_import.as_deref(),
            image_source.as_ref(),
            options,
        ),
        Action::UpdateGuest {
            id,
            kind,
            set,
            delete,
            ..
        } => {
            let mut params = set.clone();
            if !delete.is_empty() {
                params.insert("delete".into(), delete.join(","));
            }
            if let Some(digest) = observation.digests.get(id) {
                params.insert("digest".into(), digest.clone());
            }
            let path = guest_path(&node_of(*id), *kind, *id, "/config");
            client
                .write_and_wait(Method::PUT, &path, &params)
                .map(drop)
                .map_err(Step::Failed)
                .and_then(|()| {
                    // `pct set` rewrites ID.conf and may drop raw `lxc.*` lines.
                    match (kind, options.shell) {
                        (GuestKind::Lxc, Some(shell)) => {
                            let lines = raw_lines_to_keep(plan, observation, *id);
                            hostfiles::ensure_raw_lxc(shell, *id, &lines)
                                .map(drop)
                                .map_err(|e| Step::Failed(e.into()))
                        }
                        _ => Ok(()),
                    }
                })
        }
        Action::WriteFile {
            target: FileTarget::Guest(id),
            path,
            ..
        } => match plan
            .files
            .iter()
            .find(|f| f.file.target == FileTarget::Guest(*id) && f.file.path == *path)
        {
            None => Err(skip(format!("{path}: no content in the plan"))),
            Some(planned) => inside(client, plan, observation, options, *id).and_then(|exec| {
                let file = phoenix_exec::HostFile {
                    content: planned.file.content.clone(),
                    owner: planned.file.owner.clone(),
                    group: planned.file.group.clone(),
                    mode: planned.file.mode,
                };
                exec.write_file(path, &file)
                    .map_err(|e| provision_failed(*id, e))
            }),
        },
        Action::WriteFile { target, path, .. } => match options.shell {
            Some(shell) => match hostfiles::write_host_file(shell, plan, *target, path) {
                Ok(hostfiles::Written::Staged { path, written }) => {
                    return Outcome::Staged { path, written };
                }
                Ok(hostfiles::Written::Skipped(reason)) => Err(skip(reason)),
                Ok(hostfiles::Written::Replaced) => Ok(()),
                Err(e) => Err(Step::Failed(e.into())),
            },
            None => Err(skip("write_file needs the host shell".into())),
        },
        Action::WriteRawLxc { id, lines, .. } => match options.shell {
            Some(shell) => hostfiles::ensure_raw_lxc(shell, *id, lines)
                .map(drop)
                .map_err(|e| Step::Failed(e.into())),
            None => Err(skip("write_raw_lxc needs the host shell".into())),
        },
        Action::StartGuest { id, kind, .. } => {
            let path = guest_path(&node_of(*id), *kind, *id, "/status/start");
            client
                .write_and_wait(Method::POST, &path, &none)
                .map(drop)
                .map_err(Step::Failed)
                .and_then(|()| {
                    // A VM with phoenix's vendor data: its agent and cloud-init, before
                    // anything reaches inside.
                    if *kind == GuestKind::Vm && has_vendor_data(plan, *id) {
                        crate::vmboot::wait_agent_and_cloud_init(client, &node_of(*id), *id)
                            .map_err(Step::Failed)
                    } else {
                        Ok(())
                    }
                })
        }
        Action::StopGuest { id, kind, .. } => {
            // A clean shutdown, forced after the timeout (PVE's own `forceStop`).
            let params = BTreeMap::from([
                ("forceStop".to_string(), "1".to_string()),
                ("timeout".to_string(), "60".to_string()),
            ]);
            let path = guest_path(&node_of(*id), *kind, *id, "/status/shutdown");
            client
                .write_and_wait(Method::POST, &path, &params)
                .map(drop)
                .map_err(Step::Failed)
        }
        Action::DeleteGuest { id, kind, .. } => {
            let path = guest_path(&node_of(*id), *kind, *id, "");
            client
                .write_and_wait(Method::DELETE, &path, &none)
                .map(drop)
                .map_err(Step::Failed)
        }
        Action::ResizeDisk { id, call, .. } => client
            .write_and_wait(Method::PUT, &call.path(&node_of(*id)), &call.params)
            .map(drop)
            .map_err(Step::Failed),
        Action::ConvertToTemplate { id, kind } => {
            let path = guest_path(&node_of(*id), *kind, *id, "/template");
            client
                .write_and_wait(Method::POST, &path, &none)
                .map(drop)
                .map_err(Step::Failed)
        }
        Action::TakeSnapshot { id, kind, name, .. } => {
            let path = guest_path(&node_of(*id), *kind, *id, "/snapshot");
            let params = BTreeMap::from([
                ("snapname".to_string(), name.clone()),
                (
                    "description".to_string(),
                    format!("taken by phoenix: {name}"),
                ),
            ]);
            client
                .write_and_wait(Method::POST, &path, &params)
                .map(drop)
                .map_err(Step::Failed)
        }
        Action::Firewall { scope, .. } => {
            let node = match scope {
                phoenix_plan::firewall_api::FirewallScope::Guest { id, .. } => node_of(*id),
                _ => plan.node.clone(),
            };
            crate::firewall::apply_action(client, &node, action).map_err(Step::Failed)
        }
        Action::IssueCertificate { guest, .. } => match options.issuer {
            None => Err(skip(
                "no CA to issue with: pass --ca-dir (and its passphrase) to issue the manifest"
                    .into(),
            )),
            Some(issuer) => inside(client, plan, observation, options, *guest).and_then(|exec| {
                phoenix_exec::certs::deliver(action, issuer, exec.as_ref(), SystemTime::now())
                    .map(drop)
                    .map_err(|e| provision_failed(*guest, e))
            }),
        },
        Action::UpdateTrustStore { target, .. } => run_on(
            client,
            plan,
            observation,
            options,
            *target,
            &["update-ca-certificates"],
        ),
        Action::ReloadService {
            target, service, ..
        } => {
            // A service that does not run yet has nothing to reload: it reads the new files
            // when its provisioning starts it.
            match run_on(
                client,
                plan,
                observation,
                options,
                *target,
                &["systemctl", "is-active", "--quiet", service],
            ) {
                Ok(()) => run_on(
                    client,
                    plan,
                    observation,
                    options,
                    *target,
                    &["systemctl", "reload-or-restart", service],
                ),
                Err(Step::Failed(_)) => Err(skip(format!(
                    "{service} is not running there: it reads the new files when it starts"
                ))),
                Err(other) => Err(other),
            }
        }
        other => Err(skip(format!(
            "{} is not an API action (host shell / provisioning layer)",
            action_name(other)
        ))),
    };
    match result {
        Ok(()) => Outcome::Done,
        Err(Step::Failed(e)) => Outcome::Failed(e),
        Err(Step::Skipped(reason)) => Outcome::Skipped { reason },
        Err(Step::NeedsHost(what)) => Outcome::NeedsHostStep { what },
    }
}

/// A failure inside guest `guest`; a node shell without `pct` (phoenix not on a Proxmox
/// node, e.g. a scratch `--host-root`) cannot reach containers at all: skipped, said why.
fn provision_failed(guest: GuestId, e: phoenix_exec::ProvisionError) -> Step {
    if let phoenix_exec::ProvisionError::Shell(phoenix_exec::ShellError::Spawn {
        program, ..
    }) = &e
    {
        return Step::Skipped(format!(
            "guest {guest} not reachable: {program} does not run on this host (phoenix is not on the Proxmox node)"
        ));
    }
    Step::Failed(PveError::Provision {
        guest,
        message: e.to_string(),
    })
}

/// The kind of guest `id`: from the plan's own actions, else the observation.
fn kind_of(plan: &Plan, observation: &Observation, id: GuestId) -> Option<GuestKind> {
    plan.actions()
        .find_map(|a| match a {
            Action::CreateGuest { id: i, kind, .. }
            | Action::StartGuest { id: i, kind, .. }
            | Action::UpdateGuest { id: i, kind, .. }
            | Action::Provision { guest: i, kind, .. }
                if *i == id =>
            {
                Some(*kind)
            }
            _ => None,
        })
        .or_else(|| observation.state.guest(id).map(|g| g.kind))
}

/// Guest `id`'s inside: `pct` through the host shell (a container), the guest agent once it
/// answers (a VM).
fn inside<'a>(
    client: &'a PveClient,
    plan: &Plan,
    observation: &Observation,
    options: &ApplyOptions<'a>,
    id: GuestId,
) -> Result<Box<dyn phoenix_exec::GuestExec + 'a>, Step> {
    let node = observation.node_of(id).unwrap_or(&plan.node).to_string();
    match (kind_of(plan, observation, id), options.shell) {
        (Some(GuestKind::Lxc), Some(shell)) => Ok(Box::new(LxcExec::new(shell, id))),
        (Some(GuestKind::Lxc), None) => Err(Step::Skipped(
            "reaching into a container needs the host shell (pct)".into(),
        )),
        (Some(GuestKind::Vm), _) => {
            let exec = QemuAgentExec::new(client, node, id);
            exec.wait_ready(AGENT_READY_DEADLINE)
                .map_err(|e| provision_failed(id, e))?;
            Ok(Box::new(exec))
        }
        (None, _) => Err(Step::Skipped(format!(
            "guest {id} is neither observed nor created in this plan"
        ))),
    }
}

/// `argv` on `target`: the node's shell, or inside the guest; a non-zero exit fails.
fn run_on(
    client: &PveClient,
    plan: &Plan,
    observation: &Observation,
    options: &ApplyOptions<'_>,
    target: FileTarget,
    argv: &[&str],
) -> Result<(), Step> {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    match target {
        FileTarget::Host => {
            let Some(shell) = options.shell else {
                return Err(Step::Skipped(format!("{} needs the host shell", argv[0])));
            };
            let out = shell
                .run(&argv, std::time::Duration::from_secs(120))
                .map_err(|e| Step::Failed(e.into()))?;
            if out.status == 0 {
                Ok(())
            } else {
                Err(Step::Failed(PveError::Shell(
                    phoenix_exec::ShellError::Failed {
                        program: argv[0].clone(),
                        status: out.status,
                        stderr: out.stderr,
                    },
                )))
            }
        }
        FileTarget::Guest(id) => {
            let exec = inside(client, plan, observation, options, id)?;
            phoenix_exec::guest::run_ok(exec.as_ref(), &argv)
                .map(drop)
                .map_err(|e| provision_failed(id, e))
        }
    }
}

/// How long a VM's guest agent may take to answer after a start in the same run.
pub const AGENT_READY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// One guest's provision steps, in plan order, through `pct` (containers, needs the host
/// shell) or the guest agent (VMs). Kept steps are journaled as skipped ("kept"), applied ones
/// as done; after a failure the guest's later steps are not started.
fn run_provision(ctx: &WaveContext<'_>, actions: &[&Action]) -> Vec<Outcome> {
    let mut steps = Vec::new();
    let mut target = None;
    for a in actions {
        if let Action::Provision {
            guest, kind, step, ..
        } = a
        {
            target = Some((*guest, *kind));
            steps.push(step.clone());
        }
    }
    let Some((guest, kind)) = target else {
        return Vec::new();
    };
    let node = ctx
        .observation
        .node_of(guest)
        .unwrap_or(&ctx.plan.node)
        .to_string();
    let contents = Contents {
        rendered: &ctx.plan.files,
        materials: ctx.materials,
    };
    let outcomes = match (kind, ctx.options.shell) {
        (GuestKind::Lxc, Some(shell)) => apply_provision_after(
            &LxcExec::new(shell, guest),
            &steps,
            contents,
            &ctx.written.in_guest(guest),
        ),
        (GuestKind::Lxc, None) => {
            return steps
                .iter()
                .map(|_| Outcome::Skipped {
                    reason: "provisioning a container needs the host shell (pct)".into(),
                })
                .collect();
        }
        (GuestKind::Vm, _) => {
            let exec = QemuAgentExec::new(ctx.client, node, guest);
            if let Err(e) = exec.wait_ready(AGENT_READY_DEADLINE) {
                let mut first = true;
                return steps
                    .iter()
                    .map(|_| {
                        if std::mem::take(&mut first) {
                            Outcome::Failed(PveError::Provision {
                                guest,
                                message: format!("guest agent not ready: {e}"),
                            })
                        } else {
                            Outcome::NotStarted
                        }
                    })
                    .collect();
            }
            apply_provision_after(&exec, &steps, contents, &ctx.written.in_guest(guest))
        }
    };
    let mut failed = false;
    outcomes
        .into_iter()
        .map(|o| match o {
            StepOutcome::Kept => Outcome::Skipped {
                reason: "kept: already done".into(),
            },
            StepOutcome::Applied => Outcome::Done,
            StepOutcome::Failed(message) => {
                failed = true;
                Outcome::Failed(PveError::Provision { guest, message })
            }
            StepOutcome::Skipped(_) if failed => Outcome::NotStarted,
            StepOutcome::Skipped(reason) => Outcome::Skipped { reason },
        })
        .collect()
}

enum Step {
    Failed(PveError),
    Skipped(String),
    NeedsHost(String),
}

/// Whether the plan gives VM `id` a vendor snippet (so cloud-init installs its agent).
fn has_vendor_data(plan: &Plan, id: GuestId) -> bool {
    let name = format!("/{}", phoenix_render::cloudinit::snippet_name(id));
    plan.files
        .iter()
        .any(|f| f.file.target == FileTarget::Host && f.file.path.ends_with(&name))
}

/// Run a create's calls in order, waiting for each task. A bare-file cloud image comes from
/// `options.image_store` (default `local`), downloaded there by the node when missing, and
/// is imported through `import-from`.
fn create(
    client: &PveClient,
    plan: &Plan,
    calls: &[ApiCall],
    image_import: Option<&str>,
    image_source: Option<&phoenix_model::image::ImageSource>,
    options: &ApplyOptions<'_>,
) -> Result<(), Step> {
    let mut calls = calls.to_vec();
    if let Some(image) = image_import {
        let store = options.image_store.as_deref().unwrap_or("local");
        let volid = match crate::image::ensure_image(client, &plan.node, store, image, image_source)
        {
            Ok(crate::image::ImageReady::Present(v))
            | Ok(crate::image::ImageReady::Downloaded(v)) => v,
            Ok(crate::image::ImageReady::Missing(what)) => return Err(Step::NeedsHost(what)),
            Err(e) => return Err(Step::Failed(e)),
        };
        let Some(first) = calls.first_mut() else {
            return Ok(());
        };
        // The disk goes where the cloud-init drive goes (`ide2 = STORAGE:cloudinit`).
        let disk_store = first
            .params
            .get("ide2")
            .and_then(|v| v.strip_suffix(":cloudinit"))
            .unwrap_or("local-lvm")
            .to_string();
        first.params.insert(
            "scsi0".into(),
            format!("{disk_store}:0,import-from={volid}"),
        );
        first.params.insert("boot".into(), "order=scsi0".into());
    }
    for call in &calls {
        let method = Method::from_bytes(call.endpoint.method().as_bytes()).unwrap_or(Method::POST);
        client
            .write_and_wait(method, &call.path(&plan.node), &call.params)
            .map_err(Step::Failed)?;
    }
    Ok(())
}

fn skip(reason: String) -> Step {
    Step::Skipped(reason)
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::IssueCertificate { .. } => "issue_certificate",
        Action::UpdateTrustStore { .. } => "update_trust_store",
        Action::ReloadService { .. } => "reload_service",
        Action::Provision { .. } => "provision",
        _ => "action",
    }
}

/// The raw lines guest `id` must keep after an API write: the plan's, else the observed ones.
pub fn raw_lines_to_keep(plan: &Plan, observation: &Observation, id: GuestId) -> Vec<String> {
    plan.actions()
        .find_map(|a| match a {
            Action::WriteRawLxc { id: i, lines, .. } if *i == id => Some(lines.clone()),
            _ => None,
        })
        .or_else(|| observation.state.guest(id).map(|g| g.raw_lxc.clone()))
        .unwrap_or_default()
}
