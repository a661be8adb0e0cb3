//! The manifest of `examples/homelab` issued into a scratch target root: openssl verify of
//! every certificate, SANs, modes, the second run issuing nothing, the renewal window,
//! rotation with an overlap, and located errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use phoenix_model::model::{CertKind, San};
use phoenix_pki::{
    Decision, IssueOptions, LeafIssuer, RenewReason, issue_manifest, plan_manifest,
    trust_distribution, verify_pem,
};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn homelab_issue_verify_and_second_run_keeps() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(&tmp.path().join("ca"), None);
    let desired = homelab();
    let out = tmp.path().join("out");
    let report = issue_manifest(&desired, &ca, &out, t0(), &IssueOptions::default());
    assert!(!report.has_errors(), "{report}");
    assert_eq!(report.issued(), desired.certificates.len());
    assert!(desired.certificates.len() >= 3);

    let root = tmp.path().join("ca/root.crt");
    let inter = tmp.path().join("ca/intermediate.crt");
    for (e, c) in report.entries.iter().zip(&desired.certificates) {
        let d = &e.plan.destination;
        assert!(d.cert_file.starts_with(out.join(c.guest.to_string())));
        let (ok, msg) = openssl(&[
            "verify",
            "-attime",
            &attime(t0()),
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            inter.to_str().unwrap(),
            d.cert_file.to_str().unwrap(),
        ]);
        assert!(ok, "{}: {msg}", c.common_name);
        assert_eq!(mode(&d.cert_file), 0o644);
        assert_eq!(mode(&d.key_file), c.key_mode);
        let (ok, sans) = openssl(&[
            "x509",
            "-in",
            d.cert_file.to_str().unwrap(),
            "-noout",
            "-ext",
            "subjectAltName",
        ]);
        assert!(ok, "{sans}");
        for s in &c.sans {
            let want = match s {
                San::Dns(n) => format!("DNS:{n}"),
                San::Ip(i) => format!("IP Address:{i}"),
            };
            assert!(sans.contains(&want), "{want} missing in {sans}");
        }
        // rustls-webpki agrees, for every SAN.
        let chain = std::fs::read_to_string(&d.cert_file).unwrap();
        for s in &c.sans {
            verify_pem(&chain, ca.public().root_pem(), &s.to_string(), c.kind, t0()).unwrap();
        }
        assert!(
            verify_pem(
                &chain,
                ca.public().root_pem(),
                "wrong.example",
                c.kind,
                t0()
            )
            .is_err()
        );
        // include_ca → leaf + intermediate + root in the file.
        let n = chain.matches("BEGIN CERTIFICATE").count();
        assert_eq!(n, if c.include_ca { 3 } else { 2 });
        assert_eq!(e.key_mode, format!("{:04o}", c.key_mode));
    }
    // Nginx's key reaches the guest's view of its mount: /etc/nginx/ssl (mount of 101).
    let nginx = &report.entries[0].plan.destination;
    assert_eq!(
        nginx.cert_path,
        "/etc/nginx/ssl/nginx.internal.thinkheads.ai.crt"
    );
    assert!(
        out.join("101/etc/nginx/ssl/nginx.internal.thinkheads.ai.key")
            .exists()
    );
    // Post-renewal actions are structured.
    assert!(
        report.entries[0]
            .plan
            .post_renewal
            .iter()
            .any(|a| a.to_string() == "reload service nginx in guest 101")
    );

    // Second run, an hour later: nothing issued.
    let again = issue_manifest(
        &desired,
        &ca,
        &out,
        t0() + hours(1),
        &IssueOptions::default(),
    );
    assert_eq!(
        (again.issued(), again.renewed(), again.kept()),
        (0, 0, desired.certificates.len()),
        "{again}"
    );
    assert!(again.entries.iter().all(|e| e.plan.post_renewal.is_empty()));

    // A mode drift is fixed without re-issuing.
    let key = &report.entries[1].plan.destination.key_file;
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let fixed = issue_manifest(
        &desired,
        &ca,
        &out,
        t0() + hours(2),
        &IssueOptions::default(),
    );
    assert_eq!(fixed.kept(), desired.certificates.len());
    assert_eq!(fixed.entries[1].modes_fixed, vec![key.clone()]);
    assert_eq!(mode(key), desired.certificates[1].key_mode);

    // Inside the renewal window (2/3 of 24 h = 16 h): renewed, with the reason.
    let plans = plan_manifest(
        &desired,
        &ca.identity(),
        &out,
        t0() + hours(17),
        &Default::default(),
    )
    .0;
    for p in &plans {
        match &p.decision {
            Decision::Renew { reasons } => {
                assert!(
                    matches!(reasons[..], [RenewReason::RenewalWindow { .. }]),
                    "{reasons:?}"
                )
            }
            d => panic!("{d:?}"),
        }
    }
    let plans = plan_manifest(
        &desired,
        &ca.identity(),
        &out,
        t0() + hours(15),
        &Default::default(),
    )
    .0;
    assert!(plans.iter().all(|p| p.decision.is_keep()));
}

