//! Verification of the lab's Swarm with real traffic; every check returns pass or fail with
//! evidence ([`SwarmCheck`], which the verify layer turns into report lines):
//! - `swarm/engine/<id>`: the node's dockerd answers on its socket;
//! - `swarm/node/<id>`: the first manager lists the node Ready, with the model's role, labels
//!   and node address;
//! - `swarm/network/<name>`: the overlay exists, attachable, Swarm scope, MTU option = underlay;
//! - `swarm/underlay/<a>-<b>`: TCP to the peer's gossip port 7946, node address to node
//!   address (an ICMP echo is reported alongside, see [`underlay`]);
//! - overlay, from a throwaway container on each node attached to the overlay
//!   (`phoenix-probe-<id>`, kept and reused by the next run, see [`overlay`]):
//!   `swarm/overlay-name/<a>-<b>` (ping the peer container by name through Docker's
//!   embedded DNS), `swarm/overlay-addr/<a>-<b>` (by its
//!   overlay address), `swarm/overlay-df/<a>-<b>` (iputils `ping -M do` with MTU − 28 bytes
//!   of payload: exactly one overlay MTU, must pass unfragmented), `swarm/overlay-mtu/<id>`
//!   (the container's overlay interface MTU = underlay − 50).
//!
//! Probes poll with a deadline (the first overlay packet may wait for the peer's gossip).
//! I/O: the Engine API, `ip netns exec … ping`.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, ExecConfig, HostConfig, NetworkingConfig, NodeState,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use futures_util::StreamExt;
use serde::Serialize;

use super::{
    DF_PING, IMAGE_REPO, IMAGE_TAG, SwarmNode, SwarmPlan, SwarmRoleName, client, overlay_options,
    runtime,
};
use crate::run::output;

/// How long the first overlay ping by name may take to succeed.
const OVERLAY_DEADLINE: Duration = Duration::from_secs(6);
/// Tries of the address and don't-fragment pings (one second each).
const RETRIES: u32 = 3;

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct SwarmCheck {
    /// Stable identifier (`swarm/node/1002`).
    pub id: String,
    /// Who it is about (`drphoenix (1002)`, `portainer-manager (1001) → drphoenix (1002)`).
    pub subject: String,
    /// What was checked, for humans.
    pub check: String,
    pub pass: bool,
    /// What was observed (the evidence on a failure).
    pub observed: String,
    pub duration_ms: u128,
}

struct Timer(Instant);

impl Timer {
    fn start() -> Self {
        Timer(Instant::now())
    }
    fn done(
        self,
        id: String,
        subject: String,
        check: &str,
        r: Result<String, String>,
    ) -> SwarmCheck {
        let (pass, observed) = match r {
            Ok(o) => (true, o),
            Err(o) => (false, o),
        };
        SwarmCheck {
            id,
            subject,
            check: check.to_string(),
            pass,
            observed,
            duration_ms: self.0.elapsed().as_millis(),
        }
    }
}

fn pair(a: &SwarmNode, b: &SwarmNode) -> (String, String) {
    (
        format!("{}-{}", a.guest, b.guest),
        format!("{} → {}", a.label(), b.label()),
    )
}

/// Ordered pairs of distinct nodes.
fn pairs(plan: &SwarmPlan) -> Vec<(&SwarmNode, &SwarmNode)> {
    let mut out = Vec::new();
    for a in &plan.nodes {
        for b in &plan.nodes {
            if a.guest != b.guest {
                out.push((a, b));
            }
        }
    }
    out
}

/// Every check of the lab's Swarm (see the module header). Never fails as a whole: a check
/// that cannot run is a failed check with the reason.
pub fn checks(plan: &SwarmPlan) -> Vec<SwarmCheck> {
    // The three groups share nothing but the engines (each runs its own runtime or threads):
    // concurrent, reported in this order.
    std::thread::scope(|s| {
        let under = s.spawn(|| underlay(plan));
        let over = s.spawn(|| overlay(plan));
        let mut out = engines_and_nodes(plan);
        out.extend(under.join().unwrap_or_default());
        out.extend(over.join().unwrap_or_default());
        out
    })
}

