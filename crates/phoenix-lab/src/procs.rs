//! Which processes are the lab's, by identity: every process the lab's code starts (through
//! [`crate::run`]) is recorded with its start time (`/proc/PID/stat` field 22) and the
//! recording phoenix's own pid and start time, in `/run/phoenix-lab/<prefix>.procs` for each
//! lab this process works on ([`Active`]). `lab down` stops what a *dead* recorder left
//! behind (a `phoenix` killed halfway leaves its `ip -batch …` running) and whose start time
//! still matches — never a process because its command line mentions the lab, never a live
//! run's children. Processes inside the lab's namespaces are the lab's by construction and are
//! found by namespace ([`crate::teardown`]). The file sits next to the state dir, so a crash
//! leaves it for the next `down`, which removes it at the end.
//! I/O: `/proc`, `/run/phoenix-lab`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use phoenix_exec::lock::start_time;

/// The labs this process works on now (a test process may run several at once).
static ACTIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The record file of lab `prefix`.
pub fn record_path(prefix: &str) -> PathBuf {
    PathBuf::from(format!("{}/{prefix}.procs", crate::STATE_ROOT))
}

/// While alive, processes this process starts are recorded for lab `prefix`.
#[derive(Debug)]
pub struct Active {
    prefix: String,
}

impl Active {
    pub fn enter(prefix: &str) -> Active {
        prune(prefix);
        if let Ok(mut a) = ACTIVE.lock() {
            a.push(prefix.to_string());
        }
        Active {
            prefix: prefix.to_string(),
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if let Ok(mut a) = ACTIVE.lock()
            && let Some(i) = a.iter().position(|p| *p == self.prefix)
        {
            a.remove(i);
        }
    }
}

/// One recorded process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub pid: u32,
    pub start: u64,
    pub recorder: u32,
    pub recorder_start: u64,
}

impl Record {
    fn line(&self) -> String {
        format!(
            "{} {} {} {}\n",
            self.pid, self.start, self.recorder, self.recorder_start
        )
    }

    fn parse(line: &str) -> Option<Record> {
        let mut w = line.split_whitespace().map(str::parse::<u64>);
        let mut next = || w.next()?.ok();
        Some(Record {
            pid: u32::try_from(next()?).ok()?,
            start: next()?,
            recorder: u32::try_from(next()?).ok()?,
            recorder_start: next()?,
        })
    }

    /// Is the recorded process still the one that was started?
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }

    /// Is the phoenix that started it gone?
    pub fn orphaned(&self) -> bool {
        start_time(self.recorder) != Some(self.recorder_start)
    }
}

/// Record `pid` (just started by this process) for every active lab.
pub(crate) fn record(pid: u32) {
    let Some(start) = start_time(pid) else {
        return; // already gone
    };
    let me = std::process::id();
    let rec = Record {
        pid,
        start,
        recorder: me,
        recorder_start: start_time(me).unwrap_or(0),
    };
    let prefixes = ACTIVE.lock().map(|a| a.clone()).unwrap_or_default();
    for p in prefixes {
        append(&p, &rec);
    }
}

fn append(prefix: &str, rec: &Record) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::create_dir_all(crate::STATE_ROOT);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(record_path(prefix))
    {
        // One write of a short line: appends of concurrent recorders do not interleave.
        let _ = f.write_all(rec.line().as_bytes());
    }
}

/// Every record of lab `prefix`.
pub fn records(prefix: &str) -> Vec<Record> {
    std::fs::read_to_string(record_path(prefix))
        .map(|t| t.lines().filter_map(Record::parse).collect())
        .unwrap_or_default()
}

/// The lab's processes a dead run left behind: recorded, still the same process, recorder
/// gone.
pub fn left_behind(prefix: &str) -> Vec<u32> {
    let mut out: Vec<u32> = records(prefix)
        .into_iter()
        .filter(|r| r.orphaned() && r.alive())
        .map(|r| r.pid)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Drop the records of processes that are gone (keeps the file short across runs).
fn prune(prefix: &str) {
    let all = records(prefix);
    let keep: Vec<&Record> = all.iter().filter(|r| r.alive()).collect();
    if keep.len() < all.len() {
        let text: String = keep.iter().map(|r| r.line()).collect();
        let _ = std::fs::write(record_path(prefix), text);
    }
}

/// Forget the records (the end of `lab down`).
pub fn clear(prefix: &str) {
    let _ = std::fs::remove_file(record_path(prefix));
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let r = Record {
            pid: 12,
            start: 34,
            recorder: 56,
            recorder_start: 78,
        };
        assert_eq!(Record::parse(&r.line()), Some(r));
        assert_eq!(Record::parse("12 x 5 6"), None);
    }

    #[test]
    fn this_process_is_neither_dead_nor_another() {
        let me = std::process::id();
        let r = Record {
            pid: me,
            start: start_time(me).unwrap(),
            recorder: me,
            recorder_start: start_time(me).unwrap(),
        };
        assert!(r.alive());
        assert!(!r.orphaned());
        let reused = Record {
            start: r.start + 1,
            ..r
        };
        assert!(!reused.alive(), "a pid with another start time is not ours");
    }
}
