//! # The Step-CA role
//!
//! Phoenix keeps the seed's architecture — Smallstep step-ca in the CA guest is the online CA —
//! but owns the CA material: the root key stays on the hypervisor, only the intermediate
//! certificate and key go to the CA guest.
//!
//! - [`config`]: renders step-ca's `ca.json` from the desired state (pure).
//! - [`jws`]: the JWK provisioner key (load/generate, RFC 7638 thumbprint) and the hand-made
//!   ES256 one-time token (ring only; no JOSE crate). Pure except for randomness.
//! - [`client`]: the step-ca API client — `/health`, `/root/<sha256>`, `/1.0/sign` with a CSR and
//!   a one-time token, `/1.0/renew` with mTLS. Network I/O (blocking; see [`http`]).
//! - [`issuer`]: [`StepCaIssuer`] — the client as an issuer for the manifest engine
//!   ([`crate::IssuedLeaf`], [`crate::IssuerIdentity`]).
//! - [`http`]: a minimal blocking HTTP/1.1 client over rustls (ring provider) that trusts only
//!   the step-ca root it is given. Chosen over reqwest to keep tokio/hyper out of this crate
//!   for a handful of small JSON requests.
//!
//! Nothing here logs or `Debug`-prints private keys, tokens or passwords: they sit in
//! [`Redacted`] wrappers.

pub mod client;
pub mod config;
pub mod http;
pub mod issuer;
pub mod jws;

pub use client::{CertificateChain, CsrRequest, IssuedChain, StepCaClient, make_csr};
pub use config::{CaJson, CaJsonParams, LeafClaims, StepCaPaths, ca_guest_mesh_address, ca_json};
pub use issuer::StepCaIssuer;
pub use jws::{
    GeneratedProvisionerKey, OneTimeToken, ProvisionerKey, PublicJwk, TokenClaims, fingerprint_hex,
};

/// A value whose `Debug` never shows its content (private keys, tokens, passwords).
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted<T>(pub T);

impl<T> Redacted<T> {
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Everything that can go wrong talking to (or preparing for) a step-ca.
#[derive(Debug, thiserror::Error)]
pub enum StepCaError {
    #[error("invalid step-ca URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: &'static str },

    #[error("cannot read {what}: {reason}")]
    Pem { what: &'static str, reason: String },

    #[error("step-ca root fingerprint mismatch: expected {expected}, got {actual}")]
    RootFingerprintMismatch { expected: String, actual: String },

    #[error("invalid provisioner key: {reason}")]
    ProvisionerKey { reason: String },

    #[error("signing the one-time token failed")]
    TokenSigning,

    #[error("invalid certificate request: {reason}")]
    Csr { reason: String },

    #[error("cannot connect to step-ca at {addr}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    #[error("TLS setup for {host} failed")]
    Tls {
        host: String,
        #[source]
        source: rustls::Error,
    },

    #[error("{method} {path} on {host}: I/O error")]
    Io {
        method: &'static str,
        path: String,
        host: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{method} {path}: step-ca answered {status}: {message}")]
    Status {
        method: &'static str,
        path: String,
        status: u16,
        message: String,
    },

    #[error("{method} {path}: malformed response: {reason}")]
    Protocol {
        method: &'static str,
        path: String,
        reason: String,
    },
}
