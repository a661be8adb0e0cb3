//! The Swarm engines' processes: dockerd's argv and `daemon.json` (pure), the UTS namespace
//! holder that carries the VM's hostname, starting an engine and waiting for its socket,
//! stopping it (a fault) and what it leaves behind, the containers' cgroups for `lab down`,
//! the image rootfs built from the host's busybox and iputils ping, and after an engine
//! restart the wait until the Swarm is whole again. See [`super`] for why each engine runs
//! the way it does.
//! I/O: processes, `/proc`, `/sys/fs/cgroup`, the engine's directory.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{DF_PING, SwarmNode, SwarmPlan, client, p, runtime, swarm_err};
use crate::run::{output, run};
use crate::teardown::pids_in;
use crate::topology::LabTopology;
use crate::{LabError, state_dir};
use phoenix_model::model::DesiredState;

/// How long an engine gets to answer on its socket after the start.
const ENGINE_DEADLINE: Duration = Duration::from_secs(30);

/// The argv that starts `n`'s engine (from the root namespace) in the guest's network
/// namespace and the UTS namespace of `uts_holder` (which carries the VM's hostname). With
/// `hosts_in_file` the lab's `daemon.json` names the listeners (the guest's own file had
/// `hosts`, [`daemon_json`]): dockerd refuses `--host` as well. Pure.
pub fn dockerd_args(n: &SwarmNode, uts_holder: u32, hosts_in_file: bool) -> Vec<String> {
    let d = &n.dir;
    let mut argv: Vec<String> = vec![
        "nsenter".into(),
        format!("--net=/run/netns/{}", n.ns),
        format!("--uts=/proc/{uts_holder}/ns/uts"),
        "unshare".into(),
        "-m".into(),
        "--propagation".into(),
        "private".into(),
        "dockerd".into(),
        format!("--config-file={}", p(&d.join("daemon.json"))),
        format!("--data-root={}", p(&d.join("data"))),
        format!("--exec-root={}", p(&d.join("exec"))),
        format!("--pidfile={}", p(&n.pid_file())),
        format!("--dns={}", n.dns),
        // Containers get 2 s on a stop; the lab never keeps state in them.
        "--shutdown-timeout=2".into(),
        // Container cgroups under a lab-named parent, so `lab down` finds and removes them.
        format!("--cgroup-parent={}", cgroup_parent(&n.dir)),
    ];
    if !hosts_in_file {
        argv.push(format!("--host=unix://{}", p(&n.socket())));
    }
    argv
}

/// `/phoenix-lab-<prefix>` for an engine directory `/run/phoenix-lab/<prefix>/swarm/g<id>`.
fn cgroup_parent(engine_dir: &Path) -> String {
    let prefix = engine_dir
        .ancestors()
        .nth(2)
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("/{CGROUP_PARENT_HEAD}{prefix}")
}

/// Head of the containers' parent cgroup name (`phoenix-lab-<prefix>`).
pub const CGROUP_PARENT_HEAD: &str = "phoenix-lab-";

