//! The JWK provisioner key and step-ca's one-time token (OTT): an ES256 JWS in compact
//! serialization, made by hand with ring (RFC 7515 §3.1, RFC 7518 §3.4: the signature is the
//! fixed-size `r || s`). Key thumbprints per RFC 7638. No I/O; randomness from ring's
//! `SystemRandom` (the `jti`, key generation).
//!
//! Provisioner key files: the unencrypted JWK step writes
//! (`{"kty":"EC","crv":"P-256","x":…,"y":…,"d":…,"kid":…}`) or a PKCS#8 PEM. Encrypted JWE keys
//! (`step crypto jwk create` without `--no-password`) are not supported yet.

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Redacted, StepCaError};

/// Lifetime of a one-time token (step's own default).
pub const TOKEN_LIFETIME_SECS: i64 = 300;

/// The P-256 key of a JWK provisioner: signs one-time tokens. `Debug` shows name and kid only.
pub struct ProvisionerKey {
    name: String,
    kid: String,
    pair: EcdsaKeyPair,
}

impl std::fmt::Debug for ProvisionerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvisionerKey")
            .field("name", &self.name)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A freshly generated provisioner key and its private forms (to store as a secret).
#[derive(Debug)]
pub struct GeneratedProvisionerKey {
    pub key: ProvisionerKey,
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub pkcs8_pem: Redacted<Zeroizing<String>>,
    /// The private JWK in step's form (with `d` and `kid`).
    pub private_jwk: Redacted<Zeroizing<String>>,
}

/// The public half as it sits in `ca.json` (`authority.provisioners[].key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    #[serde(rename = "use")]
    pub use_: String,
    pub kty: String,
    pub kid: String,
    pub crv: String,
    pub alg: String,
    pub x: String,
    pub y: String,
}

#[derive(Deserialize)]
struct JwkFile {
    kty: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    /// Moved into a `Zeroizing` right after parsing (same heap buffer).
    d: Option<String>,
    kid: Option<String>,
    /// Present in a JWE (an encrypted key).
    protected: Option<serde_json::Value>,
    ciphertext: Option<serde_json::Value>,
}

fn key_err(reason: impl Into<String>) -> StepCaError {
    StepCaError::ProvisionerKey {
        reason: reason.into(),
    }
}

