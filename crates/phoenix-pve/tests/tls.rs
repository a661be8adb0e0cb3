//! TLS trust against fakepve: CA file and pinned fingerprint accepted, wrong ones refused;
//! the token secret never shows in errors or Debug output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{FakePve, SECRET, fakepve_available, make_ca};
use phoenix_pve::PveError;
use phoenix_pve::tls::TlsTrust;

#[test]
fn tls_trust_modes() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&serde_json::json!({}));
    // Each attempt on a fresh client; refused trust is final, so exactly one request each.
    let ok = |trust: TlsTrust| {
        let client = pve.client(trust);
        let r = client.get("/version", &[]);
        assert_eq!(client.counts().requests, 1, "no retry expected");
        r
    };

    ok(TlsTrust::CaFile(pve.pki.ca_pem.clone())).expect("CA file trust");
    ok(TlsTrust::Fingerprint(pve.pki.leaf_fingerprint)).expect("pinned fingerprint");

    let other = tempfile::tempdir().unwrap();
    let (wrong_ca, _) = make_ca(other.path(), "other-ca");
    let err = ok(TlsTrust::CaFile(wrong_ca)).expect_err("a wrong CA must fail");
    println!("wrong CA: {}", error_chain(&err));
    assert!(matches!(err, PveError::Transport { .. }), "{err:?}");

    let mut wrong_fp = pve.pki.leaf_fingerprint;
    wrong_fp[0] ^= 0xff;
    let err = ok(TlsTrust::Fingerprint(wrong_fp)).expect_err("a wrong pin must fail");
    println!("wrong pin: {}", error_chain(&err));
    assert!(matches!(err, PveError::Transport { .. }), "{err:?}");
    for text in [format!("{err}"), format!("{err:?}")] {
        assert!(!text.contains(SECRET), "secret leaked: {text}");
    }

    // A bad token: 401, and the secret is in neither the error nor the client's Debug.
    let mut settings = pve.settings(TlsTrust::CaFile(pve.pki.ca_pem.clone()));
    settings.auth = phoenix_pve::PveAuth::Token(
        phoenix_pve::ApiToken::parse(&format!("root@pam!phoenix={SECRET}-wrong")).unwrap(),
    );
    let client = phoenix_pve::PveClient::new(&settings).unwrap();
    let err = client.get("/version", &[]).expect_err("wrong secret");
    assert!(matches!(err, PveError::Http { status: 401, .. }), "{err:?}");
    for text in [
        format!("{err}"),
        format!("{err:?}"),
        format!("{client:?}"),
        format!("{settings:?}"),
    ] {
        assert!(!text.contains(SECRET), "secret leaked: {text}");
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut next = e.source();
    while let Some(s) = next {
        parts.push(s.to_string());
        next = s.source();
    }
    parts.join(": ")
}
