//! The plan's host-side file actions through a [`HostShell`] (a node's, or the lab's
//! hypervisor root): managed host files (written
//! atomically, or staged for the files that need try-and-rollback), raw `lxc.*` lines of
//! container configs, and the observation of both. Does I/O only through the shell.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use phoenix_model::model::GuestId;
use phoenix_plan::observed::ObservedFile;
use phoenix_plan::plan::Plan;
use phoenix_render::FileTarget;

use super::{
    CommandOutput, HostFile, HostShell, ShellError, raw_lxc_lines, rewrite_raw_lxc, staged_path,
};

/// Files only ever written as `PATH.new`: switching them needs try-and-rollback (a broken
/// `/etc/network/interfaces` cuts the node off, a broken NAT ruleset cuts the mesh off the
/// internet, a broken dnsmasq file takes the mesh's DNS down), which is a separate step
/// (`sync all --switch-network`, `phoenix_pve::netswitch`).
pub const STAGED_FILES: &[&str] = &[
    "/etc/network/interfaces",
    phoenix_render::hostnet::NAT_RULESET_PATH,
    phoenix_render::dnsmasq::DNSMASQ_PATH,
];

/// What a file action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Replaced,
    Staged { path: String, written: bool },
    Skipped(String),
}

/// The container config holding a guest's raw `lxc.*` lines.
pub fn lxc_conf_path(id: GuestId) -> String {
    format!("/etc/pve/lxc/{id}.conf")
}

/// Write (or stage) the planned file `target:path` with the plan's content.
pub fn write_host_file(
    shell: &dyn HostShell,
    plan: &Plan,
    target: FileTarget,
    path: &str,
) -> Result<Written, ShellError> {
    if let FileTarget::Guest(id) = target {
        return Ok(Written::Skipped(format!(
            "file inside guest {id}: placed by the guest's provision steps (wave `provisioning inside guests`)"
        )));
    }
    let Some(planned) = plan
        .files
        .iter()
        .find(|f| f.file.target == target && f.file.path == path)
    else {
        return Ok(Written::Skipped(format!("{path}: no content in the plan")));
    };
    let want = HostFile {
        content: planned.file.content.clone(),
        owner: planned.file.owner.clone(),
        group: planned.file.group.clone(),
        mode: planned.file.mode,
    };
    if STAGED_FILES.contains(&path) {
        let staged = staged_path(path);
        if shell.read_file(&staged)?.as_ref() == Some(&want) {
            return Ok(Written::Staged {
                path: staged,
                written: false,
            });
        }
        let staged = shell.stage_file(path, &want)?;
        return Ok(Written::Staged {
            path: staged,
            written: true,
        });
    }
    shell.write_file(path, &want)?;
    Ok(Written::Replaced)
}

/// Make the raw `lxc.*` lines of container `id` exactly `lines`, keeping every other line.
/// Returns whether the config was written. Empty `lines` leave the config alone.
pub fn ensure_raw_lxc(
    shell: &dyn HostShell,
    id: GuestId,
    lines: &[String],
) -> Result<bool, ShellError> {
    if lines.is_empty() {
        return Ok(false);
    }
    let path = lxc_conf_path(id);
    let Some(current) = shell.read_file(&path)? else {
        return Err(ShellError::BadPath {
            path,
            reason: "the container config does not exist (is the host root a PVE node?)".into(),
        });
    };
    if raw_lxc_lines(&current.content) == lines {
        return Ok(false);
    }
    let content = rewrite_raw_lxc(&current.content, lines);
    shell.write_file(&path, &HostFile { content, ..current })?;
    Ok(true)
}

/// Read the host files among `wanted` (guest targets are left out: they are observed
/// inside the guests, later). Missing files are absent from the result.
pub fn observe_host_files(
    shell: &dyn HostShell,
    wanted: &[(FileTarget, String)],
) -> Result<Vec<ObservedFile>, ShellError> {
    let mut out = Vec::new();
    for (target, path) in wanted {
        if *target != FileTarget::Host {
            continue;
        }
        if let Some(f) = shell.read_file(path)? {
            out.push(ObservedFile {
                target: *target,
                path: path.clone(),
                sha256: None,
                content: Some(f.content),
                owner: Some(f.owner),
                group: Some(f.group),
                mode: Some(f.mode),
            });
        }
    }
    Ok(out)
}

/// A shell that counts the writes made through it (the `--output json` write counter).
#[derive(Debug)]
pub struct CountingShell<'a> {
    inner: &'a dyn HostShell,
    writes: AtomicUsize,
}

impl<'a> CountingShell<'a> {
    pub fn new(inner: &'a dyn HostShell) -> Self {
        CountingShell {
            inner,
            writes: AtomicUsize::new(0),
        }
    }

    /// Files written or removed so far (commands are not counted).
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::Relaxed)
    }
}

impl HostShell for CountingShell<'_> {
    fn read_file(&self, path: &str) -> Result<Option<HostFile>, ShellError> {
        self.inner.read_file(path)
    }

    fn write_file(&self, path: &str, file: &HostFile) -> Result<(), ShellError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.write_file(path, file)
    }

    fn run(&self, argv: &[String], deadline: Duration) -> Result<CommandOutput, ShellError> {
        self.inner.run(argv, deadline)
    }

    fn remove_file(&self, path: &str) -> Result<(), ShellError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.remove_file(path)
    }

    fn create_new(&self, path: &str, content: &str) -> Result<bool, ShellError> {
        self.inner.create_new(path, content)
    }

    fn run_with_input(
        &self,
        argv: &[String],
        input: &[u8],
        deadline: Duration,
    ) -> Result<CommandOutput, ShellError> {
        self.inner.run_with_input(argv, input, deadline)
    }

    fn command_path(&self, path: &str) -> Result<String, ShellError> {
        self.inner.command_path(path)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::shell::LocalShell;

    #[test]
    fn raw_lxc_is_written_once_then_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let shell = LocalShell::new(root.path());
        let counting = CountingShell::new(&shell);
        let id = GuestId(101);
        let lines = vec!["lxc.net.1.type: macvlan".to_string()];
        assert!(
            ensure_raw_lxc(&counting, id, &lines).is_err(),
            "no config yet"
        );
        let conf = root.path().join("etc/pve/lxc");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(conf.join("101.conf"), "hostname: gw\nmemory: 512\n").unwrap();
        assert!(ensure_raw_lxc(&counting, id, &lines).unwrap());
        assert!(!ensure_raw_lxc(&counting, id, &lines).unwrap());
        assert!(!ensure_raw_lxc(&counting, id, &[]).unwrap());
        assert_eq!(counting.writes(), 1);
        let text = std::fs::read_to_string(conf.join("101.conf")).unwrap();
        assert_eq!(text, "hostname: gw\nmemory: 512\nlxc.net.1.type: macvlan\n");
    }
}
