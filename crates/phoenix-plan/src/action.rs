//! The plan's vocabulary: actions, reasons and key-level changes. Serializable (for
//! `--output json`) and displayable (for the text plan). No I/O.

use std::collections::BTreeMap;
use std::fmt;

use phoenix_model::model::{CertKind, GuestId, GuestKind};
use phoenix_pki::Decision;
use phoenix_pki::postrenewal::PostRenewalAction;
use phoenix_render::FileTarget;
use phoenix_render::guestparams::ApiCall;

use crate::firewall_api::{FirewallChange, FirewallScope};
use crate::provision::ProvisionStep;
use serde::Serialize;

/// One key that differs between observed and desired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyChange {
    pub key: String,
    /// `None` when the key is absent on the target.
    pub from: Option<String>,
    /// `None` when the key is to be removed.
    pub to: Option<String>,
}

impl fmt::Display for KeyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.from, &self.to) {
            (None, Some(t)) => write!(f, "{} = {t} (new)", self.key),
            (Some(fr), Some(t)) => write!(f, "{}: {fr} → {t}", self.key),
            (Some(fr), None) => write!(f, "{}: {fr} → (removed)", self.key),
            (None, None) => write!(f, "{}", self.key),
        }
    }
}

/// Why an action is in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Reason {
    /// The thing does not exist on the target.
    Missing,
    /// It exists but differs, key by key (for files: content, owner, group or mode).
    Differs { changes: Vec<KeyChange> },
    /// It exists on the target but not in the configuration.
    Orphaned,
    /// A guest that should run is stopped (or the other way round).
    State { from: String, to: String },
    /// The operator asked for it (a verb such as `restart` or `delete`).
    Requested,
    /// A file it depends on changes in this plan (e.g. the trust bundle).
    FileChanged { path: String },
    /// Not observed (the inside of a guest): the executor checks it before changing anything.
    Unchecked,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Missing => f.write_str("missing"),
            Reason::Differs { changes } => {
                let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
                write!(f, "differs: {}", keys.join(", "))
            }
            Reason::Orphaned => f.write_str("orphaned: not in the configuration"),
            Reason::State { from, to } => write!(f, "{from}, should be {to}"),
            Reason::Requested => f.write_str("requested"),
            Reason::FileChanged { path } => write!(f, "{path} changes"),
            Reason::Unchecked => f.write_str("unchecked: checked at apply time"),
        }
    }
}

/// How a guest is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "via")]
pub enum CreateVia {
    Template {
        image: String,
    },
    Clone {
        from: GuestId,
        snapshot: Option<String>,
    },
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Write a managed file (content in [`crate::Plan::files`]).
    WriteFile {
        target: FileTarget,
        path: String,
        reason: Reason,
    },
    CreateGuest {
        id: GuestId,
        kind: GuestKind,
        name: String,
        via: CreateVia,
        /// The API calls, in order: create or clone, config, resize.
        calls: Vec<ApiCall>,
        /// A cloud image the host imports as the VM's disk first.
        image_import: Option<String>,
        /// Where the node downloads that image when its storage lacks it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_source: Option<phoenix_model::image::ImageSource>,
        reason: Reason,
    },
    /// Set only the changed keys (and delete the removed ones).
    UpdateGuest {
        id: GuestId,
        kind: GuestKind,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
        reason: Reason,
    },
    /// Grow the guest's root disk to the configured size (`resize`; Proxmox only grows):
    /// a size raised in the configuration, or a resize that failed when it was created.
    ResizeDisk {
        id: GuestId,
        kind: GuestKind,
        call: ApiCall,
        reason: Reason,
    },
    /// Raw `lxc.*` lines in `/etc/pve/lxc/ID.conf` (macvlan NICs), through the host shell.
    WriteRawLxc {
        id: GuestId,
        lines: Vec<String>,
        reason: Reason,
    },
    ConvertToTemplate {
        id: GuestId,
        kind: GuestKind,
    },
    /// Take snapshot `name` of a guest (`POST …/snapshot`, waiting for its task). A snapshot
    /// that exists is never taken again nor deleted.
    TakeSnapshot {
        id: GuestId,
        kind: GuestKind,
        name: String,
        reason: Reason,
    },
    StartGuest {
        id: GuestId,
        kind: GuestKind,
        reason: Reason,
    },
    StopGuest {
        id: GuestId,
        kind: GuestKind,
        reason: Reason,
    },
    DeleteGuest {
        id: GuestId,
        kind: GuestKind,
        reason: Reason,
    },
    /// Issue (missing) or renew (and why) one manifest entry and deliver it into its guest.
    /// Carries no key material: the key is generated when the plan is applied.
    IssueCertificate {
        guest: GuestId,
        common_name: String,
        /// `DNS:name` / `IP:address`, sorted.
        sans: Vec<String>,
        /// Paths inside the guest (mount points already mapped).
        cert_path: String,
        key_path: String,
        owner: String,
        group: String,
        key_mode: u32,
        kind: CertKind,
        lifetime_hours: u32,
        /// Append the root to the certificate file.
        include_ca: bool,
        /// Never `keep`: kept entries are listed in [`crate::Plan::certificates`] only.
        decision: Decision,
        /// Structured actions after delivery (reload service S in guest G, rotate a secret).
        post_renewal: Vec<PostRenewalAction>,
        /// The manifest's bash string, verbatim. Never run by phoenix without an explicit
        /// operator opt-in; shown so the operator can review it.
        post_renewal_command: Option<String>,
    },
    /// `update-ca-certificates` on the host or in a guest, after its trust file changed.
    UpdateTrustStore {
        target: FileTarget,
        reason: Reason,
    },
    /// `systemctl reload SERVICE` on a target (a trust consumer such as Traefik or Nginx).
    ReloadService {
        target: FileTarget,
        service: String,
        reason: Reason,
    },
    /// One provisioning step inside a guest (package, file, download, service, command):
    /// checked first, applied only when the check fails.
    Provision {
        guest: GuestId,
        kind: GuestKind,
        step: ProvisionStep,
        reason: Reason,
    },
    /// One firewall API call in one scope ([`crate::firewall_api`]); a scope's actions run in
    /// plan order (rule positions count the earlier ones). `digest`: the observed digest of
    /// the list or options, sent with the scope's first write (optimistic lock).
    Firewall {
        scope: FirewallScope,
        change: FirewallChange,
        #[serde(skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
        reason: Reason,
    },
}

