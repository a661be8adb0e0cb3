//! Checks across files, each drawn from `examples/homelab` with one change: a route's port
//! against the stack (W039), routed names against the gateway's and the proxy's certificates
//! (W040), client certificates from step-ca (W041), certificate paths outside the guest's
//! mounts (W042).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::path::{Path, PathBuf};

use phoenix_model::{Finding, validate_dir};
use serde_json::{Value, json};

mod common;
use common::copy_tree;

const VMS: &str = "phoenix_vm_configs.json";
const STACKS: &str = "phoenix_stacks_config.json";
const MANIFEST: &str = "certificate-manifest.json";

/// A copy of the example to change.
struct Lab {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("homelab");
        copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab"),
            &dir,
        );
        Lab { _tmp: tmp, dir }
    }

    fn text(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap()
    }

    /// Replace the one occurrence of `from` in `file`.
    fn replace(&self, file: &str, from: &str, to: &str) {
        let text = self.text(file);
        assert_eq!(text.matches(from).count(), 1, "{from} in {file}");
        std::fs::write(self.dir.join(file), text.replace(from, to)).unwrap();
    }

    /// Change the parsed `file` and write it back (pretty, keys in order).
    fn edit(&self, file: &str, f: impl FnOnce(&mut Value)) {
        let mut v: Value = serde_json::from_str(&self.text(file)).unwrap();
        f(&mut v);
        std::fs::write(
            self.dir.join(file),
            serde_json::to_string_pretty(&v).unwrap(),
        )
        .unwrap();
    }

    fn findings(&self) -> Vec<Finding> {
        validate_dir(&self.dir).findings()
    }

    /// The line of the `n`th (0-based) line of `file` containing `needle`.
    fn line_of(&self, file: &str, needle: &str, n: usize) -> usize {
        self.text(file)
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains(needle))
            .nth(n)
            .map(|(i, _)| i + 1)
            .unwrap_or_else(|| panic!("{needle} #{n} in {file}"))
    }
}

fn of<'a>(findings: &'a [Finding], code: &str) -> Vec<&'a Finding> {
    findings.iter().filter(|f| f.code == code).collect()
}

/// The one finding of `code`, at `file` `pointer` on `line`, with a hint and no period.
fn one<'a>(
    findings: &'a [Finding],
    code: &str,
    file: &str,
    pointer: &str,
    line: usize,
) -> &'a Finding {
    let all = of(findings, code);
    let listed: Vec<String> = findings
        .iter()
        .map(|f| format!("{} {} {}", f.code, f.pointer, f.message))
        .collect();
    assert_eq!(all.len(), 1, "one {code}:\n{}", listed.join("\n"));
    let f = all[0];
    assert!(f.file.ends_with(file), "{}", f.file.display());
    assert_eq!(f.pointer, pointer);
    assert_eq!(f.line, line, "{code} line");
    assert!(!f.message.ends_with('.') && !f.hint.is_empty());
    f
}

#[test]
fn the_example_draws_none_of_them() {
    let f = Lab::new().findings();
    for code in ["PHX-W039", "PHX-W040", "PHX-W041", "PHX-W042"] {
        assert!(of(&f, code).is_empty(), "{code}: {:?}", of(&f, code));
    }
}

#[test]
fn a_route_to_a_port_the_stack_does_not_publish() {
    let lab = Lab::new();
    lab.replace(VMS, "\"port\": 9443,", "\"port\": 9444,");
    let f = lab.findings();
    let line = lab.line_of(VMS, "\"port\": 9444", 0);
    let w = one(&f, "PHX-W039", VMS, "/vms/1/traefik_service/port", line);
    assert!(w.message.contains("port 9444"), "{}", w.message);
    assert!(w.message.contains("9443 → portainer:9443"), "{}", w.message);
    assert!(w.hint.contains("\"port\": 9443"), "{}", w.hint);
}

#[test]
fn a_route_whose_port_the_label_contradicts() {
    let lab = Lab::new();
    lab.replace(
        STACKS,
        "loadbalancer.server.port=9443",
        "loadbalancer.server.port=9000",
    );
    let f = lab.findings();
    let line = lab.line_of(VMS, "\"port\": 9443", 0);
    let w = one(&f, "PHX-W039", VMS, "/vms/1/traefik_service/port", line);
    assert!(
        w.message.contains("reaches container port 9443") && w.message.contains("port 9000"),
        "{}",
        w.message
    );
    assert!(w.hint.contains("change the label to 9443"), "{}", w.hint);
}

#[test]
fn the_published_port_in_short_form_counts() {
    let lab = Lab::new();
    lab.replace(
        "stacks/portainer_service/docker-compose.yml",
        "      - target: 9443\n        published: 9443\n        protocol: tcp\n        mode: host\n",
        "      - \"0.0.0.0:9443:9443/tcp\"\n",
    );
    assert!(of(&lab.findings(), "PHX-W039").is_empty());
    lab.replace(
        "stacks/portainer_service/docker-compose.yml",
        "\"0.0.0.0:9443:9443/tcp\"",
        "\"9444:9443\"",
    );
    let f = lab.findings();
    let w = &of(&f, "PHX-W039")[0];
    assert!(w.hint.contains("\"port\": 9444"), "{}", w.hint);
}

fn remove_san(v: &mut Value, entry: usize, san: &str) {
    let sans = v[entry]["sans"].as_array_mut().unwrap();
    sans.retain(|s| s != san);
}

