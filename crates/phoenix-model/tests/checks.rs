//! The semantic checks, one small invalid configuration per check.
//!
//! `tests/fixtures/base/` is a minimal valid configuration (zero findings). Every other
//! directory under `tests/fixtures/` holds only the file(s) that differ from the base; a case
//! is run by copying the base into a temporary `etc/` and laying the case's files over it.
//! Line numbers asserted below are those of the case files as checked in.
//!
//! The last tests run the operator's real snapshots in `../shared/fixtures/upstream/`.

#![allow(clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use phoenix_model::{Finding, validate_dir};

const HYP: &str = "phoenix_hypervisor_config.json";
const LXC: &str = "phoenix_lxc_configs.json";
const VMS: &str = "phoenix_vm_configs.json";
const STACKS: &str = "phoenix_stacks_config.json";
const MANIFEST: &str = "certificate-manifest.json";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn copy_files(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read fixture dir") {
        let path = entry.expect("dir entry").path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().expect("file name")))
                .expect("copy fixture");
        }
    }
}

/// Findings of the base configuration with `case`'s files laid over it.
fn run(case: &str) -> Vec<Finding> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let etc = tmp.path().join("etc");
    std::fs::create_dir(&etc).expect("mkdir etc");
    copy_files(&fixtures().join("base"), &etc);
    if case != "base" {
        let dir = fixtures().join(case);
        assert!(dir.is_dir(), "no fixture case {case}");
        copy_files(&dir, &etc);
    }
    validate_dir(&etc).findings()
}

