//! The operator's workflow against fakepve (an external process): `plan --target pve` and
//! `observe` + the offline `plan --observed` give the same actions; `plan --out` saves a plan
//! without secrets that `sync all --plan` applies, or refuses, naming what moved, after
//! drift on the node or a configuration edit; a run that is not on a terminal asks for
//! `--yes`; and the exit codes of plans and dry runs (docs/exit-codes.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod cli_common;
#[path = "../../phoenix-pve/tests/common/mod.rs"]
mod common;
mod pve_support;

use std::path::Path;
use std::process::Command;

use common::{FakePve, SECRET, fakepve_available};
use pve_support::{
    guest_config, guest_status, homelab_dir, node_cmd, node_cmd_asking, put_config, storages,
};

/// Exit code, stdout, stderr.
fn run(mut cmd: Command) -> (i32, String, String) {
    let o = cmd.output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(
        !out.contains(SECRET) && !err.contains(SECRET),
        "the secret was printed"
    );
    (o.status.code().unwrap_or(-1), out, err)
}

/// The action lines of a JSON plan, the API's optimistic-lock digest left out.
fn actions(plan_json: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(plan_json).unwrap();
    v["waves"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["actions"].as_array().unwrap().clone())
        .map(|mut a| {
            if let Some(o) = a.as_object_mut() {
                o.remove("digest");
            }
            a
        })
        .collect()
}

