//! `phoenix sync …` and `phoenix apply` arguments, and how to reach a node.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};

use super::{DEFAULT_CONFIG_DIR, LabPrefixArg, LockArgs, OutputFormat, PassphraseArgs, PlanVerb};

/// `phoenix apply --target pve [flags] VERB [ID]`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The flags may follow the verb too: `phoenix apply create 101 --target pve`"
)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub sync: SyncAllArgs,
    #[command(subcommand)]
    pub verb: PlanVerb,
}

pub(crate) fn parse_subsystem(s: &str) -> Result<phoenix_plan::subsystem::Subsystem, String> {
    s.parse()
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process; boxing buys nothing
pub enum SyncCommand {
    /// Everything: host files, guests (and, later, what runs inside them)
    All(SyncAllArgs),
    /// Confirm a host network switch waiting in its `--confirm-within` window
    Confirm {
        /// The switch id `sync all --switch-network` printed
        id: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SyncTarget {
    /// A Proxmox VE node through its API and host shell
    Pve,
    /// The lab twin on this machine, in network namespaces (root)
    Lab,
}

/// How to reach a Proxmox VE node (flags, else the `PROXMOX_VE_*` environment).
#[derive(Debug, Clone, clap::Args)]
pub struct PveConnArgs {
    /// API endpoint, https://HOST:8006 (default: $PROXMOX_VE_ENDPOINT)
    #[arg(long)]
    pub endpoint: Option<String>,
    /// API token USER@REALM!ID=SECRET (default: $PROXMOX_VE_API_TOKEN; prefer the variable:
    /// flags are visible in the process list)
    #[arg(long)]
    pub api_token: Option<String>,
    /// Log in as USER@REALM with a password instead of an API token (default:
    /// $PROXMOX_VE_USERNAME)
    #[arg(long, conflicts_with = "api_token")]
    pub username: Option<String>,
    /// Read the login password from this file (default: $PROXMOX_VE_PASSWORD, then the file
    /// named by $PROXMOX_VE_PASSWORD_FILE); there is no password flag: the process list shows flags
    #[arg(long, conflicts_with = "api_token")]
    pub password_file: Option<PathBuf>,
    /// Node name (default: $PROXMOX_VE_NODE)
    #[arg(long)]
    pub node: Option<String>,
    /// Verify the API's certificate against this CA (default: $PROXMOX_VE_CA_FILE)
    #[arg(long, conflicts_with_all = ["fingerprint", "insecure_skip_tls_verify"])]
    pub ca_file: Option<PathBuf>,
    /// Pin the API certificate's SHA-256 fingerprint (default: $PROXMOX_VE_FINGERPRINT)
    #[arg(long, conflicts_with = "insecure_skip_tls_verify")]
    pub fingerprint: Option<String>,
    /// Accept any certificate (dangerous; prints a warning)
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
    /// The node's root directory for host files (default /; a scratch directory in tests)
    #[arg(long)]
    pub host_root: Option<PathBuf>,
    /// Give up on one API request after SECONDS (reads are retried, writes only when they
    /// never reached the node)
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout: u64,
    /// Give up waiting for one Proxmox task (create, start, shutdown…) after SECONDS; the
    /// journal names the task
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub task_deadline: u64,
    /// Reach the node's host files and commands over OpenSSH as USER@HOST (batch mode: keys
    /// from the agent or --ssh-identity; the host key must be known) instead of running on
    /// the node
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
}

#[derive(Debug, clap::Args)]
pub struct SyncAllArgs {
    /// What to converge
    #[arg(long, value_enum)]
    pub target: SyncTarget,
    /// Directory holding phoenix_hypervisor_config.json and the other files
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_DIR, env = "PHOENIX_CONFIG")]
    pub config: PathBuf,
    /// The lab's prefix (--target lab)
    #[command(flatten)]
    pub lab: LabPrefixArg,
    #[command(flatten)]
    pub pve: PveConnArgs,
    /// Storage holding imported cloud images (`import` content), for VMs created from one
    #[arg(long)]
    pub image_store: Option<String>,
    /// Guests written concurrently within a wave
    #[arg(long, default_value_t = 4)]
    pub parallelism: usize,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Observe and plan only
    #[arg(long)]
    pub dry_run: bool,
    /// Apply exactly this saved plan (`phoenix plan --target … --out FILE`); refused, naming
    /// what moved, when the target or the configuration changed since it was made
    #[arg(long, value_name = "FILE", conflicts_with = "switch_network")]
    pub plan: Option<PathBuf>,
    /// Do not ask before changing a node (needed when stdin or stdout is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// With --dry-run: exit 2 when there are changes (0 when there is nothing to do)
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Also provision inside the guests (packages, files, services from `features`; pct
    /// exec/push for containers, the guest agent for VMs; each step checked first). In the
    /// lab: files under each guest's root; packages and services are the lab's own, never
    /// installed on this machine
    #[arg(long)]
    pub provision: bool,
    /// (--target pve) phoenix's CA directory (`phoenix ca init`): it issues the manifest's
    /// certificates into the guests (existing ones checked against it), and with --provision
    /// its certificates and intermediate key are what step-ca's steps place in the CA guest;
    /// without it certificates are planned but not issued, and those steps are skipped, said so
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    /// The CA directory's passphrase (when its keys are encrypted; also step-ca's password)
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    /// With --provision and --ca-dir: the JWK provisioner's key (JSON JWK or PKCS#8 PEM), whose
    /// public half goes into step-ca's ca.json
    #[arg(long, value_name = "FILE", requires = "ca_dir")]
    pub provisioner_key: Option<PathBuf>,
    /// After applying, switch the staged /etc/network/interfaces live with try-and-rollback:
    /// ifreload, probe the gateway and the management address, restore the previous file if a
    /// probe fails (--target pve, phoenix running on the node: --host-root must be /)
    #[arg(long)]
    pub switch_network: bool,
    /// With --switch-network: roll back unless `phoenix sync confirm ID` arrives within SECONDS
    #[arg(long, value_name = "SECONDS", requires = "switch_network")]
    pub confirm_within: Option<u64>,
    /// With --switch-network: an extra probe, a TCP connect to ADDRESS:PORT (repeatable)
    #[arg(long, value_name = "ADDRESS:PORT", requires = "switch_network")]
    pub probe_tcp: Vec<std::net::SocketAddr>,
    /// Limit the run to these subsystems (comma-separated): host-network, dns, guests,
    /// provision, firewall, pki, ingress, swarm, host-setup (--target pve; host-setup runs
    /// `phoenix setup`'s steps first)
    #[arg(long, value_delimiter = ',', value_parser = parse_subsystem)]
    pub only: Vec<phoenix_plan::subsystem::Subsystem>,
    /// The first Swarm manager's Engine API for the Swarm phase (--target pve; default: its
    /// Swarm address, port 2376), e.g. tcp://172.16.100.21:2376
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,
    /// phoenix's Engine API client certificate (ca.pem, cert.pem, key.pem) for the Swarm phase
    /// (--target pve); without it the Swarm is neither observed nor converged, said so
    #[arg(long, env = "DOCKER_CERT_PATH")]
    pub docker_cert_path: Option<PathBuf>,
    /// With --only host-setup: allow wiping a pool's disk that holds something (see
    /// `phoenix setup --wipe-disks`)
    #[arg(long)]
    pub wipe_disks: bool,
    /// With --only host-setup: remove Proxmox storage phoenix made that the configuration
    /// dropped (see `phoenix setup --remove-dropped-storage`)
    #[arg(long)]
    pub remove_dropped_storage: bool,
}
