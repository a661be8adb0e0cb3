//! Try-and-rollback for the host files that can cut the node off: `/etc/network/interfaces`,
//! the dnsmasq files and the NAT ruleset. Does I/O only through a [`HostShell`] (and, for
//! [`ProbeCheck::Tcp`], one TCP connect from this process).
//!
//! A [`Switch`] puts a staged file (`PATH.new`, written by [`crate::hostfiles`]) in place:
//!
//! 1. check the staged file exists and run the `validate` argv (e.g. `nft -c -f PATH.new`);
//! 2. back up the live file to `backup_path` (atomic write);
//! 3. replace the live file with the staged content (atomic write: temp file, fsync,
//!    rename) and remove the staged file;
//! 4. run the `reload` argv (`ifreload -a`, `systemctl restart dnsmasq`, `nft -f PATH`);
//! 5. run the probes (in parallel, retried) until all pass or `probe_deadline` passes;
//! 6. with [`Confirm::Within`], record an `await confirmation` step (the CLI tells the
//!    operator) and wait for the confirmation flag file;
//! 7. on any failure in 3–6: restore the backup (the rejected content goes back to the staged
//!    path, so the node is as before the switch), reload again, probe again and report
//!    [`SwitchOutcome::RolledBack`] with the cause and the probes after the rollback.
//!
//! Failures in 1–2 change nothing and are a [`SwitchError`].
//!
//! Every step is recorded with its argv, exit status and timing ([`StepRecord`]) for the
//! journal. Commands are argv vectors only; config values never pass through a shell.
//!
//! The engine runs where the `HostShell` leads. Over SSH a change that cuts the node off also
//! cuts the engine off from the rollback; run it on the node ([`crate::LocalShell`] at `/`)
//! for the interfaces file.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use phoenix_exec::shell::{HostFile, HostShell, ShellError, previous_path, staged_path};

/// Where a probe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// On the node, through the switch's shell.
    Host,
    /// Through the observer shell: a vantage point outside the node (the machine phoenix runs
    /// on, or in the lab another namespace). Proves the management address is reachable.
    Observer,
}

/// What a probe checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeCheck {
    /// An argv command that must exit 0 (`ping -c1 -W1 ADDR`, `ifquery -c -a`).
    Command { argv: Vec<String>, on: Side },
    /// A TCP connect from this process (management `ADDR:22` or `:8006`).
    Tcp { addr: SocketAddr },
}

/// One connectivity check after the switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    pub name: String,
    pub check: ProbeCheck,
    /// Also run after a rollback (connectivity, `ifquery -c`). False for checks of the new
    /// state only, such as "the NAT table exists" when there was no previous file.
    pub after_rollback: bool,
}

impl Probe {
    /// `ping -c1 -W1 ADDR` on `on`.
    pub fn ping(name: impl Into<String>, addr: impl std::fmt::Display, on: Side) -> Self {
        Probe::command(name, argv(&["ping", "-c1", "-W1", &addr.to_string()]), on)
    }

    /// Any argv that must exit 0.
    pub fn command(name: impl Into<String>, argv: Vec<String>, on: Side) -> Self {
        Probe {
            name: name.into(),
            check: ProbeCheck::Command { argv, on },
            after_rollback: true,
        }
    }

    /// A TCP connect from this process.
    pub fn tcp(name: impl Into<String>, addr: SocketAddr) -> Self {
        Probe {
            name: name.into(),
            check: ProbeCheck::Tcp { addr },
            after_rollback: true,
        }
    }

    /// Do not run this probe after a rollback.
    pub fn only_after_switch(mut self) -> Self {
        self.after_rollback = false;
        self
    }
}

/// When a switch that passed its probes stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirm {
    /// Passing probes suffice.
    Auto,
    /// The probes must pass and then the operator must create `flag` (a path on the node,
    /// see [`confirm_flag_path`]; `phoenix sync confirm ID`) within `window` of the switch
    /// finishing its probes; otherwise the switch is rolled back.
    Within {
        #[serde(with = "millis")]
        window: Duration,
        flag: String,
    },
}

/// The flag file that confirms switch `id` (see [`switch_id`]).
pub fn confirm_flag_path(id: &str) -> String {
    format!("/run/phoenix/confirm-{id}")
}