fn file_name(f: &Finding) -> &str {
    f.file.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

fn render(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            format!(
                "{} {}:{} {} | {}",
                f.code,
                file_name(f),
                f.line,
                f.pointer,
                f.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Assert a finding with `code` at `file` `pointer`, on `line`; return it.
fn expect<'a>(
    findings: &'a [Finding],
    code: &str,
    file: &str,
    pointer: &str,
    line: usize,
) -> &'a Finding {
    let f = findings
        .iter()
        .find(|f| f.code == code && file_name(f) == file && f.pointer == pointer)
        .unwrap_or_else(|| {
            panic!(
                "expected {code} at {file}{pointer}; got:\n{}",
                render(findings)
            )
        });
    assert_eq!(
        f.line, line,
        "{code} at {file}{pointer} is on the wrong line"
    );
    assert!(!f.message.ends_with('.'), "message ends with a period");
    assert!(!f.hint.is_empty(), "{code} has no hint");
    f
}

fn count(findings: &[Finding], code: &str) -> usize {
    findings.iter().filter(|f| f.code == code).count()
}

#[test]
fn base_is_clean() {
    // Only the bind mounts, which phoenix reads (for certificate paths) but does not create.
    let f = run("base");
    expect(&f, "PHX-W002", LXC, "/lxc_configs/102/mount_points", 44);
    expect(&f, "PHX-W002", LXC, "/lxc_configs/103/mount_points", 69);
    // And the VM pointed at the host's management address, where dnsmasq does not listen.
    expect(&f, "PHX-W037", VMS, "/vms/0/network_config/nameserver", 10);
    assert_eq!(f.len(), 3, "base has findings:\n{}", render(&f));
}

// ---- network ----------------------------------------------------------------------------

#[test]
fn address_outside_bridge() {
    let f = run("address_outside_bridge");
    let x = expect(
        &f,
        "PHX-E020",
        LXC,
        "/lxc_configs/103/network_config/ip",
        56,
    );
    assert!(x.message.contains("172.16.100.0/24"), "{}", x.message);
}

#[test]
fn unknown_bridge() {
    let f = run("unknown_bridge");
    expect(
        &f,
        "PHX-E021",
        LXC,
        "/lxc_configs/103/network_config/bridge",
        55,
    );
}

#[test]
fn gateway_outside_subnet() {
    let f = run("gateway_outside_subnet");
    expect(
        &f,
        "PHX-E022",
        LXC,
        "/lxc_configs/103/network_config/gw",
        57,
    );
}

#[test]
fn two_gateways_reported_at_the_second() {
    let f = run("two_gateways");
    expect(
        &f,
        "PHX-E023",
        VMS,
        "/vms/0/secondary_network_config/gw",
        42,
    );
    assert_eq!(count(&f, "PHX-E023"), 1, "{}", render(&f));
}

#[test]
fn macvlan_raw_lines_and_unreachable_child() {
    let f = run("macvlan");
    let w = expect(&f, "PHX-W020", LXC, "/lxc_configs/101/lxc_options/0", 26);
    assert!(w.message.contains("pct set"), "{}", w.message);
    assert!(w.hint.contains("bridge=vmbr0,tag=20"), "{}", w.hint);
    assert_eq!(
        count(&f, "PHX-W020"),
        1,
        "one finding per NIC, not per line"
    );
    expect(&f, "PHX-W021", LXC, "/lxc_configs/101/network_config", 5);
}

// ---- stale addresses, certificates, duplicate rules -------------------------------------

#[test]
fn stale_cluster_rule_addresses() {
    let f = run("stale_cluster_rule");
    let p = "/firewall/global_firewall_rules/3";
    expect(&f, "PHX-W010", HYP, &format!("{p}/source"), 59);
    expect(&f, "PHX-W010", HYP, &format!("{p}/dest"), 60);
    // 8.8.8.8 (public) and 0.0.0.0/0 (a subnet) are not stale.
    assert_eq!(count(&f, "PHX-W010"), 2, "{}", render(&f));
}

#[test]
fn stale_guest_rule_address() {
    let f = run("stale_guest_rule");
    expect(&f, "PHX-W010", VMS, "/vms/0/firewall/rules/1/dest", 41);
}

#[test]
fn stale_stack_rule_address() {
    let f = run("stale_stack_rule");
    expect(
        &f,
        "PHX-W010",
        STACKS,
        "/docker_stacks/portainer_service/environments/production/firewall_rules/1/source",
        29,
    );
}

#[test]
fn stale_host_nameserver() {
    let f = run("stale_host_nameserver");
    expect(
        &f,
        "PHX-W011",
        HYP,
        "/network/interfaces/dns_nameservers/0",
        9,
    );
    assert_eq!(count(&f, "PHX-W011"), 1, "8.8.8.8 is not stale");
}

#[test]
fn stale_guest_nameserver() {
    let f = run("stale_guest_nameserver");
    expect(
        &f,
        "PHX-W011",
        LXC,
        "/lxc_configs/102/network_config/nameservers/1",
        36,
    );
    assert_eq!(count(&f, "PHX-W011"), 1, "172.16.100.1 is the host's");
}

#[test]
fn stale_certificate_san() {
    let f = run("stale_san");
    expect(&f, "PHX-W012", MANIFEST, "/1/sans/1", 17);
    assert_eq!(count(&f, "PHX-W012"), 1, "{}", render(&f));
}

#[test]
fn certificate_gaps() {
    let f = run("certificate_gap");
    let addr = expect(&f, "PHX-W013", MANIFEST, "/0/sans", 4);
    assert!(addr.message.contains("172.16.100.10"), "{}", addr.message);
    let name = expect(&f, "PHX-W013", MANIFEST, "/2/sans", 26);
    assert!(
        name.message.contains("portainer.internal.example.org"),
        "{}",
        name.message
    );
    expect(&f, "PHX-W012", MANIFEST, "/0/sans/0", 5);
}

#[test]
fn duplicate_rule_reported_at_the_later_one() {
    let f = run("duplicate_rule");
    let d = expect(&f, "PHX-W033", HYP, "/firewall/global_firewall_rules/3", 55);
    assert!(
        d.message.contains("/firewall/global_firewall_rules/1"),
        "{}",
        d.message
    );
    assert_eq!(count(&f, "PHX-W033"), 1);
}

// ---- ingress, references, provisioning -------------------------------------------------

#[test]
fn traefik_service_without_static_address() {
    let f = run("dhcp_route");
    let e = expect(&f, "PHX-E030", LXC, "/lxc_configs/103/traefik_service", 63);
    assert!(e.message.contains("http://dhcp:9000"), "{}", e.message);
}

#[test]
fn traefik_service_with_dhcp_first_nic() {
    let f = run("dhcp_primary_nic");
    let w = expect(&f, "PHX-W022", LXC, "/lxc_configs/101/traefik_service", 26);
    assert!(w.message.contains("net1"), "{}", w.message);
    assert!(w.message.contains("172.16.100.10"), "{}", w.message);
    assert!(w.message.contains("DHCP route"), "{}", w.message);
}

#[test]
fn explicit_http_on_the_ca_port() {
    let f = run("scheme_mismatch");
    expect(
        &f,
        "PHX-E031",
        LXC,
        "/lxc_configs/103/traefik_service/scheme",
        67,
    );
}

#[test]
fn explicit_http_on_a_tls_port() {
    let f = run("scheme_mismatch_tls_port");
    let e = expect(&f, "PHX-E031", VMS, "/vms/0/traefik_service/scheme", 21);
    assert!(e.message.contains("9443"), "{}", e.message);
}

#[test]
fn inferred_https_scheme() {
    let f = run("scheme_inferred");
    expect(&f, "PHX-W023", LXC, "/lxc_configs/103/traefik_service", 64);
}

#[test]
fn unknown_entrypoint_in_service() {
    let f = run("unknown_entrypoint");
    expect(
        &f,
        "PHX-E032",
        VMS,
        "/vms/0/traefik_service/entrypoints/1",
        24,
    );
    assert_eq!(count(&f, "PHX-E032"), 1, "websecure exists");
}

#[test]
fn unknown_entrypoint_in_stack_label() {
    let f = run("unknown_entrypoint_label");
    let e = expect(
        &f,
        "PHX-E032",
        STACKS,
        "/docker_stacks/portainer_service/environments/production/services/portainer/traefik_labels/2",
        12,
    );
    assert!(e.message.contains("intranet"), "{}", e.message);
    assert_eq!(count(&f, "PHX-E032"), 1, "websecure exists");
}

#[test]
fn unknown_stack() {
    let f = run("unknown_stack");
    expect(&f, "PHX-E054", VMS, "/vms/0/docker_stacks/1", 25);
}

#[test]
fn certificate_for_unknown_or_wrong_kind_of_guest() {
    let f = run("certificate_unknown_guest");
    expect(&f, "PHX-E051", MANIFEST, "/0/guest_id", 7);
    expect(&f, "PHX-E051", MANIFEST, "/2/guest_type", 30);
}

#[test]
fn ca_directory_mounted_into_another_guest() {
    let f = run("ca_dir_mounted");
    expect(
        &f,
        "PHX-W031",
        LXC,
        "/lxc_configs/102/mount_points/1/host_path",
        50,
    );
    assert_eq!(count(&f, "PHX-W031"), 1, "the CA's own mount is fine");
}

#[test]
fn unsupported_feature() {
    let f = run("unsupported_feature");
    expect(&f, "PHX-W032", LXC, "/lxc_configs/102/features/3", 40);
    assert_eq!(count(&f, "PHX-W032"), 1);
}

// ---- the operator's real snapshots ------------------------------------------------------

fn upstream(snapshot: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/upstream")
        .join(snapshot)
        .join("etc")
}

fn read_json(dir: &Path, file: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join(file)).expect("read upstream file");
    serde_json::from_str(&text).expect("upstream file is JSON")
}