#[test]
fn routed_names_the_gateway_and_proxy_certificates_miss() {
    let lab = Lab::new();
    lab.edit(MANIFEST, |v| {
        remove_san(v, 0, "portainer.internal.thinkheads.ai");
        remove_san(v, 1, "portainer.internal.thinkheads.ai");
    });
    let f = lab.findings();
    let w = of(&f, "PHX-W040");
    assert_eq!(w.len(), 2, "{w:?}");
    let gateway = w.iter().find(|x| x.pointer == "/0/sans").expect("gateway");
    assert!(
        gateway.message.starts_with("the gateway (guest 101)")
            && gateway
                .message
                .contains(": portainer.internal.thinkheads.ai;"),
        "{}",
        gateway.message
    );
    assert_eq!(gateway.line, lab.line_of(MANIFEST, "\"sans\"", 0));
    assert!(gateway.hint.contains("`nginx.internal.thinkheads.ai`"));
    let proxy = w.iter().find(|x| x.pointer == "/1/sans").expect("proxy");
    assert!(
        proxy.message.starts_with("the internal proxy (guest 102)"),
        "{}",
        proxy.message
    );
    assert_eq!(proxy.line, lab.line_of(MANIFEST, "\"sans\"", 1));
}

#[test]
fn a_stack_host_rule_is_a_routed_name_for_the_proxy_only() {
    let lab = Lab::new();
    lab.edit(STACKS, |v| {
        let labels = v["docker_stacks"]["portainer_service"]["environments"]["production"]
            ["services"]["portainer"]["traefik_labels"]
            .as_array_mut()
            .unwrap();
        labels.push(json!(
            "traefik.http.routers.extra.rule=Host(`extra.internal.thinkheads.ai`) || Host(`portainer.internal.thinkheads.ai`)"
        ));
    });
    let f = lab.findings();
    let w = one(
        &f,
        "PHX-W040",
        MANIFEST,
        "/1/sans",
        lab.line_of(MANIFEST, "\"sans\"", 1),
    );
    assert!(
        w.message.contains("a route name") && w.message.contains("extra.internal.thinkheads.ai"),
        "{}",
        w.message
    );
}

fn push_cert(v: &mut Value, entry: Value) {
    v.as_array_mut().unwrap().push(entry);
}

#[test]
fn a_client_certificate_requested_from_step_ca() {
    let lab = Lab::new();
    lab.edit(MANIFEST, |v| {
        push_cert(
            v,
            json!({
                "common_name": "nginx-gateway-client",
                "guest_id": 101,
                "cert_path": "/mnt/pve/quickOS/lxc-persistent-data/101/ssl/client.crt",
                "key_path": "/mnt/pve/quickOS/lxc-persistent-data/101/ssl/client.key",
                "cert_type": "client"
            }),
        );
    });
    let f = lab.findings();
    let w = one(
        &f,
        "PHX-W041",
        MANIFEST,
        "/3/cert_type",
        lab.line_of(MANIFEST, "\"cert_type\": \"client\"", 0),
    );
    assert!(
        w.message.contains("serverAuth") && w.message.contains("step-ca (guest 103)"),
        "{}",
        w.message
    );
    assert!(w.hint.contains("clientAuth") && w.hint.contains("--ca-dir"));
}

#[test]
fn a_certificate_path_outside_the_guests_mounts() {
    let lab = Lab::new();
    lab.edit(MANIFEST, |v| {
        push_cert(
            v,
            json!({
                "common_name": "extra.internal.thinkheads.ai",
                "guest_id": 101,
                "cert_path": "/mnt/pve/quickOS/lxc-persistent-data/101/certs/extra.crt",
                "key_path": "/mnt/pve/quickOS/lxc-persistent-data/101/ssl/extra.key",
                "post_renewal_command": "pct exec 101 -- /bin/bash -c 'mv /tmp/cert.pem /etc/nginx/ssl/extra.crt && systemctl reload nginx'"
            }),
        );
    });
    let f = lab.findings();
    let w = one(
        &f,
        "PHX-W042",
        MANIFEST,
        "/3/cert_path",
        lab.line_of(MANIFEST, "101/certs/extra.crt", 0),
    );
    assert!(
        w.message.contains("outside every mount point of guest 101")
            && w.message
                .contains("/mnt/pve/quickOS/lxc-persistent-data/101/ssl → /etc/nginx/ssl"),
        "{}",
        w.message
    );
    assert!(
        w.hint
            .contains("/mnt/pve/quickOS/lxc-persistent-data/101/ssl/extra.crt"),
        "{}",
        w.hint
    );
}

#[test]
fn a_certificate_path_in_another_guests_mount_names_that_guest() {
    let lab = Lab::new();
    lab.edit(MANIFEST, |v| {
        push_cert(
            v,
            json!({
                "common_name": "traefik-client.internal.thinkheads.ai",
                "guest_id": 101,
                "cert_path": "/mnt/pve/quickOS/lxc-persistent-data/102/certs/client.crt",
                "key_path": "/mnt/pve/quickOS/lxc-persistent-data/102/certs/client.key",
                "post_renewal_command": "pct exec 102 -- systemctl restart traefik"
            }),
        );
        // A path inside the guest is used as written: no finding.
        push_cert(
            v,
            json!({
                "common_name": "inside.internal.thinkheads.ai",
                "guest_id": 101,
                "cert_path": "/etc/nginx/other/inside.crt",
                "key_path": "/etc/nginx/other/inside.key"
            }),
        );
    });
    let f = lab.findings();
    let w = of(&f, "PHX-W042");
    assert_eq!(w.len(), 2, "{w:?}");
    for (x, key) in w.iter().zip(["cert_path", "key_path"]) {
        assert_eq!(x.pointer, format!("/3/{key}"));
        assert!(
            x.message.contains("the path is in guest 102's mount"),
            "{}",
            x.message
        );
        assert!(
            x.hint.contains("runs in guest 102") && x.hint.contains("\"guest_id\": 102"),
            "{}",
            x.hint
        );
    }
}
