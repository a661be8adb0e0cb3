//! The host-setup keys of `phoenix_hypervisor_config.json`: Samba, NFS exports and the admin
//! user, as the bash system's files spell them. No I/O.

use schemars::JsonSchema;
use serde::Deserialize;

use super::common::Secret;

/// `samba`: one Samba user and the shares it may use.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawSamba {
    /// The Unix user Samba authenticates (it must exist on the host).
    pub user: Option<String>,
    /// New: the user's Samba password (a secret: `{"env": "NAME"}` or `{"file": "PATH"}`).
    /// Without it the user's Samba password is left as it is.
    pub password: Option<Secret>,
    /// New: the NetBIOS workgroup. Default `WORKGROUP`.
    pub workgroup: Option<String>,
    /// The shares, one `[name]` section each.
    #[serde(default)]
    pub shares: Vec<RawSambaShare>,
}

/// `samba.shares[]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawSambaShare {
    /// Share name (`[name]`).
    pub name: String,
    /// Directory shared. The bash form `pool/dataset` means the dataset's mount point
    /// `/pool/dataset`.
    pub path: String,
    /// Extra share parameters as `key=value` words separated by blanks
    /// (`"browseable=yes writable=yes"`).
    pub options: Option<String>,
    /// Users (or `@group`s) allowed to connect (`valid users`).
    #[serde(default)]
    pub valid_users: Vec<String>,
}

/// `nfs`: the kernel NFS server's exports.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawNfs {
    /// One line of `/etc/exports.d/phoenix.exports` each.
    #[serde(default)]
    pub exports: Vec<RawNfsExport>,
}

/// `nfs.exports[]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawNfsExport {
    /// Directory exported (absolute).
    pub path: String,
    /// Hosts allowed: addresses, subnets (`10.0.0.0/24`), host names or `*`.
    #[serde(default)]
    pub clients: Vec<String>,
    /// Export options given to every client (`rw`, `sync`, `no_subtree_check`…).
    #[serde(default)]
    pub options: Vec<String>,
}

/// `users`: the host's admin user.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawUsers {
    /// Unix user name.
    pub username: Option<String>,
    /// Hashed password (`crypt(3)` form; a secret). `NOT_SET` or empty: no password.
    pub password_hash: Option<Secret>,
    /// Member of the `sudo` group.
    pub sudo_access: Option<bool>,
    /// An OpenSSH public key for `~/.ssh/authorized_keys`; empty: none.
    pub ssh_public_key: Option<String>,
}

/// `zfs`: the ARC limit, pools and datasets (applied by `phoenix setup`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawZfs {
    /// ARC size limit in GiB.
    pub arc_max_gb: Option<u32>,
    /// Pools, each from its disks.
    #[serde(default)]
    pub pools: Vec<RawZfsPool>,
    /// Datasets, each in a pool, with its properties and Proxmox storage.
    #[serde(default)]
    pub datasets: Vec<RawZfsDataset>,
}

/// `zfs.pools[]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawZfsPool {
    /// Pool name (`quickOS`).
    pub name: String,
    /// `single`, `mirror`, `raidz1`, `raidz2` or `raidz3`.
    pub raid_level: String,
    /// Disks by their `/dev/disk/by-id/…` path.
    #[serde(default)]
    pub disks: Vec<String>,
}

/// `zfs.datasets[]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawZfsDataset {
    /// Dataset name inside its pool (`vm-disks`).
    pub name: String,
    /// The pool it lives in (a name from `pools`).
    pub pool: String,
    /// ZFS properties as `key=value,key=value` (may be empty).
    pub properties: Option<String>,
    /// Proxmox storage type: `zfspool` or `dir`.
    pub proxmox_storage_type: Option<String>,
    /// Proxmox content types, comma-separated (`images,rootdir`).
    pub proxmox_content_type: Option<String>,
    /// `direct` or `shared` (bash bookkeeping).
    pub storage_class: Option<String>,
}
