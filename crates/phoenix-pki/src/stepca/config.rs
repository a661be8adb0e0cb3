//! step-ca's `ca.json`, rendered from the desired state. Pure: values in, a value out.
//!
//! Only what step-ca 0.19 needs (LAB.md): `root`, `crt` (the intermediate), `key` (the
//! intermediate key — the root key never leaves the hypervisor), `address`, `dnsNames`, a
//! `badgerv2` `db` (one directory per instance; ACME and single-use tokens need it),
//! `authority.provisioners` (a JWK provisioner with the public half of a key phoenix keeps as a
//! secret — no `encryptedKey`, so step-ca cannot hand the private key out — and an ACME
//! provisioner), `authority.claims` and step's default `tls` options.

use std::net::{IpAddr, SocketAddr};

use phoenix_model::model::{DesiredState, GuestId, StepCaSettings};
use serde::{Deserialize, Serialize};

use super::jws::PublicJwk;

/// Where the CA material sits inside the CA guest (step's conventional layout by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepCaPaths {
    pub root: String,
    pub crt: String,
    pub key: String,
    pub db: String,
}

impl StepCaPaths {
    /// step's layout under `dir`: `certs/root_ca.crt`, `certs/intermediate_ca.crt`,
    /// `secrets/intermediate_ca_key`, `db/`.
    pub fn under(dir: &str) -> Self {
        let d = dir.trim_end_matches('/');
        StepCaPaths {
            root: format!("{d}/certs/root_ca.crt"),
            crt: format!("{d}/certs/intermediate_ca.crt"),
            key: format!("{d}/secrets/intermediate_ca_key"),
            db: format!("{d}/db"),
        }
    }
}

impl Default for StepCaPaths {
    /// `/etc/step-ca` in the CA guest.
    fn default() -> Self {
        StepCaPaths::under("/etc/step-ca")
    }
}

/// Leaf certificate lifetimes the CA grants (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafClaims {
    pub default_secs: u64,
    pub min_secs: u64,
    pub max_secs: u64,
}

impl Default for LeafClaims {
    /// step-ca's defaults: 24 h leaves, at least 5 min, at most 24 h.
    fn default() -> Self {
        LeafClaims {
            default_secs: 24 * 3600,
            min_secs: 5 * 60,
            max_secs: 24 * 3600,
        }
    }
}

/// Inputs of [`ca_json`].
#[derive(Debug, Clone)]
pub struct CaJsonParams<'a> {
    pub settings: &'a StepCaSettings,
    /// The CA guest's address on the mesh.
    pub mesh_address: IpAddr,
    pub paths: &'a StepCaPaths,
    /// Public half of the JWK provisioner's key.
    pub provisioner_key: &'a PublicJwk,
    pub claims: LeafClaims,
    /// Name of the ACME provisioner (`acme`).
    pub acme_provisioner: &'a str,
}

