//! Shared planner test helpers: fixtures, a model executor (what a target looks like after a
//! plan ran), and scratch CAs for certificate planning.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use phoenix_model::model::{CertKind, DesiredState};
use phoenix_pki::{CaOptions, CaPublic, CaStore, RenewalPolicy};
use phoenix_plan::action::Action;
use phoenix_plan::observed::{
    GuestStatus, ObservedCertificate, ObservedFile, ObservedGuest, ObservedKey, ObservedProvision,
    ObservedState,
};
use phoenix_plan::spec::guest_spec;
use phoenix_plan::{PkiContext, Plan, PlanContext};

pub fn homelab() -> DesiredState {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    let v = phoenix_model::validate_dir(&dir);
    v.desired.unwrap_or_else(|| panic!("homelab did not build"))
}

/// A fixed "now" (2026-06-01T00:00:00Z).
pub const T0: i64 = 1_780_272_000;

fn at(unix: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(unix as u64)
}

/// A scratch CA (public side, loaded back from disk) and the same CA after one rotation.
pub fn ca_and_rotated() -> (CaPublic, CaPublic) {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = CaOptions {
        kdf_iterations: 1000,
        ..CaOptions::default()
    };
    let mut store = CaStore::init(dir.path(), &opts, at(T0 - 86_400)).expect("ca init");
    let first = CaPublic::load(dir.path()).expect("load");
    store.rotate(at(T0 - 3600)).expect("rotate");
    let rotated = CaPublic::load(dir.path()).expect("load rotated");
    (first, rotated)
}

pub fn context(ca: &CaPublic, d: &DesiredState, now: i64) -> PlanContext {
    PlanContext {
        now,
        pki: Some(PkiContext::from_ca(ca, d, RenewalPolicy::default()).expect("pki context")),
    }
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/upstream")
        .join(name)
        .join("etc")
}

pub fn desired(name: &str) -> DesiredState {
    let v = phoenix_model::validate_dir(&fixture(name));
    v.desired.unwrap_or_else(|| panic!("{name} did not build"))
}

/// A model executor: what the target looks like after `plan` ran on `observed`.
pub fn execute(d: &DesiredState, plan: &Plan, observed: &ObservedState) -> ObservedState {
    execute_with(d, plan, observed, &PlanContext::default())
}

/// The model executor with the time and CA of `ctx`: an issued certificate is observed as the
/// CA would have issued it (SANs, lifetime from now, the current intermediate as issuer).
pub fn execute_with(
    d: &DesiredState,
    plan: &Plan,
    observed: &ObservedState,
    ctx: &PlanContext,
) -> ObservedState {
    let mut o = observed.clone();
    for f in &plan.files {
        o.files
            .retain(|x| !(x.target == f.file.target && x.path == f.file.path));
        o.files.push(ObservedFile {
            target: f.file.target,
            path: f.file.path.clone(),
            sha256: Some(f.sha256.clone()),
            content: Some(f.file.content.clone()),
            owner: Some(f.file.owner.clone()),
            group: Some(f.file.group.clone()),
            mode: Some(f.file.mode),
        });
    }
    for a in plan.actions() {
        match a {
            // Proxmox keeps what phoenix sent: the managed keys.
            Action::CreateGuest { id, kind, .. } => o.guests.push(ObservedGuest {
                id: *id,
                kind: *kind,
                status: GuestStatus::Stopped,
                config: d
                    .guests
                    .get(id)
                    .map(|g| guest_spec(g, d).config)
                    .unwrap_or_default(),
                raw_lxc: Vec::new(),
                template: false,
                snapshots: Vec::new(),
            }),
            Action::UpdateGuest {
                id, set, delete, ..
            } => {
                if let Some(g) = o.guests.iter_mut().find(|g| g.id == *id) {
                    g.config.extend(set.clone());
                    for k in delete {
                        g.config.remove(k);
                    }
                }
            }
            Action::WriteRawLxc { id, lines, .. } => {
                if let Some(g) = o.guests.iter_mut().find(|g| g.id == *id) {
                    g.raw_lxc = lines.clone();
                }
            }
            Action::ResizeDisk { id, call, .. } => {
                if let (Some(g), Some(disk), Some(size)) = (
                    o.guests.iter_mut().find(|g| g.id == *id),
                    call.params.get("disk"),
                    call.params.get("size"),
                ) {
                    g.config.insert(disk.clone(), format!("size={size}"));
                }
            }
            Action::StartGuest { id, .. } => {
                if let Some(g) = o.guests.iter_mut().find(|g| g.id == *id) {
                    g.status = GuestStatus::Running;
                }
            }
            Action::StopGuest { id, .. } => {
                if let Some(g) = o.guests.iter_mut().find(|g| g.id == *id) {
                    g.status = GuestStatus::Stopped;
                }
            }
            Action::DeleteGuest { id, .. } => o.guests.retain(|g| g.id != *id),
            Action::ConvertToTemplate { id, .. } => {
                if let Some(g) = o.guests.iter_mut().find(|g| g.id == *id) {
                    g.template = true;
                }
            }
            Action::TakeSnapshot { id, name, .. } => {
                if let Some(g) = o.guests.iter_mut().find(|g| g.id == *id) {
                    assert!(!g.template, "snapshot {name} of template {id}");
                    assert!(
                        !g.snapshots.contains(name),
                        "snapshot {name} of {id} taken twice"
                    );
                    g.snapshots.push(name.clone());
                }
            }
            // The executor checks, then applies what was missing: afterwards every step is done.
            Action::Provision { guest, step, .. } => {
                let key = step.done_key();
                match o.provisioned.iter_mut().find(|p| p.guest == *guest) {
                    Some(p) => {
                        if !p.done.contains(&key) {
                            p.done.push(key);
                        }
                    }
                    None => o.provisioned.push(ObservedProvision {
                        guest: *guest,
                        done: vec![key],
                    }),
                }
            }
            // The firewall through the API is not modelled here (`plan` never plans it; the
            // CLI merges it in from `phoenix_plan::firewall_api`).
            Action::WriteFile { .. }
            | Action::UpdateTrustStore { .. }
            | Action::ReloadService { .. }
            | Action::Firewall { .. } => {}
            Action::IssueCertificate {
                guest,
                common_name,
                sans,
                cert_path,
                kind,
                lifetime_hours,
                ..
            } => {
                o.certificates
                    .retain(|c| !(c.guest == *guest && c.path == *cert_path));
                let serial = format!("{:032x}", o.certificates.len() + 1);
                o.certificates.push(ObservedCertificate {
                    guest: *guest,
                    path: cert_path.clone(),
                    serial,
                    common_name: Some(common_name.clone()),
                    sans: sans.clone(),
                    not_before: ctx.now - 60,
                    not_after: ctx.now + i64::from(*lifetime_hours) * 3600,
                    issuer_key_id: ctx
                        .pki
                        .as_ref()
                        .map(|p| p.identity.intermediate_key_id.clone()),
                    key_type: Some("ecdsa-p256".into()),
                    usage: Some(
                        match kind {
                            CertKind::Server => "server",
                            CertKind::Client => "client",
                        }
                        .into(),
                    ),
                    key: Some(ObservedKey::Matches),
                });
            }
        }
    }
    o
}
