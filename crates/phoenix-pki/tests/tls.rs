//! Real TLS handshakes (rustls, ring provider) over loopback TCP against a server using an
//! issued certificate: DNS-name and IP-SAN matches, a deliberate wrong-name failure, and a
//! client certificate (`cert_type: client`) accepted by a server that requires one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::SystemTime;

use common::*;
use phoenix_model::model::{CertKind, San};
use phoenix_pki::{LeafIssuer, LeafRequest};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(Result::unwrap)
        .collect()
}

fn key(pem: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn roots(pem: &str) -> rustls::RootCertStore {
    let mut r = rustls::RootCertStore::empty();
    for c in certs(pem) {
        r.add(c).unwrap();
    }
    r
}

/// Serve one connection; returns what the server saw (Ok(peer cert count) or the TLS error).
fn serve(config: rustls::ServerConfig) -> (u16, std::thread::JoinHandle<Result<usize, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        let mut conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        tls.write_all(b"pong!").map_err(|e| e.to_string())?;
        tls.flush().map_err(|e| e.to_string())?;
        Ok(conn.peer_certificates().map_or(0, <[_]>::len))
    });
    (port, h)
}

fn client_hello(
    port: u16,
    root_pem: &str,
    name: &str,
    client_auth: Option<(&str, &str)>,
) -> Result<(), String> {
    let b = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(root_pem));
    let config = match client_auth {
        Some((chain, k)) => b.with_client_auth_cert(certs(chain), key(k)).unwrap(),
        None => b.with_no_client_auth(),
    };
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), server_name).unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    tls.write_all(b"ping!").map_err(|e| e.to_string())?;
    let mut buf = [0u8; 5];
    tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
    assert_eq!(&buf, b"pong!");
    Ok(())
}

fn server_config(chain: &str, k: &str, client_roots: Option<&str>) -> rustls::ServerConfig {
    let b = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let b = match client_roots {
        Some(r) => b.with_client_cert_verifier(
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(r)),
                provider(),
            )
            .build()
            .unwrap(),
        ),
        None => b.with_no_client_auth(),
    };
    b.with_single_cert(certs(chain), key(k)).unwrap()
}

#[test]
fn handshakes_match_dns_and_ip_sans_and_reject_a_wrong_name() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(&tmp.path().join("ca"), None);
    let desired = homelab();
    let out = tmp.path().join("out");
    let report =
        phoenix_pki::issue_manifest(&desired, &ca, &out, SystemTime::now(), &Default::default());
    assert!(!report.has_errors(), "{report}");
    let entry = &desired.certificates[0];
    let d = &report.entries[0].plan.destination;
    let chain = std::fs::read_to_string(&d.cert_file).unwrap();
    let k = std::fs::read_to_string(&d.key_file).unwrap();
    let root = ca.public().root_pem().to_string();
    let ip = entry
        .sans
        .iter()
        .find_map(|s| match s {
            San::Ip(i) => Some(i.to_string()),
            _ => None,
        })
        .unwrap();
    for name in [entry.common_name.as_str(), ip.as_str()] {
        let (port, server) = serve(server_config(&chain, &k, None));
        client_hello(port, &root, name, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        server.join().unwrap().unwrap();
    }
    // A name the certificate does not cover fails the handshake.
    let (port, server) = serve(server_config(&chain, &k, None));
    let err = client_hello(port, &root, "wrong.internal.thinkheads.ai", None).unwrap_err();
    assert!(
        err.contains("NotValidForName") || err.contains("not valid for"),
        "{err}"
    );
    assert!(server.join().unwrap().is_err());
    // An IP the certificate does not list fails too.
    let (port, server) = serve(server_config(&chain, &k, None));
    assert!(client_hello(port, &root, "172.16.100.250", None).is_err());
    let _ = server.join();
}

#[test]
fn client_certificate_is_accepted_for_mutual_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(&tmp.path().join("ca"), None);
    let desired = homelab();
    let now = SystemTime::now();
    let server_leaf = ca
        .issue(&LeafRequest::for_entry(&desired.certificates[1]), now)
        .unwrap();
    let client_sans = [San::Dns("traefik-client.internal.thinkheads.ai".into())];
    let client_leaf = ca
        .issue(
            &LeafRequest {
                common_name: "traefik-client",
                sans: &client_sans,
                kind: CertKind::Client,
                lifetime_hours: 24,
            },
            now,
        )
        .unwrap();
    let root = ca.public().root_pem().to_string();
    let (port, server) = serve(server_config(
        &server_leaf.cert_file(false),
        server_leaf.key.expose(),
        Some(&root),
    ));
    client_hello(
        port,
        &root,
        "traefik.internal.thinkheads.ai",
        Some((&client_leaf.cert_file(false), client_leaf.key.expose())),
    )
    .unwrap();
    assert_eq!(
        server.join().unwrap().unwrap(),
        2,
        "server saw the client leaf + intermediate"
    );
    // A server certificate cannot be used as a client certificate (EKU serverAuth only).
    let (port, server) = serve(server_config(
        &server_leaf.cert_file(false),
        server_leaf.key.expose(),
        Some(&root),
    ));
    let _ = client_hello(
        port,
        &root,
        "traefik.internal.thinkheads.ai",
        Some((&server_leaf.cert_file(false), server_leaf.key.expose())),
    );
    assert!(server.join().unwrap().is_err());
}
