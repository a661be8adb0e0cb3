//! `phoenix sync all --target pve` twice against fakepve (an external process, started by the
//! launcher shared with phoenix-pve's tests) with `--host-root` a scratch directory: the first
//! run applies without failure, the second makes zero writes (API and host files) and plans no
//! guest, firewall or host-file change besides the staged `/etc/network/interfaces` awaiting
//! its switch. The firewall goes through the API only (no `.fw` host file): the guests'
//! firewall reads back through fakepve's API as the model's intent, and drift planted by hand
//! through the API is reported by `status` (scope and position or key) and repaired by `sync`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../phoenix-pve/tests/common/mod.rs"]
mod common;
mod pve_support;

use std::process::Command;

use common::{FakePve, fakepve_available};
use phoenix_render::RenderOptions;
use pve_support::{actions, copy_tree, homelab_dir, node_cmd, run_json, status, storages};

fn sync(pve: &FakePve, root: &std::path::Path) -> (i32, serde_json::Value, String) {
    sync_with(pve, root, &[])
}

fn sync_with(
    pve: &FakePve,
    root: &std::path::Path,
    extra: &[&str],
) -> (i32, serde_json::Value, String) {
    let mut args = vec!["sync", "all", "--target", "pve", "--output", "json"];
    args.extend_from_slice(extra);
    args.extend(["--image-store", "local"]);
    run_json(node_cmd(pve, root, &homelab_dir(), &args))
}

fn print_summary(label: &str, report: &serde_json::Value) {
    println!(
        "{label}: requests {} (observe {}), writes {}, host file writes {}",
        report["requests"]["total"]["requests"],
        report["requests"]["observe"]["requests"],
        report["requests"]["total"]["writes"],
        report["host_writes"]
    );
}

#[test]
fn sync_all_twice_second_run_writes_nothing() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();

    let (code, first, stderr) = sync(&pve, root.path());
    print_summary("first run", &first);
    for e in first["journal"]["entries"].as_array().unwrap() {
        println!(
            "  [{}] {} → {}",
            e["wave"], e["action"]["action"], e["outcome"]
        );
    }
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(first["journal"]["success"], true);
    assert!(first["host_writes"].as_u64().unwrap() > 0);
    assert!(
        root.path().join("etc/network/interfaces.new").exists(),
        "interfaces is staged"
    );
    assert!(
        !root.path().join("etc/network/interfaces").exists(),
        "the live interfaces file is never written by sync (the switch is separate)"
    );

    assert!(
        !root.path().join("etc/pve").exists(),
        "no .fw host file: the firewall goes through the API"
    );
    assert!(
        actions(&first).iter().any(|a| a["action"] == "firewall"),
        "the firewall is in the plan"
    );
    assert_guest_firewall_is_the_models(&pve);

    // A figure for docs/benchmarks.md, not an assertion: the whole no-op run's wall time.
    let t = std::time::Instant::now();
    let (code, second, stderr) = sync(&pve, root.path());
    println!("second run wall time (whole process): {:?}", t.elapsed());
    print_summary("second run", &second);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(second["requests"]["total"]["writes"], 0, "API writes");
    assert_eq!(second["host_writes"], 0, "host file writes");
    let left: Vec<_> = actions(&second)
        .into_iter()
        .filter(|a| {
            let guest_file = a["action"] == "write_file" && a["target"]["kind"] != "host";
            let certificate = a["action"] == "issue_certificate";
            !(guest_file || certificate)
        })
        .collect();
    // Only the staged host network files remain (interfaces, NAT, dnsmasq: their switch is
    // try-and-rollback, `--switch-network`), each reported as already staged.
    const STAGED: [&str; 3] = [
        "/etc/network/interfaces",
        "/etc/phoenix/nat.nft",
        "/etc/dnsmasq.d/phoenix.conf",
    ];
    let paths: Vec<&str> = left.iter().map(|a| a["path"].as_str().unwrap()).collect();
    assert_eq!(paths, STAGED, "{left:#?}");
    for path in STAGED {
        let staged = second["journal"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"]["path"] == path)
            .unwrap();
        assert_eq!(staged["outcome"], "staged");
        assert!(
            staged["detail"]
                .as_str()
                .unwrap()
                .contains("already staged")
        );
        assert!(root.path().join(format!("{}.new", &path[1..])).exists());
        assert!(
            !root.path().join(&path[1..]).exists(),
            "{path}: the live file is only written by the switch"
        );
    }
}

