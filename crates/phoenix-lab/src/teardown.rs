//! `lab down`: find everything of a lab by its prefix — namespaces in `/run/netns` (what
//! `ip netns list` lists), `/etc/netns/<prefix>-*`, the state directory — stop the processes
//! inside (SIGTERM, SIGKILL after a deadline), delete. Works without the state file, so the
//! leftovers of a crashed run go too. Links need no separate step: every lab link lives inside
//! a lab namespace and dies with it; nothing in the root namespace is touched. Processes are
//! the lab's by namespace or by a recorded identity ([`crate::procs`]), never by command line.
//! A mark written first and removed last makes an interrupted `down` visible to the next run.
//! I/O: processes, `/run/netns`, `/etc/netns`, `/run/phoenix-lab`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::run::output;
use crate::topology::validate_prefix;
use crate::{LabError, state_dir};

/// Where `ip netns` keeps its named namespaces.
pub const NETNS_RUN: &str = "/run/netns";
/// Per-namespace files `ip netns exec` bind-mounts over `/etc`.
pub const NETNS_ETC: &str = "/etc/netns";

/// How long processes get between SIGTERM and SIGKILL.
const TERM_DEADLINE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Default, Serialize)]
pub struct DownReport {
    pub prefix: String,
    pub namespaces: Vec<String>,
    pub etc_dirs: Vec<String>,
    pub killed: Vec<u32>,
    pub state_removed: bool,
}

/// Names in `dir` that belong to the lab `prefix` (`<prefix>-…`), sorted.
pub fn entries_with_prefix(dir: &str, prefix: &str) -> Vec<String> {
    let head = format!("{prefix}-");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(&head))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The lab's namespaces that exist now.
pub fn namespaces(prefix: &str) -> Vec<String> {
    entries_with_prefix(NETNS_RUN, prefix)
}

/// Pids of processes inside `ns` (what `ip netns pids` prints, found the same way: processes
/// whose `/proc/PID/ns/net` is the namespace's nsfs inode).
pub fn pids(ns: &str) -> Vec<u32> {
    pids_in(&[ns.to_string()])
}

/// Pids of processes inside any of `nss`, in one pass over `/proc`.
pub fn pids_in(nss: &[String]) -> Vec<u32> {
    let ids: Vec<(u64, u64)> = nss
        .iter()
        .filter_map(|n| std::fs::metadata(Path::new(NETNS_RUN).join(n)).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<u32> = proc
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| ids.contains(&(m.dev(), m.ino())))
        })
        .collect();
    out.sort_unstable();
    out
}

fn signal(sig: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let mut args = vec![sig.to_string(), "--".to_string()];
    args.extend(pids.iter().map(u32::to_string));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    // A process may have exited meanwhile; that is fine.
    let _ = output("kill", &refs);
}

/// Descendants of `roots` (by parent pid, from `/proc/PID/stat`) that are not in `roots`.
pub(crate) fn descendants(roots: &[u32]) -> Vec<u32> {
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = proc
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
            Some((pid, ppid.parse().ok()?))
        })
        .collect();
    let mut found: Vec<u32> = roots.to_vec();
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for (pid, _) in parents.iter().filter(|(_, pp)| *pp == parent) {
            if !found.contains(pid) {
                found.push(*pid);
            }
        }
        i += 1;
    }
    found.retain(|p| !roots.contains(p));
    found.sort_unstable();
    found
}

/// Stop every process inside `nss`: SIGTERM, then SIGKILL to what is left at the deadline.
/// Processes started from inside but living in namespaces of their own — the containers of
/// the lab's dockerds ([`crate::swarm`]), children of a containerd-shim — get SIGKILL first:
/// a shim stopped by SIGTERM leaves its container running, orphaned, outside every lab
/// namespace.
fn stop_processes(prefix: &str, nss: &[String]) -> Vec<u32> {
    let mut all = pids_in(nss);
    let mut inner = descendants(&all);
    // The Swarm engines too: their state is throwaway and a graceful dockerd stop takes ~3 s.
    inner.extend(
        crate::swarm::engine_pids(prefix)
            .into_iter()
            .filter(|p| all.contains(p)),
    );
    signal("-KILL", &inner);
    signal("-TERM", &all);
    all.extend(inner);
    all.sort_unstable();
    all.dedup();
    let deadline = Instant::now() + TERM_DEADLINE;
    let mut left = all.clone();
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        left = pids_in(nss);
    }
    signal("-KILL", &left);
    all
}

/// Processes outside the lab's namespaces still working for it: a `phoenix` killed halfway
/// leaves its children (`ip -batch …`, `nft -f …`) running. Only those recorded by identity
/// ([`crate::procs`]: pid and start time, recorder dead) and their descendants are killed —
/// never a process because its command line names the lab — and waited for before anything
/// is deleted, so they cannot create what `down` just removed.
fn stop_left_behind(prefix: &str) -> Vec<u32> {
    let own = std::process::id();
    let mut found = crate::procs::left_behind(prefix);
    found.extend(descendants(&found));
    found.retain(|p| *p != own);
    found.sort_unstable();
    found.dedup();
    signal("-KILL", &found);
    let deadline = Instant::now() + TERM_DEADLINE;
    while found
        .iter()
        .any(|p| Path::new(&format!("/proc/{p}")).exists())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    found
}

