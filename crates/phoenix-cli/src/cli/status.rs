//! `phoenix status` arguments.

use std::path::PathBuf;

use clap::ValueEnum;

use super::{DEFAULT_CONFIG_DIR, LabPrefixArg, OutputFormat, PveConnArgs};

/// What `status` looks at.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusTarget {
    /// A Proxmox VE node through its API and host shell
    Pve,
    /// The lab twin on this machine (root)
    Lab,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// What to look at
    #[arg(long, value_enum)]
    pub target: StatusTarget,
    /// Directory holding phoenix_hypervisor_config.json and the other files
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_DIR, env = "PHOENIX_CONFIG")]
    pub config: PathBuf,
    #[command(flatten)]
    pub pve: PveConnArgs,
    /// The lab's prefix (--target lab)
    #[command(flatten)]
    pub lab: LabPrefixArg,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Exit 2 when anything differs from the configuration (0 when all is in sync)
    #[arg(long)]
    pub detailed_exitcode: bool,
}
