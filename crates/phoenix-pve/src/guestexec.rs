//! A node's guests from inside: containers through the node's shell ([`LxcExec`]: `pct exec
//! ID -- argv…`, `pct push`) and VMs through the QEMU guest agent API ([`QemuAgentExec`]:
//! `agent/exec` + `agent/exec-status`, `agent/file-read`, `agent/file-write`), both
//! [`GuestExec`]s of `phoenix-exec`. Does I/O. Argv vectors only, never a shell.
//!
//! References: `pct(1)` (<https://pve.proxmox.com/pve-docs/pct.1.html>: `exec`, `push
//! --perms --user --group`) and the agent endpoints of the PVE API
//! (<https://pve.proxmox.com/pve-docs/api-viewer/#/nodes/{node}/qemu/{vmid}/agent>).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use phoenix_exec::guest::{GuestExec, ProvisionError};
use phoenix_exec::guest::{guest_error, parent, run_ok, stat, strings};
use phoenix_exec::shell::{CommandOutput, HostFile, HostShell, ShellError};
use phoenix_model::model::GuestId;
use reqwest::Method;
use serde_json::Value;

use crate::client::PveClient;
use crate::error::PveError;

impl From<PveError> for ProvisionError {
    fn from(e: PveError) -> Self {
        ProvisionError::Api(Box::new(e))
    }
}

// ------------------------------------------------------------------------ containers

/// A container through the node's shell: `pct exec ID -- argv…`, `pct push ID TMP PATH`.
#[derive(Debug)]
pub struct LxcExec<'a> {
    pub shell: &'a dyn HostShell,
    pub id: GuestId,
    /// Per command inside the guest (`apt-get install` can take minutes).
    pub deadline: Duration,
}

static PUSH_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Where files bound for a container are staged on the node (root's, created by the shell's
/// write with umask 077 over ssh).
pub const PUSH_DIR: &str = "/run/phoenix/push";

impl<'a> LxcExec<'a> {
    pub fn new(shell: &'a dyn HostShell, id: GuestId) -> Self {
        LxcExec {
            shell,
            id,
            deadline: Duration::from_secs(900),
        }
    }

    fn pct(&self, args: &[String]) -> Result<CommandOutput, ProvisionError> {
        let mut argv = vec!["pct".to_string()];
        argv.extend_from_slice(args);
        let out = self.shell.run(&argv, self.deadline)?;
        // A shell's 127 for `pct` itself (over ssh, to a host that is no Proxmox node) is the
        // same as failing to start it locally: there is no container to reach.
        if out.status == 127 && out.stderr.contains("pct") && out.stderr.contains("not found") {
            return Err(ShellError::Spawn {
                program: "pct".into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, out.stderr.trim()),
            }
            .into());
        }
        Ok(out)
    }
}

