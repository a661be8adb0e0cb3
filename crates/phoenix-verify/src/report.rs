//! Probe results and the report: counts, `--output json` (serde), the text (grouped by
//! [`crate::glance`]) and the exit code (1 on any failure).
//! No I/O: the caller prints.

use std::fmt;
use std::time::Duration;

use phoenix_model::model::GuestId;
use serde::{Serialize, Serializer};

/// Where a probe ran from (or what it is about).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// The hypervisor (host namespace in the lab).
    Host,
    Guest(GuestId),
    /// Anything else with a name: the lab's `wan`, a test namespace.
    Named(String),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Host => f.write_str("host"),
            Subject::Guest(id) => write!(f, "guest:{id}"),
            Subject::Named(n) => f.write_str(n),
        }
    }
}

impl Serialize for Subject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Status {
    Pass,
    Fail { evidence: String },
    Skip { reason: String },
}

/// One check, what it saw, and how long it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    /// Stable identifier (`dns/guest:101/portainer.internal.example`).
    pub id: String,
    pub subject: Subject,
    /// What was checked, for humans.
    pub check: String,
    #[serde(flatten)]
    pub status: Status,
    /// What the probe observed (also on pass: rcode and answers, connect result, certificate).
    pub observed: String,
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
}

fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl ProbeResult {
    pub fn is_fail(&self) -> bool {
        matches!(self.status, Status::Fail { .. })
    }

    pub fn skip(id: String, subject: Subject, check: String, reason: String) -> Self {
        ProbeResult {
            id,
            subject,
            check,
            status: Status::Skip { reason },
            observed: String::new(),
            duration: Duration::ZERO,
        }
    }
}

/// Counts by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub pass: usize,
    pub fail: usize,
    pub skip: usize,
}

/// Every result of a verify run, in the order they were taken.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub counts: Counts,
    pub results: Vec<ProbeResult>,
}

impl Report {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, r: ProbeResult) {
        match r.status {
            Status::Pass => self.counts.pass += 1,
            Status::Fail { .. } => self.counts.fail += 1,
            Status::Skip { .. } => self.counts.skip += 1,
        }
        self.results.push(r);
    }

    pub fn extend(&mut self, rs: impl IntoIterator<Item = ProbeResult>) {
        for r in rs {
            self.push(r);
        }
    }

    pub fn ok(&self) -> bool {
        self.counts.fail == 0
    }

    /// Process exit code: 1 on any failure (ARCHITECTURE.md, CLI), else 0.
    pub fn exit_code(&self) -> i32 {
        if self.ok() { 0 } else { 1 }
    }

    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }

    /// The text at a glance ([`crate::glance`]): grouped by family, causes counted, failures
    /// recapped, whole lines; the last line is `N passed, M failed, K skipped`.
    pub fn render_text(&self) -> String {
        self.render_text_with(&crate::glance::TextOptions::default())
    }

    /// [`Self::render_text`] with `--failed-only` and a terminal width.
    pub fn render_text_with(&self, opts: &crate::glance::TextOptions) -> String {
        crate::glance::render(self, opts)
    }
}
