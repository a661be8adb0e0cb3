//! # phoenix-host
//!
//! `phoenix setup`: the hypervisor's own setup — time zone, Proxmox apt sources, users, Samba,
//! NFS exports, ZFS (ARC, pools, datasets) and its Proxmox storage — as observe (through the node's [`HostShell`](phoenix_exec::shell::HostShell)) →
//! plan (pure) → apply (only what differs, then the activations as argv vectors).

pub mod apply;
pub mod nthash;
pub mod observe;
pub mod plan;
pub mod storage;
pub mod users;
pub mod zfs;

pub use apply::{Journal, Secrets, SetupError, apply, apply_with};
pub use observe::{HostObserved, ObserveError, Scope, observe, observe_with};
pub use plan::{SetupPlan, Step, plan};
