//! Argument definitions (clap), one file per command family. No behaviour here.

mod ca;
mod doctor;
mod graph;
mod lab;
mod plan;
mod setup;
mod status;
mod swarm;
mod sync;
mod verify;

pub use ca::*;
pub use doctor::*;
pub use graph::*;
pub use lab::*;
pub use plan::*;
pub use setup::*;
pub use status::*;
pub use swarm::*;
pub use sync::*;
pub use verify::*;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// `phoenix --version`: the package version, the git commit and the build date (build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("PHOENIX_GIT_COMMIT"),
    ", built ",
    env!("PHOENIX_BUILD_DATE"),
    ")"
);

/// Provision and verify a Proxmox VE homelab from declarative JSON.
#[derive(Debug, Parser)]
#[command(name = "phoenix", version = VERSION, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Colour: `auto` on a terminal unless NO_COLOR is set, `always`, or `never`
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
}

/// When output is coloured (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
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
    /// Export what a target holds now as JSON (for `phoenix plan --observed FILE`); read-only
    Observe(ObserveArgs),
    /// Desired vs actual, read-only: each guest (exists, running, drift by key), each managed file
    Status(StatusArgs),
    /// Run one of the bash system's verbs on a Proxmox node: observe, plan it, apply, journal
    Apply(ApplyArgs),
    /// Draw the platform from the configuration: bridges, guests with their addresses, the ingress route, dependencies, the Swarm (SVG, DOT or Mermaid)
    Graph(GraphArgs),
    /// Check what phoenix needs here: the configuration, root, the lab's programs and peers, a node's API, TLS trust and credentials; one table, each with its fix
    Doctor(DoctorArgs),
    /// The hypervisor itself: apt sources, time zone, Samba, NFS exports (observe, plan, apply)
    Setup(SetupArgs),
    /// The Docker Swarm through the Engine API: status, init, join, deploy and remove stacks
    Swarm(SwarmArgs),
    /// Print a shell completion script (`phoenix completions bash > /etc/bash_completion.d/phoenix`)
    Completions {
        /// The shell to complete in
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of phoenix or of one of its commands (`phoenix man | man -l -`)
    Man {
        /// A command path such as `sync all` (default: phoenix itself)
        command: Vec<String>,
    },
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
    /// Accepted for older scripts: the JSON document always carries the counts
    /// (`summary`), and text output always ends with them
    #[arg(long, hide = true)]
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

/// How long a changing command waits for another run's lock on its target.
#[derive(Debug, Clone, clap::Args)]
pub struct LockArgs {
    /// Wait up to SECONDS for another phoenix run holding the target's lock (0: exit 4 at
    /// once, naming the holder)
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub lock_timeout: u64,
}

/// `phoenix observe --target lab|pve`.
#[derive(Debug, clap::Args)]
pub struct ObserveArgs {
    /// What to observe
    #[arg(long, value_enum)]
    pub target: SyncTarget,
    /// Directory holding phoenix_hypervisor_config.json and the other files
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_DIR, env = "PHOENIX_CONFIG")]
    pub config: PathBuf,
    #[command(flatten)]
    pub lab: LabPrefixArg,
    #[command(flatten)]
    pub pve: PveConnArgs,
    /// Also observe inside the guests what the provision steps check
    #[arg(long)]
    pub provision: bool,
}
