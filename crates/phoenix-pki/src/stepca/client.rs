//! The step-ca API client: trust only the CA's root (given as a file and optionally checked
//! against a pinned fingerprint, or bootstrapped from `/root/<sha256>` by fingerprint), sign a
//! CSR for a fresh P-256 key with a JWK one-time token, renew over mTLS. Blocking network I/O
//! (see [`super::http`]); time is passed in.

use std::sync::Arc;
use std::time::Duration;

use super::StepCaError;
use super::http::{self, CaUrl, Response};
use super::jws::{OneTimeToken, ProvisionerKey, TokenClaims, fingerprint_hex};
use crate::secret::KeyPem;
use phoenix_model::model::San;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use serde::Deserialize;
use time::OffsetDateTime;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// What to ask the CA for: the common name (the token's `sub`) and the SANs (exactly the
/// token's `sans`; step-ca copies them into the certificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrRequest {
    pub common_name: String,
    pub sans: Vec<San>,
}

/// What `/1.0/sign` and `/1.0/renew` return, checked to chain to the trusted root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateChain {
    /// The leaf certificate (PEM).
    pub certificate_pem: String,
    /// Leaf followed by the intermediate(s) (`certChain`), PEM: the server's certificate file.
    pub chain_pem: String,
    /// The issuing CA certificate (`ca`), PEM.
    pub issuer_pem: String,
    /// The intermediate(s) without the leaf, issuer first, PEM.
    pub intermediates_pem: String,
}

/// A certificate issued (or renewed) by step-ca, with its key and the trusted root.
#[derive(Debug, Clone)]
pub struct IssuedChain {
    /// The leaf certificate (PEM).
    pub certificate_pem: String,
    /// Leaf followed by the intermediate(s), PEM.
    pub chain_pem: String,
    /// The issuing CA certificate, PEM.
    pub issuer_pem: String,
    /// The intermediate(s) without the leaf, issuer first, PEM.
    pub intermediates_pem: String,
    /// The step-ca root the chain was checked against, PEM.
    pub root_pem: String,
    /// The leaf's private key (PKCS#8 PEM; `Debug` redacted).
    pub key: KeyPem,
}

impl IssuedChain {
    fn new(c: CertificateChain, key: KeyPem, root_pem: String) -> Self {
        IssuedChain {
            certificate_pem: c.certificate_pem,
            chain_pem: c.chain_pem,
            issuer_pem: c.issuer_pem,
            intermediates_pem: c.intermediates_pem,
            root_pem,
            key,
        }
    }
}

#[derive(Deserialize)]
struct SignResponse {
    crt: String,
    ca: String,
    #[serde(rename = "certChain", default)]
    cert_chain: Vec<String>,
}

#[derive(Deserialize)]
struct RootResponse {
    ca: String,
}

#[derive(Deserialize)]
struct ErrorResponse {
    message: Option<String>,
}

/// A client for one step-ca, trusting only its root.
#[derive(Debug, Clone)]
pub struct StepCaClient {
    url: CaUrl,
    root: CertificateDer<'static>,
    tls: Arc<ClientConfig>,
    timeout: Duration,
}

impl StepCaClient {
    /// `url` = `https://host:port`; `root_pem` = the CA's root certificate (e.g. the
    /// `--step-ca-root FILE`). Only this root is trusted.
    pub fn new(url: &str, root_pem: &str) -> Result<Self, StepCaError> {
        let url = CaUrl::parse(url)?;
        let root = first_cert(root_pem, "the step-ca root")?;
        Self::with_root(url, root)
    }

    /// Like [`StepCaClient::new`], and the root's SHA-256 must equal `fingerprint` (hex; `:`
    /// and `-` separators and case ignored).
    pub fn new_pinned(url: &str, root_pem: &str, fingerprint: &str) -> Result<Self, StepCaError> {
        let client = Self::new(url, root_pem)?;
        check_fingerprint(&client.root, fingerprint)?;
        Ok(client)
    }

    /// Fetch the root from `GET /root/<fingerprint>` without verifying the server (the only
    /// unverified request), accept it only if its SHA-256 equals `fingerprint`, then trust
    /// only that root — `step ca bootstrap`'s model.
    pub fn bootstrap(url: &str, fingerprint: &str) -> Result<Self, StepCaError> {
        let url = CaUrl::parse(url)?;
        let fp = normalize_fingerprint(fingerprint);
        let path = format!("/root/{fp}");
        let resp = http::request(
            http::unverified(&url.host)?,
            &url,
            "GET",
            &path,
            None,
            DEFAULT_TIMEOUT,
        )?;
        let root: RootResponse = json_ok("GET", &path, resp)?;
        let root = first_cert(&root.ca, "the root returned by step-ca")?;
        check_fingerprint(&root, &fp)?;
        Self::with_root(url, root)
    }