/// Pointers of every rule `source`/`dest` in the upstream files naming one of `addrs`.
fn rule_endpoints_naming(dir: &Path, addrs: &[&str]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut scan = |file: &str, base: String, rules: Option<&serde_json::Value>| {
        for (i, r) in rules
            .and_then(|r| r.as_array())
            .into_iter()
            .flatten()
            .enumerate()
        {
            for key in ["source", "dest"] {
                if r[key].as_str().is_some_and(|v| addrs.contains(&v)) {
                    out.insert((file.to_string(), format!("{base}/{i}/{key}")));
                }
            }
        }
    };
    let hyp = read_json(dir, HYP);
    scan(
        HYP,
        "/firewall/global_firewall_rules".into(),
        hyp.pointer("/firewall/global_firewall_rules"),
    );
    let lxc = read_json(dir, LXC);
    for (id, g) in lxc["lxc_configs"].as_object().into_iter().flatten() {
        scan(
            LXC,
            format!("/lxc_configs/{id}/firewall/rules"),
            g.pointer("/firewall/rules"),
        );
    }
    let vms = read_json(dir, VMS);
    for (i, g) in vms["vms"].as_array().into_iter().flatten().enumerate() {
        scan(
            VMS,
            format!("/vms/{i}/firewall/rules"),
            g.pointer("/firewall/rules"),
        );
    }
    out
}

