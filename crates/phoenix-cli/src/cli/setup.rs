//! `phoenix setup` arguments.

use std::path::PathBuf;

use super::{DEFAULT_CONFIG_DIR, OutputFormat, SyncTarget};

/// `phoenix setup --target pve`: the hypervisor's own setup.
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// Where: pve (the node's host shell); the lab has no host setup yet
    #[arg(long, value_enum)]
    pub target: SyncTarget,
    /// Directory holding phoenix_hypervisor_config.json and the other files
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_DIR, env = "PHOENIX_CONFIG")]
    pub config: PathBuf,
    /// The node's root directory for host files (default /). Any other directory is a
    /// scratch root: files only, this machine's services and Samba passwords are left alone
    #[arg(long)]
    pub host_root: Option<PathBuf>,
    /// Reach the node's files and commands over OpenSSH as USER@HOST (batch mode)
    #[arg(long, value_name = "USER@HOST")]
    pub ssh: Option<String>,
    /// With --ssh: the node's ssh port
    #[arg(long, requires = "ssh")]
    pub ssh_port: Option<u16>,
    /// With --ssh: the private key to log in with
    #[arg(long, value_name = "FILE", requires = "ssh")]
    pub ssh_identity: Option<PathBuf>,
    /// With --ssh: the known_hosts file holding the node's host key
    #[arg(long, value_name = "FILE", requires = "ssh")]
    pub ssh_known_hosts: Option<PathBuf>,
    /// Observe and plan only
    #[arg(long)]
    pub dry_run: bool,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
}
