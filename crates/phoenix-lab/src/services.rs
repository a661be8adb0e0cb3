//! The lab's first services, started by `lab up` after the network:
//! - in `<prefix>-wan`: one dnsmasq as the "internet" DNS server on 198.51.100.53 (answers
//!   [`OUTSIDE_NAME`], NXDOMAIN for everything else) and as DHCP server of the public segment
//!   on `pub0`; `busybox httpd` on 198.51.100.80:80 as the egress endpoint;
//! - in `<prefix>-hv`: the mesh DNS, dnsmasq with phoenix's rendered configuration whose
//!   upstream `server=` lines are replaced by the wan's resolver (the lab never talks to a real
//!   upstream, LAB.md);
//! - in each guest with a DHCP NIC on the public bridge: `busybox udhcpc` under
//!   `unshare --uts` with the lab's own event script (address and default route only).
//!
//! Every process runs under `ip netns exec <ns>` (nothing in the root namespace), from argv
//! vectors; pid files, logs, leases and `services.json` live in the lab's state dir.
//! `lab down` stops them with everything else in the namespaces.
//! The argument lists and the script are pure functions; [`start`] and [`status`] do I/O
//! (processes, the state dir, `/proc`).

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use phoenix_model::model::DesiredState;
use serde::{Deserialize, Serialize};

use crate::run::run;
use crate::teardown::pids_in;
use crate::topology::{
    INTERNET_HTTP, INTERNET_RESOLVER, LabBridgeRole, LabTopology, NsRole, WAN_PUBLIC,
    WAN_PUBLIC_LEG,
};
use crate::{LabError, state_dir};

/// The outside name the wan's DNS answers (documentation domain), with the HTTP endpoint.
pub const OUTSIDE_NAME: &str = "www.example.net";
/// The public segment's DHCP pool (inside [`WAN_PUBLIC`]).
pub const DHCP_POOL: (Ipv4Addr, Ipv4Addr) = (
    Ipv4Addr::new(203, 0, 113, 100),
    Ipv4Addr::new(203, 0, 113, 199),
);
/// Name of the services record in the state dir.
pub const SERVICES_FILE: &str = "services.json";
/// The wan dnsmasq's lease file (in the state dir).
pub const WAN_LEASES: &str = "wan.leases";
/// How long a detached service gets to start listening.
const READY_DEADLINE: Duration = Duration::from_secs(3);

/// The udhcpc event script: only the address and the default route, from udhcpc's environment
/// (`$ip`, `$mask`, `$router`, `$lease`, `$interface`); never the hostname or resolv.conf.
pub const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
# phoenix lab: udhcpc event script (address and default route only)
set -f
case "$1" in
bound|renew)
	ip addr replace "$ip/${mask:-24}" dev "$interface" valid_lft "${lease:-3600}" preferred_lft "${lease:-3600}" || exit 1
	if [ -n "$router" ]; then
		ip route replace default via "${router%% *}" dev "$interface" || exit 1
	fi
	;;
esac
exit 0
"#;

/// A guest NIC that gets its address by DHCP from the wan (on the public bridge).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpClient {
    pub guest: u32,
    pub ns: String,
    pub nic: String,
    /// Lower case, as dnsmasq writes it in the lease file.
    pub mac: Option<String>,
}

/// A started service: where it runs, its pid file and log, and how to start it again
/// (`sync all` restarts a service whose process is gone with the same argv).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub name: String,
    pub ns: String,
    pub pid_file: PathBuf,
    pub log: PathBuf,
    /// The command run under `ip netns exec NS`.
    #[serde(default)]
    pub argv: Vec<String>,
    /// The sockets it holds once started.
    #[serde(default)]
    pub ready: Vec<Listen>,
}

/// A DHCP lease a guest obtained during `up`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub guest: u32,
    pub ns: String,
    pub nic: String,
    pub mac: Option<String>,
    /// `address/prefix` as `ip` showed it after udhcpc.
    pub address: Option<String>,
    pub elapsed_ms: u128,
}

/// What `services.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicesState {
    pub services: Vec<ServiceRecord>,
    pub leases: Vec<LeaseRecord>,
}

/// A service as `lab status` sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    pub ns: String,
    pub pid: Option<u32>,
    /// The pid from the pid file is a live process inside the service's namespace.
    pub alive: bool,
    pub log: PathBuf,
}

/// A recorded lease as `lab status` sees it.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseStatus {
    #[serde(flatten)]
    pub lease: LeaseRecord,
    /// The NIC still holds the leased address.
    pub held: bool,
}

