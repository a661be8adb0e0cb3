//! The lab's [`ActionExecutor`]: every action kind of the node's plan, carried out in the
//! lab (the table in docs/lab-executor.md).
//! - host files → the lab node's root ([`crate::node`]); a staged file (interfaces) is
//!   switched in place, as `--switch-network` does on a node;
//! - guest create / update / raw lines / template → the guest's config in PVE form; the
//!   network (namespaces, NICs, bridges, NAT, the mesh DNS and DHCP) is realised from the
//!   same configuration the `netN` strings are rendered from, once, before the first guest
//!   action needs it; what the lab does not model (memory, cores, disk, …) is recorded in the
//!   config and journaled "not modelled", never a rebuild;
//! - starts / stops → the guest's started mark (a guest runs while its namespace exists);
//! - certificates → issued by the lab's CA and delivered into the guest root with owner and
//!   mode ([`phoenix_exec::certs::deliver`]); trust files and reloads as on a node;
//! - provision steps → [`phoenix_exec::guest::provision::apply_provision`] over the lab's
//!   `GuestExec`; a `service` step starts the real program ([`crate::guest_services`]);
//! - firewall actions → the lab's firewall state, compiled per guest after the waves.
//!
//! Root only; does I/O (files under the state dir, namespaces, processes).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::SystemTime;

use phoenix_exec::guest::GuestExec;
use phoenix_exec::guest::observe::WrittenInGuests;
use phoenix_exec::guest::provision::{Contents, StepOutcome, apply_provision_after};
use phoenix_exec::journal::{ActionExecutor, Outcome};
use phoenix_exec::shell::HostFile;
use phoenix_exec::shell::files::{Written, ensure_raw_lxc, write_host_file};
use phoenix_model::model::{DesiredState, GuestId, GuestKind};
use phoenix_plan::action::{Action, CreateVia};
use phoenix_plan::firewall_api::FirewallState;
use phoenix_plan::plan::Plan;
use phoenix_plan::provision::{ProvisionStep, StepKind};
use phoenix_render::{FileTarget, RenderedFile};

use crate::guest_services::{self, Started};
use crate::node::{
    LabNode, parse_conf, render_conf, resized, settings_after_create, snapshot_names, with_snapshot,
};
use crate::topology::LabTopology;
use crate::{LabError, state_dir};

/// Guest settings the lab records but does not model: a node applies them.
pub const NOT_MODELLED: &[&str] = &[
    "cores",
    "memory",
    "swap",
    "rootfs",
    "scsi0",
    "onboot",
    "startup",
    "unprivileged",
    "features",
    "cpulimit",
    "balloon",
];

/// The lab's executor for one plan.
pub struct LabExecutor<'a> {
    d: &'a DesiredState,
    t: &'a LabTopology,
    plan: &'a Plan,
    node: LabNode,
    rendered: Vec<RenderedFile>,
    /// The network's state: `None` until a guest action needed it, then how it went.
    network: Mutex<Option<Result<(), String>>>,
    notes: Mutex<BTreeSet<String>>,
    /// Files inside guests this run wrote: a guest's services restart for them.
    written: WrittenInGuests,
    /// step-ca's apply-time files, made once per run (every guest's group asks).
    materials: std::sync::OnceLock<crate::provision::LabMaterials>,
}

fn failed(reason: impl Into<String>) -> Outcome<LabError> {
    Outcome::Failed(LabError::Provision(reason.into()))
}

fn skipped(reason: impl Into<String>) -> Outcome<LabError> {
    Outcome::Skipped {
        reason: reason.into(),
    }
}

impl<'a> LabExecutor<'a> {
    pub fn new(d: &'a DesiredState, t: &'a LabTopology, plan: &'a Plan, prefix: &str) -> Self {
        LabExecutor {
            d,
            t,
            plan,
            node: LabNode::new(prefix),
            rendered: phoenix_render::render_all(d, &Default::default()).unwrap_or_default(),
            network: Mutex::new(None),
            notes: Mutex::new(BTreeSet::new()),
            written: WrittenInGuests::default(),
            materials: std::sync::OnceLock::new(),
        }
    }

