//! The CA directory: init, open, status (fingerprint as step expects), modes, encryption,
//! and that no key material leaks through Debug/serde output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use phoenix_pki::{CaPublic, CaStore, LeafIssuer, LeafRequest, Passphrase, PkiError};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_writes_private_files_and_status_matches_openssl() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let ca = init_ca(&dir, None);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("root.key")), 0o600);
    assert_eq!(mode(&dir.join("intermediate.key")), 0o600);
    assert_eq!(mode(&dir.join("root.crt")), 0o644);

    let status = ca.status().unwrap();
    let (ok, out) = openssl(&[
        "x509",
        "-in",
        dir.join("root.crt").to_str().unwrap(),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    assert!(ok, "{out}");
    let want = out
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_lowercase();
    assert_eq!(status.root_fingerprint, want);
    assert_eq!(status.root_fingerprint.len(), 64);
    // 10 y / 5 y validity.
    let day = 86_400;
    assert_eq!(
        status.root.not_after_unix - status.root.not_before_unix,
        3650 * day + 60
    );
    assert_eq!(
        status.intermediate.not_after_unix - status.intermediate.not_before_unix,
        1825 * day + 60
    );
    // Random 128-bit serial, not rcgen's key-derived default.
    assert_eq!(status.root.serial.len(), 32);
    assert_ne!(status.root.serial, status.intermediate.serial);

    // Extensions as openssl reads them.
    let (_, text) = openssl(&[
        "x509",
        "-in",
        dir.join("intermediate.crt").to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
    assert!(text.contains("X509v3 Subject Key Identifier"), "{text}");
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    let (_, text) = openssl(&[
        "x509",
        "-in",
        dir.join("root.crt").to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(text.contains("CA:TRUE, pathlen:1"), "{text}");
    assert!(text.contains("prime256v1"), "{text}");
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        dir.join("root.crt").to_str().unwrap(),
        dir.join("intermediate.crt").to_str().unwrap(),
    ]);
    assert!(ok, "{out}");

    // Reopen and status without keys.
    let public = CaPublic::load(&dir).unwrap();
    assert_eq!(public.root_fingerprint(), status.root_fingerprint);
    let again = CaStore::open(&dir, None).unwrap();
    assert_eq!(again.identity(), ca.identity());
    // Refuses a second init.
    assert!(matches!(
        CaStore::init(&dir, &phoenix_pki::CaOptions::default(), t0()),
        Err(PkiError::AlreadyInitialised { .. })
    ));
    // Display for the CLI.
    assert!(status.to_string().contains(&status.root_fingerprint));
}

#[test]
fn encrypted_keys_need_the_passphrase_and_openssl_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let pass = "correct horse battery staple";
    init_ca(&dir, Some(pass));
    let key = std::fs::read_to_string(dir.join("intermediate.key")).unwrap();
    assert!(key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    assert!(matches!(
        CaStore::open(&dir, None),
        Err(PkiError::PassphraseRequired { .. })
    ));
    let wrong = CaStore::open(&dir, Some(Passphrase::new(b"nope".to_vec())));
    assert!(matches!(wrong, Err(PkiError::Decrypt { .. })), "{wrong:?}");
    let ca = CaStore::open(&dir, Some(Passphrase::new(pass.as_bytes().to_vec()))).unwrap();
    let (ok, out) = openssl(&[
        "pkey",
        "-in",
        dir.join("root.key").to_str().unwrap(),
        "-passin",
        &format!("pass:{pass}"),
        "-noout",
    ]);
    assert!(ok, "{out}");
    // Rotation keeps the keys encrypted.
    let mut ca = ca;
    ca.rotate(t0()).unwrap();
    let key = std::fs::read_to_string(dir.join("root.key")).unwrap();
    assert!(key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    CaStore::open(&dir, Some(Passphrase::new(pass.as_bytes().to_vec()))).unwrap();
}

#[test]
fn no_key_material_or_passphrase_in_debug_display_or_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let pass = "s3cret-passphrase-xyz";
    let opts = phoenix_pki::CaOptions {
        passphrase: Some(Passphrase::new(pass.as_bytes().to_vec())),
        kdf_iterations: 1000,
        ..Default::default()
    };
    let ca = CaStore::init(&dir, &opts, t0()).unwrap();
    let desired = homelab();
    let out = tmp.path().join("out");
    let report = phoenix_pki::issue_manifest(&desired, &ca, &out, t0(), &Default::default());
    let entry = &desired.certificates[0];
    let leaf = ca.issue(&LeafRequest::for_entry(entry), t0()).unwrap();
    let status = ca.status().unwrap();
    let trust = phoenix_pki::trust_distribution(ca.public(), &desired).unwrap();
    let (plans, _) =
        phoenix_pki::plan_manifest(&desired, &ca.identity(), &out, t0(), &Default::default());
    let texts = [
        format!("{ca:?}"),
        format!("{opts:?}"),
        format!("{leaf:?}"),
        format!("{:?}", leaf.key),
        format!("{:?}", ca.public()),
        format!("{report:?}"),
        report.to_string(),
        serde_json::to_string(&report).unwrap(),
        format!("{status:?}"),
        status.to_string(),
        serde_json::to_string(&status).unwrap(),
        serde_json::to_string(&trust).unwrap(),
        serde_json::to_string(&plans).unwrap(),
        format!("{plans:?}"),
        format!("{:?}", ca.intermediate_key_pem()),
    ];
    for t in &texts {
        assert!(!t.contains("PRIVATE KEY"), "key marker leaked: {t}");
        assert!(!t.contains(pass), "passphrase leaked: {t}");
    }
    assert!(leaf.key.expose().contains("PRIVATE KEY"));
}