impl ProvisionerKey {
    /// A new random P-256 key for the provisioner `name`; its kid is the RFC 7638 thumbprint.
    pub fn generate(name: &str) -> Result<GeneratedProvisionerKey, StepCaError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| key_err("key generation failed"))?;
        let der = doc.as_ref();
        let key = Self::from_pkcs8_der(name, der, None)?;
        let d = Zeroizing::new(private_scalar_from_pkcs8(der)?);
        let public = key.public_jwk();
        let jwk = serde_json::json!({
            "use": "sig", "kty": "EC", "kid": public.kid, "crv": "P-256", "alg": "ES256",
            "x": public.x, "y": public.y, "d": b64url(&d[..]),
        });
        let private_jwk = Zeroizing::new(jwk.to_string());
        let pkcs8_pem = Zeroizing::new(pem_encode("PRIVATE KEY", der));
        Ok(GeneratedProvisionerKey {
            key,
            pkcs8_pem: Redacted(pkcs8_pem),
            private_jwk: Redacted(private_jwk),
        })
    }

    /// Load from a key file's contents: a private JWK (JSON) or a PKCS#8 PEM.
    pub fn from_file_contents(name: &str, contents: &str) -> Result<Self, StepCaError> {
        let trimmed = contents.trim_start();
        if trimmed.starts_with('{') {
            Self::from_jwk_json(name, trimmed)
        } else if trimmed.starts_with("-----BEGIN PRIVATE KEY-----") {
            Self::from_pkcs8_pem(name, trimmed)
        } else if trimmed.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            Err(key_err(
                "encrypted PKCS#8 provisioner keys are not supported yet; give the unencrypted key",
            ))
        } else {
            Err(key_err("expected a private JWK (JSON) or a PKCS#8 PEM"))
        }
    }

    /// A private P-256 JWK as step writes it with `--no-password --insecure`.
    pub fn from_jwk_json(name: &str, json: &str) -> Result<Self, StepCaError> {
        let jwk: JwkFile = serde_json::from_str(json)
            // serde_json's messages can quote input; give only the position (no key material).
            .map_err(|e| {
                key_err(format!(
                    "not a JWK ({:?} error at line {} column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ))
            })?;
        if jwk.protected.is_some() || jwk.ciphertext.is_some() {
            return Err(key_err(
                "encrypted (JWE) provisioner keys are not supported yet; decrypt it first \
                 (step crypto jwe decrypt) and give the plain JWK",
            ));
        }
        if jwk.kty.as_deref() != Some("EC") || jwk.crv.as_deref() != Some("P-256") {
            return Err(key_err(
                "only EC P-256 keys (kty EC, crv P-256) are supported",
            ));
        }
        let (Some(x), Some(y)) = (&jwk.x, &jwk.y) else {
            return Err(key_err("the JWK has no `x`/`y`"));
        };
        let Some(d) = jwk.d.map(Zeroizing::new) else {
            return Err(key_err(
                "the JWK has no private part `d` (a public key was given)",
            ));
        };
        let x = coordinate(x, "x")?;
        let y = coordinate(y, "y")?;
        let d = Zeroizing::new(coordinate(&d, "d")?);
        let mut public = Vec::with_capacity(65);
        public.push(4u8);
        public.extend_from_slice(&x);
        public.extend_from_slice(&y);
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &d[..],
            &public,
            &SystemRandom::new(),
        )
        .map_err(|e| key_err(format!("`d` does not match `x`/`y` ({e})")))?;
        let mut key = ProvisionerKey {
            name: name.to_owned(),
            kid: String::new(),
            pair,
        };
        key.kid = jwk.kid.unwrap_or_else(|| key.thumbprint());
        Ok(key)
    }

    /// A PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), P-256.
    pub fn from_pkcs8_pem(name: &str, pem: &str) -> Result<Self, StepCaError> {
        let der = Zeroizing::new(pem_decode("PRIVATE KEY", pem).map_err(key_err)?);
        Self::from_pkcs8_der(name, &der, None)
    }

    fn from_pkcs8_der(name: &str, der: &[u8], kid: Option<String>) -> Result<Self, StepCaError> {
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &SystemRandom::new())
                .map_err(|e| key_err(format!("not a P-256 PKCS#8 key ({e})")))?;
        let mut key = ProvisionerKey {
            name: name.to_owned(),
            kid: String::new(),
            pair,
        };
        key.kid = kid.unwrap_or_else(|| key.thumbprint());
        Ok(key)
    }

    /// Provisioner name (the token's `iss`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key id (the token header's `kid`; must equal the `kid` of the key in `ca.json`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    fn xy(&self) -> (&[u8], &[u8]) {
        let p = self.pair.public_key().as_ref();
        (&p[1..33], &p[33..65])
    }

    /// RFC 7638 thumbprint: base64url(SHA-256 of the canonical public JWK).
    pub fn thumbprint(&self) -> String {
        let (x, y) = self.xy();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            b64url(x),
            b64url(y)
        );
        b64url(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
    }

    /// The public JWK for `ca.json`.
    pub fn public_jwk(&self) -> PublicJwk {
        let (x, y) = self.xy();
        PublicJwk {
            use_: "sig".into(),
            kty: "EC".into(),
            kid: self.kid.clone(),
            crv: "P-256".into(),
            alg: "ES256".into(),
            x: b64url(x),
            y: b64url(y),
        }
    }

    /// Sign `claims` into a compact JWS: header `{"alg":"ES256","kid":…,"typ":"JWT"}`.
    pub fn sign_token(&self, claims: &TokenClaims) -> Result<OneTimeToken, StepCaError> {
        let header = serde_json::json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"});
        let payload = claims.payload(&self.name);
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(payload.to_string().as_bytes())
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| StepCaError::TokenSigning)?;
        Ok(OneTimeToken(Redacted(format!(
            "{signing_input}.{}",
            b64url(sig.as_ref())
        ))))
    }
}

/// The claims of a sign token. Time is passed in (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// `aud`: `https://<ca host>/1.0/sign`.
    pub audience: String,
    /// `sub`: the certificate's common name.
    pub subject: String,
    /// `sans`: exactly the CSR's SANs (DNS names and IP addresses as text).
    pub sans: Vec<String>,
    /// `iat` and `nbf`.
    pub issued_at: i64,
    /// `exp` = `issued_at` + this.
    pub lifetime_secs: i64,
    /// `jti`: single use; random hex.
    pub jti: String,
    /// `sha`: the root fingerprint (hex), when known.
    pub root_fingerprint: Option<String>,
}

