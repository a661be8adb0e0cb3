//! Apply a [`SetupPlan`] through the node's shell, step by step: files written atomically
//! (smb.conf staged and `testparm`-checked first), then the activations; the first failure
//! stops the rest. The Samba password goes to `smbpasswd` on stdin only. I/O through the
//! [`HostShell`].

use std::time::Duration;

use phoenix_exec::journal::Outcome;
use phoenix_exec::shell::{HostShell, ShellError, staged_path};

use crate::plan::{Check, SetupPlan, Step};
use crate::storage::PveApi;

/// Deadline of one command.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Shell(#[from] ShellError),
    #[error("testparm refused the new {path} (the file was not replaced): {detail}")]
    Check { path: String, detail: String },
    #[error("`{command}` exited with {status}: {stderr}")]
    Command {
        command: String,
        status: i32,
        stderr: String,
    },
    #[error("the Samba password was not given to apply (resolve `samba.password` first)")]
    NoPassword,
    #[error("the Samba password holds a line break, which smbpasswd -s cannot read")]
    PasswordLineBreak,
    #[error("visudo refused the new {path} (the file was not replaced): {detail}")]
    Sudoers { path: String, detail: String },
    #[error(
        "the password hash of {user} was not given to apply (resolve `users.password_hash` first)"
    )]
    NoPasswordHash { user: String },
    #[error("the password hash holds a line break or a colon, which `chpasswd -e` cannot read")]
    BadPasswordHash,
    #[error("a refused step cannot be applied: {0}")]
    Refused(String),
    #[error("no Proxmox API connection for `{0}`")]
    NoApi(String),
    #[error("the Proxmox API refused {call}: {message}")]
    Api { call: String, message: String },
}

/// The secrets a plan may need at apply time (never in the plan itself).
#[derive(Default)]
pub struct Secrets<'a> {
    /// `samba.password`.
    pub samba_password: Option<&'a [u8]>,
    /// `users.password_hash` (a `crypt(3)` hash).
    pub admin_password_hash: Option<&'a [u8]>,
}

impl std::fmt::Debug for Secrets<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(<redacted>)")
    }
}

/// What applying did, step by step.
#[derive(Debug, Default)]
pub struct Journal {
    pub entries: Vec<(String, Outcome<SetupError>)>,
}

impl Journal {
    pub fn failed(&self) -> bool {
        self.entries
            .iter()
            .any(|(_, o)| matches!(o, Outcome::Failed(_)))
    }

    /// Steps done (files written, commands run, password set).
    pub fn done(&self) -> usize {
        self.entries
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Done))
            .count()
    }
}

/// Apply `plan` through the host only; `samba_password` is the secret's bytes when the plan
/// sets the password.
pub fn apply(shell: &dyn HostShell, plan: &SetupPlan, samba_password: Option<&[u8]>) -> Journal {
    let secrets = Secrets {
        samba_password,
        admin_password_hash: None,
    };
    apply_with(shell, None, plan, &secrets)
}

/// Apply `plan` through the host's shell and (for API steps) the Proxmox API.
pub fn apply_with(
    shell: &dyn HostShell,
    api: Option<&dyn PveApi>,
    plan: &SetupPlan,
    secrets: &Secrets<'_>,
) -> Journal {
    let mut journal = Journal::default();
    // A refused destructive step stops the whole plan before anything changes.
    if plan.refusals().next().is_some() {
        for step in &plan.steps {
            let outcome = match step {
                Step::Refused { what, reason, .. } => {
                    Outcome::Failed(SetupError::Refused(format!("{what}: {reason}")))
                }
                _ => Outcome::NotStarted,
            };
            journal.entries.push((step.to_string(), outcome));
        }
        return journal;
    }
    let mut stopped = false;
    for step in &plan.steps {
        let outcome = if stopped {
            Outcome::NotStarted
        } else {
            match step {
                Step::Skip { reason, .. } | Step::NeedsReboot { reason, .. } => Outcome::Skipped {
                    reason: reason.clone(),
                },
                _ => match run_step(shell, api, step, secrets) {
                    Ok(()) => Outcome::Done,
                    Err(e) => {
                        stopped = true;
                        Outcome::Failed(e)
                    }
                },
            }
        };
        journal.entries.push((step.to_string(), outcome));
    }
    journal
}

fn command_result(
    argv: &[String],
    out: phoenix_exec::shell::CommandOutput,
) -> Result<(), SetupError> {
    if out.status == 0 {
        return Ok(());
    }
    Err(SetupError::Command {
        command: argv.join(" "),
        status: out.status,
        stderr: out.stderr.trim().to_string(),
    })
}