#[test]
fn upstream_snapshots_load_without_syntax_errors() {
    for snapshot in ["rootesting-2025-11-25", "main-2025-11-04"] {
        let v = validate_dir(&upstream(snapshot));
        assert!(v.desired.is_some(), "{snapshot}: no model");
        let f = v.findings();
        for code in ["PHX-E001", "PHX-E002", "PHX-E003", "PHX-E004", "PHX-E007"] {
            assert_eq!(count(&f, code), 0, "{snapshot}: {code}\n{}", render(&f));
        }
    }
}

#[test]
fn rootesting_findings_cover_the_known_problems() {
    let dir = upstream("rootesting-2025-11-25");
    let f = validate_dir(&dir).findings();

    // Every rule naming a pre-migration address, each at its own location.
    let stale = rule_endpoints_naming(&dir, &["10.0.0.10", "10.0.0.12", "10.0.0.153"]);
    assert!(stale.len() > 20, "the fixture has many stale rules");
    for (file, pointer) in &stale {
        assert!(
            f.iter().any(|x| x.code == "PHX-W010"
                && file_name(x) == file.as_str()
                && &x.pointer == pointer),
            "no W010 at {file}{pointer}"
        );
    }
    expect(
        &f,
        "PHX-W010",
        HYP,
        "/firewall/global_firewall_rules/10/dest",
        423,
    );
    expect(
        &f,
        "PHX-W010",
        LXC,
        "/lxc_configs/801/firewall/rules/1/dest",
        346,
    );
    // Public addresses and whole subnets are never stale.
    for x in f.iter().filter(|x| x.code == "PHX-W010") {
        assert!(
            ["10.0.0.10,", "10.0.0.12,", "10.0.0.153,"]
                .iter()
                .any(|a| x.message.contains(a)),
            "unexpected stale address: {}",
            x.message
        );
    }

    expect(
        &f,
        "PHX-W011",
        HYP,
        "/network/interfaces/dns_nameservers/0",
        32,
    );

    // 910 and 912 clone their templates at `final-form`, which 901 and 911 take themselves
    // (`enable_lifecycle_snapshots`); 9000 creates initial_clean_state itself.
    assert_eq!(count(&f, "PHX-W038"), 0, "{}", render(&f));

    // VMs 1001 and 1002 use the host's 10.0.0.13; dnsmasq listens on the mesh gateway only.
    for (pointer, line) in [
        ("/vms/1/network_config/nameserver", 58),
        ("/vms/2/network_config/nameserver", 318),
    ] {
        let w = expect(&f, "PHX-W037", VMS, pointer, line);
        assert!(w.message.contains("10.0.0.13"), "{}", w.message);
        assert!(w.hint.contains("172.16.100.1"), "{}", w.hint);
    }

    let route = expect(&f, "PHX-W022", LXC, "/lxc_configs/101/traefik_service", 530);
    assert!(route.message.contains("DHCP route"), "{}", route.message);
    assert!(route.message.contains("172.16.100.10"), "{}", route.message);
    expect(&f, "PHX-W023", LXC, "/lxc_configs/103/traefik_service", 770);

    expect(&f, "PHX-W020", LXC, "/lxc_configs/101/lxc_options/3", 525);
    expect(&f, "PHX-W021", LXC, "/lxc_configs/101/network_config", 489);

    let pw = expect(&f, "PHX-W030", HYP, "/portainer_api/admin_password", 575);
    assert!(!pw.message.contains("REDACTED-plaintext-password"));
    assert!(!pw.hint.contains("REDACTED-plaintext-password"));

    // The CA directory of 103 mounted into other guests: each mount reported.
    let lxc = read_json(&dir, LXC);
    let mut mounts = 0;
    for (id, g) in lxc["lxc_configs"].as_object().into_iter().flatten() {
        if id == "103" {
            continue;
        }
        for (i, m) in g["mount_points"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if m["host_path"]
                .as_str()
                .is_some_and(|p| p.contains("lxc-persistent-data/103/ssl"))
            {
                mounts += 1;
                let pointer = format!("/lxc_configs/{id}/mount_points/{i}/host_path");
                assert!(
                    f.iter()
                        .any(|x| x.code == "PHX-W031" && x.pointer == pointer),
                    "no W031 at {pointer}"
                );
            }
        }
    }
    assert!(mounts >= 2, "101 and 102 mount the CA directory");
    assert_eq!(count(&f, "PHX-W031"), mounts);

    // The manifest predates the move to 172.16.100.0/24.
    let nginx = expect(&f, "PHX-W013", MANIFEST, "/0/sans", 4);
    assert!(nginx.message.contains("172.16.100.10"), "{}", nginx.message);
    let traefik = expect(&f, "PHX-W013", MANIFEST, "/2", 30);
    assert!(
        traefik.message.contains("172.16.100.12"),
        "{}",
        traefik.message
    );

    // Features phoenix does not provision are named.
    assert!(
        f.iter()
            .any(|x| x.code == "PHX-W032" && x.message.contains("`nvidia`"))
    );
}

