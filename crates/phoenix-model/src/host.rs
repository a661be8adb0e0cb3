//! The hypervisor's own setup as desired state (`phoenix setup`): time zone, Samba, NFS
//! exports, the admin user and ZFS, all applied by phoenix-host. No I/O.

use serde::Serialize;

use crate::raw::Secret;
use crate::source::Location;

/// What `phoenix setup` makes of the host. Empty when the configuration names none of it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostSetup {
    /// `timezone` (`America/New_York`).
    pub timezone: Option<String>,
    pub samba: Option<Samba>,
    /// `nfs.exports`, in the file's order.
    pub nfs_exports: Vec<NfsExport>,
    /// `users`.
    pub admin_user: Option<AdminUser>,
    /// `zfs`.
    pub zfs: Option<Zfs>,
}

impl HostSetup {
    pub fn is_empty(&self) -> bool {
        self.timezone.is_none()
            && self.samba.is_none()
            && self.nfs_exports.is_empty()
            && self.admin_user.is_none()
            && self.zfs.is_none()
    }
}

/// The Samba server: one user, the shares.
#[derive(Debug, Clone, Serialize)]
pub struct Samba {
    /// The Unix user Samba authenticates.
    pub user: String,
    /// The user's Samba password; `None`: left as it is on the host.
    pub password: Option<Secret>,
    pub workgroup: String,
    pub shares: Vec<SambaShare>,
    #[serde(skip)]
    pub loc: Location,
}

/// One `[name]` section of `smb.conf`.
#[derive(Debug, Clone, Serialize)]
pub struct SambaShare {
    pub name: String,
    /// Absolute directory.
    pub path: String,
    /// Extra parameters in the file's order (`browseable` → `yes`).
    pub options: Vec<(String, String)>,
    /// Users or `@group`s (`valid users`).
    pub valid_users: Vec<String>,
    #[serde(skip)]
    pub loc: Location,
}

/// One line of `/etc/exports.d/phoenix.exports`.
#[derive(Debug, Clone, Serialize)]
pub struct NfsExport {
    pub path: String,
    /// Addresses, subnets, host names or `*`, each given `options`.
    pub clients: Vec<String>,
    pub options: Vec<String>,
    #[serde(skip)]
    pub loc: Location,
}

/// The host's admin user (`users`).
#[derive(Debug, Clone, Serialize)]
pub struct AdminUser {
    pub username: String,
    /// `crypt(3)` hash; `None` when `NOT_SET` or empty.
    pub password_hash: Option<Secret>,
    pub sudo: bool,
    pub ssh_public_key: Option<String>,
}

/// ZFS as the configuration wants it (`zfs`).
#[derive(Debug, Clone, Serialize)]
pub struct Zfs {
    pub arc_max_gb: Option<u32>,
    pub pools: Vec<ZfsPool>,
    pub datasets: Vec<ZfsDataset>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RaidLevel {
    Single,
    Mirror,
    Raidz1,
    Raidz2,
    Raidz3,
}

impl RaidLevel {
    /// The fewest disks the layout takes.
    pub fn min_disks(self) -> usize {
        match self {
            RaidLevel::Single => 1,
            RaidLevel::Mirror | RaidLevel::Raidz1 => 2,
            RaidLevel::Raidz2 => 3,
            RaidLevel::Raidz3 => 4,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ZfsPool {
    pub name: String,
    pub raid_level: RaidLevel,
    /// `/dev/disk/by-id/…` paths.
    pub disks: Vec<String>,
    #[serde(skip)]
    pub loc: Location,
}

#[derive(Debug, Clone, Serialize)]
pub struct ZfsDataset {
    /// `pool/name`.
    pub name: String,
    pub pool: String,
    /// ZFS properties in the file's order.
    pub properties: Vec<(String, String)>,
    /// `zfspool` or `dir`, when given.
    pub storage_type: Option<String>,
    pub content: Vec<String>,
    #[serde(skip)]
    pub loc: Location,
}
