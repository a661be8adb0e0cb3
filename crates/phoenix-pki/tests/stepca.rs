//! phoenix's step-ca client against a REAL step-ca 0.19 (built by `scripts/build-step-ca.sh`
//! into `.tools/bin/step-ca`), listening on 127.0.0.1 only.
//!
//! - `external_step_ca`: a CA *not* set up by phoenix — root, intermediate, JWK provisioner and
//!   `ca.json` made here by hand — signs a CSR with a JWK one-time token; the certificate chains
//!   to that CA's root (`openssl verify`), SANs equal the request, a reused `jti` and a wrong
//!   `aud` are rejected, renewal over mTLS works, bootstrap by fingerprint works.
//! - `rendered_ca_json`: step-ca started with the `ca.json` phoenix renders for
//!   `examples/homelab` (address moved to loopback) signs through the client.
//!
//! Without the binary the tests print a note and pass, unless `CI` is set (then they fail).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs;
use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use phoenix_model::model::San;
use phoenix_pki::stepca::{
    CaJsonParams, CsrRequest, LeafClaims, ProvisionerKey, StepCaClient, StepCaError, StepCaIssuer,
    StepCaPaths, TokenClaims, ca_guest_mesh_address, ca_json, fingerprint_hex, make_csr,
};
use phoenix_pki::{
    Existing, IssueOptions, LeafIssuer, LeafRequest, RenewalPolicy, decide, issue_manifest,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The built step-ca, or `None` (with a note) when it is missing outside CI.
fn step_ca_binary() -> Option<PathBuf> {
    let bin = repo_root().join(".tools/bin/step-ca");
    if bin.is_file() {
        return Some(bin);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{} is missing; CI must build it first (bash scripts/build-step-ca.sh)",
            bin.display()
        );
    }
    eprintln!(
        "note: {} not built; skipping the real step-ca test (run scripts/build-step-ca.sh)",
        bin.display()
    );
    None
}

/// A running step-ca; killed and reaped on drop.
struct StepCaProcess {
    child: Child,
    log: PathBuf,
    url: String,
}

impl Drop for StepCaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl StepCaProcess {
    fn start(bin: &Path, dir: &Path, ca_json: &Path, port: u16) -> StepCaProcess {
        let log = dir.join("step-ca.log");
        let out = fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        fs::create_dir_all(dir.join("steppath")).unwrap();
        let child = Command::new(bin)
            .arg(ca_json)
            .arg("--password-file")
            .arg(dir.join("password"))
            // step's config dir and HOME inside the temp dir: nothing written to the real home.
            .env("STEPPATH", dir.join("steppath"))
            .env("HOME", dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        StepCaProcess {
            child,
            log,
            url: format!("https://127.0.0.1:{port}"),
        }
    }

    /// Poll `/health` until it answers, with a deadline; fail with the CA's log.
    fn wait_healthy(&mut self, client: &StepCaClient) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("step-ca exited ({status}):\n{}", self.log_text());
            }
            match client.health() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => {
                    panic!(
                        "step-ca not healthy within 30 s ({e}):\n{}",
                        self.log_text()
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_millis(25)),
            }
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Root and intermediate of a CA made here with rcgen (not by phoenix).
struct TestCa {
    root_pem: String,
    intermediate_pem: String,
    intermediate_key_pem: String,
}

fn make_test_ca(name: &str) -> TestCa {
    let now = OffsetDateTime::now_utc();
    let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut root = CertificateParams::default();
    root.distinguished_name
        .push(DnType::CommonName, format!("{name} Root CA"));
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    root.not_before = now - time::Duration::hours(1);
    root.not_after = now + time::Duration::days(3650);
    let root_cert = root.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root, root_key);

    let int_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut int = CertificateParams::default();
    int.distinguished_name
        .push(DnType::CommonName, format!("{name} Intermediate CA"));
    int.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    int.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    int.use_authority_key_identifier_extension = true;
    int.not_before = now - time::Duration::hours(1);
    int.not_after = now + time::Duration::days(3650);
    let int_cert = int.signed_by(&int_key, &root_issuer).unwrap();
    TestCa {
        root_pem: root_cert.pem(),
        intermediate_pem: int_cert.pem(),
        intermediate_key_pem: int_key.serialize_pem(),
    }
}