/// The model's firewall intent (as the API stores it), from the same planner module the CLI
/// uses.
fn desired_firewall() -> phoenix_plan::firewall_api::FirewallState {
    let d = phoenix_model::validate_dir(&homelab_dir()).desired.unwrap();
    phoenix_plan::firewall_api::desired(
        &d,
        &RenderOptions {
            node: "pve1".into(),
        },
    )
}

fn api(pve: &FakePve) -> phoenix_pve::PveClient {
    pve.client(phoenix_pve::TlsTrust::CaFile(pve.pki.ca_pem.clone()))
}

/// Every guest's firewall through fakepve's API: options (enable=1, the policies) and the
/// rules, position by position, equal the model's intent; the cluster is enabled.
fn assert_guest_firewall_is_the_models(pve: &FakePve) {
    let client = api(pve);
    let desired = desired_firewall();
    let cluster = client.get("/cluster/firewall/options", &[]).unwrap();
    assert_eq!(cluster["enable"], 1, "{cluster}");
    for g in &desired.guests {
        let seg = if g.kind == phoenix_model::model::GuestKind::Lxc {
            "lxc"
        } else {
            "qemu"
        };
        let base = format!("/nodes/pve1/{seg}/{}/firewall", g.id);
        let opts = client.get(&format!("{base}/options"), &[]).unwrap();
        for (k, v) in &g.state.options {
            let got = match &opts[k] {
                serde_json::Value::Number(n) => n.to_string(),
                other => other.as_str().unwrap_or_default().to_string(),
            };
            assert_eq!(&got, v, "{base}/options {k}: {opts}");
        }
        let rules = client.get(&format!("{base}/rules"), &[]).unwrap();
        let rules = rules.as_array().unwrap();
        assert_eq!(rules.len(), g.state.rules.len(), "{base}/rules");
        for (pos, (got, want)) in rules.iter().zip(&g.state.rules).enumerate() {
            assert_eq!(got["pos"], pos);
            for (k, v) in want {
                let got = match &got[k] {
                    serde_json::Value::Number(n) => n.to_string(),
                    other => other.as_str().unwrap_or_default().to_string(),
                };
                assert_eq!(&got, v, "{base}/rules/{pos} {k}");
            }
        }
    }
    let g102 = desired
        .guest(phoenix_model::model::GuestId(102))
        .expect("guest 102 has a firewall");
    assert!(!g102.state.rules.is_empty(), "Traefik (102) has rules");
    assert_eq!(
        g102.state.options.get("enable").map(String::as_str),
        Some("1")
    );
}

/// The firewall rows `status` reports as differing: scope and differences.
fn firewall_drift(st: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    st["status"]["firewall"]
        .as_array()
        .expect("status has firewall rows")
        .iter()
        .filter(|r| r["state"] != "in_sync")
        .map(|r| {
            let diffs = r["differences"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_string())
                .collect();
            (r["scope"].as_str().unwrap().to_string(), diffs)
        })
        .collect()
}

/// The firewall actions of a sync report, as the plan words them.
fn firewall_actions(report: &serde_json::Value) -> Vec<serde_json::Value> {
    actions(report)
        .into_iter()
        .filter(|a| a["action"] == "firewall")
        .collect()
}

