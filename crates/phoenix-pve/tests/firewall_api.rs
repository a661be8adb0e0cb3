//! The firewall through the API against fakepve (pve-firewall's semantics): the homelab's
//! firewall applied to an empty node reads back as desired and a second plan is empty; rules
//! planted, changed or deleted by hand, a foreign ipset member, alias and security group are
//! each planned as exactly their repair, which converges again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use common::{FakePve, fakepve_available};
use phoenix_model::model::DesiredState;
use phoenix_plan::action::Action;
use phoenix_plan::firewall_api::{self, FirewallChange, FirewallState};
use phoenix_plan::plan::{Plan, Summary};
use phoenix_pve::PveClient;
use phoenix_pve::apply::{ApplyOptions, Outcome, apply_plan};
use phoenix_pve::firewall::observe_firewall;
use phoenix_pve::observe::Observation;
use phoenix_pve::tls::TlsTrust;
use phoenix_render::RenderOptions;
use reqwest::Method;

const NODE: &str = "pve1";

fn homelab() -> DesiredState {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    phoenix_model::validate_dir(&dir)
        .desired
        .expect("homelab builds")
}

fn observe(client: &PveClient, d: &DesiredState) -> FirewallState {
    let guests: Vec<_> = d
        .guests
        .values()
        .map(|g| (g.id, g.kind, NODE.to_string()))
        .collect();
    observe_firewall(client, NODE, &guests, 4).expect("observe the firewall")
}

fn plan_of(client: &PveClient, d: &DesiredState) -> Plan {
    let desired = firewall_api::desired(d, &RenderOptions { node: NODE.into() });
    let fw = firewall_api::plan(&desired, &observe(client, d));
    let mut plan = Plan {
        node: NODE.into(),
        waves: Vec::new(),
        files: Vec::new(),
        orphans: Vec::new(),
        certificates: Vec::new(),
        notes: Vec::new(),
        swarm: Vec::new(),
        summary: Summary::default(),
    };
    firewall_api::merge_into(&mut plan, fw);
    plan
}

fn apply(client: &PveClient, plan: &Plan) {
    let journal = apply_plan(
        client,
        plan,
        &Observation::default(),
        &ApplyOptions::default(),
    );
    for e in &journal.entries {
        assert!(
            matches!(e.outcome, Outcome::Done),
            "{} → {:?}",
            e.action,
            e.outcome
        );
    }
}

fn texts(plan: &Plan) -> Vec<String> {
    plan.actions().map(ToString::to_string).collect()
}

fn write(client: &PveClient, method: Method, path: &str, params: &[(&str, &str)]) {
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    client.write(method, path, &params).expect(path);
}

#[test]
fn homelab_firewall_converges_and_repairs_hand_edits() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&serde_json::json!({}));
    let client = pve.client(TlsTrust::CaFile(pve.pki.ca_pem.clone()));
    let d = homelab();

    // First run: everything created, in an order fakepve accepts (aliases and ipsets before
    // the rules naming them).
    let first = plan_of(&client, &d);
    println!("{}", phoenix_plan::display::text(&first, false));
    assert!(first.summary.create > 10, "{:#?}", texts(&first));
    apply(&client, &first);

    // Second run: nothing to do, and observing writes nothing.
    let before = client.counts();
    let second = plan_of(&client, &d);
    assert!(second.is_empty(), "{:#?}", texts(&second));
    assert_eq!(client.counts().since(before).writes, 0);

    // What fakepve stores is the model's intent, rule by rule and option by option.
    let desired = firewall_api::desired(&d, &RenderOptions { node: NODE.into() });
    let g = desired
        .guests
        .iter()
        .find(|g| !g.state.rules.is_empty())
        .expect("a guest with rules");
    let seg = match g.kind {
        phoenix_model::model::GuestKind::Lxc => "lxc",
        phoenix_model::model::GuestKind::Vm => "qemu",
    };
    let base = format!("/nodes/{NODE}/{seg}/{}/firewall", g.id);
    let rules = client.get(&format!("{base}/rules"), &[]).unwrap();
    let rules = rules.as_array().unwrap();
    assert_eq!(rules.len(), g.state.rules.len());
    for (got, want) in rules.iter().zip(&g.state.rules) {
        assert_eq!(got["enable"], 1, "{got}");
        assert_eq!(
            got["comment"].as_str(),
            want.get("comment").map(String::as_str)
        );
        assert_eq!(got["dport"].as_str(), want.get("dport").map(String::as_str));
        assert_eq!(
            got["source"].as_str(),
            want.get("source").map(String::as_str)
        );
    }
    let options = client.get(&format!("{base}/options"), &[]).unwrap();
    assert_eq!(options["enable"], 1);
    assert_eq!(
        options["policy_in"].as_str(),
        g.state.options.get("policy_in").map(String::as_str)
    );

    // Hand edits: rule 0 deleted, rule 1's port changed, a foreign rule appended, an ipset
    // member, an alias and a security group added.
    let n = rules.len();
    assert!(n >= 2, "the test needs two rules");
    write(&client, Method::DELETE, &format!("{base}/rules/0"), &[]);
    write(
        &client,
        Method::PUT,
        &format!("{base}/rules/0"),
        &[("dport", "9999")],
    );
    write(
        &client,
        Method::POST,
        &format!("{base}/rules"),
        &[("type", "in"), ("action", "DROP"), ("enable", "1")],
    );
    write(
        &client,
        Method::PUT,
        &format!("{base}/rules/0"),
        &[("moveto", &n.to_string())],
    );
    let ipset = desired.ipsets.first().expect("an ipset").name.clone();
    write(
        &client,
        Method::POST,
        &format!("/cluster/firewall/ipset/{ipset}"),
        &[("cidr", "10.99.0.0/16")],
    );
    write(
        &client,
        Method::POST,
        "/cluster/firewall/aliases",
        &[("name", "byhand"), ("cidr", "10.99.0.1")],
    );
    write(
        &client,
        Method::POST,
        "/cluster/firewall/groups",
        &[("group", "byhand")],
    );
    write(
        &client,
        Method::POST,
        "/cluster/firewall/groups/byhand",
        &[("type", "in"), ("action", "ACCEPT"), ("enable", "1")],
    );

    let repair = plan_of(&client, &d);
    println!("{}", phoenix_plan::display::text(&repair, false));
    let changes: Vec<(String, &FirewallChange)> = repair
        .actions()
        .filter_map(|a| match a {
            Action::Firewall { scope, change, .. } => Some((scope.to_string(), change)),
            _ => None,
        })
        .collect();
    let scope = format!("{} {}", g.kind, g.id);
    let kinds: BTreeSet<String> = changes
        .iter()
        .map(|(s, c)| format!("{s}: {}", c.to_string().split(':').next().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            format!("{scope}: create rule at position 0"),
            format!("{scope}: update rule at position 1"),
            format!("{scope}: delete rule at position {n}"),
            format!("cluster: remove 10.99.0.0/16 from ipset {ipset}"),
            "cluster: delete alias byhand".to_string(),
            "group byhand: delete rule at position 0".to_string(),
            "cluster: delete security group byhand".to_string(),
        ]),
        "{:#?}",
        texts(&repair)
    );
    assert_eq!(changes.len(), 7, "{:#?}", texts(&repair));
    apply(&client, &repair);
    let after = plan_of(&client, &d);
    assert!(after.is_empty(), "{:#?}", texts(&after));
}
