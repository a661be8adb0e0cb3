//! Errors of the Proxmox VE client, observe and apply. Structured fields, never a secret: the
//! API token is only ever held in [`crate::connection::ApiToken`] and the password in
//! [`crate::connection::Password`], whose `Debug` is redacted; a login ticket never leaves the
//! client.

use std::collections::BTreeMap;
use std::time::Duration;

/// Everything the client can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PveError {
    /// Connection settings are incomplete or malformed (flag or environment name in `source_name`).
    #[error("invalid connection setting {name}: {message}")]
    Setting { name: String, message: String },

    /// The CA file or fingerprint could not be used to build a TLS configuration.
    #[error("TLS setup failed: {message}")]
    Tls { message: String },

    /// The request could not be sent or the reply not read (DNS, TCP, TLS handshake, timeout).
    #[error("{method} {path}: transport error: {}", chain(source))]
    Transport {
        method: String,
        path: String,
        #[source]
        source: reqwest::Error,
    },

    /// Ticket login (`POST /access/ticket`) refused: wrong username or password, a second
    /// factor required, or an unusable reply. `status` is the HTTP status when there was one.
    #[error("login as {username} failed: {message}")]
    Login {
        username: String,
        status: Option<u16>,
        message: String,
    },

    /// HTTP 400 with PVE's `errors` map: one message per parameter, so the caller can point at
    /// the configuration key that produced the parameter.
    #[error("{method} {path}: parameter verification failed: {}", format_params(.errors))]
    Parameters {
        method: String,
        path: String,
        errors: BTreeMap<String, String>,
    },

    /// Any other non-success HTTP status (after retries, for the retryable ones).
    #[error("{method} {path}: HTTP {status}: {message}")]
    Http {
        method: String,
        path: String,
        status: u16,
        message: String,
        attempts: u32,
    },

    /// The reply was not `{"data": …}` of the expected shape.
    #[error("{method} {path}: unexpected reply: {message}")]
    Decode {
        method: String,
        path: String,
        message: String,
    },

    /// A task ended with an exit status other than `OK` / `WARNINGS: n`.
    #[error("task {upid} failed: {exitstatus}")]
    TaskFailed { upid: String, exitstatus: String },

    /// A task did not stop before the deadline.
    #[error("task {upid} still running after {waited:?}")]
    TaskTimeout { upid: String, waited: Duration },
    #[error("host shell: {0}")]
    Shell(#[from] phoenix_exec::shell::ShellError),

    /// A storage cannot do what the plan needs of it (hold imported images).
    #[error("storage {storage}: {message}; hint: {hint}")]
    Storage {
        storage: String,
        message: String,
        hint: String,
    },

    /// A provision step inside a guest failed (the message names the step and the command).
    #[error("guest {guest}: {message}")]
    Provision {
        guest: phoenix_model::model::GuestId,
        message: String,
    },
}

fn format_params(errors: &BTreeMap<String, String>) -> String {
    errors
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.trim_end()))
        .collect::<Vec<_>>()
        .join("; ")
}

impl PveError {
    /// The parameter names PVE rejected (empty unless [`PveError::Parameters`]).
    pub fn rejected_parameters(&self) -> Vec<&str> {
        match self {
            PveError::Parameters { errors, .. } => errors.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

/// An error with its causes (`error sending request: … : Connection refused (os error 111)`):
/// reqwest's own text names only the outermost step.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}
