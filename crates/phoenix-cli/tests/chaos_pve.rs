//! Chaos on the node path (issue 17), against fakepve as an external process: a bounded series
//! of rounds on a converged examples/homelab, each a drift behind phoenix's back (a container's
//! memory changed, a guest stopped) and then one random fault while `phoenix sync all --target
//! pve` repairs it — the node frozen (SIGSTOP) at a random moment, `sync` itself SIGKILLed
//! mid-run, an HTTP 5xx on the repairing write, or the guest's config lock held by another
//! task. The faulted run must end on its own and, when it reached the apply, leave a journal
//! with an entry for every planned action. After the fault is gone ONE sync converges and the
//! next writes nothing. `PHOENIX_CHAOS_ROUNDS` (default 8) and `PHOENIX_CHAOS_SEED` as in
//! `chaos_lab`; the seed is printed first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../phoenix-pve/tests/common/mod.rs"]
mod common;
mod pve_support;
#[path = "common/rng.rs"]
mod rng;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{FakePve, fakepve_available};
use pve_support::*;
use rng::Rng;
use serde_json::json;

/// What is changed behind phoenix's back.
#[derive(Debug, Clone, Copy)]
enum Drift {
    /// A container's memory (MiB).
    Memory(u64, u64),
    /// A guest stopped: `(kind, id)`.
    Stopped(&'static str, u64),
}

impl Drift {
    fn guest(self) -> u64 {
        match self {
            Drift::Memory(id, _) | Drift::Stopped(_, id) => id,
        }
    }