/// A short stable id for a switch of `live_path` to `content` (12 hex digits of SHA-256).
pub fn switch_id(live_path: &str, content: &str) -> String {
    let mut h = Sha256::new();
    h.update(live_path.as_bytes());
    h.update([0]);
    h.update(content.as_bytes());
    h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One try-and-rollback switch of a staged file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    pub live_path: String,
    pub staged_path: String,
    pub backup_path: String,
    /// Run against the staged file before anything changes; a failure leaves the node alone.
    pub validate: Vec<Vec<String>>,
    /// Run after the live file changed, and again after a rollback.
    pub reload: Vec<Vec<String>>,
    /// Run instead of `reload` when rolling back a switch that had no previous file (the
    /// live file is removed): e.g. `nft delete table ip phoenix_nat`. Empty: `reload`.
    pub reload_without_previous: Vec<Vec<String>>,
    pub probes: Vec<Probe>,
    pub confirm: Confirm,
    /// How long the probes may take to pass, after the switch and after a rollback.
    pub probe_deadline: Duration,
    /// Pause between probe rounds.
    pub probe_interval: Duration,
    /// Deadline of each command (validate, reload, one probe attempt).
    pub command_timeout: Duration,
}

impl Switch {
    /// A switch of `live_path` from `PATH.new`, backup `PATH.phoenix-previous`.
    pub fn new(live_path: &str, reload: Vec<Vec<String>>) -> Self {
        Switch {
            live_path: live_path.to_string(),
            staged_path: staged_path(live_path),
            backup_path: previous_path(live_path),
            validate: Vec::new(),
            reload,
            reload_without_previous: Vec::new(),
            probes: Vec::new(),
            confirm: Confirm::Auto,
            probe_deadline: Duration::from_secs(20),
            probe_interval: Duration::from_millis(250),
            command_timeout: Duration::from_secs(60),
        }
    }

    /// `/etc/network/interfaces` with `ifreload -a`; `ifquery -c -a` (live state matches
    /// the file) is the first probe. Add the management and gateway probes.
    pub fn interfaces() -> Self {
        let mut s = Switch::new("/etc/network/interfaces", vec![argv(&["ifreload", "-a"])]);
        s.probes.push(Probe::command(
            "ifquery -c -a",
            argv(&["ifquery", "-c", "-a"]),
            Side::Host,
        ));
        s
    }

    /// A dnsmasq file, checked with `dnsmasq --test` and applied with `reload` (`None`:
    /// `systemctl restart dnsmasq` — Debian's `reload` is a SIGHUP, which rereads hosts
    /// files but not the configuration).
    pub fn dnsmasq(live_path: &str, reload: Option<Vec<Vec<String>>>) -> Self {
        let mut s = Switch::new(
            live_path,
            reload.unwrap_or_else(|| vec![argv(&["systemctl", "restart", "dnsmasq"])]),
        );
        let conf = format!("--conf-file={}", s.staged_path);
        s.validate = vec![argv(&["dnsmasq", "--test", &conf])];
        s
    }

    /// The NAT ruleset (`nft -f FILE`): checked with `nft -c -f`; the rollback loads the
    /// previous file (or deletes `table` when there was none).
    pub fn nat(live_path: &str, table: &str) -> Self {
        let mut s = Switch::new(live_path, vec![argv(&["nft", "-f", live_path])]);
        s.validate = vec![argv(&["nft", "-c", "-f", &staged_path(live_path)])];
        s.reload_without_previous = vec![argv(&["nft", "delete", "table", "ip", table])];
        s
    }

    pub fn with_probes(mut self, probes: impl IntoIterator<Item = Probe>) -> Self {
        self.probes.extend(probes);
        self
    }

    pub fn with_confirm(mut self, confirm: Confirm) -> Self {
        self.confirm = confirm;
        self
    }

    pub fn with_probe_deadline(mut self, deadline: Duration) -> Self {
        self.probe_deadline = deadline;
        self
    }
}

/// Build an argv from string slices.
pub fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_string()).collect()
}

/// One step the switch took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    /// `validate`, `backup`, `switch`, `reload`, `probe`, `confirm`, `restore`, …
    pub step: String,
    /// The command (empty for file steps).
    pub argv: Vec<String>,
    /// The file a file step touched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Exit status of a command (`None`: not a command, or it did not run or finish).
    pub status: Option<i32>,
    pub ok: bool,
    /// stderr of a failed command, a shell error, or a note.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Start, from the start of the switch.
    #[serde(with = "millis")]
    pub at: Duration,
    #[serde(with = "millis")]
    pub took: Duration,
}

/// The probes' result after a switch or a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    pub name: String,
    pub passed: bool,
    pub attempts: u32,
    /// From the first attempt to the passing (or last) one.
    #[serde(with = "millis")]
    pub took: Duration,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Why a switch was rolled back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RollbackCause {
    /// A file step on the node failed after the live file may have changed.
    Shell { step: String, error: String },
    /// A reload command failed.
    Reload {
        argv: Vec<String>,
        status: Option<i32>,
        stderr: String,
    },
    /// These probes did not pass within the deadline.
    Probes { failed: Vec<String> },
    /// No confirmation within the window.
    NotConfirmed {
        #[serde(with = "millis")]
        window: Duration,
        flag: String,
    },
}

