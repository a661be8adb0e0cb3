//! `phoenix verify` arguments.

use std::path::PathBuf;

use clap::ValueEnum;

use super::{DEFAULT_CONFIG_DIR, LabPrefixArg, OutputFormat, PveConnArgs};

/// What `verify` checks.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VerifyTarget {
    /// The lab twin on this machine (root only)
    Lab,
    /// A Proxmox VE node, read-only: API GETs, reading commands in its containers
    Pve,
}

/// The probe families of `verify --target pve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyFamily {
    /// Every configured guest exists and runs (API)
    Guests,
    /// Names resolve inside each running container (pct exec getent)
    Dns,
    /// TLS chain and SANs of each TLS service, from this machine
    Tls,
    /// Each public route hop by hop
    Route,
    /// Swarm nodes, cluster and stacks (Engine API)
    Swarm,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The target to check
    #[arg(long, value_enum)]
    pub target: VerifyTarget,
    /// Directory holding phoenix_hypervisor_config.json and the other files
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_DIR, env = "PHOENIX_CONFIG")]
    pub config: PathBuf,
    #[command(flatten)]
    pub prefix: LabPrefixArg,
    #[command(flatten)]
    pub pve: PveConnArgs,
    /// (--target pve) phoenix's CA directory: TLS chains are verified against its root;
    /// without it the chain checks are skipped, said so
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    /// (--target pve) the first manager's Engine API (default: its Swarm address, port 2376)
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,
    /// (--target pve) phoenix's Engine API client certificate (ca.pem, cert.pem, key.pem);
    /// default: <--ca-dir>/engine-client, where `sync all` keeps it; without either the Swarm
    /// is not checked, said so
    #[arg(long, env = "DOCKER_CERT_PATH")]
    pub docker_cert_path: Option<PathBuf>,
    /// (--target pve) only these families (default: all)
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<VerifyFamily>,
    /// Print only the failing and skipped checks, then the recap of causes (text only;
    /// `--output json` keeps every check)
    #[arg(long)]
    pub failed_only: bool,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
}