/// The mark of a `down` under way (`/run/phoenix-lab/<prefix>.down`), written first and
/// removed last: still there, a `down` was interrupted and the state dir may be half deleted.
pub fn down_marker(prefix: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{}/{prefix}.down", crate::STATE_ROOT))
}

/// Was a `lab down` of `prefix` interrupted (its state possibly half deleted)?
pub fn interrupted(prefix: &str) -> bool {
    down_marker(prefix).exists()
}

/// Finish an interrupted `lab down` so the next build starts clean; `Some(note)` when there
/// was one.
pub fn finish_interrupted(prefix: &str) -> Result<Option<String>, LabError> {
    if !interrupted(prefix) {
        return Ok(None);
    }
    down(prefix)?;
    Ok(Some(format!(
        "lab {prefix}: an earlier `lab down` was interrupted; its leftovers (a half-deleted state dir) were removed first and the lab is built from scratch"
    )))
}

/// Delete the namespaces with one `ip -force -batch -` (it goes on after a failed line; the
/// batch on stdin, so no file in a shared directory); what is still listed afterwards gets two
/// more tries (a namespace can be busy for a moment while the processes in it are reaped); the
/// last failure is reported.
fn delete_namespaces(prefix: &str, nss: &[String]) -> Result<(), LabError> {
    let mut left: Vec<String> = nss.to_vec();
    let mut result = Ok(());
    for attempt in 0..3 {
        if left.is_empty() {
            return Ok(());
        }
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
        let text: String = left.iter().map(|n| format!("netns delete {n}\n")).collect();
        result =
            crate::run::run_stdin("ip", &["-force", "-batch", "-"], text.as_bytes()).map(|_| ());
        let now = namespaces(prefix);
        left.retain(|n| now.contains(n));
    }
    if left.is_empty() { Ok(()) } else { result }
}

/// Stop the lab's processes and delete its namespaces and `/etc/netns` directories, keeping
/// its state dir (the node root, the guest roots, the CA): a network to build again.
pub fn down_network(prefix: &str) -> Result<(), LabError> {
    validate_prefix(prefix)?;
    let mut report = DownReport::default();
    let mut errors = Vec::new();
    network_down(prefix, &mut report, &mut errors);
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn network_down(prefix: &str, report: &mut DownReport, errors: &mut Vec<LabError>) {
    let _active = crate::procs::Active::enter(prefix);
    let stragglers = stop_left_behind(prefix);
    let nss = namespaces(prefix);
    report.killed = stop_processes(prefix, &nss);
    report.killed.extend(stragglers);
    for left in crate::swarm::remove_cgroups(prefix) {
        eprintln!("warning: lab {prefix}: cgroup left: {left}");
    }
    if let Err(e) = delete_namespaces(prefix, &nss) {
        errors.push(e);
    }
    let left = namespaces(prefix);
    report.namespaces = nss.into_iter().filter(|n| !left.contains(n)).collect();
    for dir in entries_with_prefix(NETNS_ETC, prefix) {
        let path = Path::new(NETNS_ETC).join(&dir);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => report.etc_dirs.push(dir),
            Err(e) => errors.push(LabError::io(path, e)),
        }
    }
}

/// Tear down the lab `prefix`, also when its state file is gone.
pub fn down(prefix: &str) -> Result<DownReport, LabError> {
    validate_prefix(prefix)?;
    let mut report = DownReport {
        prefix: prefix.to_string(),
        ..DownReport::default()
    };
    let mut errors = Vec::new();
    let marker = down_marker(prefix);
    if let Err(e) = std::fs::create_dir_all(crate::STATE_ROOT)
        .and_then(|()| std::fs::write(&marker, format!("{}\n", std::process::id())))
    {
        return Err(LabError::io(marker, e));
    }
    network_down(prefix, &mut report, &mut errors);
    let state = state_dir(prefix);
    if state.exists() {
        match std::fs::remove_dir_all(&state) {
            Ok(()) => report.state_removed = true,
            Err(e) => errors.push(LabError::io(state, e)),
        }
    }
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => {
            crate::procs::clear(prefix);
            let _ = std::fs::remove_file(&marker);
            Ok(report)
        }
    }
}

/// Tears the lab down when dropped (tests, and `up` when a step fails).
#[derive(Debug)]
pub struct LabGuard {
    prefix: String,
}

impl LabGuard {
    pub fn new(prefix: &str) -> Self {
        LabGuard {
            prefix: prefix.to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Err(e) = down(&self.prefix) {
            eprintln!("warning: lab {} teardown: {e}", self.prefix);
        }
    }
}