impl std::fmt::Display for RollbackCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RollbackCause::Shell { step, error } => write!(f, "{step} failed: {error}"),
            RollbackCause::Reload {
                argv,
                status,
                stderr,
            } => {
                let st = status.map_or_else(|| "no exit".to_string(), |s| s.to_string());
                write!(f, "`{}` failed ({st}): {}", argv.join(" "), stderr.trim())
            }
            RollbackCause::Probes { failed } => {
                write!(f, "probes failed: {}", failed.join(", "))
            }
            RollbackCause::NotConfirmed { window, flag } => write!(
                f,
                "not confirmed within {:.1}s ({flag} not created)",
                window.as_secs_f64()
            ),
        }
    }
}

/// How a switch ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum SwitchOutcome {
    /// The staged file is live, reloaded, probed (and confirmed).
    Switched { confirmed: bool },
    /// The staged file equals the live one: only the staged file was removed.
    Unchanged,
    /// Restored, reloaded and probed again; `recovered` is true when the reload commands
    /// succeeded and every probe passed after the rollback.
    RolledBack {
        cause: RollbackCause,
        probes_after: Vec<ProbeResult>,
        recovered: bool,
    },
    /// The previous file could not be put back: the node may be in the new (failed) state.
    /// Needs a human.
    RollbackFailed { cause: RollbackCause, error: String },
}

/// Everything a switch did, for the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwitchReport {
    pub live_path: String,
    pub id: String,
    pub outcome: SwitchOutcome,
    /// The probes after the switch (empty when it failed before them).
    pub probes: Vec<ProbeResult>,
    pub steps: Vec<StepRecord>,
    #[serde(with = "millis")]
    pub elapsed: Duration,
}

impl SwitchReport {
    pub fn switched(&self) -> bool {
        matches!(self.outcome, SwitchOutcome::Switched { .. })
    }
}

/// Failures before the live file changed: the node is untouched.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error("nothing staged at {0}")]
    NothingStaged(String),
    #[error("validation of {path} failed: `{argv}` exited {status:?}: {stderr}")]
    Invalid {
        path: String,
        argv: String,
        status: Option<i32>,
        stderr: String,
    },
    #[error(transparent)]
    Shell(#[from] ShellError),
}

/// What the probe threads share: the shells, the switch and the clock.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    shell: &'a dyn HostShell,
    observer: &'a dyn HostShell,
    sw: &'a Switch,
    start: Instant,
}

/// The running switch: its records, reported to `on_step` as they happen.
struct Run<'a> {
    cx: Ctx<'a>,
    steps: Vec<StepRecord>,
    on_step: &'a mut dyn FnMut(&StepRecord),
}

/// Put `sw.staged_path` in place with try-and-rollback. `observer` runs the
/// [`Side::Observer`] probes (pass `shell` when there are none).
pub fn run_switch(
    shell: &dyn HostShell,
    observer: &dyn HostShell,
    sw: &Switch,
) -> Result<SwitchReport, SwitchError> {
    run_switch_with(shell, observer, sw, &mut |_| {})
}

/// [`run_switch`], calling `on_step` with every step as it is recorded: the CLI prints
/// progress, and tells the operator to confirm when the `await confirmation` step appears
/// (the window has opened; its detail names the flag file).
pub fn run_switch_with(
    shell: &dyn HostShell,
    observer: &dyn HostShell,
    sw: &Switch,
    on_step: &mut dyn FnMut(&StepRecord),
) -> Result<SwitchReport, SwitchError> {
    let mut run = Run {
        cx: Ctx {
            shell,
            observer,
            sw,
            start: Instant::now(),
        },
        steps: Vec::new(),
        on_step,
    };
    let Some(staged) = run.file_step("read staged", &sw.staged_path, |s| {
        s.read_file(&sw.staged_path)
    })?
    else {
        return Err(SwitchError::NothingStaged(sw.staged_path.clone()));
    };
    let id = switch_id(&sw.live_path, &staged.content);
    for cmd in &sw.validate {
        let rec = run.command("validate", Side::Host, cmd);
        if !rec.ok {
            return Err(SwitchError::Invalid {
                path: sw.staged_path.clone(),
                argv: cmd.join(" "),
                status: rec.status,
                stderr: rec.detail,
            });
        }
    }
    let previous = run.file_step("read live", &sw.live_path, |s| s.read_file(&sw.live_path))?;
    if previous
        .as_ref()
        .is_some_and(|p| p.content == staged.content)
    {
        run.file_step("remove staged", &sw.staged_path, |s| {
            s.remove_file(&sw.staged_path)
        })?;
        return Ok(run.report(id, SwitchOutcome::Unchanged, Vec::new()));
    }
    if let Some(prev) = &previous {
        run.file_step("backup", &sw.backup_path, |s| {
            s.write_file(&sw.backup_path, prev)
        })?;
    }
    if let Confirm::Within { flag, .. } = &sw.confirm {
        // A stale flag must not confirm this switch.
        run.file_step("clear confirm flag", flag, |s| s.remove_file(flag))?;
    }

    // From here on the live file may change: every failure rolls back.
    let mut probes = Vec::new();
    let cause = run.try_forward(&staged, &mut probes);
    let Some(cause) = cause else {
        let confirmed = matches!(sw.confirm, Confirm::Within { .. });
        return Ok(run.report(id, SwitchOutcome::Switched { confirmed }, probes));
    };
    let outcome = match run.roll_back(previous.as_ref(), &staged) {
        Ok((probes_after, reloaded)) => {
            let recovered = reloaded && probes_after.iter().all(|p| p.passed);
            SwitchOutcome::RolledBack {
                cause,
                probes_after,
                recovered,
            }
        }
        Err(error) => SwitchOutcome::RollbackFailed { cause, error },
    };
    Ok(run.report(id, outcome, probes))
}