/// The engine, node and network checks.
pub fn engines_and_nodes(plan: &SwarmPlan) -> Vec<SwarmCheck> {
    let Ok(rt) = runtime() else {
        return vec![fail_all(plan, "cannot start the async runtime")];
    };
    rt.block_on(async {
        let mut out = Vec::new();
        for n in &plan.nodes {
            let t = Timer::start();
            let r = engine_answers(n).await;
            out.push(t.done(
                format!("swarm/engine/{}", n.guest),
                n.label(),
                "dockerd answers on its socket",
                r,
            ));
        }
        out.extend(nodes(plan).await);
        let t = Timer::start();
        let r = network(plan).await;
        out.push(t.done(
            format!("swarm/network/{}", plan.overlay),
            plan.overlay.clone(),
            "attachable Swarm overlay with the underlay's MTU",
            r,
        ));
        out
    })
}

fn fail_all(plan: &SwarmPlan, why: &str) -> SwarmCheck {
    Timer::start().done(
        "swarm".into(),
        plan.prefix.clone(),
        "the lab's Swarm",
        Err(why.into()),
    )
}

async fn engine_answers(n: &SwarmNode) -> Result<String, String> {
    if !n.socket().exists() {
        return Err(format!(
            "dockerd of {} is not running: no socket {}",
            n.label(),
            n.socket().display()
        ));
    }
    let c = client(n).map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(3), c.version()).await {
        Ok(Ok(v)) => Ok(format!(
            "dockerd {} (API {}) on {}",
            v.version.unwrap_or_default(),
            v.api_version.unwrap_or_default(),
            n.socket().display()
        )),
        Ok(Err(e)) => Err(format!(
            "dockerd of {} does not answer on {}: {e}",
            n.label(),
            n.socket().display()
        )),
        Err(_) => Err(format!(
            "dockerd of {} does not answer on {} within 3 s",
            n.label(),
            n.socket().display()
        )),
    }
}

async fn nodes(plan: &SwarmPlan) -> Vec<SwarmCheck> {
    let check = "Ready in the Swarm with the model's role, labels and address";
    let Some(leader) = plan.leader() else {
        return Vec::new();
    };
    let listed = async {
        let c = client(leader).map_err(|e| e.to_string())?;
        c.list_nodes(None).await.map_err(|e| {
            format!(
                "the first manager {} cannot list the nodes: {e}",
                leader.label()
            )
        })
    }
    .await;
    let mut out = Vec::new();
    for n in &plan.nodes {
        let t = Timer::start();
        let r = listed.as_ref().map_err(Clone::clone).and_then(|list| {
            let node = list
                .iter()
                .find(|x| {
                    x.description.as_ref().and_then(|d| d.hostname.as_deref())
                        == Some(n.name.as_str())
                })
                .ok_or_else(|| format!("no node named {} in the Swarm", n.name))?;
            judge_node(n, node)
        });
        out.push(t.done(format!("swarm/node/{}", n.guest), n.label(), check, r));
    }
    out
}

