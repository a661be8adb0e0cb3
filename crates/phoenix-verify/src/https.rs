//! HTTPS GET and TLS chain probes through rustls (ring provider only), trusting a given root
//! PEM. The request carries an explicit Host header and SNI (they may differ, as behind a
//! proxy); the server certificate is recorded even when verification fails, so a route trace
//! can name what each hop presented. Does I/O: TCP + TLS.

use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use serde::Serialize;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::endpoint::{Endpoint, with_net};
use crate::error::ProbeError;
use crate::report::{ProbeResult, Status, Subject};

/// What a server certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses.
    pub sans: Vec<String>,
    pub not_after: String,
}

impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "subject {:?} issuer {:?} SANs [{}]",
            self.subject,
            self.issuer,
            self.sans.join(", ")
        )
    }
}

/// Parse the fields the report shows from a DER certificate.
pub fn cert_info(der: &[u8]) -> Result<CertInfo, String> {
    let (_, c) =
        X509Certificate::from_der(der).map_err(|e| format!("unparsable certificate: {e}"))?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = c.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                GeneralName::DNSName(s) => sans.push((*s).to_string()),
                GeneralName::IPAddress(b) => match <[u8; 4]>::try_from(*b) {
                    Ok(a) => sans.push(IpAddr::from(a).to_string()),
                    Err(_) => match <[u8; 16]>::try_from(*b) {
                        Ok(a) => sans.push(IpAddr::from(a).to_string()),
                        Err(_) => sans.push(format!("ip?{b:?}")),
                    },
                },
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        sans,
        not_after: c.validity().not_after.to_string(),
    })
}

/// The webpki verifier for the given roots, remembering the end-entity certificate it saw.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    seen: Arc<Mutex<Option<CertificateDer<'static>>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut g) = self.seen.lock() {
            *g = Some(end_entity.clone().into_owned());
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

type Seen = Arc<Mutex<Option<CertificateDer<'static>>>>;

/// Records the end-entity certificate and accepts any chain (the handshake signature is still
/// checked): for reading what a server presents when no root is at hand; the chain check is
/// then reported as skipped by the caller, never as passed.
#[derive(Debug)]
struct RecordOnly {
    provider: Arc<rustls::crypto::CryptoProvider>,
    seen: Seen,
}

impl ServerCertVerifier for RecordOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut g) = self.seen.lock() {
            *g = Some(end_entity.clone().into_owned());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn record_only_config() -> Result<(Arc<ClientConfig>, Seen), ProbeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let seen: Seen = Arc::new(Mutex::new(None));
    let cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProbeError::TlsSetup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RecordOnly {
            provider,
            seen: seen.clone(),
        }))
        .with_no_client_auth();
    Ok((Arc::new(cfg), seen))
}

fn client_config(root_pem: &str) -> Result<(Arc<ClientConfig>, Seen), ProbeError> {
    let setup = |e: &dyn fmt::Display| ProbeError::TlsSetup(e.to_string());
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots
            .add(c.map_err(|e| setup(&e))?)
            .map_err(|e| setup(&e))?;
    }
    if roots.is_empty() {
        return Err(ProbeError::TlsSetup(
            "no certificate in the root PEM".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| setup(&e))?;
    let seen: Seen = Arc::new(Mutex::new(None));
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(&e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Recording {
            inner,
            seen: seen.clone(),
        }))
        .with_no_client_auth();
    Ok((Arc::new(cfg), seen))
}

/// One HTTPS request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsRequest {
    /// Where to connect (the hop's address, not necessarily what the name resolves to).
    pub addr: SocketAddr,
    /// TLS server name (SNI), also the name the certificate is verified for.
    pub sni: String,
    /// HTTP `Host` header.
    pub host: String,
    pub path: String,
    /// PEM of the root(s) to trust.
    pub root_pem: String,
}

/// Status line and headers of a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The first KiB of the body, lossily decoded.
    pub body: String,
}

/// Everything seen on one HTTPS attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsOutcome {
    /// The server certificate presented, if the handshake got that far.
    pub cert: Option<CertInfo>,
    /// The response (`None` for a handshake-only probe), or the failure.
    pub result: Result<Option<HttpResponse>, String>,
    pub attempts: u32,
    pub elapsed: Duration,
}

impl fmt::Display for HttpsOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.result {
            Ok(Some(r)) => write!(f, "HTTP {}", r.status)?,
            Ok(None) => f.write_str("handshake ok")?,
            Err(e) => f.write_str(e)?,
        }
        if let Some(c) = &self.cert {
            write!(f, "; certificate {c}")?;
        }
        write!(
            f,
            " ({}ms, {} attempt(s))",
            self.elapsed.as_millis(),
            self.attempts
        )
    }
}

/// Connect (polling while refused, until `deadline`), handshake, and with `send` issue the
/// GET, from inside `ep`.
pub fn get(
    ep: &(impl Endpoint + ?Sized),
    req: &HttpsRequest,
    deadline: Duration,
    send: bool,
) -> Result<HttpsOutcome, ProbeError> {
    let (cfg, seen) = client_config(&req.root_pem)?;
    get_with(ep, req, cfg, seen, deadline, send)
}

/// [`get`] without a root: the chain is not verified (`req.root_pem` is ignored), the
/// presented certificate is recorded. For reading SANs when no root is known; never report
/// its success as a verified chain.
pub fn get_unverified(
    ep: &(impl Endpoint + ?Sized),
    req: &HttpsRequest,
    deadline: Duration,
    send: bool,
) -> Result<HttpsOutcome, ProbeError> {
    let (cfg, seen) = record_only_config()?;
    get_with(ep, req, cfg, seen, deadline, send)
}

