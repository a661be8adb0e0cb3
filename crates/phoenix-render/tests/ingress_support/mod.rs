//! Shared helpers for the ingress tests: fixtures, real tools, test certificates.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use phoenix_model::DesiredState;

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn rootesting_dir() -> PathBuf {
    manifest_dir().join("../../../shared/fixtures/upstream/rootesting-2025-11-25/etc")
}

pub fn homelab_dir() -> PathBuf {
    manifest_dir().join("../../examples/homelab")
}

pub fn load(dir: &Path) -> DesiredState {
    let v = phoenix_model::validate_dir(dir);
    assert!(
        !v.has_errors(),
        "{} has errors: {:#?}",
        dir.display(),
        v.findings()
    );
    v.desired.expect("the configuration builds a desired state")
}

pub fn rootesting() -> DesiredState {
    load(&rootesting_dir())
}

/// A tool for a test that needs it. Missing: a note and `None` locally, a failure in CI.
pub fn tool(name: &str, candidates: &[PathBuf]) -> Option<PathBuf> {
    let found = candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        });
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("`{name}` is required in CI but was not found");
        }
        eprintln!("note: `{name}` not found; skipping (set CI to make this a failure)");
    }
    found
}

pub fn nginx() -> Option<PathBuf> {
    tool("nginx", &[PathBuf::from("/usr/sbin/nginx")])
}

pub fn traefik() -> Option<PathBuf> {
    tool("traefik", &[manifest_dir().join("../../.venv/bin/traefik")])
}

pub fn openssl() -> Option<PathBuf> {
    tool("openssl", &[PathBuf::from("/usr/bin/openssl")])
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run openssl");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Test PKI in `dir`: a root CA (`ca.crt`), an intermediate, and leaves signed by the
/// intermediate with `leaf` chained (leaf + intermediate), like Step-CA issues them.
pub struct TestPki {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
}

impl TestPki {
    pub fn new(openssl: &Path, dir: &Path) -> TestPki {
        let ca_key = dir.join("ca.key");
        let ca_cert = dir.join("ca.crt");
        run(Command::new(openssl)
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca_cert)
            .args(["-days", "2", "-subj", "/CN=Phoenix Test Root CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]));
        let pki = TestPki {
            dir: dir.to_path_buf(),
            ca_cert,
        };
        pki.issue("int", &[], true, ("ca.crt", "ca.key"));
        pki
    }

    /// Issue `<name>.crt` (chain: leaf + intermediate) and `<name>.key` for `dns` names.
    pub fn leaf(&self, name: &str, dns: &[&str]) -> (PathBuf, PathBuf) {
        self.issue(name, dns, false, ("int.crt", "int.key"));
        let leaf = std::fs::read_to_string(self.dir.join(format!("{name}.crt"))).unwrap();
        let int = std::fs::read_to_string(self.dir.join("int.crt")).unwrap();
        let chain = self.dir.join(format!("{name}.chain.crt"));
        std::fs::write(&chain, format!("{leaf}{int}")).unwrap();
        (chain, self.dir.join(format!("{name}.key")))
    }

    fn issue(&self, name: &str, dns: &[&str], ca: bool, signer: (&str, &str)) {
        let openssl = openssl().expect("openssl");
        let key = self.dir.join(format!("{name}.key"));
        let csr = self.dir.join(format!("{name}.csr"));
        let crt = self.dir.join(format!("{name}.crt"));
        let ext = self.dir.join(format!("{name}.ext"));
        let mut e = String::new();
        if ca {
            e.push_str("basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n");
        } else {
            e.push_str("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n");
            let sans: Vec<String> = dns.iter().map(|d| format!("DNS:{d}")).collect();
            if !sans.is_empty() {
                e.push_str(&format!("subjectAltName={}\n", sans.join(",")));
            }
        }
        std::fs::write(&ext, e).unwrap();
        let cn = dns
            .first()
            .copied()
            .unwrap_or("Phoenix Test Intermediate CA");
        run(Command::new(&openssl)
            .args([
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .args(["-subj", &format!("/CN={cn}")]));
        run(Command::new(&openssl)
            .args(["x509", "-req", "-days", "1"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(self.dir.join(signer.0))
            .arg("-CAkey")
            .arg(self.dir.join(signer.1))
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&crt));
    }
}

/// A free TCP port on 127.0.0.1 (the listener is closed again; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