impl GuestExec for LxcExec<'_> {
    fn guest(&self) -> GuestId {
        self.id
    }

    fn run(&self, argv: &[String]) -> Result<CommandOutput, ProvisionError> {
        let mut args = vec!["exec".to_string(), self.id.to_string(), "--".to_string()];
        args.extend_from_slice(argv);
        self.pct(&args)
    }

    fn read_file(&self, path: &str) -> Result<Option<HostFile>, ProvisionError> {
        let Some((owner, group, mode)) = stat(self, path)? else {
            return Ok(None);
        };
        let content = run_ok(self, &strings(&["cat", path]))?.stdout;
        Ok(Some(HostFile {
            content,
            owner,
            group,
            mode,
        }))
    }

    fn write_file(&self, path: &str, file: &HostFile) -> Result<(), ProvisionError> {
        run_ok(self, &strings(&["mkdir", "-p", parent(path)]))?;
        // Staged on the node readable by root only (it may hold a key), in phoenix's own
        // directory (never a predictable name in a shared one like /var/tmp), removed afterwards.
        let n = PUSH_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = format!("{PUSH_DIR}/push-{}-{}-{n}", self.id, std::process::id());
        let staged = HostFile {
            content: file.content.clone(),
            owner: "root".into(),
            group: "root".into(),
            mode: 0o600,
        };
        self.shell.write_file(&tmp, &staged)?;
        let pushed = self.pct(&[
            "push".into(),
            self.id.to_string(),
            tmp.clone(),
            path.into(),
            "--perms".into(),
            format!("{:04o}", file.mode),
            "--user".into(),
            file.owner.clone(),
            "--group".into(),
            file.group.clone(),
        ]);
        let removed = self.shell.remove_file(&tmp);
        let out = pushed?;
        removed?;
        if out.status != 0 {
            return Err(guest_error(
                self,
                format!(
                    "pct push {path} exited with {}: {}",
                    out.status,
                    out.stderr.trim()
                ),
            ));
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------ VMs

/// A VM through the QEMU guest agent API.
#[derive(Debug)]
pub struct QemuAgentExec<'a> {
    pub client: &'a PveClient,
    pub node: String,
    pub id: GuestId,
    /// Between `exec-status` polls.
    pub poll: Duration,
    /// Per command inside the guest.
    pub deadline: Duration,
}

/// `agent/file-write`'s `content` limit (PVE: 60 KiB).
pub const AGENT_WRITE_LIMIT: usize = 61_440;

impl<'a> QemuAgentExec<'a> {
    pub fn new(client: &'a PveClient, node: impl Into<String>, id: GuestId) -> Self {
        QemuAgentExec {
            client,
            node: node.into(),
            id,
            poll: Duration::from_millis(200),
            deadline: Duration::from_secs(900),
        }
    }

    fn path(&self, command: &str) -> String {
        format!("/nodes/{}/qemu/{}/agent/{command}", self.node, self.id)
    }

    /// Wait until the agent answers `ping` (a VM started moments ago needs a while), at most
    /// `deadline`; the last error when it never does.
    pub fn wait_ready(&self, deadline: Duration) -> Result<(), ProvisionError> {
        let start = Instant::now();
        let none = std::collections::BTreeMap::new();
        loop {
            match self.client.write(Method::POST, &self.path("ping"), &none) {
                Ok(_) => return Ok(()),
                // Not running yet: PVE answers 500 until the agent is up.
                Err(PveError::Http { status: 500, .. }) if start.elapsed() < deadline => {
                    std::thread::sleep(self.poll.max(Duration::from_millis(500)));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn exited(v: &Value) -> bool {
    match v.get("exited") {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

impl GuestExec for QemuAgentExec<'_> {
    fn guest(&self) -> GuestId {
        self.id
    }

    fn run(&self, argv: &[String]) -> Result<CommandOutput, ProvisionError> {
        // `command` is an array: one form pair per element.
        let pairs: Vec<(String, String)> = argv
            .iter()
            .map(|a| ("command".to_string(), a.clone()))
            .collect();
        let started = self
            .client
            .write_pairs(Method::POST, &self.path("exec"), &pairs)?;
        let Some(pid) = started.get("pid").and_then(Value::as_u64) else {
            return Err(guest_error(
                self,
                format!("agent exec: no pid in {started}"),
            ));
        };
        let pid = pid.to_string();
        let start = Instant::now();
        loop {
            let status = self
                .client
                .get(&self.path("exec-status"), &[("pid", pid.as_str())])?;
            if exited(&status) {
                let text = |k: &str| {
                    status
                        .get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                // No exit code: ended by a signal.
                let code = status.get("exitcode").and_then(Value::as_i64).unwrap_or(-1);
                return Ok(CommandOutput {
                    status: i32::try_from(code).unwrap_or(-1),
                    stdout: text("out-data"),
                    stderr: text("err-data"),
                });
            }
            if start.elapsed() >= self.deadline {
                return Err(guest_error(
                    self,
                    format!(
                        "{} still running after {:?}",
                        argv.first().map_or("", String::as_str),
                        self.deadline
                    ),
                ));
            }
            std::thread::sleep(self.poll);
        }
    }

    fn read_file(&self, path: &str) -> Result<Option<HostFile>, ProvisionError> {
        let Some((owner, group, mode)) = stat(self, path)? else {
            return Ok(None);
        };
        let data = self
            .client
            .get(&self.path("file-read"), &[("file", path)])?;
        if data.get("truncated").and_then(Value::as_bool) == Some(true) {
            return Err(guest_error(self, format!("{path} is too large to read")));
        }
        let content = data
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(Some(HostFile {
            content,
            owner,
            group,
            mode,
        }))
    }

    /// `agent/file-read` alone (a GET): observing writes nothing, not even an `exec`. An
    /// empty answer counts as no file (an agent that holds none answers so).
    fn read_content(&self, path: &str) -> Result<Option<String>, ProvisionError> {
        let data = self
            .client
            .get(&self.path("file-read"), &[("file", path)])?;
        if data.get("truncated").and_then(Value::as_bool) == Some(true) {
            return Err(guest_error(self, format!("{path} is too large to read")));
        }
        Ok(data
            .get("content")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_string))
    }

    fn write_file(&self, path: &str, file: &HostFile) -> Result<(), ProvisionError> {
        if file.content.len() > AGENT_WRITE_LIMIT {
            return Err(guest_error(
                self,
                format!(
                    "{path}: {} bytes, more than the agent's {AGENT_WRITE_LIMIT}",
                    file.content.len()
                ),
            ));
        }
        run_ok(self, &strings(&["mkdir", "-p", parent(path)]))?;
        // Created empty with owner and mode first, so the content is never readable by others.
        let mode = format!("{:04o}", file.mode);
        run_ok(
            self,
            &strings(&[
                "install",
                "-m",
                &mode,
                "-o",
                &file.owner,
                "-g",
                &file.group,
                "/dev/null",
                path,
            ]),
        )?;
        let params = std::collections::BTreeMap::from([
            ("file".to_string(), path.to_string()),
            ("content".to_string(), file.content.clone()),
        ]);
        self.client
            .write(Method::POST, &self.path("file-write"), &params)?;
        Ok(())
    }
}
