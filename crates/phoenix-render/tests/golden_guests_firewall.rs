//! Golden tests (insta) for the Proxmox guest parameter sets and firewall files, on the
//! rootesting fixture and `examples/homelab`: one snapshot per firewall file and per guest,
//! plus the three-switch filtering report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write;
use std::path::{Path, PathBuf};

use phoenix_model::DesiredState;
use phoenix_render::RenderOptions;
use phoenix_render::firewall::{filtering, firewall_files};
use phoenix_render::guestparams::{ApiCall, GuestParams, all_guest_params};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(dir: &Path) -> DesiredState {
    let v = phoenix_model::validate_dir(dir);
    v.desired
        .unwrap_or_else(|| panic!("{} does not build", dir.display()))
}

fn rootesting() -> DesiredState {
    load(&repo_root().join("../shared/fixtures/upstream/rootesting-2025-11-25/etc"))
}

fn homelab() -> DesiredState {
    load(&repo_root().join("examples/homelab"))
}

fn call(out: &mut String, step: &str, c: &ApiCall, node: &str) {
    let _ = writeln!(out, "{step}: {} {}", c.endpoint.method(), c.path(node));
    for (k, v) in &c.params {
        let _ = writeln!(out, "  {k} = {v}");
    }
}

fn params_text(p: &GuestParams, node: &str) -> String {
    let mut out = format!("guest {} ({})\n", p.id, p.kind);
    for (step, c) in [
        ("create", &p.create),
        ("config", &p.config),
        ("resize", &p.resize),
    ] {
        if let Some(c) = c {
            call(&mut out, step, c, node);
        }
    }
    if let Some(i) = &p.image_import {
        let _ = writeln!(out, "image_import: {i}");
    }
    if !p.raw_lxc.is_empty() {
        let _ = writeln!(out, "raw /etc/pve/lxc/{}.conf:", p.id);
        for l in &p.raw_lxc {
            let _ = writeln!(out, "  {l}");
        }
    }
    if p.convert_to_template {
        out.push_str("convert_to_template\n");
    }
    out
}

fn snapshot_all(name: &str, d: &DesiredState) {
    let opts = RenderOptions::default();
    for f in firewall_files(d, &opts) {
        let slug = f
            .path
            .trim_start_matches("/etc/pve/")
            .replace(['/', '.'], "_");
        let header = format!(
            "{} {:?} {}:{} {:o}\n",
            f.path, f.target, f.owner, f.group, f.mode
        );
        insta::assert_snapshot!(
            format!("{name}__fw__{slug}"),
            format!("{header}---\n{}", f.content)
        );
    }
    for (id, p) in all_guest_params(d) {
        insta::assert_snapshot!(format!("{name}__guest__{id}"), params_text(&p, &opts.node));
    }
    let mut report = String::new();
    for g in filtering(d) {
        let _ = writeln!(
            report,
            "{}: effective={} filtered_nics={:?}",
            g.id, g.effective, g.filtered_nics
        );
        for f in &g.findings {
            let _ = writeln!(report, "  - {}", f.to_string().replace('\n', "\n    "));
        }
    }
    insta::assert_snapshot!(format!("{name}__filtering"), report);
}

#[test]
fn rootesting_guests_and_firewall() {
    snapshot_all("rootesting", &rootesting());
}

#[test]
fn homelab_guests_and_firewall() {
    snapshot_all("homelab", &homelab());
}

/// The seed's bugs stay impossible: no hard-coded VM nameserver, macvlan NICs never go
/// through the API, generated MACs are kept.
#[test]
fn invariants_on_both_configs() {
    for d in [rootesting(), homelab()] {
        for (id, p) in all_guest_params(&d) {
            let g = d.guest(id).unwrap();
            let calls = [&p.create, &p.config].into_iter().flatten();
            for c in calls {
                if let Some(ns) = c.params.get("nameserver") {
                    let want: Vec<String> = g.nameservers.iter().map(|a| a.to_string()).collect();
                    assert_eq!(ns, &want.join(" "), "guest {id}");
                }
                for (k, v) in &c.params {
                    if k.starts_with("net") {
                        assert!(!v.contains("macvlan"), "guest {id} {k}={v}");
                    }
                }
                for nic in g
                    .nics
                    .iter()
                    .filter(|n| n.kind == phoenix_model::model::NicKind::Macvlan)
                {
                    assert!(
                        !c.params.contains_key(&format!("net{}", nic.index)),
                        "guest {id}"
                    );
                }
            }
        }
    }
}

/// main-2025-11-04 keeps the cluster firewall under `shared_volumes.firewall`, where the bash
/// system of its day read it: `cluster.fw` must switch it on with its policy and every rule.
#[test]
fn main_cluster_firewall_from_shared_volumes_is_on() {
    let dir = repo_root().join("../shared/fixtures/upstream/main-2025-11-04/etc");
    let d = load(&dir);
    let text = std::fs::read_to_string(dir.join("phoenix_hypervisor_config.json")).unwrap();
    let hyp: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rules = hyp
        .pointer("/shared_volumes/firewall/global_firewall_rules")
        .and_then(|r| r.as_array())
        .unwrap();
    assert!(!rules.is_empty());
    let cluster = firewall_files(&d, &RenderOptions::default())
        .into_iter()
        .find(|f| f.path == "/etc/pve/firewall/cluster.fw")
        .unwrap();
    let options = cluster.content.split("[ALIASES]").next().unwrap();
    assert!(options.contains("enable: 1\n"), "{}", cluster.content);
    assert!(options.contains("policy_in: DROP\n"), "{}", cluster.content);
    let body = cluster.content.split("[RULES]").nth(1).unwrap();
    let lines: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), rules.len(), "{body}");
    for (line, rule) in lines.iter().zip(rules) {
        let dir = rule["type"].as_str().unwrap().to_ascii_uppercase();
        assert!(line.starts_with(&format!("{dir} ACCEPT")), "{line}");
        let port = rule["port"].as_str().unwrap();
        assert!(line.contains(&format!("-dport {port}")), "{line}");
        let comment = rule["comment"].as_str().unwrap();
        assert!(line.contains(comment), "{line} lacks {comment}");
    }
}
