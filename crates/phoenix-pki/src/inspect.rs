//! Reading certificates: PEM blocks, SHA-256 fingerprints, a summary for `ca status`, and the
//! facts the renewal engine compares ([`LeafInfo`]). Pure (no I/O).

use std::collections::BTreeSet;
use std::net::IpAddr;

use phoenix_model::model::{CertKind, San};
use serde::Serialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};

use crate::error::PkiError;

/// The key algorithm of a certificate's subject public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyAlgorithm {
    EcdsaP256,
    /// Anything else, by algorithm OID (and curve OID for EC keys).
    Other(String),
}

/// What the engine needs to know about an existing leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeafInfo {
    pub common_name: Option<String>,
    /// DNS names lower-cased and IP addresses, as a set.
    pub sans: BTreeSet<San>,
    pub not_before: i64,
    pub not_after: i64,
    /// Lower-case hex of the AKI key identifier.
    pub authority_key_id: Option<String>,
    pub key_algorithm: KeyAlgorithm,
    /// The raw subject public key (EC point), to match against the key file.
    #[serde(skip)]
    pub public_key: Vec<u8>,
    /// From the EKU extension: serverAuth → server, else clientAuth → client.
    pub kind: Option<CertKind>,
    /// Colon-free lower-case hex.
    pub serial: String,
}

/// A certificate as `ca status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertSummary {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub not_before_unix: i64,
    pub not_after_unix: i64,
    /// Lower-case hex SHA-256 of the DER (what `step ca bootstrap --fingerprint` expects).
    pub fingerprint_sha256: String,
    /// Lower-case hex of the subject key identifier.
    pub subject_key_id: Option<String>,
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Lower-case hex SHA-256 of `der`.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

/// Every `CERTIFICATE` block of a PEM text, as DER, in order.
pub fn pem_certificates(text: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()) {
        let pem = pem.map_err(|e| PkiError::ParseCertificate {
            reason: format!("bad PEM: {e}"),
        })?;
        if pem.label == "CERTIFICATE" {
            out.push(pem.contents);
        }
    }
    Ok(out)
}

/// Wrap DER as a PEM `CERTIFICATE` block.
pub fn der_to_pem(der: &[u8]) -> String {
    pkcs8::der::pem::encode_string("CERTIFICATE", pkcs8::LineEnding::LF, der).unwrap_or_default()
}

pub(crate) fn parse_der(der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, c)) => Ok(c),
        Err(e) => Err(PkiError::ParseCertificate {
            reason: e.to_string(),
        }),
    }
}

pub(crate) fn subject_key_id(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
}

fn authority_key_id(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
}

fn key_algorithm(cert: &X509Certificate<'_>) -> KeyAlgorithm {
    let spki = cert.public_key();
    let alg = &spki.algorithm.algorithm;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY && curve.as_ref() == Some(&OID_EC_P256) {
        KeyAlgorithm::EcdsaP256
    } else {
        match curve {
            Some(c) => KeyAlgorithm::Other(format!("{alg} ({c})")),
            None => KeyAlgorithm::Other(alg.to_string()),
        }
    }
}

/// RFC 3339 UTC text of a unix time.
pub fn rfc3339(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => unix.to_string(),
    }
}

/// Summarise a certificate for status output.
pub fn summary(der: &[u8]) -> Result<CertSummary, PkiError> {
    let c = parse_der(der)?;
    let nb = c.validity().not_before.timestamp();
    let na = c.validity().not_after.timestamp();
    Ok(CertSummary {
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        serial: hex(c.tbs_certificate.raw_serial()),
        not_before: rfc3339(nb),
        not_after: rfc3339(na),
        not_before_unix: nb,
        not_after_unix: na,
        fingerprint_sha256: fingerprint_sha256(der),
        subject_key_id: subject_key_id(&c).map(|k| hex(&k)),
    })
}

/// Parse the first certificate of a PEM text (the leaf of a chain file).
pub fn parse_leaf_pem(text: &str) -> Result<LeafInfo, PkiError> {
    let first = x509_parser::pem::Pem::iter_from_buffer(text.as_bytes())
        .filter_map(Result::ok)
        .find(|p| p.label == "CERTIFICATE")
        .ok_or_else(|| PkiError::ParseCertificate {
            reason: "no CERTIFICATE block".to_string(),
        })?;
    parse_leaf_der(&first.contents)
}

/// Parse a DER leaf certificate.
pub fn parse_leaf_der(der: &[u8]) -> Result<LeafInfo, PkiError> {
    let c = parse_der(der)?;
    let common_name = c
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_string);
    let mut sans = BTreeSet::new();
    if let Ok(Some(ext)) = c.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                GeneralName::DNSName(d) => {
                    sans.insert(San::Dns(d.to_ascii_lowercase()));
                }
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        sans.insert(San::Ip(ip));
                    }
                }
                _ => {}
            }
        }
    }
    let kind = match c.extended_key_usage() {
        Ok(Some(e)) if e.value.server_auth => Some(CertKind::Server),
        Ok(Some(e)) if e.value.client_auth => Some(CertKind::Client),
        _ => None,
    };
    Ok(LeafInfo {
        common_name,
        sans,
        not_before: c.validity().not_before.timestamp(),
        not_after: c.validity().not_after.timestamp(),
        authority_key_id: authority_key_id(&c).map(|k| hex(&k)),
        key_algorithm: key_algorithm(&c),
        public_key: c.public_key().subject_public_key.data.to_vec(),
        kind,
        serial: hex(c.tbs_certificate.raw_serial()),
    })
}
