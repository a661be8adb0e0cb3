//! The operator's workflow on a real lab twin (root; prefix `pl…`): `plan --target lab`
//! shows exactly an edited firewall rule; `plan --out` saves the plan without secrets;
//! `sync all --plan` refuses it, naming what moved, after the lab changed between plan and
//! apply, and applies a fresh one exactly; exit codes of the plan (docs/exit-codes.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{CONFIG, copy_tree, lab_sync, phoenix, root_or_skip, text, unique_prefix};

/// The lab of a prefix, removed when the test ends (also when it fails).
struct Lab(String);

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = phoenix(&["lab", "down", "--prefix", &self.0]);
    }
}

/// The configuration copied to `to`, with guest 102's first firewall rule on `port`.
fn config_with_port(to: &Path, port: &str) {
    config_with(to, |v| {
        v["lxc_configs"]["102"]["firewall"]["rules"][0]["port"] = port.into()
    });
}

/// The configuration copied to `to` and changed by `edit` (on the LXC file's JSON).
fn config_with(to: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    copy_tree(Path::new(CONFIG), to);
    let file = to.join("phoenix_lxc_configs.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&file, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// The actions of `plan --target lab -o json` against `config`.
fn planned_actions(base: &[&str], config: &str) -> Vec<serde_json::Value> {
    let (code, out, err) = run(&[&["plan"], base, &["--config", config, "-o", "json"]].concat());
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    plan["waves"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["actions"].as_array().unwrap().clone())
        .collect()
}

/// Exit code, stdout, stderr of `phoenix ARGS`.
fn run(args: &[&str]) -> (i32, String, String) {
    let o = phoenix(args);
    (
        o.status.code().unwrap_or(-1),
        text(&o.stdout),
        text(&o.stderr),
    )
}

#[test]
fn plan_target_lab_shows_a_firewall_edit_and_saved_plans_hold() {
    if !root_or_skip("plan_target_lab_shows_a_firewall_edit_and_saved_plans_hold") {
        return;
    }
    let prefix = format!("pl{}", &unique_prefix('x')[2..]);
    let lab = Lab(prefix.clone());
    let (code, v) = lab_sync(&prefix, CONFIG);
    assert_eq!(code, Some(0), "{:#}", v["verify"]["counts"]);
    let work = tempfile::tempdir().unwrap();
    let (edited, other) = (work.path().join("edited"), work.path().join("other"));
    config_with_port(&edited, "8443");
    config_with_port(&other, "9443");
    let (edited, other) = (edited.to_str().unwrap(), other.to_str().unwrap());
    let plan_file = work.path().join("plan.json");
    let plan_arg = plan_file.to_str().unwrap();

    // The converged lab: nothing to do.
    let base = ["--target", "lab", "--prefix", prefix.as_str()];
    let (code, out, err) = run(&[
        &["plan"],
        &base[..],
        &["--config", CONFIG, "--detailed-exitcode"],
    ]
    .concat());
    assert_eq!(code, 0, "{err}\n{out}");

    // An edited rule is exactly one firewall action in guest 102's scope.
    let (code, out, err) = run(&[
        &["plan"],
        &base[..],
        &["--config", edited, "-o", "json", "--detailed-exitcode"],
    ]
    .concat());
    assert_eq!(code, 2, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let actions: Vec<&serde_json::Value> = plan["waves"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["actions"].as_array().unwrap())
        .collect();
    assert_eq!(actions.len(), 1, "{actions:#?}");
    assert_eq!(actions[0]["action"], "firewall");
    assert_eq!(actions[0]["scope"]["id"], 102);
    assert_eq!(actions[0]["change"]["op"], "update_rule");
    assert_eq!(actions[0]["change"]["set"]["dport"], "8443");
    let (_, shown, _) = run(&[&["plan"], &base[..], &["--config", edited]].concat());
    assert!(shown.contains("rule 0 dport: 443 → 8443"), "{shown}");
    assert!(
        shown.contains("0 to create, 1 to change, 0 to delete"),
        "{shown}"
    );

    // observe → the offline plan against it: the same actions as planning on the lab.
    let (code, observed, err) = run(&[&["observe"], &base[..], &["--config", edited]].concat());
    assert_eq!(code, 0, "{err}");
    let observed_file = work.path().join("observed.json");
    std::fs::write(&observed_file, observed).unwrap();
    let (code, offline, err) = run(&[
        "plan",
        "--config",
        edited,
        "-o",
        "json",
        "--observed",
        observed_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let offline: serde_json::Value = serde_json::from_str(&offline).unwrap();
    assert_eq!(
        offline["waves"], plan["waves"],
        "offline and on the lab differ"
    );

    // An address changed: the guest's net0 field and what names the address, no restart.
    let readdressed = work.path().join("readdressed");
    config_with(&readdressed, |v| {
        v["lxc_configs"]["103"]["network_config"]["ip"] = "172.16.100.14/24".into()
    });
    let actions = planned_actions(&base, readdressed.to_str().unwrap());
    let kinds: Vec<&str> = actions
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["write_file", "firewall", "update_guest", "write_file"],
        "{actions:#?}"
    );
    assert_eq!(actions[0]["path"], "/etc/dnsmasq.d/phoenix.conf");
    assert_eq!(
        actions[1]["change"]["cidr"], "172.16.100.14",
        "{:#}",
        actions[1]
    );
    assert_eq!(actions[2]["id"], 103);
    let net0 = actions[2]["set"]["net0"].as_str().unwrap();
    assert!(net0.contains("ip=172.16.100.14/24"), "{net0}");
    assert_eq!(actions[3]["path"], "/etc/traefik/dynamic/phoenix.yml");

    // A new guest: its own actions, the name and alias it adds, nothing else started.
    let grown = work.path().join("grown");
    config_with(&grown, |v| {
        let mut g = v["lxc_configs"]["103"].clone();
        g["name"] = "extra".into();
        g["network_config"]["ip"] = "172.16.100.15/24".into();
        g["network_config"]["hwaddr"] = "02:00:00:01:04:00".into();
        g["features"] = serde_json::json!([]);
        g["boot_order"] = 9.into();
        let o = g.as_object_mut().unwrap();
        o.remove("firewall");
        o.remove("traefik_service");
        v["lxc_configs"]["104"] = g;
    });
    let actions = planned_actions(&base, grown.to_str().unwrap());
    let about = |a: &serde_json::Value| {
        a["id"]
            .as_u64()
            .or(a["scope"]["id"].as_u64())
            .or(a["target"]["id"].as_u64())
    };
    let others: Vec<&serde_json::Value> =
        actions.iter().filter(|a| about(a) != Some(104)).collect();
    assert_eq!(others.len(), 2, "{others:#?}");
    assert_eq!(others[0]["path"], "/etc/dnsmasq.d/phoenix.conf");
    assert_eq!(others[1]["change"]["op"], "create_alias", "{:#}", others[1]);
    let kinds: Vec<&str> = actions
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"create_guest") && kinds.contains(&"start_guest"),
        "{kinds:?}"
    );

    // Saved, then the lab moves (another rule applied) before the saved plan: refused.
    let out_args = ["--config", edited, "--out", plan_arg];
    let (code, _, err) = run(&[&["plan"], &base[..], &out_args[..]].concat());
    assert_eq!(code, 0, "{err}");
    let saved = std::fs::read_to_string(&plan_file).unwrap();
    assert!(saved.contains("\"format_version\": 1") && saved.contains("config_digest"));
    assert!(saved.contains("firewall lxc 102"), "{saved}");
    let (code, _, err) = run(&[&["sync", "all"], &base[..], &["--config", other]].concat());
    assert_eq!(code, 0, "{err}");
    let apply = [
        &["sync", "all"],
        &base[..],
        &["--config", edited, "--plan", plan_arg],
    ]
    .concat();
    let (code, out, err) = run(&apply);
    assert_eq!(code, 1, "{err}\n{out}");
    assert!(
        err.contains("the target changed since the plan was made: firewall lxc 102"),
        "{err}"
    );
    assert!(!out.contains("journal:"), "a refused plan applied: {out}");

    // A fresh plan applies exactly its one action; then nothing is left to do.
    let (code, _, err) = run(&[&["plan"], &base[..], &out_args[..]].concat());
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&apply);
    assert_eq!(code, 0, "{err}\n{out}");
    assert!(
        out.contains("firewall lxc 102: update rule at position 0 (differs: rule 0 dport) → done"),
        "{out}"
    );
    assert_eq!(out.matches(" → done").count(), 1, "{out}");
    let (code, _, err) = run(&[
        &["plan"],
        &base[..],
        &["--config", edited, "--detailed-exitcode"],
    ]
    .concat());
    assert_eq!(code, 0, "{err}");
    drop(lab);
}