/// `ca.json` as a value (field names are step-ca's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaJson {
    pub root: String,
    pub crt: String,
    pub key: String,
    pub address: String,
    pub dns_names: Vec<String>,
    pub logger: serde_json::Value,
    pub db: Db,
    pub authority: Authority,
    pub tls: TlsOptions,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Db {
    #[serde(rename = "type")]
    pub kind: String,
    pub data_source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Authority {
    pub provisioners: Vec<Provisioner>,
    pub claims: Claims,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Provisioner {
    #[serde(rename = "JWK")]
    Jwk { name: String, key: PublicJwk },
    #[serde(rename = "ACME")]
    Acme { name: String },
}

/// Go duration strings (`24h`, `5m`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    #[serde(rename = "minTLSCertDuration")]
    pub min_tls_cert_duration: String,
    #[serde(rename = "maxTLSCertDuration")]
    pub max_tls_cert_duration: String,
    #[serde(rename = "defaultTLSCertDuration")]
    pub default_tls_cert_duration: String,
    pub disable_renewal: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsOptions {
    pub cipher_suites: Vec<String>,
    pub min_version: f64,
    pub max_version: f64,
    pub renegotiation: bool,
}

impl Default for TlsOptions {
    /// What `step ca init` writes.
    fn default() -> Self {
        TlsOptions {
            cipher_suites: vec![
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256".into(),
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
            ],
            min_version: 1.2,
            max_version: 1.3,
            renegotiation: false,
        }
    }
}

/// Build `ca.json` for the CA guest.
pub fn ca_json(p: &CaJsonParams<'_>) -> CaJson {
    let s = p.settings;
    CaJson {
        root: p.paths.root.clone(),
        crt: p.paths.crt.clone(),
        key: p.paths.key.clone(),
        address: SocketAddr::new(p.mesh_address, s.port).to_string(),
        dns_names: vec![s.dns_name.clone(), p.mesh_address.to_string()],
        logger: serde_json::json!({"format": "text"}),
        db: Db {
            kind: "badgerv2".into(),
            data_source: p.paths.db.clone(),
        },
        authority: Authority {
            provisioners: vec![
                Provisioner::Jwk {
                    name: s.provisioner.clone(),
                    key: p.provisioner_key.clone(),
                },
                Provisioner::Acme {
                    name: p.acme_provisioner.to_owned(),
                },
            ],
            claims: Claims {
                min_tls_cert_duration: go_duration(p.claims.min_secs),
                max_tls_cert_duration: go_duration(p.claims.max_secs),
                default_tls_cert_duration: go_duration(p.claims.default_secs),
                disable_renewal: false,
            },
        },
        tls: TlsOptions::default(),
    }
}

impl CaJson {
    /// Pretty JSON with a trailing newline: the file's content.
    pub fn to_file_text(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Listen elsewhere (e.g. loopback in tests) and answer to these names.
    pub fn with_listen(mut self, address: SocketAddr, dns_names: Vec<String>) -> Self {
        self.address = address.to_string();
        self.dns_names = dns_names;
        self
    }
}

/// `86400` → `24h`, `300` → `5m`, `5400` → `1h30m`, `0` → `0s`.
pub fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Why the CA guest's address could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaAddressError {
    #[error("no guest plays the CA role")]
    NoCaGuest,
    #[error("the CA role names guest {guest}, which is not defined")]
    UnknownGuest { guest: u32 },
    #[error("CA guest {guest} has no static address on the mesh bridge {bridge}")]
    NoMeshAddress { guest: u32, bridge: String },
    #[error("the host has no mesh bridge")]
    NoMesh,
}

/// The CA guest and its static address on the mesh (where step-ca listens).
pub fn ca_guest_mesh_address(d: &DesiredState) -> Result<(GuestId, IpAddr), CaAddressError> {
    let id = d.roles.ca.ok_or(CaAddressError::NoCaGuest)?;
    let guest = d
        .guest(id)
        .ok_or(CaAddressError::UnknownGuest { guest: id.0 })?;
    let mesh = d.mesh().ok_or(CaAddressError::NoMesh)?;
    let nic = guest
        .static_on(&mesh.name)
        .ok_or_else(|| CaAddressError::NoMeshAddress {
            guest: id.0,
            bridge: mesh.name.clone(),
        })?;
    let addr = nic.address().ok_or_else(|| CaAddressError::NoMeshAddress {
        guest: id.0,
        bridge: mesh.name.clone(),
    })?;
    Ok((id, addr))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(86_400), "24h");
        assert_eq!(go_duration(300), "5m");
        assert_eq!(go_duration(5_400), "1h30m");
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(61), "1m1s");
        assert_eq!(go_duration(90 * 86_400), "2160h");
    }

    #[test]
    fn default_paths() {
        let p = StepCaPaths::default();
        assert_eq!(p.key, "/etc/step-ca/secrets/intermediate_ca_key");
        assert_eq!(StepCaPaths::under("/x/").db, "/x/db");
    }
}
