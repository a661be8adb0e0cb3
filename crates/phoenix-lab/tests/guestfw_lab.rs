//! Guest firewalls in the lab, checked with real traffic: `examples/homelab` up in namespaces,
//! every guest's compiled ruleset loaded with [`guestfw::load`] (fingerprint read back), then
//! the `fw` group of `phoenix verify --target lab` (the reachability matrix) passes with
//! allowed *and* denied pairs; then two faults make exactly the affected fw checks fail with
//! evidence: (a) guest 1001 loses the rule admitting the hypervisor to Portainer's 9443,
//! (b) guest 102's policy_in flips to ACCEPT, so a denied pair connects. Root only; see
//! `common::lab_available`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::*;
use phoenix_lab::topology::LabTopology;
use phoenix_lab::{LabGuard, UpOptions, guestfw, up};
use phoenix_model::model::{DesiredState, GuestId, Verdict};
use phoenix_verify::lab::{Deadlines, LabPlaces, plan, verify};
use phoenix_verify::{ProbeResult, Status};

/// Load the rulesets of `d` for the guests in `only` (all when empty); check the fingerprint.
fn load(prefix: &str, d: &DesiredState, t: &LabTopology, only: &[&str]) {
    for (ns, text) in guestfw::rulesets(d, t) {
        if !only.is_empty() && !only.iter().any(|g| ns.ends_with(&format!("-g{g}"))) {
            continue;
        }
        guestfw::load(&ns, &text, &phoenix_lab::state_dir(prefix)).expect("nft -f");
        assert_eq!(
            guestfw::observed_fingerprint(&ns),
            guestfw::fingerprint_of(&text),
            "{ns}"
        );
    }
}

/// The fw group of a verify run against the desired state `d`.
fn fw_results(d: &DesiredState, p: &LabPlaces) -> Vec<ProbeResult> {
    let t0 = Instant::now();
    let report = verify(&plan(d, p), &Deadlines::default());
    eprintln!("verify: {:?}", t0.elapsed());
    for r in report.results.iter().filter(|r| !r.id.starts_with("fw/")) {
        if r.is_fail() {
            eprintln!("note: non-fw failure: {} {:?}", r.check, r.status);
        }
    }
    report
        .results
        .into_iter()
        .filter(|r| r.id.starts_with("fw/"))
        .collect()
}

/// The failing pairs (the `fw/matrix` summary aside; see [`matrix_names`]).
fn failing(fw: &[ProbeResult]) -> Vec<(&str, &str)> {
    fw.iter()
        .filter(|r| r.id != "fw/matrix")
        .filter_map(|r| match &r.status {
            Status::Fail { evidence } => Some((r.id.as_str(), evidence.as_str())),
            _ => None,
        })
        .collect()
}

/// The matrix summary fails exactly when a pair fails, and names the failing pairs.
fn matrix_names(fw: &[ProbeResult], pairs: &[&str]) {
    let m = fw
        .iter()
        .find(|r| r.id == "fw/matrix")
        .expect("the fw/matrix summary");
    match &m.status {
        Status::Fail { evidence } => {
            assert!(!pairs.is_empty(), "{evidence}");
            for p in pairs {
                assert!(evidence.contains(p), "{evidence}");
            }
        }
        other => assert!(pairs.is_empty(), "{other:?}"),
    }
}

#[test]
fn guest_firewalls_realise_the_matrix_and_faults_show() {
    if !lab_available() {
        return;
    }
    let prefix = unique_prefix();
    eprintln!("lab prefix {prefix}");
    let guard = LabGuard::new(&prefix);
    let d = homelab();
    let opts = UpOptions {
        prefix: prefix.clone(),
        recreate: false,
    };
    up(&d, &opts).expect("lab up");
    let t = phoenix_lab::status::load_state(&prefix).expect("lab state");
    let p = phoenix_lab::status::verify_places(&prefix, &t);

    // `up` loaded the firewalls already: what is observed is what the configuration says.
    for (ns, text) in guestfw::rulesets(&d, &t) {
        assert_eq!(
            guestfw::observed_fingerprint(&ns),
            guestfw::fingerprint_of(&text),
            "{ns}"
        );
    }
    load(&prefix, &d, &t, &[]);
    // Loading again is idempotent (same fingerprint, no error).
    load(&prefix, &d, &t, &[]);

    // Clean: every fw check passes; allowed and denied pairs both present.
    let fw = fw_results(&d, &p);
    for r in &fw {
        eprintln!("{:?} {} [{}]", r.status, r.check, r.observed);
    }
    assert_eq!(failing(&fw), Vec::<(&str, &str)>::new());
    assert!(fw.iter().all(|r| r.status == Status::Pass), "{fw:#?}");
    matrix_names(&fw, &[]);
    let allowed = fw.iter().filter(|r| r.check.contains(" allowed (")).count();
    let denied = fw.iter().filter(|r| r.check.contains(" denied (")).count();
    eprintln!("fw: {allowed} allowed, {denied} denied, all pass");
    assert!(
        allowed > 0 && denied > 0,
        "{allowed} allowed, {denied} denied"
    );
    assert!(
        fw.iter().any(|r| r.id == "fw/host/172.16.100.21:9443"
            && r.check.contains("The hypervisor configures Portainer")),
        "the host source is probed from the hypervisor namespace"
    );

    // (a) Guest 1001 without the rule admitting the hypervisor to 9443.
    let mut broken = d.clone();
    let g = broken.guests.get_mut(&GuestId(1001)).expect("1001");
    let before = g.firewall.rules.len();
    g.firewall.rules.retain(|r| {
        !r.comment
            .as_deref()
            .is_some_and(|c| c.starts_with("The hypervisor configures Portainer"))
    });
    assert_eq!(g.firewall.rules.len(), before - 1);
    load(&prefix, &broken, &t, &["1001"]);
    // The drift shows in the fingerprint without listing rules.
    let desired: BTreeMap<String, String> = guestfw::rulesets(&d, &t).into_iter().collect();
    let g1001 = format!("{prefix}-g1001");
    assert_ne!(
        guestfw::observed_fingerprint(&g1001),
        guestfw::fingerprint_of(&desired[&g1001])
    );
    let fw = fw_results(&d, &p);
    let fails = failing(&fw);
    assert_eq!(
        fails.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        ["fw/host/172.16.100.21:9443"],
        "{fails:#?}"
    );
    matrix_names(&fw, &["fw/host/172.16.100.21:9443"]);
    let evidence = fails[0].1;
    assert!(
        evidence.contains("expected allowed, timed out")
            && evidence.contains("decided by: The hypervisor configures Portainer"),
        "{evidence}"
    );
    load(&prefix, &d, &t, &["1001"]);

    // (b) Guest 102 with policy_in ACCEPT: the denied pair to Traefik's 443 connects.
    let mut open = d.clone();
    open.guests
        .get_mut(&GuestId(102))
        .expect("102")
        .firewall
        .policy_in = Verdict::Accept;
    load(&prefix, &open, &t, &["102"]);
    let fw = fw_results(&d, &p);
    let fails = failing(&fw);
    assert_eq!(
        fails.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        ["fw/guest:103/172.16.100.12:443"],
        "{fails:#?}"
    );
    matrix_names(&fw, &["fw/guest:103/172.16.100.12:443"]);
    assert!(
        fails[0].1.contains("expected denied, connected") && fails[0].1.contains("policy DROP"),
        "{}",
        fails[0].1
    );

    phoenix_lab::down(&prefix).expect("lab down");
    drop(guard);
    assert_gone(&prefix);
}
