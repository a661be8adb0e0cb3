//! Delivering the manifest: every entry as it would sit on its guest, under
//! `OUT/<guest id>/<in-guest path>`. The in-guest path maps the manifest's host path through
//! the guest's mount points (longest `host_path` prefix → `container_path`); paths outside
//! every mount are used as given. What is already there is observed first, so a second run
//! issues nothing.
//!
//! Modes: key = the entry's `key_mode` (0600 / 0640), certificate 0644, forced on every run.
//! Ownership: the desired `owner:group` is always in the report; it is applied (chown) only
//! when running as root and both names resolve on *this* machine — right for the lab and a
//! scratch `--out`; on a real guest the planner chowns inside the guest by name.
//! Errors of one entry do not stop the others; they are collected in the report.
//!
//! I/O: reads and writes files under the target root.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use phoenix_model::model::{Certificate, DesiredState, Guest, GuestId};
use serde::Serialize;

use crate::engine::{Decision, Existing, RenewalPolicy, decide};
use crate::error::PkiError;
use crate::fsio;
use crate::inspect;
use crate::issue::{IssuerIdentity, LeafIssuer, LeafRequest};
use crate::postrenewal::{self, PostRenewalAction};

/// Certificate files are public.
pub const CERT_MODE: u32 = 0o644;

#[derive(Debug, Clone, Copy)]
pub struct IssueOptions {
    pub policy: RenewalPolicy,
    /// chown delivered files when running as root and the names resolve here.
    pub apply_ownership: bool,
}

impl Default for IssueOptions {
    fn default() -> IssueOptions {
        IssueOptions {
            policy: RenewalPolicy::default(),
            apply_ownership: true,
        }
    }
}

/// Where an entry's files go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destination {
    pub guest: GuestId,
    /// Paths inside the guest.
    pub cert_path: String,
    pub key_path: String,
    /// Paths under the target root.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Map a host path through the guest's mount points.
pub fn in_guest_path(guest: &Guest, host_path: &str) -> String {
    let host = Path::new(host_path);
    guest
        .mount_points
        .iter()
        .filter_map(|m| {
            let rest = host.strip_prefix(Path::new(&m.host_path)).ok()?;
            Some((m.host_path.len(), Path::new(&m.container_path).join(rest)))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, p)| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| host_path.to_string())
}

fn under_root(root: &Path, guest: GuestId, in_guest: &str, cn: &str) -> Result<PathBuf, PkiError> {
    let unsafe_path = |reason| PkiError::UnsafeDestination {
        common_name: cn.to_string(),
        path: in_guest.to_string(),
        reason,
    };
    let p = Path::new(in_guest);
    if !p.is_absolute() {
        return Err(unsafe_path("not an absolute path"));
    }
    let mut out = root.join(guest.to_string());
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(unsafe_path("`..` is not allowed"));
            }
        }
    }
    Ok(out)
}

/// The destination of `entry` under `out_root`.
pub fn destination(
    desired: &DesiredState,
    entry: &Certificate,
    out_root: &Path,
) -> Result<Destination, PkiError> {
    let guest = desired
        .guest(entry.guest)
        .ok_or_else(|| PkiError::UnknownGuest {
            common_name: entry.common_name.clone(),
            guest: entry.guest.0,
        })?;
    let cert_path = in_guest_path(guest, &entry.cert_path);
    let key_path = in_guest_path(guest, &entry.key_path);
    if cert_path == key_path {
        return Err(PkiError::UnsafeDestination {
            common_name: entry.common_name.clone(),
            path: cert_path,
            reason: "certificate and key would be the same file",
        });
    }
    Ok(Destination {
        guest: entry.guest,
        cert_file: under_root(out_root, entry.guest, &cert_path, &entry.common_name)?,
        key_file: under_root(out_root, entry.guest, &key_path, &entry.common_name)?,
        cert_path,
        key_path,
    })
}

/// The decision for one entry, before anything is written.
#[derive(Debug, Clone, Serialize)]
pub struct EntryPlan {
    /// Position in the manifest.
    pub index: usize,
    pub common_name: String,
    pub destination: Destination,
    pub decision: Decision,
    /// Actions that follow a (re)issue; empty for `keep`.
    pub post_renewal: Vec<PostRenewalAction>,
    /// The bash string, verbatim; never executed without an explicit opt-in.
    pub post_renewal_command: Option<String>,
    /// AKI of the certificate now at the destination, if any.
    #[serde(skip)]
    existing_issuer: Option<String>,
}

