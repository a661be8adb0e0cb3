//! Unit tests of the guest firewall compiler on `examples/homelab`, and every generated
//! ruleset read by the real `nft -c -f` in a private network namespace (root only).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use super::*;
use crate::topology::topology;

fn homelab() -> DesiredState {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    let v = phoenix_model::validate_dir(&dir);
    v.desired.expect("examples/homelab validates")
}

fn sets() -> BTreeMap<String, String> {
    let d = homelab();
    let t = topology(&d, "t1a2b3").expect("topology");
    rulesets(&d, &t).into_iter().collect()
}

/// The lines of chain `name` (trimmed), without the closing brace.
fn chain<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let start = format!("chain {name} {{");
    text.lines()
        .map(str::trim)
        .skip_while(|l| *l != start)
        .skip(1)
        .take_while(|l| *l != "}")
        .collect()
}

#[test]
fn filtered_guests_get_a_ruleset_and_templates_none() {
    let s = sets();
    let ns: Vec<&str> = s.keys().map(String::as_str).collect();
    assert_eq!(
        ns,
        [
            "t1a2b3-g1001",
            "t1a2b3-g1002",
            "t1a2b3-g101",
            "t1a2b3-g102",
            "t1a2b3-g103"
        ]
    );
    for text in s.values() {
        assert!(text.contains("table inet phoenix_fw {}\ndelete table inet phoenix_fw\n"));
        let fp = fingerprint_of(text).expect("fingerprint");
        assert_eq!(fp.len(), 16, "{fp}");
    }
}

#[test]
fn cluster_or_guest_switch_off_means_no_ruleset() {
    let mut d = homelab();
    let t = topology(&d, "t1a2b3").expect("topology");
    d.firewall.enabled = false;
    assert!(rulesets(&d, &t).is_empty());
    let mut d = homelab();
    if let Some(g) = d.guests.get_mut(&phoenix_model::model::GuestId(102)) {
        g.firewall.enabled = false;
    }
    assert!(!rulesets(&d, &t).iter().any(|(ns, _)| ns == "t1a2b3-g102"));
    let mut d = homelab();
    if let Some(g) = d.guests.get_mut(&phoenix_model::model::GuestId(102)) {
        for n in &mut g.nics {
            n.firewall = false;
        }
    }
    assert!(!rulesets(&d, &t).iter().any(|(ns, _)| ns == "t1a2b3-g102"));
}

#[test]
fn rules_keep_fw_order_then_policy() {
    let s = sets();
    let g1001 = &s["t1a2b3-g1001"];
    let rules: Vec<&str> = chain(g1001, "in_rules")
        .into_iter()
        .filter(|l| l.contains(" comment \""))
        .collect();
    // The .fw order: own rules first, then phoenix's derived ones.
    assert!(rules[0].starts_with("ip saddr 172.16.100.12 meta l4proto tcp th dport 9443 accept"));
    assert!(rules[0].contains("Traefik (102) routes portainer"));
    assert!(rules[1].starts_with("ip saddr 172.16.100.1 meta l4proto tcp th dport 9443 accept"));
    // The ipset, resolved (addresses of both segments).
    assert!(
        rules.iter().any(|l| l.starts_with(
            "ip saddr { 10.0.0.102, 10.0.0.111, 172.16.100.21, 172.16.100.22 } meta l4proto tcp th dport 2377 accept"
        )),
        "{rules:#?}"
    );
    // The alias, resolved.
    assert!(
        rules
            .last()
            .unwrap()
            .starts_with("ip saddr 172.16.100.12 meta l4proto tcp th dport 9443 accept comment \"phoenix: service portainer")
    );
    let in_rules = chain(g1001, "in_rules");
    assert_eq!(
        in_rules[in_rules.len() - 2],
        "jump pve_policy",
        "policy_in DROP"
    );
    assert_eq!(in_rules[in_rules.len() - 1], "drop");
    let out_rules = chain(g1001, "out_rules");
    assert_eq!(
        out_rules.last().copied(),
        Some("accept"),
        "policy_out ACCEPT"
    );
    // Conntrack before anything, loopback first.
    assert_eq!(
        chain(g1001, "prerouting_in"),
        [
            "type filter hook prerouting priority mangle; policy accept;",
            "iif \"lo\" accept",
            "ct state invalid drop",
            "ct state established,related accept",
            "iifname != { \"eth0\", \"eth1\" } accept",
            "jump in_rules"
        ]
    );
    assert_eq!(
        chain(g1001, "forward_out").last().copied(),
        Some("oifname { \"eth0\", \"eth1\" } jump out_rules")
    );
}

