//! `phoenix setup` arguments.

use std::path::PathBuf;

use super::{DEFAULT_CONFIG_DIR, LockArgs, OutputFormat, PveConnArgs, SyncTarget};

/// `phoenix setup --target pve`: the hypervisor's own setup.
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// Where: pve (the node's host shell); the lab has no host setup yet
    #[arg(long, value_enum)]
    pub target: SyncTarget,
    /// Directory holding phoenix_hypervisor_config.json and the other files
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_DIR, env = "PHOENIX_CONFIG")]
    pub config: PathBuf,
    /// The node: its host files and commands (--host-root, --ssh) and, for storage and the
    /// admin's Proxmox user, its API (--endpoint, --node, token in $PROXMOX_VE_API_TOKEN);
    /// without an endpoint the API steps are skipped, said so. A --host-root other than / is a
    /// scratch root: files only, this machine's services, accounts and pools are left alone
    #[command(flatten)]
    pub pve: PveConnArgs,
    /// Allow wiping a pool's disk that holds partitions, a file system or another pool's label;
    /// the plan names each disk it wipes by its /dev/disk/by-id path. A mounted disk or one of
    /// an imported pool is never wiped
    #[arg(long)]
    pub wipe_disks: bool,
    /// Remove Proxmox storage phoenix made that the configuration no longer has (otherwise
    /// it is reported and left in place)
    #[arg(long)]
    pub remove_dropped_storage: bool,
    /// Observe and plan only
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: exit 2 when the plan has changes (0 when there is nothing to do)
    #[arg(long, requires = "dry_run")]
    pub detailed_exitcode: bool,
    /// Do not ask before changing the node (needed when stdin or stdout is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
}
