//! Host network and DNS renderers: golden files for the upstream fixture, and the rendered
//! text read by the real tools (`nft -c -f` in a private network namespace, `dnsmasq --test`).

use std::path::PathBuf;
use std::process::Command;

use phoenix_model::model::DesiredState;
use phoenix_render::{dnsmasq, hostnet};

fn desired(dir: PathBuf) -> DesiredState {
    let v = phoenix_model::validate_dir(&dir);
    v.desired
        .unwrap_or_else(|| panic!("{} did not build", dir.display()))
}

fn homelab() -> DesiredState {
    desired(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab"))
}

fn rootesting() -> DesiredState {
    desired(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/upstream/rootesting-2025-11-25/etc"),
    )
}

/// A tool a test needs: in CI its absence is a failure; elsewhere the test says so and passes.
fn tool(name: &str) -> Option<PathBuf> {
    let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is required in CI (scripts/setup.sh installs it)"
        );
        eprintln!("note: {name} not installed; skipping the real-tool check");
    }
    found
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

#[test]
fn interfaces_golden() {
    insta::assert_snapshot!(
        "rootesting_interfaces",
        hostnet::interfaces(&rootesting()).content
    );
}

#[test]
fn nat_ruleset_golden_and_accepted_by_nft() {
    let f = hostnet::nat_ruleset(&rootesting());
    insta::assert_snapshot!("rootesting_nat_nft", f.content);
    let Some(nft) = tool("nft") else { return };
    if !is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("nat.nft");
    std::fs::write(&path, &f.content).unwrap_or_else(|e| panic!("{e}"));
    // Check mode in a private network namespace: nothing of the machine's ruleset is touched.
    let out = Command::new("unshare")
        .args(["--net", "--"])
        .arg(&nft)
        .args(["-c", "-f"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("unshare: {e}"));
    assert!(
        out.status.success(),
        "nft -c rejected the ruleset: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn nat_ruleset_masquerades_the_mesh_out_of_the_uplink() {
    let text = hostnet::nat_ruleset(&rootesting()).content;
    assert!(text.contains("ip saddr 172.16.100.0/24 oifname \"vmbr0\" masquerade"));
    assert!(
        text.contains("iifname \"vmbr0\" oifname \"vmbr100\" ct state established,related accept")
    );
    assert!(text.contains("iifname \"vmbr0\" oifname \"vmbr100\" counter drop"));
}

#[test]
fn interfaces_post_up_pairs_are_idempotent() {
    let text = hostnet::interfaces(&rootesting()).content;
    let ups = text
        .lines()
        .filter(|l| l.trim_start().starts_with("post-up   iptables"))
        .count();
    let downs = text
        .lines()
        .filter(|l| l.trim_start().starts_with("post-down iptables"))
        .count();
    assert!(ups >= 3);
    assert_eq!(ups, downs, "every post-up rule has its post-down");
    for l in text.lines().filter(|l| l.contains("post-up   iptables")) {
        assert!(
            l.contains(" -C ") && l.contains("|| iptables"),
            "not idempotent: {l}"
        );
    }
    assert!(text.contains("bridge-vlan-aware yes"));
    assert!(text.contains("bridge-vids 2-4094"));
    assert!(
        text.contains("iface vmbr100 inet static\n\taddress 172.16.100.1/24\n\tbridge-ports none")
    );
}

#[test]
fn dnsmasq_golden_and_accepted_by_dnsmasq() {
    let f = dnsmasq::config(&rootesting());
    insta::assert_snapshot!("rootesting_dnsmasq", f.content);
    let Some(bin) = tool("dnsmasq") else { return };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("phoenix.conf");
    std::fs::write(&path, &f.content).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(bin)
        .arg("--test")
        .arg(format!("--conf-file={}", path.display()))
        .output()
        .unwrap_or_else(|e| panic!("dnsmasq: {e}"));
    assert!(
        out.status.success(),
        "dnsmasq --test: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dns_records_are_by_role() {
    let d = rootesting();
    let r = dnsmasq::records(&d);
    let addr = |n: &str| r.get(n).map(|(a, _)| a.to_string());
    // Infrastructure names point at the guests themselves, on the mesh.
    assert_eq!(
        addr("ca.internal.thinkheads.ai").as_deref(),
        Some("172.16.100.11")
    );
    assert_eq!(
        addr("traefik.internal.thinkheads.ai").as_deref(),
        Some("172.16.100.12")
    );
    assert_eq!(
        addr("nginx.internal.thinkheads.ai").as_deref(),
        Some("172.16.100.10")
    );
    // Services routed through the proxy resolve to the proxy's mesh address.
    assert_eq!(
        addr("portainer.internal.thinkheads.ai").as_deref(),
        Some("172.16.100.12")
    );
    // Swarm nodes resolve to their node address.
    assert_eq!(
        addr("drphoenix.internal.thinkheads.ai").as_deref(),
        Some("10.0.0.102")
    );
    // Every configured service name resolves.
    for g in d.guests.values().filter(|g| !g.is_template) {
        if let Some(ts) = &g.traefik_service {
            assert!(
                r.contains_key(&format!("{}.{}", ts.name, d.domain)),
                "{} has no record",
                ts.name
            );
        }
    }
}

#[test]
fn homelab_host_files_golden() {
    insta::assert_snapshot!(
        "homelab_interfaces",
        hostnet::interfaces(&homelab()).content
    );
    insta::assert_snapshot!("homelab_sysctl", hostnet::sysctl(&homelab()).content);
}

/// `nft -c -f FILE` in a private network namespace; `None` when the check cannot run here.
fn nft_check(content: &str) -> Option<std::process::Output> {
    let nft = tool("nft")?;
    if !is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        return None;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("rules.nft");
    std::fs::write(&path, content).unwrap_or_else(|e| panic!("{e}"));
    Some(
        Command::new("unshare")
            .args(["--net", "--"])
            .arg(&nft)
            .args(["-c", "-f"])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("unshare: {e}")),
    )
}

#[test]
fn homelab_nat_golden_and_accepted_by_nft() {
    let f = hostnet::nat_ruleset(&homelab());
    insta::assert_snapshot!("homelab_nat_nft", f.content);
    if let Some(out) = nft_check(&f.content) {
        assert!(
            out.status.success(),
            "nft -c: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The check is real: a broken ruleset is refused.
    if let Some(out) = nft_check("table ip t { chain c { ip saddr 300.1.1.1 drop; } }\n") {
        assert!(!out.status.success(), "nft accepted an invalid address");
    }
}

#[test]
fn homelab_dnsmasq_golden_and_accepted_by_dnsmasq() {
    let f = dnsmasq::config(&homelab());
    insta::assert_snapshot!("homelab_dnsmasq", f.content);
    let Some(bin) = tool("dnsmasq") else { return };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cases = [
        ("good.conf", f.content.as_str(), true),
        ("bad.conf", "no-such-option\n", false),
    ];
    for (name, text, ok) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let out = Command::new(&bin)
            .arg("--test")
            .arg(format!("--conf-file={}", path.display()))
            .output()
            .unwrap_or_else(|e| panic!("dnsmasq: {e}"));
        assert_eq!(
            out.status.success(),
            ok,
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