/// Compare one listed node with the plan. Pure.
pub fn judge_node(n: &SwarmNode, node: &bollard::models::Node) -> Result<String, String> {
    let status = node.status.clone().unwrap_or_default();
    let spec = node.spec.clone().unwrap_or_default();
    let state = status.state.unwrap_or(NodeState::UNKNOWN);
    let role = match spec.role {
        Some(bollard::models::NodeSpecRoleEnum::MANAGER) => "manager",
        Some(bollard::models::NodeSpecRoleEnum::WORKER) => "worker",
        _ => "unknown",
    };
    let labels: std::collections::BTreeMap<String, String> =
        spec.labels.unwrap_or_default().into_iter().collect();
    let label_text: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let addr = status.addr.unwrap_or_default();
    let seen = format!(
        "{} {state:?}, {role}, labels [{}], address {addr}",
        n.name,
        label_text.join(", ")
    );
    let mut wrong = Vec::new();
    if state != NodeState::READY {
        wrong.push(format!("state {state:?}, want READY"));
    }
    if role != n.role.to_string() {
        wrong.push(format!("role {role}, want {}", n.role));
    }
    if labels != n.labels {
        wrong.push("labels differ from the model".to_string());
    }
    // A manager reports 0.0.0.0 for itself in some versions; the worker's must match.
    if n.role == SwarmRoleName::Worker && addr != n.addr.to_string() {
        wrong.push(format!("address {addr}, want {}", n.addr));
    }
    if wrong.is_empty() {
        Ok(seen)
    } else {
        Err(format!("{seen}: {}", wrong.join("; ")))
    }
}

async fn network(plan: &SwarmPlan) -> Result<String, String> {
    let leader = plan.leader().ok_or("no manager")?;
    let c = client(leader).map_err(|e| e.to_string())?;
    let n = c
        .inspect_network(&plan.overlay, None)
        .await
        .map_err(|e| format!("{} on {}: {e}", plan.overlay, leader.label()))?;
    let want = overlay_options(plan);
    let opts = n.options.unwrap_or_default();
    let seen = format!(
        "driver {}, scope {}, attachable {}, options {:?}",
        n.driver.as_deref().unwrap_or("?"),
        n.scope.as_deref().unwrap_or("?"),
        n.attachable.unwrap_or(false),
        opts
    );
    let ok = n.driver.as_deref() == Some("overlay")
        && n.scope.as_deref() == Some("swarm")
        && n.attachable == Some(true)
        && want.iter().all(|(k, v)| opts.get(k) == Some(v));
    if ok { Ok(seen) } else { Err(seen) }
}

/// Swarm's node-to-node gossip port, open between the nodes in the model's guest firewalls.
pub const GOSSIP_PORT: u16 = 7946;

