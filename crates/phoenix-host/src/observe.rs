//! What the host has now, read through its shell before anything is planned: the managed
//! files, which commands exist, whether smbd runs and the Samba user's stored NT hash. Does
//! I/O only through the [`HostShell`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use phoenix_exec::shell::{HostFile, HostShell, ShellError};
use phoenix_model::host::HostSetup;
use phoenix_render::hostsetup as files;

use crate::nthash::NtHash;

/// Deadline of one observing command.
const PROBE_DEADLINE: Duration = Duration::from_secs(20);

/// The commands `phoenix setup` may run; each is looked for before it is planned.
pub const COMMANDS: &[&str] = &[
    "testparm",
    "smbcontrol",
    "smbpasswd",
    "pdbedit",
    "exportfs",
    "systemctl",
];

/// Whether the shell's root is the running system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `/` of the node (locally or over ssh): services are reloaded, passwords set.
    Live,
    /// A scratch directory (`--host-root DIR`): files only; the services and the password
    /// database of this machine are never touched.
    Scratch(String),
}

/// The host as observed.
#[derive(Debug, Clone)]
pub struct HostObserved {
    pub scope: Scope,
    /// Every path read, `None` when absent.
    pub files: BTreeMap<String, Option<HostFile>>,
    /// The [`COMMANDS`] found.
    pub commands: BTreeSet<String>,
    /// `smbcontrol smbd ping` answered (live only).
    pub smbd_running: bool,
    /// The Samba user's NT hash in the password database (live, with a password to set).
    pub samba_hash: Option<NtHash>,
}

impl HostObserved {
    /// The file at `path`, if it was read and exists.
    pub fn file(&self, path: &str) -> Option<&HostFile> {
        self.files.get(path).and_then(Option::as_ref)
    }

    pub fn has(&self, command: &str) -> bool {
        self.commands.contains(command)
    }
}

/// The paths `phoenix setup` reads for `setup`.
pub fn paths(setup: &HostSetup) -> Vec<&'static str> {
    let mut out = vec![files::OS_RELEASE_PATH, files::NO_SUBSCRIPTION_PATH];
    out.extend(files::ENTERPRISE_PATHS);
    if setup.timezone.is_some() {
        out.push(files::TIMEZONE_PATH);
    }
    if setup.samba.is_some() {
        out.push(files::SMB_CONF_PATH);
    }
    if !setup.nfs_exports.is_empty() {
        out.push(files::EXPORTS_PATH);
    }
    out
}

/// Read what `setup` needs. A missing file is `None`, not an error.
pub fn observe(
    shell: &dyn HostShell,
    setup: &HostSetup,
    scope: Scope,
) -> Result<HostObserved, ShellError> {
    let mut observed = HostObserved {
        scope,
        files: BTreeMap::new(),
        commands: BTreeSet::new(),
        smbd_running: false,
        samba_hash: None,
    };
    for path in paths(setup) {
        observed
            .files
            .insert(path.to_string(), shell.read_file(path)?);
    }
    for command in COMMANDS {
        // `command -v` with the name as a positional argument: nothing is interpolated.
        let argv = ["sh", "-c", "command -v \"$1\"", "sh", command].map(String::from);
        if shell.run(&argv, PROBE_DEADLINE)?.status == 0 {
            observed.commands.insert((*command).to_string());
        }
    }
    if observed.scope != Scope::Live {
        return Ok(observed);
    }
    if let Some(samba) = &setup.samba {
        if observed.has("smbcontrol") {
            let ping = ["smbcontrol", "smbd", "ping"].map(String::from);
            observed.smbd_running = shell.run(&ping, PROBE_DEADLINE)?.status == 0;
        }
        if samba.password.is_some() && observed.has("pdbedit") {
            let argv = ["pdbedit", "-L", "-w", "-u", &samba.user].map(String::from);
            let out = shell.run(&argv, PROBE_DEADLINE)?;
            if out.status == 0 {
                observed.samba_hash = NtHash::from_pdbedit(&out.stdout, &samba.user);
            }
        }
    }
    Ok(observed)
}
