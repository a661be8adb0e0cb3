//! Chain and name checks with rustls-webpki (ring): does this leaf, with these intermediates,
//! chain to one of these roots at this time, for this usage, and is it valid for this DNS
//! name or IP address? Pure.

use std::time::SystemTime;

use phoenix_model::model::CertKind;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::inspect;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no certificate in {what}")]
    Missing { what: &'static str },
    #[error("cannot read {what}: {reason}")]
    Parse { what: &'static str, reason: String },
    #[error("`{name}` is neither a DNS name nor an IP address")]
    BadName { name: String },
    #[error("chain does not verify: {reason}")]
    Chain { reason: String },
    #[error("certificate is not valid for `{name}`: {reason}")]
    Name { name: String, reason: String },
}

/// Verify DER certificates.
pub fn verify(
    leaf: &[u8],
    intermediates: &[&[u8]],
    roots: &[&[u8]],
    name_or_ip: &str,
    kind: CertKind,
    now: SystemTime,
) -> Result<(), VerifyError> {
    let leaf = CertificateDer::from(leaf);
    let ee = webpki::EndEntityCert::try_from(&leaf).map_err(|e| VerifyError::Parse {
        what: "leaf",
        reason: e.to_string(),
    })?;
    let root_ders: Vec<CertificateDer<'_>> =
        roots.iter().map(|r| CertificateDer::from(*r)).collect();
    let anchors = root_ders
        .iter()
        .map(|r| {
            webpki::anchor_from_trusted_cert(r).map_err(|e| VerifyError::Parse {
                what: "root",
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let inter: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|i| CertificateDer::from(*i))
        .collect();
    let time = UnixTime::since_unix_epoch(
        now.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    let usage = match kind {
        CertKind::Server => webpki::KeyUsage::server_auth(),
        CertKind::Client => webpki::KeyUsage::client_auth(),
    };
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &inter,
        time,
        usage,
        None,
        None,
    )
    .map_err(|e| VerifyError::Chain {
        reason: format!("{e:?}"),
    })?;
    let name = ServerName::try_from(name_or_ip).map_err(|_| VerifyError::BadName {
        name: name_or_ip.to_string(),
    })?;
    ee.verify_is_valid_for_subject_name(&name)
        .map_err(|e| VerifyError::Name {
            name: name_or_ip.to_string(),
            reason: format!("{e:?}"),
        })
}

/// Verify PEM text: `chain_pem` = leaf first, then intermediates (a root in it is ignored
/// unless also given in `roots_pem`); `roots_pem` = one or more trusted roots.
pub fn verify_pem(
    chain_pem: &str,
    roots_pem: &str,
    name_or_ip: &str,
    kind: CertKind,
    now: SystemTime,
) -> Result<(), VerifyError> {
    let parse = |what, text: &str| {
        inspect::pem_certificates(text).map_err(|e| VerifyError::Parse {
            what,
            reason: e.to_string(),
        })
    };
    let chain = parse("chain", chain_pem)?;
    let roots = parse("roots", roots_pem)?;
    let (leaf, rest) = chain
        .split_first()
        .ok_or(VerifyError::Missing { what: "chain" })?;
    if roots.is_empty() {
        return Err(VerifyError::Missing { what: "roots" });
    }
    let inter: Vec<&[u8]> = rest.iter().map(Vec::as_slice).collect();
    let roots: Vec<&[u8]> = roots.iter().map(Vec::as_slice).collect();
    verify(leaf, &inter, &roots, name_or_ip, kind, now)
}