/// Remove the (empty) container cgroups of lab `prefix` in every hierarchy under
/// `/sys/fs/cgroup`, deepest first (cgroups go with rmdir only); their processes must be gone.
/// Returns what could not be removed.
pub fn remove_cgroups(prefix: &str) -> Vec<String> {
    let name = format!("{CGROUP_PARENT_HEAD}{prefix}");
    let mut roots: Vec<PathBuf> = vec![Path::new("/sys/fs/cgroup").join(&name)];
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        roots.extend(rd.filter_map(|e| e.ok()).map(|e| e.path().join(&name)));
    }
    let mut failed = Vec::new();
    for root in roots.into_iter().filter(|r| r.is_dir()) {
        let mut dirs = vec![root.clone()];
        let mut i = 0;
        while i < dirs.len() {
            if let Ok(rd) = std::fs::read_dir(&dirs[i]) {
                dirs.extend(
                    rd.filter_map(|e| e.ok())
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
            i += 1;
        }
        for dir in dirs.iter().rev() {
            // A killed process may take a moment to leave its cgroup.
            let start = Instant::now();
            while let Err(e) = std::fs::remove_dir(dir) {
                if start.elapsed() > Duration::from_secs(1) {
                    failed.push(format!("{}: {e}", dir.display()));
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    failed
}

/// The engine's `daemon.json`: the engine key in its own directory (dockerd 20.10 keeps it in
/// `/etc/docker/key.json` otherwise, shared by every engine on the machine), and, when the
/// plan wrote the guest's own `/etc/docker/daemon.json` (`guest`, parsed), every setting of
/// it with the guest's places made the lab's: a `unix://` host becomes the engine's own
/// socket, `tcp://` hosts stay (they are the guest namespace's addresses), and the TLS files
/// (`tlscacert`, `tlscert`, `tlskey`) are read under the guest's root `root`. Pure.
pub fn daemon_json(n: &SwarmNode, guest: Option<&serde_json::Value>, root: &Path) -> String {
    let mut out = serde_json::Map::new();
    if let Some(serde_json::Value::Object(conf)) = guest {
        for (k, v) in conf {
            let v = match (k.as_str(), v) {
                ("hosts", serde_json::Value::Array(hosts)) => serde_json::Value::Array(
                    hosts
                        .iter()
                        .map(|h| match h.as_str() {
                            Some(u) if u.starts_with("unix://") => {
                                serde_json::Value::String(format!("unix://{}", p(&n.socket())))
                            }
                            _ => h.clone(),
                        })
                        .collect(),
                ),
                // The lab's guest files carry their known paths rewritten into the root
                // already (`crate::ingress::remap`); others are read under it.
                ("tlscacert" | "tlscert" | "tlskey", serde_json::Value::String(f))
                    if !Path::new(f).starts_with(root) =>
                {
                    serde_json::Value::String(p(&crate::roots::under(root, f)))
                }
                _ => v.clone(),
            };
            out.insert(k.clone(), v);
        }
    }
    out.insert(
        "deprecated-key-path".into(),
        serde_json::Value::String(p(&n.dir.join("key.json"))),
    );
    serde_json::Value::Object(out).to_string()
}

/// The guest's own `daemon.json` as the plan wrote it (parsed), if any; a file that does not
/// parse is an error naming it (dockerd would refuse it as well).
pub(crate) fn guest_daemon_conf(n: &SwarmNode) -> Result<Option<serde_json::Value>, LabError> {
    let Some(path) = super::tls::guest_daemon_json(n) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(|e| LabError::io(&path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| swarm_err(format!("{}: {e}", p(&path))))
}

/// The pid of `n`'s engine when its pid file names a live process inside its namespace.
pub fn engine_pid(n: &SwarmNode) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(n.pid_file())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    pids_in(std::slice::from_ref(&n.ns))
        .contains(&pid)
        .then_some(pid)
}

/// The pids in the engines' pid files of lab `prefix` (for `lab down`; no check that they
/// are alive or still dockerd — the caller filters by namespace).
pub fn engine_pids(prefix: &str) -> Vec<u32> {
    let dir = state_dir(prefix).join("swarm");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("docker.pid")).ok())
        .filter_map(|t| t.trim().parse().ok())
        .collect()
}

/// A running engine answering on its socket.
pub(crate) fn running_engine(n: &SwarmNode) -> Option<u32> {
    let pid = engine_pid(n)?;
    let rt = runtime().ok()?;
    let answers = rt.block_on(async {
        let c = client(n).ok()?;
        tokio::time::timeout(Duration::from_secs(3), c.ping())
            .await
            .ok()?
            .ok()
    });
    answers.map(|_| pid)
}

/// Start `n`'s engine detached (own process group); returns dockerd's pid (`nsenter` and
/// `unshare` exec it). A thread reaps it when it exits.
pub(crate) fn start_engine(n: &SwarmNode) -> Result<u32, LabError> {
    for sub in ["data", "exec"] {
        let d = n.dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| LabError::io(&d, e))?;
    }
    let holder = uts_holder(n)?;
    // dockerd trusts containerd's pid file while that pid exists — also as a zombie of the
    // engine it replaces that init has not reaped yet — and then waits 15 s for a containerd
    // that never answers, and exits. A pid file naming no live process goes.
    // dockerd refuses to start over its own pid file in the same case (a SIGKILLed engine
    // not yet reaped): "pid file found, ensure docker is not running".
    let containerd_pid = n.dir.join("exec").join("containerd").join("containerd.pid");
    for file in [containerd_pid, n.pid_file()] {
        if let Some(pid) = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            && !alive(pid)
        {
            let _ = std::fs::remove_file(&file);
        }
    }
    let conf = n.dir.join("daemon.json");
    let guest = guest_daemon_conf(n)?;
    let hosts_in_file = guest.as_ref().is_some_and(|g| g.get("hosts").is_some());
    let text = daemon_json(n, guest.as_ref(), &super::tls::root_of(n));
    std::fs::write(&conf, text).map_err(|e| LabError::io(&conf, e))?;
    // Until a run sees the Swarm whole again (also when this run is killed meanwhile).
    let marker = n.dir.join(UNSETTLED);
    std::fs::write(&marker, "").map_err(|e| LabError::io(&marker, e))?;
    let _ = std::fs::remove_file(n.socket());
    let log = n.log();
    // Appended: a restarted engine keeps the story of the previous one.
    let file = File::options()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| LabError::io(&log, e))?;
    let argv = dockerd_args(n, holder, hosts_in_file);
    crate::run::spawn_detached(&argv[0], &argv[1..], file)
}

fn uts_inode(pid: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/uts"))
        .ok()
        .map(|m| m.ino())
}

/// A process holding a UTS namespace of its own whose hostname is the VM's name (the Swarm
/// node name): `busybox sleep` under `unshare -u` in the guest's network namespace, so
/// `lab down` stops it with the rest. dockerd joins it (`nsenter --uts=…`), so the name is in
/// place before the engine registers with the Swarm, also when it restarts as a member.
/// Reused while alive; its pid is in `uts.pid`.
fn uts_holder(n: &SwarmNode) -> Result<u32, LabError> {
    let pid_file = n.dir.join("uts.pid");
    if let Some(pid) = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .filter(|pid| pids_in(std::slice::from_ref(&n.ns)).contains(pid))
    {
        return Ok(pid);
    }
    let mut child = crate::run::command("nsenter")
        .args([&format!("--net=/run/netns/{}", n.ns), "unshare", "-u"])
        .args(["busybox", "sleep", "2147483647"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|source| LabError::Spawn {
            program: "nsenter".into(),
            source,
        })?;
    let pid = child.id();
    crate::procs::record(pid);
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    // Only once the holder has its own UTS namespace: `hostname` in the root one would
    // rename the machine.
    let ours = uts_inode("self");
    let start = Instant::now();
    while uts_inode(&pid.to_string()) == ours {
        if start.elapsed() > Duration::from_secs(3) || !alive(pid) {
            return Err(swarm_err(format!(
                "the UTS namespace holder for {} did not start",
                n.label()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let target = format!("--target={pid}");
    run(
        "nsenter",
        &[&target, "--uts", "busybox", "hostname", &n.name],
    )?;
    std::fs::write(&pid_file, format!("{pid}\n")).map_err(|e| LabError::io(&pid_file, e))?;
    Ok(pid)
}

/// Wait until `n`'s engine answers `/_ping`; its output is the evidence when it exits first.
pub(crate) async fn wait_engine(n: &SwarmNode, pid: u32) -> Result<(), LabError> {
    let start = Instant::now();
    loop {
        if n.socket().exists()
            && let Ok(c) = client(n)
            && let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), c.ping()).await
        {
            return Ok(());
        }
        let gone = !Path::new(&format!("/proc/{pid}")).exists();
        if gone || start.elapsed() > ENGINE_DEADLINE {
            let said = std::fs::read_to_string(n.log()).unwrap_or_default();
            let tail: Vec<&str> = said.lines().rev().take(5).collect();
            return Err(swarm_err(format!(
                "dockerd for {} {} after {} ms: {}",
                n.label(),
                if gone { "exited" } else { "not answering" },
                start.elapsed().as_millis(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Library paths `ldd` prints (`libc.so.6 => /lib/…` and the interpreter line). Pure.
pub fn parse_ldd(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            // With several files, ldd heads each block with `file:`.
            if l.ends_with(':') {
                return None;
            }
            let path = l.split("=>").nth(1).unwrap_or(l).trim();
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| path.to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A program on `PATH` (the lab's tools are Debian's).
pub(crate) fn which(program: &str) -> Result<PathBuf, LabError> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/bin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| LabError::Spawn {
            program: program.into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })
}

pub(crate) fn copy_into(root: &Path, src: &Path, dest: &str) -> Result<(), LabError> {
    let target = root.join(dest.trim_start_matches('/'));
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| LabError::io(parent, e))?;
    }
    std::fs::copy(src, &target).map_err(|e| LabError::io(&target, e))?;
    Ok(())
}

/// Build the image's rootfs tarball (busybox with every applet, iputils ping as [`DF_PING`],
/// their shared libraries) unless it exists; true when built.
pub fn build_rootfs(tar: &Path) -> Result<bool, LabError> {
    if tar.is_file() {
        return Ok(false);
    }
    let parent = tar
        .parent()
        .ok_or_else(|| swarm_err("rootfs path has no parent"))?;
    let root = parent.join("rootfs");
    let _ = std::fs::remove_dir_all(&root);
    for d in ["bin", "usr/bin", "etc", "tmp", "proc", "sys", "dev"] {
        let dir = root.join(d);
        std::fs::create_dir_all(&dir).map_err(|e| LabError::io(&dir, e))?;
    }
    let busybox = which("busybox")?;
    let ping = which("ping")?;
    copy_into(&root, &busybox, "/bin/busybox")?;
    copy_into(&root, &ping, DF_PING)?;
    let ldd = output("ldd", &[&p(&busybox), &p(&ping)])?;
    for lib in parse_ldd(&String::from_utf8_lossy(&ldd.stdout)) {
        copy_into(&root, Path::new(&lib), &lib)?;
    }
    for applet in run(&p(&busybox), &["--list"])?.lines() {
        let link = root.join("bin").join(applet.trim());
        if !applet.trim().is_empty() && !link.exists() {
            std::os::unix::fs::symlink("busybox", &link).map_err(|e| LabError::io(&link, e))?;
        }
    }
    let partial = tar.with_extension("tar.partial");
    run("tar", &["-C", &p(&root), "-cf", &p(&partial), "."])?;
    std::fs::rename(&partial, tar).map_err(|e| LabError::io(tar, e))?;
    let _ = std::fs::remove_dir_all(&root);
    Ok(true)
}

/// Processes of `n`'s engine inside its namespace: dockerd, its containerd and the shims
/// (their command lines name the engine's directory).
fn engine_processes(n: &SwarmNode) -> Vec<u32> {
    let marker = p(&n.dir);
    pids_in(std::slice::from_ref(&n.ns))
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|raw| String::from_utf8_lossy(&raw).contains(&marker))
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// TERM to `pid`, then wait (bounded) until it is gone.
pub(crate) fn stop_pid(pid: u32, deadline: Duration) {
    signal_all("-TERM", &[pid]);
    reap(&[pid], deadline);
}

fn signal_all(sig: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let mut args = vec![sig.to_string(), "--".to_string()];
    args.extend(pids.iter().map(u32::to_string));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let _ = output("kill", &refs);
}

/// Wait until none of `pids` is alive, at most `deadline`; SIGKILL what is left.
fn reap(pids: &[u32], deadline: Duration) {
    let start = Instant::now();
    while pids.iter().any(|p| alive(*p)) && start.elapsed() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    signal_all("-KILL", &left);
}

/// Stop whatever is left of `n`'s engine (its containerd and shims outlive a dockerd that
/// stopped badly, and a new containerd cannot start on their state): the containers under the
/// shims first (SIGKILL: a shim stopped by SIGTERM leaves its container orphaned), then SIGTERM.
pub(crate) fn stop_leftovers(n: &SwarmNode) {
    let procs = engine_processes(n);
    if procs.is_empty() {
        return;
    }
    signal_all("-KILL", &crate::teardown::descendants(&procs));
    signal_all("-TERM", &procs);
    reap(&procs, Duration::from_secs(3));
}

/// Stop `guest`'s engine (a fault for tests and fault injection): SIGTERM to dockerd (a
/// graceful stop, as on a real VM), SIGKILL after `deadline`, then whatever the engine leaves
/// behind. [`up`] starts it again; the node is still a Swarm member.
pub fn stop_engine(plan: &SwarmPlan, guest: u32, deadline: Duration) -> Result<(), LabError> {
    let n = plan
        .node(guest)
        .ok_or_else(|| swarm_err(format!("guest {guest} is not a Swarm node")))?;
    if let Some(pid) = engine_pid(n) {
        signal_all("-TERM", &[pid]);
        reap(&[pid], deadline);
    }
    stop_leftovers(n);
    Ok(())
}

/// How long a worker gets to reconnect from its underlay address.
const READDRESS_DEADLINE: Duration = Duration::from_secs(10);

/// Workers the first manager sees at another address than the model's (their session went
/// out through another NIC while the underlay had no address or was down, and stays so once
/// it is back): their sessions to the managers' port from any other local address are closed
/// (`ss -K` in the worker's namespace), so the engine dials again from its underlay address;
/// waits (bounded) until the manager sees it there. Returns what it did.
pub(crate) fn readdress_workers(plan: &SwarmPlan) -> Result<Vec<String>, LabError> {
    let Some(leader) = plan.leader() else {
        return Ok(Vec::new());
    };
    let c = client(leader)?;
    let rt = runtime()?;
    let seen = |name: &str| -> Option<String> {
        let nodes = rt.block_on(c.list_nodes(None)).ok()?;
        nodes
            .into_iter()
            .find(|x| x.description.as_ref().and_then(|d| d.hostname.as_deref()) == Some(name))
            .and_then(|x| x.status.and_then(|s| s.addr))
    };
    let mut said = Vec::new();
    for n in plan
        .nodes
        .iter()
        .filter(|n| n.role == super::SwarmRoleName::Worker)
    {
        let want = n.addr.to_string();
        let Some(was) = seen(&n.name).filter(|a| *a != want) else {
            continue;
        };
        let port = format!(":{}", super::MANAGER_PORT);
        let argv = [
            "netns", "exec", &n.ns, "ss", "-K", "-t", "-n", "dport", "=", &port, "and", "not",
            "src", &want,
        ];
        run("ip", &argv)?;
        let start = Instant::now();
        while seen(&n.name).as_deref() != Some(want.as_str())
            && start.elapsed() < READDRESS_DEADLINE
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        said.push(format!(
            "{} was seen by the manager at {was}, not its underlay address {want}: its session reconnected",
            n.label()
        ));
    }
    Ok(said)
}

/// The marker an engine start leaves in the engine's directory until a run saw the Swarm
/// whole again ([`await_overlay`]).
const UNSETTLED: &str = "unsettled";

/// Was an engine of `plan` started since the Swarm was last seen whole?
pub fn unsettled(plan: &SwarmPlan) -> bool {
    plan.nodes.iter().any(|n| n.dir.join(UNSETTLED).exists())
}

/// The Swarm of `plan` was seen whole: the engines' markers go.
pub fn settled(plan: &SwarmPlan) {
    for n in &plan.nodes {
        let _ = std::fs::remove_file(n.dir.join(UNSETTLED));
    }
}

/// Was an engine of the Swarm of `d` started (by this run or one killed before it) since
/// the Swarm was last seen whole?
pub fn unsettled_in(d: &DesiredState, t: &LabTopology) -> bool {
    matches!(super::plan(d, t), Ok(Some(sp)) if unsettled(&sp))
}

/// The Swarm of `d` counts as whole (a new one, made whole by this run's own steps).
pub fn settled_in(d: &DesiredState, t: &LabTopology) {
    if let Ok(Some(sp)) = super::plan(d, t) {
        settled(&sp);
    }
}

/// How long a run waits for the overlay after an engine restarted (both engines of a
/// rebuilt network took about 85 s here).
const OVERLAY_RESYNC: std::time::Duration = std::time::Duration::from_secs(120);

/// After an engine of an existing Swarm was started again (by this run or one killed
/// before it: [`unsettled_in`]): wait (bounded) until every node is
/// Ready as the model says and the overlay carries traffic between every pair of nodes. A
/// restarted manager sees its workers Ready only after their next heartbeat, and a restarted
/// dockerd 20.10 learns its peers' endpoints by the network database's periodic bulk sync
/// (up to about 30 s here): until then the Swarm is broken though nothing is left to do.
/// Returns what it waited for.
pub fn await_overlay(d: &DesiredState, t: &LabTopology) -> Result<Option<String>, LabError> {
    let Some(sp) = super::plan(d, t)? else {
        return Ok(None);
    };
    if sp.nodes.len() < 2 {
        return Ok(None);
    }
    let start = std::time::Instant::now();
    loop {
        let mut checks = super::checks::engines_and_nodes(&sp);
        if checks.iter().all(|c| c.pass) {
            checks = super::checks::overlay(&sp);
        }
        let failing: Vec<String> = checks
            .into_iter()
            .filter(|c| !c.pass)
            .map(|c| format!("{}: {}", c.subject, c.observed))
            .collect();
        let waited = start.elapsed().as_millis();
        if failing.is_empty() {
            settled(&sp);
            return Ok(Some(format!(
                "every node is Ready and the overlay carries traffic again after an engine restart (waited {waited} ms)"
            )));
        }
        if start.elapsed() > OVERLAY_RESYNC {
            return Err(swarm_err(format!(
                "the Swarm is still not whole {waited} ms after an engine restart: {}",
                failing.join("; ")
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}
