//! # phoenix-pki
//!
//! The internal root of trust: a built-in CA (root + intermediate), the certificate manifest
//! engine (issue / renew / keep decisions), chain and SAN verification, delivery of
//! certificates with the modes their consumers need, rotation with an overlap, and a client
//! for an online Smallstep step-ca.
//!
//! I/O: key and certificate files through a narrow store; network only in the step-ca client.
//!
//! Map of the built-in CA side:
//! - [`ca`]: [`CaStore`] / [`CaPublic`] — the CA directory (`init`, `open`, `status`, `rotate`,
//!   `prune_previous`); reads and writes files.
//! - [`issue`]: [`LeafIssuer`] and leaf certificate parameters (pure apart from key generation).
//! - [`inspect`]: parsing existing certificates into [`LeafInfo`] (pure).
//! - [`engine`]: the renewal decision [`decide`] from files, and [`decide_leaf`] from observed
//!   facts (the planner's path) — one rule (pure).
//! - [`materialise`]: [`plan_manifest`] / [`issue_manifest`] under `OUT/<guest>/<path>` (files).
//! - [`trust`]: [`trust_distribution`] — the roots to install and where (pure).
//! - [`verify`]: chain + name checks with rustls-webpki (pure).

pub mod ca;
pub mod engine;
pub mod error;
mod fsio;
pub mod inspect;
pub mod issue;
mod keyfile;
pub mod materialise;
pub mod postrenewal;
pub mod secret;
pub mod stepca;
pub mod trust;
pub mod verify;

pub use ca::{CaGeneration, CaOptions, CaPublic, CaStatus, CaStore};
pub use engine::{
    Decision, Existing, IssueReason, KeyState, RenewReason, RenewalPolicy, decide, decide_leaf,
    san_from_text, san_text,
};
pub use error::PkiError;
pub use inspect::CertSummary;
pub use inspect::{KeyAlgorithm, LeafInfo, parse_leaf_pem};
pub use issue::{IssuedLeaf, IssuerIdentity, LeafIssuer, LeafRequest, RandomSerials, SerialSource};
pub use materialise::{
    Destination, EntryOutcome, EntryPlan, EntryReport, IssueOptions, IssueReport, destination,
    issue_manifest, plan_manifest,
};
pub use postrenewal::{PostRenewalAction, SecretSource};
pub use secret::{KeyPem, Passphrase};
pub use trust::{TrustDistribution, trust_distribution};
pub use verify::{VerifyError, verify, verify_pem};
