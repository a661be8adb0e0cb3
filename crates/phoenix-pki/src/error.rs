//! Errors of the PKI crate: one enum with structured fields, no key material in any message.
//! No I/O.

use std::path::PathBuf;

/// Everything that can go wrong in the CA, issuance and delivery.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Issuing through an online step-ca failed.
    #[error(transparent)]
    StepCa(#[from] crate::stepca::StepCaError),
    #[error("cannot create directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} already holds a CA (found {file})")]
    AlreadyInitialised { path: PathBuf, file: String },
    #[error("{path} holds no CA: {file} is missing (hint: run `phoenix ca init --ca-dir {path}`)")]
    NotInitialised { path: PathBuf, file: String },
    #[error("the CA keys in {path} are encrypted and no passphrase was given")]
    PassphraseRequired { path: PathBuf },
    #[error("cannot decrypt {path}: wrong passphrase or damaged key")]
    Decrypt { path: PathBuf },
    #[error("cannot encrypt a private key: {reason}")]
    Encrypt { reason: String },
    #[error("{path}: {reason}")]
    BadCaFile { path: PathBuf, reason: String },
    #[error("cannot create the certificate for `{subject}`")]
    Generate {
        subject: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("cannot generate a key pair")]
    KeyGeneration {
        #[source]
        source: rcgen::Error,
    },
    #[error("the system random number generator failed")]
    Random,
    #[error("invalid SAN `{san}` for `{common_name}`: {reason}")]
    InvalidSan {
        common_name: String,
        san: String,
        reason: String,
    },
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        option: &'static str,
        reason: String,
    },
    #[error("cannot parse certificate: {reason}")]
    ParseCertificate { reason: String },
    #[error("destination `{path}` of `{common_name}` leaves the target root ({reason})")]
    UnsafeDestination {
        common_name: String,
        path: String,
        reason: &'static str,
    },
    #[error(
        "`{common_name}` is delivered to guest {guest}, which the configuration does not define"
    )]
    UnknownGuest { common_name: String, guest: u32 },
    #[error("{path}: bad state file")]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}