fn get_with(
    ep: &(impl Endpoint + ?Sized),
    req: &HttpsRequest,
    cfg: Arc<ClientConfig>,
    seen: Seen,
    deadline: Duration,
    send: bool,
) -> Result<HttpsOutcome, ProbeError> {
    let name = ServerName::try_from(req.sni.clone())
        .map_err(|e| ProbeError::TlsSetup(format!("SNI {:?}: {e}", req.sni)))?;
    let req = req.clone();
    with_net(ep, move || {
        let start = Instant::now();
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            let remaining = deadline.saturating_sub(start.elapsed());
            match TcpStream::connect_timeout(&req.addr, remaining.max(Duration::from_millis(1))) {
                Ok(tcp) => break session(tcp, cfg, name, &req, start + deadline, send),
                Err(e)
                    if e.kind() == std::io::ErrorKind::ConnectionRefused
                        && start.elapsed() + Duration::from_millis(100) < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => break Err(format!("connect {}: {e}", req.addr)),
            }
        };
        let cert = seen
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(|c| cert_info(c)))
            .and_then(Result::ok);
        HttpsOutcome {
            cert,
            result,
            attempts,
            elapsed: start.elapsed(),
        }
    })
}

fn session(
    tcp: TcpStream,
    cfg: Arc<ClientConfig>,
    name: ServerName<'static>,
    req: &HttpsRequest,
    until: Instant,
    send: bool,
) -> Result<Option<HttpResponse>, String> {
    let left = || {
        until
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    tcp.set_read_timeout(Some(left()))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(left()))
        .map_err(|e| e.to_string())?;
    let conn = ClientConnection::new(cfg, name).map_err(|e| format!("TLS client: {e}"))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| format!("TLS handshake with SNI {:?}: {e}", req.sni))?;
    }
    if !send {
        return Ok(None);
    }
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: phoenix-verify\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        req.path, req.host
    );
    tls.write_all(head.as_bytes())
        .map_err(|e| format!("send request: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        tls.sock
            .set_read_timeout(Some(left()))
            .map_err(|e| e.to_string())?;
        match tls.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // No close_notify or the deadline: use what arrived if the head is complete.
            Err(e) if header_end(&buf).is_some() => {
                let _ = e;
                break;
            }
            Err(e) => return Err(format!("read response: {e}")),
        }
        if buf.len() > 1 << 20 || Instant::now() >= until {
            break;
        }
    }
    parse_http(&buf).map(Some)
}

fn header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Parse an HTTP/1.x status line and headers.
pub fn parse_http(buf: &[u8]) -> Result<HttpResponse, String> {
    let end = header_end(buf).ok_or("no complete HTTP response head")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = &buf[end + 4..];
    let body = String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned();
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn result(
    id: String,
    subject: &Subject,
    check: String,
    start: Instant,
    r: Result<String, String>,
    observed: String,
) -> ProbeResult {
    ProbeResult {
        id,
        subject: subject.clone(),
        check,
        status: match r {
            Ok(_) => Status::Pass,
            Err(evidence) => Status::Fail { evidence },
        },
        observed,
        duration: start.elapsed(),
    }
}

/// GET `req` and expect `want_status`; evidence names the certificate presented.
pub fn probe_get(
    ep: &(impl Endpoint + ?Sized),
    subject: &Subject,
    req: &HttpsRequest,
    want_status: u16,
    deadline: Duration,
) -> ProbeResult {
    let id = format!("https/{subject}/{}{}", req.host, req.path);
    let check = format!(
        "https GET {}{} via {} (SNI {}) → {want_status}",
        req.host, req.path, req.addr, req.sni
    );
    let start = Instant::now();
    match get(ep, req, deadline, true) {
        Ok(o) => {
            let observed = o.to_string();
            let r = match &o.result {
                Ok(Some(resp)) if resp.status == want_status => Ok(observed.clone()),
                _ => Err(format!("expected HTTP {want_status}, got {observed}")),
            };
            result(id, subject, check, start, r, observed)
        }
        Err(e) => result(
            id,
            subject,
            check,
            start,
            Err(format!("probe could not run from {}: {e}", ep.label())),
            String::new(),
        ),
    }
}

/// Handshake with `req.sni`, verify the chain against `req.root_pem`, and require every name
/// of `expected_sans` among the certificate's SANs.
pub fn probe_tls(
    ep: &(impl Endpoint + ?Sized),
    subject: &Subject,
    req: &HttpsRequest,
    expected_sans: &[String],
    deadline: Duration,
) -> ProbeResult {
    let id = format!("tls/{subject}/{}", req.sni);
    let check = format!(
        "tls {} (SNI {}) chains to the root, SANs ⊇ [{}]",
        req.addr,
        req.sni,
        expected_sans.join(", ")
    );
    let start = Instant::now();
    match get(ep, req, deadline, false) {
        Ok(o) => {
            let observed = o.to_string();
            let r = match (&o.result, &o.cert) {
                (Ok(_), Some(c)) => {
                    let missing: Vec<&String> = expected_sans
                        .iter()
                        .filter(|s| !c.sans.contains(s))
                        .collect();
                    if missing.is_empty() {
                        Ok(observed.clone())
                    } else {
                        Err(format!("SANs missing {missing:?}: {observed}"))
                    }
                }
                _ => Err(observed.clone()),
            };
            result(id, subject, check, start, r, observed)
        }
        Err(e) => result(
            id,
            subject,
            check,
            start,
            Err(format!("probe could not run from {}: {e}", ep.label())),
            String::new(),
        ),
    }
}