/// How an action counts in the summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Create,
    Change,
    Delete,
    /// Checked when applied; changes only what its check finds missing.
    Check,
}

impl Action {
    pub fn effect(&self) -> Effect {
        match self {
            Action::WriteFile {
                reason: Reason::Missing,
                ..
            }
            | Action::CreateGuest { .. }
            | Action::TakeSnapshot { .. }
            | Action::IssueCertificate {
                decision: Decision::Issue { .. },
                ..
            } => Effect::Create,
            Action::DeleteGuest { .. } => Effect::Delete,
            Action::Firewall { change, .. } if change.is_create() => Effect::Create,
            Action::Firewall { change, .. } if change.is_delete() => Effect::Delete,
            Action::Provision {
                reason: Reason::Unchecked,
                ..
            } => Effect::Check,
            _ => Effect::Change,
        }
    }

    /// The guest an action is about, if any.
    pub fn guest(&self) -> Option<GuestId> {
        match self {
            Action::WriteFile {
                target: FileTarget::Guest(id),
                ..
            } => Some(*id),
            Action::WriteFile { .. } => None,
            Action::Firewall {
                scope: FirewallScope::Guest { id, .. },
                ..
            } => Some(*id),
            Action::Firewall { .. } => None,
            Action::UpdateTrustStore { target, .. } | Action::ReloadService { target, .. } => {
                match target {
                    FileTarget::Guest(id) => Some(*id),
                    FileTarget::Host => None,
                }
            }
            Action::IssueCertificate { guest, .. } | Action::Provision { guest, .. } => {
                Some(*guest)
            }
            Action::CreateGuest { id, .. }
            | Action::UpdateGuest { id, .. }
            | Action::ResizeDisk { id, .. }
            | Action::WriteRawLxc { id, .. }
            | Action::ConvertToTemplate { id, .. }
            | Action::TakeSnapshot { id, .. }
            | Action::StartGuest { id, .. }
            | Action::StopGuest { id, .. }
            | Action::DeleteGuest { id, .. } => Some(*id),
        }
    }
}

fn target_name(t: &FileTarget) -> String {
    match t {
        FileTarget::Host => "host".into(),
        FileTarget::Guest(id) => format!("guest {id}"),
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::WriteFile {
                target,
                path,
                reason,
            } => {
                let verb = if *reason == Reason::Missing {
                    "create"
                } else {
                    "update"
                };
                write!(
                    f,
                    "{verb} file {path} on {} ({reason})",
                    target_name(target)
                )
            }
            Action::CreateGuest {
                id,
                kind,
                name,
                via,
                ..
            } => match via {
                CreateVia::Template { image } => write!(
                    f,
                    "create {kind} {id} {name} from template {image} (missing)"
                ),
                CreateVia::Clone { from, snapshot } => match snapshot {
                    Some(s) => write!(
                        f,
                        "create {kind} {id} {name} as a clone of {from}@{s} (missing)"
                    ),
                    None => write!(
                        f,
                        "create {kind} {id} {name} as a clone of {from} (missing)"
                    ),
                },
            },
            Action::UpdateGuest {
                id, kind, reason, ..
            } => write!(f, "update {kind} {id} ({reason})"),
            Action::ResizeDisk {
                id, kind, reason, ..
            } => write!(f, "grow the disk of {kind} {id} ({reason})"),
            Action::WriteRawLxc { id, reason, .. } => {
                write!(f, "write raw lxc lines of {id} ({reason})")
            }
            Action::ConvertToTemplate { id, kind } => {
                write!(f, "convert {kind} {id} to a template")
            }
            Action::TakeSnapshot {
                id,
                kind,
                name,
                reason,
            } => write!(f, "take snapshot {name} of {kind} {id} ({reason})"),
            Action::StartGuest { id, kind, reason } => write!(f, "start {kind} {id} ({reason})"),
            Action::StopGuest { id, kind, reason } => write!(f, "stop {kind} {id} ({reason})"),
            Action::DeleteGuest { id, kind, reason } => write!(f, "delete {kind} {id} ({reason})"),
            Action::IssueCertificate {
                guest,
                common_name,
                cert_path,
                decision,
                ..
            } => write!(
                f,
                "certificate {common_name} → guest {guest} {cert_path}: {decision}"
            ),
            Action::UpdateTrustStore { target, reason } => write!(
                f,
                "run update-ca-certificates on {} ({reason})",
                target_name(target)
            ),
            Action::ReloadService {
                target,
                service,
                reason,
            } => write!(
                f,
                "reload service {service} on {} ({reason})",
                target_name(target)
            ),
            Action::Provision {
                guest,
                step,
                reason,
                ..
            } => write!(f, "in guest {guest}: {step} ({reason})"),
            Action::Firewall {
                scope,
                change,
                reason,
                ..
            } => write!(f, "firewall {scope}: {change} ({reason})"),
        }
    }
}
