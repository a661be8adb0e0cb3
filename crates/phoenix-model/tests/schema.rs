//! `phoenix schema` against real files: both upstream fixtures, the main snapshot's per-stack
//! `phoenix.json` files and `examples/homelab` validate against the per-file schemas and the
//! bundle; broken documents are rejected; every property is documented; the schemas are valid
//! JSON Schema 2020-12.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::path::{Path, PathBuf};

use jsonschema::Validator;
use phoenix_model::schema::{self, FileKind};
use serde_json::{Value, json};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> PathBuf {
    repo_root().join("../shared/fixtures/upstream")
}

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn validator(schema: &Value) -> Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("schema does not compile: {e}"))
}

fn schema_of(kind: FileKind) -> Value {
    serde_json::to_value(schema::for_file(kind)).expect("schema serializes")
}

fn bundle() -> Value {
    serde_json::to_value(schema::bundle()).expect("bundle serializes")
}

/// Every error of `instance`, as `pointer: message` lines.
fn errors(v: &Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn assert_valid(kind: FileKind, path: &Path) {
    let doc = read(path);
    for (what, s) in [("per-file schema", schema_of(kind)), ("bundle", bundle())] {
        let errs = errors(&validator(&s), &doc);
        assert!(
            errs.is_empty(),
            "{} does not validate against the {what}:\n{}",
            path.display(),
            errs.join("\n")
        );
    }
}

const FILES: [(FileKind, &str); 5] = [
    (FileKind::Hypervisor, "phoenix_hypervisor_config.json"),
    (FileKind::Lxc, "phoenix_lxc_configs.json"),
    (FileKind::Vm, "phoenix_vm_configs.json"),
    (FileKind::Stacks, "phoenix_stacks_config.json"),
    (FileKind::Manifest, "certificate-manifest.json"),
];

#[test]
fn fixtures_validate() {
    for snapshot in ["rootesting-2025-11-25", "main-2025-11-04"] {
        let etc = fixtures().join(snapshot).join("etc");
        for (kind, name) in FILES {
            assert_valid(kind, &etc.join(name));
        }
    }
}

#[test]
fn stack_definitions_validate() {
    let stacks = fixtures().join("main-2025-11-04/stacks");
    let mut seen = 0;
    for entry in std::fs::read_dir(&stacks).expect("stacks dir") {
        let def = entry.expect("dir entry").path().join("phoenix.json");
        if def.is_file() {
            assert_valid(FileKind::StackDefinition, &def);
            seen += 1;
        }
    }
    assert_eq!(seen, 3, "the main snapshot has three stack definitions");
}

#[test]
fn homelab_validates() {
    let dir = repo_root().join("examples/homelab");
    for (kind, name) in FILES {
        assert_valid(kind, &dir.join(name));
    }
}

/// `(kind, document, what must be rejected)`. The bundle rejects them too, except where noted
/// in `per_file_only`.
fn broken() -> Vec<(FileKind, Value, &'static str)> {
    vec![
        (
            FileKind::Lxc,
            json!({"lxc_configs": {"101": {"cores": "four"}}}),
            "cores as a word",
        ),
        (
            FileKind::Lxc,
            json!({"lxc_configs": {"101": {"features": "docker"}}}),
            "a string where a list is expected",
        ),
        (
            FileKind::Lxc,
            json!({"lxc_configs": {"101": {"dependencies": ["abc"]}}}),
            "a dependency that is not an id",
        ),
        (
            FileKind::Lxc,
            json!({"lxc_configs": {"101": {"dependencies": [42]}}}),
            "an id below 100",
        ),
        (
            FileKind::Lxc,
            json!({"lxc_configs": {"101": {"network_config": "dhcp"}}}),
            "a NIC written as a string",
        ),
        (
            FileKind::Lxc,
            json!({"lxc_configs": {"101": {"traefik_service": {"name": "x", "port": 70000}}}}),
            "a port above 65535",
        ),
        (
            FileKind::Vm,
            json!({"vms": [{"name": "no-id"}]}),
            "a VM without vmid",
        ),
        (
            FileKind::Vm,
            json!({"vms": {"1001": {}}}),
            "vms as an object",
        ),
        (
            FileKind::Hypervisor,
            json!({"network": {"interfaces": {"dns_nameservers": "8.8.8.8"}}}),
            "nameservers as a string",
        ),
        (
            FileKind::Hypervisor,
            json!({"firewall": {"enabled": "yes"}}),
            "a boolean written as a word",
        ),
        (
            FileKind::Hypervisor,
            json!({"portainer_api": {"admin_password": {"vault": "x"}}}),
            "an unknown secret source",
        ),
        (
            FileKind::Hypervisor,
            json!({"portainer_api": {"admin_password": {"env": "not a name"}}}),
            "an env secret that is not a variable name",
        ),
        (
            FileKind::Hypervisor,
            json!({"portainer_api": {"admin_password": {"file": "relative/path"}}}),
            "a file secret with a relative path",
        ),
        (
            FileKind::Hypervisor,
            json!({"portainer_api": {"admin_password": {"env": "A", "file": "/b"}}}),
            "a secret with two sources",
        ),
        (
            FileKind::Stacks,
            json!({"docker_stacks": {"s": {"environments": {"production": {"variables": [{"name": "X"}]}}}}}),
            "a variable without value",
        ),
        (
            FileKind::Manifest,
            json!([{"common_name": "x", "cert_path": "/a"}]),
            "a certificate without key_path",
        ),
        (
            FileKind::Manifest,
            json!({"common_name": "x"}),
            "a manifest that is not a list",
        ),
        (
            FileKind::StackDefinition,
            json!({"environments": {"production": {"services": {"p": {"traefik_labels": "a=b"}}}}}),
            "labels as a string",
        ),
    ]
}

/// An object with only unknown keys is a valid (empty) hypervisor file to the bundle.
fn per_file_only(what: &str) -> bool {
    what == "a manifest that is not a list"
}

#[test]
fn broken_documents_are_rejected() {
    let bundle = validator(&bundle());
    for (kind, doc, what) in broken() {
        assert!(
            !validator(&schema_of(kind)).is_valid(&doc),
            "per-file schema {kind:?} accepts {what}: {doc}"
        );
        if !per_file_only(what) {
            assert!(!bundle.is_valid(&doc), "bundle accepts {what}: {doc}");
        }
    }
}

#[test]
fn type_errors_are_located() {
    let doc = json!({"lxc_configs": {"101": {"cores": "four"}}});
    for s in [schema_of(FileKind::Lxc), bundle()] {
        let errs = errors(&validator(&s), &doc);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("/lxc_configs/101/cores:")),
            "{errs:?}"
        );
    }
}