fn run_step(
    shell: &dyn HostShell,
    api: Option<&dyn PveApi>,
    step: &Step,
    secrets: &Secrets<'_>,
) -> Result<(), SetupError> {
    let samba_password = secrets.samba_password;
    match step {
        Step::WriteFile {
            path,
            file,
            check: Some(Check::Visudo),
            ..
        } => {
            let staged = shell.stage_file(path, file)?;
            let argv = vec![
                "visudo".to_string(),
                "-cf".into(),
                shell.command_path(&staged)?,
            ];
            let out = shell.run(&argv, COMMAND_DEADLINE)?;
            if out.status != 0 {
                shell.remove_file(&staged)?;
                return Err(SetupError::Sudoers {
                    path: path.clone(),
                    detail: format!("{}{}", out.stdout.trim(), out.stderr.trim()),
                });
            }
            shell.write_file(path, file)?;
            shell.remove_file(&staged)?;
            Ok(())
        }
        Step::WriteFile {
            path, file, check, ..
        } => {
            if let Some(Check::Testparm) = check {
                let staged = shell.stage_file(path, file)?;
                let argv = vec![
                    "testparm".to_string(),
                    "-s".into(),
                    shell.command_path(&staged)?,
                ];
                let out = shell.run(&argv, COMMAND_DEADLINE)?;
                // testparm exits 0 on unknown parameters; they are errors here.
                let unknown = out.stderr.lines().find(|l| l.contains("nknown parameter"));
                if out.status != 0 || unknown.is_some() {
                    shell.remove_file(&staged)?;
                    let detail = unknown
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("exit {}: {}", out.status, out.stderr.trim()));
                    return Err(SetupError::Check {
                        path: path.clone(),
                        detail,
                    });
                }
                shell.write_file(path, file)?;
                shell.remove_file(&staged_path(path))?;
                return Ok(());
            }
            Ok(shell.write_file(path, file)?)
        }
        Step::Run { argv, .. } => command_result(argv, shell.run(argv, COMMAND_DEADLINE)?),
        Step::SambaPassword { user, .. } => {
            let password = samba_password.ok_or(SetupError::NoPassword)?;
            if password.iter().any(|b| *b == b'\n' || *b == b'\r') {
                return Err(SetupError::PasswordLineBreak);
            }
            // `-s`: read the new password twice from stdin, no prompt.
            let mut input = Vec::with_capacity(2 * password.len() + 2);
            for _ in 0..2 {
                input.extend_from_slice(password);
                input.push(b'\n');
            }
            let argv = ["smbpasswd", "-s", "-a", user.as_str()].map(String::from);
            let out = shell.run_with_input(&argv, &input, COMMAND_DEADLINE);
            input.iter_mut().for_each(|b| *b = 0);
            command_result(&argv, out?)
        }
        Step::Skip { .. } | Step::NeedsReboot { .. } => Ok(()),
        Step::Refused { what, reason, .. } => Err(SetupError::Refused(format!("{what}: {reason}"))),
        Step::WipeDisk {
            disk, zfs_label, ..
        } => {
            if *zfs_label {
                let argv = ["zpool", "labelclear", "-f", disk.as_str()].map(String::from);
                command_result(&argv, shell.run(&argv, COMMAND_DEADLINE)?)?;
            }
            let argv = ["wipefs", "--all", disk.as_str()].map(String::from);
            command_result(&argv, shell.run(&argv, COMMAND_DEADLINE)?)
        }
        Step::CreatePool { argv, .. } => command_result(argv, shell.run(argv, COMMAND_DEADLINE)?),
        Step::SetParameter { path, value, .. } => {
            // sysfs takes a plain write, not a rename: `tee` opens the file in place.
            let argv = vec!["tee".to_string(), shell.command_path(path)?];
            let out =
                shell.run_with_input(&argv, format!("{value}\n").as_bytes(), COMMAND_DEADLINE)?;
            command_result(&argv, out)
        }
        Step::Api {
            method,
            path,
            params,
            ..
        } => {
            let call = format!("{method} {path}");
            let api = api.ok_or_else(|| SetupError::NoApi(call.clone()))?;
            api.write(method, path, params)
                .map(drop)
                .map_err(|message| SetupError::Api { call, message })
        }
        Step::PasswordHash { user, .. } => {
            let hash = secrets
                .admin_password_hash
                .ok_or_else(|| SetupError::NoPasswordHash { user: user.clone() })?;
            if hash.iter().any(|b| matches!(b, b'\n' | b'\r' | b':')) {
                return Err(SetupError::BadPasswordHash);
            }
            let mut input = Vec::with_capacity(user.len() + hash.len() + 2);
            input.extend_from_slice(user.as_bytes());
            input.push(b':');
            input.extend_from_slice(hash);
            input.push(b'\n');
            let argv = ["chpasswd", "-e"].map(String::from);
            let out = shell.run_with_input(&argv, &input, COMMAND_DEADLINE);
            input.iter_mut().for_each(|b| *b = 0);
            command_result(&argv, out?)
        }
        Step::RemoveFile { path, .. } => Ok(shell.remove_file(path)?),
    }
}
