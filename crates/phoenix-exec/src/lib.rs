//! # phoenix-exec
//!
//! The execution layer below both targets (the Proxmox node in `phoenix-pve`, the lab twin in
//! `phoenix-lab`): what runs the same way wherever the plan is applied.
//!
//! - [`shell`]: the hypervisor's shell (files written atomically, argv commands), local or over
//!   OpenSSH;
//! - [`guest`]: reaching into a guest ([`guest::GuestExec`]) and the provisioning runner;
//! - [`certs`]: the manifest's certificates inside guests (observed, issued, delivered);
//! - [`docker`]: the Docker Engine API of a Swarm's nodes (membership, stacks, observation);
//! - [`journal`]: the wave runner every target applies a plan with, and its journal;
//! - [`plan`]: the plan a target applies (the planner's, with the firewall's API actions);
//! - [`target`]: the [`target::Target`] interface and the one [`target::sync_all`] pipeline;
//! - [`swarm`]: a configuration's Swarm on a target's engines (the Swarm phase);
//! - [`lock`]: one run at a time per target (a lock file through the host shell);
//! - [`saved`]: saved plans and the observed state as data;
//! - [`root`]: privilege checks.
//!
//! Does file and process I/O.

pub mod certs;
pub mod docker;
pub mod guest;
pub mod journal;
pub mod lock;
pub mod observed;
pub mod plan;
pub mod root;
pub mod saved;
pub mod shell;
pub mod swarm;
pub mod target;

pub use guest::{GuestExec, ProvisionError};
pub use shell::ssh::SshShell;
pub use shell::{CommandOutput, HostFile, HostShell, LocalShell, ShellError};