#[test]
fn unknown_keys_are_allowed() {
    let doc = json!({"lxc_configs": {"101": {"name": "a", "shiny_new_key": 1}}, "extra": true});
    assert!(validator(&schema_of(FileKind::Lxc)).is_valid(&doc));
    assert!(validator(&bundle()).is_valid(&doc));
}

#[test]
fn guest_ids_and_secrets() {
    let s = schema_of(FileKind::Lxc);
    let v = validator(&s);
    for ok in [
        json!(["101"]),
        json!([101]),
        json!(["999999999"]),
        json!(["0101"]),
        json!([]),
    ] {
        let doc = json!({"lxc_configs": {"101": {"dependencies": ok}}});
        assert!(v.is_valid(&doc), "rejects {doc}");
    }
    for bad in [
        json!(["10"]),
        json!(["099"]),
        json!(["1000000000"]),
        json!([99]),
        json!([1_000_000_000u64]),
        json!(["1e3"]),
        json!([101.5]),
        json!([null]),
    ] {
        let doc = json!({"lxc_configs": {"101": {"dependencies": bad}}});
        assert!(!v.is_valid(&doc), "accepts {doc}");
    }
    let h = validator(&schema_of(FileKind::Hypervisor));
    for ok in [
        json!("plain"),
        json!({"env": "PORTAINER_ADMIN_PASSWORD"}),
        json!({"file": "/root/.secrets/portainer"}),
        json!(null),
    ] {
        let doc = json!({"portainer_api": {"admin_password": ok}});
        assert!(h.is_valid(&doc), "rejects {doc}");
    }
    for bad in [json!({}), json!(42), json!(["x"]), json!({"env": 1})] {
        let doc = json!({"portainer_api": {"admin_password": bad}});
        assert!(!h.is_valid(&doc), "accepts {doc}");
    }
}

