//! `phoenix doctor` arguments.

use std::path::PathBuf;

use clap::ValueEnum;

use super::{DEFAULT_CONFIG_DIR, OutputFormat, PveConnArgs};

/// What `doctor` checks besides the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DoctorTarget {
    /// The lab twin on this machine: root, its programs and peers, policy-rc.d
    Lab,
    /// A Proxmox VE node: the API's reachability, TLS trust and credentials
    Pve,
}

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Check only this target (default: the lab, and a node when an endpoint is set)
    #[arg(long, value_enum)]
    pub target: Option<DoctorTarget>,
    /// Directory holding phoenix_hypervisor_config.json and the other files
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_DIR, env = "PHOENIX_CONFIG")]
    pub config: PathBuf,
    #[command(flatten)]
    pub pve: PveConnArgs,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
}
