//! Findings people can act on, through the binary: no secret in any output, the per-code
//! summary, `--allow`/`--deny` and the list file, `phoenix explain`, and `plan` refusing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/upstream"
);

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name).join("etc")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .env_remove("PHOENIX_CONFIG")
        .env_remove("CLICOLOR_FORCE")
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run phoenix: {e}"))
}

fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every plaintext secret of the fixtures, read from the files themselves.
fn secrets(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for r in phoenix_model::secrets::text_pairs(&text) {
                out.push(text[r].trim_matches('"').to_string());
            }
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                for p in phoenix_model::secrets::pointers(&v) {
                    if let Some(s) = v.pointer(&p).and_then(|s| s.as_str()) {
                        out.push(s.to_string());
                    }
                }
            }
        }
    }
    out.retain(|s| s.len() >= 4);
    out
}

#[test]
fn no_secret_in_any_output_of_validate_or_plan() {
    for name in ["rootesting-2025-11-25", "main-2025-11-04"] {
        let dir = fixture(name);
        let secrets = secrets(&dir);
        assert!(
            secrets.iter().any(|s| s == "REDACTED-plaintext-password"),
            "{name}: the admin password is found"
        );
        let config = dir.to_string_lossy().into_owned();
        for args in [
            vec!["validate"],
            vec!["validate", "-o", "json"],
            vec!["plan"],
            vec!["plan", "-o", "json"],
            vec!["plan", "--provision", "-o", "json"],
        ] {
            let mut a = args.clone();
            a.extend(["--config", &config]);
            let out = all_output(&run(&a));
            assert!(out.len() > 100, "{name} {args:?}: no output");
            for s in &secrets {
                assert!(!out.contains(s.as_str()), "{name} {args:?} prints a secret");
            }
        }
    }
}

#[test]
fn a_broken_file_masks_its_secrets_too() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let hyp = "{\n  \"domain_name\": \"x.example\",\n  \"portainer_api\": {\n    \"admin_password\": \"hunter2-secret\",,\n    \"admin_password\": \"second-copy\"\n  }\n}\n";
    std::fs::write(tmp.path().join("phoenix_hypervisor_config.json"), hyp)
        .unwrap_or_else(|e| panic!("{e}"));
    let config = tmp.path().to_string_lossy().into_owned();
    for args in [vec!["validate"], vec!["validate", "-o", "json"]] {
        let mut a = args.clone();
        a.extend(["--config", &config]);
        let out = all_output(&run(&a));
        assert!(out.contains("PHX-E002"), "{out}");
        assert!(!out.contains("hunter2"), "{out}");
        assert!(!out.contains("second-copy"), "{out}");
    }
}
