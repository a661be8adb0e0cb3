//! What every target observes the same way: the managed files of a run (host and guest
//! targets), and, inside one running guest, its managed files and the manifest's
//! certificates, read through its [`GuestExec`]. What cannot be read is a note ("planned as
//! missing"), never a failure of the run.

use std::collections::BTreeSet;
use std::sync::Mutex;

use phoenix_model::model::{DesiredState, GuestId};
use phoenix_plan::observed::{ObservedCertificate, ObservedFile};
use phoenix_plan::subsystem::{self, Subsystem};
use phoenix_render::{FileTarget, RenderOptions};

use super::GuestExec;
use crate::target::{Failure, Stage, SyncRequest};

/// The files a run manages: the rendered files of its subsystems and, with a CA, the trust
/// files; never the `.fw` files (the firewall is state, through the API on a node).
pub fn managed_paths(
    d: &DesiredState,
    opts: &RenderOptions,
    req: &SyncRequest,
    pki: Option<&phoenix_plan::PkiContext>,
) -> Result<Vec<(FileTarget, String)>, Failure> {
    let files = phoenix_render::render_all(d, opts).map_err(|e| {
        Failure::new(
            Stage::Plan,
            format!("render: {e}"),
            "`phoenix render` shows the same error",
        )
    })?;
    Ok(managed_paths_of(files, req, pki))
}

/// [`managed_paths`] of files already rendered.
pub fn managed_paths_of(
    files: Vec<phoenix_render::RenderedFile>,
    req: &SyncRequest,
    pki: Option<&phoenix_plan::PkiContext>,
) -> Vec<(FileTarget, String)> {
    let trust = pki
        .map(|p| phoenix_plan::certs::trust_files(&p.trust))
        .unwrap_or_default();
    files
        .into_iter()
        .chain(trust.into_iter().filter(|_| req.includes(Subsystem::Pki)))
        .map(|f| (f.target, f.path))
        .filter(|(t, p)| subsystem::of_file(t, p) != Subsystem::Firewall)
        .filter(|(t, p)| req.includes(subsystem::of_file(t, p)))
        .collect()
}

/// The files of `wanted` inside `exec`'s guest, with owner, group and mode when
/// `with_owner` (a VM's agent reads content alone: its `exec` would be a write request).
pub fn guest_files(
    exec: &dyn GuestExec,
    wanted: &[(FileTarget, String)],
    with_owner: bool,
    notes: &mut Vec<String>,
) -> Vec<ObservedFile> {
    let id = exec.guest();
    let mut files = Vec::new();
    for (target, path) in wanted.iter().filter(|(t, _)| *t == FileTarget::Guest(id)) {
        let read = if with_owner {
            exec.read_file(path)
                .map(|f| f.map(|f| (f.content, Some(f.owner), Some(f.group), Some(f.mode))))
        } else {
            exec.read_content(path)
                .map(|c| c.map(|c| (c, None, None, None)))
        };
        match read {
            Ok(Some((content, owner, group, mode))) => files.push(ObservedFile {
                target: *target,
                path: path.clone(),
                sha256: None,
                content: Some(content),
                owner,
                group,
                mode,
            }),
            Ok(None) => {}
            Err(e) => notes.push(format!(
                "{path} in guest {id} not observed ({e}): planned as missing"
            )),
        }
    }
    files
}

/// The certificates the plan delivers into `exec`'s guest (the manifest's and the derived
/// Engine API ones, `phoenix_plan::certs::delivered_certificates`).
pub fn guest_certificates(
    d: &DesiredState,
    exec: &dyn GuestExec,
    notes: &mut Vec<String>,
) -> Vec<ObservedCertificate> {
    let id = exec.guest();
    let Some(guest) = d.guest(id) else {
        return Vec::new();
    };
    let mut certs = Vec::new();
    for entry in phoenix_plan::certs::delivered_certificates(d)
        .iter()
        .filter(|c| c.guest == id)
    {
        let cert = phoenix_pki::materialise::in_guest_path(guest, &entry.cert_path);
        let key = phoenix_pki::materialise::in_guest_path(guest, &entry.key_path);
        match crate::certs::observe(exec, &cert, &key) {
            Ok(Some(c)) => certs.push(c),
            Ok(None) => {}
            Err(e) => notes.push(format!(
                "certificate {} in guest {id} not observed ({e}): planned as missing",
                entry.common_name
            )),
        }
    }
    certs
}

/// Files inside guests a run wrote so far: a guest's services reload for them
/// ([`super::provision::apply_provision_after`]). Shared by a run's threads.
#[derive(Debug, Default)]
pub struct WrittenInGuests(Mutex<BTreeSet<(GuestId, String)>>);

impl WrittenInGuests {
    pub fn record(&self, guest: GuestId, path: &str) {
        if let Ok(mut w) = self.0.lock() {
            w.insert((guest, path.to_string()));
        }
    }

    /// The paths inside `guest` written so far.
    pub fn in_guest(&self, guest: GuestId) -> BTreeSet<String> {
        self.0
            .lock()
            .map(|w| {
                w.iter()
                    .filter(|(g, _)| *g == guest)
                    .map(|(_, p)| p.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}