    /// The write that repairs it: `(method, path suffix)`.
    fn repair(self) -> (&'static str, String) {
        match self {
            Drift::Memory(id, _) => ("PUT", format!("/lxc/{id}/config")),
            Drift::Stopped(kind, id) => ("POST", format!("/{kind}/{id}/status/start")),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The node frozen this many ms after `sync` started.
    Freeze(u64),
    /// `sync` SIGKILLed after this many ms.
    KillSync(u64),
    /// The repairing write answered with this status once (503 is retried, 500/502 not).
    Http(u16),
    /// The drifted guest's config lock held by another task.
    LockHeld,
}

fn draw(rng: &mut Rng) -> (Drift, Fault) {
    let drift = match rng.below(3) {
        0 | 1 => Drift::Memory(
            [101, 102, 103][rng.below(3)],
            [1536, 3072, 768][rng.below(3)],
        ),
        _ => [
            Drift::Stopped("lxc", 101),
            Drift::Stopped("lxc", 103),
            Drift::Stopped("qemu", 1002),
        ][rng.below(3)],
    };
    let fault = match rng.below(4) {
        0 => Fault::Freeze(rng.below(1500) as u64),
        1 => Fault::KillSync(10 + rng.below(1500) as u64),
        2 => Fault::Http([500, 502, 503][rng.below(3)]),
        _ => Fault::LockHeld,
    };
    (drift, fault)
}

fn apply_drift(pve: &FakePve, d: Drift) {
    match d {
        Drift::Memory(id, mb) => put_config(pve, "lxc", id, &[("memory", &mb.to_string())]),
        Drift::Stopped(kind, id) => {
            let client = pve.client(phoenix_pve::TlsTrust::CaFile(pve.pki.ca_pem.clone()));
            client
                .write_and_wait(
                    reqwest::Method::POST,
                    &format!("/nodes/pve1/{kind}/{id}/status/stop"),
                    &Default::default(),
                )
                .expect("stop");
        }
    }
}

/// `sync all` with short deadlines (a frozen node must end the run in seconds), spawned.
fn spawn_sync(pve: &FakePve, root: &std::path::Path) -> Child {
    let mut c = node_cmd(pve, root, &homelab_dir(), &SYNC_ARGS);
    c.args(["--request-timeout", "1", "--task-deadline", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c.spawn().unwrap()
}

/// Wait for `child` at most `limit`; the exit code and its output.
fn finish(mut child: Child, limit: Duration) -> (Option<i32>, String, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (
                status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sync did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A faulted run's report: ended, and when it applied anything, every planned action has a
/// journal entry. Returns a line for the log.
fn check_faulted(code: Option<i32>, stdout: &str, stderr: &str) -> String {
    let Some(code) = code else {
        return "killed".into();
    };
    assert!(
        [0, 1, 3, 4].contains(&code),
        "exit {code} is not in the contract: {stderr}"
    );
    if code != 0 {
        assert!(!stderr.trim().is_empty(), "a failed run says why");
    }
    match serde_json::from_str::<serde_json::Value>(stdout) {
        Ok(r) if r.get("journal").is_some_and(|j| !j.is_null()) => {
            assert_journal_complete(&r);
            format!("exit {code}, journal complete")
        }
        _ => format!(
            "exit {code}: {}",
            stderr.lines().find(|l| l.contains("error")).unwrap_or("")
        ),
    }
}

fn converge(pve: &FakePve, root: &std::path::Path, round: usize) {
    let (code, r, stderr) = sync(pve, root);
    assert_eq!(code, 0, "round {round}: the repairing sync: {stderr}");
    assert_journal_complete(&r);
    let (code, r, stderr) = sync(pve, root);
    assert_eq!(code, 0, "round {round}: {stderr}");
    assert!(
        guest_actions(&r).is_empty(),
        "round {round}: converged after one sync: {:#?}",
        guest_actions(&r)
    );
    assert_eq!(
        r["requests"]["total"]["writes"], 0,
        "round {round}: the run after the repair writes nothing"
    );
}

#[test]
fn chaos_rounds_on_a_node_each_repaired_by_one_sync() {
    if !fakepve_available() {
        return;
    }
    let (seed, rounds) = Rng::from_env(8);
    eprintln!("chaos seed {seed}, {rounds} rounds (PHOENIX_CHAOS_SEED={seed} replays)");
    let mut rng = Rng(seed);
    let (pve, root) = converged();
    // Lock waits in seconds, not PVE's 10 s per attempt.
    pve.control(&json!({"op": "lock_wait", "value": 0.2}));

    for round in 1..=rounds {
        let (drift, fault) = draw(&mut rng);
        apply_drift(&pve, drift);
        let started = Instant::now();
        // Real time and every answer 30 ms late: a run spans a second or two, so a fault drawn in that
        // time lands in observe, plan or apply.
        pve.control(&json!({"op": "time_scale", "value": 1.0}));
        pve.control(&json!({"op": "slow", "latency": 0.03}));
        let said = match fault {
            Fault::Freeze(ms) => {
                let child = spawn_sync(&pve, root.path());
                std::thread::sleep(Duration::from_millis(ms));
                pve.freeze(true);
                let out = finish(child, Duration::from_secs(120));
                pve.freeze(false);
                check_faulted(out.0, &out.1, &out.2)
            }
            Fault::KillSync(ms) => {
                let mut child = spawn_sync(&pve, root.path());
                std::thread::sleep(Duration::from_millis(ms));
                let _ = child.kill();
                let out = finish(child, Duration::from_secs(30));
                check_faulted(out.0, &out.1, &out.2)
            }
            Fault::Http(status) => {
                let (method, suffix) = drift.repair();
                pve.control(&json!({"op": "fail", "method": method, "suffix": suffix,
                    "status": status, "message": "chaos", "times": 1}));
                let out = finish(spawn_sync(&pve, root.path()), Duration::from_secs(60));
                // 503 says nothing was done: retried. A 500 or a proxy's 502 on a write may
                // have acted: never resent, the run fails naming the guest.
                let (want, retried) = if status == 503 { (0, 1) } else { (3, 0) };
                assert_eq!(
                    out.0,
                    Some(want),
                    "round {round}: {drift:?}, {method} {suffix} answered {status}: {}",
                    out.2
                );
                let r: serde_json::Value = serde_json::from_str(&out.1).unwrap();
                assert_eq!(r["requests"]["total"]["retries"], retried, "{status}");
                if want == 3 {
                    let failed = failed_entries(&r);
                    assert_eq!(failed.len(), 1, "{failed:#?}");
                    assert_eq!(failed[0]["action"]["id"], drift.guest(), "{failed:#?}");
                    let detail = failed[0]["detail"].as_str().unwrap();
                    assert!(detail.contains(&suffix), "{detail}");
                }
                check_faulted(out.0, &out.1, &out.2)
            }
            Fault::LockHeld => {
                pve.control(&json!({"op": "hold_lock", "vmid": drift.guest(), "secs": null}));
                let out = finish(spawn_sync(&pve, root.path()), Duration::from_secs(120));
                pve.control(&json!({"op": "release_lock", "vmid": drift.guest()}));
                assert_eq!(out.0, Some(3), "round {round}: {}", out.2);
                check_faulted(out.0, &out.1, &out.2)
            }
        };
        pve.control(&json!({"op": "clear_failures"}));
        pve.control(&json!({"op": "slow", "latency": 0.0}));
        pve.control(&json!({"op": "time_scale", "value": 0.0}));
        eprintln!(
            "round {round}: {drift:?} + {fault:?} → {said} ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        converge(&pve, root.path(), round);
    }
}