#[test]
fn iface_maps_to_the_nic_name_and_multiple_ports_become_a_set() {
    let s = sets();
    let g101 = &s["t1a2b3-g101"];
    let rules = chain(g101, "in_rules");
    let public = rules
        .iter()
        .find(|l| l.contains("Public HTTP/HTTPS"))
        .expect("rule");
    let d = homelab();
    let nic0 = &d.guests[&phoenix_model::model::GuestId(101)].nics[0];
    assert!(
        public.starts_with(&format!(
            "iifname \"{}\" meta l4proto tcp th dport {{ 80, 443 }} accept",
            nic0.name
        )),
        "{public}"
    );
    let dhcp = rules
        .iter()
        .find(|l| l.contains("DHCP replies"))
        .expect("rule");
    assert!(
        dhcp.contains("meta l4proto udp th dport 68 th sport 67 accept"),
        "{dhcp}"
    );
}

#[test]
fn reject_disabled_ranges_and_unknown_names() {
    let mut d = homelab();
    let t = topology(&d, "t1a2b3").expect("topology");
    let loc = d.guests[&phoenix_model::model::GuestId(102)].loc.clone();
    let rule = |action, source: Option<Endpoint>, enabled, comment: &str| FirewallRule {
        direction: Direction::In,
        action,
        proto: Some("tcp".into()),
        source,
        dest: None,
        dport: vec![
            PortRange { from: 22, to: 22 },
            PortRange {
                from: 8000,
                to: 8010,
            },
        ],
        sport: Vec::new(),
        iface: None,
        comment: Some(comment.into()),
        enabled,
        loc: loc.clone(),
    };
    let g = d
        .guests
        .get_mut(&phoenix_model::model::GuestId(102))
        .unwrap();
    g.firewall.policy_in = Verdict::Reject;
    g.firewall.rules.insert(
        0,
        rule(
            Verdict::Reject,
            Some(Endpoint::Range(
                "172.16.100.20".parse().unwrap(),
                "172.16.100.29".parse().unwrap(),
            )),
            true,
            "no swarm \"here\"",
        ),
    );
    g.firewall
        .rules
        .insert(1, rule(Verdict::Drop, None, false, "off"));
    g.firewall.rules.insert(
        2,
        rule(
            Verdict::Accept,
            Some(Endpoint::Alias("nope".into())),
            true,
            "ghost",
        ),
    );
    let s: BTreeMap<String, String> = rulesets(&d, &t).into_iter().collect();
    let rules = chain(&s["t1a2b3-g102"], "in_rules");
    let first = rules.iter().position(|l| l.contains("comment")).unwrap();
    assert_eq!(
        rules[first],
        "ip saddr 172.16.100.20-172.16.100.29 meta l4proto tcp th dport { 22, 8000-8010 } goto pve_reject comment \"no swarm 'here'\""
    );
    assert_eq!(rules[first + 1], "# disabled: off");
    assert_eq!(rules[first + 2], "# skipped (unknown alias nope): ghost");
    assert_eq!(
        &rules[rules.len() - 2..],
        ["jump pve_policy", "goto pve_reject"]
    );
}

#[test]
fn fingerprint_follows_the_content() {
    let a = sets();
    let mut d = homelab();
    let t = topology(&d, "t1a2b3").expect("topology");
    d.guests
        .get_mut(&phoenix_model::model::GuestId(103))
        .unwrap()
        .firewall
        .rules
        .pop();
    let b: BTreeMap<String, String> = rulesets(&d, &t).into_iter().collect();
    assert_eq!(
        fingerprint_of(&a["t1a2b3-g102"]),
        fingerprint_of(&b["t1a2b3-g102"])
    );
    assert_ne!(
        fingerprint_of(&a["t1a2b3-g103"]),
        fingerprint_of(&b["t1a2b3-g103"])
    );
    // Deterministic.
    assert_eq!(a, sets());
}

/// Every generated ruleset, loaded twice (idempotent) by the real nft inside `unshare --net`.
#[test]
fn every_ruleset_is_accepted_by_nft() {
    if !crate::is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("note: nft check skipped: not root");
        return;
    }
    let dir = std::env::temp_dir().join(format!("phx-guestfw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (ns, text) in sets() {
        let path = dir.join(format!("{ns}.nft"));
        std::fs::write(&path, &text).unwrap();
        let check = Command::new("unshare")
            .args(["--net", "--", "nft", "-c", "-f"])
            .arg(&path)
            .output()
            .expect("unshare");
        assert!(
            check.status.success(),
            "nft -c {ns}: {}\n{text}",
            String::from_utf8_lossy(&check.stderr)
        );
        // Loaded twice, then listed: the fingerprint survives the round trip.
        let p = path.to_string_lossy().into_owned();
        let out = Command::new("unshare")
            .args([
                "--net",
                "--",
                "sh",
                "-c",
                "nft -f \"$1\" && nft -f \"$1\" && nft list table inet phoenix_fw",
                "sh",
                &p,
            ])
            .output()
            .expect("unshare");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            fingerprint_of(&String::from_utf8_lossy(&out.stdout)),
            fingerprint_of(&text),
            "{ns}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