fn b64url(b: &[u8]) -> String {
    phoenix_pki::stepca::jws::b64url(b)
}

/// A JWK provisioner key made directly with ring, written in step's private JWK form.
/// Returns (private JWK text, public JWK value for ca.json).
fn make_step_style_jwk() -> (String, serde_json::Value) {
    let rng = ring::rand::SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let der = doc.as_ref();
    // ring's fixed P-256 PKCS#8 template: ECPrivateKey { 1, OCTET STRING(32) d, … } at 31.
    assert_eq!(der[31..36], [0x02, 0x01, 0x01, 0x04, 0x20]);
    let d = &der[36..68];
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng).unwrap();
    let p = pair.public_key().as_ref();
    let (x, y) = (b64url(&p[1..33]), b64url(&p[33..65]));
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = b64url(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref());
    let public = serde_json::json!({
        "use": "sig", "kty": "EC", "kid": kid, "crv": "P-256", "alg": "ES256", "x": x, "y": y,
    });
    let mut private = public.clone();
    private["d"] = serde_json::Value::String(b64url(d));
    (private.to_string(), public)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

fn pem_der(pem: &str) -> Vec<u8> {
    phoenix_pki::stepca::jws::pem_decode("CERTIFICATE", pem).unwrap()
}

/// `openssl verify -CAfile root -untrusted intermediate leaf` succeeds.
fn openssl_verify(dir: &Path, root_pem: &str, intermediate_pem: &str, leaf_pem: &str) {
    let root = write(dir, "verify-root.pem", root_pem);
    let int = write(dir, "verify-int.pem", intermediate_pem);
    let leaf = write(dir, "verify-leaf.pem", leaf_pem);
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&root)
        .arg("-untrusted")
        .arg(&int)
        .arg(&leaf)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// SANs of a leaf as text (DNS names and IP addresses), and its CN.
fn leaf_names(leaf_pem: &str) -> (String, BTreeSet<String>) {
    let der = pem_der(leaf_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut sans = BTreeSet::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                GeneralName::DNSName(d) => {
                    sans.insert((*d).to_owned());
                }
                GeneralName::IPAddress(b) => {
                    let ip: IpAddr = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).unwrap().into(),
                        _ => <[u8; 16]>::try_from(*b).unwrap().into(),
                    };
                    sans.insert(ip.to_string());
                }
                other => panic!("unexpected SAN {other:?}"),
            }
        }
    }
    (cn, sans)
}

