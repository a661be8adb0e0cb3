//! The workspace's layering (ARCHITECTURE.md): model ← render/pki ← plan ← exec ← {pve, lab} ←
//! cli. Read from `cargo metadata`; any dependency between phoenix crates outside this list
//! fails, above all one between the two targets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

/// Every phoenix crate and the phoenix crates it may depend on (normal and dev dependencies).
const ALLOWED: &[(&str, &[&str])] = &[
    ("phoenix-model", &[]),
    ("phoenix-render", &["phoenix-model"]),
    ("phoenix-pki", &["phoenix-model"]),
    (
        "phoenix-plan",
        &["phoenix-model", "phoenix-render", "phoenix-pki"],
    ),
    ("phoenix-verify", &["phoenix-model", "phoenix-render"]),
    (
        "phoenix-exec",
        &[
            "phoenix-model",
            "phoenix-render",
            "phoenix-pki",
            "phoenix-plan",
            "phoenix-verify",
        ],
    ),
    (
        "phoenix-pve",
        &[
            "phoenix-model",
            "phoenix-render",
            "phoenix-pki",
            "phoenix-plan",
            "phoenix-verify",
            "phoenix-exec",
        ],
    ),
    (
        "phoenix-lab",
        &[
            "phoenix-model",
            "phoenix-render",
            "phoenix-pki",
            "phoenix-plan",
            "phoenix-verify",
            "phoenix-exec",
        ],
    ),
    (
        "phoenix-host",
        &["phoenix-model", "phoenix-render", "phoenix-exec"],
    ),
    (
        "phoenix-cli",
        &[
            "phoenix-host",
            "phoenix-model",
            "phoenix-render",
            "phoenix-pki",
            "phoenix-plan",
            "phoenix-verify",
            "phoenix-exec",
            "phoenix-pve",
            "phoenix-lab",
        ],
    ),
    (
        "phoenix-bench",
        &["phoenix-model", "phoenix-render", "phoenix-plan"],
    ),
];

fn workspace_edges() -> BTreeMap<String, BTreeSet<String>> {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|d| d["name"].as_str())
                .filter(|n| n.starts_with("phoenix-"))
                .map(String::from)
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

#[test]
fn crate_dependencies_follow_the_layering() {
    let edges = workspace_edges();
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(k, v)| (*k, v.iter().copied().collect()))
        .collect();
    let mut bad = Vec::new();
    for (krate, deps) in &edges {
        let Some(ok) = allowed.get(krate.as_str()) else {
            bad.push(format!("{krate} is not in the layering list of this test"));
            continue;
        };
        for d in deps {
            if !ok.contains(d.as_str()) {
                bad.push(format!("{krate} -> {d}"));
            }
        }
    }
    assert!(bad.is_empty(), "crate edges outside the layering: {bad:?}");
    // The two targets are siblings.
    assert!(!edges["phoenix-lab"].contains("phoenix-pve"));
    assert!(!edges["phoenix-pve"].contains("phoenix-lab"));
}
