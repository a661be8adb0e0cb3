//! Apply a [`SetupPlan`] through the node's shell, step by step: files written atomically
//! (smb.conf staged and `testparm`-checked first), then the activations; the first failure
//! stops the rest. The Samba password goes to `smbpasswd` on stdin only. I/O through the
//! [`HostShell`].

use std::time::Duration;

use phoenix_exec::journal::Outcome;
use phoenix_exec::shell::{HostShell, ShellError, staged_path};

use crate::plan::{Check, SetupPlan, Step};

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

/// Apply `plan`; `samba_password` is the secret's bytes when the plan sets the password.
pub fn apply(shell: &dyn HostShell, plan: &SetupPlan, samba_password: Option<&[u8]>) -> Journal {
    let mut journal = Journal::default();
    let mut stopped = false;
    for step in &plan.steps {
        let outcome = if stopped {
            Outcome::NotStarted
        } else {
            match step {
                Step::Skip { reason, .. } => Outcome::Skipped {
                    reason: reason.clone(),
                },
                _ => match run_step(shell, step, samba_password) {
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
    step: &Step,
    samba_password: Option<&[u8]>,
) -> Result<(), SetupError> {
    match step {
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
        Step::Skip { .. } => Ok(()),
    }
}