fn leaf_serial_and_key(leaf_pem: &str) -> (String, Vec<u8>) {
    let der = pem_der(leaf_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    (cert.raw_serial_as_string(), cert.public_key().raw.to_vec())
}

fn request() -> CsrRequest {
    CsrRequest {
        common_name: "svc.lab.test".into(),
        sans: vec![
            San::Dns("svc.lab.test".into()),
            San::Dns("alias.lab.test".into()),
            San::Ip("10.9.8.7".parse().unwrap()),
        ],
    }
}

fn expect_rejected(r: Result<phoenix_pki::stepca::CertificateChain, StepCaError>, what: &str) {
    match r {
        Err(StepCaError::Status { status, .. }) if (400..500).contains(&status) => {}
        other => panic!("{what}: expected a 4xx rejection, got {other:?}"),
    }
}

#[test]
fn external_step_ca() {
    let Some(bin) = step_ca_binary() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = make_test_ca("External Test");
    let root = write(dir, "root_ca.crt", &ca.root_pem);
    let crt = write(dir, "intermediate_ca.crt", &ca.intermediate_pem);
    let key = write(dir, "intermediate_ca_key", &ca.intermediate_key_pem);
    write(dir, "password", "not-used-the-test-key-is-unencrypted\n");
    let (private_jwk, public_jwk) = make_step_style_jwk();
    let port = free_port();
    // Written by hand: the fields `step ca init` would produce, no phoenix renderer involved.
    let config = serde_json::json!({
        "root": root, "crt": crt, "key": key,
        "address": format!("127.0.0.1:{port}"),
        "dnsNames": ["127.0.0.1", "localhost"],
        "logger": {"format": "text"},
        "db": {"type": "badgerv2", "dataSource": dir.join("db")},
        "authority": {
            "provisioners": [{"type": "JWK", "name": "ext-admin", "key": public_jwk}]
        },
        "tls": {
            "cipherSuites": ["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                             "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
            "minVersion": 1.2, "maxVersion": 1.3, "renegotiation": false
        }
    });
    let ca_json_path = write(
        dir,
        "ca.json",
        &serde_json::to_string_pretty(&config).unwrap(),
    );

    let mut proc = StepCaProcess::start(&bin, dir, &ca_json_path, port);
    let root_fp = fingerprint_hex(&pem_der(&ca.root_pem));
    let client = StepCaClient::new_pinned(&proc.url, &ca.root_pem, &root_fp).unwrap();
    proc.wait_healthy(&client);

    // The provisioner key as the operator would pass it: step's private JWK file.
    let provisioner = ProvisionerKey::from_file_contents("ext-admin", &private_jwk).unwrap();
    let now = OffsetDateTime::now_utc();

    // Sign: chains to this CA's root, SANs and CN are exactly the request's.
    let req = request();
    let issued = client.sign(&req, &provisioner, now).unwrap();
    openssl_verify(
        dir,
        &ca.root_pem,
        &ca.intermediate_pem,
        &issued.certificate_pem,
    );
    assert_eq!(issued.root_pem, ca.root_pem.replace("\r\n", "\n"));
    let (cn, sans) = leaf_names(&issued.certificate_pem);
    assert_eq!(cn, "svc.lab.test");
    let want: BTreeSet<String> = req.sans.iter().map(|s| s.to_string()).collect();
    assert_eq!(sans, want);
    assert!(!format!("{issued:?}").contains("PRIVATE KEY"));

    // A token is single use: the same jti is refused the second time.
    let claims = client.sign_claims(&req, now).unwrap();
    let ott = provisioner.sign_token(&claims).unwrap();
    let (csr1, _) = make_csr(&req).unwrap();
    let (csr2, _) = make_csr(&req).unwrap();
    client.sign_csr(&csr1, &ott, now).unwrap();
    expect_rejected(client.sign_csr(&csr2, &ott, now), "reused jti");

    // A fresh token with the same claims except a new jti works again…
    let mut again = claims.clone();
    again.jti = phoenix_pki::stepca::jws::random_jti().unwrap();
    let ott = provisioner.sign_token(&again).unwrap();
    client.sign_csr(&csr2, &ott, now).unwrap();

    // …but not for another audience…
    let mut wrong_aud = TokenClaims::new(
        "https://ca.elsewhere.test/1.0/sign".into(),
        req.common_name.clone(),
        claims.sans.clone(),
        now.unix_timestamp(),
    )
    .unwrap();
    wrong_aud.root_fingerprint = Some(root_fp.clone());
    let ott = provisioner.sign_token(&wrong_aud).unwrap();
    expect_rejected(client.sign_csr(&csr1, &ott, now), "wrong aud");

    // …nor with SANs that differ from the CSR's.
    let mut other_sans = client.sign_claims(&req, now).unwrap();
    other_sans.sans.push("extra.lab.test".into());
    let ott = provisioner.sign_token(&other_sans).unwrap();
    expect_rejected(client.sign_csr(&csr1, &ott, now), "SANs differ");

    // Renewal with the current certificate as TLS client certificate: same key, new serial.
    let renewed = client
        .renew(&issued.chain_pem, issued.key.expose(), now)
        .unwrap();
    openssl_verify(
        dir,
        &ca.root_pem,
        &ca.intermediate_pem,
        &renewed.certificate_pem,
    );
    let (old_serial, old_key) = leaf_serial_and_key(&issued.certificate_pem);
    let (new_serial, new_key) = leaf_serial_and_key(&renewed.certificate_pem);
    assert_eq!(old_key, new_key);
    assert_ne!(old_serial, new_serial);
    assert_eq!(leaf_names(&renewed.certificate_pem).1, want);

    // Renewal without a certificate the CA issued is refused (here: a self-signed one).
    let stranger = rcgen::generate_simple_self_signed(vec!["svc.lab.test".into()]).unwrap();
    let refused = client.renew(
        &stranger.cert.pem(),
        &stranger.signing_key.serialize_pem(),
        now,
    );
    assert!(
        refused.is_err(),
        "renewal with a foreign certificate: {refused:?}"
    );

    // Bootstrap by fingerprint (the only unverified request), then fetch the root verified.
    let boot = StepCaClient::bootstrap(&proc.url, &root_fp).unwrap();
    assert_eq!(boot.root_fingerprint(), root_fp);
    assert_eq!(
        pem_der(&boot.fetch_root(&root_fp).unwrap()),
        pem_der(&ca.root_pem)
    );
    assert!(StepCaClient::bootstrap(&proc.url, &"00".repeat(32)).is_err());

    // A pinned fingerprint that does not match the root file is refused before any request.
    assert!(matches!(
        StepCaClient::new_pinned(&proc.url, &ca.root_pem, &"ab".repeat(32)),
        Err(StepCaError::RootFingerprintMismatch { .. })
    ));
    // Trusting another root: the TLS handshake fails.
    let other = make_test_ca("Other");
    let wrong = StepCaClient::new(&proc.url, &other.root_pem).unwrap();
    assert!(matches!(wrong.health(), Err(StepCaError::Io { .. })));

    // The example's whole manifest through this step-ca (the path `phoenix ca issue --step-ca`
    // takes): every file chains to *this* CA's root, and a second run issues nothing.
    let v = phoenix_model::validate_dir(&repo_root().join("examples/homelab"));
    let desired = v.desired.expect("examples/homelab builds");
    let issuer = StepCaIssuer::connect(
        client.clone(),
        ProvisionerKey::from_file_contents("ext-admin", &private_jwk).unwrap(),
    )
    .unwrap();
    let out = dir.join("delivered");
    let opts = IssueOptions {
        policy: RenewalPolicy::default(),
        apply_ownership: false,
    };
    let now = std::time::SystemTime::now();
    let first = issue_manifest(&desired, &issuer as &dyn LeafIssuer, &out, now, &opts);
    assert!(!first.has_errors(), "{first}");
    assert_eq!(first.issued(), desired.certificates.len(), "{first}");
    for e in &first.entries {
        let cert = fs::read_to_string(
            out.join(e.plan.destination.guest.to_string())
                .join(e.plan.destination.cert_path.trim_start_matches('/')),
        )
        .unwrap();
        let leaf_end =
            cert.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----\n".len();
        openssl_verify(dir, &ca.root_pem, &ca.intermediate_pem, &cert[..leaf_end]);
    }
    let second = issue_manifest(&desired, &issuer as &dyn LeafIssuer, &out, now, &opts);
    assert_eq!(
        (second.issued(), second.renewed(), second.kept()),
        (0, 0, desired.certificates.len()),
        "{second}"
    );
    drop(proc);
}

#[test]
fn rendered_ca_json() {
    let Some(bin) = step_ca_binary() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    let v = phoenix_model::validate_dir(&repo_root().join("examples/homelab"));
    let desired = v.desired.expect("examples/homelab builds");
    let (_, mesh_ip) = ca_guest_mesh_address(&desired).unwrap();

    let ca = make_test_ca("Rendered");
    let paths = StepCaPaths::under(&dir.to_string_lossy());
    fs::create_dir_all(dir.join("certs")).unwrap();
    fs::create_dir_all(dir.join("secrets")).unwrap();
    fs::write(&paths.root, &ca.root_pem).unwrap();
    fs::write(&paths.crt, &ca.intermediate_pem).unwrap();
    fs::write(&paths.key, &ca.intermediate_key_pem).unwrap();
    write(dir, "password", "unused\n");

    let generated = ProvisionerKey::generate(&desired.step_ca.provisioner).unwrap();
    let public = generated.key.public_jwk();
    let port = free_port();
    let rendered = ca_json(&CaJsonParams {
        settings: &desired.step_ca,
        mesh_address: mesh_ip,
        paths: &paths,
        provisioner_key: &public,
        claims: LeafClaims::default(),
        acme_provisioner: "acme",
    })
    // Loopback only (LAB.md): the mesh address does not exist on this machine.
    .with_listen(
        format!("127.0.0.1:{port}").parse().unwrap(),
        vec!["127.0.0.1".into(), "localhost".into()],
    );
    let ca_json_path = write(dir, "ca.json", &rendered.to_file_text());

    let mut proc = StepCaProcess::start(&bin, dir, &ca_json_path, port);
    let client = StepCaClient::new(&proc.url, &ca.root_pem).unwrap();
    proc.wait_healthy(&client);

    // The key as phoenix stores it (PKCS#8 PEM secret) and as step writes it (JWK).
    let name = &desired.step_ca.provisioner;
    for key_text in [
        generated.pkcs8_pem.expose().as_str(),
        generated.private_jwk.expose().as_str(),
    ] {
        let provisioner = ProvisionerKey::from_file_contents(name, key_text).unwrap();
        let req = CsrRequest {
            common_name: "portainer.internal.thinkheads.ai".into(),
            sans: vec![
                San::Dns("portainer.internal.thinkheads.ai".into()),
                San::Ip("127.0.0.1".parse().unwrap()),
            ],
        };
        let issued = client
            .sign(&req, &provisioner, OffsetDateTime::now_utc())
            .unwrap();
        openssl_verify(dir, &ca.root_pem, &ca.intermediate_pem, &issued.chain_pem);
        let (_, sans) = leaf_names(&issued.certificate_pem);
        assert_eq!(
            sans,
            BTreeSet::from([
                "portainer.internal.thinkheads.ai".into(),
                "127.0.0.1".into()
            ])
        );
        // Default leaf lifetime from the rendered claims: 24 h.
        let der = pem_der(&issued.certificate_pem);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let v = cert.validity();
        let secs = v.not_after.timestamp() - v.not_before.timestamp();
        assert!((86_400..=86_400 + 120).contains(&secs), "lifetime {secs} s");
    }

    // The manifest through step-ca: every homelab entry issued once, kept on a second look.
    let provisioner =
        ProvisionerKey::from_file_contents(name, generated.pkcs8_pem.expose()).unwrap();
    let issuer = StepCaIssuer::connect(client.clone(), provisioner).unwrap();
    let identity = issuer.identity();
    assert_eq!(
        identity.root_fingerprint,
        fingerprint_hex(&pem_der(&ca.root_pem))
    );
    let now = std::time::SystemTime::now();
    let policy = RenewalPolicy::default();
    assert!(!desired.certificates.is_empty());
    for entry in &desired.certificates {
        let mut req = LeafRequest::for_entry(entry);
        req.lifetime_hours = req.lifetime_hours.min(24);
        let missing = Existing {
            cert_pem: None,
            key_pem: None,
        };
        assert!(!decide(entry, &missing, &identity, now, &policy).is_keep());
        let leaf = issuer.issue(&req, now).unwrap();
        openssl_verify(dir, &ca.root_pem, &leaf.intermediates_pem, &leaf.leaf_pem);
        let cert_file = leaf.cert_file(false);
        let existing = Existing {
            cert_pem: Some(&cert_file),
            key_pem: Some(leaf.key.expose()),
        };
        let second = decide(entry, &existing, &identity, now, &policy);
        if entry.lifetime_hours <= 24 {
            assert!(second.is_keep(), "{}: {second:?}", entry.common_name);
        }
    }
    drop(proc);
}