impl Run<'_> {
    fn record(&mut self, rec: StepRecord) {
        (self.on_step)(&rec);
        self.steps.push(rec);
    }

    fn report(self, id: String, outcome: SwitchOutcome, probes: Vec<ProbeResult>) -> SwitchReport {
        SwitchReport {
            live_path: self.cx.sw.live_path.clone(),
            id,
            outcome,
            probes,
            elapsed: self.cx.elapsed(),
            steps: self.steps,
        }
    }

    /// A file operation, recorded.
    fn file_step<T>(
        &mut self,
        step: &str,
        path: &str,
        op: impl FnOnce(&dyn HostShell) -> Result<T, ShellError>,
    ) -> Result<T, ShellError> {
        let at = self.cx.elapsed();
        let t = Instant::now();
        let result = op(self.cx.shell);
        self.record(StepRecord {
            step: step.to_string(),
            argv: Vec::new(),
            path: Some(path.to_string()),
            status: None,
            ok: result.is_ok(),
            detail: result
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default(),
            at,
            took: t.elapsed(),
        });
        result
    }

    /// Run `cmd` on `side`, record and return the record.
    fn command(&mut self, step: &str, side: Side, cmd: &[String]) -> StepRecord {
        let rec = self.cx.exec(step, side, cmd, self.cx.sw.command_timeout);
        self.record(rec.clone());
        rec
    }

    /// Switch, reload, probe, confirm. `None`: the switch stays.
    fn try_forward(
        &mut self,
        staged: &HostFile,
        probes: &mut Vec<ProbeResult>,
    ) -> Option<RollbackCause> {
        let sw = self.cx.sw;
        let shell_cause = |step: &str, e: ShellError| RollbackCause::Shell {
            step: step.to_string(),
            error: e.to_string(),
        };
        if let Err(e) = self.file_step("switch", &sw.live_path, |s| {
            s.write_file(&sw.live_path, staged)
        }) {
            return Some(shell_cause("switch", e));
        }
        if let Err(e) = self.file_step("remove staged", &sw.staged_path, |s| {
            s.remove_file(&sw.staged_path)
        }) {
            return Some(shell_cause("remove staged", e));
        }
        for cmd in &sw.reload {
            let rec = self.command("reload", Side::Host, cmd);
            if !rec.ok {
                return Some(RollbackCause::Reload {
                    argv: cmd.clone(),
                    status: rec.status,
                    stderr: rec.detail,
                });
            }
        }
        *probes = self.probe("probe", false);
        let failed: Vec<String> = probes
            .iter()
            .filter(|p| !p.passed)
            .map(|p| p.name.clone())
            .collect();
        if !failed.is_empty() {
            return Some(RollbackCause::Probes { failed });
        }
        let Confirm::Within { window, flag } = &sw.confirm else {
            return None;
        };
        let open = self.cx.note(
            "await confirmation",
            true,
            format!(
                "create {flag} within {:.1}s to keep this change",
                window.as_secs_f64()
            ),
        );
        self.record(open);
        let at = self.cx.elapsed();
        let t = Instant::now();
        let mut confirmed = false;
        let mut error = String::new();
        loop {
            match self.cx.shell.read_file(flag) {
                Ok(Some(_)) => {
                    confirmed = true;
                    break;
                }
                Ok(None) => {}
                Err(e) => error = e.to_string(),
            }
            if t.elapsed() >= *window {
                break;
            }
            std::thread::sleep(Duration::from_millis(100).min(*window));
        }
        self.record(StepRecord {
            step: "confirm".into(),
            argv: Vec::new(),
            path: Some(flag.clone()),
            status: None,
            ok: confirmed,
            detail: if confirmed {
                String::new()
            } else if error.is_empty() {
                format!("no confirmation within {:.1}s", window.as_secs_f64())
            } else {
                error
            },
            at,
            took: t.elapsed(),
        });
        if confirmed {
            let _ = self.file_step("clear confirm flag", flag, |s| s.remove_file(flag));
            None
        } else {
            Some(RollbackCause::NotConfirmed {
                window: *window,
                flag: flag.clone(),
            })
        }
    }

    /// Restore the previous file (the rejected one goes back to the staged path), reload and
    /// probe again.
    fn roll_back(
        &mut self,
        previous: Option<&HostFile>,
        staged: &HostFile,
    ) -> Result<(Vec<ProbeResult>, bool), String> {
        let sw = self.cx.sw;
        let restored = match previous {
            Some(prev) => self.file_step("restore", &sw.live_path, |s| {
                s.write_file(&sw.live_path, prev)
            }),
            None => self.file_step("restore (remove)", &sw.live_path, |s| {
                s.remove_file(&sw.live_path)
            }),
        };
        restored.map_err(|e| format!("restoring {}: {e}", sw.live_path))?;
        // Best effort: the node works without it; the rejected content stays inspectable.
        let _ = self.file_step("restage rejected", &sw.staged_path, |s| {
            s.write_file(&sw.staged_path, staged)
        });
        let reload = if previous.is_none() && !sw.reload_without_previous.is_empty() {
            &sw.reload_without_previous
        } else {
            &sw.reload
        };
        // Every reload command runs and the probes run even when one fails: the probes decide
        // whether the node recovered; the failed command stays in the journal.
        let mut reloaded = true;
        for cmd in reload {
            reloaded &= self.command("rollback reload", Side::Host, cmd).ok;
        }
        Ok((self.probe("rollback probe", true), reloaded))
    }

    /// Probe rounds until every probe has passed once or the deadline passes. The probes of
    /// a round run in parallel; a passing probe is not repeated; an attempt's own deadline is
    /// the time left (at least two seconds).
    fn probe(&mut self, step: &str, after_rollback: bool) -> Vec<ProbeResult> {
        let sw = self.cx.sw;
        let probes: Vec<&Probe> = sw
            .probes
            .iter()
            .filter(|p| !after_rollback || p.after_rollback)
            .collect();
        let mut results: Vec<ProbeResult> = probes
            .iter()
            .map(|p| ProbeResult {
                name: p.name.clone(),
                passed: false,
                attempts: 0,
                took: Duration::ZERO,
                detail: String::new(),
            })
            .collect();
        let t = Instant::now();
        loop {
            let left = sw.probe_deadline.saturating_sub(t.elapsed());
            let timeout = sw.command_timeout.min(left.max(Duration::from_secs(2)));
            let pending: Vec<usize> = (0..probes.len()).filter(|&i| !results[i].passed).collect();
            let cx = self.cx;
            let round: Vec<(usize, StepRecord)> = std::thread::scope(|s| {
                let handles: Vec<_> = pending
                    .iter()
                    .map(|&i| {
                        let probe = probes[i];
                        s.spawn(move || (i, cx.attempt(step, probe, timeout)))
                    })
                    .collect();
                handles
                    .into_iter()
                    .zip(&pending)
                    .map(|(h, &i)| {
                        h.join().unwrap_or_else(|_| {
                            (i, cx.note(step, false, "probe thread panicked".into()))
                        })
                    })
                    .collect()
            });
            for (i, rec) in round {
                let result = &mut results[i];
                result.attempts += 1;
                result.passed = rec.ok;
                result.took = t.elapsed();
                result.detail = rec.detail.clone();
                // Record the first attempt and the deciding one; not every retry.
                if result.attempts == 1 || rec.ok {
                    self.record(StepRecord {
                        step: format!("{step}: {}", probes[i].name),
                        ..rec
                    });
                }
            }
            let all = results.iter().all(|r| r.passed);
            if all || t.elapsed() + sw.probe_interval >= sw.probe_deadline {
                // The last failing attempt of each probe, for the journal.
                for r in results.iter().filter(|r| !r.passed) {
                    let detail = format!(
                        "gave up after {} attempts in {:.1}s: {}",
                        r.attempts,
                        r.took.as_secs_f64(),
                        r.detail
                    );
                    let rec = self.cx.note(&format!("{step}: {}", r.name), false, detail);
                    self.record(rec);
                }
                return results;
            }
            std::thread::sleep(sw.probe_interval);
        }
    }
}

