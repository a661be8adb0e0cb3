//! Reaching into a guest: the [`GuestExec`] trait every target implements (a node's `pct` and
//! QEMU guest agent in `phoenix-pve`, a lab guest's namespace and file root in `phoenix-lab`)
//! and the helpers its implementations share. Argv vectors only, never a shell.

pub mod observe;
pub mod provision;

use phoenix_model::model::GuestId;
use phoenix_plan::provision::ProvisionStep;

use crate::shell::{CommandOutput, HostFile, ShellError};
use provision::StepOutcome;

/// What can go wrong reaching into a guest.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Shell(#[from] ShellError),
    /// The target's own transport failed (a node's API, for example).
    #[error(transparent)]
    Api(Box<dyn std::error::Error + Send + Sync>),
    #[error("guest {guest}: {what}")]
    Guest { guest: GuestId, what: String },
}

/// A guest's inside, as the executor needs it.
pub trait GuestExec: std::fmt::Debug {
    fn guest(&self) -> GuestId;
    /// Run `argv` inside the guest (no shell) and wait for it.
    fn run(&self, argv: &[String]) -> Result<CommandOutput, ProvisionError>;
    /// The file at `path` with its owner, group and mode, or `None` when it does not exist.
    fn read_file(&self, path: &str) -> Result<Option<HostFile>, ProvisionError>;
    /// Put `file` at `path` (parent directories created) with its owner, group and mode.
    fn write_file(&self, path: &str, file: &HostFile) -> Result<(), ProvisionError>;
    /// The content of the file at `path` (`None`: absent), read without changing anything on
    /// the target (observation; owner and mode not needed).
    fn read_content(&self, path: &str) -> Result<Option<String>, ProvisionError> {
        Ok(self.read_file(path)?.map(|f| f.content))
    }
    /// This executor's own handling of `step` in place of its planned check and apply, for a
    /// guest that is not a machine of its own (the lab twin shares the host's packages and
    /// systemd, so it must never run them): `None` (the default, a node's executors) runs the
    /// step as planned. With `apply` false it only checks
    /// (`Kept` means done); an `Applied` step counts as a change of its path.
    fn own_step(
        &self,
        _step: &ProvisionStep,
        _apply: bool,
    ) -> Option<Result<StepOutcome, ProvisionError>> {
        None
    }
}

pub fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `stat -c %U:%G:%a PATH` inside the guest: `None` when the file does not exist.
pub fn stat(
    exec: &dyn GuestExec,
    path: &str,
) -> Result<Option<(String, String, u32)>, ProvisionError> {
    let out = exec.run(&strings(&["stat", "-c", "%U:%G:%a", path]))?;
    if out.status != 0 {
        return Ok(None);
    }
    let line = out.stdout.trim();
    let mut it = line.splitn(3, ':');
    match (it.next(), it.next(), it.next()) {
        (Some(u), Some(g), Some(m)) => match u32::from_str_radix(m, 8) {
            Ok(mode) => Ok(Some((u.to_string(), g.to_string(), mode))),
            Err(_) => Err(guest_error(
                exec,
                format!("stat {path}: unexpected `{line}`"),
            )),
        },
        _ => Err(guest_error(
            exec,
            format!("stat {path}: unexpected `{line}`"),
        )),
    }
}

pub fn guest_error(exec: &dyn GuestExec, what: String) -> ProvisionError {
    ProvisionError::Guest {
        guest: exec.guest(),
        what,
    }
}

/// Run `argv`; a non-zero exit is an error naming the program and the end of its stderr.
pub fn run_ok(exec: &dyn GuestExec, argv: &[String]) -> Result<CommandOutput, ProvisionError> {
    let out = exec.run(argv)?;
    if out.status == 0 {
        return Ok(out);
    }
    let tail: String = {
        let s = out.stderr.trim();
        let start = s.char_indices().rev().nth(400).map_or(0, |(i, _)| i);
        s[start..].to_string()
    };
    Err(guest_error(
        exec,
        format!(
            "{} exited with {}: {tail}",
            argv.first().map_or("", String::as_str),
            out.status
        ),
    ))
}
