//! Whole runs of the `phoenix` binary: exit codes, streams, output formats, colour, and the
//! JSON findings of both upstream fixtures (insta snapshots, absolute paths redacted).
//!
//! The fixture snapshots change whenever a check is added: review and re-accept them with
//! `cargo insta review` (or `INSTA_UPDATE=always cargo test -p phoenix-cli --test cli`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/upstream"
);

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name).join("etc")
}

/// `phoenix` with a clean environment: no colour forcing, no config from the environment.
fn phoenix() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phoenix"));
    c.env_remove("PHOENIX_CONFIG")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .env_remove("NO_COLOR");
    c
}

fn run(args: &[&str]) -> Output {
    phoenix()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run phoenix: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, contents) in files {
        std::fs::write(dir.join(name), contents).unwrap_or_else(|e| panic!("write {name}: {e}"));
    }
}

const HYPERVISOR: &str = r#"{
  "domain_name": "lab.example",
  "network": {
    "interfaces": {"name": "vmbr0", "address": "10.0.0.13/24", "gateway": "10.0.0.1"},
    "internal_bridge": {"name": "vmbr100", "subnet": "172.16.100.0/24", "gateway": "172.16.100.1"}
  }
}
"#;

const LXC_OK: &str = r#"{
  "lxc_configs": {
    "101": {
      "name": "web",
      "cores": 2,
      "network_config": {"name": "eth0", "bridge": "vmbr100", "ip": "172.16.100.10/24", "gw": "172.16.100.1"}
    }
  }
}
"#;

/// One unknown key: a warning only.
const LXC_WARNING: &str = r#"{
  "lxc_configs": {
    "101": {
      "name": "web",
      "colour": "blue",
      "network_config": {"name": "eth0", "bridge": "vmbr100", "ip": "172.16.100.10/24", "gw": "172.16.100.1"}
    }
  }
}
"#;

/// A type error and an address on a bridge the host does not have: two errors.
const LXC_ERRORS: &str = r#"{
  "lxc_configs": {
    "101": {
      "name": "web",
      "cores": "four",
      "network_config": {"name": "eth0", "bridge": "vmbr9", "ip": "172.16.100.10/24", "gw": "172.16.100.1"}
    }
  }
}
"#;

const VMS: &str = "{\"vms\": []}\n";

fn config(lxc: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    write_files(
        dir.path(),
        &[
            ("phoenix_hypervisor_config.json", HYPERVISOR),
            ("phoenix_lxc_configs.json", lxc),
            ("phoenix_vm_configs.json", VMS),
        ],
    );
    dir
}

fn validate(dir: &Path, extra: &[&str]) -> Output {
    phoenix()
        .arg("validate")
        .arg("--config")
        .arg(dir)
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("cannot run phoenix: {e}"))
}