impl TokenClaims {
    /// Claims with a fresh random `jti` and the default 5 min lifetime.
    pub fn new(
        audience: String,
        subject: String,
        sans: Vec<String>,
        issued_at: i64,
    ) -> Result<Self, StepCaError> {
        Ok(TokenClaims {
            audience,
            subject,
            sans,
            issued_at,
            lifetime_secs: TOKEN_LIFETIME_SECS,
            jti: random_jti()?,
            root_fingerprint: None,
        })
    }

    fn payload(&self, issuer: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "aud": self.audience,
            "exp": self.issued_at + self.lifetime_secs,
            "iat": self.issued_at,
            "iss": issuer,
            "jti": self.jti,
            "nbf": self.issued_at,
            "sans": self.sans,
            "sub": self.subject,
        });
        if let (Some(sha), Some(obj)) = (&self.root_fingerprint, v.as_object_mut()) {
            obj.insert("sha".into(), serde_json::Value::String(sha.clone()));
        }
        v
    }
}

/// 32 random bytes as hex.
pub fn random_jti() -> Result<String, StepCaError> {
    let mut b = [0u8; 32];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| StepCaError::TokenSigning)?;
    Ok(hex(&b))
}

/// A signed one-time token. `Debug` never shows it.
#[derive(Debug, Clone)]
pub struct OneTimeToken(Redacted<String>);

impl OneTimeToken {
    pub fn as_str(&self) -> &str {
        &self.0.0
    }
}