    /// What the lab did differently from a node in this run, once each.
    pub fn notes(&self) -> Vec<String> {
        self.notes
            .lock()
            .map(|n| n.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn note(&self, n: impl Into<String>) {
        if let Ok(mut notes) = self.notes.lock() {
            notes.insert(n.into());
        }
    }

    /// The lab's network, realised once per run when a guest action needs it: built when
    /// nothing is up; when it is up, the mesh DNS and NAT follow the configuration, and a
    /// changed topology (bridges, NICs, addresses) is refused with what to do.
    fn network(&self) -> Result<(), LabError> {
        let mut state = self.network.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(done) = state.as_ref() {
            return done.clone().map_err(LabError::Provision);
        }
        let done = crate::realise::ensure_network(self.t).map(|said| {
            for s in said {
                self.note(s);
            }
        });
        *state = Some(done.as_ref().map(drop).map_err(|e| e.to_string()));
        done
    }

    /// Guest `id`'s inside (its file root made on first use).
    fn exec(&self, id: GuestId) -> Result<crate::provision::LabExec, LabError> {
        let x =
            crate::provision::exec_for(self.d, self.t, id, &self.rendered).ok_or_else(|| {
                LabError::Provision(format!(
                    "guest {id} has no namespace in the lab (a template has no inside)"
                ))
            })?;
        std::fs::create_dir_all(&x.root).map_err(|e| LabError::io(&x.root, e))?;
        Ok(x)
    }

    fn host_file(&self, target: FileTarget, path: &str) -> Outcome<LabError> {
        let shell = self.node.shell();
        match write_host_file(&shell, self.plan, target, path) {
            Ok(Written::Replaced) => Outcome::Done,
            Ok(Written::Skipped(reason)) => skipped(reason),
            Ok(Written::Staged { path: staged, .. }) => {
                // The lab's switch: the staged file becomes the live one (the lab realises its
                // network from the same configuration, see `network`).
                let from = self.node.root.join(staged.trim_start_matches('/'));
                let to = self.node.root.join(path.trim_start_matches('/'));
                match std::fs::rename(&from, &to) {
                    Ok(()) => {
                        self.note(format!(
                            "{path}: switched in the lab node at once (a node stages it for `--switch-network`)"
                        ));
                        Outcome::Done
                    }
                    Err(e) => Outcome::Failed(LabError::io(&to, e)),
                }
            }
            Err(e) => failed(e.to_string()),
        }
    }

    fn create(
        &self,
        id: GuestId,
        kind: GuestKind,
        via: &CreateVia,
        calls: &[phoenix_render::guestparams::ApiCall],
    ) -> Outcome<LabError> {
        let source = match via {
            CreateVia::Clone { from, snapshot } => {
                let Some(text) = self.node.read_conf(*from, kind) else {
                    return failed(format!(
                        "clone source {from} does not exist in the lab node"
                    ));
                };
                // As on a node: a clone from `from@snapshot` needs that snapshot.
                if let Some(snap) = snapshot
                    && !snapshot_names(&text).contains(snap)
                {
                    return failed(format!(
                        "clone source {from} has no snapshot {snap} in the lab node"
                    ));
                }
                Some(parse_conf(&text))
            }
            CreateVia::Template { .. } => None,
        };
        let settings = settings_after_create(calls, source.as_ref());
        if let Err(e) = self.node.write_conf(id, kind, &render_conf(&settings, "")) {
            return Outcome::Failed(e);
        }
        if let Some(img) = match via {
            CreateVia::Template { image } => Some(image),
            CreateVia::Clone { .. } => None,
        } {
            self.note(format!(
                "guest images ({img}, …) are not unpacked in the lab: a guest is its namespace and its file root"
            ));
        }
        match self.network() {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Failed(e),
        }
    }

    fn update(
        &self,
        id: GuestId,
        kind: GuestKind,
        set: &std::collections::BTreeMap<String, String>,
        delete: &[String],
    ) -> Outcome<LabError> {
        let Some(text) = self.node.read_conf(id, kind) else {
            return failed(format!("guest {id} does not exist in the lab node"));
        };
        let mut s = parse_conf(&text);
        for k in delete {
            s.remove(k);
        }
        s.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Err(e) = self.node.write_conf(id, kind, &render_conf(&s, &text)) {
            return Outcome::Failed(e);
        }
        let keys: BTreeSet<&str> = set
            .keys()
            .map(String::as_str)
            .chain(delete.iter().map(String::as_str))
            .collect();
        let modelled: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| !NOT_MODELLED.contains(k))
            .collect();
        if modelled.is_empty() {
            let what: Vec<String> = keys
                .iter()
                .map(|k| match set.get(*k) {
                    Some(v) => format!("{k}={v}"),
                    None => format!("{k} removed"),
                })
                .collect();
            return skipped(format!(
                "not modelled in the lab: {} (a node applies it; recorded in the lab node's config, nothing rebuilt)",
                what.join(", ")
            ));
        }
        match self.network() {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Failed(e),
        }
    }

    fn inside_file(&self, id: GuestId, path: &str) -> Outcome<LabError> {
        let Some(planned) = self
            .plan
            .files
            .iter()
            .find(|f| f.file.target == FileTarget::Guest(id) && f.file.path == path)
        else {
            return skipped(format!("{path}: no content in the plan"));
        };
        let file = HostFile {
            content: planned.file.content.clone(),
            owner: planned.file.owner.clone(),
            group: planned.file.group.clone(),
            mode: planned.file.mode,
        };
        match self.exec(id).and_then(|x| {
            x.write_file(path, &file)
                .map_err(|e| LabError::Provision(e.to_string()))
        }) {
            Ok(()) => {
                self.written.record(id, path);
                Outcome::Done
            }
            Err(e) => Outcome::Failed(e),
        }
    }

    /// Issued by the CA guest's step-ca when it runs (as a node's renewals are), else by the
    /// lab's CA directly (the same root and intermediate step-ca serves with).
    fn certificate(&self, guest: GuestId, action: &Action) -> Outcome<LabError> {
        let prefix = &self.t.prefix;
        let issued = crate::roots::lab_ca(self.d, prefix).and_then(|ca| {
            let exec = self.exec(guest)?;
            let deliver = |issuer: &dyn phoenix_pki::LeafIssuer| {
                phoenix_exec::certs::deliver(action, issuer, &exec, SystemTime::now())
                    .map(drop)
                    .map_err(|e| LabError::Provision(e.to_string()))
            };
            let step_ca = guest_services::step_ca(prefix)
                .filter(|_| guest_services::running(prefix, "step-ca").is_some());
            match step_ca {
                Some(sc) => {
                    let root = ca.public().root_pem().to_string();
                    crate::stepca::with_issuer(&sc, &root, deliver)??;
                    self.note(format!("certificates issued by step-ca ({})", sc.url));
                }
                None => {
                    deliver(&ca)?;
                    self.note(
                        "certificates issued by the lab's CA (step-ca does not run yet; the same root and intermediate it serves with)",
                    );
                }
            }
            Ok(())
        });
        match issued {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Failed(e),
        }
    }

    fn reload(&self, target: FileTarget, service: &str) -> Outcome<LabError> {
        let FileTarget::Guest(id) = target else {
            return skipped(format!(
                "{service} on the hypervisor: the lab runs the host's services from its own network setup"
            ));
        };
        match guest_services::reload(self.d, self.t, id, service) {
            Ok(true) => Outcome::Done,
            Ok(false) => skipped(format!(
                "{service} is not running there: it reads the new files when it starts"
            )),
            Err(e) => Outcome::Failed(e),
        }
    }
}

impl ActionExecutor for LabExecutor<'_> {
    type Error = LabError;

