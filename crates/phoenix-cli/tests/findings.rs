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

fn code_of(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// The findings of `validate --output json`'s document.
fn json(out: &Output) -> Vec<serde_json::Value> {
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    doc["findings"].as_array().cloned().unwrap_or_default()
}

#[test]
fn allow_and_deny_make_validate_usable_in_ci() {
    let dir = fixture("rootesting-2025-11-25");
    let config = dir.to_string_lossy().into_owned();
    let all = json(&run(&["validate", "-o", "json", "--config", &config]));
    let w002 = all.iter().filter(|f| f["code"] == "PHX-W002").count();
    assert!(w002 > 10);

    // --deny-warnings fails; allowing a code hides exactly its findings.
    let out = run(&[
        "validate",
        "--deny-warnings",
        "--allow",
        "PHX-W002",
        "-o",
        "json",
        "--config",
        &config,
    ]);
    assert_eq!(code_of(&out), 1, "other warnings remain");
    let shown = json(&out);
    assert_eq!(shown.len(), all.len() - w002);
    assert!(shown.iter().all(|f| f["code"] != "PHX-W002"));

    // Allowing every warning code present passes under --deny-warnings.
    let mut codes: Vec<String> = all
        .iter()
        .map(|f| f["code"].as_str().unwrap_or("").to_string())
        .collect();
    codes.sort();
    codes.dedup();
    let list = codes.join(",");
    let out = run(&[
        "validate",
        "-q",
        "--deny-warnings",
        "--allow",
        &list,
        "--config",
        &config,
    ]);
    assert_eq!(code_of(&out), 0, "{}", all_output(&out));
    assert!(all_output(&out).contains(&format!(
        "0 errors, 0 warnings ({} allowed, not shown)",
        all.len()
    )));

    // --deny fails on one code only.
    let out = run(&["validate", "-q", "--deny", "W011", "--config", &config]);
    assert_eq!(code_of(&out), 1);
    let out = run(&["validate", "-q", "--deny", "E016", "--config", &config]);
    assert_eq!(code_of(&out), 0, "a code with no finding fails nothing");

    // Unknown codes and allowing an error are usage errors.
    for bad in [["--allow", "W999"], ["--allow", "PHX-E002"]] {
        let out = run(&["validate", bad[0], bad[1], "--config", &config]);
        assert_eq!(code_of(&out), 2, "{bad:?}");
    }
}

/// `validate --output json --with-counts`: the same list of findings, wrapped with the counts
/// the text output ends with; the counts are those of the list. Without the flag the list
/// stays bare (tests/cli.rs holds its shape).
#[test]
fn json_validate_counts_per_code_when_asked() {
    let config = fixture("rootesting-2025-11-25")
        .to_string_lossy()
        .into_owned();
    let bare = json(&run(&["validate", "-o", "json", "--config", &config]));
    for allow in [None, Some("PHX-W002")] {
        let mut args = vec![
            "validate",
            "-o",
            "json",
            "--with-counts",
            "--config",
            &config,
        ];
        if let Some(code) = allow {
            args.extend(["--allow", code]);
        }
        let out = run(&args);
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "nothing on stderr"
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        let listed = v["findings"].as_array().cloned().unwrap_or_default();
        let hidden = bare
            .iter()
            .filter(|f| Some(f["code"].as_str().unwrap_or("")) == allow);
        assert_eq!(listed.len(), bare.len() - hidden.clone().count());
        let mut expected = serde_json::Map::new();
        for f in &listed {
            let code = f["code"].as_str().unwrap_or("").to_string();
            let n = expected.get(&code).and_then(serde_json::Value::as_u64);
            expected.insert(code, (n.unwrap_or(0) + 1).into());
        }
        assert!(expected.len() > 5, "{expected:?}");
        let summary = &v["summary"];
        assert_eq!(summary["by_code"], serde_json::Value::Object(expected));
        let errors = listed.iter().filter(|f| f["severity"] == "error").count();
        assert_eq!(summary["errors"], errors);
        assert_eq!(summary["warnings"], listed.len() - errors);
        assert_eq!(summary["allowed"], hidden.count());
    }
}

#[test]
fn the_list_file_in_the_config_directory() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let src = fixture("rootesting-2025-11-25");
    for entry in std::fs::read_dir(&src).unwrap_or_else(|e| panic!("{e}")) {
        let p = entry.unwrap_or_else(|e| panic!("{e}")).path();
        std::fs::copy(&p, tmp.path().join(p.file_name().unwrap_or_default()))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let config = tmp.path().to_string_lossy().into_owned();
    let all = json(&run(&["validate", "-o", "json", "--config", &config])).len();
    std::fs::write(
        tmp.path().join("phoenix-lint.json"),
        r#"{"allow": ["PHX-W002", "W003"], "deny": ["PHX-W010"]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = run(&["validate", "-o", "json", "--config", &config]);
    assert_eq!(code_of(&out), 1, "W010 is denied");
    let shown = json(&out);
    assert!(shown.len() < all);
    assert!(
        shown
            .iter()
            .all(|f| f["code"] != "PHX-W002" && f["code"] != "PHX-W003")
    );
    // A flag wins over the file.
    let out = run(&["validate", "-q", "--allow", "W010", "--config", &config]);
    assert_eq!(code_of(&out), 0, "{}", all_output(&out));

    std::fs::write(
        tmp.path().join("phoenix-lint.json"),
        "{\"allow\": [\"PHX-W002\",]}",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = run(&["validate", "--config", &config]);
    assert_eq!(code_of(&out), 2);
    assert!(
        all_output(&out).contains("phoenix-lint.json:1:"),
        "{}",
        all_output(&out)
    );
}

#[test]
fn explain_gives_meaning_example_and_fix() {
    let out = run(&["explain", "phx-w002"]);
    assert_eq!(code_of(&out), 0);
    let text = all_output(&out);
    for part in ["PHX-W002 (warning)", "example:", "fix:"] {
        assert!(text.contains(part), "{text}");
    }
    assert_eq!(code_of(&run(&["explain", "PHX-X1"])), 2);
}

/// An LXC file that does not parse: one error, before and instead of its knock-on findings
/// (the certificates, roles and dependencies naming guests it defines).
fn broken_config() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../phoenix-model/tests/fixtures/base");
    for entry in std::fs::read_dir(&base).unwrap_or_else(|e| panic!("{e}")) {
        let p = entry.unwrap_or_else(|e| panic!("{e}")).path();
        std::fs::copy(&p, tmp.path().join(p.file_name().unwrap_or_default()))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(
        tmp.path().join("phoenix_lxc_configs.json"),
        "{\"lxc_configs\": {\"101\": {\"name\": \"nginx\",}}}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    tmp
}

#[test]
fn a_parse_error_comes_alone() {
    let tmp = broken_config();
    let config = tmp.path().to_string_lossy().into_owned();
    let out = run(&["validate", "-o", "json", "--config", &config]);
    assert_eq!(code_of(&out), 1);
    let f = json(&out);
    assert_eq!(f[0]["code"], "PHX-E002", "{f:#?}");
    assert!(
        f.iter()
            .all(|x| x["code"] != "PHX-E051" && x["code"] != "PHX-E014"),
        "knock-on findings: {f:#?}"
    );
    let text = all_output(&run(&["validate", "--config", &config]));
    assert!(text.contains("checks across files were not run"), "{text}");
}

#[test]
fn plan_refusing_prints_the_errors_alone() {
    let tmp = broken_config();
    let config = tmp.path().to_string_lossy().into_owned();
    let out = run(&["plan", "--config", &config]);
    assert_eq!(code_of(&out), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error[PHX-E002]"), "{stderr}");
    assert!(!stderr.contains("warning["), "{stderr}");
    assert!(out.stdout.is_empty());

    let out = run(&["plan", "-o", "json", "--config", &config]);
    assert_eq!(code_of(&out), 1);
    let f = json(&out);
    assert!(
        !f.is_empty() && f.iter().all(|x| x["severity"] == "error"),
        "{f:#?}"
    );
}

#[test]
fn plan_ends_with_what_it_will_ignore_per_guest() {
    let dir = fixture("rootesting-2025-11-25");
    let config = dir.to_string_lossy().into_owned();
    let out = run(&["plan", "--config", &config]);
    assert_eq!(code_of(&out), 0, "{}", all_output(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (_, tail) = stdout
        .split_once("will ignore")
        .unwrap_or_else(|| panic!("no ignore summary:\n{stdout}"));
    // Count the guests setting GPU passthrough straight from the file.
    let lxc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("phoenix_lxc_configs.json")).unwrap_or_default(),
    )
    .unwrap_or_default();
    let gpu = lxc["lxc_configs"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, g)| {
            g["gpu_assignment"]
                .as_str()
                .is_some_and(|s| !s.is_empty() && s != "none")
        })
        .count();
    assert!(gpu > 1);
    assert!(
        tail.contains(&format!("GPU passthrough: {gpu} guests")),
        "{tail}"
    );
    assert!(tail.contains("bind mounts:"), "{tail}");
    assert!(tail.contains("host setup:"), "{tail}");
}
