//! Leaf issuance: the request derived from a manifest entry, its validation (malformed SANs,
//! wildcard misuse), the X.509 parameters of a leaf, and the [`LeafIssuer`] trait the manifest
//! engine drives — implemented by the built-in CA ([`crate::CaStore`]) and meant to be
//! implemented by the step-ca client too. Randomness comes in through [`SerialSource`]; time
//! is a parameter. No file or network I/O here.

use std::time::{SystemTime, UNIX_EPOCH};

use phoenix_model::model::{CertKind, Certificate, San};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SanType, SerialNumber,
};
use ring::rand::SecureRandom;
use serde::Serialize;
use time::OffsetDateTime;

use crate::error::PkiError;
use crate::secret::KeyPem;

/// Leaves start a minute in the past to absorb small clock differences between machines.
pub const BACKDATE_SECONDS: i64 = 60;

/// Source of certificate serial numbers (128 random bits).
pub trait SerialSource {
    fn serial(&self) -> Result<[u8; 16], PkiError>;
}

/// Serials from the operating system's CSPRNG (ring's `SystemRandom`).
#[derive(Debug)]
pub struct RandomSerials(ring::rand::SystemRandom);

impl RandomSerials {
    pub fn new() -> RandomSerials {
        RandomSerials(ring::rand::SystemRandom::new())
    }
}

impl Default for RandomSerials {
    fn default() -> RandomSerials {
        RandomSerials::new()
    }
}

impl SerialSource for RandomSerials {
    fn serial(&self) -> Result<[u8; 16], PkiError> {
        let mut b = [0u8; 16];
        self.0.fill(&mut b).map_err(|_| PkiError::Random)?;
        // Keep the DER INTEGER positive and 16 bytes long (RFC 5280 §4.1.2.2: at most 20 octets).
        b[0] = (b[0] & 0x7f) | 0x40;
        Ok(b)
    }
}

/// What to certify.
#[derive(Debug, Clone, Copy)]
pub struct LeafRequest<'a> {
    pub common_name: &'a str,
    pub sans: &'a [San],
    pub kind: CertKind,
    pub lifetime_hours: u32,
}

impl<'a> LeafRequest<'a> {
    pub fn for_entry(c: &'a Certificate) -> LeafRequest<'a> {
        LeafRequest {
            common_name: &c.common_name,
            sans: &c.sans,
            kind: c.kind,
            lifetime_hours: c.lifetime_hours,
        }
    }
}

/// Who issues: the identity the renewal engine compares existing certificates against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuerIdentity {
    /// Lower-case hex SKI of the issuing intermediate (= the AKI of its leaves).
    pub intermediate_key_id: String,
    /// Lower-case hex SHA-256 of the current root.
    pub root_fingerprint: String,
}

/// A freshly issued leaf with its private key.
#[derive(Debug, Clone)]
pub struct IssuedLeaf {
    pub leaf_pem: String,
    /// The intermediate(s), leaf's issuer first.
    pub intermediates_pem: String,
    pub root_pem: String,
    pub key: KeyPem,
    pub serial: String,
    pub not_after: i64,
}

impl IssuedLeaf {
    /// The certificate file: leaf + intermediate always (servers must send the intermediate);
    /// with `include_ca` the root is appended as well, for consumers that read their CA from
    /// the same bundle (the bash system's `include_ca`).
    pub fn cert_file(&self, include_ca: bool) -> String {
        let mut s = String::with_capacity(3 * self.leaf_pem.len());
        for part in [&self.leaf_pem, &self.intermediates_pem] {
            s.push_str(part);
            if !s.ends_with('\n') {
                s.push('\n');
            }
        }
        if include_ca {
            s.push_str(&self.root_pem);
        }
        s
    }
}