    fn run_action(&self, action: &Action) -> Outcome<LabError> {
        match action {
            Action::WriteFile {
                target: FileTarget::Guest(id),
                path,
                ..
            } => self.inside_file(*id, path),
            Action::WriteFile { target, path, .. } => self.host_file(*target, path),
            Action::CreateGuest {
                id,
                kind,
                via,
                calls,
                ..
            } => self.create(*id, *kind, via, calls),
            Action::UpdateGuest {
                id,
                kind,
                set,
                delete,
                ..
            } => self.update(*id, *kind, set, delete),
            Action::ResizeDisk { id, kind, call, .. } => {
                let Some(text) = self.node.read_conf(*id, *kind) else {
                    return failed(format!("guest {id} does not exist in the lab node"));
                };
                let mut s = parse_conf(&text);
                resized(&mut s, &call.params);
                match self.node.write_conf(*id, *kind, &render_conf(&s, &text)) {
                    Ok(()) => skipped(
                        "not modelled in the lab: disk size (a node grows the disk; recorded in the lab node's config)",
                    ),
                    Err(e) => Outcome::Failed(e),
                }
            }
            Action::WriteRawLxc { id, lines, .. } => {
                match ensure_raw_lxc(&self.node.shell(), *id, lines) {
                    Ok(_) => Outcome::Done,
                    Err(e) => failed(e.to_string()),
                }
            }
            Action::ConvertToTemplate { id, kind } => {
                let Some(text) = self.node.read_conf(*id, *kind) else {
                    return failed(format!("guest {id} does not exist in the lab node"));
                };
                let mut s = parse_conf(&text);
                s.insert("template".into(), "1".into());
                match self.node.write_conf(*id, *kind, &render_conf(&s, &text)) {
                    Ok(()) => Outcome::Done,
                    Err(e) => Outcome::Failed(e),
                }
            }
            Action::TakeSnapshot { id, kind, name, .. } => {
                let Some(text) = self.node.read_conf(*id, *kind) else {
                    return failed(format!("guest {id} does not exist in the lab node"));
                };
                if parse_conf(&text).get("template").is_some_and(|t| t == "1") {
                    return failed(format!(
                        "guest {id} is a template: a template cannot be snapshotted (as on a node)"
                    ));
                }
                if snapshot_names(&text).iter().any(|n| n == name) {
                    return failed(format!("snapshot {name} of guest {id} exists already"));
                }
                match self
                    .node
                    .write_conf(*id, *kind, &with_snapshot(&text, name))
                {
                    Ok(()) => Outcome::Done,
                    Err(e) => Outcome::Failed(e),
                }
            }
            Action::StartGuest { id, .. } => match self
                .network()
                .and_then(|()| self.node.set_started(*id, true))
            {
                Ok(()) => Outcome::Done,
                Err(e) => Outcome::Failed(e),
            },
            Action::StopGuest { id, .. } => match self.node.set_started(*id, false) {
                Ok(()) => {
                    self.note("a stopped guest keeps its namespace in the lab (its links stay up until `lab down`)");
                    Outcome::Done
                }
                Err(e) => Outcome::Failed(e),
            },
            Action::DeleteGuest { id, kind, .. } => match self.node.remove_conf(*id, *kind) {
                Ok(()) => {
                    self.note("a deleted guest's namespace goes with `lab down`");
                    Outcome::Done
                }
                Err(e) => Outcome::Failed(e),
            },
            Action::IssueCertificate { guest, .. } => self.certificate(*guest, action),
            Action::UpdateTrustStore { .. } => {
                self.note("trust stores: the lab's programs read the trust files themselves (no update-ca-certificates runs in the lab)");
                Outcome::Done
            }
            Action::ReloadService {
                target, service, ..
            } => self.reload(*target, service),
            // Recorded by the target after the waves (the lab's firewall state).
            Action::Firewall { .. } => Outcome::Done,
            Action::Provision { .. } => skipped("a provision step runs with its guest's steps"),
        }
    }

