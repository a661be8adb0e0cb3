//! The plan as data: what the operator asked for ([`Request`]), why a request cannot be
//! planned ([`PlanError`]), and the [`Plan`] itself — waves of actions, managed files,
//! certificates, notes, the summary. Serializable; no logic beyond counting. No I/O.

use phoenix_model::model::GuestId;
use phoenix_render::RenderedFile;
use serde::Serialize;

use crate::action::{Action, Effect};
use crate::certs::PlannedCertificate;

/// What the operator asked for (the bash verbs on top of one planner). A verb names one or
/// more guests (`stop 101 102`): one plan for all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Converge everything (`sync all`).
    SyncAll,
    /// Create the guests and their missing prerequisites (`create X…`).
    Create(Vec<GuestId>),
    /// Re-apply the guests' whole chains (`converge X…`).
    Converge(Vec<GuestId>),
    /// Create everything, then start in boot order (`LetsGo`).
    LetsGo,
    Start(Vec<GuestId>),
    Stop(Vec<GuestId>),
    Restart(Vec<GuestId>),
    /// Stop every running guest in reverse boot order (the opposite of `LetsGo`).
    Shutdown,
    /// Delete the guests; refused while others not named depend on them unless `force`.
    Delete {
        ids: Vec<GuestId>,
        force: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    UnknownGuest(GuestId),
    HasDependents {
        id: GuestId,
        dependents: Vec<GuestId>,
    },
    /// A renderer refused the configuration (e.g. a value unsafe to write into a file).
    Render(String),
    /// A manifest entry that cannot be planned.
    Certificate {
        common_name: String,
        reason: String,
    },
    /// A clone from `from@snapshot` whose snapshot is neither there nor taken before it.
    CloneSnapshot {
        id: GuestId,
        from: GuestId,
        snapshot: String,
        why: String,
        hint: String,
    },
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::UnknownGuest(id) => write!(f, "guest {id} is not in the configuration"),
            PlanError::HasDependents { id, dependents } => {
                let d: Vec<String> = dependents.iter().map(|d| d.to_string()).collect();
                write!(
                    f,
                    "guest {id} is needed by {}; delete those first or pass --force",
                    d.join(", ")
                )
            }
            PlanError::Render(m) => write!(f, "cannot render the configuration: {m}"),
            PlanError::Certificate {
                common_name,
                reason,
            } => write!(f, "certificate `{common_name}`: {reason}"),
            PlanError::CloneSnapshot {
                id,
                from,
                snapshot,
                why,
                hint,
            } => write!(
                f,
                "guest {id} clones {from}@{snapshot}, but {why}; nothing was changed (hint: {hint})"
            ),
        }
    }
}

impl std::error::Error for PlanError {}

/// A file phoenix manages, its content and how it differs from the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedFile {
    #[serde(flatten)]
    pub file: RenderedFile,
    pub sha256: String,
    pub status: FileStatus,
    /// Unified diff against the observed content (when it is known and differs).
    pub diff: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    Create,
    Update,
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wave {
    pub name: String,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub create: usize,
    pub change: usize,
    pub delete: usize,
    /// Provision steps inside guests not observed: checked when applied, changed only if needed.
    #[serde(skip_serializing_if = "is_zero")]
    pub check: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} to create, {} to change, {} to delete",
            self.create, self.change, self.delete
        )?;
        if self.check > 0 {
            write!(f, ", {} to check inside guests", self.check)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Proxmox node the API paths refer to.
    pub node: String,
    pub waves: Vec<Wave>,
    pub files: Vec<PlannedFile>,
    /// Guests on the target that the configuration does not know (never deleted by a sync).
    pub orphans: Vec<GuestId>,
    /// Every manifest entry with its decision (issue / renew / keep), in manifest order.
    pub certificates: Vec<PlannedCertificate>,
    /// What the plan could not consider, and why.
    pub notes: Vec<String>,
    /// Swarm actions (init, join, labels, overlays, secrets, stacks), when the Swarm was
    /// observed (see [`crate::swarm`]); they follow the guest waves.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub swarm: Vec<crate::swarm::SwarmAction>,
    pub summary: Summary,
}

impl Plan {
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.waves.iter().flat_map(|w| w.actions.iter())
    }

    pub fn is_empty(&self) -> bool {
        self.actions().next().is_none() && self.swarm.is_empty()
    }

    /// Replace the Swarm actions (e.g. by ones planned with the secrets' content known) and
    /// keep the summary's counts right.
    pub fn set_swarm(&mut self, actions: Vec<crate::swarm::SwarmAction>) {
        let count = |s: &mut Summary, e: Effect, up: bool| {
            let n = match e {
                Effect::Create => &mut s.create,
                Effect::Change => &mut s.change,
                Effect::Delete => &mut s.delete,
                Effect::Check => &mut s.check,
            };
            *n = if up { *n + 1 } else { n.saturating_sub(1) };
        };
        for a in &self.swarm {
            count(&mut self.summary, a.effect(), false);
        }
        for a in &actions {
            count(&mut self.summary, a.effect(), true);
        }
        self.swarm = actions;
    }
}
