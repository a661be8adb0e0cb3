//! fakepve as an external process for the integration tests: a CA and a leaf for 127.0.0.2
//! made with rcgen, an API token and a password user added through fakepve's Python API (a
//! small launcher passed to the venv's python as argv; the secrets go over stdin), readiness polled with a deadline,
//! and the process killed by a Drop guard. fakepve is AGPL: it is only ever run, never copied.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use phoenix_pve::connection::{ApiToken, Password, PveAuth};
use phoenix_pve::tls::{TlsTrust, der_fingerprint};
use phoenix_pve::{ConnectionSettings, PveClient};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};

pub const HOST: &str = "127.0.0.2";
pub const TOKEN_ID: &str = "root@pam!phoenix";
pub const SECRET: &str = "9f1c2d3e-phoenix-test-secret-4b5a";
/// A password login (fakepve's `users`), for ticket auth.
pub const USERNAME: &str = "phoenix@pve";
pub const PASSWORD: &str = "Tr0ub4dor-phoenix-test-pw-77c1";

/// The launcher: fakepve's own Python API (FakePve, apitokens, storages), no copied code.
const LAUNCHER: &str = r#"
import asyncio, json, sys
from fakepve.server import FakePve

async def main():
    cert, key, tokenid, storages, failures, time_scale, latency, vms = sys.argv[1:9]
    secret = sys.stdin.readline().strip()
    username, password = sys.stdin.readline().strip().split(' ', 1)
    pve = FakePve(host='127.0.0.2', port=0)
    pve.time_scale = float(time_scale)
    pve.slow_network(float(latency))
    pve.apitokens[tokenid] = secret
    pve.users[username] = password
    for name, opts in json.loads(storages).items():
        store = {'active': 1, 'files': set(), 'volumes': {}}
        store.update(opts)
        pve.storages[name] = store
    for f in json.loads(failures):
        pve.fail(f['method'], f['suffix'], f['status'], f['message'], times=f.get('times'))
    for v in json.loads(vms):
        vm = pve.add_vm(v['vmid'], v['name'], node='pve1', status=v.get('status', 'running'),
                        config=v.get('config'))
        vm.agent = v.get('agent')
    await pve.start(cert, key)
    print('PORT', pve.port, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"#;

pub fn venv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv")
}

/// `None` (after a note) when fakepve is not installed and `CI` is unset; panics under CI.
pub fn fakepve_available() -> bool {
    if venv().join("bin/fakepve").exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("fakepve is not installed in .venv (scripts/peers.sh) and CI is set");
    }
    eprintln!("note: .venv/bin/fakepve missing (run scripts/peers.sh); skipping");
    false
}

/// A scratch CA and a server certificate for 127.0.0.2 signed by it, as PEM files.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    pub leaf_fingerprint: [u8; 32],
}

pub fn make_ca(dir: &Path, name: &str) -> (PathBuf, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, cert.pem()).unwrap();
    (path, Issuer::new(params, key))
}

pub fn make_pki() -> TestPki {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, issuer) = make_ca(dir.path(), "phoenix-test-ca");
    let mut params = CertificateParams::new(vec![HOST.to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fakepve");
    params.use_authority_key_identifier_extension = true;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let cert_pem = dir.path().join("leaf.pem");
    let key_pem = dir.path().join("leaf.key");
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    TestPki {
        leaf_fingerprint: der_fingerprint(cert.der()),
        dir,
        ca_pem,
        cert_pem,
        key_pem,
    }
}

/// A running fakepve; killed on drop.
pub struct FakePve {
    child: Child,
    pub port: u16,
    pub pki: TestPki,
}

impl Drop for FakePve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl FakePve {
    /// Start with extra storages (`{"name": {storage.cfg options}}`).
    pub fn start(storages: &serde_json::Value) -> FakePve {
        FakePve::start_with_failures(storages, &serde_json::json!([]))
    }

    /// Start with injected failures (`[{method, suffix, status, message, times}]`, fakepve's
    /// `fail()`).
    pub fn start_with_failures(
        storages: &serde_json::Value,
        failures: &serde_json::Value,
    ) -> FakePve {
        FakePve::start_full(storages, failures, 0.0, 0.0)
    }

    /// Start with real time: `time_scale` real seconds per PVE second, `latency` PVE seconds
    /// added to every response.
    pub fn start_full(
        storages: &serde_json::Value,
        failures: &serde_json::Value,
        time_scale: f64,
        latency: f64,
    ) -> FakePve {
        FakePve::start_with_vms(
            storages,
            failures,
            time_scale,
            latency,
            &serde_json::json!([]),
        )
    }

    /// Start with VMs already there (`[{vmid, name, status?, config?, agent?}]`; `agent` is
    /// fakepve's per-command answers, `null` for no agent).
    pub fn start_with_vms(
        storages: &serde_json::Value,
        failures: &serde_json::Value,
        time_scale: f64,
        latency: f64,
        vms: &serde_json::Value,
    ) -> FakePve {
        let pki = make_pki();
        let mut child = Command::new(venv().join("bin/python"))
            .arg("-c")
            .arg(LAUNCHER)
            .arg(&pki.cert_pem)
            .arg(&pki.key_pem)
            .arg(TOKEN_ID)
            .arg(storages.to_string())
            .arg(failures.to_string())
            .arg(time_scale.to_string())
            .arg(latency.to_string())
            .arg(vms.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fakepve");
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{SECRET}").unwrap();
        writeln!(stdin, "{USERNAME} {PASSWORD}").unwrap();
        drop(stdin);
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut guard = FakePve {
            child,
            port: 0,
            pki,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while guard.port == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "fakepve did not report its port in 30 s");
            if let Ok(Some(status)) = guard.child.try_wait() {
                panic!("fakepve exited early: {status}");
            }
            if let Ok(line) = rx.recv_timeout(left.min(Duration::from_millis(200)))
                && let Some(p) = line.strip_prefix("PORT ")
            {
                guard.port = p.trim().parse().unwrap();
            }
        }
        // Ready once the API answers (poll with a deadline).
        let client = guard.client(TlsTrust::CaFile(guard.pki.ca_pem.clone()));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match client.get("/version", &[]) {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("fakepve not ready yet: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("fakepve not ready: {e}"),
            }
        }
        guard
    }

    pub fn settings(&self, trust: TlsTrust) -> ConnectionSettings {
        ConnectionSettings {
            endpoint: format!("https://{HOST}:{}", self.port),
            auth: PveAuth::Token(ApiToken::parse(&format!("{TOKEN_ID}={SECRET}")).unwrap()),
            node: "pve1".into(),
            trust,
        }
    }

    /// Settings for ticket login as [`USERNAME`] with `password`.
    pub fn ticket_settings(&self, trust: TlsTrust, password: &str) -> ConnectionSettings {
        ConnectionSettings {
            auth: PveAuth::Ticket {
                username: USERNAME.into(),
                password: Password::new(password),
            },
            ..self.settings(trust)
        }
    }

    pub fn client(&self, trust: TlsTrust) -> PveClient {
        PveClient::new(&self.settings(trust)).unwrap()
    }
}
