//! `phoenix status`: desired vs actual, derived from a whole-sync [`Plan`] against the observed
//! state (pure, no I/O). Per guest: exists, running, config drift key by key and every other
//! pending difference (raw `lxc.*` lines, start/stop, files inside it); per managed file: in
//! sync, missing or differs; per firewall scope observed through the API ([`with_firewall`]):
//! in sync, or the differing positions and keys; the orphans the configuration does not know.

use phoenix_model::DesiredState;
use phoenix_model::model::{GuestId, GuestKind};
use phoenix_render::FileTarget;
use serde::Serialize;

use crate::action::{Action, KeyChange, Reason};
use crate::observed::{GuestStatus, ObservedState};
use crate::plan_types::{FileStatus, Plan};

/// One guest of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestRow {
    pub id: GuestId,
    pub name: String,
    pub kind: GuestKind,
    pub template: bool,
    pub exists: bool,
    /// `None` when it does not exist.
    pub running: Option<bool>,
    /// Config keys that differ (from the target's value to the configured one).
    pub drift: Vec<KeyChange>,
    /// Every other pending action on this guest, as the plan words it.
    pub pending: Vec<String>,
}

impl GuestRow {
    pub fn in_sync(&self) -> bool {
        self.exists && self.drift.is_empty() && self.pending.is_empty()
    }
}

/// One managed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRow {
    pub target: String,
    pub path: String,
    /// `in_sync`, `missing` or `differs`.
    pub state: &'static str,
}

/// One firewall scope (cluster, host, a security group, a guest), observed through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirewallRow {
    pub scope: String,
    /// `in_sync` or `differs`.
    pub state: &'static str,
    /// The differences as the plan words them: positions, keys (from → to).
    pub differences: Vec<String>,
}

/// The whole status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub guests: Vec<GuestRow>,
    pub files: Vec<FileRow>,
    /// Empty when the firewall was not observed through the API (see [`with_firewall`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub firewall: Vec<FirewallRow>,
    /// Guests on the target the configuration does not know (left alone).
    pub orphans: Vec<GuestId>,
    pub in_sync: bool,
}

fn target_name(t: &FileTarget) -> String {
    match t {
        FileTarget::Host => "host".into(),
        FileTarget::Guest(id) => format!("guest {id}"),
    }
}

/// Derive the status from `plan` (made with `Request::SyncAll` against `observed`).
pub fn status(d: &DesiredState, observed: &ObservedState, plan: &Plan) -> Status {
    let mut guests: Vec<GuestRow> = d
        .guests
        .values()
        .map(|g| {
            let o = observed.guest(g.id);
            GuestRow {
                id: g.id,
                name: g.name.clone(),
                kind: g.kind,
                template: g.is_template,
                exists: o.is_some(),
                running: o.map(|o| o.status == GuestStatus::Running),
                drift: Vec::new(),
                pending: Vec::new(),
            }
        })
        .collect();
    for a in plan.actions() {
        let Some(id) = a.guest() else { continue };
        let Some(row) = guests.iter_mut().find(|r| r.id == id) else {
            continue;
        };
        match a {
            Action::CreateGuest { .. } => {}
            Action::UpdateGuest {
                reason: Reason::Differs { changes },
                ..
            }
            | Action::ResizeDisk {
                reason: Reason::Differs { changes },
                ..
            } => row.drift.extend(changes.iter().cloned()),
            // Certificates and files inside the guest are listed with the files, its
            // firewall with the firewall scopes.
            Action::IssueCertificate { .. }
            | Action::WriteFile { .. }
            | Action::Firewall { .. } => {}
            other => row.pending.push(other.to_string()),
        }
    }
    let files = plan
        .files
        .iter()
        .map(|f| FileRow {
            target: target_name(&f.file.target),
            path: f.file.path.clone(),
            state: match f.status {
                FileStatus::Unchanged => "in_sync",
                FileStatus::Create => "missing",
                FileStatus::Update => "differs",
            },
        })
        .collect::<Vec<_>>();
    let in_sync = guests.iter().all(GuestRow::in_sync)
        && files.iter().all(|f| f.state == "in_sync")
        && plan.is_empty();
    Status {
        guests,
        files,
        firewall: Vec::new(),
        orphans: plan.orphans.clone(),
        in_sync,
    }
}

/// Add a row per firewall scope of `desired` (in sync unless the plan has actions for it,
/// then with the plan's wording of each difference).
pub fn with_firewall(s: &mut Status, desired: &crate::firewall_api::FirewallState, plan: &Plan) {
    let actions: Vec<&Action> = plan.actions().collect();
    let mut drift = crate::firewall_api::drift(&actions);
    let mut scopes = crate::firewall_api::scopes(desired);
    scopes.extend(drift.keys().cloned());
    s.firewall = scopes
        .into_iter()
        .map(|scope| {
            let differences = drift.remove(&scope).unwrap_or_default();
            FirewallRow {
                scope: scope.to_string(),
                state: if differences.is_empty() {
                    "in_sync"
                } else {
                    "differs"
                },
                differences,
            }
        })
        .collect();
    s.in_sync &= s.firewall.iter().all(|r| r.state == "in_sync");
}

/// A plain text table.
pub fn text(s: &Status) -> String {
    let mut out = String::from("GUEST  NAME                 KIND  EXISTS  RUNNING  STATE\n");
    for g in &s.guests {
        let running = match (g.template, g.running) {
            (true, _) => "template",
            (_, None) => "-",
            (_, Some(true)) => "yes",
            (_, Some(false)) => "no",
        };
        let state = if !g.exists {
            "missing".to_string()
        } else if g.in_sync() {
            "in sync".to_string()
        } else {
            let mut parts = Vec::new();
            if !g.drift.is_empty() {
                let keys: Vec<&str> = g.drift.iter().map(|c| c.key.as_str()).collect();
                parts.push(format!("drift: {}", keys.join(", ")));
            }
            parts.extend(g.pending.iter().cloned());
            parts.join("; ")
        };
        let kind = match g.kind {
            GuestKind::Lxc => "lxc",
            GuestKind::Vm => "vm",
        };
        out.push_str(&format!(
            "{:<6} {:<20} {:<5} {:<7} {:<8} {state}\n",
            g.id.0,
            g.name,
            kind,
            if g.exists { "yes" } else { "no" },
            running
        ));
        for c in &g.drift {
            for line in crate::fielddiff::guest_key(g.kind, c).to_string().lines() {
                out.push_str(&format!("         {line}\n"));
            }
        }
    }
    if !s.files.is_empty() {
        out.push_str("\nFILE\n");
        for f in &s.files {
            out.push_str(&format!(
                "{:<8} {:<10} {}\n",
                f.state.replace('_', " "),
                f.target,
                f.path
            ));
        }
    }
    if !s.firewall.is_empty() {
        out.push_str("\nFIREWALL\n");
        for r in &s.firewall {
            out.push_str(&format!("{:<8} {}\n", r.state.replace('_', " "), r.scope));
            for d in &r.differences {
                out.push_str(&format!("         {d}\n"));
            }
        }
    }
    if !s.orphans.is_empty() {
        let ids: Vec<String> = s.orphans.iter().map(|g| g.0.to_string()).collect();
        out.push_str(&format!(
            "\nnot in the configuration (left alone): {}\n",
            ids.join(", ")
        ));
    }
    out.push_str(if s.in_sync {
        "\nin sync with the configuration\n"
    } else {
        "\ndiffers from the configuration: `phoenix sync all` would change it\n"
    });
    out
}