    fn with_root(url: CaUrl, root: CertificateDer<'static>) -> Result<Self, StepCaError> {
        let tls = http::trust_only(&url.host, &root, None)?;
        Ok(StepCaClient {
            url,
            root,
            tls,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Per-request connect/read/write timeout (default 15 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Hex SHA-256 of the trusted root (what `step ca bootstrap --fingerprint` takes).
    pub fn root_fingerprint(&self) -> String {
        fingerprint_hex(&self.root)
    }

    /// The trusted root, PEM.
    pub fn root_pem(&self) -> String {
        super::jws::pem_encode("CERTIFICATE", &self.root)
    }

    /// `https://host:port/1.0/sign`: the audience of sign tokens.
    pub fn sign_audience(&self) -> String {
        format!("{}/1.0/sign", self.url.base())
    }

    /// `GET /health` answers `{"status":"ok"}`.
    pub fn health(&self) -> Result<(), StepCaError> {
        #[derive(Deserialize)]
        struct Health {
            status: String,
        }
        let resp = self.call("GET", "/health", None)?;
        let h: Health = json_ok("GET", "/health", resp)?;
        if h.status == "ok" {
            Ok(())
        } else {
            Err(StepCaError::Protocol {
                method: "GET",
                path: "/health".into(),
                reason: format!("status `{}`", h.status),
            })
        }
    }

    /// Lower-case hex key id of step-ca's current intermediate: the AKI of the TLS
    /// certificate step-ca serves (it signs its own server certificate with the intermediate
    /// that signs leaves). What the renewal engine compares existing leaves' AKI against.
    pub fn intermediate_key_id(&self) -> Result<String, StepCaError> {
        let resp = self.call("GET", "/health", None)?;
        let bad = |reason: String| StepCaError::Protocol {
            method: "GET",
            path: "/health".into(),
            reason,
        };
        let leaf = resp
            .peer_chain
            .first()
            .ok_or_else(|| bad("no server certificate".into()))?;
        let info = crate::inspect::parse_leaf_der(leaf)
            .map_err(|e| bad(format!("server certificate: {e}")))?;
        info.authority_key_id
            .ok_or_else(|| bad("server certificate has no authority key identifier".into()))
    }

    /// `GET /root/<fingerprint>` over the verified connection (PEM).
    pub fn fetch_root(&self, fingerprint: &str) -> Result<String, StepCaError> {
        let path = format!("/root/{}", normalize_fingerprint(fingerprint));
        let resp = self.call("GET", &path, None)?;
        let r: RootResponse = json_ok("GET", &path, resp)?;
        Ok(r.ca)
    }

    /// The token claims for `req` at `now`: `aud` = [`Self::sign_audience`], `sub` = CN,
    /// `sans` = the request's SANs, random `jti`, `sha` = the root fingerprint.
    pub fn sign_claims(
        &self,
        req: &CsrRequest,
        now: OffsetDateTime,
    ) -> Result<TokenClaims, StepCaError> {
        let mut claims = TokenClaims::new(
            self.sign_audience(),
            req.common_name.clone(),
            req.sans.iter().map(|s| s.to_string()).collect(),
            now.unix_timestamp(),
        )?;
        claims.root_fingerprint = Some(self.root_fingerprint());
        Ok(claims)
    }

    /// Issue a certificate: fresh P-256 key, CSR, one-time token, `POST /1.0/sign`; the
    /// answer must chain to the trusted root.
    pub fn sign(
        &self,
        req: &CsrRequest,
        provisioner: &ProvisionerKey,
        now: OffsetDateTime,
    ) -> Result<IssuedChain, StepCaError> {
        self.sign_for(req, provisioner, now, None)
    }

    /// [`Self::sign`] with an explicit lifetime (whole hours; the CA's claims bound it,
    /// default maximum 24 h) instead of the CA's default.
    pub fn sign_for(
        &self,
        req: &CsrRequest,
        provisioner: &ProvisionerKey,
        now: OffsetDateTime,
        lifetime_hours: Option<u32>,
    ) -> Result<IssuedChain, StepCaError> {
        let (csr_pem, key_pem) = make_csr(req)?;
        let ott = provisioner.sign_token(&self.sign_claims(req, now)?)?;
        let chain = self.sign_csr_for(&csr_pem, &ott, now, lifetime_hours)?;
        Ok(IssuedChain::new(chain, key_pem, self.root_pem()))
    }

    /// `POST /1.0/sign` with a ready CSR and token.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        ott: &OneTimeToken,
        now: OffsetDateTime,
    ) -> Result<CertificateChain, StepCaError> {
        self.sign_csr_for(csr_pem, ott, now, None)
    }

    fn sign_csr_for(
        &self,
        csr_pem: &str,
        ott: &OneTimeToken,
        now: OffsetDateTime,
        lifetime_hours: Option<u32>,
    ) -> Result<CertificateChain, StepCaError> {
        let mut body = serde_json::json!({"csr": csr_pem, "ott": ott.as_str()});
        if let (Some(h), Some(obj)) = (lifetime_hours, body.as_object_mut()) {
            // step's TimeDuration: a duration relative to the CA's clock.
            obj.insert(
                "notAfter".into(),
                serde_json::Value::String(format!("{h}h")),
            );
        }
        let body = body.to_string();
        let resp = self.call("POST", "/1.0/sign", Some(body.as_bytes()))?;
        let r: SignResponse = json_ok("POST", "/1.0/sign", resp)?;
        self.checked_chain("POST", "/1.0/sign", r, now)
    }

    /// `POST /1.0/renew`, authenticated by the current certificate (TLS client certificate)
    /// and its key; step-ca keeps the key and extends the validity.
    pub fn renew(
        &self,
        chain_pem: &str,
        key_pem: &str,
        now: OffsetDateTime,
    ) -> Result<IssuedChain, StepCaError> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| pem_err("the certificate to renew", e))?;
        if chain.is_empty() {
            return Err(StepCaError::Pem {
                what: "the certificate to renew",
                reason: "no CERTIFICATE block".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| pem_err("the key of the certificate to renew", e))?;
        let tls = http::trust_only(&self.url.host, &self.root, Some((chain, key)))?;
        let resp = http::request(tls, &self.url, "POST", "/1.0/renew", None, self.timeout)?;
        let r: SignResponse = json_ok("POST", "/1.0/renew", resp)?;
        let chain = self.checked_chain("POST", "/1.0/renew", r, now)?;
        Ok(IssuedChain::new(
            chain,
            KeyPem::new(key_pem.to_owned()),
            self.root_pem(),
        ))
    }

    fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, StepCaError> {
        http::request(
            self.tls.clone(),
            &self.url,
            method,
            path,
            body,
            self.timeout,
        )
    }

    /// The leaf must chain to the trusted root through the returned intermediate(s).
    fn checked_chain(
        &self,
        method: &'static str,
        path: &str,
        r: SignResponse,
        now: OffsetDateTime,
    ) -> Result<CertificateChain, StepCaError> {
        let bad = |reason: String| StepCaError::Protocol {
            method,
            path: path.to_owned(),
            reason,
        };
        let leaf = first_cert(&r.crt, "the issued certificate")?;
        let mut intermediates = vec![first_cert(&r.ca, "the issuing CA certificate")?];
        for pem in r.cert_chain.iter().skip(1) {
            intermediates.push(first_cert(pem, "the certificate chain")?);
        }
        let anchor = webpki::anchor_from_trusted_cert(&self.root)
            .map_err(|e| bad(format!("trusted root unusable: {e}")))?;
        let ee = webpki::EndEntityCert::try_from(&leaf)
            .map_err(|e| bad(format!("issued certificate unparsable: {e}")))?;
        let secs = u64::try_from(now.unix_timestamp()).unwrap_or_default();
        ee.verify_for_usage(
            SIG_ALGS,
            &[anchor],
            &intermediates,
            UnixTime::since_unix_epoch(Duration::from_secs(secs)),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| {
            bad(format!(
                "issued certificate does not chain to the trusted root: {e}"
            ))
        })?;
        let intermediates_pem: String = if r.cert_chain.len() > 1 {
            r.cert_chain[1..].iter().map(|c| ensure_nl(c)).collect()
        } else {
            ensure_nl(&r.ca)
        };
        Ok(CertificateChain {
            chain_pem: format!("{}{intermediates_pem}", ensure_nl(&r.crt)),
            certificate_pem: ensure_nl(&r.crt),
            issuer_pem: ensure_nl(&r.ca),
            intermediates_pem,
        })
    }
}

static SIG_ALGS: &[&dyn rustls::pki_types::SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ED25519,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
];

/// A CSR (PEM) for a fresh P-256 key with `req`'s CN and SANs, and that key (PKCS#8 PEM).
pub fn make_csr(req: &CsrRequest) -> Result<(String, KeyPem), StepCaError> {
    let csr_err = |e: rcgen::Error| StepCaError::Csr {
        reason: e.to_string(),
    };
    if req.sans.is_empty() {
        return Err(StepCaError::Csr {
            reason: "no SANs (step-ca copies the token's SANs into the certificate)".into(),
        });
    }
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(csr_err)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, req.common_name.clone());
    params.distinguished_name = dn;
    for san in &req.sans {
        params.subject_alt_names.push(match san {
            San::Dns(d) => SanType::DnsName(d.clone().try_into().map_err(csr_err)?),
            San::Ip(ip) => SanType::IpAddress(*ip),
        });
    }
    let csr = params.serialize_request(&key).map_err(csr_err)?;
    let pem = csr.pem().map_err(csr_err)?;
    Ok((pem, KeyPem::new(key.serialize_pem())))
}

fn ensure_nl(s: &str) -> String {
    if s.ends_with('\n') {
        s.to_owned()
    } else {
        format!("{s}\n")
    }
}

fn pem_err(what: &'static str, e: rustls::pki_types::pem::Error) -> StepCaError {
    StepCaError::Pem {
        what,
        reason: e.to_string(),
    }
}

fn first_cert(pem: &str, what: &'static str) -> Result<CertificateDer<'static>, StepCaError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| pem_err(what, e))
}

/// Lower-case hex without separators.
pub fn normalize_fingerprint(fp: &str) -> String {
    fp.chars()
        .filter(|c| !matches!(c, ':' | '-' | ' '))
        .collect::<String>()
        .to_ascii_lowercase()
}

fn check_fingerprint(root: &CertificateDer<'_>, expected: &str) -> Result<(), StepCaError> {
    let expected = normalize_fingerprint(expected);
    let actual = fingerprint_hex(root);
    if actual == expected {
        Ok(())
    } else {
        Err(StepCaError::RootFingerprintMismatch { expected, actual })
    }
}

/// A 2xx JSON body, or the step-ca error (its `message`) as [`StepCaError::Status`].
fn json_ok<T: serde::de::DeserializeOwned>(
    method: &'static str,
    path: &str,
    resp: Response,
) -> Result<T, StepCaError> {
    if !(200..300).contains(&resp.status) {
        let message = serde_json::from_slice::<ErrorResponse>(&resp.body)
            .ok()
            .and_then(|e| e.message)
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&resp.body)
                    .chars()
                    .take(300)
                    .collect()
            });
        return Err(StepCaError::Status {
            method,
            path: path.to_owned(),
            status: resp.status,
            message,
        });
    }
    serde_json::from_slice(&resp.body).map_err(|e| StepCaError::Protocol {
        method,
        path: path.to_owned(),
        reason: format!("unexpected JSON ({e})"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn csr_has_cn_and_sans_and_key_is_redacted() {
        use x509_parser::prelude::FromDer;
        let req = CsrRequest {
            common_name: "svc.internal".into(),
            sans: vec![
                San::Dns("svc.internal".into()),
                San::Ip("10.0.0.7".parse().unwrap()),
            ],
        };
        let (csr, key) = make_csr(&req).unwrap();
        assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        assert!(key.expose().starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(!format!("{key:?}").contains("PRIVATE"));
        let der = super::super::jws::pem_decode("CERTIFICATE REQUEST", &csr).unwrap();
        let (_, parsed) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
        parsed.verify_signature().unwrap();
        let cn = parsed.certification_request_info.subject.to_string();
        assert_eq!(cn, "CN=svc.internal");
    }

    #[test]
    fn empty_sans_refused() {
        let req = CsrRequest {
            common_name: "x".into(),
            sans: vec![],
        };
        assert!(matches!(make_csr(&req), Err(StepCaError::Csr { .. })));
    }

    #[test]
    fn fingerprints_normalise() {
        assert_eq!(normalize_fingerprint("AB:cd-EF 01"), "abcdef01");
    }
}