#[test]
fn san_and_kind_changes_are_renewals_order_insensitive() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(&tmp.path().join("ca"), None);
    let mut desired = homelab();
    let out = tmp.path().join("out");
    issue_manifest(&desired, &ca, &out, t0(), &IssueOptions::default());
    // Reordering SANs changes nothing (the bash system re-issued IP-SAN entries every run).
    desired.certificates[0].sans.reverse();
    let (plans, _) = plan_manifest(&desired, &ca.identity(), &out, t0(), &Default::default());
    assert!(plans[0].decision.is_keep(), "{:?}", plans[0].decision);
    // A new IP SAN → renew, naming it.
    desired.certificates[0]
        .sans
        .push(San::Ip("172.16.100.99".parse().unwrap()));
    desired.certificates[1].kind = CertKind::Client;
    desired.certificates[2].common_name = "other.internal.thinkheads.ai".to_string();
    let (plans, _) = plan_manifest(&desired, &ca.identity(), &out, t0(), &Default::default());
    let reasons = |i: usize| match &plans[i].decision {
        Decision::Renew { reasons } => reasons.clone(),
        d => panic!("{d:?}"),
    };
    assert_eq!(
        reasons(0),
        vec![RenewReason::SansDiffer {
            missing: vec!["IP:172.16.100.99".into()],
            unexpected: vec![]
        }]
    );
    assert!(matches!(reasons(1)[..], [RenewReason::UsageChanged { .. }]));
    assert!(matches!(
        reasons(2)[..],
        [RenewReason::CommonNameDiffers { .. }]
    ));
    // A missing key is a renewal too; a garbage certificate is "unparseable".
    std::fs::remove_file(&plans[0].destination.key_file).unwrap();
    std::fs::write(&plans[1].destination.cert_file, "garbage").unwrap();
    let (plans, _) = plan_manifest(&desired, &ca.identity(), &out, t0(), &Default::default());
    assert!(
        matches!(&plans[0].decision, Decision::Renew { reasons } if reasons.contains(&RenewReason::KeyMissing))
    );
    assert!(
        matches!(&plans[1].decision, Decision::Renew { reasons } if matches!(reasons[..], [RenewReason::Unparseable { .. }]))
    );
    let report = issue_manifest(&desired, &ca, &out, t0(), &IssueOptions::default());
    assert_eq!(report.renewed(), 3, "{report}");
    let again = issue_manifest(&desired, &ca, &out, t0(), &IssueOptions::default());
    assert_eq!(again.kept(), 3, "{again}");
}

#[test]
fn rotation_reissues_everything_with_an_overlap() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ca = init_ca(&tmp.path().join("ca"), None);
    let desired = homelab();
    let out = tmp.path().join("out");
    issue_manifest(&desired, &ca, &out, t0(), &IssueOptions::default());
    let old_root = ca.public().root_pem().to_string();
    let old_fp = ca.public().root_fingerprint().to_string();

    let status = ca.rotate(t0() + hours(1)).unwrap();
    assert_eq!(status.generation, 2);
    assert_ne!(status.root_fingerprint, old_fp);
    assert_eq!(status.previous_roots.len(), 1);
    // Every certificate planned for re-issue because the issuer changed.
    let (plans, _) = plan_manifest(
        &desired,
        &ca.identity(),
        &out,
        t0() + hours(1),
        &Default::default(),
    );
    for p in &plans {
        assert!(
            matches!(&p.decision, Decision::Renew { reasons } if matches!(reasons[..], [RenewReason::IssuerChanged { .. }])),
            "{:?}",
            p.decision
        );
    }
    // During the overlap both roots are trusted, current first.
    let trust = trust_distribution(ca.public(), &desired).unwrap();
    assert_eq!(trust.roots.len(), 2);
    assert!(trust.roots[0].current && trust.roots[0].fingerprint_sha256 == status.root_fingerprint);
    assert_eq!(trust.roots[1].fingerprint_sha256, old_fp);
    assert!(trust.bundle_pem.contains(old_root.lines().nth(1).unwrap()));
    // Old leaves still verify against the bundle (no outage), and not against the new root alone.
    let old_chain = std::fs::read_to_string(&plans[0].destination.cert_file).unwrap();
    let name = desired.certificates[0].sans[0].to_string();
    verify_pem(
        &old_chain,
        &trust.bundle_pem,
        &name,
        CertKind::Server,
        t0() + hours(1),
    )
    .unwrap();
    assert!(
        verify_pem(
            &old_chain,
            ca.public().root_pem(),
            &name,
            CertKind::Server,
            t0() + hours(1)
        )
        .is_err()
    );
    // Re-issue: everything renewed, chains to the new root.
    let report = issue_manifest(
        &desired,
        &ca,
        &out,
        t0() + hours(1),
        &IssueOptions::default(),
    );
    assert_eq!(report.renewed(), desired.certificates.len(), "{report}");
    let root = tmp.path().join("ca/root.crt");
    let inter = tmp.path().join("ca/intermediate.crt");
    for e in &report.entries {
        let (ok, msg) = openssl(&[
            "verify",
            "-attime",
            &attime(t0() + hours(1)),
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            inter.to_str().unwrap(),
            e.plan.destination.cert_file.to_str().unwrap(),
        ]);
        assert!(ok, "{msg}");
    }
    // Nothing chains to the old root any more → dropped from trust.
    let ids = report.issuer_key_ids().unwrap();
    assert_eq!(ids.len(), 1);
    let dropped = ca.public_mut().prune_previous(&ids).unwrap();
    assert_eq!(dropped, vec![old_fp.clone()]);
    let trust = trust_distribution(ca.public(), &desired).unwrap();
    assert_eq!(trust.roots.len(), 1);
    // Persisted: a reopened CA no longer lists the old root.
    let reopened = phoenix_pki::CaPublic::load(&tmp.path().join("ca")).unwrap();
    assert!(reopened.previous().is_empty());
}

