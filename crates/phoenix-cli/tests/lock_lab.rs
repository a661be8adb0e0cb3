//! One run at a time on a lab, teardown by identity, no secret in a lab process (issue 17).
//! Two `sync all --target lab --provision` on one prefix: the second exits 4 naming the
//! holder, a third waits (`--lock-timeout`) and then converges, the lab verifies; a stale lock
//! of a dead pid is taken over, said so; no lab process has a secret of phoenix's environment
//! in `/proc/PID/environ` or `/proc/PID/cmdline`; `lab down` leaves an unrelated process whose
//! command line names the state dir alone, and kills a recorded one a dead run left behind.
//! Root only; every wait bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use phoenix_lab::LabGuard;

const SECRETS: [(&str, &str); 3] = [
    ("PORTAINER_ADMIN_PASSWORD", "lock-test-admin-5301"),
    ("PROXMOX_VE_API_TOKEN", "root@pam!t=lock-test-token-5302"),
    ("PHOENIX_PASSPHRASE", "lock-test-passphrase-5303"),
];

fn sync(prefix: &str, lock_timeout: &str) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phoenix"));
    c.args(["sync", "all", "--target", "lab", "--config", CONFIG])
        .args([
            "--prefix",
            prefix,
            "--provision",
            "--lock-timeout",
            lock_timeout,
        ])
        .env_remove("PHOENIX_CONFIG")
        .env_remove("PHOENIX_LAB_PREFIX")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in SECRETS {
        c.env(k, v);
    }
    c.spawn().expect("phoenix runs")
}

fn lock_path(prefix: &str) -> String {
    format!("{}/{prefix}.lock", phoenix_lab::STATE_ROOT)
}

fn holder_pid(prefix: &str) -> Option<u32> {
    let t = std::fs::read_to_string(lock_path(prefix)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&t).ok()?;
    v["pid"].as_u64().map(|p| p as u32)
}

/// A pid that existed a moment ago and is gone now.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Every process inside the lab's namespaces and their descendants.
fn lab_processes(prefix: &str) -> Vec<u32> {
    let inside = phoenix_lab::teardown::pids_in(&phoenix_lab::teardown::namespaces(prefix));
    let mut all = inside.clone();
    let procs: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| {
            let s = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            Some((
                p,
                s.rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()?,
            ))
        })
        .collect();
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        for (p, _) in procs.iter().filter(|(_, pp)| *pp == parent) {
            if !all.contains(p) {
                all.push(*p);
            }
        }
        i += 1;
    }
    all
}

#[test]
fn one_sync_at_a_time_a_stale_lock_is_taken_over_and_no_secret_reaches_a_daemon() {
    if !root_or_skip("lock_lab") {
        return;
    }
    let prefix = unique_prefix('k');
    let _guard = LabGuard::new(&prefix);
    // A lock left by a run that died.
    let stale = dead_pid();
    std::fs::create_dir_all(phoenix_lab::STATE_ROOT).unwrap();
    std::fs::write(
        lock_path(&prefix),
        serde_json::json!({"pid": stale, "host": std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(),
            "start_time": 1, "since": 0, "command": "sync all --target lab"})
        .to_string(),
    )
    .unwrap();
    let first = sync(&prefix, "0");
    let start = Instant::now();
    while holder_pid(&prefix) != Some(first.id()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "first run never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A second run refuses at once, naming the holder.
    let second = sync(&prefix, "0").wait_with_output().unwrap();
    let said = text(&second.stderr);
    assert_eq!(second.status.code(), Some(4), "{said}");
    assert!(said.contains(&format!("pid {}", first.id())), "{said}");
    // A third waits for it, then converges the same lab.
    let third = sync(&prefix, "900");
    let first = first.wait_with_output().unwrap();
    let first_err = text(&first.stderr);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{first_err}\n{}",
        text(&first.stdout)
    );
    assert!(
        first_err.contains(&format!("took over the lock of pid {stale}")),
        "{first_err}"
    );
    let third = third.wait_with_output().unwrap();
    let third_err = text(&third.stderr);
    assert_eq!(
        third.status.code(),
        Some(0),
        "{third_err}\n{}",
        text(&third.stdout)
    );
    assert!(third_err.contains("is locked by pid"), "{third_err}");
    assert!(
        !std::path::Path::new(&lock_path(&prefix)).exists(),
        "lock released"
    );

    // The lab verifies afterwards.
    let v = phoenix(&[
        "verify", "--target", "lab", "--config", CONFIG, "--prefix", &prefix,
    ]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v.stdout));

    // No secret of phoenix's environment in any lab process.
    let procs = lab_processes(&prefix);
    assert!(procs.len() > 5, "lab processes: {procs:?}");
    for pid in procs {
        for what in ["environ", "cmdline"] {
            let Ok(bytes) = std::fs::read(format!("/proc/{pid}/{what}")) else {
                continue; // exited meanwhile
            };
            let t = String::from_utf8_lossy(&bytes);
            for (k, v) in SECRETS {
                assert!(!t.contains(v), "{k}'s value in /proc/{pid}/{what}");
            }
        }
    }

    // `lab down` leaves an operator's process alone although it names the state dir.
    let state = phoenix_lab::state_dir(&prefix);
    let mut bystander = Command::new("sleep")
        .args(["300", &state.join("node").to_string_lossy()])
        .spawn()
        .unwrap();
    let down = phoenix(&["lab", "down", "--prefix", &prefix]);
    assert_eq!(down.status.code(), Some(0), "{}", text(&down.stderr));
    assert!(
        alive(bystander.id()),
        "lab down killed an unrelated process"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    assert_gone(&prefix);
}

#[test]
fn lab_down_kills_what_a_dead_run_left_behind_by_identity() {
    if !root_or_skip("lock_lab straggler") {
        return;
    }
    let prefix = unique_prefix('q');
    let _guard = LabGuard::new(&prefix);
    let mut straggler = Command::new("sleep").arg("300").spawn().unwrap();
    let pid = straggler.id();
    let start = phoenix_exec::lock::start_time(pid).unwrap();
    let reaper = std::thread::spawn(move || straggler.wait());
    std::fs::create_dir_all(phoenix_lab::STATE_ROOT).unwrap();
    let record = phoenix_lab::procs::record_path(&prefix);
    // Recorded by a phoenix that is gone.
    std::fs::write(&record, format!("{pid} {start} {} 1\n", dead_pid())).unwrap();
    let down = phoenix(&["lab", "down", "--prefix", &prefix]);
    assert_eq!(down.status.code(), Some(0), "{}", text(&down.stderr));
    let t = Instant::now();
    while !reaper.is_finished() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the straggler survived lab down"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!record.exists(), "records removed with the lab");
}
