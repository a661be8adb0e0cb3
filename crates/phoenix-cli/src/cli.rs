//! Argument definitions (clap). No behaviour here.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Provision and verify a Proxmox VE homelab from declarative JSON.
#[derive(Debug, Parser)]
#[command(name = "phoenix", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a configuration directory and report every problem, located
    Validate(ValidateArgs),
    /// Print the JSON Schema of the configuration format
    Schema(SchemaArgs),
    /// List every diagnostic code with its severity and title (a Markdown table)
    Codes,
    /// Explain a diagnostic code: what it means, an example, the fix
    Explain(ExplainArgs),
    /// Show what phoenix would do: ordered waves of actions with reasons, and file diffs
    Plan(PlanArgs),
    /// Write every file phoenix manages (and the Proxmox API calls) into a directory for review
    Render(RenderArgs),
    /// The internal CA: init, status, rotate, issue the certificate manifest
    Ca(CaArgs),
    /// The lab twin: the network in Linux network namespaces (root only)
    Lab(LabArgs),
    /// Converge a target to the configuration: observe, plan, apply, journal
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
    /// Check a running target against the configuration: DHCP, DNS, NAT, the ingress route
    Verify(VerifyArgs),
    /// Desired vs actual, read-only: each guest (exists, running, drift by key), each managed file
    Status(StatusArgs),
    /// Run one of the bash system's verbs on a Proxmox node: observe, plan it, apply, journal
    Apply(ApplyArgs),
    /// The Docker Swarm through the Engine API: status, init, join, deploy and remove stacks
    Swarm(SwarmArgs),
}

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
    /// The first manager's Engine API (target pve), e.g. tcp://172.16.100.21:2376
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,
    /// Directory with ca.pem, cert.pem and key.pem: phoenix's client certificate (target pve)
    #[arg(long, env = "DOCKER_CERT_PATH")]
    pub docker_cert_path: Option<PathBuf>,
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

/// `phoenix apply --target pve [flags] VERB [ID]`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub sync: SyncAllArgs,
    #[command(subcommand)]
    pub verb: PlanVerb,
}

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
    /// without it the Swarm is not checked, said so
    #[arg(long, env = "DOCKER_CERT_PATH")]
    pub docker_cert_path: Option<PathBuf>,
    /// (--target pve) only these families (default: all)
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<VerifyFamily>,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
}

fn parse_subsystem(s: &str) -> Result<phoenix_plan::subsystem::Subsystem, String> {
    s.parse()
}

/// A guest id on the command line.
pub fn parse_guest(s: &str) -> Result<phoenix_model::model::GuestId, String> {
    phoenix_model::raw::GuestId::parse(s)
}

#[derive(Debug, Subcommand)]
pub enum PlanVerb {
    /// Converge everything (the default)
    Sync,
    /// Create the guest and the prerequisites it is missing
    Create {
        #[arg(value_parser = parse_guest)]
        id: phoenix_model::model::GuestId,
    },
    /// Re-apply the guest's whole chain
    Converge {
        #[arg(value_parser = parse_guest)]
        id: phoenix_model::model::GuestId,
    },
    /// Stop and delete the guest; refused while others depend on it
    Delete {
        #[arg(value_parser = parse_guest)]
        id: phoenix_model::model::GuestId,
        /// Also delete the guests that depend on it
        #[arg(long)]
        force: bool,
    },
    /// Start the guest (and what it needs)
    Start {
        #[arg(value_parser = parse_guest)]
        id: phoenix_model::model::GuestId,
    },
    /// Stop the guest
    Stop {
        #[arg(value_parser = parse_guest)]
        id: phoenix_model::model::GuestId,
    },
    /// Stop, then start the guest
    Restart {
        #[arg(value_parser = parse_guest)]
        id: phoenix_model::model::GuestId,
    },
    /// Create everything, then start every guest in boot order
    #[command(name = "LetsGo", alias = "letsgo")]
    LetsGo,
    /// Stop every running guest in reverse boot order
    Shutdown,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(subcommand)]
    pub verb: Option<PlanVerb>,
    /// Directory holding phoenix_hypervisor_config.json and the other files
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_DIR, env = "PHOENIX_CONFIG", global = true)]
    pub config: PathBuf,
    /// What exists on the target, as JSON (default: an empty host)
    #[arg(long, global = true)]
    pub observed: Option<PathBuf>,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t, global = true)]
    pub output: OutputFormat,
    /// Exit 0 when there is nothing to do, 2 when there are changes (1 on errors)
    #[arg(long, global = true)]
    pub detailed_exitcode: bool,
    /// Also plan the provisioning inside guests (packages, files, services from `features`)
    #[arg(long, global = true)]
    pub provision: bool,
    /// Proxmox node name (for host.fw)
    #[arg(long, default_value = "pve", env = "PROXMOX_VE_NODE", global = true)]
    pub node: String,
    /// Built-in CA directory: plan certificate renewals and trust files against it (reads its
    /// public certificates only; no passphrase needed)
    #[arg(long, global = true)]
    pub ca_dir: Option<PathBuf>,
    /// Renew once this fraction of a certificate's lifetime has passed (with --ca-dir)
    #[arg(long, default_value_t = 2.0 / 3.0, global = true)]
    pub renew_after: f64,
}

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// Directory holding phoenix_hypervisor_config.json and the other files
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_DIR, env = "PHOENIX_CONFIG")]
    pub config: PathBuf,
    /// Output directory (host/…, guest-ID/…, pve/ID.json)
    #[arg(long)]
    pub out: PathBuf,
    /// Proxmox node name (for host.fw)
    #[arg(long, default_value = "pve", env = "PROXMOX_VE_NODE")]
    pub node: String,
}