impl Ctx<'_> {
    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn exec(&self, step: &str, side: Side, cmd: &[String], timeout: Duration) -> StepRecord {
        let shell = match side {
            Side::Host => self.shell,
            Side::Observer => self.observer,
        };
        let at = self.elapsed();
        let t = Instant::now();
        let (status, ok, detail) = match shell.run(cmd, timeout) {
            Ok(out) => {
                let detail = if out.status == 0 {
                    String::new()
                } else if out.stderr.trim().is_empty() {
                    last_lines(&out.stdout)
                } else {
                    last_lines(&out.stderr)
                };
                (Some(out.status), out.status == 0, detail)
            }
            Err(e) => (None, false, e.to_string()),
        };
        StepRecord {
            step: step.to_string(),
            argv: cmd.to_vec(),
            path: None,
            status,
            ok,
            detail,
            at,
            took: t.elapsed(),
        }
    }

    /// One attempt of `probe`.
    fn attempt(&self, step: &str, probe: &Probe, timeout: Duration) -> StepRecord {
        match &probe.check {
            ProbeCheck::Command { argv, on } => self.exec(step, *on, argv, timeout),
            ProbeCheck::Tcp { addr } => self.tcp(step, *addr, timeout),
        }
    }

    /// A record that is not a command or file step.
    fn note(&self, step: &str, ok: bool, detail: String) -> StepRecord {
        StepRecord {
            step: step.to_string(),
            argv: Vec::new(),
            path: None,
            status: None,
            ok,
            detail,
            at: self.elapsed(),
            took: Duration::ZERO,
        }
    }

    fn tcp(&self, step: &str, addr: SocketAddr, timeout: Duration) -> StepRecord {
        let at = self.elapsed();
        let t = Instant::now();
        let result = TcpStream::connect_timeout(&addr, timeout.min(Duration::from_secs(3)));
        StepRecord {
            step: step.to_string(),
            argv: vec!["tcp-connect".into(), addr.to_string()],
            path: None,
            status: None,
            ok: result.is_ok(),
            detail: result.err().map(|e| e.to_string()).unwrap_or_default(),
            at,
            took: t.elapsed(),
        }
    }
}

