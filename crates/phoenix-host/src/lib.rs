//! # phoenix-host
//!
//! `phoenix setup`: the hypervisor's own setup — time zone, Proxmox apt sources, Samba, NFS
//! exports — as observe (through the node's [`HostShell`](phoenix_exec::shell::HostShell)) →
//! plan (pure) → apply (only what differs, then the activations as argv vectors).

pub mod apply;
pub mod nthash;
pub mod observe;
pub mod plan;

pub use apply::{Journal, SetupError, apply};
pub use observe::{HostObserved, Scope, observe};
pub use plan::{SetupPlan, Step, plan};
