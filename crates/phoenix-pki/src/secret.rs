//! Wrappers for key material and passphrases: zeroized on drop, `Debug` redacted, no `Display`
//! and no `Serialize`, so they cannot end up in plans, logs or JSON output. No I/O.

use std::fmt;

use zeroize::Zeroizing;

/// A private key in PEM form (plain PKCS#8 `PRIVATE KEY` or `ENCRYPTED PRIVATE KEY`).
#[derive(Clone)]
pub struct KeyPem(Zeroizing<String>);

impl KeyPem {
    pub fn new(pem: String) -> KeyPem {
        KeyPem(Zeroizing::new(pem))
    }

    /// The PEM text, for writing it to a key file or handing it to a TLS library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyPem(<redacted>)")
    }
}

/// A passphrase that protects the CA keys, as bytes resolved by the caller (env/file secret).
#[derive(Clone)]
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Passphrase {
        Passphrase(Zeroizing::new(bytes.into()))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}
