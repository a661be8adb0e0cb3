//! Proxmox VE target: a typed API client (rustls with ring; CA file or pinned fingerprint),
//! connection settings from flags or `PROXMOX_VE_*`, guest observation into
//! [`phoenix_plan::ObservedState`] and execution of the planner's guest actions with a journal.
//! Every module but `connection` and `tls` does network I/O.

pub mod apply;
pub mod client;
pub mod connection;
pub mod error;
pub mod observe;

pub mod tls;

pub use client::{PveClient, RequestCounts, RetryPolicy, TaskPolicy};
pub use connection::{ApiToken, ConnectionFlags, ConnectionSettings};
pub use error::PveError;
pub use tls::TlsTrust;
