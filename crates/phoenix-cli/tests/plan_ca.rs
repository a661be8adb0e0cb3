//! Whole runs of `phoenix plan`, `phoenix render` and `phoenix ca`: the plan of the example and
//! of the operator's real files, idempotence through `--observed`, planted drift, the verbs,
//! the rendered tree, and the CA life cycle with no key material in any output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn homelab() -> String {
    repo().join("examples/homelab").display().to_string()
}

fn rootesting() -> String {
    repo()
        .join("../shared/fixtures/upstream/rootesting-2025-11-25/etc")
        .display()
        .to_string()
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phoenix"));
    c.env_remove("PHOENIX_CONFIG").env("NO_COLOR", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run phoenix: {e}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn plan_json(config: &str, extra: &[&str]) -> Value {
    let mut args = vec!["plan", "--config", config, "--output", "json"];
    args.extend_from_slice(extra);
    let o = run(&args, &[]);
    assert!(
        o.status.success(),
        "plan failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("plan JSON: {e}"))
}

/// The observed state a perfect apply of `plan` would leave (files and guests).
fn observed_after(plan: &Value) -> Value {
    let files: Vec<Value> = plan["files"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| json!({"target": f["target"], "path": f["path"], "content": f["content"], "owner": f["owner"], "group": f["group"], "mode": f["mode"]}))
        .collect();
    json!({ "files": files })
}

#[test]
fn plan_of_the_example_is_complete_and_ordered() {
    let p = plan_json(&homelab(), &[]);
    let text = p.to_string();
    for path in [
        "/etc/network/interfaces",
        "/etc/phoenix/nat.nft",
        "/etc/dnsmasq.d/phoenix.conf",
        "/etc/pve/firewall/cluster.fw",
        "/etc/pve/nodes/pve/host.fw",
        "/etc/pve/firewall/101.fw",
        "/etc/traefik/traefik.yml",
        "/etc/nginx/conf.d/phoenix-gateway.conf",
    ] {
        assert!(text.contains(path), "{path} missing from the plan");
    }
    let summary = &p["summary"];
    assert!(
        summary["create"].as_u64().is_some_and(|n| n >= 20),
        "{summary}"
    );
    assert_eq!(summary["delete"], 0);
    // Waves: host files first, guests by level, starts, files inside guests last.
    let names: Vec<&str> = p["waves"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["name"].as_str())
        .collect();
    assert_eq!(
        names.first().copied(),
        Some("host network, DNS and firewall files")
    );
    assert_eq!(names.last().copied(), Some("files inside guests"));
}

#[test]
fn the_seed_bugs_cannot_be_planned_for_the_operator_files() {
    let p = plan_json(&rootesting(), &[]);
    let files = p["files"].as_array().cloned().unwrap_or_default();
    let all: String = files
        .iter()
        .filter_map(|f| f["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!all.contains("http://dhcp"), "a route to `dhcp`");
    assert!(
        !all.contains("http://172.16.100.11"),
        "an http:// route to Step-CA"
    );
    let nginx = files
        .iter()
        .find(|f| f["path"] == "/etc/nginx/conf.d/phoenix-gateway.conf")
        .and_then(|f| f["content"].as_str())
        .unwrap_or_default()
        .to_string();
    let upstreams: Vec<&str> = nginx
        .lines()
        .filter_map(|l| l.trim().strip_prefix("proxy_pass "))
        .collect();
    assert!(!upstreams.is_empty(), "no proxy_pass in {nginx}");
    for u in upstreams {
        assert!(
            u.starts_with("https://172.16.100.12:"),
            "upstream {u} is not Traefik's mesh address"
        );
    }
}

#[test]
fn planning_against_its_own_result_is_empty_and_drift_is_exact() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let p = plan_json(&homelab(), &[]);
    let obs = observed_after(&p);
    let obs_path = dir.path().join("observed.json");
    std::fs::write(&obs_path, obs.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let obs_arg = obs_path.display().to_string();
    // Files converged: only guest work remains, and no file action.
    let again = plan_json(&homelab(), &["--observed", &obs_arg]);
    let file_actions = again["waves"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|w| w["actions"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["action"] == "write_file")
        .count();
    assert_eq!(file_actions, 0);
    // Plant one change: the hand-edited dnsmasq file is exactly one action, with a diff.
    let mut planted = obs.clone();
    if let Some(files) = planted["files"].as_array_mut() {
        for f in files
            .iter_mut()
            .filter(|f| f["path"] == "/etc/dnsmasq.d/phoenix.conf")
        {
            f["content"] = json!("server=192.0.2.53\n");
        }
    }
    std::fs::write(&obs_path, planted.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let drift = plan_json(&homelab(), &["--observed", &obs_arg]);
    let writes: Vec<Value> = drift["waves"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|w| w["actions"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["action"] == "write_file")
        .collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0]["path"], "/etc/dnsmasq.d/phoenix.conf");
    let diff = drift["files"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["path"] == "/etc/dnsmasq.d/phoenix.conf")
        .and_then(|f| f["diff"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(diff.contains("-server=192.0.2.53"), "{diff}");
}

#[test]
fn detailed_exitcode_and_verbs() {
    let o = run(
        &["plan", "--config", &homelab(), "--detailed-exitcode"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "changes present");
    assert!(
        stdout(&o)
            .lines()
            .last()
            .is_some_and(|l| l.ends_with("to delete"))
    );
    let o = run(&["plan", "--config", &homelab(), "delete", "103"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("needed by"));
    let o = run(&["plan", "--config", &homelab(), "create", "102"], &[]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(
        out.contains("create lxc 103")
            && out.contains("create lxc 102")
            && !out.contains("create lxc 101")
    );
    let o = run(&["plan", "--config", &homelab(), "create", "4242"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let o = run(&["plan", "--config", &homelab(), "create", "12"], &[]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a VMID below 100 is a usage error"
    );
}

#[test]
fn render_writes_the_tree() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("r");
    let o = run(
        &[
            "render",
            "--config",
            &homelab(),
            "--out",
            &out.display().to_string(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "host/etc/network/interfaces",
        "host/etc/pve/firewall/cluster.fw",
        "guest-102/etc/traefik/traefik.yml",
        "guest-101/etc/nginx/conf.d/phoenix-gateway.conf",
        "pve/103.json",
    ] {
        assert!(out.join(f).is_file(), "{f} not written");
    }
}

fn ls_modes(dir: &Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(m) = p.metadata() {
                out.push((p.display().to_string(), m.permissions().mode() & 0o777));
            }
        }
    }
    out
}

#[test]
fn ca_life_cycle_keeps_secrets_out_of_every_output() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = dir.path().join("ca").display().to_string();
    let out = dir.path().join("out").display().to_string();
    let env = [("PHX_TEST_CA_PASS", "s3cret-passphrase-xyz")];
    let mut outputs = Vec::new();
    let mut go = |args: &[&str]| {
        let o = run(args, &env);
        outputs.push(format!(
            "{}{}",
            stdout(&o),
            String::from_utf8_lossy(&o.stderr)
        ));
        o
    };
    let o = go(&[
        "ca",
        "init",
        "--ca-dir",
        &ca,
        "--passphrase-env",
        "PHX_TEST_CA_PASS",
    ]);
    assert!(o.status.success());
    let o = go(&["ca", "status", "--ca-dir", &ca, "-o", "json"]);
    let status: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}"));
    let fp = status.to_string();
    assert!(fp.len() > 64);
    let issue = [
        "ca",
        "issue",
        "--config",
        &homelab(),
        "--ca-dir",
        &ca,
        "--passphrase-env",
        "PHX_TEST_CA_PASS",
        "--out",
        &out,
        "-o",
        "json",
    ];
    let first = go(&issue);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = go(&issue);
    let report = stdout(&second);
    assert!(
        report.contains("keep") && !report.contains("\"issue\""),
        "second run issued again: {report}"
    );
    for (path, mode) in ls_modes(Path::new(&out)) {
        if path.ends_with(".key") {
            assert!(mode & 0o007 == 0, "{path} is world-readable ({mode:o})");
        }
    }
    let o = go(&[
        "ca",
        "rotate",
        "--ca-dir",
        &ca,
        "--passphrase-env",
        "PHX_TEST_CA_PASS",
    ]);
    assert!(o.status.success());
    let third = go(&issue);
    assert!(
        stdout(&third).contains("issuer"),
        "rotation must re-issue: {}",
        stdout(&third)
    );
    // A wrong passphrase is a clear error, not a crash.
    let o = run(
        &[
            "ca",
            "rotate",
            "--ca-dir",
            &ca,
            "--passphrase-env",
            "PHX_TEST_WRONG",
        ],
        &[("PHX_TEST_WRONG", "nope")],
    );
    assert_eq!(o.status.code(), Some(1));
    for text in outputs {
        assert!(
            !text.contains("PRIVATE KEY"),
            "key material in output: {text}"
        );
        assert!(
            !text.contains("s3cret-passphrase-xyz"),
            "passphrase in output"
        );
    }
}

fn actions_of(plan: &Value, kind: &str) -> Vec<Value> {
    plan["waves"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|w| w["actions"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["action"] == kind)
        .collect()
}

const TRUST_FILE: &str = "/usr/local/share/ca-certificates/phoenix-root-ca.crt";

#[test]
fn plan_with_a_ca_dir_plans_trust_and_certificates() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = dir.path().join("ca").display().to_string();
    let o = run(&["ca", "init", "--ca-dir", &ca], &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Without --ca-dir: certificates issued, no trust files, and a note saying so.
    let plain = plan_json(&homelab(), &[]);
    // The manifest's three and the two Swarm VMs' Engine API server certificates.
    assert_eq!(actions_of(&plain, "issue_certificate").len(), 5);
    assert!(actions_of(&plain, "update_trust_store").is_empty());
    assert!(plain["notes"].to_string().contains("no CA given"));

    let p = plan_json(&homelab(), &["--ca-dir", &ca]);
    assert_eq!(p["notes"], json!([]));
    let issue = actions_of(&p, "issue_certificate");
    assert_eq!(issue.len(), 5);
    let engine: Vec<(u64, &str)> = issue
        .iter()
        .filter(|a| a["cert_path"] == "/etc/docker/tls/cert.pem")
        .map(|a| {
            (
                a["guest"].as_u64().unwrap_or_default(),
                a["common_name"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(engine, [(1001, "portainer-manager"), (1002, "drphoenix")]);
    assert!(issue.iter().all(|a| a["decision"]["action"] == "issue"));
    let stores = actions_of(&p, "update_trust_store");
    assert!(stores.iter().any(|a| a["target"]["kind"] == "host"));
    assert!(stores.len() >= 5, "{stores:?}");
    let trust_files: Vec<&Value> = p["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["path"] == TRUST_FILE)
        .collect();
    assert_eq!(trust_files.len(), stores.len());
    assert!(!p.to_string().contains("PRIVATE KEY"));
    let text = stdout(&run(
        &["plan", "--config", &homelab(), "--ca-dir", &ca],
        &[],
    ));
    assert!(
        text.contains("run update-ca-certificates on host"),
        "{text}"
    );
    assert!(text.contains(": issue (missing)"), "{text}");
    assert!(!text.contains("PRIVATE KEY"));

    // Trust files observed in place: no trust action any more.
    let obs_path = dir.path().join("observed.json");
    std::fs::write(&obs_path, observed_after(&p).to_string()).unwrap_or_else(|e| panic!("{e}"));
    let obs = obs_path.display().to_string();
    let again = plan_json(&homelab(), &["--ca-dir", &ca, "--observed", &obs]);
    assert!(actions_of(&again, "update_trust_store").is_empty());
    assert!(actions_of(&again, "write_file").is_empty());

    // After a rotation both roots are in every trust file, and every store is updated.
    let o = run(&["ca", "rotate", "--ca-dir", &ca], &[]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("phoenix plan --ca-dir"));
    let rotated = plan_json(&homelab(), &["--ca-dir", &ca, "--observed", &obs]);
    assert_eq!(
        actions_of(&rotated, "update_trust_store").len(),
        stores.len()
    );
    for f in rotated["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["path"] == TRUST_FILE)
    {
        let content = f["content"].as_str().unwrap_or_default();
        assert_eq!(content.matches("BEGIN CERTIFICATE").count(), 2, "{content}");
        assert_eq!(f["status"], "update");
    }
    assert!(!rotated.to_string().contains("PRIVATE KEY"));

    // A directory without a CA is a located error with a hint.
    let o = run(
        &[
            "plan",
            "--config",
            &homelab(),
            "--ca-dir",
            &dir.path().join("nope").display().to_string(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("error: CA:") && err.contains("hint:"), "{err}");
}

/// `plan --provision` adds the wave "provisioning inside guests": the features of each guest
/// as checked steps (step-ca from Smallstep's repository in 103, Traefik's binary and unit in
/// 102, nginx in 101, Docker on the VMs), none of them carrying key material.
#[test]
#[allow(clippy::unwrap_used)] // tests may panic
fn plan_provision_lists_the_steps_inside_guests() {
    let dir = homelab();
    let o = run(
        &["plan", "--config", &dir, "--provision", "--output", "json"],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let waves = v["waves"].as_array().unwrap();
    let last = waves.last().unwrap();
    assert_eq!(last["name"], "provisioning inside guests");
    let steps: Vec<String> = last["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{} {}", a["guest"], a["step"]))
        .collect();
    for (guest, needle) in [
        ("103", "step-ca"),
        ("102", "traefik"),
        ("101", "nginx"),
        ("1001", "docker.io"),
        ("1002", "docker.io"),
    ] {
        assert!(
            steps
                .iter()
                .any(|s| s.starts_with(guest) && s.contains(needle)),
            "{guest}/{needle} missing in {steps:#?}"
        );
    }
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!text.contains("PRIVATE KEY"), "no key material in the plan");
    // Without the flag the plan has no such wave.
    let o = run(&["plan", "--config", &dir, "--output", "json"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["waves"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["name"] != "provisioning inside guests")
    );
}