#[test]
fn world_readable_key_mode_is_made_safe() {
    let f = run("unsafe_key_mode");
    let w = expect(&f, "PHX-W035", MANIFEST, "/0/permissions", 12);
    assert!(w.message.contains("writes 640"), "{}", w.message);
    assert!(
        f.iter()
            .all(|x| x.severity != phoenix_model::Severity::Error),
        "{}",
        render(&f)
    );
}

/// Without 901's lifecycle snapshots nothing creates the `final-form` 910 clones: W038 there,
/// with the fix in its hint.
#[test]
fn clone_of_a_snapshot_nothing_takes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_files(&upstream("rootesting-2025-11-25"), tmp.path());
    let path = tmp.path().join("phoenix_lxc_configs.json");
    let text = std::fs::read_to_string(&path).expect("read");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v["lxc_configs"]["901"]["enable_lifecycle_snapshots"] = false.into();
    std::fs::write(&path, serde_json::to_string_pretty(&v).expect("json")).expect("write");
    let f = validate_dir(tmp.path()).findings();
    let w = f
        .iter()
        .find(|x| x.code == "PHX-W038" && x.pointer == "/lxc_configs/910/template_snapshot_name")
        .unwrap_or_else(|| panic!("no W038 for 910:\n{}", render(&f)));
    assert!(
        w.message.contains("901@`final-form`") || w.message.contains("901@final-form"),
        "{}",
        w.message
    );
    assert!(w.hint.contains("enable_lifecycle_snapshots"), "{}", w.hint);
    assert_eq!(count(&f, "PHX-W038"), 1, "{}", render(&f));
}