/// The mesh DNS configuration for the lab: phoenix's rendered dnsmasq file with every
/// upstream `server=` line replaced by the wan's resolver. `None` when the model runs no DNS.
pub fn mesh_dns_config(d: &DesiredState) -> Option<String> {
    if !d.dns.enabled || d.dns.listen.is_empty() {
        return None;
    }
    let rendered = phoenix_render::dnsmasq::config(d).content;
    let mut out = String::with_capacity(rendered.len() + 64);
    for line in rendered.lines() {
        if line.trim_start().starts_with("server=") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("# phoenix lab: the wan's \"internet\" resolver replaces the upstreams\n");
    out.push_str(&format!("server={INTERNET_RESOLVER}\n"));
    Some(out)
}

/// Guest NICs with DHCP addressing whose lab link sits on the public bridge.
pub fn dhcp_clients(d: &DesiredState, t: &LabTopology) -> Vec<DhcpClient> {
    let public = |bridge: &str| {
        t.bridges
            .iter()
            .any(|b| b.ns == t.hv && b.name == bridge && b.role == LabBridgeRole::PublicVlan)
    };
    let mut out = Vec::new();
    for n in &t.namespaces {
        let NsRole::Guest { id, .. } = n.role else {
            continue;
        };
        let Some(g) = d.guests.values().find(|g| g.id.0 == id) else {
            continue;
        };
        for nic in g.nics.iter().filter(|nic| nic.is_dhcp()) {
            let veth = t
                .veths
                .iter()
                .find(|v| v.peer_ns == n.name && v.peer_name == nic.name)
                .and_then(|v| v.master.as_deref());
            let macvlan = t
                .macvlans
                .iter()
                .find(|m| m.ns == n.name && m.name == nic.name)
                .map(|m| m.parent.as_str());
            if veth.or(macvlan).is_some_and(public) {
                out.push(DhcpClient {
                    guest: id,
                    ns: n.name.clone(),
                    nic: nic.name.clone(),
                    mac: nic.mac.map(|m| m.to_string().to_ascii_lowercase()),
                });
            }
        }
    }
    out
}

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// dnsmasq in the wan: "internet" DNS and the public segment's DHCP server.
pub fn wan_dnsmasq_args(dir: &Path) -> Vec<String> {
    let (lo, hi) = DHCP_POOL;
    vec![
        "dnsmasq".into(),
        "--keep-in-foreground".into(),
        "--conf-file=/dev/null".into(),
        format!("--pid-file={}", p(&dir.join("dnsmasq-wan.pid"))),
        format!("--log-facility={}", p(&dir.join("dnsmasq-wan.log"))),
        "--bind-interfaces".into(),
        format!("--listen-address={INTERNET_RESOLVER}"),
        format!("--interface={WAN_PUBLIC_LEG}"),
        "--no-resolv".into(),
        "--no-hosts".into(),
        format!("--address=/{OUTSIDE_NAME}/{INTERNET_HTTP}"),
        // Everything else: NXDOMAIN (no upstream exists for the "internet").
        "--address=/#/".into(),
        format!("--dhcp-range={lo},{hi},{},1h", WAN_PUBLIC.netmask()),
        format!("--dhcp-option=option:router,{}", WAN_PUBLIC.addr()),
        format!("--dhcp-option=option:dns-server,{INTERNET_RESOLVER}"),
        "--no-ping".into(),
        format!("--dhcp-leasefile={}", p(&dir.join(WAN_LEASES))),
    ]
}

/// dnsmasq in the hypervisor with the mesh configuration written to `conf`.
pub fn hv_dnsmasq_args(dir: &Path, conf: &Path) -> Vec<String> {
    vec![
        "dnsmasq".into(),
        "--keep-in-foreground".into(),
        format!("--conf-file={}", p(conf)),
        format!("--pid-file={}", p(&dir.join("dnsmasq-hv.pid"))),
        format!("--log-facility={}", p(&dir.join("dnsmasq-hv.log"))),
    ]
}

/// `busybox httpd` in the foreground on the egress endpoint, serving `www`.
pub fn httpd_args(www: &Path) -> Vec<String> {
    vec![
        "busybox".into(),
        "httpd".into(),
        "-f".into(),
        "-p".into(),
        format!("{INTERNET_HTTP}:80"),
        "-h".into(),
        p(www),
    ]
}

/// udhcpc for one NIC, one shot (`-n -q`), in its own UTS namespace so it cannot touch the
/// hostname (LAB.md).
pub fn udhcpc_args(nic: &str, script: &Path) -> Vec<String> {
    [
        "unshare", "--uts", "busybox", "udhcpc", "-i", nic, "-n", "-q", "-f", "-t", "5", "-T", "1",
        "-s",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([p(script)])
    .collect()
}

pub(crate) fn write(path: &Path, content: &str) -> Result<(), LabError> {
    std::fs::write(path, content).map_err(|e| LabError::io(path, e))
}

/// `ip netns exec NS argv…` to completion (one-shot clients).
fn run_in(ns: &str, argv: &[String]) -> Result<String, LabError> {
    let mut args: Vec<&str> = vec!["netns", "exec", ns];
    args.extend(argv.iter().map(String::as_str));
    run("ip", &args)
}

/// `ip netns exec NS argv…` detached (own process group), stdout and stderr to `out`; returns
/// the pid (`ip netns exec` and `unshare` exec the command, so it is the service's own).
/// A thread reaps it when it exits, so a stopped service leaves no zombie behind while this
/// process lives (daemonising would hand it to init, which may not reap).
fn spawn_in(ns: &str, argv: &[String], out: &Path) -> Result<u32, LabError> {
    let file = File::create(out).map_err(|e| LabError::io(out, e))?;
    let mut args: Vec<String> = vec!["netns".into(), "exec".into(), ns.into()];
    args.extend(argv.iter().cloned());
    crate::run::spawn_detached("ip", &args, file)
}

/// A socket a service must hold before it counts as started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Listen {
    Tcp(Ipv4Addr, u16),
    Udp(Ipv4Addr, u16),
    /// A listening TCP port on any address, IPv4 or IPv6.
    TcpPort(u16),
}

/// `/proc/net/{tcp,udp}` form of a local IPv4 address (`AABBCCDD:PPPP`, kernel byte order).
fn proc_hex(addr: Ipv4Addr, port: u16) -> String {
    format!("{:08X}:{port:04X}", u32::from_ne_bytes(addr.octets()))
}

/// The socket inodes `pid` and its descendants hold open.
fn socket_inodes(pid: u32) -> std::collections::BTreeSet<String> {
    let mut procs = vec![pid];
    procs.extend(crate::teardown::descendants(&[pid]));
    procs.into_iter().flat_map(socket_inodes_of).collect()
}

/// Does a line of `/proc/PID/net/{tcp,udp}{,6}` match, and is its socket one of `own`?
fn owned_line(
    table: &str,
    own: &std::collections::BTreeSet<String>,
    m: impl Fn(&[&str]) -> bool,
) -> bool {
    table.lines().any(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        m(&w) && w.get(9).is_some_and(|inode| own.contains(*inode))
    })
}

