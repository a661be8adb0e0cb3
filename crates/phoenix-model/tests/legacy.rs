//! Forms of the configuration that older versions of the bash system accepted: each is read,
//! normalised, and reported once as PHX-W004 with the current spelling in the hint.
//!
//! Each case is `tests/fixtures/legacy_*/`: files laid over `tests/fixtures/base/` (as in
//! `checks.rs`); a `REMOVE` file lists base files the historical layout did not have.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use phoenix_model::model::Verdict;
use phoenix_model::{Finding, Severity, Validation, validate_dir};

const HYP: &str = "phoenix_hypervisor_config.json";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn run(case: &str) -> (Validation, Vec<Finding>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let etc = tmp.path().join("etc");
    std::fs::create_dir(&etc).expect("mkdir etc");
    let copy = |from: &Path| {
        for entry in std::fs::read_dir(from).expect("read fixture dir") {
            let path = entry.expect("dir entry").path();
            let name = path.file_name().expect("name").to_owned();
            if path.is_file() && name != "REMOVE" {
                std::fs::copy(&path, etc.join(name)).expect("copy fixture");
            }
        }
    };
    copy(&fixtures().join("base"));
    let dir = fixtures().join(case);
    assert!(dir.is_dir(), "no fixture case {case}");
    copy(&dir);
    if let Ok(list) = std::fs::read_to_string(dir.join("REMOVE")) {
        for name in list.lines().filter(|l| !l.trim().is_empty()) {
            std::fs::remove_file(etc.join(name.trim())).expect("remove base file");
        }
    }
    let v = validate_dir(&etc);
    let f = v.findings();
    (v, f)
}