/// An issuer that fails for one common name (a delivery failure mid-run).
struct FailFor<'a>(&'a phoenix_pki::CaStore, String);

impl LeafIssuer for FailFor<'_> {
    fn identity(&self) -> phoenix_pki::IssuerIdentity {
        self.0.identity()
    }
    fn issue(
        &self,
        req: &phoenix_pki::LeafRequest<'_>,
        now: std::time::SystemTime,
    ) -> Result<phoenix_pki::IssuedLeaf, phoenix_pki::PkiError> {
        if req.common_name == self.1 {
            return Err(phoenix_pki::PkiError::Random);
        }
        self.0.issue(req, now)
    }
}

#[test]
fn prune_keeps_previous_root_while_a_certificate_chains_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ca = init_ca(&tmp.path().join("ca"), None);
    let desired = homelab();
    let out = tmp.path().join("out");
    let first = issue_manifest(&desired, &ca, &out, t0(), &IssueOptions::default());
    let old_key_id = ca.identity().intermediate_key_id;
    ca.rotate(t0()).unwrap();
    let failing = FailFor(&ca, desired.certificates[0].common_name.clone());
    let report = issue_manifest(&desired, &failing, &out, t0(), &IssueOptions::default());
    assert_eq!(
        (report.failed(), report.renewed()),
        (1, desired.certificates.len() - 1),
        "{report}"
    );
    // The failed entry's old certificate is still in place and still chains to the old root.
    assert_eq!(
        report.entries[0].issuer_key_id.as_deref(),
        Some(old_key_id.as_str())
    );
    assert!(first.issuer_key_ids().unwrap().contains(&old_key_id));
    // After a run with failures there is no prune input at all.
    assert!(report.issuer_key_ids().is_none());
    // Pruning with the old issuer still in use keeps the old root.
    let in_use = [old_key_id.clone(), ca.identity().intermediate_key_id].into();
    assert!(ca.public_mut().prune_previous(&in_use).unwrap().is_empty());
    assert_eq!(ca.public().previous().len(), 1);
    assert_eq!(
        trust_distribution(ca.public(), &desired)
            .unwrap()
            .roots
            .len(),
        2
    );
}

#[test]
fn bad_input_gives_located_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(&tmp.path().join("ca"), None);
    let mut desired = homelab();
    let out = tmp.path().join("out");
    desired.certificates[0].guest = phoenix_model::model::GuestId(4242);
    desired.certificates[1].sans.push(San::Dns("*.com".into()));
    desired.certificates[2].cert_path = "/mnt/../../etc/passwd".into();
    let report = issue_manifest(&desired, &ca, &out, t0(), &IssueOptions::default());
    assert_eq!(report.failed(), 3, "{report}");
    let text = report.to_string();
    assert!(
        text.contains("guest 4242, which the configuration does not define"),
        "{text}"
    );
    assert!(text.contains("invalid SAN `*.com`"), "{text}");
    assert!(text.contains("`..` is not allowed"), "{text}");
    // Nothing escaped the target root.
    assert!(!tmp.path().join("etc").exists());
    // Issuing directly validates too: wildcard misuse and malformed names.
    let mut c = homelab().certificates[0].clone();
    for bad in [
        "foo.*.example.com",
        "f*o.example.com",
        "-bad.example.com",
        "a..b",
    ] {
        c.sans = vec![San::Dns(bad.into())];
        let e = ca
            .issue(&phoenix_pki::LeafRequest::for_entry(&c), t0())
            .unwrap_err();
        assert!(e.to_string().contains(bad), "{e}");
    }
    c.kind = CertKind::Client;
    c.sans = vec![San::Dns("*.internal.example".into())];
    assert!(
        ca.issue(&phoenix_pki::LeafRequest::for_entry(&c), t0())
            .is_err()
    );
}

