//! `phoenix swarm …` arguments.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};

use super::{DEFAULT_CONFIG_DIR, LabPrefixArg, LockArgs, OutputFormat};

/// `phoenix swarm …`.
#[derive(Debug, clap::Args)]
pub struct SwarmArgs {
    #[command(subcommand)]
    pub command: SwarmCommand,
}

/// Where the Swarm's engines are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SwarmTarget {
    /// The lab twin's engines (unix sockets; root only)
    Lab,
    /// The VMs' engines over TCP+TLS: the first manager at --docker-host, the other nodes at
    /// their Swarm address, port 2376, all with the client certificate in --docker-cert-path
    Pve,
}

/// Where to reach the Swarm and how to print.
#[derive(Debug, clap::Args)]
pub struct SwarmTargetArgs {
    /// Directory holding phoenix_hypervisor_config.json and the other files
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_DIR, env = "PHOENIX_CONFIG")]
    pub config: PathBuf,
    /// Where the engines are
    #[arg(long, value_enum)]
    pub target: SwarmTarget,
    #[command(flatten)]
    pub prefix: LabPrefixArg,
    /// (changes, target lab) waiting for the lab's lock
    #[command(flatten)]
    pub lock: LockArgs,
    /// The first manager's Engine API (target pve), e.g. tcp://172.16.100.21:2376
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,
    /// Directory with ca.pem, cert.pem and key.pem: phoenix's client certificate (target pve;
    /// default: the CA directory's engine-client/, where `sync all --ca-dir` keeps it)
    #[arg(long, env = "DOCKER_CERT_PATH")]
    pub docker_cert_path: Option<PathBuf>,
    /// phoenix's CA directory (target pve): its engine-client/ holds the Engine API client
    /// certificate `sync all --target pve --ca-dir` issued
    #[arg(long, value_name = "DIR", env = "PHOENIX_CA_DIR")]
    pub ca_dir: Option<PathBuf>,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum SwarmCommand {
    /// Nodes, roles, labels, overlays, secrets and stacks as observed, and the planned actions
    Status {
        #[command(flatten)]
        target: SwarmTargetArgs,
        /// Exit 2 when actions are planned (Terraform's convention)
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Initialise the Swarm on the first manager (advertise and data-path address from the model)
    Init {
        #[command(flatten)]
        target: SwarmTargetArgs,
    },
    /// Join the other nodes with their role's token and set every node's labels
    Join {
        #[command(flatten)]
        target: SwarmTargetArgs,
    },
    /// Deploy (or update) a stack of the stacks file in one environment, as `<env>_<stack>`
    Deploy {
        /// The stack's name in phoenix_stacks_config.json
        stack: String,
        /// The environment (`production`, …)
        #[arg(long)]
        env: String,
        #[command(flatten)]
        target: SwarmTargetArgs,
    },
    /// Remove a deployed stack (`<env>_<stack>`): its services and the networks it created
    Rm {
        stack: String,
        /// The environment (`production`, …)
        #[arg(long)]
        env: String,
        #[command(flatten)]
        target: SwarmTargetArgs,
    },
}
