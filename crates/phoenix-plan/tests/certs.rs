//! Certificates and trust in the plan, with a real scratch CA: issue on an empty host, keep
//! after a fresh issuance, renew near expiry / on a SAN change / after a rotation (both roots
//! trusted), trust files and `update-ca-certificates` for the host and every non-template
//! guest, idempotence against the model executor, the bash strings shown verbatim and never
//! run, no key material anywhere, and the note when no CA is given.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use common::{T0, ca_and_rotated, context, desired, execute, execute_with, homelab};
use phoenix_model::model::DesiredState;
use phoenix_pki::trust::TRUST_FILE;
use phoenix_pki::{Decision, RenewReason};
use phoenix_plan::action::{Action, Reason};
use phoenix_plan::observed::ObservedState;
use phoenix_plan::plan::FileStatus;
use phoenix_plan::{Plan, PlanContext, Request, plan_with};
use phoenix_render::{FileTarget, RenderOptions};

fn sync(d: &DesiredState, o: &ObservedState, ctx: &PlanContext) -> Plan {
    plan_with(d, o, &Request::SyncAll, &RenderOptions::default(), ctx)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn issued(p: &Plan) -> Vec<(&str, &Decision)> {
    p.actions()
        .filter_map(|a| match a {
            Action::IssueCertificate {
                common_name,
                decision,
                ..
            } => Some((common_name.as_str(), decision)),
            _ => None,
        })
        .collect()
}

/// Host + every non-template guest.
fn trust_targets(d: &DesiredState) -> Vec<FileTarget> {
    let mut t = vec![FileTarget::Host];
    t.extend(
        d.guests
            .values()
            .filter(|g| !g.is_template)
            .map(|g| FileTarget::Guest(g.id)),
    );
    t
}

fn renew_reasons<'a>(p: &'a Plan, cn: &str) -> &'a [RenewReason] {
    issued(p)
        .into_iter()
        .find(|(c, _)| *c == cn)
        .and_then(|(_, d)| match d {
            Decision::Renew { reasons } => Some(reasons.as_slice()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{cn} is not renewed: {:#?}", p.waves))
}

#[test]
fn empty_host_issues_every_entry_and_trusts_everywhere() {
    let d = homelab();
    let (ca, _) = ca_and_rotated();
    let ctx = context(&ca, &d, T0);
    let p = sync(&d, &ObservedState::default(), &ctx);
    let issued = issued(&p);
    let delivered = phoenix_plan::certs::delivered_certificates(&d);
    // The manifest's entries and the two Swarm VMs' Engine API certificates.
    assert_eq!(delivered.len(), d.certificates.len() + 2);
    assert_eq!(issued.len(), delivered.len());
    assert!(!issued.is_empty());
    assert!(
        issued
            .iter()
            .all(|(_, dec)| matches!(dec, Decision::Issue { .. }))
    );
    assert_eq!(p.certificates.len(), delivered.len());
    for t in trust_targets(&d) {
        let f = p
            .files
            .iter()
            .find(|f| f.file.target == t && f.file.path == TRUST_FILE)
            .unwrap_or_else(|| panic!("no trust file for {t:?}"));
        assert_eq!(f.status, FileStatus::Create);
        assert_eq!(f.file.content.trim_end(), ca.root_pem().trim_end());
        assert!(
            p.actions()
                .any(|a| matches!(a, Action::UpdateTrustStore { target, .. } if *target == t)),
            "no update-ca-certificates on {t:?}"
        );
    }
    // Templates get no trust file.
    for g in d.guests.values().filter(|g| g.is_template) {
        assert!(
            !p.files
                .iter()
                .any(|f| f.file.target == FileTarget::Guest(g.id) && f.file.path == TRUST_FILE)
        );
    }
    // Order: starts, then trust, then certificates, then files inside guests.
    let names: Vec<&str> = p.waves.iter().map(|w| w.name.as_str()).collect();
    let pos = |n: &str| names.iter().position(|w| w.starts_with(n));
    let (trust, certs, files) = (pos("trust"), pos("certificates"), pos("files inside"));
    assert!(
        trust.is_some() && certs.is_some() && files.is_some(),
        "{names:?}"
    );
    assert!(trust < certs && certs < files, "{names:?}");
    let last_start = names.iter().rposition(|w| *w == "start");
    assert!(last_start < trust, "{names:?}");
    assert!(p.notes.is_empty(), "{:?}", p.notes);
}

#[test]
fn no_key_material_in_the_plan() {
    let d = homelab();
    let (ca, rotated) = ca_and_rotated();
    let first = sync(&d, &ObservedState::default(), &context(&ca, &d, T0));
    let after = execute_with(&d, &first, &ObservedState::default(), &context(&ca, &d, T0));
    let second = sync(&d, &after, &context(&rotated, &d, T0));
    for p in [first, second] {
        let json = serde_json::to_string(&p).unwrap_or_else(|e| panic!("{e}"));
        let text = phoenix_plan::display::text(&p, false);
        for out in [json, text] {
            assert!(!out.contains("PRIVATE KEY"), "key material in the plan");
            assert!(out.contains("BEGIN CERTIFICATE") || !out.contains("BEGIN"));
        }
    }
}

#[test]
fn fresh_issuance_keeps_and_trust_is_idempotent() {
    let d = homelab();
    let (ca, _) = ca_and_rotated();
    let ctx = context(&ca, &d, T0);
    let first = sync(&d, &ObservedState::default(), &ctx);
    let after = execute_with(&d, &first, &ObservedState::default(), &ctx);
    // An hour later: nothing to do, every entry kept and listed as such.
    let later = context(&ca, &d, T0 + 3600);
    let second = sync(&d, &after, &later);
    assert!(second.is_empty(), "{:#?}", second.waves);
    assert!(
        second
            .certificates
            .iter()
            .all(|c| c.decision.as_ref().is_some_and(Decision::is_keep))
    );
    let text = phoenix_plan::display::text(&second, false);
    assert!(text.contains(": keep (renew after "), "{text}");
}

#[test]
fn nearing_expiry_renews_inside_the_window() {
    let d = homelab();
    let (ca, _) = ca_and_rotated();
    let ctx = context(&ca, &d, T0);
    let mut o = execute_with(
        &d,
        &sync(&d, &ObservedState::default(), &ctx),
        &ObservedState::default(),
        &ctx,
    );
    let cn = d.certificates[0].common_name.clone();
    let c = o
        .certificates
        .iter_mut()
        .find(|c| c.common_name.as_deref() == Some(cn.as_str()))
        .unwrap_or_else(|| panic!("{cn} not observed"));
    // 24 h lifetime, 20 h gone: past two thirds.
    c.not_before = T0 - 20 * 3600;
    c.not_after = T0 + 4 * 3600;
    let p = sync(&d, &o, &ctx);
    assert_eq!(issued(&p).len(), 1, "{:#?}", p.waves);
    let reasons = renew_reasons(&p, &cn);
    assert!(
        matches!(reasons, [RenewReason::RenewalWindow { .. }]),
        "{reasons:?}"
    );
    assert!(phoenix_plan::display::text(&p, false).contains("inside renewal window since"),);
    assert_eq!(p.summary.change, 1);
}

#[test]
fn san_change_renews_with_that_reason() {
    let d = homelab();
    let (ca, _) = ca_and_rotated();
    let ctx = context(&ca, &d, T0);
    let mut o = execute_with(
        &d,
        &sync(&d, &ObservedState::default(), &ctx),
        &ObservedState::default(),
        &ctx,
    );
    let cn = d.certificates[1].common_name.clone();
    if let Some(c) = o
        .certificates
        .iter_mut()
        .find(|c| c.common_name.as_deref() == Some(cn.as_str()))
    {
        c.sans.pop();
        c.sans.push("DNS:old.example".into());
    }
    let p = sync(&d, &o, &ctx);
    assert_eq!(issued(&p).len(), 1);
    match renew_reasons(&p, &cn) {
        [
            RenewReason::SansDiffer {
                unexpected,
                missing,
            },
        ] => {
            assert_eq!(unexpected, &vec!["DNS:old.example".to_string()]);
            assert_eq!(missing.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    // Order does not matter.
    if let Some(c) = o
        .certificates
        .iter_mut()
        .find(|c| c.common_name.as_deref() == Some(cn.as_str()))
    {
        c.sans.clear();
        let mut sans: Vec<String> = d.certificates[1]
            .sans
            .iter()
            .map(phoenix_pki::san_text)
            .collect();
        sans.reverse();
        c.sans = sans;
    }
    assert!(sync(&d, &o, &ctx).is_empty());
}

#[test]
fn rotation_renews_everything_and_trusts_both_roots() {
    let d = homelab();
    let (ca, rotated) = ca_and_rotated();
    let before = context(&ca, &d, T0);
    let o = execute_with(
        &d,
        &sync(&d, &ObservedState::default(), &before),
        &ObservedState::default(),
        &before,
    );
    let ctx = context(&rotated, &d, T0 + 60);
    let p = sync(&d, &o, &ctx);
    let issued = issued(&p);
    assert_eq!(
        issued.len(),
        phoenix_plan::certs::delivered_certificates(&d).len()
    );
    for e in &d.certificates {
        let reasons = renew_reasons(&p, &e.common_name);
        assert!(
            matches!(reasons, [RenewReason::IssuerChanged { .. }]),
            "{reasons:?}"
        );
    }
    assert!(phoenix_plan::display::text(&p, false).contains("issuer changed"));
    for t in trust_targets(&d) {
        let f = p
            .files
            .iter()
            .find(|f| f.file.target == t && f.file.path == TRUST_FILE)
            .unwrap_or_else(|| panic!("no trust file for {t:?}"));
        assert_eq!(f.status, FileStatus::Update);
        assert_eq!(f.file.content.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(f.file.content.starts_with(rotated.root_pem().trim_end()));
        assert!(f.file.content.contains(ca.root_pem().trim_end()));
        assert!(p.actions().any(|a| matches!(a,
            Action::UpdateTrustStore { target, reason: Reason::FileChanged { .. } } if *target == t)));
    }
    // Trust consumers re-read the bundle.
    for (role, service) in [
        (d.roles.internal_proxy, "traefik"),
        (d.roles.gateway, "nginx"),
    ] {
        if let Some(id) = role {
            assert!(p.actions().any(|a| matches!(a,
                Action::ReloadService { target: FileTarget::Guest(g), service: s, .. }
                    if *g == id && s == service)));
        }
    }
    // And once executed, the rotated plan is converged.
    let after = execute_with(&d, &p, &o, &ctx);
    assert!(sync(&d, &after, &ctx).is_empty());
}

#[test]
fn bash_strings_are_shown_verbatim_and_not_run() {
    let d = desired("rootesting-2025-11-25");
    let (ca, _) = ca_and_rotated();
    for ctx in [PlanContext::default(), context(&ca, &d, T0)] {
        let p = sync(&d, &ObservedState::default(), &ctx);
        let text = phoenix_plan::display::text(&p, false);
        let commands: Vec<&String> = d
            .certificates
            .iter()
            .filter_map(|c| c.post_renewal_command.as_ref())
            .collect();
        assert!(!commands.is_empty());
        for cmd in commands {
            assert!(
                text.contains(&format!("post_renewal_command (not run): {cmd}")),
                "{cmd} not shown verbatim"
            );
        }
        // The structured actions are in the plan too.
        assert!(text.contains("      then "), "{text}");
    }
}

#[test]
fn without_a_ca_missing_certificates_are_issued_and_the_plan_says_what_it_skipped() {
    let d = homelab();
    let ctx = PlanContext::default();
    let p = sync(&d, &ObservedState::default(), &ctx);
    assert_eq!(
        issued(&p).len(),
        phoenix_plan::certs::delivered_certificates(&d).len()
    );
    assert!(!p.files.iter().any(|f| f.file.path == TRUST_FILE));
    assert_eq!(p.notes.len(), 1);
    let text = phoenix_plan::display::text(&p, false);
    assert!(text.contains("note: no CA given"), "{text}");
    // Existing certificates are listed as not checked, and nothing is planned for them.
    let after = execute(&d, &p, &ObservedState::default());
    let again = sync(&d, &after, &ctx);
    assert!(again.is_empty(), "{:#?}", again.waves);
    assert!(again.certificates.iter().all(|c| c.decision.is_none()));
    assert!(phoenix_plan::display::text(&again, false).contains("not checked (no CA given)"));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    /// With a CA: from any mix of missing / ageing / drifted certificates and stale or
    /// missing trust files, executing the plan gives a state that plans to nothing.
    #[test]
    fn certificates_and_trust_converge(
        which in 0usize..2,
        rotate in proptest::bool::ANY,
        drift in proptest::collection::vec(0u8..6, 16),
    ) {
        let d = if which == 0 { desired("rootesting-2025-11-25") } else { homelab() };
        let (ca, rotated) = ca_and_rotated();
        let ctx0 = context(&ca, &d, T0);
        let full = execute_with(&d, &sync(&d, &ObservedState::default(), &ctx0), &ObservedState::default(), &ctx0);
        let mut partial = full.clone();
        let mut i = 0;
        partial.certificates.retain(|_| { i += 1; drift[i % drift.len()] != 0 });
        for (i, c) in partial.certificates.iter_mut().enumerate() {
            match drift[(i + 3) % drift.len()] {
                1 => { c.not_before = T0 - 30 * 3600; c.not_after = T0 - 3600; }
                2 => { c.sans.push("DNS:extra.example".into()); }
                3 => { c.key_type = None; }
                4 => { c.key = Some(phoenix_plan::observed::ObservedKey::Mismatch); }
                _ => {}
            }
        }
        let mut j = 0;
        partial.files.retain(|f| { j += 1; f.path != TRUST_FILE || drift[j % drift.len()] != 5 });
        let ctx = if rotate { context(&rotated, &d, T0 + 60) } else { context(&ca, &d, T0 + 60) };
        let p = sync(&d, &partial, &ctx);
        let after = execute_with(&d, &p, &partial, &ctx);
        let again = sync(&d, &after, &ctx);
        proptest::prop_assert!(again.is_empty(), "not converged: {:#?}", again.waves);
    }
}

/// Each Swarm VM gets an Engine API server certificate the plan derives (not in the manifest):
/// CN its name, SANs its name and every static address (mesh and management), at the paths
/// its daemon.json names, key 0600, docker restarted after a renewal; executed, it is kept.
#[test]
fn swarm_vms_get_derived_engine_certificates_kept_once_issued() {
    let d = homelab();
    let (ca, _) = ca_and_rotated();
    let ctx = context(&ca, &d, T0);
    let p = sync(&d, &ObservedState::default(), &ctx);
    let engine: Vec<_> = p
        .actions()
        .filter_map(|a| match a {
            Action::IssueCertificate {
                guest,
                common_name,
                sans,
                cert_path,
                key_path,
                key_mode,
                kind,
                post_renewal,
                ..
            } if cert_path == phoenix_render::dockerd::SERVER_CERT => Some((
                *guest,
                common_name.clone(),
                sans.clone(),
                key_path.clone(),
                *key_mode,
                *kind,
                post_renewal.clone(),
            )),
            _ => None,
        })
        .collect();
    let swarm: Vec<_> = d
        .guests
        .values()
        .filter(|g| g.swarm.is_some())
        .map(|g| g.id)
        .collect();
    assert_eq!(engine.iter().map(|e| e.0).collect::<Vec<_>>(), swarm);
    assert!(
        !d.certificates
            .iter()
            .any(|c| c.cert_path == phoenix_render::dockerd::SERVER_CERT)
    );
    for (guest, cn, sans, key_path, key_mode, kind, post) in &engine {
        let g = &d.guests[guest];
        assert_eq!(cn, &g.name);
        assert!(sans.contains(&format!("DNS:{}", g.name)), "{sans:?}");
        let mesh = d.mesh().unwrap().name.clone();
        let mesh_addr = g.static_on(&mesh).and_then(|n| n.address()).unwrap();
        let mgmt = &d.bridges[0].name;
        let mgmt_addr = g.static_on(mgmt).and_then(|n| n.address());
        assert!(sans.contains(&format!("IP:{mesh_addr}")), "{sans:?}");
        let mgmt_addr = mgmt_addr.expect("homelab's Swarm VMs have a management address");
        assert!(sans.contains(&format!("IP:{mgmt_addr}")), "{sans:?}");
        assert_eq!(key_path, phoenix_render::dockerd::SERVER_KEY);
        assert_eq!(*key_mode, 0o600);
        assert_eq!(*kind, phoenix_model::model::CertKind::Server);
        assert_eq!(
            post.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            vec![format!("restart service docker in guest {guest}")]
        );
    }
    // Executed, a second plan keeps them.
    let o = execute_with(&d, &p, &ObservedState::default(), &ctx);
    let again = sync(&d, &o, &ctx);
    assert!(issued(&again).is_empty(), "{:#?}", issued(&again));
}