#[test]
fn rootesting_post_renewal_commands_become_structured_actions() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(&tmp.path().join("ca"), None);
    let desired = rootesting();
    let (plans, _) = plan_manifest(
        &desired,
        &ca.identity(),
        tmp.path(),
        t0(),
        &Default::default(),
    );
    let actions: Vec<String> = plans
        .iter()
        .flat_map(|p| p.post_renewal.iter().map(ToString::to_string))
        .collect();
    let all = actions.join("\n");
    assert!(all.contains("reload service nginx in guest 101"), "{all}");
    assert!(
        all.contains("restart service traefik in guest 102"),
        "{all}"
    );
    assert!(all.contains(
        "rotate docker secret portainer_tls_key.pem (from Key) in guest 1001 and update service production_portainer_service_portainer"
    ), "{all}");
    // The shell string is carried verbatim and never executed.
    assert!(plans.iter().any(|p| {
        p.post_renewal_command
            .as_deref()
            .is_some_and(|c| c.contains("docker secret rm"))
    }));
}

#[test]
fn key_type_change_is_a_renewal() {
    use rcgen::{
        CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType,
    };
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(&tmp.path().join("ca"), None);
    let entry = homelab().certificates[0].clone();
    let signer = KeyPair::from_pem(ca.intermediate_key_pem().expose()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(ca.public().intermediate_pem(), signer).unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, entry.common_name.as_str());
    p.subject_alt_names = entry
        .sans
        .iter()
        .map(|s| match s {
            San::Dns(d) => SanType::DnsName(d.as_str().try_into().unwrap()),
            San::Ip(i) => SanType::IpAddress(*i),
        })
        .collect();
    p.is_ca = IsCa::ExplicitNoCa;
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    p.not_before = time::OffsetDateTime::from_unix_timestamp(1_780_272_000 - 60).unwrap();
    p.not_after = time::OffsetDateTime::from_unix_timestamp(1_780_272_000 + 86_400).unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cert = p.signed_by(&key, &issuer).unwrap();
    let existing = phoenix_pki::Existing {
        cert_pem: Some(&cert.pem()),
        key_pem: Some(&key.serialize_pem()),
    };
    let d = phoenix_pki::decide(&entry, &existing, &ca.identity(), t0(), &Default::default());
    assert!(
        matches!(&d, Decision::Renew { reasons } if matches!(reasons[..], [RenewReason::KeyTypeChanged { .. }])),
        "{d:?}"
    );
}

/// The planner decides from observed facts (`decide_leaf`), `ca issue` from the files
/// (`decide`): one rule, so both agree — fresh, inside the window, after a rotation.
#[test]
fn observed_facts_and_files_decide_alike() {
    use phoenix_pki::issue::unix_seconds;
    use phoenix_pki::{Existing, KeyState, RenewalPolicy, decide, decide_leaf, parse_leaf_pem};
    let tmp = tempfile::tempdir().unwrap();
    let mut ca = init_ca(&tmp.path().join("ca"), None);
    let desired = homelab();
    let out = tmp.path().join("out");
    let report = issue_manifest(&desired, &ca, &out, t0(), &IssueOptions::default());
    assert!(!report.has_errors(), "{report}");
    let policy = RenewalPolicy::default();
    let first = ca.identity();
    ca.rotate(t0()).unwrap();
    let second = ca.identity();
    for (identity, now) in [
        (&first, t0()),
        (&first, t0() + hours(17)),
        (&second, t0() + hours(1)),
    ] {
        for (e, c) in report.entries.iter().zip(&desired.certificates) {
            let d = &e.plan.destination;
            let cert = std::fs::read_to_string(&d.cert_file).unwrap();
            let key = std::fs::read_to_string(&d.key_file).unwrap();
            let existing = Existing {
                cert_pem: Some(&cert),
                key_pem: Some(&key),
            };
            let from_files = decide(c, &existing, identity, now, &policy);
            let info = parse_leaf_pem(&cert).unwrap();
            let from_facts = decide_leaf(
                c,
                Some(&info),
                KeyState::Matches,
                identity,
                unix_seconds(now),
                &policy,
            );
            assert_eq!(from_files, from_facts, "{}", c.common_name);
        }
    }
    // No certificate: issue, whoever issues.
    let c = &desired.certificates[0];
    assert!(matches!(
        decide_leaf(c, None, KeyState::NotObserved, &first, 0, &policy),
        Decision::Issue { .. }
    ));
}
