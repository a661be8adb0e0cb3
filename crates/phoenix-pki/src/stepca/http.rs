//! A minimal blocking HTTPS/1.1 client for step-ca's JSON API: one request per connection
//! (`Connection: close`), `Content-Length` or chunked bodies, bounded size and timeouts.
//! TLS is rustls with the ring provider passed explicitly (no process-wide default needed)
//! and a root store holding only the step-ca root. I/O: TCP connections.
//!
//! Why not reqwest: step-ca needs four small requests; a blocking client over rustls keeps
//! tokio, hyper and their build time out of `phoenix-pki`, and mTLS renewal only needs a
//! different `ClientConfig`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::StepCaError;

/// Largest response body accepted.
const MAX_BODY: usize = 1 << 20;

/// `https://host[:port]` of a step-ca (no path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaUrl {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl CaUrl {
    /// Parse `https://host[:port][/]` (default port 443; IPv6 in brackets).
    pub fn parse(url: &str) -> Result<CaUrl, StepCaError> {
        let bad = |reason| StepCaError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| bad("only https:// URLs are supported"))?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(bad("expected https://host[:port] without a path"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, tail) = v6.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            (h, tail.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("invalid port"))?,
            None => 443,
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(CaUrl {
            host: host.to_owned(),
            port,
        })
    }

    /// `host:port` (IPv6 in brackets), as in a `Host` header.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `https://host:port`.
    pub fn base(&self) -> String {
        format!("https://{}", self.authority())
    }

    fn server_name(&self) -> Result<ServerName<'static>, StepCaError> {
        ServerName::try_from(self.host.clone()).map_err(|_| StepCaError::InvalidUrl {
            url: self.base(),
            reason: "host is not a valid DNS name or IP address",
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(host: &str) -> impl FnOnce(rustls::Error) -> StepCaError + '_ {
    move |source| StepCaError::Tls {
        host: host.to_owned(),
        source,
    }
}

/// A client config trusting only `root`, optionally presenting a client certificate (mTLS).
pub fn trust_only(
    host: &str,
    root: &CertificateDer<'static>,
    client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, StepCaError> {
    let mut store = RootCertStore::empty();
    store.add(root.clone()).map_err(tls_err(host))?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err(host))?
        .with_root_certificates(store);
    let config = match client_auth {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(tls_err(host))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A config that accepts any server certificate (handshake signatures still checked). Only
/// for the bootstrap request whose answer is then checked against a pinned fingerprint.
pub fn unverified(host: &str) -> Result<Arc<ClientConfig>, StepCaError> {
    let provider = provider();
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_err(host))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An HTTP response: status, body, and the certificate chain the server presented.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// The server's TLS chain (leaf first): step-ca serves a leaf of its intermediate.
    pub peer_chain: Vec<CertificateDer<'static>>,
}

/// One request over a fresh TLS connection.
pub fn request(
    config: Arc<ClientConfig>,
    url: &CaUrl,
    method: &'static str,
    path: &str,
    json_body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response, StepCaError> {
    let io_err = |source| StepCaError::Io {
        method,
        path: path.to_owned(),
        host: url.authority(),
        source,
    };
    let proto = |reason: &str| StepCaError::Protocol {
        method,
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let tcp = connect(url, timeout)?;
    let conn =
        rustls::ClientConnection::new(config, url.server_name()?).map_err(tls_err(&url.host))?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);

    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: phoenix\r\nAccept: application/json\r\nConnection: close\r\n",
        url.authority()
    );
    if let Some(b) = json_body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    } else if method == "POST" {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(json_body.unwrap_or_default());
    stream.write_all(&out).map_err(io_err)?;
    stream.flush().map_err(io_err)?;

    let peer_chain = stream
        .conn
        .peer_certificates()
        .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
        .unwrap_or_default();
    let mut r = BufReader::new(stream);
    let status_line = read_line(&mut r).map_err(io_err)?;
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.get(2..5))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| proto("no HTTP status line"))?;
    let (mut length, mut chunked) = (None, false);
    loop {
        let line = read_line(&mut r).map_err(io_err)?;
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = Some(
                    v.parse::<usize>()
                        .map_err(|_| proto("bad Content-Length"))?,
                );
            } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let body = if chunked {
        read_chunked(&mut r).map_err(io_err)?
    } else if let Some(n) = length {
        if n > MAX_BODY {
            return Err(proto("response too large"));
        }
        let mut b = vec![0; n];
        r.read_exact(&mut b).map_err(io_err)?;
        b
    } else {
        let mut b = Vec::new();
        r.take(MAX_BODY as u64)
            .read_to_end(&mut b)
            .map_err(io_err)?;
        b
    };
    Ok(Response {
        status,
        body,
        peer_chain,
    })
}

fn connect(url: &CaUrl, timeout: Duration) -> Result<TcpStream, StepCaError> {
    let addr = url.authority();
    let conn_err = |source| StepCaError::Connect {
        addr: addr.clone(),
        source,
    };
    let addrs = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(conn_err)?;
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address resolved");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                s.set_read_timeout(Some(timeout)).map_err(conn_err)?;
                s.set_write_timeout(Some(timeout)).map_err(conn_err)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(conn_err(last))
}

fn read_line(r: &mut impl BufRead) -> std::io::Result<String> {
    let mut buf = Vec::new();
    r.take(16 * 1024).read_until(b'\n', &mut buf)?;
    if !buf.ends_with(b"\n") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "truncated HTTP header line",
        ));
    }
    Ok(String::from_utf8_lossy(&buf).trim_end().to_owned())
}

fn read_chunked(r: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let invalid = |m| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let mut body = Vec::new();
    loop {
        let line = read_line(r)?;
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // Trailers until the empty line.
            while !read_line(r)?.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(invalid("response too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        if !read_line(r)?.is_empty() {
            return Err(invalid("chunk not followed by CRLF"));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = CaUrl::parse("https://ca.internal:9000/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("ca.internal", 9000));
        assert_eq!(u.base(), "https://ca.internal:9000");
        let u = CaUrl::parse("https://[::1]:9443").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9443));
        assert_eq!(u.authority(), "[::1]:9443");
        assert_eq!(CaUrl::parse("https://127.0.0.1").unwrap().port, 443);
        assert!(CaUrl::parse("http://ca:9000").is_err());
        assert!(CaUrl::parse("https://ca:9000/1.0/sign").is_err());
        assert!(CaUrl::parse("https://ca:x").is_err());
        assert!(CaUrl::parse("https://").is_err());
    }

    #[test]
    fn chunked_bodies() {
        let raw = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let body = read_chunked(&mut &raw[..]).unwrap();
        assert_eq!(body, b"hello world");
        assert!(read_chunked(&mut &b"zz\r\n"[..]).is_err());
    }
}