/// Stop every process in namespace `ns` that listens on one of `ports` (TERM, then KILL after
/// `grace`): a service about to start there takes those ports, and the namespace is a lab
/// guest's own, so a listener found there is a stale one of the lab's (a run killed before it
/// recorded it). Returns the pids stopped.
pub(crate) fn free_ports(ns: &str, ports: &[u16], grace: Duration) -> Vec<u32> {
    if ports.is_empty() {
        return Vec::new();
    }
    let holders = |pids: &[u32]| -> Vec<u32> {
        pids.iter()
            .copied()
            .filter(|&pid| {
                let own = socket_inodes_of(pid);
                ports.iter().any(|&port| {
                    let want = format!(":{port:04X}");
                    ["tcp", "tcp6"].iter().any(|f| {
                        std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).is_ok_and(|t| {
                            owned_line(&t, &own, |w| {
                                w.get(1).is_some_and(|a| a.ends_with(&want))
                                    && w.get(3) == Some(&"0A")
                            })
                        })
                    })
                })
            })
            .collect()
    };
    let stale = holders(&pids_in(&[ns.to_string()]));
    for pid in &stale {
        let _ = crate::run::output("kill", &["-TERM", "--", &pid.to_string()]);
    }
    let start = Instant::now();
    loop {
        let left = holders(&stale);
        if left.is_empty() {
            break;
        }
        if start.elapsed() > grace {
            for pid in left {
                let _ = crate::run::output("kill", &["-KILL", "--", &pid.to_string()]);
            }
            std::thread::sleep(Duration::from_millis(50));
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    stale
}

/// The socket inodes `pid` alone holds open.
fn socket_inodes_of(pid: u32) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for fd in fds.flatten() {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy();
            if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                out.insert(inode.to_string());
            }
        }
    }
    out
}