/// A rule deleted by hand through the API (`DELETE …/firewall/rules/0`) is drift of exactly
/// that scope and position: `status` says so, `sync` plans exactly its re-creation, restores
/// it, and the next run changes nothing; an option changed by hand (`policy_in`) likewise.
#[test]
fn firewall_drift_by_hand_is_detected_and_repaired() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let (code, _, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "{stderr}");
    let (_, st) = status(&pve, root.path());
    assert!(firewall_drift(&st).is_empty(), "{st:#}");
    let rows = st["status"]["firewall"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["scope"] == "lxc 102" && r["state"] == "in_sync")
    );

    let client = api(&pve);
    let rules = "/nodes/pve1/lxc/102/firewall/rules";
    let before = client.get(rules, &[]).unwrap();
    let first = before[0].clone();
    client
        .write(
            reqwest::Method::DELETE,
            &format!("{rules}/0"),
            &Default::default(),
        )
        .expect("delete rule 0 by hand");

    let (code, st) = status(&pve, root.path());
    assert_eq!(code, 2);
    assert_eq!(st["requests"]["writes"], 0);
    let drift = firewall_drift(&st);
    assert_eq!(drift.len(), 1, "{drift:#?}");
    assert_eq!(drift[0].0, "lxc 102");
    assert_eq!(drift[0].1.len(), 1, "{drift:#?}");
    assert!(
        drift[0].1[0].starts_with("create rule at position 0: in ACCEPT"),
        "{drift:#?}"
    );
    assert!(
        drift[0].1[0].contains(first["comment"].as_str().unwrap()),
        "{drift:#?}"
    );

    let (code, report, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "{stderr}");
    let planned = firewall_actions(&report);
    assert_eq!(planned.len(), 1, "{planned:#?}");
    assert_eq!(planned[0]["change"]["op"], "create_rule");
    assert_eq!(planned[0]["change"]["pos"], 0);
    assert_eq!(planned[0]["scope"]["id"], 102);
    let after = client.get(rules, &[]).unwrap();
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        for r in v.as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("digest");
        }
        v
    };
    assert_eq!(strip(&after), strip(&before), "the rule is back, in place");
    let (code, report, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(firewall_actions(&report).is_empty());
    assert_eq!(report["requests"]["total"]["writes"], 0);

    // An option changed by hand.
    let options = "/nodes/pve1/lxc/102/firewall/options";
    let was = client.get(options, &[]).unwrap()["policy_in"]
        .as_str()
        .unwrap()
        .to_string();
    let other = if was == "ACCEPT" { "REJECT" } else { "ACCEPT" };
    client
        .write(
            reqwest::Method::PUT,
            options,
            &std::collections::BTreeMap::from([("policy_in".to_string(), other.to_string())]),
        )
        .expect("policy_in by hand");
    let (code, st) = status(&pve, root.path());
    assert_eq!(code, 2);
    let drift = firewall_drift(&st);
    assert_eq!(
        drift,
        vec![(
            "lxc 102".to_string(),
            vec![format!("set options: policy_in: {other} → {was}")]
        )]
    );
    let (code, report, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "{stderr}");
    let planned = firewall_actions(&report);
    assert_eq!(planned.len(), 1, "{planned:#?}");
    assert_eq!(planned[0]["change"]["op"], "set_options");
    assert_eq!(client.get(options, &[]).unwrap()["policy_in"], was.as_str());
    let (_, report, _) = sync(&pve, root.path());
    assert_eq!(report["requests"]["total"]["writes"], 0);
    let (code, st) = status(&pve, root.path());
    assert!(firewall_drift(&st).is_empty(), "{st:#}");
    // Only the staged host network files remain (their switch is pending).
    assert_eq!(code, 2);
}

