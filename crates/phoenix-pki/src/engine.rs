//! The manifest engine's decision: for one manifest entry and what already sits at its
//! destination, issue (missing), renew (and why) or keep. Pure: no files, no clock (time is a
//! parameter), no randomness. Running it on the output of an issuance keeps everything.

use std::collections::BTreeSet;
use std::fmt;
use std::time::SystemTime;

use phoenix_model::model::{CertKind, Certificate, San};
use rcgen::PublicKeyData;
use serde::Serialize;

use crate::inspect::{self, KeyAlgorithm, LeafInfo};
use crate::issue::{IssuerIdentity, unix_seconds};

/// When to renew.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RenewalPolicy {
    /// Renew once this fraction of the validity period has elapsed (default 2/3, like
    /// step-ca's renewal daemon). 0 < fraction ≤ 1.
    pub renew_after_fraction: f64,
}

impl Default for RenewalPolicy {
    fn default() -> RenewalPolicy {
        RenewalPolicy {
            renew_after_fraction: 2.0 / 3.0,
        }
    }
}

impl RenewalPolicy {
    /// The moment a certificate valid `[not_before, not_after]` enters its renewal window.
    pub fn renew_at(&self, not_before: i64, not_after: i64) -> i64 {
        let f = self.renew_after_fraction.clamp(0.0, 1.0);
        let span = (not_after - not_before).max(0) as f64;
        not_before + (span * f) as i64
    }
}

/// What is at the destination now.
#[derive(Debug, Clone, Copy, Default)]
pub struct Existing<'a> {
    /// The certificate file's text (leaf first).
    pub cert_pem: Option<&'a str>,
    /// The key file's text; never stored, never printed.
    pub key_pem: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum IssueReason {
    /// No certificate at the destination.
    Missing,
}

/// Why an existing certificate is replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum RenewReason {
    Unparseable {
        error: String,
    },
    Expired {
        not_after: String,
    },
    RenewalWindow {
        renew_at: String,
        not_after: String,
    },
    CommonNameDiffers {
        have: Option<String>,
        want: String,
    },
    SansDiffer {
        missing: Vec<String>,
        unexpected: Vec<String>,
    },
    /// Signed by another intermediate (after a rotation, or a different CA).
    IssuerChanged {
        have: Option<String>,
        want: String,
    },
    KeyTypeChanged {
        have: String,
        want: String,
    },
    UsageChanged {
        have: Option<String>,
        want: String,
    },
    KeyMissing,
    KeyMismatch,
}

/// The decision for one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Decision {
    Issue { reason: IssueReason },
    Renew { reasons: Vec<RenewReason> },
    Keep { renew_at: String, not_after: String },
}

impl Decision {
    pub fn is_keep(&self) -> bool {
        matches!(self, Decision::Keep { .. })
    }
}

fn kind_name(k: CertKind) -> &'static str {
    match k {
        CertKind::Server => "server",
        CertKind::Client => "client",
    }
}

impl fmt::Display for RenewReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenewReason::Unparseable { error } => {
                write!(f, "existing certificate unreadable ({error})")
            }
            RenewReason::Expired { not_after } => write!(f, "expired at {not_after}"),
            RenewReason::RenewalWindow {
                renew_at,
                not_after,
            } => {
                write!(
                    f,
                    "inside renewal window since {renew_at} (expires {not_after})"
                )
            }
            RenewReason::CommonNameDiffers { have, want } => {
                write!(
                    f,
                    "common name {} ≠ {want}",
                    have.as_deref().unwrap_or("(none)")
                )
            }
            RenewReason::SansDiffer {
                missing,
                unexpected,
            } => {
                write!(
                    f,
                    "SANs differ (missing: [{}], unexpected: [{}])",
                    missing.join(", "),
                    unexpected.join(", ")
                )
            }
            RenewReason::IssuerChanged { have, want } => write!(
                f,
                "issuer changed (signed by key {}, current intermediate {want})",
                have.as_deref().unwrap_or("(no AKI)")
            ),
            RenewReason::KeyTypeChanged { have, want } => write!(f, "key type {have} ≠ {want}"),
            RenewReason::UsageChanged { have, want } => {
                write!(f, "usage {} ≠ {want}", have.as_deref().unwrap_or("(none)"))
            }
            RenewReason::KeyMissing => f.write_str("key file missing"),
            RenewReason::KeyMismatch => f.write_str("key file does not match the certificate"),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Issue { .. } => f.write_str("issue (missing)"),
            Decision::Renew { reasons } => {
                f.write_str("renew (")?;
                for (i, r) in reasons.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{r}")?;
                }
                f.write_str(")")
            }
            Decision::Keep { renew_at, .. } => write!(f, "keep (renew after {renew_at})"),
        }
    }
}

/// The text form of a SAN: `DNS:name` or `IP:address`.
pub fn san_text(s: &San) -> String {
    match s {
        San::Dns(d) => format!("DNS:{d}"),
        San::Ip(i) => format!("IP:{i}"),
    }
}

/// Read a SAN an observer reported: `DNS:name`, `IP:address`, or bare (an address if it parses
/// as one, else a DNS name). DNS names are lower-cased, as [`inspect::parse_leaf_der`] does.
pub fn san_from_text(text: &str) -> San {
    let t = text.trim();
    if let Some(d) = t.strip_prefix("DNS:") {
        return San::Dns(d.to_ascii_lowercase());
    }
    let ip = t.strip_prefix("IP:").unwrap_or(t);
    match ip.parse() {
        Ok(ip) => San::Ip(ip),
        Err(_) => San::Dns(t.to_ascii_lowercase()),
    }
}