/// Anything that can sign leaves: the built-in CA, or an online step-ca.
pub trait LeafIssuer {
    fn identity(&self) -> IssuerIdentity;
    fn issue(&self, req: &LeafRequest<'_>, now: SystemTime) -> Result<IssuedLeaf, PkiError>;
}

/// Seconds since the epoch (negative before 1970).
pub fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

pub(crate) fn offset_time(unix: i64) -> Result<OffsetDateTime, PkiError> {
    OffsetDateTime::from_unix_timestamp(unix).map_err(|e| PkiError::InvalidOption {
        option: "validity",
        reason: e.to_string(),
    })
}

fn bad_san(req: &LeafRequest<'_>, san: &str, reason: impl Into<String>) -> PkiError {
    PkiError::InvalidSan {
        common_name: req.common_name.to_string(),
        san: san.to_string(),
        reason: reason.into(),
    }
}

/// Check one DNS name: LDH labels, `*` only as the whole leftmost label of a name with at
/// least two more labels, never in a client certificate.
fn check_dns(req: &LeafRequest<'_>, name: &str) -> Result<(), PkiError> {
    if name.is_empty() || name.len() > 253 {
        return Err(bad_san(req, name, "DNS names are 1–253 characters"));
    }
    let labels: Vec<&str> = name.split('.').collect();
    for (i, l) in labels.iter().enumerate() {
        if *l == "*" {
            if i != 0 {
                return Err(bad_san(
                    req,
                    name,
                    "`*` is allowed only as the leftmost label",
                ));
            }
            if labels.len() < 3 {
                return Err(bad_san(
                    req,
                    name,
                    "a wildcard needs at least two labels after `*.` (e.g. *.internal.example)",
                ));
            }
            if req.kind == CertKind::Client {
                return Err(bad_san(
                    req,
                    name,
                    "client certificates cannot be wildcards",
                ));
            }
            continue;
        }
        if l.contains('*') {
            return Err(bad_san(
                req,
                name,
                "a wildcard must be a whole label (`*.`)",
            ));
        }
        let ldh = l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if l.is_empty() || l.len() > 63 || !ldh || l.starts_with('-') || l.ends_with('-') {
            return Err(bad_san(
                req,
                name,
                format!(
                    "label `{}` is not 1–63 letters, digits or inner hyphens",
                    l.escape_debug()
                ),
            ));
        }
    }
    Ok(())
}

/// Reject what no issuer should sign.
pub fn validate_request(req: &LeafRequest<'_>) -> Result<(), PkiError> {
    let cn = req.common_name;
    if cn.is_empty() || cn.len() > 64 || cn.chars().any(char::is_control) {
        return Err(bad_san(
            req,
            cn,
            "the common name must be 1–64 printable characters",
        ));
    }
    if cn.contains('*') {
        check_dns(req, cn)?;
    }
    for s in req.sans {
        match s {
            San::Dns(d) => check_dns(req, d)?,
            San::Ip(ip) if ip.is_unspecified() => {
                return Err(bad_san(
                    req,
                    &ip.to_string(),
                    "the unspecified address is not a SAN",
                ));
            }
            San::Ip(_) => {}
        }
    }
    if req.kind == CertKind::Server && req.sans.is_empty() {
        return Err(bad_san(
            req,
            cn,
            "a server certificate needs at least one DNS or IP SAN (clients ignore the CN)",
        ));
    }
    if req.lifetime_hours == 0 {
        return Err(PkiError::InvalidOption {
            option: "lifetime_hours",
            reason: "must be at least 1".to_string(),
        });
    }
    Ok(())
}

/// X.509 parameters of a leaf: CN, SANs, CA:FALSE, SKI, AKI, digitalSignature, EKU by kind,
/// validity `[now - 60 s, now + lifetime]`, the given serial.
pub fn leaf_params(
    req: &LeafRequest<'_>,
    serial: [u8; 16],
    now_unix: i64,
) -> Result<CertificateParams, PkiError> {
    validate_request(req)?;
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, req.common_name);
    p.distinguished_name = dn;
    p.subject_alt_names = req
        .sans
        .iter()
        .map(|s| match s {
            San::Dns(d) => rcgen::string::Ia5String::try_from(d.as_str())
                .map(SanType::DnsName)
                .map_err(|e| bad_san(req, d, e.to_string())),
            San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
        })
        .collect::<Result<_, _>>()?;
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    p.not_before = offset_time(now_unix - BACKDATE_SECONDS)?;
    p.not_after = offset_time(now_unix + i64::from(req.lifetime_hours) * 3600)?;
    // ExplicitNoCa writes basicConstraints CA:FALSE and the SKI.
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![match req.kind {
        CertKind::Server => ExtendedKeyUsagePurpose::ServerAuth,
        CertKind::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}
