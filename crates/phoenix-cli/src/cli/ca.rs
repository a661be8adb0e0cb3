//! `phoenix ca …` arguments.

use std::path::PathBuf;

use clap::Subcommand;

use super::{DEFAULT_CONFIG_DIR, OutputFormat};

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
#[derive(Debug, Clone, clap::Args)]
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