/// The last few lines of a command's output (journal detail).
fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// Durations as integer milliseconds in the journal.
mod millis {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use phoenix_exec::shell::{CommandOutput, LocalShell};

    /// A scripted command: `argv[0]` and its exit status given the live file's content.
    type Rule = (&'static str, fn(&str) -> i32);

    /// A [`LocalShell`] on a scratch root whose commands are scripted: `reload` and probe
    /// results come from closures over the live file's content.
    #[derive(Debug)]
    struct Scripted {
        files: LocalShell,
        /// (argv[0], exit status given the live content)
        rules: Vec<Rule>,
        ran: Mutex<Vec<Vec<String>>>,
    }

    impl Scripted {
        fn new(root: &std::path::Path, rules: Vec<Rule>) -> Self {
            Scripted {
                files: LocalShell::new(root),
                rules,
                ran: Mutex::new(Vec::new()),
            }
        }
        fn live(&self) -> String {
            self.files
                .read_file("/etc/x.conf")
                .unwrap()
                .map(|f| f.content)
                .unwrap_or_default()
        }
        fn ran(&self) -> Vec<String> {
            self.ran
                .lock()
                .unwrap()
                .iter()
                .map(|a| a.join(" "))
                .collect()
        }
    }

    impl HostShell for Scripted {
        fn read_file(&self, path: &str) -> Result<Option<HostFile>, ShellError> {
            self.files.read_file(path)
        }
        fn write_file(&self, path: &str, file: &HostFile) -> Result<(), ShellError> {
            self.files.write_file(path, file)
        }
        fn remove_file(&self, path: &str) -> Result<(), ShellError> {
            self.files.remove_file(path)
        }
        fn run(&self, argv: &[String], _: Duration) -> Result<CommandOutput, ShellError> {
            self.ran.lock().unwrap().push(argv.to_vec());
            let live = self.live();
            let status = self
                .rules
                .iter()
                .find(|(name, _)| argv.first().is_some_and(|a| a == name))
                .map_or(0, |(_, f)| f(&live));
            Ok(CommandOutput {
                status,
                stdout: String::new(),
                stderr: if status == 0 {
                    String::new()
                } else {
                    format!("{} failed", argv[0])
                },
            })
        }
    }

    fn own(content: &str) -> HostFile {
        let uid = std::fs::metadata("/proc/self").map_or(0, |m| {
            use std::os::unix::fs::MetadataExt;
            m.uid()
        });
        HostFile {
            content: content.into(),
            owner: uid.to_string(),
            group: uid.to_string(),
            mode: 0o644,
        }
    }

    fn switch() -> Switch {
        let mut s = Switch::new("/etc/x.conf", vec![argv(&["reload"])])
            .with_probes([Probe::command("gw", argv(&["probe"]), Side::Host)]);
        s.probe_deadline = Duration::from_millis(300);
        s.probe_interval = Duration::from_millis(50);
        s
    }

    fn setup(live: &str, staged: &str, rules: Vec<Rule>) -> (tempfile::TempDir, Scripted) {
        let dir = tempfile::tempdir().unwrap();
        let sh = Scripted::new(dir.path(), rules);
        sh.write_file("/etc/x.conf", &own(live)).unwrap();
        sh.write_file("/etc/x.conf.new", &own(staged)).unwrap();
        (dir, sh)
    }

    fn probe_ok_unless_broken(live: &str) -> i32 {
        i32::from(live.contains("broken"))
    }

    #[test]
    fn good_switch_stays_and_keeps_a_backup() {
        let (_d, sh) = setup("old", "new", vec![("probe", probe_ok_unless_broken)]);
        let r = run_switch(&sh, &sh, &switch()).unwrap();
        assert_eq!(r.outcome, SwitchOutcome::Switched { confirmed: false });
        assert_eq!(sh.live(), "new");
        assert_eq!(
            sh.read_file("/etc/x.conf.phoenix-previous")
                .unwrap()
                .unwrap()
                .content,
            "old"
        );
        assert!(sh.read_file("/etc/x.conf.new").unwrap().is_none());
        assert_eq!(sh.ran(), ["reload", "probe"]);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["outcome"]["outcome"], "switched");
        assert!(json["steps"][0]["took"].is_u64());
    }

