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
    /// Fail (exit 1) on warnings too
    #[arg(long)]
    pub deny_warnings: bool,
    /// Print findings only, not the model summary
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaFile {
    Hypervisor,
    Lxc,
    Vm,
    Stacks,
    Manifest,
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
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    /// Print the schema of one file only (default: one schema accepting any of the five)
    #[arg(long, value_enum)]
    pub file: Option<SchemaFile>,
}