    fn run_provision(&self, actions: &[&Action]) -> Vec<Outcome<LabError>> {
        let mut steps: Vec<ProvisionStep> = Vec::new();
        let mut guest = None;
        for a in actions {
            if let Action::Provision { guest: g, step, .. } = a {
                guest = Some(*g);
                steps.push(step.clone());
            }
        }
        let Some(guest) = guest else {
            return Vec::new();
        };
        let exec = match self.network().and_then(|()| self.exec(guest)) {
            Ok(x) => x,
            Err(e) => {
                let msg = e.to_string();
                return steps
                    .iter()
                    .enumerate()
                    .map(|(i, _)| {
                        if i == 0 {
                            failed(msg.clone())
                        } else {
                            Outcome::NotStarted
                        }
                    })
                    .collect();
            }
        };
        let materials = self.materials.get_or_init(|| {
            let (m, notes) = crate::provision::lab_materials(self.d, &self.t.prefix);
            for n in notes {
                self.note(n);
            }
            m
        });
        let contents = Contents {
            rendered: &self.plan.files,
            materials,
        };
        let mut changed = self.written.in_guest(guest);
        let outcomes = apply_provision_after(&exec, &steps, contents, &changed);
        let mut out = Vec::new();
        let mut stop = false;
        for (step, o) in steps.iter().zip(outcomes) {
            if stop {
                out.push(Outcome::NotStarted);
                continue;
            }
            let outcome = match (&step.kind, o) {
                (_, StepOutcome::Failed(m)) => {
                    stop = true;
                    failed(m)
                }
                (
                    StepKind::Service {
                        name, reload_on, ..
                    },
                    _,
                ) => {
                    let restart = reload_on.iter().any(|p| changed.contains(p));
                    match guest_services::ensure(self.d, self.t, guest, name, restart) {
                        Ok(Started::Started(said)) => {
                            self.note(format!("guest {guest}: {said}"));
                            Outcome::Done
                        }
                        Ok(Started::Running) => skipped("kept: already running"),
                        Ok(Started::NotInLab(why)) => skipped(why),
                        Err(e) => {
                            stop = true;
                            Outcome::Failed(e)
                        }
                    }
                }
                (StepKind::File { path, .. }, StepOutcome::Applied) => {
                    changed.insert(path.clone());
                    Outcome::Done
                }
                (_, StepOutcome::Applied) => Outcome::Done,
                (_, StepOutcome::Kept) => skipped("kept: already done"),
                (_, StepOutcome::Skipped(r)) => skipped(r),
            };
            out.push(outcome);
        }
        out
    }
}

