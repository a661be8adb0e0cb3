//! # phoenix-verify
//!
//! The probe layer of `phoenix verify`. Probes are written against a *target interface*
//! ([`ProbeTarget`] → [`Endpoint`]): an endpoint is a place (a lab namespace, later a Proxmox
//! guest) that can run an argv command with a deadline and open sockets *from inside*.
//! Every probe polls with a deadline (never a bare sleep) and returns a [`ProbeResult`]:
//! pass, fail with evidence, or skip with a reason. [`expect`] derives what to check from the
//! desired state (pure); the probe modules do network I/O through an endpoint.

pub mod dns;
pub mod dnsmsg;
pub mod endpoint;
pub mod error;
pub mod expect;
pub mod glance;
pub mod hostinfo;
pub mod https;
pub mod lab;
pub mod matrix;
pub mod netns;
pub mod report;
pub mod route;
pub mod run;
pub mod tcp;
pub mod tls;
pub mod tlsview;

pub use endpoint::{CommandOutput, Endpoint, LocalEndpoint, ProbeTarget, with_net};
pub use error::ProbeError;
pub use glance::TextOptions;
pub use netns::{NetnsEndpoint, NetnsTarget};
pub use report::{ProbeResult, Report, Status, Subject};
