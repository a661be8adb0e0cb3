//! Hostile input: shell metacharacters in every kind of field, huge and deeply nested files,
//! malformed encodings and shapes. `phoenix validate` must locate the problem, exit 1, and
//! never execute anything (each payload would create a marker file if a shell ever saw it).
//! `files`: FIFOs, devices, links and oversized values in place of input files.

mod files;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

const LXC: &str = "phoenix_lxc_configs.json";
const VM: &str = "phoenix_vm_configs.json";
const HYP: &str = "phoenix_hypervisor_config.json";
const MANIFEST: &str = "certificate-manifest.json";

fn phoenix() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phoenix"));
    c.env_remove("PHOENIX_CONFIG")
        .env_remove("CLICOLOR_FORCE")
        .env("NO_COLOR", "1");
    c
}

/// A valid configuration with one container, one VM, rules, a mount and a certificate.
fn base() -> Vec<(&'static str, Value)> {
    vec![
        (
            HYP,
            json!({
                "domain_name": "lab.example",
                "network": {
                    "interfaces": {"name": "vmbr0", "address": "10.0.0.13/24", "gateway": "10.0.0.1"},
                    "internal_bridge": {"name": "vmbr100", "subnet": "172.16.100.0/24", "gateway": "172.16.100.1"}
                },
                "firewall": {
                    "enabled": true,
                    "global_firewall_rules": [
                        {"type": "in", "action": "ACCEPT", "proto": "tcp", "port": "443", "comment": "https"}
                    ]
                }
            }),
        ),
        (
            LXC,
            json!({
                "lxc_configs": {
                    "101": {
                        "name": "web",
                        "cores": 2,
                        "memory_mb": 1024,
                        "lxc_options": ["lxc.apparmor.profile: unconfined"],
                        "network_config": {"name": "eth0", "bridge": "vmbr100", "ip": "172.16.100.10/24", "gw": "172.16.100.1"},
                        "mount_points": [{"host_path": "/srv/web", "container_path": "/var/www"}],
                        "features": ["base_setup"],
                        "firewall": {"enabled": true, "rules": [
                            {"type": "in", "action": "ACCEPT", "source": "172.16.100.0/24", "proto": "tcp", "port": "80", "comment": "http"}
                        ]}
                    }
                }
            }),
        ),
        (
            VM,
            json!({"vms": [{
                "vmid": 1001, "name": "docker1", "cores": 2, "memory_mb": 2048,
                "network_config": {"bridge": "vmbr100", "ip": "172.16.100.20/24", "gw": "172.16.100.1"}
            }]}),
        ),
        (
            MANIFEST,
            json!([{
                "common_name": "web.lab.example",
                "sans": ["web.lab.example", "172.16.100.10"],
                "guest_id": 101,
                "guest_type": "lxc",
                "cert_path": "/srv/web/tls.crt",
                "key_path": "/srv/web/tls.key",
                "owner": "root:www-data"
            }]),
        ),
    ]
}

fn write_config(dir: &Path, files: &[(&str, Value)]) {
    for (name, v) in files {
        let text = serde_json::to_string_pretty(v).unwrap_or_default();
        std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"));
    }
}

/// The findings of `validate --output json`'s document.
fn findings(out: &Output) -> Vec<Value> {
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    doc["findings"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no findings in {doc}"))
}

fn validate_json(dir: &Path) -> Output {
    phoenix()
        .args(["validate", "--output", "json", "--config"])
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run phoenix: {e}"))
}

fn marker() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    PathBuf::from(format!("/tmp/phx-pwned-{}-{nanos:x}", std::process::id()))
}

/// Every way a shell could be talked into running `touch MARKER`.
fn payloads(m: &Path) -> Vec<String> {
    let m = m.display();
    vec![
        format!("x$(touch {m})"),
        format!("x`touch {m}`"),
        format!("x; touch {m}"),
        format!("x\ntouch {m}\n"),
        format!("x && touch {m} | cat > {m}"),
    ]
}

fn set(files: &mut [(&str, Value)], file: &str, pointer: &str, v: Value) {
    let doc = files
        .iter_mut()
        .find(|(n, _)| *n == file)
        .map(|(_, d)| d)
        .unwrap_or_else(|| panic!("no file {file}"));
    let slot = doc
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in {file}"));
    *slot = v;
}

