//! Execute provision steps inside guests ([`phoenix_plan::provision`]): every step's check
//! runs first and only a failed check leads to its apply, so a second run changes nothing.
//! [`observe_provision`] runs the checks alone (the planner's observation of a guest's inside).
//! Does I/O through a [`GuestExec`] (a node's `pct` and guest agent, a lab guest's root).

use std::collections::BTreeSet;

use phoenix_model::model::GuestId;
use phoenix_plan::observed::ObservedProvision;
use phoenix_plan::plan::PlannedFile;
use phoenix_plan::provision::{BinarySource, Check, FileSource, ProvisionStep, StepKind};
use phoenix_render::FileTarget;

pub use super::{GuestExec, ProvisionError};
use super::{file_name, guest_error, parent, run_ok, strings};
use crate::shell::HostFile;

/// Content phoenix only has when applying (CA material, secrets).
pub trait Materials: Sync {
    fn material(&self, guest: GuestId, name: &str) -> Option<String>;
}

/// No material at all: steps that need one are skipped with that reason.
#[derive(Debug, Default)]
pub struct NoMaterials;

impl Materials for NoMaterials {
    fn material(&self, _: GuestId, _: &str) -> Option<String> {
        None
    }
}

impl Materials for std::collections::BTreeMap<(GuestId, String), String> {
    fn material(&self, guest: GuestId, name: &str) -> Option<String> {
        self.get(&(guest, name.to_string())).cloned()
    }
}

/// Where file contents come from: the plan's rendered files and the apply-time materials.
#[derive(Clone, Copy)]
pub struct Contents<'a> {
    pub rendered: &'a [PlannedFile],
    pub materials: &'a dyn Materials,
}

/// What happened to one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// The check passed: nothing was changed.
    Kept,
    /// The check failed and the step was applied (or a service reloaded after a change).
    Applied,
    /// The step could not be applied (the message says where).
    Failed(String),
    /// Not attempted (content not available); later steps still run.
    Skipped(String),
}

enum Want {
    File(HostFile),
    Unavailable(String),
}

fn wanted_file(step: &ProvisionStep, guest: GuestId, contents: Contents<'_>) -> Option<Want> {
    let StepKind::File {
        path,
        source,
        owner,
        group,
        mode,
    } = &step.kind
    else {
        return None;
    };
    let content = match source {
        FileSource::Inline { content } => Some(content.clone()),
        FileSource::Rendered { sha256 } => contents
            .rendered
            .iter()
            .find(|f| f.file.target == FileTarget::Guest(guest) && f.file.path == *path)
            .filter(|f| f.sha256 == *sha256)
            .map(|f| f.file.content.clone()),
        FileSource::Material { name } => contents.materials.material(guest, name),
    };
    Some(match content {
        Some(content) => Want::File(HostFile {
            content,
            owner: owner.clone(),
            group: group.clone(),
            mode: *mode,
        }),
        None => Want::Unavailable(match source {
            FileSource::Material { name } => format!("{name} was not supplied"),
            _ => format!("{path}: the plan holds no such content"),
        }),
    })
}

