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
    "zpool",
    "zfs",
    "lsblk",
    "blkid",
    "wipefs",
    "update-initramfs",
    "useradd",
    "chpasswd",
    "visudo",
];

/// Observing failed: the host's shell or the Proxmox API.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error(transparent)]
    Shell(#[from] ShellError),
    #[error("the Proxmox API: {0}")]
    Api(String),
}

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
    /// ZFS (live, with `zpool` and `zfs` present and a `zfs` section).
    pub zfs: Option<crate::zfs::ZfsObserved>,
    /// Why ZFS could not be observed although its commands exist.
    pub zfs_unusable: Option<String>,
    /// Proxmox storage by id (with an API connection).
    pub storage: Option<BTreeMap<String, crate::storage::StorageObserved>>,
    /// The configured accounts found in `/etc/passwd`.
    pub users: BTreeMap<String, crate::users::UserObserved>,
    /// Proxmox users and ACL (with an API connection and an admin user).
    pub pve_access: Option<crate::users::PveAccess>,
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
    if let Some(z) = &setup.zfs
        && z.arc_max_gb.is_some()
    {
        out.push(crate::zfs::plan::MODPROBE_PATH);
        out.push(crate::zfs::plan::ARC_PARAMETER);
    }
    if setup.zfs.as_ref().is_some_and(|z| !z.datasets.is_empty()) {
        out.push(crate::storage::MADE_STORAGE_PATH);
    }
    out
}

/// Read what `setup` needs from the host only (no Proxmox API).
pub fn observe(
    shell: &dyn HostShell,
    setup: &HostSetup,
    scope: Scope,
) -> Result<HostObserved, ObserveError> {
    observe_with(shell, None, setup, scope)
}

/// Read what `setup` needs, from the host and (when given) the Proxmox API. A missing file
/// is `None`, not an error.
pub fn observe_with(
    shell: &dyn HostShell,
    api: Option<&dyn crate::storage::PveApi>,
    setup: &HostSetup,
    scope: Scope,
) -> Result<HostObserved, ObserveError> {
    let mut observed = HostObserved {
        scope,
        files: BTreeMap::new(),
        commands: BTreeSet::new(),
        smbd_running: false,
        samba_hash: None,
        zfs: None,
        zfs_unusable: None,
        storage: None,
        users: BTreeMap::new(),
        pve_access: None,
    };
    for path in paths(setup) {
        observed
            .files
            .insert(path.to_string(), shell.read_file(path)?);
    }
    observed.users = crate::users::observe(shell, setup)?;
    for path in crate::users::paths(setup, &observed) {
        let file = shell.read_file(&path)?;
        observed.files.insert(path, file);
    }
    // One `sh` for all: `command -v` with each name as a positional argument, nothing interpolated.
    let mut argv = [
        "sh",
        "-c",
        "for c; do command -v \"$c\" >/dev/null && echo \"$c\"; done; true",
        "sh",
    ]
    .map(String::from)
    .to_vec();
    argv.extend(COMMANDS.iter().map(|c| (*c).to_string()));
    let found = shell.run(&argv, PROBE_DEADLINE)?;
    observed.commands = found
        .stdout
        .lines()
        .filter(|l| COMMANDS.contains(l))
        .map(str::to_string)
        .collect();
    if let Some(api) = api {
        if setup.zfs.as_ref().is_some_and(|z| !z.datasets.is_empty())
            || observed.file(crate::storage::MADE_STORAGE_PATH).is_some()
        {
            observed.storage = Some(crate::storage::observe(api).map_err(ObserveError::Api)?);
        }
        if setup.admin_user.is_some() {
            observed.pve_access = Some(crate::users::observe_pve(api).map_err(ObserveError::Api)?);
        }
    }
    if observed.scope != Scope::Live {
        return Ok(observed);
    }
    if let Some(z) = &setup.zfs
        && (!z.pools.is_empty() || !z.datasets.is_empty())
        && observed.has("zpool")
        && observed.has("zfs")
    {
        match crate::zfs::observe::observe(shell, z)? {
            Ok(found) => observed.zfs = Some(found),
            Err(why) => observed.zfs_unusable = Some(why),
        }
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