/// Fields that must be rejected with an error located exactly at the field.
const REJECTED: &[(&str, &str)] = &[
    (LXC, "/lxc_configs/101/name"),
    (VM, "/vms/0/name"),
    (LXC, "/lxc_configs/101/network_config/bridge"),
    (LXC, "/lxc_configs/101/network_config/name"),
    (LXC, "/lxc_configs/101/network_config/ip"),
    (VM, "/vms/0/network_config/bridge"),
    (LXC, "/lxc_configs/101/firewall/rules/0/source"),
    (LXC, "/lxc_configs/101/firewall/rules/0/proto"),
    (LXC, "/lxc_configs/101/firewall/rules/0/port"),
    (HYP, "/firewall/global_firewall_rules/0/action"),
    (HYP, "/firewall/global_firewall_rules/0/port"),
    (LXC, "/lxc_configs/101/lxc_options/0"),
    (MANIFEST, "/0/sans/0"),
    (MANIFEST, "/0/owner"),
    (HYP, "/network/interfaces/name"),
];

#[test]
fn shell_metacharacters_are_rejected_at_their_location_and_never_run() {
    let m = marker();
    let mut missed = Vec::new();
    for (file, pointer) in REJECTED {
        for payload in payloads(&m) {
            let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
            let mut files = base();
            set(&mut files, file, pointer, Value::String(payload.clone()));
            write_config(tmp.path(), &files);
            let out = validate_json(tmp.path());
            assert!(!m.exists(), "{file}{pointer} = {payload:?} was executed");
            let fs = findings(&out);
            let located = fs.iter().any(|f| {
                f["severity"] == "error"
                    && f["pointer"] == *pointer
                    && f["file"].as_str().is_some_and(|p| p.ends_with(file))
                    && f["line"].as_u64().is_some_and(|l| l > 1)
            });
            if !located || out.status.code() != Some(1) {
                missed.push(format!(
                    "{file}{pointer} = {payload:?}: exit {:?}, findings {fs:?}",
                    out.status.code()
                ));
            }
        }
    }
    assert!(missed.is_empty(), "not rejected:\n{}", missed.join("\n"));
}

/// Free-text fields (comments, names of certificates) may carry metacharacters as inert data: whatever
/// validate says about them, nothing is executed and the run ends normally.
#[test]
fn free_text_with_metacharacters_is_inert() {
    let m = marker();
    let fields: &[(&str, &str)] = &[
        (LXC, "/lxc_configs/101/firewall/rules/0/comment"),
        (HYP, "/firewall/global_firewall_rules/0/comment"),
        (MANIFEST, "/0/common_name"),
        (HYP, "/domain_name"),
    ];
    for (file, pointer) in fields {
        for payload in payloads(&m) {
            let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
            let mut files = base();
            set(&mut files, file, pointer, Value::String(payload.clone()));
            write_config(tmp.path(), &files);
            let out = validate_json(tmp.path());
            assert!(!m.exists(), "{file}{pointer} = {payload:?} was executed");
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "{file}{pointer} = {payload:?}: exit {:?}",
                out.status.code()
            );
            let fs = findings(&out);
            // A line break can never pass: it would split a rendered config line.
            if payload.contains('\n') {
                assert!(
                    fs.iter().any(|f| f["severity"] == "error"
                        && f["pointer"].as_str().is_some_and(|p| p == *pointer)),
                    "{file}{pointer} = {payload:?}: a line break was accepted: {fs:?}"
                );
            }
        }
    }
}

#[test]
fn the_base_config_is_valid() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    write_config(tmp.path(), &base());
    let out = validate_json(tmp.path());
    let fs = findings(&out);
    assert!(
        fs.iter().all(|f| f["severity"] != "error"),
        "base config has errors: {fs:?}"
    );
    assert_eq!(out.status.code(), Some(0));
}

fn one_bad_file(name: &str, contents: &[u8]) -> (Output, Vec<Value>) {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    write_config(tmp.path(), &base());
    std::fs::write(tmp.path().join(name), contents).unwrap_or_else(|e| panic!("write: {e}"));
    let out = validate_json(tmp.path());
    let fs = findings(&out);
    (out, fs)
}