    #[test]
    fn failing_probe_rolls_back_and_restages() {
        let (_d, sh) = setup("old", "broken", vec![("probe", probe_ok_unless_broken)]);
        let r = run_switch(&sh, &sh, &switch()).unwrap();
        let SwitchOutcome::RolledBack {
            cause,
            probes_after,
            recovered,
        } = &r.outcome
        else {
            panic!("{r:?}")
        };
        assert_eq!(
            *cause,
            RollbackCause::Probes {
                failed: vec!["gw".into()]
            }
        );
        assert!(*recovered && probes_after[0].passed);
        assert!(r.probes[0].attempts > 1, "retried until the deadline");
        assert_eq!(sh.live(), "old");
        assert_eq!(
            sh.read_file("/etc/x.conf.new").unwrap().unwrap().content,
            "broken"
        );
        let ran = sh.ran();
        assert_eq!(ran.first().map(String::as_str), Some("reload"));
        assert_eq!(ran.iter().filter(|c| *c == "reload").count(), 2);
        assert_eq!(ran.last().map(String::as_str), Some("probe"));
    }

    #[test]
    fn failing_reload_rolls_back_without_probing() {
        fn reload(live: &str) -> i32 {
            i32::from(live == "bad")
        }
        let (_d, sh) = setup("old", "bad", vec![("reload", reload)]);
        let r = run_switch(&sh, &sh, &switch()).unwrap();
        assert!(
            matches!(
                &r.outcome,
                SwitchOutcome::RolledBack {
                    cause: RollbackCause::Reload { .. },
                    recovered: true,
                    ..
                }
            ),
            "{r:?}"
        );
        assert!(r.probes.is_empty());
        assert_eq!(sh.ran(), ["reload", "reload", "probe"]);
        assert_eq!(sh.live(), "old");
    }

    #[test]
    fn failed_rollback_reload_is_not_recovered_and_steps_are_reported_as_they_happen() {
        fn reload(_: &str) -> i32 {
            1
        }
        let (_d, sh) = setup("old", "new", vec![("reload", reload)]);
        let mut seen = Vec::new();
        let r = run_switch_with(&sh, &sh, &switch(), &mut |s| seen.push(s.step.clone())).unwrap();
        assert!(
            matches!(
                &r.outcome,
                SwitchOutcome::RolledBack {
                    cause: RollbackCause::Reload { .. },
                    recovered: false,
                    ..
                }
            ),
            "{r:?}"
        );
        assert_eq!(sh.live(), "old", "restored even though the reload fails");
        assert_eq!(
            seen,
            r.steps.iter().map(|s| s.step.clone()).collect::<Vec<_>>()
        );
        assert!(seen.contains(&"rollback reload".to_string()));
        assert!(seen.contains(&"rollback probe: gw".to_string()), "{seen:?}");
    }

