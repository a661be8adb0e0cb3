//! The lock a changing command takes on its target (`phoenix_exec::lock`): the lab's
//! (`/run/phoenix-lab/<prefix>.lock` on this machine) or the node's (`/run/phoenix.lock`
//! through the node's host shell). Says who holds it, waits up to `--lock-timeout`, exits 4
//! when it is still held; says when a dead holder's lock was taken over. Read-only commands
//! (`plan`, `status`, `verify`) take no lock; `sync confirm` neither: it is how the operator
//! answers the run holding the node's lock.

use std::io::Write;
use std::sync::LazyLock;
use std::time::Duration;

use phoenix_exec::lock::{Holder, LockError, LockGuard, LockRequest, NODE_LOCK, acquire};
use phoenix_exec::{HostShell, LocalShell};

use crate::exit;

/// This machine's file system, where the labs' locks live.
static LOCAL: LazyLock<LocalShell> = LazyLock::new(|| LocalShell::new("/"));

/// The lock file of lab `prefix` (next to its state dir, so `lab down` leaves it alone).
pub fn lab_lock_path(prefix: &str) -> String {
    format!("{}/{prefix}.lock", phoenix_lab::STATE_ROOT)
}

/// Take lab `prefix`'s lock for `command`, or the exit code (4 when held, 1 on an I/O error).
pub fn lab(prefix: &str, command: &str, timeout: u64) -> Result<LockGuard<'static>, u8> {
    let path = lab_lock_path(prefix);
    take(&*LOCAL, &path, &format!("lab {prefix}"), command, timeout)
}

/// Take the node's lock (through its host shell) for `command`.
pub fn node<'a>(
    shell: &'a dyn HostShell,
    node: &str,
    command: &str,
    timeout: u64,
) -> Result<LockGuard<'a>, u8> {
    take(shell, NODE_LOCK, &format!("node {node}"), command, timeout)
}

fn take<'a>(
    shell: &'a dyn HostShell,
    path: &str,
    what: &str,
    command: &str,
    timeout: u64,
) -> Result<LockGuard<'a>, u8> {
    let req = LockRequest {
        path,
        what,
        command,
        wait: Duration::from_secs(timeout),
    };
    let mut stderr = anstream::stderr();
    let said = |h: &Holder| {
        let _ = writeln!(
            anstream::stderr(),
            "{what} is locked by {h}; waiting up to {timeout} s (--lock-timeout)"
        );
    };
    match acquire(shell, &req, &mut { said }) {
        Ok(g) => {
            if let Some(h) = &g.took_over {
                let _ = writeln!(
                    stderr,
                    "note: {what}: took over the lock of {h}, which is no longer running"
                );
            }
            Ok(g)
        }
        Err(e @ LockError::Held { .. }) => {
            crate::failure::error(
                &e.to_string(),
                &format!(
                    "another phoenix run is changing {what}; wait for it, or pass --lock-timeout SECONDS to wait (a holder that died is taken over by the next run)"
                ),
            );
            Err(exit::LOCKED)
        }
        Err(e) => {
            crate::failure::error(
                &e.to_string(),
                &format!("the lock lives at {path}; check that it can be written"),
            );
            Err(exit::FAILED)
        }
    }
}