/// The underlay between every pair of nodes, namespace to namespace: a TCP connect to the
/// peer's gossip port decides (Swarm's own underlay traffic, which the model's guest
/// firewalls allow between the nodes); an ICMP echo is reported alongside but does not count
/// (the seed's VM firewalls drop ICMP from other guests).
pub fn underlay(plan: &SwarmPlan) -> Vec<SwarmCheck> {
    // One thread a pair: an ICMP echo a guest firewall drops waits its whole second.
    let pairs = pairs(plan);
    std::thread::scope(|s| {
        let handles: Vec<_> = pairs
            .iter()
            .map(|&(a, b)| s.spawn(move || underlay_pair(a, b)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}

fn underlay_pair(a: &SwarmNode, b: &SwarmNode) -> SwarmCheck {
    let t = Timer::start();
    let peer = SocketAddr::from((b.addr, GOSSIP_PORT));
    let addr = b.addr.to_string();
    // The echo is informational (a guest firewall may drop it): sent alongside the TCP
    // connect that decides, and waited for a quarter second (a veth pair answers in µs).
    let (icmp, connected) = std::thread::scope(|scope| {
        let echo = scope.spawn(|| {
            match output(
                "ip",
                &["netns", "exec", &a.ns, "ping", "-c1", "-W0.25", &addr],
            ) {
                Ok(o) if o.status.success() => "icmp echo answered".to_string(),
                Ok(_) => "icmp echo unanswered (a guest firewall may drop it)".to_string(),
                Err(e) => format!("icmp echo not sent: {e}"),
            }
        });
        let connected = connect_from(&a.ns, peer);
        let icmp = echo
            .join()
            .unwrap_or_else(|_| "icmp echo not sent: the probing thread panicked".to_string());
        (icmp, connected)
    });
    let r = match connected {
        Ok(took) => Ok(format!(
            "tcp {peer} connected in {} µs; {icmp}",
            took.as_micros()
        )),
        Err(e) => Err(format!("tcp {peer} from {}: {e}; {icmp}", a.ns)),
    };
    let (id, subject) = pair(a, b);
    t.done(
        format!("swarm/underlay/{id}"),
        subject,
        "the peer's Swarm gossip port answers on the underlay (node address to node address)",
        r,
    )
}

/// A TCP connect from inside `ns`, on a thread that entered it (setns changes only that
/// thread).
fn connect_from(ns: &str, peer: SocketAddr) -> Result<Duration, String> {
    let path = std::path::Path::new("/run/netns").join(ns);
    let handle = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || -> Result<Duration, String> {
                nix::sched::setns(&handle, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| format!("setns into {ns}: {e}"))?;
                let start = Instant::now();
                TcpStream::connect_timeout(&peer, Duration::from_secs(2))
                    .map(|_| start.elapsed())
                    .map_err(|e| e.to_string())
            })
            .join()
            .map_err(|_| "the probing thread panicked".to_string())?
    })
}

/// Name of the throwaway container on `n`.
pub fn probe_name(n: &SwarmNode) -> String {
    format!("phoenix-probe-{}", n.guest)
}

/// Run `argv` in `container`; exit code and output.
async fn exec(c: &Docker, container: &str, argv: &[String]) -> Result<(i64, String), String> {
    let created = c
        .create_exec(
            container,
            ExecConfig {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(argv.to_vec()),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("exec in {container}: {e}"))?;
    let mut text = String::new();
    if let bollard::exec::StartExecResults::Attached { mut output, .. } = c
        .start_exec(&created.id, None)
        .await
        .map_err(|e| format!("exec in {container}: {e}"))?
    {
        while let Some(item) = output.next().await {
            match item {
                Ok(chunk) => text.push_str(&chunk.to_string()),
                Err(e) => return Err(format!("exec in {container}: {e}")),
            }
        }
    }
    let code = c
        .inspect_exec(&created.id)
        .await
        .map_err(|e| format!("exec in {container}: {e}"))?
        .exit_code
        .unwrap_or(-1);
    Ok((code, text))
}

/// A probe container running on a node: its client and overlay address.
struct Probe {
    client: Docker,
    name: String,
    addr: String,
}

async fn remove_probe(c: &Docker, name: &str) {
    let opts = RemoveContainerOptionsBuilder::new().force(true).build();
    let _ = c.remove_container(name, Some(opts)).await;
}

/// How long a node gets to let go of the overlay after its last container left.
const SETTLE_DEADLINE: Duration = Duration::from_secs(5);

/// Wait until `n` has let go of the overlay when nothing uses it any more: after the last
/// container leaves, the node drops its attachment (its load-balancer endpoint, then the whole
/// network on a worker) within about half a second; a container attached during that window
/// gets a broken overlay (no peers, names unresolved — seen here, every time, when probes are
/// recreated at once). Returns without error at the deadline; the checks then say what broke.
async fn settle(c: &Docker, overlay: &str) {
    let start = Instant::now();
    while start.elapsed() < SETTLE_DEADLINE {
        let transitional = match c.inspect_network(overlay, None).await {
            Ok(n) => {
                let eps = n.containers.unwrap_or_default();
                !eps.is_empty() && eps.keys().all(|k| k.starts_with("lb-"))
            }
            Err(_) => false,
        };
        if !transitional {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The probe's address on the overlay when it runs attached to it.
fn overlay_addr(
    inspect: bollard::models::ContainerInspectResponse,
    overlay: &str,
) -> Option<String> {
    let running = inspect
        .state
        .as_ref()
        .and_then(|s| s.running)
        .unwrap_or(false);
    inspect
        .network_settings
        .and_then(|s| s.networks)
        .and_then(|m| m.get(overlay).cloned())
        .and_then(|e| e.ip_address)
        .filter(|a| running && !a.is_empty())
}

/// The probe on `n`: reused while it runs attached to the overlay, else (re)created.
async fn start_probe(plan: &SwarmPlan, n: &SwarmNode) -> Result<Probe, String> {
    let c = client(n).map_err(|e| e.to_string())?;
    let name = probe_name(n);
    match c.inspect_container(&name, None).await {
        Ok(i) => {
            if let Some(addr) = overlay_addr(i, &plan.overlay) {
                return Ok(Probe {
                    client: c,
                    name,
                    addr,
                });
            }
            remove_probe(&c, &name).await;
            settle(&c, &plan.overlay).await;
        }
        Err(_) => settle(&c, &plan.overlay).await,
    }
    let body = ContainerCreateBody {
        image: Some(format!("{IMAGE_REPO}:{IMAGE_TAG}")),
        cmd: Some(vec!["sleep".into(), "2147483647".into()]),
        // busybox sleep as pid 1 ignores SIGTERM: a stopping engine need not wait 10 s for it.
        stop_timeout: Some(1),
        labels: Some(HashMap::from([(
            "phoenix.lab.probe".to_string(),
            plan.prefix.clone(),
        )])),
        host_config: Some(HostConfig {
            network_mode: Some(plan.overlay.clone()),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                plan.overlay.clone(),
                EndpointSettings::default(),
            )])),
        }),
        ..Default::default()
    };
    let opts = CreateContainerOptionsBuilder::new().name(&name).build();
    let what = |e: bollard::errors::Error| format!("probe container on {}: {e}", n.label());
    c.create_container(Some(opts), body).await.map_err(what)?;
    c.start_container(&name, None).await.map_err(what)?;
    let inspect = c.inspect_container(&name, None).await.map_err(what)?;
    let addr = overlay_addr(inspect, &plan.overlay)
        .ok_or_else(|| format!("probe on {} has no address on {}", n.label(), plan.overlay))?;
    Ok(Probe {
        client: c,
        name,
        addr,
    })
}

/// `argv` until it exits 0, at most `tries` times or until `deadline`.
async fn poll(
    p: &Probe,
    argv: &[String],
    tries: u32,
    deadline: Duration,
) -> Result<String, String> {
    let start = Instant::now();
    let mut last = String::new();
    for i in 0..tries {
        match exec(&p.client, &p.name, argv).await {
            Ok((0, out)) => return Ok(summary(&out)),
            Ok((code, out)) => last = format!("exit {code}: {}", summary(&out)),
            Err(e) => last = e,
        }
        if start.elapsed() > deadline || i + 1 == tries {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "`{}` in {} failed after {} ms: {last}",
        argv.join(" "),
        p.name,
        start.elapsed().as_millis()
    ))
}

fn summary(out: &str) -> String {
    let lines: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.contains("transmitted")
                || l.contains("error")
                || l.contains("bad address")
                || l.contains("mtu")
        })
        .collect();
    if lines.is_empty() {
        out.trim().lines().last().unwrap_or("").to_string()
    } else {
        lines.join("; ")
    }
}