#[derive(Debug, clap::Args)]
pub struct CaArgs {
    #[command(subcommand)]
    pub command: CaCommand,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create the root and intermediate CA in a new directory
    Init(CaDirArgs),
    /// Show the CA: subjects, expiry, root fingerprint (as `step ca bootstrap --fingerprint` takes it)
    Status(CaDirArgs),
    /// Create a new root and intermediate; the old root stays trusted until nothing chains to it
    Rotate(CaDirArgs),
    /// Issue the certificate manifest as it would sit on the guests: OUT/<guest id>/<path>
    Issue(CaIssueArgs),
}

/// Where the CA passphrase comes from (default: `step_ca.password` of --config, if any).
#[derive(Debug, clap::Args)]
pub struct PassphraseArgs {
    /// Read the CA passphrase from this environment variable
    #[arg(long, value_name = "NAME")]
    pub passphrase_env: Option<String>,
    /// Read the CA passphrase from this file
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_env")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct CaDirArgs {
    /// The CA directory on the hypervisor (never mounted into a guest)
    #[arg(long)]
    pub ca_dir: PathBuf,
    /// Configuration to take CA names and the passphrase secret from
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, clap::Args)]
pub struct CaIssueArgs {
    /// Directory holding the configuration (with certificate-manifest.json)
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_DIR, env = "PHOENIX_CONFIG")]
    pub config: PathBuf,
    /// Built-in CA directory (the default issuer)
    #[arg(long, conflicts_with = "step_ca")]
    pub ca_dir: Option<PathBuf>,
    /// Issue through an online step-ca at this URL instead (https://HOST:PORT)
    #[arg(long)]
    pub step_ca: Option<String>,
    /// Root certificate of that step-ca (PEM)
    #[arg(long, requires = "step_ca")]
    pub step_ca_root: Option<PathBuf>,
    /// JWK provisioner name
    #[arg(long, requires = "step_ca")]
    pub provisioner: Option<String>,
    /// JWK provisioner private key (JSON JWK or PKCS#8 PEM, unencrypted)
    #[arg(long, requires = "step_ca")]
    pub provisioner_key: Option<PathBuf>,
    /// Root directory to materialise into: OUT/<guest id>/<path in the guest>
    #[arg(long)]
    pub out: PathBuf,
    /// Renew once this fraction of a certificate's lifetime has passed
    #[arg(long, default_value_t = 2.0 / 3.0)]
    pub renew_after: f64,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

/// Where the configuration lives (the bash system's default location).
pub const DEFAULT_CONFIG_DIR: &str = "/usr/local/phoenix_hypervisor/etc";

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Directory holding phoenix_hypervisor_config.json and the other files
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_DIR, env = "PHOENIX_CONFIG")]
    pub config: PathBuf,
    /// Output format: text (source snippets) or json (a list of findings)
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Fail (exit 1) on warnings too (those not allowed)
    #[arg(long)]
    pub deny_warnings: bool,
    /// Hide the warnings of CODE and do not count them (repeatable; also `allow` in
    /// phoenix-lint.json in the configuration directory)
    #[arg(long, value_name = "CODE", value_delimiter = ',')]
    pub allow: Vec<String>,
    /// Fail (exit 1) on the warnings of CODE (repeatable; also `deny` in phoenix-lint.json)
    #[arg(long, value_name = "CODE", value_delimiter = ',')]
    pub deny: Vec<String>,
    /// Print findings only, not the model summary
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// With --output json: an object {"findings": [...], "summary": {errors, warnings,
    /// allowed, by_code}} instead of the bare list (text output always ends with the counts)
    #[arg(long)]
    pub with_counts: bool,
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// A diagnostic code such as PHX-W002 (or W002)
    pub code: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaFile {
    Hypervisor,
    Lxc,
    Vm,
    Stacks,
    Manifest,
    /// `stacks/<name>/phoenix.json` (older per-stack layout)
    StackDefinition,
}

impl From<SchemaFile> for phoenix_model::schema::FileKind {
    fn from(f: SchemaFile) -> Self {
        use phoenix_model::schema::FileKind;
        match f {
            SchemaFile::Hypervisor => FileKind::Hypervisor,
            SchemaFile::Lxc => FileKind::Lxc,
            SchemaFile::Vm => FileKind::Vm,
            SchemaFile::Stacks => FileKind::Stacks,
            SchemaFile::Manifest => FileKind::Manifest,
            SchemaFile::StackDefinition => FileKind::StackDefinition,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    /// Print the schema of one file only (default: one schema accepting any of the five)
    #[arg(long, value_enum)]
    pub file: Option<SchemaFile>,
}

#[derive(Debug, clap::Args)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

/// The run prefix of a lab: every namespace is `<prefix>-…`.
#[derive(Debug, clap::Args)]
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
        /// Output format
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Remove every namespace, /etc/netns dir, process and state file of the lab (also leftovers)
    Down {
        #[command(flatten)]
        prefix: LabPrefixArg,
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
#[derive(Debug, clap::Args)]
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
    /// provision, firewall, pki, ingress, swarm (--target pve)
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
}