fn file_name(f: &Finding) -> &str {
    f.file.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

fn list(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            format!(
                "{} {}:{} {} | {} | {}",
                f.code,
                file_name(f),
                f.line,
                f.pointer,
                f.message,
                f.hint
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// No error, and exactly one W004 at `file` `pointer` on `line` whose hint names `modern`.
fn legacy<'a>(
    findings: &'a [Finding],
    file: &str,
    pointer: &str,
    line: usize,
    modern: &str,
) -> &'a Finding {
    let errors: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .cloned()
        .collect();
    assert!(errors.is_empty(), "errors:\n{}", list(&errors));
    let w: Vec<_> = findings.iter().filter(|f| f.code == "PHX-W004").collect();
    assert_eq!(w.len(), 1, "one W004 expected:\n{}", list(findings));
    let f = w[0];
    assert_eq!(
        (file_name(f), f.pointer.as_str()),
        (file, pointer),
        "{}",
        list(findings)
    );
    assert_eq!(f.line, line, "W004 on the wrong line");
    assert!(f.hint.contains(modern), "hint lacks `{modern}`: {}", f.hint);
    assert!(!f.message.ends_with('.'));
    f
}

#[test]
fn cluster_firewall_under_shared_volumes_is_applied() {
    let (v, f) = run("legacy_firewall_shared_volumes");
    legacy(&f, HYP, "/shared_volumes/firewall", 32, "`firewall`");
    let d = v.desired.expect("model");
    assert!(d.firewall.enabled);
    assert_eq!(d.firewall.policy_in, Verdict::Drop);
    assert_eq!(d.firewall.rules.len(), 3);
    assert_eq!(
        d.firewall.rules[1].loc.pointer,
        "/shared_volumes/firewall/global_firewall_rules/1"
    );
    // The other shared volume is read, not applied, and says so.
    assert!(
        f.iter().any(|x| x.code == "PHX-W002"
            && x.pointer == "/shared_volumes"
            && x.message.contains("`ssl_certs`")),
        "{}",
        list(&f)
    );
    assert!(!f.iter().any(|x| x.code == "PHX-W003"), "{}", list(&f));
}

#[test]
fn two_cluster_firewalls_never_weaken_it() {
    let (v, f) = run("legacy_firewall_both");
    let w = legacy(&f, HYP, "/shared_volumes/firewall", 40, "`firewall`");
    assert!(w.message.contains("enabled"), "{}", w.message);
    assert!(w.message.contains("default_input_policy"), "{}", w.message);
    let d = v.desired.expect("model");
    assert!(d.firewall.enabled, "the stricter switch wins");
    assert_eq!(
        d.firewall.policy_in,
        Verdict::Drop,
        "the stricter policy wins"
    );
    assert_eq!(d.firewall.rules.len(), 1, "the top-level rules apply");
    assert_eq!(
        d.firewall.rules[0].loc.pointer,
        "/firewall/global_firewall_rules/0"
    );
}

const LXC: &str = "phoenix_lxc_configs.json";
const VMS: &str = "phoenix_vm_configs.json";

#[test]
fn host_nameservers_as_one_string() {
    let (v, f) = run("legacy_nameservers_string");
    legacy(
        &f,
        HYP,
        "/network/interfaces/dns_nameservers",
        8,
        r#"["172.16.100.1","8.8.8.8"]"#,
    );
    let d = v.desired.expect("model");
    let ns: Vec<String> = d.host.nameservers.iter().map(|a| a.to_string()).collect();
    assert_eq!(ns, ["172.16.100.1", "8.8.8.8"]);
}

#[test]
fn no_domain_falls_back_to_phoenix_local() {
    let (v, f) = run("legacy_no_domain");
    let w = legacy(&f, HYP, "", 1, "\"domain_name\": \"phoenix.local\"");
    assert!(w.message.contains("phoenix.local"), "{}", w.message);
    assert_eq!(v.desired.expect("model").domain, "phoenix.local");
}

#[test]
fn vms_in_the_hypervisor_file_without_a_vm_file() {
    let (v, f) = run("legacy_vms_in_hypervisor");
    legacy(&f, HYP, "/vms", 62, "phoenix_vm_configs.json");
    assert!(
        !f.iter().any(|x| x.pointer == "/vm_defaults"),
        "vm_defaults are applied here:\n{}",
        list(&f)
    );
    let d = v.desired.expect("model");
    let vm = d
        .guest(phoenix_model::model::GuestId(1001))
        .expect("VM 1001 read from the hypervisor file");
    assert_eq!(vm.cores, Some(2), "vm_defaults.cores applied");
    assert_eq!(vm.loc.pointer, "/vms/0");
}

#[test]
fn the_vm_file_is_optional() {
    let (v, f) = run("legacy_no_vm_file");
    assert!(
        f.iter().all(|x| x.severity != Severity::Error),
        "{}",
        list(&f)
    );
    let d = v.desired.expect("model");
    assert!(
        d.guests
            .values()
            .all(|g| g.kind != phoenix_model::model::GuestKind::Vm)
    );
}

#[test]
fn lxc_features_as_a_pct_string() {
    let (v, f) = run("legacy_pct_features");
    legacy(
        &f,
        LXC,
        "/lxc_configs/104/features",
        85,
        r#""pct_options": ["nesting=1","keyctl=1"]"#,
    );
    let d = v.desired.expect("model");
    let g = d.guest(phoenix_model::model::GuestId(104)).expect("104");
    assert_eq!(g.pct_features, ["nesting=1", "keyctl=1"]);
    assert!(g.features.is_empty());
}

#[test]
fn vm_docker_stacks_as_objects() {
    let (v, f) = run("legacy_docker_stacks_objects");
    let w = legacy(
        &f,
        VMS,
        "/vms/0/docker_stacks/0",
        24,
        "\"portainer_service\"",
    );
    assert!(w.message.contains("`production`"), "{}", w.message);
    let d = v.desired.expect("model");
    let vm = d.guest(phoenix_model::model::GuestId(1001)).expect("1001");
    assert_eq!(vm.docker_stacks, ["portainer_service"]);
}

#[test]
fn guest_on_the_macvlan_vlan_sub_interface() {
    let (v, f) = run("legacy_macvlan_vlan");
    legacy(
        &f,
        LXC,
        "/lxc_configs/104/network_config/bridge",
        80,
        r#""bridge": "vmbr0", "tag": 10"#,
    );
    let d = v.desired.expect("model");
    let nic = &d
        .guest(phoenix_model::model::GuestId(104))
        .expect("104")
        .nics[0];
    assert_eq!((nic.bridge.as_str(), nic.tag), ("vmbr0", Some(10)));
    assert!(d.bridges[0].vlan_aware);
}

#[test]
fn gateway_on_a_dhcp_nic_is_a_warning() {
    let (v, f) = run("legacy_gw_on_dhcp");
    legacy(
        &f,
        LXC,
        "/lxc_configs/101/network_config/gw",
        10,
        "remove `gw`",
    );
    let d = v.desired.expect("model");
    let nic = &d
        .guest(phoenix_model::model::GuestId(101))
        .expect("101")
        .nics[0];
    assert!(nic.is_dhcp());
}