fn probes_pass(exec: &dyn GuestExec, check: &Check) -> Result<bool, ProvisionError> {
    let Check::Probes { probes } = check else {
        return Ok(false);
    };
    for p in probes {
        let out = exec.run(&p.argv)?;
        if out.status != 0 {
            return Ok(false);
        }
        if let Some(want) = &p.stdout
            && out.stdout.trim() != want
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Download into the guest, verify, install.
fn fetch(
    exec: &dyn GuestExec,
    source: &BinarySource,
    dest: &str,
    mode: u32,
) -> Result<(), ProvisionError> {
    let dir = parent(dest);
    let tmp = format!("{dest}.phoenix-download");
    run_ok(exec, &strings(&["mkdir", "-p", dir]))?;
    let result = (|| {
        run_ok(
            exec,
            &strings(&["curl", "-fsSL", "--retry", "3", "-o", &tmp, &source.url]),
        )?;
        if let Some(want) = &source.sha256 {
            let out = run_ok(exec, &strings(&["sha256sum", &tmp]))?;
            let got = out.stdout.split_whitespace().next().unwrap_or_default();
            if !got.eq_ignore_ascii_case(want) {
                return Err(guest_error(
                    exec,
                    format!("{}: sha256 {got}, expected {want}", source.url),
                ));
            }
        }
        let mode = format!("{mode:04o}");
        if source.tar_gz {
            let name = file_name(dest);
            run_ok(
                exec,
                &strings(&["tar", "-xzf", &tmp, "-C", dir, "--no-same-owner", name]),
            )?;
            run_ok(exec, &strings(&["chmod", &mode, dest]))?;
        } else {
            run_ok(exec, &strings(&["install", "-m", &mode, &tmp, dest]))?;
        }
        Ok(())
    })();
    let cleaned = run_ok(exec, &strings(&["rm", "-f", &tmp]));
    result?;
    cleaned.map(drop)
}

/// Marks `changed` once `apt-get update` ran and no repository file changed since.
const APT_FRESH: &str = "\0apt index fresh";

/// Check, and apply when the check fails, one step. `changed` holds the paths this run wrote
/// in the guest (a service restarts or reloads when one of its `reload_on` paths is there).
fn one_step(
    exec: &dyn GuestExec,
    step: &ProvisionStep,
    contents: Contents<'_>,
    changed: &mut BTreeSet<String>,
) -> Result<StepOutcome, ProvisionError> {
    if let Some(outcome) = exec.own_step(step, true) {
        let outcome = outcome?;
        if outcome == StepOutcome::Applied
            && let Some(path) = step.path()
        {
            changed.insert(path.to_string());
        }
        return Ok(outcome);
    }
    let guest = exec.guest();
    match wanted_file(step, guest, contents) {
        Some(Want::Unavailable(why)) => return Ok(StepOutcome::Skipped(why)),
        Some(Want::File(want)) => {
            let path = step.path().unwrap_or_default();
            if exec.read_file(path)?.as_ref() == Some(&want) {
                return Ok(StepOutcome::Kept);
            }
            for argv in &step.apply {
                run_ok(exec, argv)?;
            }
            exec.write_file(path, &want)?;
            if path.starts_with("/etc/apt/") {
                changed.remove(APT_FRESH);
            }
            changed.insert(path.to_string());
            return Ok(StepOutcome::Applied);
        }
        None => {}
    }
    let done = probes_pass(exec, &step.check)?;
    let mut outcome = StepOutcome::Kept;
    if !done {
        for argv in &step.apply {
            // One `apt-get update` per run, again only after a repository changed.
            let update = argv.iter().any(|a| a == "apt-get") && argv.iter().any(|a| a == "update");
            if update && changed.contains(APT_FRESH) {
                continue;
            }
            run_ok(exec, argv)?;
            if update {
                changed.insert(APT_FRESH.into());
            }
        }
        if let StepKind::Fetch { source, dest, mode } = &step.kind {
            fetch(exec, source, dest, *mode)?;
            changed.insert(dest.clone());
        }
        outcome = StepOutcome::Applied;
    }
    if let StepKind::Service {
        name,
        reload_on,
        reload,
        ..
    } = &step.kind
        && reload_on.iter().any(|p| changed.contains(p))
    {
        run_ok(exec, &strings(&["systemctl", "daemon-reload"]))?;
        let verb = if *reload {
            "reload"
        } else {
            "reload-or-restart"
        };
        run_ok(exec, &strings(&["systemctl", verb, name]))?;
        outcome = StepOutcome::Applied;
    }
    Ok(outcome)
}

/// Check `steps` inside one guest without changing anything: the observation the planner
/// takes (`ObservedState::provisioned`) so a plan lists only what is missing. A file whose
/// content is not available here (apply-time material) counts as not done.
pub fn observe_provision(
    exec: &dyn GuestExec,
    steps: &[ProvisionStep],
    contents: Contents<'_>,
) -> Result<ObservedProvision, ProvisionError> {
    let mut done = Vec::new();
    for step in steps {
        let ok = match exec.own_step(step, false) {
            Some(outcome) => outcome? == StepOutcome::Kept,
            None => match wanted_file(step, exec.guest(), contents) {
                Some(Want::File(want)) => {
                    exec.read_file(step.path().unwrap_or_default())?.as_ref() == Some(&want)
                }
                Some(Want::Unavailable(_)) => false,
                None => probes_pass(exec, &step.check)?,
            },
        };
        if ok {
            done.push(step.done_key());
        }
    }
    Ok(ObservedProvision {
        guest: exec.guest(),
        done,
    })
}

/// Run `steps` in order inside one guest: each checked first, applied only when the check
/// fails. A failed step stops the guest's later steps (they may depend on it), which are
/// reported as skipped.
pub fn apply_provision(
    exec: &dyn GuestExec,
    steps: &[ProvisionStep],
    contents: Contents<'_>,
) -> Vec<StepOutcome> {
    apply_provision_after(exec, steps, contents, &BTreeSet::new())
}

/// [`apply_provision`] when earlier actions of the same run already changed `written` (paths
/// inside this guest, e.g. the plan's rendered files): a service reloads for them as for a
/// file its own steps changed.
pub fn apply_provision_after(
    exec: &dyn GuestExec,
    steps: &[ProvisionStep],
    contents: Contents<'_>,
    written: &BTreeSet<String>,
) -> Vec<StepOutcome> {
    let mut changed = written.clone();
    let mut failed = false;
    steps
        .iter()
        .map(|step| {
            if failed {
                return StepOutcome::Skipped("an earlier step failed".into());
            }
            match one_step(exec, step, contents, &mut changed) {
                Ok(o) => o,
                Err(e) => {
                    failed = true;
                    StepOutcome::Failed(format!("{step}: {e}"))
                }
            }
        })
        .collect()
}
