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

#[test]
fn homelab_swarm_ports_are_admitted_and_a_drop_shows() {
    use phoenix_model::model::{Direction, GuestId, Verdict};
    use phoenix_verify::matrix::swarm_ports;
    let base = homelab();
    let ports = swarm_ports(&base);
    // 1001 manager ← 1002: 2377/tcp, 7946/tcp+udp, 4789/udp; 1002 worker ← 1001: three.
    assert_eq!(ports.len(), 7, "{ports:#?}");
    assert!(ports.iter().all(|p| p.admitted == Some(true)), "{ports:#?}");
    assert!(
        ports
            .iter()
            .any(|p| p.to == GuestId(1001) && p.proto == "tcp" && p.port == 2377)
    );
    assert!(
        !ports
            .iter()
            .any(|p| p.to == GuestId(1002) && p.port == 2377)
    );

    // A DROP of VXLAN on the worker, before phoenix's rules: exactly that port is denied.
    let mut dropped = base.clone();
    let g = dropped.guests.get_mut(&GuestId(1002)).unwrap();
    let mut rule = g.firewall.rules[0].clone();
    rule.direction = Direction::In;
    rule.action = Verdict::Drop;
    rule.proto = Some("udp".into());
    rule.source = None;
    rule.dest = None;
    rule.iface = None;
    rule.sport = Vec::new();
    rule.dport = vec![phoenix_model::model::PortRange {
        from: 4789,
        to: 4789,
    }];
    rule.comment = Some("no vxlan".into());
    g.firewall.rules.insert(0, rule);
    let denied: Vec<_> = swarm_ports(&dropped)
        .into_iter()
        .filter(|p| p.admitted != Some(true))
        .collect();
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert_eq!((denied[0].to, denied[0].port), (GuestId(1002), 4789));
    assert_eq!(denied[0].why, "no vxlan");
}
