//! phoenix's Engine API client certificate (`docker::client_cert`) with a real scratch CA:
//! issued into `<CA dir>/engine-client` (key 0600 in a 0700 directory, CN phoenix, client
//! usage, chaining to the root for client auth), kept on the next call (same bytes), issued
//! again when the key no longer matches or the trust bundle changed; no key in any message.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::SystemTime;

use phoenix_exec::docker::client_cert::{CLIENT_NAME, client_dir, complete, decide, ensure};
use phoenix_model::model::CertKind;
use phoenix_pki::{CaOptions, CaStore};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn issued_kept_and_reissued_by_the_manifest_rule() {
    let scratch = tempfile::tempdir().unwrap();
    let ca_dir = scratch.path().join("ca");
    let now = SystemTime::now();
    let ca = CaStore::init(&ca_dir, &CaOptions::default(), now).unwrap();
    let root = ca.public().root_pem().to_string();
    let dir = client_dir(&ca_dir);
    assert_eq!(dir, ca_dir.join("engine-client"));
    assert!(!decide(&dir, &ca, &root, now).is_keep());

    let said = ensure(&dir, &ca, &root, now).unwrap().expect("issued");
    assert!(said.contains("issue"), "{said}");
    assert!(!said.contains("PRIVATE KEY"));
    assert!(complete(&dir));
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("key.pem")), 0o600);
    assert_eq!(std::fs::read_to_string(dir.join("ca.pem")).unwrap(), root);
    let cert = std::fs::read_to_string(dir.join("cert.pem")).unwrap();
    let leaf = phoenix_pki::parse_leaf_pem(&cert).unwrap();
    assert_eq!(leaf.common_name.as_deref(), Some(CLIENT_NAME));
    assert_eq!(leaf.kind, Some(CertKind::Client));
    phoenix_pki::verify_pem(&cert, &root, CLIENT_NAME, CertKind::Client, now).unwrap();

    // Kept: nothing written.
    assert_eq!(ensure(&dir, &ca, &root, now).unwrap(), None);
    assert_eq!(std::fs::read_to_string(dir.join("cert.pem")).unwrap(), cert);

    // A key that does not match the certificate: issued again.
    let other = phoenix_pki::parse_leaf_pem(&cert).unwrap();
    std::fs::write(dir.join("key.pem"), "not the key\n").unwrap();
    assert!(ensure(&dir, &ca, &root, now).unwrap().is_some());
    let renewed = std::fs::read_to_string(dir.join("cert.pem")).unwrap();
    assert_ne!(
        phoenix_pki::parse_leaf_pem(&renewed).unwrap().serial,
        other.serial
    );
    assert_eq!(mode(&dir.join("key.pem")), 0o600);

    // Another trust bundle (a rotation adds a root): issued again with the new ca.pem.
    let bundle = format!("{root}{root}");
    assert!(ensure(&dir, &ca, &bundle, now).unwrap().is_some());
    assert_eq!(std::fs::read_to_string(dir.join("ca.pem")).unwrap(), bundle);
    assert_eq!(ensure(&dir, &ca, &bundle, now).unwrap(), None);
}