/// The findings of `validate --output json`'s document (checked to be one, version 1).
fn json_findings(out: &Output) -> Vec<Value> {
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)));
    assert_eq!(doc["format_version"], 1, "{doc}");
    assert_eq!(doc["kind"], "validate", "{doc}");
    doc["findings"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_valid_config_exits_0_with_the_summary_on_stdout() {
    let dir = config(LXC_OK);
    let out = validate(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("lxc 101 web: net0 vmbr100 172.16.100.10/24"),
        "{stdout}"
    );
    assert_eq!(text(&out.stderr), "0 errors, 0 warnings\n");
}

#[test]
fn quiet_prints_no_summary() {
    let dir = config(LXC_OK);
    let out = validate(dir.path(), &["--quiet"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(text(&out.stderr), "0 errors, 0 warnings\n");
}

#[test]
fn warnings_exit_0_unless_denied() {
    let dir = config(LXC_WARNING);
    let out = validate(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("warning[PHX-W001]"));
    let out = validate(dir.path(), &["--deny-warnings"]);
    assert_eq!(out.status.code(), Some(1));
    let out = validate(dir.path(), &["--deny-warnings", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let codes: Vec<_> = json_findings(&out)
        .iter()
        .map(|f| f["code"].clone())
        .collect();
    assert_eq!(codes, vec![json!("PHX-W001")]);
}

/// Replace the temporary directory so snapshots are stable.
fn redact(s: &str, dir: &Path) -> String {
    s.replace(&dir.display().to_string(), "[CONFIG]")
}

#[test]
fn errors_exit_1_and_render_like_a_compiler() {
    let dir = config(LXC_ERRORS);
    let out = validate(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    // No summary when there are errors: stdout carries data only.
    assert_eq!(text(&out.stdout), "");
    let stderr = redact(&text(&out.stderr), dir.path());
    assert!(!stderr.contains('\u{1b}'), "ANSI codes in a pipe");
    insta::assert_snapshot!("errors_text", stderr);
}

#[test]
fn json_findings_carry_every_field() {
    let dir = config(LXC_ERRORS);
    let out = validate(dir.path(), &["--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "", "JSON mode writes nothing to stderr");
    let findings = json_findings(&out);
    assert!(findings.len() >= 2, "{findings:?}");
    let type_error = findings
        .iter()
        .find(|f| f["code"] == "PHX-E005")
        .unwrap_or_else(|| panic!("no PHX-E005 in {findings:?}"));
    let expected_file = dir.path().join("phoenix_lxc_configs.json");
    assert_eq!(
        type_error,
        &json!({
            "severity": "error",
            "code": "PHX-E005",
            "file": expected_file.display().to_string(),
            "line": 5,
            "column": 16,
            "pointer": "/lxc_configs/101/cores",
            "message": type_error["message"],
            "hint": type_error["hint"],
        })
    );
    for f in &findings {
        assert_fields(f);
    }
    let bridge = findings
        .iter()
        .find(|f| f["code"] == "PHX-E021")
        .unwrap_or_else(|| panic!("no PHX-E021 in {findings:?}"));
    assert_eq!(bridge["pointer"], "/lxc_configs/101/network_config/bridge");
    assert_eq!(bridge["line"], 6);
}

fn assert_fields(f: &Value) {
    let keys: Vec<_> = f
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        [
            "severity", "code", "file", "line", "column", "pointer", "message", "hint"
        ],
        "{f}"
    );
    assert!(
        matches!(f["severity"].as_str(), Some("error" | "warning")),
        "{f}"
    );
    let code = f["code"].as_str().unwrap_or_default();
    let letter = if f["severity"] == "error" { 'E' } else { 'W' };
    assert!(
        code.len() == 8 && code.starts_with("PHX-") && code[4..].starts_with(letter),
        "{f}"
    );
    assert!(f["line"].as_u64().is_some_and(|n| n >= 1), "{f}");
    assert!(f["column"].as_u64().is_some_and(|n| n >= 1), "{f}");
    for k in ["file", "message", "hint"] {
        assert!(
            f[k].as_str().is_some_and(|s| !s.is_empty()),
            "{k} empty: {f}"
        );
    }
    assert!(
        f["pointer"]
            .as_str()
            .is_some_and(|p| p.is_empty() || p.starts_with('/')),
        "{f}"
    );
}

#[test]
fn colour_follows_the_terminal_and_no_color() {
    let dir = config(LXC_ERRORS);
    let forced = phoenix()
        .args(["validate", "--config"])
        .arg(dir.path())
        .env("CLICOLOR_FORCE", "1")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        text(&forced.stderr).contains("\u{1b}["),
        "CLICOLOR_FORCE gives colour"
    );
    let off = phoenix()
        .args(["validate", "--config"])
        .arg(dir.path())
        .env("CLICOLOR_FORCE", "1")
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!text(&off.stderr).contains('\u{1b}'), "NO_COLOR wins");
    let plain = validate(dir.path(), &[]);
    assert_eq!(text(&off.stderr), text(&plain.stderr));
}

#[test]
fn usage_errors_exit_2() {
    let dir = config(LXC_OK);
    let file = dir.path().join("phoenix_vm_configs.json");
    let cases: Vec<Vec<String>> = vec![
        vec![],
        vec!["frobnicate".into()],
        vec!["validate".into(), "--bogus".into()],
        vec!["validate".into(), "--output".into(), "yaml".into()],
        vec!["validate".into(), "--config".into()],
        vec![
            "validate".into(),
            "--config".into(),
            "/nonexistent/phoenix-config".into(),
        ],
        vec![
            "validate".into(),
            "--config".into(),
            file.display().to_string(),
        ],
        vec!["schema".into(), "--file".into(), "nope".into()],
    ];
    for args in cases {
        let out = phoenix()
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), "", "{args:?}");
        assert!(!text(&out.stderr).is_empty(), "{args:?}");
    }
}

#[test]
fn a_missing_config_dir_says_what_and_hints() {
    let out = run(&["validate", "--config", "/nonexistent/phoenix-config"]);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!("missing_config_dir", text(&out.stderr));
}

#[test]
fn help_and_version_exit_0() {
    for args in [["--help"], ["--version"]] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!text(&out.stdout).is_empty());
    }
}

#[test]
fn version_names_the_commit_and_build_date() {
    let out = text(&run(&["--version"]).stdout);
    assert!(out.starts_with("phoenix 0.1.0 (commit "), "{out}");
    assert!(out.contains(", built "), "{out}");
}

#[test]
fn completions_and_man_page_come_from_the_definitions() {
    let bash = run(&["completions", "bash"]);
    assert_eq!(bash.status.code(), Some(0));
    let script = text(&bash.stdout);
    assert!(
        script.contains("sync") && script.contains("--target"),
        "{script}"
    );
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let out = run(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(text(&out.stdout).contains("apply"), "{shell}");
    }
    let man = text(&run(&["man"]).stdout);
    assert!(man.contains(".TH phoenix 1"), "{man}");
    assert!(
        man.contains(".SH SUBCOMMANDS") && man.contains("phoenix\\-sync(1)"),
        "{man}"
    );
    let sub = text(&run(&["man", "sync", "all"]).stdout);
    assert!(sub.contains(".TH phoenix-sync-all 1"), "{sub}");
    assert!(sub.contains("\\-\\-dry\\-run"), "{sub}");
    let nope = run(&["man", "nope"]);
    assert_eq!(nope.status.code(), Some(2));
    assert!(text(&nope.stderr).contains("no command `nope`"));
}

#[test]
fn bash_verbs_answer_with_the_phoenix_command() {
    let out = run(&["create", "101"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("did you mean: phoenix apply --target pve create 101\n"),
        "{err}"
    );
    assert!(!err.contains("similar"), "{err}");
    let out = run(&["health-check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("did you mean: phoenix verify --target pve"));
    // Other unknown words keep clap's answer.
    let out = run(&["crate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!text(&out.stderr).contains("did you mean"));
}

#[test]
fn apply_takes_its_flags_before_or_after_the_verb() {
    let homelab = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/homelab");
    // --target lab is refused for a verb, with its own message: proof it was read.
    let before = run(&["apply", "--target", "lab", "-c", homelab, "create", "101"]);
    let after = run(&["apply", "create", "101", "--target", "lab", "-c", homelab]);
    assert!(text(&before.stderr).contains("the lab twin is converged as a whole"));
    assert_eq!(
        (before.status.code(), text(&before.stderr)),
        (after.status.code(), text(&after.stderr))
    );
    // Constraints hold across the verb: conflicting flags on both sides are refused.
    let split = run(&[
        "apply",
        "--api-token",
        "a",
        "create",
        "101",
        "--username",
        "b",
        "--target",
        "pve",
    ]);
    assert_eq!(split.status.code(), Some(2));
    assert!(
        text(&split.stderr).contains("cannot be used with"),
        "{}",
        text(&split.stderr)
    );
}

#[test]
fn schema_is_valid_json_schema() {
    let out = run(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let schema: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("schema is not JSON: {e}"));
    assert!(schema.get("$schema").is_some(), "no $schema");
    assert!(
        jsonschema::meta::is_valid(&schema),
        "not a valid JSON Schema"
    );
    for file in ["hypervisor", "lxc", "vm", "stacks", "manifest"] {
        let out = run(&["schema", "--file", file]);
        assert_eq!(out.status.code(), Some(0), "{file}");
        let s: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("schema --file {file} is not JSON: {e}"));
        assert!(
            jsonschema::meta::is_valid(&s),
            "{file}: not a valid JSON Schema"
        );
    }
}

#[test]
fn codes_table_matches_docs() {
    let out = run(&["codes"]);
    assert_eq!(out.status.code(), Some(0));
    let table = text(&out.stdout);
    for c in phoenix_model::Code::ALL {
        assert!(table.contains(c.as_str()), "{} missing", c.as_str());
    }
    let docs_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/codes.md");
    let docs = std::fs::read_to_string(docs_path).unwrap_or_default();
    assert!(
        docs.contains(&table),
        "docs/codes.md is out of date; regenerate its table with `phoenix codes`:\n{table}"
    );
}

/// The JSON findings of a fixture, paths made relative to the fixtures directory.
fn fixture_findings(name: &str) -> Value {
    let dir = fixture(name);
    let out = validate(&dir, &["--output", "json"]);
    let findings = json_findings(&out);
    for f in &findings {
        assert_fields(f);
    }
    let prefix = format!("{}/", Path::new(FIXTURES).display());
    let text = serde_json::to_string(&findings)
        .unwrap_or_default()
        .replace(&prefix, "[FIXTURES]/");
    let findings: Value = serde_json::from_str(&text).unwrap_or_default();
    json!({"exit_code": out.status.code(), "findings": findings})
}

#[test]
fn fixture_rootesting_findings() {
    insta::assert_json_snapshot!(
        "rootesting_findings",
        fixture_findings("rootesting-2025-11-25")
    );
}

#[test]
fn fixture_main_findings() {
    insta::assert_json_snapshot!("main_findings", fixture_findings("main-2025-11-04"));
}

#[test]
fn fixture_text_output_has_no_duplicated_code_or_message() {
    let out = validate(&fixture("rootesting-2025-11-25"), &["--quiet"]);
    let all = text(&out.stderr);
    // The per-code summary at the end names each code once more, on purpose.
    let (stderr, summary) = all
        .split_once("summary by code:\n")
        .unwrap_or_else(|| panic!("no summary:\n{all}"));
    let findings = json_findings(&validate(
        &fixture("rootesting-2025-11-25"),
        &["--output", "json"],
    ));
    for f in &findings {
        let code = f["code"].as_str().unwrap_or_default();
        let message = f["message"].as_str().unwrap_or_default();
        let header = format!("[{code}]: {message}");
        assert!(stderr.contains(&header), "missing header {header}");
    }
    // Each code appears once per finding (in its header), never again on its own line.
    assert!(
        !stderr.lines().any(|l| l.trim().starts_with("PHX-")),
        "{stderr}"
    );
    assert!(!stderr.contains("help:"));
    let headers = stderr
        .lines()
        .filter(|l| l.starts_with("error[") || l.starts_with("warning["))
        .count();
    assert_eq!(headers, findings.len());
    let hints = stderr.lines().filter(|l| l.starts_with("  hint: ")).count();
    assert_eq!(hints, findings.len());
    // The summary's counts are the findings' counts, code by code.
    let mut total = 0;
    for line in summary
        .lines()
        .filter(|l| l.trim_start().starts_with("PHX-"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let n: usize = parts[2].parse().unwrap_or_else(|_| panic!("{line}"));
        let actual = findings.iter().filter(|f| f["code"] == parts[0]).count();
        assert_eq!(n, actual, "{line}");
        total += n;
    }
    assert_eq!(total, findings.len());
}

/// `phoenix plan` offline shows the Swarm's actions after the guests (an empty host has no
/// Swarm), each with its reason, in the plan's order (init first, stacks last).
#[test]
fn plan_shows_the_swarm_actions_with_reasons() {
    let homelab = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/homelab");
    let out = run(&["plan", "--config", homelab]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    for want in [
        "docker swarm",
        "swarm init on portainer-manager: no Swarm on portainer-manager",
        "advertise and data path 172.16.100.21 on eth1",
        "swarm join drphoenix: worker drphoenix not in the Swarm",
        "overlay traefik-public missing",
        "secret portainer_tls_cert missing",
        "stack deploy production_portainer_service",
    ] {
        assert!(t.contains(want), "{want} missing:\n{t}");
    }
    let json = run(&["plan", "--config", homelab, "--output", "json"]);
    let v: Value =
        serde_json::from_slice(&json.stdout).unwrap_or_else(|e| panic!("json plan: {e}"));
    let kinds: Vec<&str> = v["swarm"]
        .as_array()
        .unwrap_or_else(|| panic!("no swarm actions: {v:#}"))
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds.first(), Some(&"init"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"stack_deploy"), "{kinds:?}");
}

/// `--output json` writes one versioned document (docs/json/), and a command that fails
/// before writing it writes an `error` document with the same message and hint as stderr.
#[test]
fn json_documents_are_versioned_and_failures_are_json_too() {
    let homelab = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/homelab");
    let doc = |out: &Output| -> Value {
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", text(&out.stdout)))
    };
    let out = run(&["plan", "--config", homelab, "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let plan = doc(&out);
    assert_eq!(
        (&plan["format_version"], &plan["kind"]),
        (&json!(1), &json!("plan"))
    );
    assert!(plan["waves"].is_array());

    let out = run(&["plan", "--config", "/nonexistent/phoenix", "--output=json"]);
    assert_eq!(out.status.code(), Some(2));
    let e = doc(&out);
    assert_eq!(e["kind"], "error", "{e}");
    assert_eq!(e["format_version"], 1);
    assert_eq!(e["error"]["exit_code"], 2);
    let message = e["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("/nonexistent/phoenix"), "{message}");
    assert!(text(&out.stderr).contains(&format!("error: {message}")));

    // A node that refuses the connection (nothing listens on loopback's discard port).
    let out = phoenix()
        .args([
            "status", "--target", "pve", "-o", "json", "--config", homelab,
        ])
        .args(["--endpoint", "https://127.0.0.1:9", "--node", "pve1"])
        .arg("--insecure-skip-tls-verify")
        .env(
            "PROXMOX_VE_API_TOKEN",
            "phoenix@pve!ci=00000000-0000-0000-0000-000000000000",
        )
        .output()
        .unwrap_or_else(|e| panic!("cannot run phoenix: {e}"));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let e = doc(&out);
    assert_eq!(e["kind"], "error", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("/cluster/resources"),
        "{e}"
    );
    assert!(
        !text(&out.stdout).contains("00000000-0000"),
        "no secret in the document"
    );
}

/// `--color always` colours a pipe (the plan's markers, the findings' headers); `never` and
/// the default on a pipe do not.
#[test]
fn color_flag_decides_for_every_stream() {
    let homelab = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/homelab");
    let esc = |b: &[u8]| b.contains(&0x1b);
    let out = run(&["plan", "--config", homelab, "--color", "always"]);
    assert!(esc(&out.stdout), "{}", text(&out.stdout));
    let out = run(&["validate", "--config", homelab, "--color=always"]);
    assert!(esc(&out.stderr), "{}", text(&out.stderr));
    for extra in [&["--color", "never"][..], &[][..]] {
        let mut args = vec!["plan", "--config", homelab];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert!(!esc(&out.stdout) && !esc(&out.stderr), "{extra:?}");
    }
}

/// `phoenix doctor --target lab`: one row per need; with an empty `PATH` the lab's programs
/// fail with the packages that provide them, and the exit code says so.
#[test]
fn doctor_lists_the_labs_needs_with_their_fixes() {
    let homelab = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/homelab");
    let doc = |out: &Output| -> Value {
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)))
    };
    let out = run(&[
        "doctor", "--target", "lab", "-o", "json", "--config", homelab,
    ]);
    let d = doc(&out);
    assert_eq!(d["kind"], "doctor");
    let checks = d["checks"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = checks.iter().filter_map(|c| c["check"].as_str()).collect();
    for want in [
        "configuration",
        "root",
        "lab programs",
        "lab peer traefik",
        "lab peer step-ca",
        "policy-rc.d",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    let failed = checks.iter().any(|c| c["state"] == "fail");
    assert_eq!(out.status.code(), Some(i32::from(failed)), "{d:#}");

    let out = phoenix()
        .args(["doctor", "--target", "lab", "--config", homelab])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap_or_else(|e| panic!("cannot run phoenix: {e}"));
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("FAIL  lab programs"), "{shown}");
    assert!(
        shown.contains("apt-get install iproute2 nftables dnsmasq nginx docker.io openssl"),
        "{shown}"
    );
}