/// An entry that could not be planned or delivered.
#[derive(Debug, Clone, Serialize)]
pub struct EntryError {
    pub index: usize,
    pub common_name: String,
    pub message: String,
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn plan_entry(
    desired: &DesiredState,
    index: usize,
    entry: &Certificate,
    identity: &IssuerIdentity,
    out_root: &Path,
    now: SystemTime,
    policy: &RenewalPolicy,
) -> Result<EntryPlan, PkiError> {
    let destination = destination(desired, entry, out_root)?;
    let cert = fsio::read_optional(&destination.cert_file)?;
    let key = fsio::read_optional(&destination.key_file)?.map(zeroize::Zeroizing::new);
    let existing = Existing {
        cert_pem: cert.as_deref(),
        key_pem: key.as_ref().map(|k| k.as_str()),
    };
    let decision = decide(entry, &existing, identity, now, policy);
    let post_renewal = if decision.is_keep() {
        Vec::new()
    } else {
        postrenewal::derive(entry, desired.guest(entry.guest))
    };
    let existing_issuer = cert
        .as_deref()
        .and_then(|c| inspect::parse_leaf_pem(c).ok())
        .and_then(|i| i.authority_key_id);
    Ok(EntryPlan {
        index,
        common_name: entry.common_name.clone(),
        destination,
        decision,
        post_renewal,
        post_renewal_command: entry.post_renewal_command.clone(),
        existing_issuer,
    })
}

/// Observe the target root and decide every entry (no writes).
pub fn plan_manifest(
    desired: &DesiredState,
    identity: &IssuerIdentity,
    out_root: &Path,
    now: SystemTime,
    policy: &RenewalPolicy,
) -> (Vec<EntryPlan>, Vec<EntryError>) {
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    for (index, entry) in desired.certificates.iter().enumerate() {
        match plan_entry(desired, index, entry, identity, out_root, now, policy) {
            Ok(p) => plans.push(p),
            Err(e) => errors.push(EntryError {
                index,
                common_name: entry.common_name.clone(),
                message: chain(&e),
            }),
        }
    }
    (plans, errors)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum EntryOutcome {
    Issued,
    Renewed,
    Kept,
    Failed { error: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Ownership {
    Applied { uid: u32, gid: u32 },
    NotApplied { reason: String },
}

/// What happened to one entry.
#[derive(Debug, Clone, Serialize)]
pub struct EntryReport {
    #[serde(flatten)]
    pub plan: EntryPlan,
    #[serde(flatten)]
    pub outcome: EntryOutcome,
    pub serial: Option<String>,
    pub not_after: Option<String>,
    /// AKI of the certificate at the destination after the run.
    pub issuer_key_id: Option<String>,
    pub owner: String,
    pub group: String,
    pub key_mode: String,
    pub cert_mode: String,
    pub ownership: Ownership,
    /// Files whose mode was corrected without re-issuing.
    pub modes_fixed: Vec<PathBuf>,
}

/// The result of [`issue_manifest`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct IssueReport {
    pub entries: Vec<EntryReport>,
    /// Entries that could not even be planned (unknown guest, unsafe path).
    pub errors: Vec<EntryError>,
}

impl IssueReport {
    fn count(&self, f: impl Fn(&EntryOutcome) -> bool) -> usize {
        self.entries.iter().filter(|e| f(&e.outcome)).count()
    }
    pub fn issued(&self) -> usize {
        self.count(|o| *o == EntryOutcome::Issued)
    }
    pub fn renewed(&self) -> usize {
        self.count(|o| *o == EntryOutcome::Renewed)
    }
    pub fn kept(&self) -> usize {
        self.count(|o| *o == EntryOutcome::Kept)
    }
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, EntryOutcome::Failed { .. })) + self.errors.len()
    }
    pub fn has_errors(&self) -> bool {
        self.failed() > 0
    }
    /// AKIs of every certificate at its destination — the input of
    /// [`crate::CaPublic::prune_previous`]. `None` when any entry failed: what sits at a failed
    /// destination is not known for sure, so no previous root may be dropped after such a run.
    pub fn issuer_key_ids(&self) -> Option<BTreeSet<String>> {
        if self.has_errors() {
            return None;
        }
        Some(
            self.entries
                .iter()
                .filter_map(|e| e.issuer_key_id.clone())
                .collect(),
        )
    }
}

impl fmt::Display for IssueReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.entries {
            let d = &e.plan.destination;
            match &e.outcome {
                EntryOutcome::Failed { error } => writeln!(
                    f,
                    "FAIL  {} (guest {}): {error}",
                    e.plan.common_name, d.guest
                )?,
                o => writeln!(
                    f,
                    "{:<5} {} → guest {} {}: {}",
                    match o {
                        EntryOutcome::Issued => "issue",
                        EntryOutcome::Renewed => "renew",
                        _ => "keep",
                    },
                    e.plan.common_name,
                    d.guest,
                    d.cert_path,
                    e.plan.decision
                )?,
            }
            for a in &e.plan.post_renewal {
                writeln!(f, "      then {a}")?;
            }
            if let (Some(c), false) = (&e.plan.post_renewal_command, e.plan.decision.is_keep()) {
                writeln!(
                    f,
                    "      post_renewal_command (not run without opt-in): {c}"
                )?;
            }
        }
        for e in &self.errors {
            writeln!(f, "FAIL  {}: {}", e.common_name, e.message)?;
        }
        write!(
            f,
            "{} issued, {} renewed, {} kept, {} failed",
            self.issued(),
            self.renewed(),
            self.kept(),
            self.failed()
        )
    }
}

