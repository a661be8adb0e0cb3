//! Test helpers: a real dnsmasq started with argv (killed in `Drop`), a throw-away network
//! namespace (`phxv-<random>`, deleted in `Drop`), free loopback ports, a rustls HTTPS
//! server with an rcgen CA. Traffic stays on loopback or inside our own namespaces.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

/// A free UDP+TCP port on `ip` (bound then released).
pub fn free_port(ip: Ipv4Addr) -> u16 {
    let u = UdpSocket::bind((ip, 0)).unwrap();
    let port = u.local_addr().unwrap().port();
    drop(u);
    port
}

/// A dnsmasq serving `--host-record`s under `lab.test`, bound to `listen:port` only.
pub struct Dnsmasq {
    child: Child,
}

impl Dnsmasq {
    /// `prefix`: e.g. `["ip", "netns", "exec", NS]` (exec keeps the pid, so kill reaches dnsmasq).
    pub fn start(
        prefix: &[&str],
        listen: Ipv4Addr,
        port: u16,
        records: &[(&str, &str)],
        extra: &[String],
    ) -> Self {
        let mut argv: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        argv.extend(
            [
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-hosts",
                "--no-resolv",
                "--bind-interfaces",
                "--pid-file=",
                "--local=/lab.test/",
            ]
            .map(String::from),
        );
        argv.push(format!("--listen-address={listen}"));
        argv.push(format!("--port={port}"));
        for (name, ip) in records {
            argv.push(format!("--host-record={name},{ip}"));
        }
        argv.extend(extra.iter().cloned());
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        Dnsmasq { child }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Root required: returns false (skip) when not root and `CI` is unset; panics when `CI` is set.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: needs root (CI is set)"
    );
    eprintln!("note: {test} skipped: needs root");
    false
}

fn unique() -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{:x}{:06x}", std::process::id() & 0xffff, n & 0xffffff)
}

/// A network namespace of our own, loopback up; deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn create() -> Self {
        let name = format!("phxv-{}", unique());
        // LAB.md: a namespace gets its own resolv.conf before anything starts in it, so
        // nothing run under `ip netns exec` can rewrite the real /etc/resolv.conf.
        let etc = Path::new("/etc/netns").join(&name);
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        let ns = Netns { name };
        run(&["ip", "netns", "add", &ns.name]);
        run(&["ip", "-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&self.name));
    }
}

pub fn run(argv: &[&str]) {
    let s = Command::new(argv[0]).args(&argv[1..]).status().unwrap();
    assert!(s.success(), "{argv:?} failed: {s}");
}

/// A test CA and a leaf for `names`.
pub struct Pki {
    pub root_pem: String,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivatePkcs8KeyDer<'static>,
}

pub fn pki(cn: &str, names: &[&str]) -> Pki {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, cn);
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    let mut lp =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    lp.distinguished_name.push(DnType::CommonName, names[0]);
    let lk = KeyPair::generate().unwrap();
    let leaf = lp.signed_by(&lk, &ca).unwrap();
    Pki {
        root_pem: ca.pem(),
        chain: vec![leaf.der().clone()],
        key: PrivatePkcs8KeyDer::from(lk.serialize_der()),
    }
}

/// An HTTPS server on 127.0.0.1 answering 200 for `Host: good_host`, 404 otherwise.
pub fn https_server(pki: &Pki, good_host: &'static str) -> SocketAddr {
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(pki.chain.clone(), pki.key.clone_key().into())
    .unwrap();
    let cfg = Arc::new(cfg);
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, s);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let req = String::from_utf8_lossy(&buf).to_ascii_lowercase();
            let ok = req.contains(&format!("\r\nhost: {good_host}\r\n"));
            let (code, body) = if ok {
                ("200 OK", "ok")
            } else {
                ("404 Not Found", "no route")
            };
            let resp = format!(
                "HTTP/1.1 {code}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(resp.as_bytes());
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    addr
}