/// Does the process `pid` itself (or a child of it) listen on TCP `port` (any address, IPv4
/// or IPv6)? Another process's socket in the same namespace — a stale listener — does not
/// count.
pub(crate) fn listening(pid: u32, port: u16) -> bool {
    let want = format!(":{port:04X}");
    let own = socket_inodes(pid);
    ["tcp", "tcp6"].iter().any(|f| {
        std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).is_ok_and(|t| {
            owned_line(&t, &own, |w| {
                w.get(1).is_some_and(|a| a.ends_with(&want)) && w.get(3) == Some(&"0A")
            })
        })
    })
}

/// Does `pid` (or a child of it) hold the socket, in its own namespace?
fn holds(pid: u32, l: Listen) -> bool {
    let (file, addr, port, state) = match l {
        Listen::Tcp(a, p) => ("tcp", a, p, "0A"),
        Listen::Udp(a, p) => ("udp", a, p, "07"),
        Listen::TcpPort(p) => return listening(pid, p),
    };
    let want = proc_hex(addr, port);
    let own = socket_inodes(pid);
    std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).is_ok_and(|t| {
        owned_line(&t, &own, |w| {
            w.get(1) == Some(&want.as_str()) && w.get(3) == Some(&state)
        })
    })
}

/// Wait until the service `pid` holds every socket of `ready`; its output is the evidence
/// when it exits or the deadline passes.
pub(crate) fn wait_ready(
    name: &str,
    pid: u32,
    ready: &[Listen],
    out: &Path,
) -> Result<(), LabError> {
    let start = Instant::now();
    loop {
        if ready.iter().all(|l| holds(pid, *l)) {
            return Ok(());
        }
        let gone = !Path::new(&format!("/proc/{pid}/net")).exists();
        if gone || start.elapsed() > READY_DEADLINE {
            let said = std::fs::read_to_string(out).unwrap_or_default();
            return Err(LabError::Service {
                name: name.into(),
                reason: format!(
                    "{} after {} ms (waiting for {ready:?}): {}",
                    if gone { "exited" } else { "not ready" },
                    start.elapsed().as_millis(),
                    said.trim()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One long-running service being started.
pub(crate) struct Pending {
    pub(crate) record: ServiceRecord,
    pub(crate) pid: u32,
    pub(crate) out: PathBuf,
    ready: Vec<Listen>,
}

pub(crate) fn launch(
    dir: &Path,
    name: &str,
    ns: &str,
    argv: &[String],
    log: &str,
    ready: Vec<Listen>,
) -> Result<Pending, LabError> {
    let out = dir.join(format!("{name}.out"));
    let pid = spawn_in(ns, argv, &out)?;
    let pid_file = dir.join(format!("{name}.pid"));
    // dnsmasq writes the same pid itself; busybox httpd has no pid file.
    write(&pid_file, &format!("{pid}\n"))?;
    Ok(Pending {
        record: ServiceRecord {
            name: name.into(),
            ns: ns.into(),
            pid_file,
            log: dir.join(log),
            argv: argv.to_vec(),
            ready: ready.clone(),
        },
        pid,
        out,
        ready,
    })
}

impl Pending {
    /// Wait until it holds its sockets (see [`wait_ready`]).
    pub(crate) fn wait(&self) -> Result<(), LabError> {
        wait_ready(&self.record.name, self.pid, &self.ready, &self.out)
    }
}

/// Start a recorded service again with its recorded argv (its process is gone) and wait
/// until it holds its sockets; a process still alive under the recorded pid is stopped first.
pub fn restart(prefix: &str, record: &ServiceRecord) -> Result<(), LabError> {
    if record.argv.is_empty() {
        return Err(LabError::Service {
            name: record.name.clone(),
            reason: "no recorded command (made by an older phoenix); rebuild the lab".into(),
        });
    }
    if let Some(pid) = read_pid(&record.pid_file)
        && pids_in(std::slice::from_ref(&record.ns)).contains(&pid)
    {
        let _ = crate::run::output("kill", &["-TERM", "--", &pid.to_string()]);
        let start = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists() && start.elapsed() < READY_DEADLINE {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let dir = state_dir(prefix);
    let log = record
        .log
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("{}.log", record.name));
    let p = launch(
        &dir,
        &record.name,
        &record.ns,
        &record.argv,
        &log,
        record.ready.clone(),
    )?;
    p.wait()
}

fn v4(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

/// Start the services of `t` (the network must be up) side by side, wait until each listens,
/// then run the DHCP clients. Records `services.json`.
pub fn start(t: &LabTopology) -> Result<ServicesState, LabError> {
    let dir = state_dir(&t.prefix);
    let www = dir.join("www");
    std::fs::create_dir_all(&www).map_err(|e| LabError::io(&www, e))?;
    write(
        &www.join("index.html"),
        &format!(
            "<!doctype html>\n<title>phoenix lab {}</title>\n<p>phoenix lab internet endpoint</p>\n",
            t.prefix
        ),
    )?;
    let mut pending = vec![
        launch(
            &dir,
            "dnsmasq-wan",
            &t.wan,
            &wan_dnsmasq_args(&dir),
            "dnsmasq-wan.log",
            vec![
                Listen::Udp(v4(INTERNET_RESOLVER), 53),
                Listen::Udp(Ipv4Addr::UNSPECIFIED, 67),
            ],
        )?,
        launch(
            &dir,
            "httpd-wan",
            &t.wan,
            &httpd_args(&www),
            "httpd-wan.out",
            vec![Listen::Tcp(v4(INTERNET_HTTP), 80)],
        )?,
    ];
    if let Some(conf) = &t.mesh_dns {
        let file = dir.join("dnsmasq-hv.conf");
        write(&file, conf)?;
        let ready = t
            .mesh_dns_listen
            .iter()
            .map(|a| Listen::Udp(*a, 53))
            .collect();
        pending.push(launch(
            &dir,
            "dnsmasq-hv",
            &t.hv,
            &hv_dnsmasq_args(&dir, &file),
            "dnsmasq-hv.log",
            ready,
        )?);
    }
    let mut state = ServicesState::default();
    for p in pending {
        p.wait()?;
        state.services.push(p.record);
    }
    if !t.dhcp_clients.is_empty() {
        let script = dir.join("udhcpc.sh");
        write(&script, UDHCPC_SCRIPT)?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| LabError::io(&script, e))?;
        for c in &t.dhcp_clients {
            state
                .leases
                .push(lease(&script, c.guest, &c.ns, &c.nic, c.mac.clone())?);
        }
    }
    save(&t.prefix, &state)?;
    Ok(state)
}

/// Run udhcpc once on `nic` in `ns` and record the address it got.
fn lease(
    script: &Path,
    guest: u32,
    ns: &str,
    nic: &str,
    mac: Option<String>,
) -> Result<LeaseRecord, LabError> {
    let t0 = Instant::now();
    run_in(ns, &udhcpc_args(nic, script))?;
    let address = crate::status::links(ns)?
        .into_iter()
        .find(|l| l.name == nic)
        .and_then(|l| l.addresses.into_iter().next());
    Ok(LeaseRecord {
        guest,
        ns: ns.to_string(),
        nic: nic.to_string(),
        mac,
        address,
        elapsed_ms: t0.elapsed().as_millis(),
    })
}

/// Obtain the lease of a recorded DHCP client again (its NIC lost the address).
pub fn renew(prefix: &str, l: &LeaseRecord) -> Result<LeaseRecord, LabError> {
    let script = state_dir(prefix).join("udhcpc.sh");
    if !script.exists() {
        write(&script, UDHCPC_SCRIPT)?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| LabError::io(&script, e))?;
    }
    lease(&script, l.guest, &l.ns, &l.nic, l.mac.clone())
}

/// Record `state` in the lab's `services.json`.
pub fn save(prefix: &str, state: &ServicesState) -> Result<(), LabError> {
    let json = serde_json::to_string_pretty(state).map_err(LabError::State)?;
    write(&state_dir(prefix).join(SERVICES_FILE), &json)
}

/// The recorded services of a lab, if any.
pub fn load(prefix: &str) -> Option<ServicesState> {
    let text = std::fs::read_to_string(state_dir(prefix).join(SERVICES_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The pid in a pid file.
pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Services and leases of the lab `prefix` now (empty when nothing was recorded).
/// `links` gives the current addresses of a NIC: (namespace, link) → addresses.
pub fn status(
    prefix: &str,
    links: impl Fn(&str, &str) -> Vec<String>,
) -> (Vec<ServiceStatus>, Vec<LeaseStatus>) {
    let Some(state) = load(prefix) else {
        return (Vec::new(), Vec::new());
    };
    let services = state
        .services
        .into_iter()
        .map(|s| {
            let pid = read_pid(&s.pid_file);
            let alive = pid.is_some_and(|pid| pids_in(std::slice::from_ref(&s.ns)).contains(&pid));
            ServiceStatus {
                name: s.name,
                ns: s.ns,
                pid,
                alive,
                log: s.log,
            }
        })
        .collect();
    let leases = state
        .leases
        .into_iter()
        .map(|l| {
            let held = l
                .address
                .as_ref()
                .is_some_and(|a| links(&l.ns, &l.nic).contains(a));
            LeaseStatus { lease: l, held }
        })
        .collect();
    (services, leases)
}

#[cfg(test)]
#[path = "services_tests.rs"]
mod tests;
