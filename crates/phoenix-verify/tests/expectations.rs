//! Expectation derivation on `examples/homelab` (pure): golden DNS checks and reachability
//! matrix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write;
use std::path::Path;

use phoenix_verify::expect::dns_expectations;
use phoenix_verify::matrix::reachability;
use phoenix_verify::tcp::Expect;

fn homelab() -> phoenix_model::DesiredState {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    phoenix_model::validate_dir(&dir)
        .desired
        .expect("examples/homelab builds")
}

#[test]
fn homelab_dns_expectations() {
    let e = dns_expectations(&homelab(), "www.example.org");
    let mut s = String::new();
    writeln!(
        s,
        "servers: {:?}",
        e.servers.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    )
    .unwrap();
    for c in &e.checks {
        writeln!(s, "{} {}", c.name, c.expect).unwrap();
    }
    insta::assert_snapshot!(s);
}

#[test]
fn homelab_reachability_matrix() {
    let m = reachability(&homelab());
    let allow = m.iter().filter(|r| r.expect == Expect::Allow).count();
    let deny = m.len() - allow;
    let mut s = format!("{allow} allowed, {deny} denied\n");
    for r in &m {
        let verb = if r.expect == Expect::Allow {
            "ALLOW"
        } else {
            "DENY "
        };
        writeln!(
            s,
            "{verb} {} ({}) -> guest:{} {}:{}  # {}",
            r.from, r.from_addr, r.to, r.addr, r.port, r.why
        )
        .unwrap();
    }
    insta::assert_snapshot!(s);
    assert!(allow > 0 && deny > 0);
}

#[test]
fn first_match_wins_and_filtering_needs_all_switches() {
    use phoenix_model::model::{GuestId, Verdict};
    let base = homelab();
    let allowed = |d: &phoenix_model::DesiredState| {
        reachability(d)
            .into_iter()
            .find(|r| {
                r.to == GuestId(102)
                    && r.port == 443
                    && r.from == phoenix_verify::Subject::Guest(GuestId(101))
            })
            .map(|r| r.expect)
    };
    assert_eq!(allowed(&base), Some(Expect::Allow));

    // A DROP for the same source placed before the ACCEPT shadows it.
    let mut shadowed = base.clone();
    let g = shadowed.guests.get_mut(&GuestId(102)).unwrap();
    let mut drop = g.firewall.rules[0].clone();
    drop.action = Verdict::Drop;
    drop.comment = Some("block the gateway first".into());
    g.firewall.rules.insert(0, drop);
    assert_eq!(allowed(&shadowed), Some(Expect::Deny));

    // A disabled rule is ignored.
    shadowed
        .guests
        .get_mut(&GuestId(102))
        .unwrap()
        .firewall
        .rules[0]
        .enabled = false;
    assert_eq!(allowed(&shadowed), Some(Expect::Allow));

    // Cluster firewall off: nothing is filtered, so no pair is expected to be denied.
    let mut off = base.clone();
    off.firewall.enabled = false;
    let m = reachability(&off);
    assert!(
        !m.is_empty() && m.iter().all(|r| r.expect == Expect::Allow),
        "{m:#?}"
    );
}
