//! CA private keys on disk: plain PKCS#8 `PRIVATE KEY` PEM, or — with a passphrase —
//! PKCS#8 `ENCRYPTED PRIVATE KEY` (PBES2: PBKDF2-HMAC-SHA256 + AES-256-CBC, RFC 8018), the
//! format `openssl pkey` and step-ca read. Encryption uses the RustCrypto `pkcs8`/`pkcs5`
//! crates (pure Rust, no aws-lc); salt and IV come from ring's `SystemRandom`. Pure apart from
//! randomness.

use std::path::Path;

use pkcs8::pkcs5::pbes2;
use pkcs8::{EncryptedPrivateKeyInfo, LineEnding, PrivateKeyInfo};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use ring::rand::SecureRandom;

use crate::error::PkiError;
use crate::secret::{KeyPem, Passphrase};

/// OWASP's 2023 figure for PBKDF2-HMAC-SHA256.
pub const DEFAULT_KDF_ITERATIONS: u32 = 600_000;

const PLAIN_LABEL: &str = "PRIVATE KEY";
const ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";

fn enc_err(e: impl std::fmt::Display) -> PkiError {
    PkiError::Encrypt {
        reason: e.to_string(),
    }
}

/// Serialise `key` for a key file, encrypted when a passphrase is given.
pub(crate) fn encode(
    key: &KeyPair,
    passphrase: Option<&Passphrase>,
    iterations: u32,
) -> Result<KeyPem, PkiError> {
    let Some(pass) = passphrase else {
        return Ok(KeyPem::new(key.serialize_pem()));
    };
    let der = zeroize::Zeroizing::new(key.serialize_der());
    let info = PrivateKeyInfo::try_from(der.as_slice()).map_err(enc_err)?;
    let rng = ring::rand::SystemRandom::new();
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    rng.fill(&mut salt).map_err(|_| PkiError::Random)?;
    rng.fill(&mut iv).map_err(|_| PkiError::Random)?;
    let params =
        pbes2::Parameters::pbkdf2_sha256_aes256cbc(iterations, &salt, &iv).map_err(enc_err)?;
    let doc = info
        .encrypt_with_params(params, pass.expose())
        .map_err(enc_err)?;
    let pem = doc
        .to_pem(ENCRYPTED_LABEL, LineEnding::LF)
        .map_err(enc_err)?;
    Ok(KeyPem::new(pem.to_string()))
}

/// Read a key file's text into an ECDSA P-256 key pair.
pub(crate) fn decode(
    path: &Path,
    pem: &str,
    passphrase: Option<&Passphrase>,
) -> Result<KeyPair, PkiError> {
    let bad = |reason: &str| PkiError::BadCaFile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let (label, doc) =
        pkcs8::der::Document::from_pem(pem).map_err(|_| bad("not a PEM private key"))?;
    let plain = match label {
        PLAIN_LABEL => zeroize::Zeroizing::new(doc.as_bytes().to_vec()),
        ENCRYPTED_LABEL => {
            let pass = passphrase.ok_or_else(|| PkiError::PassphraseRequired {
                path: path.to_path_buf(),
            })?;
            let enc = EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
                .map_err(|_| bad("damaged encrypted private key"))?;
            let secret = enc.decrypt(pass.expose()).map_err(|_| PkiError::Decrypt {
                path: path.to_path_buf(),
            })?;
            zeroize::Zeroizing::new(secret.as_bytes().to_vec())
        }
        _ => {
            return Err(bad(
                "expected a PKCS#8 PRIVATE KEY or ENCRYPTED PRIVATE KEY",
            ));
        }
    };
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from(plain.as_slice());
    KeyPair::from_pkcs8_der_and_sign_algo(&der, &PKCS_ECDSA_P256_SHA256)
        .map_err(|_| bad("not an ECDSA P-256 key"))
}

/// Is this key file encrypted?
pub(crate) fn is_encrypted(pem: &str) -> bool {
    pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
}