/// The ping argv of each overlay check. Pure.
pub fn ping_by_name(target: &str) -> Vec<String> {
    ["ping", "-c1", "-W1", target].map(String::from).to_vec()
}
pub fn ping_df(target: &str, overlay_mtu: u16) -> Vec<String> {
    // 20 bytes of IPv4 and 8 of ICMP header: the packet is exactly one overlay MTU.
    let payload = overlay_mtu.saturating_sub(28).to_string();
    [DF_PING, "-c1", "-W1", "-M", "do", "-s", &payload, target]
        .map(String::from)
        .to_vec()
}

/// Throwaway containers on every node with an answering engine, the pings between them, the
/// overlay MTU. The containers stay for the next run (`lab down` removes them, or
/// [`remove_probes`]): removing them detaches the nodes from the overlay, and a container
/// attached again soon after sometimes gets an overlay without its peers (names unresolved,
/// no VXLAN sent: dockerd 20.10's network database losing the re-join, seen here about one run
/// in five even after [`settle`]); reused probes never churn the attachment.
pub fn overlay(plan: &SwarmPlan) -> Vec<SwarmCheck> {
    let Ok(rt) = runtime() else {
        return vec![fail_all(plan, "cannot start the async runtime")];
    };
    rt.block_on(async {
        let starts = plan.nodes.iter().map(|n| start_probe(plan, n));
        let probes: Vec<Result<Probe, String>> = futures_util::future::join_all(starts).await;
        converge_peers(plan, &probes).await;
        let by_guest: HashMap<u32, &Result<Probe, String>> = plan
            .nodes
            .iter()
            .map(|n| n.guest)
            .zip(probes.iter())
            .collect();
        // The MTU checks and the pairs' pings all at once: each is a few `docker exec`s.
        let mtus = plan.nodes.iter().map(|n| {
            let probe = by_guest.get(&n.guest).copied();
            async move {
                let t = Timer::start();
                let r = match probe {
                    Some(Ok(p)) => mtu(p, plan).await,
                    Some(Err(e)) => Err(e.clone()),
                    None => Err("no probe".into()),
                };
                t.done(
                    format!("swarm/overlay-mtu/{}", n.guest),
                    n.label(),
                    "the overlay interface MTU is the underlay MTU − 50",
                    r,
                )
            }
        });
        let pair_checks = pairs(plan).into_iter().map(|(a, b)| {
            let pa = by_guest.get(&a.guest).copied();
            let pb = by_guest.get(&b.guest).copied();
            overlay_pair(plan, a, b, pa, pb)
        });
        let (mut out, pairs_done) = futures_util::future::join(
            futures_util::future::join_all(mtus),
            futures_util::future::join_all(pair_checks),
        )
        .await;
        out.extend(pairs_done.into_iter().flatten());
        out
    })
}