/// Set guest `id`'s `memory_mb` in the LXC file of `config`.
fn set_memory(config: &Path, id: &str, mb: u64) {
    let file = config.join("phoenix_lxc_configs.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    v["lxc_configs"][id]["memory_mb"] = mb.into();
    std::fs::write(&file, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn plan_observe_and_exit_codes_on_a_node() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| node_cmd(&pve, root.path(), &homelab_dir(), args);

    // An empty node: changes; plan exits 2 only with --detailed-exitcode, dry runs alike.
    let (code, on_target, err) = run(cmd(&["plan", "--target", "pve", "-o", "json"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(cmd(&["plan", "--target", "pve", "--detailed-exitcode"]));
    assert_eq!(code, 2, "{err}");
    let dry = ["sync", "all", "--target", "pve", "--dry-run"];
    assert_eq!(run(cmd(&dry)).0, 0);
    assert_eq!(
        run(cmd(&[&dry[..], &["--detailed-exitcode"]].concat())).0,
        2
    );

    // observe → the offline plan against it: the same actions as planning on the target.
    let (code, observed, err) = run(cmd(&["observe", "--target", "pve"]));
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&observed).unwrap();
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["target"], "pve pve1");
    let file = work.path().join("observed.json");
    std::fs::write(&file, &observed).unwrap();
    let mut offline = Command::new(env!("CARGO_BIN_EXE_phoenix"));
    offline
        .args(["plan", "-o", "json", "--node", "pve1", "--observed"])
        .arg(&file)
        .arg("--config")
        .arg(homelab_dir())
        .env_remove("PHOENIX_CONFIG");
    let (code, offline, err) = run(offline);
    assert_eq!(code, 0, "{err}");
    assert_eq!(actions(&offline), actions(&on_target));

    // An encrypted CA: `plan --target` takes its passphrase as `sync all` does.
    let ca = work.path().join("ca");
    let pass = work.path().join("ca.pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let mut init = Command::new(env!("CARGO_BIN_EXE_phoenix"));
    init.args(["ca", "init", "--ca-dir"])
        .arg(&ca)
        .arg("--passphrase-file")
        .arg(&pass)
        .arg("--config")
        .arg(homelab_dir());
    let (code, _, err) = run(init);
    assert_eq!(code, 0, "{err}");
    let (ca_s, pass_s) = (ca.to_str().unwrap(), pass.to_str().unwrap());
    let (code, planned, err) = run(cmd(&[
        "plan",
        "--target",
        "pve",
        "-o",
        "json",
        "--ca-dir",
        ca_s,
        "--passphrase-file",
        pass_s,
    ]));
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&planned).unwrap();
    assert!(
        plan["certificates"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "{plan:#}"
    );
    assert!(
        !planned.contains("correct horse"),
        "the passphrase was printed"
    );

    // Not a terminal and no --yes: refused before anything changes.
    let mut asking = node_cmd_asking(
        &pve,
        root.path(),
        &homelab_dir(),
        &["sync", "all", "--target", "pve", "--image-store", "local"],
    );
    asking.stdin(std::process::Stdio::null());
    let (code, _, err) = run(asking);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("without confirmation") && err.contains("--yes"),
        "{err}"
    );
    assert_eq!(
        guest_status(&pve, "lxc", 101),
        None,
        "a refused run changed the node"
    );
}

#[test]
fn saved_plan_applies_then_refuses_after_drift_on_a_node() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("etc");
    cli_common::copy_tree(&homelab_dir(), &config);
    let cmd = |args: &[&str]| node_cmd(&pve, root.path(), &config, args);
    let plan_file = work.path().join("plan.json");
    let plan_arg = plan_file.to_str().unwrap();
    let sync_plan = [
        "sync",
        "all",
        "--target",
        "pve",
        "--image-store",
        "local",
        "--plan",
        plan_arg,
    ];

    // The whole homelab, planned and saved, then applied exactly.
    let (code, _, err) = run(cmd(&["plan", "--target", "pve", "--out", plan_arg]));
    assert_eq!(code, 0, "{err}");
    let saved = std::fs::read_to_string(&plan_file).unwrap();
    assert!(
        !saved.contains(SECRET),
        "the API token is in the saved plan"
    );
    let doc: serde_json::Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["target"], "pve pve1");
    assert_eq!(doc["config_digest"].as_str().unwrap().len(), 64);
    assert!(
        doc["observed"]["guest 101"] == "absent",
        "{:#}",
        doc["observed"]
    );
    let (code, out, err) = run(cmd(&sync_plan));
    assert_eq!(code, 0, "{err}\n{out}");
    assert!(out.contains("journal:"), "{out}");
    assert!(guest_config(&pve, "lxc", 101).get("hostname").is_some());

    // One change planned (102's memory), then drift on 102 behind phoenix's back: refused.
    set_memory(&config, "102", 3072);
    let (code, out, err) = run(cmd(&["plan", "--target", "pve", "--out", plan_arg]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("memory: 2048 → 3072") || out.contains("→ 3072"),
        "{out}"
    );
    put_config(&pve, "lxc", 102, &[("cores", "3")]);
    let (code, _, err) = run(cmd(&sync_plan));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the target changed since the plan was made") && err.contains("guest 102"),
        "{err}"
    );
    assert_ne!(
        guest_config(&pve, "lxc", 102)["memory"],
        3072,
        "a refused plan applied"
    );

    // A fresh plan applies; a configuration edit after the plan is refused too.
    let (code, _, err) = run(cmd(&["plan", "--target", "pve", "--out", plan_arg]));
    assert_eq!(code, 0, "{err}");
    set_memory(&config, "102", 4096);
    let (code, _, err) = run(cmd(&sync_plan));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the configuration changed"), "{err}");
    set_memory(&config, "102", 3072);
    let (code, _, err) = run(cmd(&[&sync_plan[..], &["--dry-run"]].concat()));
    assert_eq!(code, 0, "a dry run checks the saved plan: {err}");
    let (code, out, err) = run(cmd(&sync_plan));
    assert_eq!(code, 0, "{err}\n{out}");
    assert_eq!(guest_config(&pve, "lxc", 102)["memory"], 3072);

    // `apply VERB --plan`: the verb's saved plan applies; another verb's is refused.
    let (code, _, err) = run(cmd(&[
        "plan", "--target", "pve", "--out", plan_arg, "stop", "102",
    ]));
    assert_eq!(code, 0, "{err}");
    let apply = |verb: &str| cmd(&["apply", "--target", "pve", "--plan", plan_arg, verb, "102"]);
    let (code, _, err) = run(apply("start"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the saved plan was made for `stop 102`"),
        "{err}"
    );
    let (code, _, err) = run(apply("stop"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(guest_status(&pve, "lxc", 102).as_deref(), Some("stopped"));
}

/// `cmd` run on a pseudo-terminal (util-linux `script`) with `answer` typed in: exit code
/// and what the terminal showed.
fn on_terminal(cmd: &Command, answer: &str) -> (i32, String) {
    use std::io::Write;
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
    let line: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(quote)
        .collect();
    let mut script = Command::new("script");
    script
        .args(["-qec", &line.join(" "), "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let mut child = script.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn a_node_sync_on_a_terminal_asks_first() {
    if !fakepve_available() || Command::new("script").arg("--version").output().is_err() {
        return;
    }
    let pve = FakePve::start(&storages());
    let root = tempfile::tempdir().unwrap();
    let sync = node_cmd_asking(
        &pve,
        root.path(),
        &homelab_dir(),
        &["sync", "all", "--target", "pve", "--image-store", "local"],
    );
    let (code, shown) = on_terminal(&sync, "n\n");
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("Apply these "), "{shown}");
    assert!(shown.contains(" changes to pve1? [y/N]"), "{shown}");
    assert!(
        shown.contains("wave 1:"),
        "the plan is shown first: {shown}"
    );
    assert!(shown.contains("not applied"), "{shown}");
    assert_eq!(
        guest_status(&pve, "lxc", 101),
        None,
        "a declined run changed the node"
    );
    let (code, shown) = on_terminal(&sync, "y\n");
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("journal:"), "{shown}");
    assert!(guest_status(&pve, "lxc", 101).is_some());
}

/// A plan that cannot observe its node is a finding (1), never "apply failed" (3).
#[test]
fn an_unreachable_node_plans_nothing_and_exits_1() {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phoenix"));
    c.args([
        "plan",
        "--target",
        "pve",
        "--endpoint",
        "https://127.0.0.1:1",
    ])
    .args([
        "--node",
        "pve1",
        "--insecure-skip-tls-verify",
        "--request-timeout",
        "2",
    ])
    .arg("--config")
    .arg(homelab_dir())
    .env(
        "PROXMOX_VE_API_TOKEN",
        format!("{}={SECRET}", common::TOKEN_ID),
    )
    .env_remove("PHOENIX_CONFIG");
    let (code, out, err) = run(c);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty() && err.contains("observe guests"), "{err}");
}