/// The lab's firewall state made `fw` (the run's desired firewall), and each guest's
/// nftables table loaded where it is missing, differs from the policy, or no longer lists as
/// it did when it was loaded ([`crate::guestfw::ensure`]). The tables are compiled from the
/// configuration's policy, which `fw` is made from. Returns what was loaded, and why.
pub fn load_firewall(
    d: &DesiredState,
    t: &LabTopology,
    node: &LabNode,
    fw: &FirewallState,
) -> Result<Vec<String>, LabError> {
    node.set_firewall(fw)?;
    let present: BTreeSet<String> = crate::teardown::namespaces(&t.prefix).into_iter().collect();
    let dir = state_dir(&t.prefix);
    // Each guest's table is its own namespace's: all compared and loaded at once.
    std::thread::scope(|scope| {
        let loads: Vec<_> = crate::guestfw::rulesets(d, t)
            .into_iter()
            .filter(|(ns, _)| present.contains(ns))
            .map(|(ns, text)| {
                let dir = &dir;
                scope.spawn(move || crate::guestfw::ensure(&ns, &text, dir))
            })
            .collect();
        let mut said = Vec::new();
        for h in loads {
            let loaded = h.join().unwrap_or_else(|_| {
                Err(LabError::Provision(
                    "loading a guest's firewall panicked".into(),
                ))
            })?;
            said.extend(loaded);
        }
        Ok(said)
    })
}

/// The Swarm after the waves, as on a node: the engines the plan's `docker` steps started,
/// init, join, labels and the overlay; the stack's service as the lab's stand-in (no
/// Portainer image here). Nothing when the configuration has no Swarm or no engine runs.
pub fn converge_swarm(
    d: &DesiredState,
    t: &LabTopology,
    plan: &Plan,
) -> Result<Vec<String>, LabError> {
    if !crate::swarm::dockerd_available() {
        return Ok(Vec::new());
    }
    let Some(sp) = crate::swarm::plan(d, t)? else {
        return Ok(Vec::new());
    };
    let wanted = sp
        .nodes
        .iter()
        .any(|n| crate::swarm::engine_pid(n).is_some())
        || plan.waves.iter().flat_map(|w| &w.actions).any(|a| {
            matches!(a, Action::Provision { step, .. }
                if matches!(&step.kind, StepKind::Service { name, .. } if name == "docker"))
        });
    if !wanted {
        return Ok(Vec::new());
    }
    // phoenix's Engine API client certificate, as `sync all --target pve --ca-dir` keeps it.
    let client = crate::swarm::tls::ensure_client(d, &t.prefix)?;
    let stand_in = crate::ingress::swarm_stand_in_for(d, t)?;
    // While a new Swarm forms, the stand-in's image goes into its engine beside it (nothing
    // shared); on a formed one the deploy's own check is enough (hashing the image twice a
    // run is not).
    let forming = crate::swarm::load(&t.prefix).is_none();
    let (st, preloaded) = std::thread::scope(|scope| {
        let preload = stand_in
            .as_ref()
            .filter(|_| forming)
            .map(|si| scope.spawn(|| crate::swarm::service::preload_image(&sp, si.guest)));
        let st = crate::swarm::up(d, t, false);
        let preloaded = preload.map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(LabError::Provision("the image import panicked".into())))
        });
        (st, preloaded)
    });
    let Some(st) = st? else {
        return Ok(Vec::new());
    };
    let mut changes: Vec<String> = client.into_iter().collect();
    changes.extend(st.changes);
    if let Some(p) = preloaded {
        changes.extend(p?);
    }
    // verify's probe containers start while the stand-in's task is scheduled (the first
    // verify then finds them attached; they are instruments, not part of the plan).
    let deployed = std::thread::scope(|scope| {
        scope.spawn(|| crate::swarm::checks::start_probes(&st.plan));
        stand_in
            .as_ref()
            .map(|si| crate::ingress::deploy_swarm_stand_in(&st.plan, si))
            .transpose()
    });
    changes.extend(deployed?.unwrap_or_default());
    Ok(changes)
}
