//! Errors of the probe layer: failures to *run* a probe (no namespace, cannot spawn a
//! command, bad input). A probe that runs and sees the wrong thing is not an error: it is a
//! [`crate::Status::Fail`] with evidence. No I/O.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot open network namespace handle {path}")]
    OpenNamespace {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("setns into {ns} failed")]
    Setns {
        ns: String,
        #[source]
        source: nix::Error,
    },
    #[error("the probe thread for {endpoint} died")]
    ThreadDied { endpoint: String },
    #[error("cannot spawn the probe thread for {endpoint}")]
    Spawn {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run {argv:?} in {endpoint}")]
    Command {
        endpoint: String,
        argv: Vec<String>,
        #[source]
        source: std::io::Error,
    },
    #[error("empty command")]
    EmptyCommand,
    #[error("no endpoint for {subject}")]
    NoEndpoint { subject: String },
    #[error("socket error: {what}")]
    Socket {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid DNS name {name:?}: {why}")]
    DnsName { name: String, why: &'static str },
    #[error("TLS setup: {0}")]
    TlsSetup(String),
}
