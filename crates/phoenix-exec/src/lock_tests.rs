#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::time::Duration;

use super::*;
use crate::shell::LocalShell;

fn req(wait: Duration) -> LockRequest<'static> {
    LockRequest {
        path: "/run/phoenix.lock",
        what: "node test",
        command: "sync all --target pve",
        wait,
    }
}

fn plant(root: &std::path::Path, h: &Holder) {
    let dir = root.join("run");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("phoenix.lock"), serde_json::to_string(h).unwrap()).unwrap();
}

/// A pid that was alive a moment ago and is gone now.
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[test]
fn a_second_run_is_told_who_holds_it_and_the_lock_goes_on_drop() {
    let root = tempfile::tempdir().unwrap();
    let shell = LocalShell::new(root.path());
    let g = acquire(&shell, &req(Duration::ZERO), &mut |_| {}).unwrap();
    assert!(g.took_over.is_none());
    let text = std::fs::read_to_string(root.path().join("run/phoenix.lock")).unwrap();
    let h: Holder = serde_json::from_str(&text).unwrap();
    assert_eq!(h.pid, std::process::id());
    assert_eq!(Some(h.start_time), start_time(std::process::id()));
    match acquire(&shell, &req(Duration::ZERO), &mut |_| {}) {
        Err(LockError::Held { holder, .. }) => {
            assert_eq!(holder.pid, std::process::id());
            let said = LockError::Held {
                what: "node test".into(),
                path: "/run/phoenix.lock".into(),
                holder,
            }
            .to_string();
            assert!(
                said.contains(&format!("pid {}", std::process::id())),
                "{said}"
            );
        }
        other => panic!("expected Held, got {other:?}"),
    }
    drop(g);
    assert!(!root.path().join("run/phoenix.lock").exists());
    acquire(&shell, &req(Duration::ZERO), &mut |_| {}).unwrap();
}

#[test]
fn a_dead_holder_is_taken_over_and_said() {
    let root = tempfile::tempdir().unwrap();
    let shell = LocalShell::new(root.path());
    let mut stale = Holder::current("sync all");
    stale.pid = dead_pid();
    plant(root.path(), &stale);
    let g = acquire(&shell, &req(Duration::ZERO), &mut |_| {}).unwrap();
    assert_eq!(g.took_over.as_ref().map(|h| h.pid), Some(stale.pid));
}

#[test]
fn a_reused_pid_with_another_start_time_is_stale() {
    let root = tempfile::tempdir().unwrap();
    let shell = LocalShell::new(root.path());
    let mut stale = Holder::current("sync all");
    stale.start_time += 1;
    plant(root.path(), &stale);
    let g = acquire(&shell, &req(Duration::ZERO), &mut |_| {}).unwrap();
    assert!(g.took_over.is_some());
}

#[test]
fn a_holder_on_another_host_is_never_stale() {
    let root = tempfile::tempdir().unwrap();
    let shell = LocalShell::new(root.path());
    let mut other = Holder::current("sync all");
    other.pid = dead_pid();
    other.host = "elsewhere.invalid".into();
    plant(root.path(), &other);
    assert!(matches!(
        acquire(&shell, &req(Duration::ZERO), &mut |_| {}),
        Err(LockError::Held { .. })
    ));
}

#[test]
fn a_waiting_run_gets_it_when_the_holder_lets_go() {
    let root = tempfile::tempdir().unwrap();
    let shell = LocalShell::new(root.path());
    let g = acquire(&shell, &req(Duration::ZERO), &mut |_| {}).unwrap();
    std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(g);
        });
        let mut told = 0;
        let g2 = acquire(&shell, &req(Duration::from_secs(30)), &mut |_| told += 1).unwrap();
        assert_eq!(told, 1);
        assert!(g2.waited_for.is_some());
    });
}

#[test]
fn drop_leaves_a_lock_that_is_no_longer_its_own() {
    let root = tempfile::tempdir().unwrap();
    let shell = LocalShell::new(root.path());
    let g = acquire(&shell, &req(Duration::ZERO), &mut |_| {}).unwrap();
    let mut other = Holder::current("lab up");
    other.host = "elsewhere.invalid".into();
    plant(root.path(), &other);
    drop(g);
    assert!(root.path().join("run/phoenix.lock").exists());
}