/// Lower-case hex SHA-256 of DER bytes: the form `step ca bootstrap --fingerprint` expects.
pub fn fingerprint_hex(der: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A 32-byte P-256 coordinate or scalar from base64url.
fn coordinate(s: &str, what: &str) -> Result<Vec<u8>, StepCaError> {
    let v = b64url_decode(s).ok_or_else(|| key_err(format!("`{what}` is not base64url")))?;
    if v.len() != 32 {
        return Err(key_err(format!("`{what}` is not a P-256 value (32 bytes)")));
    }
    Ok(v)
}

/// The private scalar of a P-256 PKCS#8 document (the `privateKey` OCTET STRING of the inner
/// ECPrivateKey, RFC 5915).
fn private_scalar_from_pkcs8(der: &[u8]) -> Result<Vec<u8>, StepCaError> {
    let info =
        pkcs8::PrivateKeyInfo::try_from(der).map_err(|e| key_err(format!("not PKCS#8 ({e})")))?;
    let ec = info.private_key;
    // SEQUENCE header (short or one/two-byte long form), then INTEGER 1, OCTET STRING (32).
    let hdr = match ec.get(1) {
        Some(l) if l & 0x80 == 0 => 2,
        Some(l) => 2 + usize::from(l & 0x7f),
        None => 0,
    };
    match ec.get(hdr..hdr + 5 + 32) {
        Some(b) if ec.first() == Some(&0x30) && b[..5] == [0x02, 0x01, 0x01, 0x04, 0x20] => {
            Ok(b[5..].to_vec())
        }
        _ => Err(key_err("unexpected ECPrivateKey layout")),
    }
}

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_encode(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

fn b64_decode(s: &str, alphabet: &[u8; 64]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = alphabet.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// base64url without padding (RFC 7515 §2).
pub fn b64url(bytes: &[u8]) -> String {
    b64_encode(bytes, B64URL, false)
}

pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    b64_decode(s, B64URL)
}

/// PEM armour (64-column base64).
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = b64_encode(der, B64STD, true);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER of the first PEM block labelled `label`.
pub fn pem_decode(label: &str, pem: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| format!("no `{begin}` block"))?;
    let body = &pem[start + begin.len()..];
    let stop = body.find(&end).ok_or_else(|| format!("no `{end}` line"))?;
    b64_decode(&body[..stop], B64STD).ok_or_else(|| "invalid base64 in PEM".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn base64url_roundtrip_and_known_values() {
        assert_eq!(b64url(b""), "");
        assert_eq!(b64url(b"f"), "Zg");
        assert_eq!(b64url(b"fo"), "Zm8");
        assert_eq!(b64url(b"foo"), "Zm9v");
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
        for n in 0..40u8 {
            let v: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(b64url_decode(&b64url(&v)).unwrap(), v);
        }
    }

    #[test]
    fn rfc7638_thumbprint_example() {
        // RFC 7638 §3.1 uses an RSA key; check the EC canonical form against a value
        // computed independently (python: base64url(sha256(canonical json))).
        let g = ProvisionerKey::generate("p").unwrap();
        let jwk: serde_json::Value = serde_json::from_str(&g.private_jwk.0).unwrap();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        assert_eq!(g.key.kid(), b64url(digest.as_ref()));
        assert_eq!(g.key.kid().len(), 43);
    }

    #[test]
    fn rfc7515_a3_key_thumbprint_known_answer() {
        // RFC 7515 appendix A.3's P-256 key; thumbprint computed independently with
        // python (hashlib.sha256 over the RFC 7638 canonical JSON).
        let jwk = r#"{"kty":"EC","crv":"P-256",
            "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
            "d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}"#;
        let key = ProvisionerKey::from_jwk_json("p", jwk).unwrap();
        assert_eq!(key.kid(), "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U");
        assert_eq!(key.thumbprint(), key.kid());
        // A kid given in the file (step writes the thumbprint) is kept as is.
        let with_kid = jwk.replacen('{', r#"{"kid":"given","#, 1);
        assert_eq!(
            ProvisionerKey::from_jwk_json("p", &with_kid).unwrap().kid(),
            "given"
        );
        // A `d` that does not belong to x/y is refused.
        let wrong_d = jwk.replace("jpsQ", "kpsQ");
        assert!(ProvisionerKey::from_jwk_json("p", &wrong_d).is_err());
    }

    #[test]
    fn jwk_and_pkcs8_forms_load_to_the_same_key() {
        let g = ProvisionerKey::generate("admin@example").unwrap();
        let from_jwk =
            ProvisionerKey::from_file_contents("admin@example", &g.private_jwk.0).unwrap();
        let from_pem = ProvisionerKey::from_file_contents("admin@example", &g.pkcs8_pem.0).unwrap();
        assert_eq!(from_jwk.public_jwk(), g.key.public_jwk());
        assert_eq!(from_pem.public_jwk(), g.key.public_jwk());
        assert_eq!(from_jwk.kid(), g.key.thumbprint());
    }

    #[test]
    fn encrypted_and_public_keys_are_refused() {
        let jwe = r#"{"protected":"eyJ","encrypted_key":"x","iv":"y","ciphertext":"z","tag":"t"}"#;
        let e = ProvisionerKey::from_file_contents("p", jwe).unwrap_err();
        assert!(e.to_string().contains("not supported yet"), "{e}");
        let g = ProvisionerKey::generate("p").unwrap();
        let mut jwk: serde_json::Value = serde_json::from_str(&g.private_jwk.0).unwrap();
        jwk.as_object_mut().unwrap().remove("d");
        let e = ProvisionerKey::from_jwk_json("p", &jwk.to_string()).unwrap_err();
        assert!(e.to_string().contains("no private part"), "{e}");
    }

    #[test]
    fn token_verifies_and_has_the_claims() {
        let g = ProvisionerKey::generate("admin").unwrap();
        let claims = TokenClaims::new(
            "https://ca.example:9000/1.0/sign".into(),
            "svc.example".into(),
            vec!["svc.example".into(), "10.0.0.5".into()],
            1_700_000_000,
        )
        .unwrap();
        let ott = g.key.sign_token(&claims).unwrap();
        let parts: Vec<&str> = ott.as_str().split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&b64url_decode(parts[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg":"ES256","kid": g.key.kid(),"typ":"JWT"})
        );
        let payload: serde_json::Value =
            serde_json::from_slice(&b64url_decode(parts[1]).unwrap()).unwrap();
        assert_eq!(payload["iss"], "admin");
        assert_eq!(payload["sub"], "svc.example");
        assert_eq!(payload["exp"], 1_700_000_300);
        assert_eq!(payload["nbf"], 1_700_000_000);
        assert_eq!(payload["jti"].as_str().unwrap().len(), 64);
        assert!(payload.get("sha").is_none());
        let public = g.key.pair.public_key().as_ref().to_vec();
        let sig = b64url_decode(parts[2]).unwrap();
        assert_eq!(sig.len(), 64);
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, public)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        assert_eq!(format!("{ott:?}"), "OneTimeToken([redacted])");
        assert!(!format!("{g:?}").contains("PRIVATE"));
    }

    #[test]
    fn pem_roundtrip() {
        let der: Vec<u8> = (0..200u8).collect();
        let pem = pem_encode("CERTIFICATE", &der);
        assert_eq!(pem_decode("CERTIFICATE", &pem).unwrap(), der);
        assert!(pem_decode("PRIVATE KEY", &pem).is_err());
    }
}
