//! What applying a plan did, action by action, and the wave runner every target applies a
//! plan with: a wave's actions grouped by guest (each group in order, groups concurrent, a
//! guest's provision steps together), the first wave with a blocking outcome finished and no
//! later wave started. Target-neutral: the target's [`ActionExecutor`] does each action.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use phoenix_model::model::GuestId;
use phoenix_plan::action::Action;
use phoenix_plan::plan::Plan;

/// What happened to one action. `E` is the target's own error.
#[derive(Debug)]
pub enum Outcome<E> {
    Done,
    Failed(E),
    /// Nothing to do here for this action (the reason says why: already done, not this
    /// layer's action).
    Skipped {
        reason: String,
    },
    /// Needs a host step this target cannot do: stops this guest's later actions and later
    /// waves, like a failure.
    NeedsHostStep {
        what: String,
    },
    /// Written next to its target (`interfaces.new`) and left for the switch with
    /// try-and-rollback; the live file is unchanged. `written` is false when the staged file
    /// already held this content.
    Staged {
        path: String,
        written: bool,
    },
    /// An earlier failure (this guest's, or an earlier wave's) stopped it.
    NotStarted,
}

impl<E> Outcome<E> {
    /// Stops the guest's later actions and the later waves.
    pub fn is_blocking(&self) -> bool {
        matches!(self, Outcome::Failed(_) | Outcome::NeedsHostStep { .. })
    }

    /// One word for the journal (`done`, `failed`, …; JSON's `outcome`).
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed(_) => "failed",
            Outcome::Skipped { .. } => "skipped",
            Outcome::NeedsHostStep { .. } => "needs_host_step",
            Outcome::Staged { .. } => "staged",
            Outcome::NotStarted => "not_started",
        }
    }
}

impl<E: std::fmt::Display> Outcome<E> {
    /// What the label needs said: the error, the reason, the staged path.
    pub fn detail(&self) -> Option<String> {
        match self {
            Outcome::Done | Outcome::NotStarted => None,
            Outcome::Failed(e) => Some(e.to_string()),
            Outcome::Skipped { reason } => Some(reason.clone()),
            Outcome::NeedsHostStep { what } => Some(what.clone()),
            Outcome::Staged { path, written } => Some(if *written {
                format!("written to {path}; switch pending")
            } else {
                format!("{path} already staged; switch pending")
            }),
        }
    }
}

impl<E: std::fmt::Display> std::fmt::Display for Outcome<E> {
    /// `label (detail)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.detail() {
            Some(d) => write!(f, "{} ({d})", self.label()),
            None => f.write_str(self.label()),
        }
    }
}

#[derive(Debug)]
pub struct JournalEntry<E> {
    pub wave: String,
    pub action: Action,
    pub outcome: Outcome<E>,
}

/// Every action of the plan with its outcome, in plan order.
#[derive(Debug)]
pub struct Journal<E> {
    pub entries: Vec<JournalEntry<E>>,
    /// The wave that failed (or needed a host step); later waves were not started.
    pub failed_wave: Option<String>,
}

impl<E> Default for Journal<E> {
    fn default() -> Self {
        Journal {
            entries: Vec::new(),
            failed_wave: None,
        }
    }
}

impl<E> Journal<E> {
    pub fn is_success(&self) -> bool {
        self.failed_wave.is_none()
    }

    pub fn failures(&self) -> impl Iterator<Item = (&Action, &E)> {
        self.entries.iter().filter_map(|e| match &e.outcome {
            Outcome::Failed(err) => Some((&e.action, err)),
            _ => None,
        })
    }
}

/// How a target carries out the actions of a plan.
pub trait ActionExecutor: Sync {
    type Error: Send;
    /// One action (not a provision step).
    fn run_action(&self, action: &Action) -> Outcome<Self::Error>;
    /// One guest's provision steps of a wave, together (a service reloads when an earlier
    /// step changed its files); one outcome per action.
    fn run_provision(&self, actions: &[&Action]) -> Vec<Outcome<Self::Error>>;
}

/// Apply `plan` wave by wave through `x`, `parallelism` guests at a time.
pub fn apply_waves<X: ActionExecutor>(plan: &Plan, parallelism: usize, x: &X) -> Journal<X::Error> {
    let mut journal = Journal::default();
    for wave in &plan.waves {
        if journal.failed_wave.is_some() {
            journal
                .entries
                .extend(wave.actions.iter().map(|a| JournalEntry {
                    wave: wave.name.clone(),
                    action: a.clone(),
                    outcome: Outcome::NotStarted,
                }));
            continue;
        }
        let outcomes = run_wave(x, parallelism, &wave.actions);
        let failed = outcomes.iter().any(Outcome::is_blocking);
        journal
            .entries
            .extend(
                wave.actions
                    .iter()
                    .zip(outcomes)
                    .map(|(a, outcome)| JournalEntry {
                        wave: wave.name.clone(),
                        action: a.clone(),
                        outcome,
                    }),
            );
        if failed {
            journal.failed_wave = Some(wave.name.clone());
        }
    }
    journal
}

/// One wave: actions grouped by guest, each group serial, groups concurrent. The
/// cluster-wide firewall actions (cluster, host, groups) form one group: rule positions and
/// references (alias before the rule using it) depend on their order.
fn run_wave<X: ActionExecutor>(
    x: &X,
    parallelism: usize,
    actions: &[Action],
) -> Vec<Outcome<X::Error>> {
    let cluster_firewall = actions
        .iter()
        .position(|a| matches!(a, Action::Firewall { .. }) && a.guest().is_none());
    let mut groups: BTreeMap<(Option<GuestId>, usize), Vec<usize>> = BTreeMap::new();
    for (i, a) in actions.iter().enumerate() {
        let key = match (a.guest(), a) {
            (Some(id), _) => (Some(id), 0),
            (None, Action::Firewall { .. }) => (None, cluster_firewall.unwrap_or(i)),
            (None, _) => (None, i),
        };
        groups.entry(key).or_default().push(i);
    }
    let groups: Vec<Vec<usize>> = groups.into_values().collect();
    let slots: Vec<Mutex<Option<Outcome<X::Error>>>> =
        actions.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..parallelism.clamp(1, 32).min(groups.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let g = next.fetch_add(1, Ordering::Relaxed);
                    let Some(group) = groups.get(g) else { break };
                    let members: Vec<&Action> = group.iter().map(|&i| &actions[i]).collect();
                    if members
                        .iter()
                        .all(|a| matches!(a, Action::Provision { .. }))
                    {
                        for (&i, outcome) in group.iter().zip(x.run_provision(&members)) {
                            if let Ok(mut slot) = slots[i].lock() {
                                *slot = Some(outcome);
                            }
                        }
                        continue;
                    }
                    let mut stopped = false;
                    for &i in group {
                        let outcome = if stopped {
                            Outcome::NotStarted
                        } else {
                            x.run_action(&actions[i])
                        };
                        stopped |= outcome.is_blocking();
                        if let Ok(mut slot) = slots[i].lock() {
                            *slot = Some(outcome);
                        }
                    }
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or(Outcome::NotStarted)
        })
        .collect()
}