/// Compare an existing leaf with the entry; every difference is a reason.
fn differences(
    entry: &Certificate,
    info: &LeafInfo,
    issuer: &IssuerIdentity,
    now: i64,
    policy: &RenewalPolicy,
) -> Vec<RenewReason> {
    let mut reasons = Vec::new();
    let renew_at = policy.renew_at(info.not_before, info.not_after);
    if now >= info.not_after {
        reasons.push(RenewReason::Expired {
            not_after: inspect::rfc3339(info.not_after),
        });
    } else if now >= renew_at {
        reasons.push(RenewReason::RenewalWindow {
            renew_at: inspect::rfc3339(renew_at),
            not_after: inspect::rfc3339(info.not_after),
        });
    }
    if info.common_name.as_deref() != Some(entry.common_name.as_str()) {
        reasons.push(RenewReason::CommonNameDiffers {
            have: info.common_name.clone(),
            want: entry.common_name.clone(),
        });
    }
    let want: BTreeSet<San> = entry
        .sans
        .iter()
        .map(|s| match s {
            San::Dns(d) => San::Dns(d.to_ascii_lowercase()),
            ip => ip.clone(),
        })
        .collect();
    if want != info.sans {
        reasons.push(RenewReason::SansDiffer {
            missing: want.difference(&info.sans).map(san_text).collect(),
            unexpected: info.sans.difference(&want).map(san_text).collect(),
        });
    }
    if info.authority_key_id.as_deref() != Some(issuer.intermediate_key_id.as_str()) {
        reasons.push(RenewReason::IssuerChanged {
            have: info.authority_key_id.clone(),
            want: issuer.intermediate_key_id.clone(),
        });
    }
    if info.key_algorithm != KeyAlgorithm::EcdsaP256 {
        let have = match &info.key_algorithm {
            KeyAlgorithm::Other(o) => o.clone(),
            KeyAlgorithm::EcdsaP256 => String::new(),
        };
        reasons.push(RenewReason::KeyTypeChanged {
            have,
            want: "ECDSA P-256".to_string(),
        });
    }
    if info.kind != Some(entry.kind) {
        reasons.push(RenewReason::UsageChanged {
            have: info.kind.map(|k| kind_name(k).to_string()),
            want: kind_name(entry.kind).to_string(),
        });
    }
    reasons
}

/// Does the key file hold the private key of the certificate's public key?
pub fn key_matches(key_pem: &str, info: &LeafInfo) -> bool {
    rcgen::KeyPair::from_pem(key_pem).is_ok_and(|k| k.der_bytes() == info.public_key.as_slice())
}

/// What is known about the key file next to an existing certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// The key file holds the certificate's private key.
    Matches,
    /// There is a key file, but for another public key.
    Mismatch,
    /// No key file.
    Missing,
    /// Not looked at (an observer that does not read key files): not compared.
    NotObserved,
}

/// Issue, renew or keep `entry`, given what exists, who issues now and the time.
pub fn decide(
    entry: &Certificate,
    existing: &Existing<'_>,
    issuer: &IssuerIdentity,
    now: SystemTime,
    policy: &RenewalPolicy,
) -> Decision {
    let Some(cert_pem) = existing.cert_pem else {
        return missing();
    };
    let info = match inspect::parse_leaf_pem(cert_pem) {
        Ok(i) => i,
        Err(e) => {
            return Decision::Renew {
                reasons: vec![RenewReason::Unparseable {
                    error: e.to_string(),
                }],
            };
        }
    };
    // The key is parsed only when nothing else already forces a renewal.
    decide_with(
        entry,
        &info,
        issuer,
        unix_seconds(now),
        policy,
        |others| match existing.key_pem {
            None => KeyState::Missing,
            Some(_) if others => KeyState::NotObserved,
            Some(k) if key_matches(k, &info) => KeyState::Matches,
            Some(_) => KeyState::Mismatch,
        },
    )
}

/// The same decision from facts an observer reported instead of the files themselves (the
/// planner's path: `phoenix_plan` maps its `ObservedCertificate` into a [`LeafInfo`]).
/// `leaf = None` means no certificate at the destination. `now` is unix seconds.
pub fn decide_leaf(
    entry: &Certificate,
    leaf: Option<&LeafInfo>,
    key: KeyState,
    issuer: &IssuerIdentity,
    now: i64,
    policy: &RenewalPolicy,
) -> Decision {
    match leaf {
        None => missing(),
        Some(info) => decide_with(entry, info, issuer, now, policy, |_| key),
    }
}

fn missing() -> Decision {
    Decision::Issue {
        reason: IssueReason::Missing,
    }
}

/// The one decision rule: every difference is a reason; none → keep.
fn decide_with(
    entry: &Certificate,
    info: &LeafInfo,
    issuer: &IssuerIdentity,
    now: i64,
    policy: &RenewalPolicy,
    key: impl FnOnce(bool) -> KeyState,
) -> Decision {
    let mut reasons = differences(entry, info, issuer, now, policy);
    match key(!reasons.is_empty()) {
        KeyState::Missing => reasons.push(RenewReason::KeyMissing),
        KeyState::Mismatch => reasons.push(RenewReason::KeyMismatch),
        KeyState::Matches | KeyState::NotObserved => {}
    }
    if reasons.is_empty() {
        Decision::Keep {
            renew_at: inspect::rfc3339(policy.renew_at(info.not_before, info.not_after)),
            not_after: inspect::rfc3339(info.not_after),
        }
    } else {
        Decision::Renew { reasons }
    }
}
