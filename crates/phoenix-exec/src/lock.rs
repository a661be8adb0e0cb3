//! One run at a time per target: a lock file created exclusively through the target's host
//! shell (`/run/phoenix.lock` on a node, `/run/phoenix-lab/<prefix>.lock` for a lab), holding
//! who holds it — pid, host, the pid's start time (`/proc/PID/stat` field 22), the boot and
//! the command. A second run is told who holds it and waits up to its timeout, else gives up
//! ([`LockError::Held`], exit 4 in the CLI). A lock whose holder is dead — on this host and
//! boot, the pid gone or now another process (another start time) — is taken over, and the
//! guard says so ([`LockGuard::took_over`]). Released (removed, if still ours) on drop.
//!
//! Why a file and not `flock`: the node is reached through [`HostShell`] (possibly OpenSSH),
//! where no descriptor can be held; the same code serves both targets. The take-over re-reads
//! the stale holder just before removing it, so two runs taking over the same stale lock can
//! only race in that instant; the exclusive create after it decides who wins.
//! I/O: the host shell, `/proc`, `/etc/hostname`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::shell::{HostShell, ShellError};

/// Where the lock of a node lives (under the host shell's root).
pub const NODE_LOCK: &str = "/run/phoenix.lock";

/// How often a waiting run looks again.
const POLL: Duration = Duration::from_millis(200);

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// `/proc/PID/stat` field 22: clock ticks after boot when the process started.
    pub start_time: u64,
    /// `/proc/sys/kernel/random/boot_id` of the holder's host.
    #[serde(default)]
    pub boot_id: String,
    /// Seconds since the epoch when the lock was taken.
    pub since: u64,
    /// What the holder runs (`sync all --target lab`).
    pub command: String,
}

impl Holder {
    /// This process, running `command`.
    pub fn current(command: &str) -> Holder {
        let pid = std::process::id();
        Holder {
            pid,
            host: hostname(),
            start_time: start_time(pid).unwrap_or(0),
            boot_id: boot_id(),
            since: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            command: command.to_string(),
        }
    }

    /// Is the holder known to be gone? Only decidable on its own host and boot: there, the
    /// pid gone or carrying another start time. A holder on another host is never stale.
    pub fn is_dead(&self) -> bool {
        if self.host != hostname() {
            return false;
        }
        if !self.boot_id.is_empty() && self.boot_id != boot_id() {
            // Another boot of this host: every process of the old one is gone.
            return true;
        }
        start_time(self.pid) != Some(self.start_time)
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let age = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .saturating_sub(self.since);
        write!(
            f,
            "pid {} on {} (`phoenix {}`, for {age} s)",
            self.pid, self.host, self.command
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{what} is locked by {holder} ({path})")]
    Held {
        what: String,
        path: String,
        holder: Box<Holder>,
    },
    #[error("{what}: lock {path}: {source}")]
    Shell {
        what: String,
        path: String,
        #[source]
        source: ShellError,
    },
}

/// `/proc/PID/stat` field 22 (start time in clock ticks after boot), `None` if no such pid.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses; field 22 is the 20th
    // after the closing one.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.trim().to_string())
        .unwrap_or_default()
}

/// A lock to take: the file, what it protects (for messages), how long to wait.
#[derive(Debug, Clone)]
pub struct LockRequest<'a> {
    /// Host path of the lock file.
    pub path: &'a str,
    /// What the lock protects, as said in messages (`lab abc`, `node pve1`).
    pub what: &'a str,
    /// The command holding it (`sync all --target lab`).
    pub command: &'a str,
    /// How long to wait for a live holder (zero: give up at once).
    pub wait: Duration,
}

/// A held lock; removed (if still this run's) when dropped.
pub struct LockGuard<'a> {
    shell: &'a dyn HostShell,
    path: String,
    content: String,
    /// The dead holder whose stale lock this run took over.
    pub took_over: Option<Holder>,
    /// The live holder this run waited for.
    pub waited_for: Option<Holder>,
}

impl std::fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("path", &self.path)
            .finish()
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if let Ok(Some(f)) = self.shell.read_file(&self.path)
            && f.content == self.content
        {
            let _ = self.shell.remove_file(&self.path);
        }
    }
}

/// Take the lock of `req` through `shell`. `on_wait` is told once who holds it when this run
/// starts waiting.
pub fn acquire<'a>(
    shell: &'a dyn HostShell,
    req: &LockRequest<'_>,
    on_wait: &mut dyn FnMut(&Holder),
) -> Result<LockGuard<'a>, LockError> {
    let me = Holder::current(req.command);
    let content = serde_json::to_string(&me).unwrap_or_default() + "\n";
    let err = |source| LockError::Shell {
        what: req.what.into(),
        path: req.path.into(),
        source,
    };
    let deadline = Instant::now() + req.wait;
    let mut took_over = None;
    let mut waited_for: Option<Holder> = None;
    let mut unreadable_since: Option<Instant> = None;
    loop {
        if shell.create_new(req.path, &content).map_err(err)? {
            return Ok(LockGuard {
                shell,
                path: req.path.into(),
                content,
                took_over,
                waited_for,
            });
        }
        let Some(text) = shell.read_file(req.path).map_err(err)?.map(|f| f.content) else {
            continue; // released meanwhile
        };
        match serde_json::from_str::<Holder>(&text) {
            Ok(h) if h.is_dead() => {
                // Re-read: remove only the stale lock seen, never one taken meanwhile.
                let again = shell.read_file(req.path).map_err(err)?;
                if again.is_some_and(|f| f.content == text) {
                    shell.remove_file(req.path).map_err(err)?;
                    took_over = Some(h);
                }
                continue;
            }
            Ok(h) => {
                if Instant::now() >= deadline {
                    return Err(LockError::Held {
                        what: req.what.into(),
                        path: req.path.into(),
                        holder: Box::new(h),
                    });
                }
                if waited_for.as_ref() != Some(&h) {
                    on_wait(&h);
                    waited_for = Some(h);
                }
            }
            // Being written this instant, or left half-written by a crash: stale after 2 s.
            Err(_) => {
                let since = *unreadable_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(2) {
                    let again = shell.read_file(req.path).map_err(err)?;
                    if again.is_some_and(|f| f.content == text) {
                        shell.remove_file(req.path).map_err(err)?;
                    }
                    unreadable_since = None;
                    continue;
                }
            }
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
#[path = "lock_tests.rs"]
mod tests;
