//! Proxmox VE target: a typed API client (rustls with ring; CA file or pinned fingerprint; API
//! token or login ticket), connection settings from flags or `PROXMOX_VE_*`, guest observation into
//! [`phoenix_plan::ObservedState`], execution of the planner's guest actions with a journal, the firewall through the API
//! (`firewall`), and
//! provisioning inside guests (`provision`: `pct exec`/`pct push`, the QEMU guest agent).
//! `hostshell` and `sshshell` reach the node's files and commands (locally or over OpenSSH).
//! Every module but `connection` (which only reads a password file) and `tls` does I/O.

pub mod apply;
pub mod client;
pub mod connection;
pub mod error;
pub mod firewall;
pub mod guestexec;
pub mod hostfiles;
pub mod hostshell;
pub mod netswitch;
pub mod observe;
pub mod provision;
pub mod sshshell;

pub mod tls;

pub use client::{PveClient, RequestCounts, RetryPolicy, TaskPolicy};
pub use connection::{ApiToken, ConnectionFlags, ConnectionSettings, Password, PveAuth};
pub use error::PveError;
pub use hostshell::{HostFile, HostShell, LocalShell, ShellError};
pub use sshshell::SshShell;
pub use tls::TlsTrust;
