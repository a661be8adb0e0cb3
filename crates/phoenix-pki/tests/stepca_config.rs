//! Golden test: step-ca's `ca.json` rendered for `examples/homelab` (CA guest 103 on the mesh,
//! 172.16.100.11:9000). The provisioner key is fixed so the snapshot is stable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use phoenix_pki::stepca::config::go_duration;
use phoenix_pki::stepca::{
    CaJsonParams, LeafClaims, PublicJwk, StepCaPaths, ca_guest_mesh_address, ca_json,
};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The public P-256 key of RFC 7515 appendix A.3; `kid` is its RFC 7638 thumbprint.
fn fixed_key() -> PublicJwk {
    PublicJwk {
        use_: "sig".into(),
        kty: "EC".into(),
        kid: "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U".into(),
        crv: "P-256".into(),
        alg: "ES256".into(),
        x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU".into(),
        y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0".into(),
    }
}

#[test]
fn homelab_ca_json() {
    let v = phoenix_model::validate_dir(&repo_root().join("examples/homelab"));
    let desired = v.desired.expect("examples/homelab builds");
    let (guest, mesh_ip) = ca_guest_mesh_address(&desired).unwrap();
    assert_eq!(guest.0, 103);
    assert_eq!(mesh_ip.to_string(), "172.16.100.11");

    let paths = StepCaPaths::default();
    let key = fixed_key();
    let ca = ca_json(&CaJsonParams {
        settings: &desired.step_ca,
        mesh_address: mesh_ip,
        paths: &paths,
        provisioner_key: &key,
        claims: LeafClaims::default(),
        acme_provisioner: "acme",
    });
    assert_eq!(ca.address, "172.16.100.11:9000");
    assert_eq!(
        ca.dns_names,
        vec![
            "ca.internal.thinkheads.ai".to_string(),
            "172.16.100.11".into()
        ]
    );
    let text = ca.to_file_text();
    // Only the intermediate key is referenced; nothing secret is in the file.
    assert!(!text.contains("root_ca_key"));
    assert!(!text.contains("PRIVATE"));
    assert!(!text.contains("encryptedKey"));
    insta::assert_snapshot!("homelab_ca_json", text);
}

#[test]
fn longer_max_lifetime_is_rendered() {
    let claims = LeafClaims {
        max_secs: 90 * 86_400,
        ..LeafClaims::default()
    };
    assert_eq!(go_duration(claims.max_secs), "2160h");
}
