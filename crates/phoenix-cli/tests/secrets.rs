//! No secret value in any output: `validate`, `plan` (text and JSON, with and without
//! `--provision`) and `render --out` (its streams and every file it writes), for the
//! operator's real snapshots and for a configuration with plaintext, `{"env"}` and `{"file"}`
//! secrets whose values are set in the environment and the secret file.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

mod common;
use common::copy_tree;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/upstream"
);
const HOMELAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/homelab");

/// Values of the environment variables the crafted configuration refers to.
const ENV: [(&str, &str); 3] = [
    ("PHX_TEST_API_KEY", "env-api-key-5150"),
    ("PHX_TEST_TOKEN", "env-stack-token-5151"),
    ("PORTAINER_ADMIN_PASSWORD", "env-admin-password-5152"),
];
const PLAIN: [&str; 3] = [
    "plain-admin-password-5153",
    "plain-ca-password-5154",
    "plain-db-password-5155",
];
const IN_FILE: &str = "file-secret-5156";

fn run(args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phoenix"));
    c.env_remove("PHOENIX_CONFIG")
        .env_remove("CLICOLOR_FORCE")
        .env("NO_COLOR", "1")
        .args(args);
    for (k, v) in ENV {
        c.env(k, v);
    }
    c.output().expect("phoenix runs")
}

fn edit(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// The example with secrets of every kind, used where they can end up in output: the
/// Portainer admin and API key, the CA password, and stack variables the compose file reads.
/// With `env_in_stack`, one stack variable is an `{"env"}` reference (the plan then compares
/// the stack by existence only); without, every variable is plaintext and the plan renders
/// the stack with the values to hash it.
fn crafted(root: &Path, env_in_stack: bool) -> PathBuf {
    let dir = root.join("homelab");
    copy_tree(Path::new(HOMELAB), &dir);
    let secret_file = root.join("ca-password");
    std::fs::write(&secret_file, format!("{IN_FILE}\n")).unwrap();
    edit(&dir.join("phoenix_hypervisor_config.json"), |h| {
        h["portainer_api"]["admin_password"] = json!(PLAIN[0]);
        h["portainer_api"]["api_key"] = json!({"env": ENV[0].0});
        h["step_ca"]["password"] = json!(PLAIN[1]);
        h["proxmox_api"] = json!({
            "endpoint": "https://10.0.0.13:8006",
            "username": "root@pam",
            "password": {"file": secret_file.to_string_lossy()}
        });
    });
    edit(&dir.join("phoenix_stacks_config.json"), |s| {
        let vars =
            &mut s["docker_stacks"]["portainer_service"]["environments"]["production"]["variables"];
        let vars = vars.as_array_mut().unwrap();
        vars.push(json!({"name": "DB_PASSWORD", "value": PLAIN[2]}));
        let token = if env_in_stack {
            json!({"env": ENV[1].0})
        } else {
            json!(PLAIN[2])
        };
        vars.push(json!({"name": "API_TOKEN", "value": token}));
    });
    let compose = dir.join("stacks/portainer_service/docker-compose.yml");
    let text = std::fs::read_to_string(&compose).unwrap();
    let with_vars = text.replace(
        "      TZ: ${TZ}\n",
        "      TZ: ${TZ}\n      DB_PASSWORD: ${DB_PASSWORD}\n      API_TOKEN: ${API_TOKEN}\n",
    );
    assert_ne!(text, with_vars, "the compose file reads the variables");
    std::fs::write(&compose, with_vars).unwrap();
    dir
}

/// Every plaintext secret of a configuration directory, found as phoenix finds them.
fn plaintext_secrets(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for r in phoenix_model::secrets::text_pairs(&text) {
            out.push(text[r].trim_matches('"').to_string());
        }
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            for p in phoenix_model::secrets::pointers(&v) {
                if let Some(s) = v.pointer(&p).and_then(Value::as_str) {
                    out.push(s.to_string());
                }
            }
        }
    }
    // `NOT_SET` and the like are placeholders, not values worth hiding.
    out.retain(|s| s.len() >= 8);
    out.sort();
    out.dedup();
    out
}

/// Every file under `dir`, with its text.
fn files_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
                out.push((p, text));
            }
        }
    }
    out
}

/// Run every output-producing command on `config`; no output may hold any of `secrets`.
fn assert_no_secret_in_outputs(config: &Path, secrets: &[String], scratch: &Path) {
    let c = config.to_string_lossy().into_owned();
    for args in [
        vec!["validate"],
        vec!["validate", "-o", "json"],
        vec!["plan"],
        vec!["plan", "-o", "json"],
        vec!["plan", "--provision"],
        vec!["plan", "--provision", "-o", "json"],
    ] {
        let mut a = args.clone();
        a.extend(["--config", &c]);
        let out = run(&a);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(all.len() > 100, "{args:?}: no output:\n{all}");
        for s in secrets {
            assert!(!all.contains(s.as_str()), "{args:?} prints a secret ({s})");
        }
    }
    let out_dir = scratch.join("render");
    let out = run(&[
        "render",
        "--config",
        &c,
        "--out",
        &out_dir.to_string_lossy(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let streams = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let files = files_under(&out_dir);
    assert!(files.len() > 5, "render wrote {} files", files.len());
    for s in secrets {
        assert!(
            !streams.contains(s.as_str()),
            "render prints a secret ({s})"
        );
        for (path, text) in &files {
            assert!(
                !text.contains(s.as_str()),
                "render writes a secret ({s}) into {}",
                path.display()
            );
        }
    }
}

#[test]
fn no_secret_of_the_real_snapshots_in_any_output() {
    for name in ["rootesting-2025-11-25", "main-2025-11-04"] {
        let dir = Path::new(FIXTURES).join(name).join("etc");
        let secrets = plaintext_secrets(&dir);
        assert!(
            secrets.iter().any(|s| s == "REDACTED-plaintext-password"),
            "{name}: the admin password is found: {secrets:?}"
        );
        let tmp = tempfile::tempdir().unwrap();
        assert_no_secret_in_outputs(&dir, &secrets, tmp.path());
    }
}

#[test]
fn no_plaintext_env_or_file_secret_in_any_output() {
    for env_in_stack in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let config = crafted(tmp.path(), env_in_stack);
        let mut secrets = plaintext_secrets(&config);
        for p in PLAIN {
            assert!(secrets.iter().any(|s| s == p), "{p} is found: {secrets:?}");
        }
        secrets.extend(ENV.iter().map(|(_, v)| v.to_string()));
        secrets.push(IN_FILE.to_string());
        let c = config.to_string_lossy().into_owned();
        let v = run(&["validate", "--config", &c]);
        assert_eq!(v.status.code(), Some(0));
        // Without references the plan renders the stack, values and all, to compare it.
        let plan = String::from_utf8_lossy(&run(&["plan", "--config", &c]).stdout).into_owned();
        assert_eq!(
            plan.contains("production_portainer_service: not compared by content"),
            env_in_stack,
            "{plan}"
        );
        assert_no_secret_in_outputs(&config, &secrets, tmp.path());
    }
}