#[test]
fn schemas_are_valid_draft_2020_12() {
    let mut all: Vec<(String, Value)> = FileKind::ALL
        .iter()
        .map(|k| (format!("{k:?}"), schema_of(*k)))
        .collect();
    all.push(("bundle".into(), bundle()));
    for (what, s) in all {
        assert_eq!(
            s["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{what}"
        );
        for key in ["title", "description"] {
            assert!(
                s[key].as_str().is_some_and(|t| !t.is_empty()),
                "{what} has no {key}"
            );
        }
        if let Err(e) = jsonschema::meta::validate(&s) {
            panic!(
                "{what} is not valid JSON Schema 2020-12: {e} at {}",
                e.instance_path()
            );
        }
        check_refs(&s, &s, &what);
    }
}

/// Every `$ref` points into this document's `$defs`, and every definition is used.
fn check_refs(node: &Value, root: &Value, what: &str) {
    match node {
        Value::Object(map) => {
            if let Some(r) = map.get("$ref") {
                let r = r.as_str().expect("$ref is a string");
                let name = r
                    .strip_prefix("#/$defs/")
                    .unwrap_or_else(|| panic!("{what}: non-local $ref {r}"));
                assert!(
                    root["$defs"].get(name).is_some(),
                    "{what}: $ref {r} does not resolve"
                );
            }
            map.values().for_each(|v| check_refs(v, root, what));
        }
        Value::Array(items) => items.iter().for_each(|v| check_refs(v, root, what)),
        _ => {}
    }
}

/// Walks every schema node and records properties without a description; returns how many
/// properties it saw.
fn undocumented(node: &Value, path: &str, out: &mut Vec<String>) -> usize {
    let mut seen = 0;
    match node {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                seen += props.len();
                for (name, prop) in props {
                    let documented = prop
                        .get("description")
                        .and_then(Value::as_str)
                        .is_some_and(|d| !d.trim().is_empty());
                    if !documented {
                        out.push(format!("{path}/properties/{name}"));
                    }
                }
            }
            for (k, v) in map {
                match (k.as_str(), v) {
                    // A property map: recurse into each property's schema, not the map itself
                    // (a property may be called `properties`).
                    ("properties", Value::Object(props)) => {
                        for (name, prop) in props {
                            seen += undocumented(prop, &format!("{path}/properties/{name}"), out);
                        }
                    }
                    _ => seen += undocumented(v, &format!("{path}/{k}"), out),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                seen += undocumented(v, &format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
    seen
}

#[test]
fn every_property_is_documented() {
    let mut all: Vec<(String, Value)> = FileKind::ALL
        .iter()
        .map(|k| (format!("{k:?}"), schema_of(*k)))
        .collect();
    all.push(("bundle".into(), bundle()));
    for (what, s) in all {
        let mut missing = Vec::new();
        let seen = undocumented(&s, "#", &mut missing);
        assert!(seen > 0, "{what}: no properties found");
        assert!(
            missing.is_empty(),
            "{what}: properties without a description:\n{}",
            missing.join("\n")
        );
        if what == "bundle" {
            // Every field of every file, including the secret reference forms.
            assert!(seen > 200, "the bundle has only {seen} properties");
        }
    }
}

#[test]
fn property_walk_finds_gaps() {
    let s = json!({"properties": {"a": {"description": "x"}, "b": {"type": "string"}},
                   "$defs": {"D": {"properties": {"c": {"description": " "}}}}});
    let mut missing = Vec::new();
    assert_eq!(undocumented(&s, "#", &mut missing), 3);
    assert_eq!(missing, ["#/properties/b", "#/$defs/D/properties/c"]);
}
