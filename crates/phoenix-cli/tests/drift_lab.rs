//! Drift the lab used not to see (issue 17), each on the same running `examples/homelab` lab:
//! a guest's default route deleted, a guest's addresses flushed, a guest's `resolv.conf`
//! edited, nginx's master SIGKILLed with its worker left holding 80/443 (and a guest's
//! firewall table flushed: a dry run names it, the sync reloads it and says so). For each: `verify`
//! fails while it is there, a dry run shows it as a lab upkeep note and changes nothing, ONE
//! `sync all --target lab --provision` repairs it and says so, and `verify` passes in full.
//! Root only (a note and return without, unless `CI`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use common::*;
use phoenix_lab::LabGuard;

/// `sync all --dry-run --output json` on the lab: its document.
fn dry_run(prefix: &str) -> serde_json::Value {
    let o = phoenix(&[
        "sync",
        "all",
        "--target",
        "lab",
        "--provision",
        "--dry-run",
        "--output",
        "json",
        "--config",
        CONFIG,
        "--prefix",
        prefix,
    ]);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("json ({e}): {}", text(&o.stderr)))
}

/// `verify` fails, and one of its failures contains `want`.
fn verify_fails_with(prefix: &str, want: &str) {
    let (code, report) = lab_verify(prefix, CONFIG);
    let failed = failed_results(&report);
    assert_eq!(code, Some(1), "verify passed with the fault: {failed:#?}");
    assert!(
        failed.iter().any(|l| l.contains(want)),
        "no failure with {want:?}: {failed:#?}"
    );
}

/// The upkeep note of a dry run names `what`; the real run repairs it, says so, and verifies.
fn one_sync_repairs(prefix: &str, what: &str) {
    let v = dry_run(prefix);
    assert!(
        plan_notes(&v)
            .iter()
            .any(|n| n.starts_with("lab upkeep before the plan's actions") && n.contains(what)),
        "dry run: {:?}",
        plan_notes(&v)
    );
    let (code, v) = lab_sync(prefix, CONFIG);
    assert_eq!(code, Some(0), "sync: {:#?}", failed_results(&v["verify"]));
    assert!(
        notes(&v).iter().any(|n| n.contains(what)),
        "the repair is not said: {:?}",
        notes(&v)
    );
    let (code, report) = lab_verify(prefix, CONFIG);
    assert_eq!(code, Some(0), "{:#?}", failed_results(&report));
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn drift_each_repaired_by_one_sync() {
    if !root_or_skip("drift_lab") {
        return;
    }
    let prefix = unique_prefix('d');
    let guard = LabGuard::new(&prefix);
    let (code, v) = lab_sync(&prefix, CONFIG);
    assert_eq!(code, Some(0), "lab up: {:#?}", failed_results(&v["verify"]));
    let g101 = format!("{prefix}-g101");
    let g102 = format!("{prefix}-g102");
    let g103 = format!("{prefix}-g103");

    // The default route of a guest with a static address.
    run_ok("ip", &["-n", &g102, "route", "del", "default"]);
    verify_fails_with(&prefix, "no route default via 172.16.100.1");
    one_sync_repairs(
        &prefix,
        &format!("{g102}: no route default via 172.16.100.1"),
    );

    // Every address of a guest's only NIC (its routes go with them).
    run_ok("ip", &["-n", &g103, "addr", "flush", "dev", "eth0"]);
    verify_fails_with(&prefix, "eth0 lacks 172.16.100.11/24");
    one_sync_repairs(&prefix, &format!("{g103}: eth0 lacks 172.16.100.11/24"));

    // The gateway's resolv.conf (what `ip netns exec` bind-mounts as /etc/resolv.conf).
    let resolv = format!("/etc/netns/{g101}/resolv.conf");
    let good = std::fs::read_to_string(&resolv).unwrap();
    std::fs::write(&resolv, "nameserver 192.0.2.53\n").unwrap();
    verify_fails_with(&prefix, &format!("lab/net/{g101}: {g101}: {resolv}"));
    one_sync_repairs(&prefix, &format!("{g101}: {resolv} is not the lab's"));
    assert_eq!(std::fs::read_to_string(&resolv).unwrap(), good);

    // nginx's master SIGKILLed: its worker, reparented, keeps 80 and 443.
    let master = pid_of(&prefix, "nginx-gw");
    let workers = children(master);
    assert!(!workers.is_empty(), "nginx master {master} has no worker");
    kill9(master);
    let (code, v) = lab_sync(&prefix, CONFIG);
    assert_eq!(code, Some(0), "sync: {:#?}", failed_results(&v["verify"]));
    assert!(
        done(&v).iter().any(|(_, a)| a["guest"] == 101
            && a["step"]["kind"]["kind"] == "service"
            && a["step"]["kind"]["name"] == "nginx"),
        "nginx's start is not in the journal: {:?}",
        done(&v)
    );
    let new_master = pid_of(&prefix, "nginx-gw");
    assert_ne!(new_master, master);
    let mut own = vec![new_master];
    own.extend(children(new_master));
    let mut inside = phoenix_lab::teardown::pids_in(std::slice::from_ref(&g101));
    inside.sort_unstable();
    own.sort_unstable();
    assert_eq!(
        inside, own,
        "only the new nginx runs in {g101} (old workers {workers:?})"
    );
    let (code, report) = lab_verify(&prefix, CONFIG);
    assert_eq!(code, Some(0), "{:#?}", failed_results(&report));

    // A guest's firewall table flushed: its fingerprint comment stays, its rules go, and a
    // pair the policy denies connects.
    run_ok(
        "ip",
        &[
            "netns",
            "exec",
            &g102,
            "nft",
            "flush",
            "table",
            "inet",
            "phoenix_fw",
        ],
    );
    verify_fails_with(
        &prefix,
        "fw/guest:103/172.16.100.12:443: expected denied, connected",
    );
    // A dry run already says which table the sync will load, and why.
    let v = dry_run(&prefix);
    assert!(
        plan_notes(&v).iter().any(|n| n
            .starts_with("guest firewall tables to load after the plan's actions")
            && n.contains(&format!(
                "{g102}: its rules differ from the ones loaded (flushed or edited)"
            ))),
        "dry run: {:?}",
        plan_notes(&v)
    );
    let (code, v) = lab_sync(&prefix, CONFIG);
    assert_eq!(code, Some(0), "sync: {:#?}", failed_results(&v["verify"]));
    assert!(
        notes(&v).iter().any(|n| n.contains(&format!(
            "the firewall table of {g102} loaded: its rules differ from the ones loaded"
        ))),
        "the reload is not said: {:?}",
        notes(&v)
    );
    let (code, report) = lab_verify(&prefix, CONFIG);
    assert_eq!(code, Some(0), "{:#?}", failed_results(&report));

    lab_down(&prefix);
    drop(guard);
    assert_gone(&prefix);
}
