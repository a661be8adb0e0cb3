//! rustls client configurations with the ring provider only (never aws-lc): trust exactly one
//! CA file, pin the leaf's SHA-256 fingerprint, or — behind an explicit option that logs a loud
//! warning — accept any certificate. Reads the CA file; no network.
//!
//! Pinning still verifies the handshake signature with the provider's algorithms, so a peer
//! that merely replays the pinned certificate without its key is refused.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::PveError;

/// How the server certificate is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsTrust {
    /// Only the CA(s) in this PEM file (PVE: `/etc/pve/pve-root-ca.pem`).
    CaFile(std::path::PathBuf),
    /// The leaf certificate's SHA-256 over its DER, 32 bytes.
    Fingerprint([u8; 32]),
    /// No verification at all. Only for throw-away test nodes.
    InsecureAcceptAny,
}

/// The ring provider, the only one phoenix uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parse `AA:BB:…` (or plain hex) into 32 bytes.
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// `AA:BB:…` upper-case, as `pvenode cert info` prints it.
pub fn format_fingerprint(fp: &[u8; 32]) -> String {
    fp.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// SHA-256 of a DER certificate.
pub fn der_fingerprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

fn tls_error(message: impl Into<String>) -> PveError {
    PveError::Tls {
        message: message.into(),
    }
}

/// Build the client configuration for `trust`.
pub fn client_config(trust: &TlsTrust) -> Result<ClientConfig, PveError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?;
    let config = match trust {
        TlsTrust::CaFile(path) => builder
            .with_root_certificates(root_store(path)?)
            .with_no_client_auth(),
        TlsTrust::Fingerprint(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(LeafVerifier {
                pin: Some(*fp),
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        TlsTrust::InsecureAcceptAny => {
            tracing::warn!(
                "TLS VERIFICATION DISABLED: the Proxmox API certificate is not checked; anyone on \
                 the path can read the API token and change the node. Use a CA file or a pinned \
                 fingerprint instead"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(LeafVerifier {
                    pin: None,
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

fn root_store(path: &Path) -> Result<RootCertStore, PveError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_error(format!("{}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_error(format!(
            "{}: no certificate in the file",
            path.display()
        )));
    }
    let mut store = RootCertStore::empty();
    for cert in certs {
        store
            .add(cert)
            .map_err(|e| tls_error(format!("{}: {e}", path.display())))?;
    }
    Ok(store)
}

/// A verifier for the two non-CA trust modes: with a pin it accepts exactly the leaf whose DER
/// hashes to it (name and dates are not checked: the pin is the identity, as with `ssh` host
/// keys and PVE's own cluster join); without one it accepts any certificate. Handshake
/// signatures are checked either way.
#[derive(Debug)]
struct LeafVerifier {
    pin: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for LeafVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(pin) = self.pin else {
            return Ok(ServerCertVerified::assertion());
        };
        let got = der_fingerprint(end_entity.as_ref());
        // Not secret material: a plain comparison is fine.
        if got == pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "server certificate fingerprint {} does not match the pinned {}",
                format_fingerprint(&got),
                format_fingerprint(&pin)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_round_trip() {
        let fp = der_fingerprint(b"x");
        let text = format_fingerprint(&fp);
        assert_eq!(parse_fingerprint(&text), Some(fp));
        assert_eq!(
            parse_fingerprint(&text.replace(':', "").to_lowercase()),
            Some(fp)
        );
        assert_eq!(parse_fingerprint("AB:CD"), None);
        assert_eq!(parse_fingerprint(&"zz".repeat(32)), None);
    }

    #[test]
    fn missing_ca_file_is_a_tls_error() {
        let err = client_config(&TlsTrust::CaFile("/nonexistent/ca.pem".into()));
        assert!(matches!(err, Err(PveError::Tls { .. })));
    }
}
