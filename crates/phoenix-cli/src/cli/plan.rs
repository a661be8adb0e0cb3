//! `phoenix plan`, `render` and the verbs shared with `apply`.

use std::path::PathBuf;

use clap::Subcommand;

use super::{DEFAULT_CONFIG_DIR, OutputFormat};

/// A guest id on the command line.
pub fn parse_guest(s: &str) -> Result<phoenix_model::model::GuestId, String> {
    phoenix_model::raw::GuestId::parse(s)
}

#[derive(Debug, Subcommand)]
pub enum PlanVerb {
    /// Converge everything (the default)
    Sync,
    /// Create the guests and the prerequisites they are missing
    Create {
        #[arg(value_parser = parse_guest, required = true, value_name = "ID")]
        ids: Vec<phoenix_model::model::GuestId>,
    },
    /// Re-apply the guests' whole chains
    Converge {
        #[arg(value_parser = parse_guest, required = true, value_name = "ID")]
        ids: Vec<phoenix_model::model::GuestId>,
    },
    /// Stop and delete the guests; refused while others not named depend on them
    Delete {
        #[arg(value_parser = parse_guest, required = true, value_name = "ID")]
        ids: Vec<phoenix_model::model::GuestId>,
        /// Also delete the guests that depend on them
        #[arg(long)]
        force: bool,
    },
    /// Start the guests (and what they need)
    Start {
        #[arg(value_parser = parse_guest, required = true, value_name = "ID")]
        ids: Vec<phoenix_model::model::GuestId>,
    },
    /// Stop the guests (in reverse boot order)
    Stop {
        #[arg(value_parser = parse_guest, required = true, value_name = "ID")]
        ids: Vec<phoenix_model::model::GuestId>,
    },
    /// Stop, then start the guests
    Restart {
        #[arg(value_parser = parse_guest, required = true, value_name = "ID")]
        ids: Vec<phoenix_model::model::GuestId>,
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
    /// What exists on the target, as JSON: `phoenix observe`'s document or a bare observed
    /// state (default: an empty host)
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
    /// Observe this target and plan against it (the plan `sync all` would apply); without
    /// it the plan is offline, against --observed or an empty host
    #[arg(long, value_enum, global = true)]
    pub target: Option<super::SyncTarget>,
    /// Save the plan (versioned JSON, no secrets) for `phoenix sync all --plan FILE`
    /// (with --target)
    #[arg(long, value_name = "FILE", global = true, requires = "target")]
    pub out: Option<PathBuf>,
    /// The lab's prefix (--target lab)
    #[command(flatten)]
    pub lab: super::LabPrefixArg,
    /// How to reach the node (--target pve); --node also names the node offline (host.fw;
    /// default $PROXMOX_VE_NODE, else pve)
    #[command(flatten)]
    pub pve: super::PveConnArgs,
    /// Limit the plan to these subsystems, as `sync all --only` (with --target)
    #[arg(long, value_delimiter = ',', value_parser = super::sync::parse_subsystem, requires = "target")]
    pub only: Vec<phoenix_plan::subsystem::Subsystem>,
    /// Built-in CA directory: plan certificate renewals and trust files against it (reads its
    /// public certificates only; no passphrase needed)
    #[arg(long, global = true)]
    pub ca_dir: Option<PathBuf>,
    /// Renew once this fraction of a certificate's lifetime has passed (with --ca-dir)
    #[arg(long, default_value_t = 2.0 / 3.0, global = true)]
    pub renew_after: f64,
    /// With --target and an encrypted --ca-dir: where its passphrase comes from (as `sync all`)
    #[command(flatten)]
    pub passphrase: super::PassphraseArgs,
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

/// The planner's request for a bash verb (`None`: sync everything).
pub fn request_of(verb: Option<&PlanVerb>) -> phoenix_plan::Request {
    match verb {
        None | Some(PlanVerb::Sync) => phoenix_plan::Request::SyncAll,
        Some(PlanVerb::Create { ids }) => phoenix_plan::Request::Create(ids.clone()),
        Some(PlanVerb::Converge { ids }) => phoenix_plan::Request::Converge(ids.clone()),
        Some(PlanVerb::Delete { ids, force }) => phoenix_plan::Request::Delete {
            ids: ids.clone(),
            force: *force,
        },
        Some(PlanVerb::Start { ids }) => phoenix_plan::Request::Start(ids.clone()),
        Some(PlanVerb::Stop { ids }) => phoenix_plan::Request::Stop(ids.clone()),
        Some(PlanVerb::Restart { ids }) => phoenix_plan::Request::Restart(ids.clone()),
        Some(PlanVerb::LetsGo) => phoenix_plan::Request::LetsGo,
        Some(PlanVerb::Shutdown) => phoenix_plan::Request::Shutdown,
    }
}