    #[test]
    fn unconfirmed_switch_rolls_back_and_confirmed_one_stays() {
        let (_d, sh) = setup("old", "new", vec![]);
        let flag = confirm_flag_path("t1");
        sh.write_file(&flag, &own("stale")).unwrap();
        let sw = switch().with_confirm(Confirm::Within {
            window: Duration::from_millis(200),
            flag: flag.clone(),
        });
        let r = run_switch(&sh, &sh, &sw).unwrap();
        assert!(
            matches!(
                &r.outcome,
                SwitchOutcome::RolledBack {
                    cause: RollbackCause::NotConfirmed { .. },
                    ..
                }
            ),
            "a stale flag does not confirm: {r:?}"
        );
        assert_eq!(sh.live(), "old");

        // Staged again by the rollback; confirmed this time from another thread.
        let sw = Switch {
            confirm: Confirm::Within {
                window: Duration::from_secs(5),
                flag: flag.clone(),
            },
            ..sw
        };
        let r = std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(150));
                sh.write_file(&flag, &own("")).unwrap();
            });
            run_switch(&sh, &sh, &sw).unwrap()
        });
        assert_eq!(r.outcome, SwitchOutcome::Switched { confirmed: true });
        assert!(r.steps.iter().any(|s| s.step == "await confirmation"));
        assert_eq!(sh.live(), "new");
        assert!(sh.read_file(&flag).unwrap().is_none(), "flag consumed");
    }

    #[test]
    fn invalid_or_missing_staged_file_changes_nothing() {
        fn check(_: &str) -> i32 {
            1
        }
        let (_d, sh) = setup("old", "new", vec![("check", check)]);
        let mut sw = switch();
        sw.validate = vec![argv(&["check", "/etc/x.conf.new"])];
        assert!(matches!(
            run_switch(&sh, &sh, &sw),
            Err(SwitchError::Invalid { .. })
        ));
        assert_eq!(sh.live(), "old");
        sh.remove_file("/etc/x.conf.new").unwrap();
        assert!(matches!(
            run_switch(&sh, &sh, &switch()),
            Err(SwitchError::NothingStaged(_))
        ));
        assert_eq!(sh.ran(), ["check /etc/x.conf.new"]);
    }

    #[test]
    fn same_content_is_unchanged_without_reload() {
        let (_d, sh) = setup("same", "same", vec![]);
        let r = run_switch(&sh, &sh, &switch()).unwrap();
        assert_eq!(r.outcome, SwitchOutcome::Unchanged);
        assert!(sh.ran().is_empty());
        assert!(sh.read_file("/etc/x.conf.new").unwrap().is_none());
    }

    #[test]
    fn no_previous_file_rolls_back_by_removing_it() {
        let (_d, sh) = setup("x", "broken", vec![("probe", probe_ok_unless_broken)]);
        sh.remove_file("/etc/x.conf").unwrap();
        let mut sw = switch();
        sw.reload_without_previous = vec![argv(&["nft", "delete", "table", "ip", "t"])];
        let r = run_switch(&sh, &sh, &sw).unwrap();
        assert!(matches!(r.outcome, SwitchOutcome::RolledBack { .. }));
        assert!(sh.read_file("/etc/x.conf").unwrap().is_none());
        assert!(sh.ran().contains(&"nft delete table ip t".to_string()));
    }

    #[test]
    fn tcp_probe_connects_from_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (_d, sh) = setup("old", "new", vec![]);
        let mut sw = switch();
        sw.probes = vec![Probe::tcp("api", addr)];
        let r = run_switch(&sh, &sh, &sw).unwrap();
        assert!(r.switched(), "{r:?}");
        assert_eq!(r.probes[0].attempts, 1);
    }

    #[test]
    fn presets_use_argv_only() {
        let n = Switch::nat("/etc/phoenix/nat.nft", "phoenix_nat");
        assert_eq!(n.reload, [argv(&["nft", "-f", "/etc/phoenix/nat.nft"])]);
        assert_eq!(
            n.validate,
            [argv(&["nft", "-c", "-f", "/etc/phoenix/nat.nft.new"])]
        );
        let i = Switch::interfaces();
        assert_eq!(i.staged_path, "/etc/network/interfaces.new");
        assert_eq!(i.reload, [argv(&["ifreload", "-a"])]);
        let d = Switch::dnsmasq("/etc/dnsmasq.d/phoenix.conf", None);
        assert_eq!(d.reload, [argv(&["systemctl", "restart", "dnsmasq"])]);
        assert_eq!(switch_id("/a", "x").len(), 12);
        assert_ne!(switch_id("/a", "x"), switch_id("/b", "x"));
    }
}
