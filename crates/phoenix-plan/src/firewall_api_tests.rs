//! Unit tests of the firewall planner: by-position reconciliation, normalisation, no-op.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn rule(port: &str, comment: &str) -> FwRule {
    [
        ("type", "in"),
        ("action", "ACCEPT"),
        ("proto", "tcp"),
        ("dport", port),
        ("comment", comment),
        ("enable", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn guest(rules: Vec<FwRule>, options: &[(&str, &str)]) -> FirewallState {
    FirewallState {
        guests: vec![GuestScope {
            id: GuestId(102),
            kind: GuestKind::Lxc,
            state: ScopeState {
                options: options
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                rules,
                ..ScopeState::default()
            },
        }],
        ..FirewallState::default()
    }
}

fn changes(p: &FirewallPlan) -> Vec<String> {
    p.cluster
        .iter()
        .chain(&p.guests)
        .chain(&p.cleanup)
        .map(|a| match a {
            Action::Firewall { change, .. } => change.to_string(),
            other => other.to_string(),
        })
        .collect()
}

const OPTS: &[(&str, &str)] = &[("enable", "1"), ("policy_in", "DROP")];

#[test]
fn identical_states_plan_nothing() {
    let d = guest(vec![rule("22", "ssh"), rule("80", "web")], OPTS);
    assert_eq!(plan(&d, &d), FirewallPlan::default());
}

#[test]
fn what_pve_echoes_back_is_normalised_to_no_change() {
    let d = guest(vec![rule("22", "ssh")], OPTS);
    let mut echoed = rule("22", " ssh ");
    echoed.insert("pos".into(), "0".into());
    echoed.insert("digest".into(), "abc".into());
    echoed.insert("ipversion".into(), "4".into());
    echoed.insert("log".into(), "nolog".into());
    echoed.insert("type".into(), "IN".into());
    let o = guest(vec![echoed], &[("enable", "1"), ("policy_in", "drop")]);
    assert_eq!(plan(&d, &o), FirewallPlan::default());
    // A rule without `enable` is disabled (PVE's default).
    let mut off = rule("22", "ssh");
    off.remove("enable");
    let p = plan(&d, &guest(vec![off], OPTS));
    assert_eq!(changes(&p), ["update rule at position 0"]);
    // The cluster's enable time stamp is "on".
    let mut dc = FirewallState::default();
    dc.cluster.options = BTreeMap::from([("enable".into(), "1".into())]);
    let mut oc = FirewallState::default();
    oc.cluster.options = BTreeMap::from([("enable".into(), "1732600000".into())]);
    assert!(plan(&dc, &oc).cluster.is_empty());
    assert_eq!(normalise_cidr("10.0.0.5/32"), "10.0.0.5");
    assert_eq!(normalise_cidr("10.0.0.5/24"), "10.0.0.0/24");
}

#[test]
fn a_rule_deleted_by_hand_is_recreated_at_its_position_only() {
    let all = vec![rule("22", "ssh"), rule("80", "web"), rule("443", "tls")];
    let d = guest(all.clone(), OPTS);
    for gone in 0..all.len() {
        let mut left = all.clone();
        left.remove(gone);
        let p = plan(&d, &guest(left, OPTS));
        assert_eq!(p.guests.len(), 1, "{p:?}");
        let Action::Firewall { change, reason, .. } = &p.guests[0] else {
            panic!("{p:?}")
        };
        assert_eq!(
            *change,
            FirewallChange::CreateRule {
                pos: gone,
                rule: all[gone].clone()
            }
        );
        assert_eq!(*reason, Reason::Missing);
    }
}

#[test]
fn changed_rules_are_updated_in_place_with_unset_fields_deleted() {
    let d = guest(vec![rule("22", "ssh"), rule("80", "web")], OPTS);
    let mut was = rule("8080", "web");
    was.insert("source".into(), "10.0.0.0/8".into());
    let p = plan(&d, &guest(vec![rule("22", "ssh"), was], OPTS));
    let Action::Firewall { change, reason, .. } = &p.guests[0] else {
        panic!()
    };
    assert_eq!(
        *change,
        FirewallChange::UpdateRule {
            pos: 1,
            set: BTreeMap::from([("dport".into(), "80".into())]),
            delete: vec!["source".into()],
        }
    );
    assert_eq!(reason.to_string(), "differs: rule 1 dport, rule 1 source");
}

#[test]
fn surplus_rules_are_deleted_and_missing_appended_in_order() {
    let d = guest(vec![rule("1", "a"), rule("2", "b")], OPTS);
    let o = guest(
        vec![
            rule("1", "a"),
            rule("2", "b"),
            rule("3", "c"),
            rule("4", "d"),
        ],
        OPTS,
    );
    assert_eq!(
        changes(&plan(&d, &o)),
        ["delete rule at position 2", "delete rule at position 2"]
    );
    let p = plan(&o, &guest(vec![], OPTS));
    assert_eq!(
        changes(&p),
        [
            "create rule at position 0: in ACCEPT -p tcp -dport 1 # a",
            "create rule at position 1: in ACCEPT -p tcp -dport 2 # b",
            "create rule at position 2: in ACCEPT -p tcp -dport 3 # c",
            "create rule at position 3: in ACCEPT -p tcp -dport 4 # d",
        ]
    );
}

/// Applying the plan's rule actions to the observed list as PVE does gives the desired list.
#[test]
fn applying_the_actions_by_position_yields_the_desired_list() {
    let pool: Vec<FwRule> = (0..6).map(|i| rule(&i.to_string(), "r")).collect();
    let cases: Vec<(Vec<usize>, Vec<usize>)> = vec![
        (vec![0, 1, 2, 3], vec![3, 2, 1, 0]),
        (vec![0, 1, 2], vec![4, 0, 5, 2]),
        (vec![], vec![1, 2]),
        (vec![5, 4], vec![]),
        (vec![0, 1, 2, 3, 4], vec![1, 3]),
        (vec![1, 3], vec![0, 1, 2, 3, 4, 5]),
    ];
    for (o, d) in cases {
        let pick = |v: &[usize]| v.iter().map(|&i| pool[i].clone()).collect::<Vec<_>>();
        let mut live = pick(&o);
        let p = plan(&guest(pick(&d), OPTS), &guest(live.clone(), OPTS));
        for a in &p.guests {
            let Action::Firewall { change, .. } = a else {
                panic!()
            };
            match change {
                FirewallChange::CreateRule { pos, rule } => live.insert(*pos, rule.clone()),
                FirewallChange::DeleteRule { pos } => {
                    live.remove(*pos);
                }
                FirewallChange::UpdateRule { pos, set, delete } => {
                    live[*pos].extend(set.clone());
                    for k in delete {
                        live[*pos].remove(k);
                    }
                }
                FirewallChange::SetOptions { .. } => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(live, pick(&d), "{o:?} → {d:?}");
    }
}

#[test]
fn the_first_write_of_a_list_carries_the_observed_digest() {
    let d = guest(vec![rule("1", "a"), rule("2", "b")], OPTS);
    let mut o = guest(vec![], OPTS);
    o.guests[0].state.rules_digest = Some("d1".into());
    let p = plan(&d, &o);
    let digests: Vec<Option<String>> = p
        .guests
        .iter()
        .map(|a| match a {
            Action::Firewall { digest, .. } => digest.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(digests, [Some("d1".to_string()), None]);
}

#[test]
fn options_are_compared_key_by_key() {
    let d = guest(vec![], OPTS);
    let o = guest(
        vec![],
        &[
            ("enable", "1"),
            ("policy_in", "ACCEPT"),
            ("log_level_in", "info"),
        ],
    );
    let p = plan(&d, &o);
    let Action::Firewall { change, reason, .. } = &p.guests[0] else {
        panic!()
    };
    assert_eq!(
        *change,
        FirewallChange::SetOptions {
            set: BTreeMap::from([("policy_in".into(), "DROP".into())]),
            delete: vec!["log_level_in".into()],
        }
    );
    assert_eq!(
        p.guests[0].to_string(),
        "firewall lxc 102: set options (differs: policy_in, log_level_in)"
    );
    let Reason::Differs { changes } = reason else {
        panic!()
    };
    assert_eq!(changes[0].to_string(), "policy_in: ACCEPT → DROP");
}

#[test]
fn aliases_and_ipsets_by_name_with_cleanup_last() {
    let mut d = FirewallState::default();
    d.aliases.push(FwAlias {
        name: "gw_mesh".into(),
        cidr: "10.0.0.1".into(),
        comment: None,
    });
    d.ipsets.push(FwIpset {
        name: "mesh".into(),
        comment: None,
        entries: vec![FwIpsetEntry {
            cidr: "10.0.0.0/24".into(),
            comment: None,
            nomatch: false,
        }],
    });
    let mut o = d.clone();
    o.aliases[0].name = "GW_MESH".into();
    o.aliases.push(FwAlias {
        name: "old".into(),
        cidr: "10.0.0.9".into(),
        comment: None,
    });
    o.ipsets[0].entries[0].cidr = "10.0.0.7/24".into(); // host bits: same network
    o.ipsets[0].entries.push(FwIpsetEntry {
        cidr: "10.0.0.9".into(),
        comment: None,
        nomatch: false,
    });
    let p = plan(&d, &o);
    assert_eq!(
        changes(&p),
        ["remove 10.0.0.9 from ipset mesh", "delete alias old"]
    );
    assert_eq!(p.cleanup.len(), 1);
    let p = plan(&d, &FirewallState::default());
    assert_eq!(
        changes(&p),
        [
            "create alias gw_mesh = 10.0.0.1",
            "create ipset mesh",
            "add 10.0.0.0/24 to ipset mesh"
        ]
    );
}

#[test]
fn a_run_pairs_the_most_similar_rules() {
    // Rule 0 deleted and rule 1's port changed by hand: re-create 0, update 1 (not the other
    // way round, which costs as many writes but rewrites the wrong rule).
    let all = vec![rule("22", "ssh"), rule("80", "web"), rule("443", "tls")];
    let o = guest(vec![rule("8080", "web"), rule("443", "tls")], OPTS);
    let p = plan(&guest(all, OPTS), &o);
    assert_eq!(
        changes(&p),
        [
            "create rule at position 0: in ACCEPT -p tcp -dport 22 # ssh",
            "update rule at position 1"
        ]
    );
}

#[test]
fn options_follow_the_rules_of_their_scope() {
    let d = guest(vec![rule("22", "ssh")], OPTS);
    let p = plan(&d, &FirewallState::default());
    assert_eq!(
        changes(&p),
        [
            "create rule at position 0: in ACCEPT -p tcp -dport 22 # ssh",
            "set options"
        ]
    );
    assert_eq!(
        p.guests[1].to_string(),
        "firewall lxc 102: set options (missing)"
    );
}

/// In a whole-sync plan the API actions replace the `.fw` files: the cluster wave after the
/// host files, the guests' wave after the creates and before the starts.
#[test]
fn merged_into_a_sync_plan_in_place_of_the_fw_files() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    let d = phoenix_model::validate_dir(&dir).desired.unwrap();
    let opts = RenderOptions {
        node: "pve1".into(),
    };
    let observed = crate::observed::ObservedState::default();
    let mut p = crate::plan::plan(&d, &observed, &crate::plan::Request::SyncAll, &opts).unwrap();
    let is_fw = |path: &str| path.ends_with(".fw");
    assert!(p.files.iter().any(|f| is_fw(&f.file.path)));
    merge_into(&mut p, plan(&desired(&d, &opts), &FirewallState::default()));
    assert!(!p.files.iter().any(|f| is_fw(&f.file.path)));
    assert!(
        !p.actions()
            .any(|a| matches!(a, Action::WriteFile { path, .. } if is_fw(path)))
    );
    let names: Vec<&str> = p.waves.iter().map(|w| w.name.as_str()).collect();
    let at = |name: &str| names.iter().position(|n| n.starts_with(name)).unwrap();
    let last_guests = names
        .iter()
        .rposition(|n| n.starts_with("guests, level"))
        .unwrap();
    assert_eq!(at("host network"), 0);
    assert_eq!(at(WAVE_CLUSTER), 1);
    assert_eq!(at(WAVE_GUESTS), last_guests + 1);
    assert!(at("start") > at(WAVE_GUESTS), "{names:?}");
    let creates = p
        .actions()
        .filter(|a| a.effect() == crate::action::Effect::Create)
        .count();
    assert_eq!(p.summary.create, creates);
}
