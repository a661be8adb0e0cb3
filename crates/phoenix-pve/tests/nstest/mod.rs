//! Helpers of the namespace tests of the host network switch (`netswitch_lab`,
//! `netswitch_dnsmasq`): root check, `ip` with a checked status, a root-owned file, and the
//! switch report printed step by step.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use phoenix_exec::shell::HostFile;
use phoenix_pve::netswitch::{SwitchOutcome, SwitchReport};

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// `ip ARGS…`, which must succeed.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `content` as a root:root 0644 file.
pub fn root_file(content: &str) -> HostFile {
    HostFile {
        content: content.into(),
        owner: "root".into(),
        group: "root".into(),
        mode: 0o644,
    }
}

pub fn outcome_name(o: &SwitchOutcome) -> &'static str {
    match o {
        SwitchOutcome::Switched { .. } => "switched",
        SwitchOutcome::Unchanged => "unchanged",
        SwitchOutcome::RolledBack { .. } => "rolled back",
        SwitchOutcome::RollbackFailed { .. } => "ROLLBACK FAILED",
    }
}

/// The report on stderr: outcome, then each step with its time, argv and detail.
pub fn print_report(label: &str, r: &SwitchReport) {
    eprintln!(
        "== {label}: {:?} in {:.2}s",
        outcome_name(&r.outcome),
        r.elapsed.as_secs_f64()
    );
    for s in &r.steps {
        eprintln!(
            "  {:>6}ms +{:>5}ms {:<34} {:<5} {}{}",
            s.at.as_millis(),
            s.took.as_millis(),
            s.step,
            if s.ok { "ok" } else { "FAIL" },
            s.argv.join(" "),
            if s.detail.is_empty() {
                String::new()
            } else {
                format!(" — {}", s.detail.replace('\n', " | "))
            }
        );
    }
}

/// Delete namespace `ns` and its `/etc/netns` directory (teardown: errors ignored).
pub fn delete_netns(ns: &str) {
    let _ = Command::new("ip").args(["netns", "del", ns]).status();
    let _ = std::fs::remove_dir_all(std::path::Path::new("/etc/netns").join(ns));
}