fn apply_ownership(entry: &Certificate, files: [&Path; 2], enabled: bool) -> Ownership {
    let not = |reason: String| Ownership::NotApplied { reason };
    if !enabled {
        return not("disabled".to_string());
    }
    if !nix::unistd::geteuid().is_root() {
        return not("not running as root".to_string());
    }
    let user = match nix::unistd::User::from_name(&entry.owner) {
        Ok(Some(u)) => u,
        _ => return not(format!("user `{}` unknown on this machine", entry.owner)),
    };
    let group = match nix::unistd::Group::from_name(&entry.group) {
        Ok(Some(g)) => g,
        _ => return not(format!("group `{}` unknown on this machine", entry.group)),
    };
    for f in files {
        if let Err(e) =
            std::os::unix::fs::chown(f, Some(user.uid.as_raw()), Some(group.gid.as_raw()))
        {
            return not(format!("chown {}: {e}", f.display()));
        }
    }
    Ownership::Applied {
        uid: user.uid.as_raw(),
        gid: group.gid.as_raw(),
    }
}

fn fix_mode(path: &Path, mode: u32, fixed: &mut Vec<PathBuf>) -> Result<(), PkiError> {
    if fsio::mode_of(path).is_some_and(|m| m != mode) {
        fsio::set_mode(path, mode)?;
        fixed.push(path.to_path_buf());
    }
    Ok(())
}

/// The facts of one delivery, before ownership.
struct Delivered {
    outcome: EntryOutcome,
    serial: Option<String>,
    not_after: Option<String>,
    issuer_key_id: Option<String>,
    modes_fixed: Vec<PathBuf>,
}

/// Deliver one planned entry.
fn deliver(
    entry: &Certificate,
    plan: &EntryPlan,
    issuer: &dyn LeafIssuer,
    identity: &IssuerIdentity,
    now: SystemTime,
) -> Result<Delivered, PkiError> {
    let d = &plan.destination;
    let mut fixed = Vec::new();
    if plan.decision.is_keep() {
        fix_mode(&d.key_file, entry.key_mode, &mut fixed)?;
        fix_mode(&d.cert_file, CERT_MODE, &mut fixed)?;
        return Ok(Delivered {
            outcome: EntryOutcome::Kept,
            serial: None,
            not_after: None,
            issuer_key_id: plan.existing_issuer.clone(),
            modes_fixed: fixed,
        });
    }
    let leaf = issuer.issue(&LeafRequest::for_entry(entry), now)?;
    fsio::ensure_parent(&d.key_file)?;
    fsio::ensure_parent(&d.cert_file)?;
    // Key first: a crash in between leaves a key/cert mismatch, which the next run renews.
    fsio::write_atomic(&d.key_file, leaf.key.expose().as_bytes(), entry.key_mode)?;
    fsio::write_atomic(
        &d.cert_file,
        leaf.cert_file(entry.include_ca).as_bytes(),
        CERT_MODE,
    )?;
    let outcome = match plan.decision {
        Decision::Issue { .. } => EntryOutcome::Issued,
        _ => EntryOutcome::Renewed,
    };
    Ok(Delivered {
        outcome,
        serial: Some(leaf.serial),
        not_after: Some(inspect::rfc3339(leaf.not_after)),
        issuer_key_id: Some(identity.intermediate_key_id.clone()),
        modes_fixed: fixed,
    })
}

/// Plan and deliver every manifest entry under `out_root` with `issuer`.
pub fn issue_manifest(
    desired: &DesiredState,
    issuer: &dyn LeafIssuer,
    out_root: &Path,
    now: SystemTime,
    opts: &IssueOptions,
) -> IssueReport {
    let identity = issuer.identity();
    let (plans, errors) = plan_manifest(desired, &identity, out_root, now, &opts.policy);
    let mut report = IssueReport {
        entries: Vec::with_capacity(plans.len()),
        errors,
    };
    for plan in plans {
        let Some(entry) = desired.certificates.get(plan.index) else {
            continue;
        };
        let Delivered {
            outcome,
            serial,
            not_after,
            issuer_key_id,
            modes_fixed,
        } = match deliver(entry, &plan, issuer, &identity, now) {
            Ok(r) => r,
            Err(e) => Delivered {
                outcome: EntryOutcome::Failed { error: chain(&e) },
                serial: None,
                not_after: None,
                issuer_key_id: plan.existing_issuer.clone(),
                modes_fixed: Vec::new(),
            },
        };
        let d = &plan.destination;
        let ownership = if matches!(outcome, EntryOutcome::Failed { .. }) {
            Ownership::NotApplied {
                reason: "delivery failed".to_string(),
            }
        } else {
            apply_ownership(entry, [&d.cert_file, &d.key_file], opts.apply_ownership)
        };
        report.entries.push(EntryReport {
            outcome,
            serial,
            not_after,
            issuer_key_id,
            owner: entry.owner.clone(),
            group: entry.group.clone(),
            key_mode: format!("{:04o}", entry.key_mode),
            cert_mode: format!("{CERT_MODE:04o}"),
            ownership,
            modes_fixed,
            plan,
        });
    }
    report
}