/// The probe containers started and their nodes' overlay peers settled ahead of the first
/// [`overlay`], which then reuses them: a sync starts them while the stand-in's task is
/// being scheduled. Best effort: whatever fails here, [`overlay`] tries again and says why.
pub fn start_probes(plan: &SwarmPlan) {
    let Ok(rt) = runtime() else {
        return;
    };
    rt.block_on(async {
        let starts = plan.nodes.iter().map(|n| start_probe(plan, n));
        let probes: Vec<Result<Probe, String>> = futures_util::future::join_all(starts).await;
        converge_peers(plan, &probes).await;
    });
}

/// Remove the probe containers (they are otherwise reused by the next [`overlay`]).
pub fn remove_probes(plan: &SwarmPlan) {
    let Ok(rt) = runtime() else {
        return;
    };
    rt.block_on(async {
        for n in &plan.nodes {
            if let Ok(c) = client(n) {
                remove_probe(&c, &probe_name(n)).await;
                settle(&c, &plan.overlay).await;
            }
        }
    });
}

/// Wait until every probe's node lists every other probe's node among the overlay's gossip
/// peers (its network database membership), so the first pings do not race the join.
async fn converge_peers(plan: &SwarmPlan, probes: &[Result<Probe, String>]) {
    let nodes: Vec<(&SwarmNode, &Probe)> = plan
        .nodes
        .iter()
        .zip(probes)
        .filter_map(|(n, p)| p.as_ref().ok().map(|p| (n, p)))
        .collect();
    let start = Instant::now();
    for (n, p) in &nodes {
        let others: Vec<String> = nodes
            .iter()
            .filter(|(m, _)| m.guest != n.guest)
            .map(|(m, _)| m.addr.to_string())
            .collect();
        while start.elapsed() < SETTLE_DEADLINE {
            let peers: Vec<String> = match p.client.inspect_network(&plan.overlay, None).await {
                Ok(net) => net
                    .peers
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|x| x.ip)
                    .collect(),
                Err(_) => Vec::new(),
            };
            if others.iter().all(|o| peers.contains(o)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn mtu(p: &Probe, plan: &SwarmPlan) -> Result<String, String> {
    let argv: Vec<String> = ["ip", "-o", "-4", "addr", "show"]
        .map(String::from)
        .to_vec();
    let (_, addrs) = exec(&p.client, &p.name, &argv).await?;
    let dev = addrs
        .lines()
        .find(|l| l.contains(&format!("inet {}/", p.addr)))
        .and_then(|l| l.split_whitespace().nth(1))
        .ok_or_else(|| format!("no interface holds {} in {}", p.addr, p.name))?
        .to_string();
    let argv = vec!["cat".to_string(), format!("/sys/class/net/{dev}/mtu")];
    let (_, text) = exec(&p.client, &p.name, &argv).await?;
    let seen = text.trim().to_string();
    let msg = format!(
        "{dev} ({}) MTU {seen}, underlay {}",
        p.addr, plan.underlay_mtu
    );
    if seen == plan.overlay_mtu.to_string() {
        Ok(msg)
    } else {
        Err(format!("{msg}, want {}", plan.overlay_mtu))
    }
}

async fn overlay_pair(
    plan: &SwarmPlan,
    a: &SwarmNode,
    b: &SwarmNode,
    pa: Option<&Result<Probe, String>>,
    pb: Option<&Result<Probe, String>>,
) -> Vec<SwarmCheck> {
    let (id, subject) = pair(a, b);
    let kinds = [
        (
            "overlay-name",
            "ping the peer's container by name over the overlay",
        ),
        (
            "overlay-addr",
            "ping the peer's container by overlay address",
        ),
        (
            "overlay-df",
            "don't-fragment ping of one overlay MTU (MTU − 28 bytes of payload)",
        ),
    ];
    let (p, peer) = match (pa, pb) {
        (Some(Ok(p)), Some(Ok(q))) => (p, q),
        (x, y) => {
            let why = [x, y]
                .into_iter()
                .filter_map(|r| match r {
                    Some(Err(e)) => Some(e.clone()),
                    None => Some("no probe".to_string()),
                    Some(Ok(_)) => None,
                })
                .collect::<Vec<_>>()
                .join("; ");
            return kinds
                .iter()
                .map(|(k, check)| {
                    Timer::start().done(
                        format!("swarm/{k}/{id}"),
                        subject.clone(),
                        check,
                        Err(why.clone()),
                    )
                })
                .collect();
        }
    };
    let mut out = Vec::new();
    let t = Timer::start();
    let r = poll(p, &ping_by_name(&peer.name), u32::MAX, OVERLAY_DEADLINE).await;
    out.push(t.done(
        format!("swarm/{}/{id}", kinds[0].0),
        subject.clone(),
        kinds[0].1,
        r,
    ));
    // Once names answer the overlay carries traffic: the address and the one-MTU pings
    // together.
    let by_addr = async {
        let t = Timer::start();
        let r = poll(p, &ping_by_name(&peer.addr), RETRIES, OVERLAY_DEADLINE).await;
        (t, r)
    };
    let df = async {
        let t = Timer::start();
        let argv = ping_df(&peer.addr, plan.overlay_mtu);
        let r = poll(p, &argv, RETRIES, OVERLAY_DEADLINE).await;
        (t, r)
    };
    let ((t_addr, r_addr), (t, r)) = futures_util::future::join(by_addr, df).await;
    out.push(t_addr.done(
        format!("swarm/{}/{id}", kinds[1].0),
        subject.clone(),
        kinds[1].1,
        r_addr,
    ));
    out.push(t.done(format!("swarm/{}/{id}", kinds[2].0), subject, kinds[2].1, r));
    out
}