/// `--only firewall`: the firewall actions alone, through the API; no host file is read or
/// written and no guest action is planned.
#[test]
fn only_firewall_plans_firewall_actions_alone() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let (code, r, stderr) = sync_with(&pve, root.path(), &["--only", "firewall"]);
    assert_eq!(code, 0, "{stderr}");
    let all = actions(&r);
    assert!(!all.is_empty());
    assert!(all.iter().all(|a| a["action"] == "firewall"), "{all:#?}");
    assert_eq!(r["journal"]["success"], true);
    assert_eq!(r["host_writes"], 0);
    assert!(r["plan"]["files"].as_array().unwrap().is_empty());
    assert!(!root.path().join("etc").exists());
    let (code, r, stderr) = sync_with(&pve, root.path(), &["--only", "firewall"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(actions(&r).is_empty(), "{r:#}");
    assert_eq!(r["requests"]["total"]["writes"], 0);
}

/// The host files `status` reports as not in sync, in its order.
fn differing_host_files(st: &serde_json::Value) -> Vec<&str> {
    st["status"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["state"] != "in_sync" && f["target"] == "host")
        .map(|f| f["path"].as_str().unwrap())
        .collect()
}

/// `phoenix status`: on an empty node every guest is missing; after a sync every guest exists
/// with no drift (the staged interfaces file is reported as differing: its switch is pending);
/// memory changed behind phoenix's back shows up as exactly that key on exactly that guest.
/// Status never writes.
#[test]
fn status_reports_missing_then_drift_by_key() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();

    let (code, st) = status(&pve, root.path());
    assert_eq!(code, 2, "{st:#}");
    assert_eq!(st["requests"]["writes"], 0);
    let guests = st["status"]["guests"].as_array().unwrap();
    assert!(!guests.is_empty());
    assert!(guests.iter().all(|g| g["exists"] == false), "{guests:#?}");

    let (code, _, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "{stderr}");
    let (_, st) = status(&pve, root.path());
    assert_eq!(st["requests"]["writes"], 0);
    for g in st["status"]["guests"].as_array().unwrap() {
        assert_eq!(g["exists"], true, "{g:#}");
        assert!(g["drift"].as_array().unwrap().is_empty(), "{g:#}");
    }
    let differing = differing_host_files(&st);
    assert_eq!(
        differing,
        vec![
            "/etc/network/interfaces",
            "/etc/phoenix/nat.nft",
            "/etc/dnsmasq.d/phoenix.conf"
        ]
    );

    // Drift: memory of one guest changed through the API.
    let client = pve.client(phoenix_pve::TlsTrust::CaFile(pve.pki.ca_pem.clone()));
    let guest = st["status"]["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["kind"] == "lxc" && g["template"] == false)
        .unwrap()
        .clone();
    let id = guest["id"].as_u64().unwrap();
    let cfg: serde_json::Value = client
        .get(&format!("/nodes/pve1/lxc/{id}/config"), &[])
        .expect("config");
    let old: u64 = cfg["memory"]
        .as_u64()
        .or_else(|| cfg["memory"].as_str().and_then(|s| s.parse().ok()))
        .expect("memory");
    let params =
        std::collections::BTreeMap::from([("memory".to_string(), (old + 512).to_string())]);
    client
        .write_and_wait(
            reqwest::Method::PUT,
            &format!("/nodes/pve1/lxc/{id}/config"),
            &params,
        )
        .expect("drift write");
    let (code, st) = status(&pve, root.path());
    assert_eq!(code, 2);
    let rows = st["status"]["guests"].as_array().unwrap();
    let drifted: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|g| !g["drift"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(drifted.len(), 1, "{rows:#?}");
    assert_eq!(drifted[0]["id"].as_u64(), Some(id));
    let d = &drifted[0]["drift"][0];
    assert_eq!(d["key"], "memory");
    assert_eq!(d["from"], (old + 512).to_string());
    assert_eq!(d["to"], old.to_string());
}

/// `--only guests` on a converged node: one inventory call, one storage list (where the VMs'
/// vendor snippets live) plus one config read per managed guest, zero writes; the plan holds
/// guest actions only and no file but those snippets.
#[test]
fn only_guests_no_op_is_inventory_plus_one_per_guest() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let (code, _, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "{stderr}");
    let t = std::time::Instant::now();
    let (code, r, stderr) = sync_with(&pve, root.path(), &["--only", "guests"]);
    let took = t.elapsed();
    assert_eq!(code, 0, "{stderr}");
    let managed = r["plan"]["waves"].as_array().map_or(0, Vec::len);
    assert_eq!(managed, 0, "no guest action on a converged node: {r:#}");
    let guests = homelab_guest_count();
    let requests = r["requests"]["total"]["requests"].as_u64().unwrap();
    println!(
        "--only guests no-op: {requests} requests for {guests} managed guests, {} writes, {took:?} wall",
        r["requests"]["total"]["writes"]
    );
    assert!(requests <= 2 + guests, "{requests} > 2 + {guests}");
    assert_eq!(r["requests"]["total"]["writes"], 0);
    assert_eq!(r["host_writes"], 0);
    assert!(
        r["plan"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["path"].as_str().unwrap().contains("/snippets/phoenix-")),
        "files are not part of --only guests, but for the VMs' vendor snippets"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(["sync", "all", "--target", "pve", "--only", "network"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown subsystem `network`"));
}

fn homelab_guest_count() -> u64 {
    let d = phoenix_model::validate_dir(&homelab_dir()).desired.unwrap();
    d.guests.len() as u64
}

/// Ticket login from the CLI: `--username` with the password from the environment reads the
/// node; a wrong password is a usage error that never echoes the password.
#[test]
fn status_with_a_ticket_login() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let run = |password: &str| {
        node_cmd(
            &pve,
            root.path(),
            &homelab_dir(),
            &["status", "--target", "pve", "--output", "json"],
        )
        .args(["--username", common::USERNAME])
        .env("PROXMOX_VE_PASSWORD", password)
        .env_remove("PROXMOX_VE_API_TOKEN")
        .output()
        .unwrap()
    };
    let ok = run(common::PASSWORD);
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert_eq!(ok.status.code(), Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert!(!v["status"]["guests"].as_array().unwrap().is_empty());
    assert!(!String::from_utf8_lossy(&ok.stdout).contains(common::PASSWORD));

    let bad = run("not-the-password-123");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("login as phoenix@pve failed"), "{stderr}");
    assert!(!stderr.contains("not-the-password-123"));
}

/// `--switch-network` runs `ifreload` on this machine: refused with a scratch `--host-root`,
/// in a dry run, and a malformed confirmation id is refused; nothing is contacted or written.
#[test]
fn switch_network_refuses_unsafe_use() {
    let scratch = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(["sync", "all", "--target", "pve", "--switch-network"])
        .arg("--config")
        .arg(homelab_dir())
        .arg("--host-root")
        .arg(scratch.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("needs the node's real root"), "{stderr}");
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);

    let o = Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args([
            "sync",
            "all",
            "--target",
            "pve",
            "--switch-network",
            "--dry-run",
        ])
        .arg("--config")
        .arg(homelab_dir())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("a dry run applies nothing"));

    let o = Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(["sync", "confirm", "../../etc/passwd"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a switch id"));

    let o = Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(["sync", "all", "--target", "pve", "--confirm-within", "30"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "--confirm-within needs --switch-network"
    );
}

/// The bash verbs on a node: `apply … stop 1002` stops exactly that guest, `start` starts it
/// again, `delete 103` is refused while others depend on it, `delete 1002` removes it.
#[test]
fn apply_verbs_act_on_the_node() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let (code, _, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "{stderr}");
    let apply = |verb: &[&str]| {
        let out = node_cmd(
            &pve,
            root.path(),
            &homelab_dir(),
            &["apply", "--target", "pve", "--output", "json"],
        )
        .args(verb)
        .output()
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (out.status.code().unwrap_or(-1), json, stderr)
    };
    let running = |id: u64| -> Option<bool> {
        let (_, st) = status(&pve, root.path());
        st["status"]["guests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"].as_u64() == Some(id))
            .and_then(|g| g["running"].as_bool())
    };
    assert_eq!(running(1002), Some(true));

    let (code, r, stderr) = apply(&["stop", "1002"]);
    assert_eq!(code, 0, "{stderr}");
    let acts = actions(&r);
    assert_eq!(acts.len(), 1, "{acts:#?}");
    assert_eq!(acts[0]["action"], "stop_guest");
    assert_eq!(running(1002), Some(false));
    assert_eq!(running(1001), Some(true), "only 1002 stopped");

    let (code, _, stderr) = apply(&["start", "1002"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(running(1002), Some(true));

    let (code, _, stderr) = apply(&["delete", "103"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("103"), "{stderr}");
    assert_eq!(running(103), Some(true), "refused: nothing deleted");

    let (code, r, stderr) = apply(&["delete", "1002"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(actions(&r).iter().any(|a| a["action"] == "delete_guest"));
    assert_eq!(running(1002), None, "1002 is gone");
}

/// A value phoenix accepts but Proxmox's schema refuses (LXC memory below 16 MiB): the HTTP 400
/// becomes a journal failure that names the parameter, PVE's message and the configuration key
/// that produced it (file and JSON pointer); the run exits 3 and says where it stopped.
#[test]
fn rejected_parameters_point_at_the_config_key() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let cfg = tempfile::tempdir().unwrap();
    copy_tree(&homelab_dir(), cfg.path());
    let lxc = cfg.path().join("phoenix_lxc_configs.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lxc).unwrap()).unwrap();
    v["lxc_configs"]["103"]["memory_mb"] = serde_json::json!(8);
    std::fs::write(&lxc, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let out = node_cmd(
        &pve,
        root.path(),
        cfg.path(),
        &[
            "sync",
            "all",
            "--target",
            "pve",
            "--output",
            "json",
            "--image-store",
            "local",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<&serde_json::Value> = r["journal"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let detail = failed[0]["detail"].as_str().unwrap();
    assert!(detail.contains("memory:"), "{detail}");
    assert!(
        detail.contains("phoenix_lxc_configs.json /lxc_configs/103/memory_mb"),
        "{detail}"
    );
    assert!(stderr.contains("apply stopped in wave"), "{stderr}");
}

/// The waves of a `sync all` report's plan: (name, actions) in order.
fn waves(report: &serde_json::Value) -> Vec<(String, Vec<serde_json::Value>)> {
    report["plan"]["waves"]
        .as_array()
        .expect("waves")
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap_or_default().to_string(),
                w["actions"].as_array().cloned().unwrap_or_default(),
            )
        })
        .collect()
}

/// The one pipeline: against an empty lab and an empty node, `sync all --dry-run` plans the
/// same actions, in the same waves and order, for the same reasons — with and without the
/// provision steps. The lab's dry run makes nothing.
#[test]
fn empty_lab_and_empty_node_plan_the_same_actions() {
    if !fakepve_available() {
        return;
    }
    if !phoenix_lab::is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the lab's dry run needs root"
        );
        eprintln!("note: skipped (the lab's dry run needs root)");
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let prefix = format!("e{}", std::process::id() % 100_000);
    for provision in [false, true] {
        let extra: &[&str] = if provision {
            &["--dry-run", "--provision"]
        } else {
            &["--dry-run"]
        };
        let (code, node, stderr) = sync_with(&pve, root.path(), extra);
        assert_eq!(code, 0, "node dry run: {stderr}");
        let mut lab = Command::new(env!("CARGO_BIN_EXE_phoenix"));
        lab.args(["sync", "all", "--target", "lab", "--prefix", &prefix])
            .args(["--node", "pve1", "--output", "json"])
            .args(extra)
            .arg("--config")
            .arg(homelab_dir())
            .env_remove("PHOENIX_CONFIG");
        let (code, lab, stderr) = run_json(lab);
        assert_eq!(code, 0, "the lab's dry run exits as the node's; {stderr}");
        // `digest` (the API's optimistic lock on what was read) is the node's annotation of
        // an action, not part of it.
        let (mut node, lab) = (waves(&node), waves(&lab));
        for (_, actions) in &mut node {
            for a in actions.iter_mut() {
                if let Some(o) = a.as_object_mut() {
                    o.remove("digest");
                }
            }
        }
        assert!(node.len() > 5, "{node:?}");
        assert_eq!(
            node.iter().map(|w| &w.0).collect::<Vec<_>>(),
            lab.iter().map(|w| &w.0).collect::<Vec<_>>(),
            "the same waves (provision: {provision})"
        );
        for ((name, n), (_, l)) in node.iter().zip(&lab) {
            assert_eq!(n, l, "wave `{name}` (provision: {provision})");
        }
    }
    assert!(
        !phoenix_lab::state_dir(&prefix).exists(),
        "a dry run made the lab's state dir"
    );
}
