//! `phoenix lab …` arguments.

use std::path::PathBuf;

use clap::Subcommand;

use super::{DEFAULT_CONFIG_DIR, LockArgs, OutputFormat};

#[derive(Debug, clap::Args)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

/// The run prefix of a lab: every namespace is `<prefix>-…`.
#[derive(Debug, Clone, clap::Args)]
pub struct LabPrefixArg {
    /// Name prefix of the lab (1-6 characters of [a-z0-9])
    #[arg(long, short = 'p', default_value = phoenix_lab::DEFAULT_PREFIX, env = "PHOENIX_LAB_PREFIX")]
    pub prefix: String,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Realise the configuration's network in namespaces (hypervisor, wan, one per guest)
    Up {
        /// Directory holding phoenix_hypervisor_config.json and the other files
        #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_DIR, env = "PHOENIX_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        prefix: LabPrefixArg,
        /// Tear down an existing lab with this prefix first instead of refusing
        #[arg(long)]
        recreate: bool,
        /// Only the network (namespaces, links, addresses, routes, NAT, guest firewalls):
        /// no service is started, and `sync all` treats the lab as unfinished
        #[arg(long)]
        network_only: bool,
        #[command(flatten)]
        lock: LockArgs,
        /// Output format
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Remove every namespace, /etc/netns dir, process and state file of the lab (also leftovers)
    Down {
        #[command(flatten)]
        prefix: LabPrefixArg,
        #[command(flatten)]
        lock: LockArgs,
        /// Output format
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Show the lab's namespaces, links and addresses
    Status {
        #[command(flatten)]
        prefix: LabPrefixArg,
        /// Output format
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Run a command inside a guest's namespace: `phoenix lab exec 102 -- ip addr`
    Exec {
        #[command(flatten)]
        prefix: LabPrefixArg,
        /// Guest id or name, or `hv` / `wan`
        guest: String,
        /// The command and its arguments (argv, no shell)
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
}