fn has(fs: &[Value], code: &str, file: &str) -> bool {
    fs.iter().any(|f| {
        f["code"] == code
            && f["severity"] == "error"
            && f["file"].as_str().is_some_and(|p| p.ends_with(file))
    })
}

#[test]
fn a_50_mb_file_fails_with_e003() {
    let mut big = Vec::with_capacity(50 * 1024 * 1024 + 32);
    big.extend_from_slice(b"{\"lxc_configs\": {}, \"pad\": \"");
    big.resize(50 * 1024 * 1024, b'a');
    big.extend_from_slice(b"\"}");
    let (out, fs) = one_bad_file(LXC, &big);
    assert_eq!(out.status.code(), Some(1));
    assert!(has(&fs, "PHX-E003", LXC), "{fs:?}");
}

#[test]
fn a_100000_deep_file_fails_with_e003() {
    let (out, fs) = one_bad_file(VM, "[".repeat(100_000).as_bytes());
    assert_eq!(out.status.code(), Some(1));
    assert!(has(&fs, "PHX-E003", VM), "{fs:?}");
    let f = fs.iter().find(|f| f["code"] == "PHX-E003");
    assert_eq!(f.map(|f| f["line"].clone()), Some(json!(1)));
}

#[test]
fn deep_but_balanced_objects_fail_with_e003() {
    let nested = format!(
        "{{\"vms\": [], \"x\": {}1{}}}",
        "{\"a\": ".repeat(5_000),
        "}".repeat(5_000)
    );
    let (out, fs) = one_bad_file(VM, nested.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    assert!(has(&fs, "PHX-E003", VM), "{fs:?}");
}

#[test]
fn invalid_utf8_is_located_at_the_file() {
    let (out, fs) = one_bad_file(
        LXC,
        b"{\"lxc_configs\": {\"101\": {\"name\": \"w\xff\xfe\"}}}",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        fs.iter().any(|f| f["severity"] == "error"
            && f["file"].as_str().is_some_and(|p| p.ends_with(LXC))
            && f["message"].as_str().is_some_and(|m| m.contains("UTF-8"))),
        "{fs:?}"
    );
}

/// jq 1.6 (the bash system's reader) skips one byte-order mark at the start and rejects a
/// second one, or one at the end (checked with `printf '\xef\xbb\xbf{}' | jq .`): phoenix
/// reads what jq read, with a warning, and rejects the rest.
#[test]
fn a_leading_byte_order_mark_is_read_with_a_warning_as_jq_did() {
    let mut text = b"\xef\xbb\xbf".to_vec();
    text.extend_from_slice(
        serde_json::to_string_pretty(&json!({"lxc_configs": {"101": {"name": 7}}}))
            .unwrap_or_default()
            .as_bytes(),
    );
    let (out, fs) = one_bad_file(LXC, &text);
    let bom = fs
        .iter()
        .find(|f| f["code"] == "PHX-W043")
        .unwrap_or_else(|| panic!("no W043: {fs:?}"));
    assert_eq!(
        (bom["line"].clone(), bom["column"].clone()),
        (json!(1), json!(1))
    );
    assert!(bom["file"].as_str().is_some_and(|p| p.ends_with(LXC)));
    // The file was read: its content is checked, and located as an editor shows it.
    let name = fs
        .iter()
        .find(|f| f["code"] == "PHX-E005")
        .unwrap_or_else(|| panic!("the file was not read: {fs:?}"));
    assert_eq!(name["pointer"], "/lxc_configs/101/name");
    assert_eq!(
        (name["line"].clone(), name["column"].clone()),
        (json!(4), json!(15))
    );
    assert_eq!(out.status.code(), Some(1));

    for bad in [&b"\xef\xbb\xbf\xef\xbb\xbf{}"[..], &b"{}\xef\xbb\xbf"[..]] {
        let (out, fs) = one_bad_file(VM, bad);
        assert_eq!(out.status.code(), Some(1));
        assert!(has(&fs, "PHX-E002", VM), "{fs:?}");
    }
}

#[test]
fn an_empty_file_is_an_error() {
    let (out, fs) = one_bad_file(HYP, b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(has(&fs, "PHX-E002", HYP), "{fs:?}");
}

#[test]
fn a_json_array_where_an_object_is_expected() {
    for file in [HYP, LXC, VM] {
        let (out, fs) = one_bad_file(file, b"[1, 2, 3]");
        assert_eq!(out.status.code(), Some(1), "{file}");
        assert!(has(&fs, "PHX-E005", file), "{file}: {fs:?}");
    }
    // ...and an object where the manifest's array is expected.
    let (out, fs) = one_bad_file(MANIFEST, b"{\"common_name\": \"x\"}");
    assert_eq!(out.status.code(), Some(1));
    assert!(has(&fs, "PHX-E005", MANIFEST), "{fs:?}");
}

#[test]
fn duplicate_keys_are_e004_at_the_second_key() {
    let text = "{\n  \"lxc_configs\": {\n    \"101\": {\"name\": \"web\", \"cores\": 2, \"cores\": 4}\n  }\n}\n";
    let (out, fs) = one_bad_file(LXC, text.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    let f = fs
        .iter()
        .find(|f| f["code"] == "PHX-E004")
        .unwrap_or_else(|| panic!("no PHX-E004: {fs:?}"));
    assert_eq!(f["line"], 3);
    // The second `"cores"` (columns are 1-based characters).
    let col = text
        .lines()
        .nth(2)
        .and_then(|l| l.rfind("\"cores\""))
        .unwrap_or(0)
        + 1;
    assert_eq!(f["column"], col);
    assert_eq!(f["pointer"], "/lxc_configs/101/cores");
}

#[test]
fn a_wrong_type_is_e005_at_the_exact_value() {
    let text = "{\n  \"lxc_configs\": {\n    \"101\": {\n      \"name\": \"web\",\n      \"cores\": \"four\"\n    }\n  }\n}\n";
    let (out, fs) = one_bad_file(LXC, text.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    let f = fs
        .iter()
        .find(|f| f["code"] == "PHX-E005")
        .unwrap_or_else(|| panic!("no PHX-E005: {fs:?}"));
    assert_eq!(f["pointer"], "/lxc_configs/101/cores");
    assert_eq!(
        (f["line"].clone(), f["column"].clone()),
        (json!(5), json!(16))
    );
    assert!(!f["hint"].as_str().unwrap_or_default().is_empty());
}

mod loader_never_panics {
    use super::*;
    use proptest::prelude::*;

    fn check(name: &str, contents: &[u8]) {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        write_config(tmp.path(), &base());
        std::fs::write(tmp.path().join(name), contents).unwrap_or_else(|e| panic!("write: {e}"));
        let v = phoenix_model::validate_dir(tmp.path());
        let findings = v.findings();
        for f in &findings {
            assert!(f.line >= 1 && f.column >= 1);
            assert!(!f.code.is_empty() && !f.message.is_empty());
        }
    }

    const FILES: [&str; 4] = [HYP, LXC, VM, MANIFEST];

    /// JSON-ish text: the characters of JSON syntax, digits, letters and a few Unicode ones.
    fn jsonish() -> impl Strategy<Value = String> {
        proptest::string::string_regex(r#"[\[\]{}",:0-9a-z\\ \n\t.eE+\-é€😀]{0,200}"#)
            .unwrap_or_else(|e| panic!("regex: {e}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes(file in 0usize..4, bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            check(FILES[file], &bytes);
        }

        #[test]
        fn arbitrary_strings(file in 0usize..4, s in any::<String>()) {
            check(FILES[file], s.as_bytes());
        }

        #[test]
        fn json_like_text(file in 0usize..4, s in jsonish()) {
            check(FILES[file], s.as_bytes());
        }

        /// Valid JSON of random shape in place of a real file.
        #[test]
        fn arbitrary_json_values(file in 0usize..4, v in json_value()) {
            check(FILES[file], v.to_string().as_bytes());
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z0-9./$;`]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("lxc_configs".to_string()),
                        Just("vms".to_string()),
                        Just("101".to_string()),
                        Just("network_config".to_string()),
                        Just("name".to_string()),
                        "[a-z_]{1,8}".prop_map(String::from),
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
