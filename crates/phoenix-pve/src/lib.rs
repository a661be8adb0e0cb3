//! Proxmox VE target: a typed API client (rustls with ring; CA file or pinned fingerprint; API
//! token or login ticket), connection settings from flags or `PROXMOX_VE_*`, guest observation into
//! [`phoenix_plan::ObservedState`], execution of the planner's guest actions with a journal, the firewall through the API
//! (`firewall`), and the node's guests from inside (`guestexec`: `pct exec`/`pct push`, the
//! QEMU guest agent) for `phoenix-exec`'s provisioning runner; the node's files and commands
//! through `phoenix-exec`'s host shells (locally or over OpenSSH).
//! `verify` runs `phoenix verify --target pve`'s read-only checks.
//! Every module but `connection` (which only reads a password file) and `tls` does I/O.

pub mod apply;
pub mod client;
pub mod connection;
pub mod error;
pub mod firewall;
pub mod guestexec;
pub mod image;
pub mod netswitch;
pub mod observe;

pub mod target;
pub mod tls;
pub mod verify;
pub mod vmboot;

#[cfg(test)]
mod provision_tests;

pub use client::{PveClient, RequestCounts, RetryPolicy, TaskPolicy};
pub use connection::{ApiToken, ConnectionFlags, ConnectionSettings, Password, PveAuth};
pub use error::PveError;
pub use phoenix_exec::shell::ssh::SshShell;
pub use phoenix_exec::shell::{HostFile, HostShell, LocalShell, ShellError};
pub use tls::TlsTrust;
