//! `phoenix verify --target lab`: the checks for a running lab twin, derived from the desired
//! state plus the lab's places ([`LabPlaces`]: which namespace holds which guest, the wan, the
//! DHCP clients, the CA root), so this crate needs nothing from `phoenix-lab`:
//!
//! 1. DHCP: every DHCP client NIC holds a dynamic address in the public range;
//! 2. DNS: from every guest, every expected name via every mesh DNS server
//!    ([`crate::expect::dns_expectations`]), NXDOMAIN for an unknown local name, an outside
//!    name answered through the upstream;
//! 3. NAT: every guest GETs the wan's HTTP endpoint (200); from the wan, no TCP connection
//!    opens to a mesh listener (the proxy, the backend, the gateway's mesh side, the mesh DNS)
//!    — each a *denied* check;
//! 4. the route trace ([`crate::route`]) of the Portainer name: wan → gateway's leased
//!    address → proxy → backend; a broken route names the hop, who answered and the cause
//!    ([`crate::route::diagnose`]), with what Traefik received and what the gateway's nginx
//!    logged when their logs are known ([`LabPlan::proxy_access_log`],
//!    [`LabPlan::gateway_error_log`]);
//! 5. TLS ([`crate::tls`]): every TLS service (gateway nginx, Traefik, HTTPS route backends,
//!    step-ca) presents a chain to the lab root holding the SANs the model expects.
//!
//! 6. fw: the firewall's reachability matrix ([`crate::matrix::reachability`]) — every
//!    allowed (source, guest, TCP port) pair connects, every denied one does not (ids
//!    `fw/<from>/<addr>:<port>`, the check names the deciding rule or policy; the `host`
//!    source runs in the hypervisor namespace); first a summary line `fw/matrix` counting
//!    both kinds ("firewall matrix: N allowed connect (n ok), M denied blocked (m ok)"). Each probed port is held for the group: by
//!    its real service, else by a temporary listener inside the destination's namespace, so
//!    a denial is the firewall's doing and not a closed port. Expects the guests' rulesets
//!    loaded (`phoenix_lab::guestfw`).
//!
//! Groups run concurrently (denied checks wait for their deadline). [`plan`] is pure; [`verify`]
//! does the I/O through a [`NetnsTarget`].

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use phoenix_model::DesiredState;
use phoenix_model::model::{GuestId, Scheme};
use phoenix_render::traefik::ingress::ingress;
use serde::Serialize;

use crate::endpoint::ProbeTarget;
use crate::expect::{DnsExpectations, dns_expectations};
use crate::hostinfo::{self, parse_inet4};
use crate::matrix::{Reach, matrix_summary, reachability};
use crate::netns::NetnsTarget;
use crate::report::{ProbeResult, Report, Status, Subject};
use crate::route::{self, Hop, RouteSpec};
use crate::run::verify_dns;
use crate::tcp::{self, Expect};
use crate::tls::{self, TlsCheck};

/// Subject name of the lab's upstream router / "internet" namespace.
pub const WAN: &str = "wan";

/// Deadlines of the lab checks.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub dhcp: Duration,
    pub dns: Duration,
    pub egress: Duration,
    pub denied: Duration,
    pub route: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            dhcp: Duration::from_secs(2),
            dns: Duration::from_secs(2),
            egress: Duration::from_secs(2),
            // Every lab address is across a veth pair: an admitted SYN is answered within the
            // sender's own softirq, microseconds later, so a quarter second of silence is a
            // drop, not a slow peer (a node's probes keep their own, longer deadlines).
            denied: Duration::from_millis(250),
            route: Duration::from_millis(2500),
        }
    }
}

/// What the lab knows about itself (from its recorded state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabPlaces {
    /// Guest id → namespace.
    pub guests: BTreeMap<u32, String>,
    /// The hypervisor namespace (the matrix's `host` source: the host's bridge addresses).
    pub hv: String,
    /// The wan namespace.
    pub wan: String,
    /// (guest, NIC) that get their address by DHCP from the wan.
    pub dhcp: Vec<(u32, String)>,
    /// The range DHCP leases come from (the public segment).
    pub public_range: IpNet,
    /// The wan's HTTP endpoint (port 80).
    pub egress: SocketAddr,
    /// A name outside the local domain the upstream answers.
    pub outside_name: String,
    /// PEM of the internal root, or why it is unavailable.
    pub root_pem: Result<String, String>,
}

/// Everything [`verify`] checks.
#[derive(Debug, Clone, Serialize)]
pub struct LabPlan {
    #[serde(skip)]
    pub target: NetnsTarget,
    pub dhcp: Vec<(Subject, String)>,
    pub public_range: IpNet,
    pub dns_subjects: Vec<Subject>,
    pub dns: DnsExpectations,
    pub egress: SocketAddr,
    pub egress_from: Vec<Subject>,
    /// Mesh listeners the wan must not reach: address and what listens there.
    pub denied: Vec<(SocketAddr, String)>,
    /// The route to trace; its first hop's address is the gateway's lease, found at run time.
    pub route: Result<RouteSpec, String>,
    /// Gateway (subject, DHCP NIC) whose lease the route's first hop goes to.
    pub route_gateway: Option<(Subject, String)>,
    /// Every TLS service and the SANs it must present ([`crate::tls`]).
    pub tls: Vec<TlsCheck>,
    #[serde(skip)]
    pub root_pem: Result<String, String>,
    /// The firewall's reachability matrix ([`reachability`]): each allowed pair must connect,
    /// each denied one must not (the `fw` group).
    pub fw: Vec<Reach>,
    /// Traefik's JSON access log (the lab's copy writes one), read after the route trace so a
    /// broken route's cause says which Host Traefik received; `None` from [`plan`], the caller
    /// sets it when it knows where the log is.
    pub proxy_access_log: Option<std::path::PathBuf>,
    /// The gateway nginx's error log, likewise: a 502 from the gateway then says why.
    pub gateway_error_log: Option<std::path::PathBuf>,
}

fn guest(id: GuestId) -> Subject {
    Subject::Guest(id)
}

/// Derive the checks (pure).
pub fn plan(d: &DesiredState, p: &LabPlaces) -> LabPlan {
    let mut target = NetnsTarget::new()
        .with(Subject::Named(WAN.into()), p.wan.clone())
        .with(Subject::Host, p.hv.clone());
    for (id, ns) in &p.guests {
        target = target.with(guest(GuestId(*id)), ns.clone());
    }
    let subjects: Vec<Subject> = p.guests.keys().map(|id| guest(GuestId(*id))).collect();
    let dns = dns_expectations(d, &p.outside_name);
    let mut denied: Vec<(SocketAddr, String)> = dns
        .servers
        .iter()
        .map(|s| (*s, "mesh DNS (TCP)".to_string()))
        .collect();
    let gw = d.roles.gateway;
    let route_gateway = gw.and_then(|g| {
        p.dhcp
            .iter()
            .find(|(id, _)| *id == g.0)
            .map(|(_, nic)| (guest(g), nic.clone()))
    });
    let route = route_spec(d, &route_gateway);
    if let Ok(r) = &route {
        for h in r.hops.iter().skip(1) {
            if let Some(a) = h.addr {
                denied.push((a, h.label.clone()));
            }
        }
    }
    if let Some(g) = gw.and_then(|g| d.guest(g))
        && let Some(a) = phoenix_render::traefik::ingress::preferred_address(d, g)
    {
        denied.push((
            SocketAddr::new(a, 443),
            format!("gateway {} mesh side", g.id),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    denied.retain(|(a, _)| seen.insert(*a));
    LabPlan {
        target,
        dhcp: p
            .dhcp
            .iter()
            .map(|(id, nic)| (guest(GuestId(*id)), nic.clone()))
            .collect(),
        public_range: p.public_range,
        dns_subjects: subjects.clone(),
        dns,
        egress: p.egress,
        egress_from: subjects,
        denied,
        route,
        route_gateway,
        tls: tls::plan(d),
        root_pem: p.root_pem.clone(),
        fw: reachability(d),
        proxy_access_log: None,
        gateway_error_log: None,
    }
}

/// The Portainer route's hops (first label of the host is `portainer`).
fn route_spec(d: &DesiredState, gw: &Option<(Subject, String)>) -> Result<RouteSpec, String> {
    let ing = ingress(d).map_err(|e| format!("no ingress path: {e}"))?;
    let r = ing
        .routes
        .iter()
        .find(|r| r.host.split('.').next() == Some("portainer"))
        .ok_or("the ingress routes no portainer name")?;
    let (gw_subject, _) = gw.clone().ok_or("no gateway with a DHCP NIC in the lab")?;
    let up = phoenix_render::nginx::upstream(d, &ing).map_err(|e| e.to_string())?;
    let port = up
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .unwrap_or(443);
    let b = &r.backend;
    Ok(RouteSpec {
        name: r.host.clone(),
        path: "/".into(),
        want: 200,
        entrypoints: r.entrypoints.clone(),
        hops: vec![
            Hop {
                label: format!("{WAN} → gateway ({gw_subject}, nginx)"),
                from: Subject::Named(WAN.into()),
                addr: None,
                missing: Some("the gateway holds no lease (see the dhcp check)".into()),
                tls: true,
                sni: r.host.clone(),
                host: r.host.clone(),
            },
            Hop {
                label: format!("gateway → proxy (guest:{}, traefik)", ing.proxy),
                from: gw_subject,
                addr: Some(SocketAddr::new(ing.proxy_address, port)),
                missing: None,
                tls: true,
                sni: r.host.clone(),
                host: r.host.clone(),
            },
            Hop {
                label: format!("proxy → backend ({})", r.id),
                from: guest(ing.proxy),
                addr: Some(SocketAddr::new(b.address, b.port)),
                missing: None,
                tls: b.scheme == Scheme::Https,
                sni: b.server_name.clone(),
                host: r.host.clone(),
            },
        ],
    })
}

/// The address in `range` on `nic` of `subject`, now.
fn leased(t: &NetnsTarget, subject: &Subject, nic: &str, range: IpNet) -> Option<IpAddr> {
    let ep = t.endpoint(subject).ok()?;
    let out = ep
        .run(
            &["ip", "-4", "-o", "addr", "show", "dev", nic],
            Duration::from_secs(1),
        )
        .ok()?;
    parse_inet4(&out.stdout)
        .into_iter()
        .map(|a| IpAddr::V4(a.net.addr()))
        .find(|a| range.contains(a))
}

fn egress(t: &NetnsTarget, subject: &Subject, addr: SocketAddr, deadline: Duration) -> ProbeResult {
    let start = Instant::now();
    let check = format!("nat: GET http://{addr}/ → 200 (wan endpoint)");
    let (status, observed) = match t.endpoint(subject) {
        Err(e) => (
            Status::Skip {
                reason: e.to_string(),
            },
            String::new(),
        ),
        Ok(ep) => match route::http_get(&*ep, addr, &addr.ip().to_string(), "/", deadline) {
            Ok(r) if r.status == 200 => (Status::Pass, "HTTP 200".to_string()),
            Ok(r) => (
                Status::Fail {
                    evidence: format!("expected HTTP 200 from {addr}, got HTTP {}", r.status),
                },
                format!("HTTP {}", r.status),
            ),
            Err(e) => (
                Status::Fail {
                    evidence: format!("from {}: {e}", ep.label()),
                },
                e,
            ),
        },
    };
    ProbeResult {
        id: format!("nat/{subject}/{addr}"),
        subject: subject.clone(),
        check,
        status,
        observed,
        duration: start.elapsed(),
    }
}

/// Run every check of `plan` and collect the report (groups in a fixed order).
pub fn verify(plan: &LabPlan, dl: &Deadlines) -> Report {
    let t = &plan.target;
    let mut report = Report::new();
    // The fw group runs beside every other group (its denied pairs wait for their deadline).
    let fw = spawn_fw_group(plan, dl);
    // DHCP first: the route's outer hop needs the lease.
    let dhcp: Vec<ProbeResult> = std::thread::scope(|s| {
        let hs: Vec<_> = plan
            .dhcp
            .iter()
            .map(|(subj, nic)| {
                s.spawn(move || match t.endpoint(subj) {
                    Ok(ep) => hostinfo::probe_dhcp_address(
                        &*ep,
                        subj,
                        nic,
                        Some(plan.public_range),
                        true,
                        dl.dhcp,
                    ),
                    Err(e) => ProbeResult::skip(
                        format!("dhcp/{subj}/{nic}"),
                        subj.clone(),
                        format!("dhcp address on {nic}"),
                        e.to_string(),
                    ),
                })
            })
            .collect();
        hs.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let route = plan.route.clone().map(|mut r| {
        if let Some((subj, nic)) = &plan.route_gateway
            && let (Some(a), Some(h)) =
                (leased(t, subj, nic, plan.public_range), r.hops.first_mut())
        {
            h.addr = Some(SocketAddr::new(a, 443));
            h.missing = None;
        }
        r
    });
    let (dns, nat, denied, traced, tls) = std::thread::scope(|s| {
        let dns = s.spawn(|| {
            plan.dns
                .servers
                .iter()
                .flat_map(|srv| verify_dns(t, &plan.dns_subjects, *srv, &plan.dns.checks, dl.dns))
                .collect::<Vec<_>>()
        });
        let nat = s.spawn(|| {
            std::thread::scope(|s2| {
                let hs: Vec<_> = plan
                    .egress_from
                    .iter()
                    .map(|subj| s2.spawn(move || egress(t, subj, plan.egress, dl.egress)))
                    .collect();
                hs.into_iter()
                    .filter_map(|h| h.join().ok())
                    .collect::<Vec<_>>()
            })
        });
        let denied = s.spawn(|| {
            let wan = Subject::Named(WAN.into());
            std::thread::scope(|s2| {
                let hs: Vec<_> = plan
                    .denied
                    .iter()
                    .map(|(addr, why)| {
                        let wan = wan.clone();
                        s2.spawn(move || match t.endpoint(&wan) {
                            Ok(ep) => {
                                let why = format!("nat: no way in from the wan to {why}");
                                tcp::probe(&*ep, &wan, *addr, Expect::Deny, &why, dl.denied)
                            }
                            Err(e) => ProbeResult::skip(
                                format!("tcp/{wan}/{addr}"),
                                wan.clone(),
                                format!("tcp {addr} denied"),
                                e.to_string(),
                            ),
                        })
                    })
                    .collect();
                hs.into_iter()
                    .filter_map(|h| h.join().ok())
                    .collect::<Vec<_>>()
            })
        });
        let traced = s.spawn(|| match (&route, &plan.root_pem) {
            (Ok(r), Ok(pem)) => {
                let logs = route::LogPaths {
                    proxy_access: plan.proxy_access_log.as_deref(),
                    gateway_error: plan.gateway_error_log.as_deref(),
                };
                route::trace(t, r, pem, dl.route, logs)
            }
            (Err(why), _) | (_, Err(why)) => vec![ProbeResult::skip(
                "route".into(),
                Subject::Named(WAN.into()),
                "route trace".into(),
                why.clone(),
            )],
        });
        let tls = s.spawn(|| tls::verify(t, &plan.tls, &plan.root_pem, dl.route));
        let j =
            |h: std::thread::ScopedJoinHandle<'_, Vec<ProbeResult>>| h.join().unwrap_or_default();
        (j(dns), j(nat), j(denied), j(traced), j(tls))
    });
    report.extend(dhcp);
    report.extend(dns);
    report.extend(nat);
    report.extend(denied);
    report.extend(traced);
    report.extend(tls);
    report.extend(fw.join().unwrap_or_default());
    report
}

/// The `fw` group on its own thread (owns clones, so it spans the other groups).
fn spawn_fw_group(plan: &LabPlan, dl: &Deadlines) -> std::thread::JoinHandle<Vec<ProbeResult>> {
    let (t, pairs, dl) = (plan.target.clone(), plan.fw.clone(), *dl);
    std::thread::spawn(move || fw_group(&t, &pairs, &dl))
}

/// What holds a destination port during the `fw` group.
enum Holder {
    /// A temporary listener phoenix opened (closed when the group ends).
    Temporary { _listener: std::net::TcpListener },
    /// The port was taken (EADDRINUSE): the real service answers.
    Service,
    /// Neither: why the listener could not be opened.
    Missing(String),
}

impl Holder {
    fn describe(&self) -> String {
        match self {
            Holder::Temporary { .. } => "temporary listener".into(),
            Holder::Service => "real service".into(),
            Holder::Missing(e) => format!("no listener ({e})"),
        }
    }
}

/// Hold every probed destination port for the group: a temporary listener inside the
/// destination's namespace, or the real service when one has the port. Denied pairs get one
/// too, so a denial is the firewall's doing and not a closed port.
fn hold_ports(t: &NetnsTarget, pairs: &[Reach]) -> BTreeMap<SocketAddr, Holder> {
    let mut out = BTreeMap::new();
    for r in pairs {
        let addr = SocketAddr::new(r.addr, r.port);
        if out.contains_key(&addr) {
            continue;
        }
        let held = match t.endpoint(&guest(r.to)) {
            Err(e) => Holder::Missing(e.to_string()),
            Ok(ep) => {
                match crate::endpoint::with_net(&*ep, move || std::net::TcpListener::bind(addr)) {
                    Ok(Ok(l)) => Holder::Temporary { _listener: l },
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::AddrInUse => Holder::Service,
                    Ok(Err(e)) => Holder::Missing(e.to_string()),
                    Err(e) => Holder::Missing(e.to_string()),
                }
            }
        };
        out.insert(addr, held);
    }
    out
}

/// Every pair of the matrix: allowed ones poll until connected, denied ones must not connect.
/// Ids `fw/<from>/<addr>:<port>`; the check names the rule or policy that decides the pair.
fn fw_group(t: &NetnsTarget, pairs: &[Reach], dl: &Deadlines) -> Vec<ProbeResult> {
    let held = hold_ports(t, pairs);
    let results = std::thread::scope(|s| {
        let hs: Vec<_> = pairs
            .iter()
            .map(|r| {
                let held = &held;
                s.spawn(move || fw_pair(t, r, held, dl))
            })
            .collect();
        hs.into_iter()
            .filter_map(|h| h.join().ok())
            .collect::<Vec<_>>()
    });
    // The temporary listeners close here, after the last probe.
    drop(held);
    let mut out = vec![matrix_summary(pairs, &results)];
    out.extend(results);
    out
}

fn fw_pair(
    t: &NetnsTarget,
    r: &Reach,
    held: &BTreeMap<SocketAddr, Holder>,
    dl: &Deadlines,
) -> ProbeResult {
    let addr = SocketAddr::new(r.addr, r.port);
    let verb = match r.expect {
        Expect::Allow => "allowed",
        Expect::Deny => "denied",
    };
    let id = format!("fw/{}/{addr}", r.from);
    let check = format!(
        "fw: tcp {} → guest:{} {addr} {verb} ({})",
        r.from, r.to, r.why
    );
    let deadline = match r.expect {
        Expect::Allow => dl.egress,
        Expect::Deny => dl.denied,
    };
    let mut res = match t.endpoint(&r.from) {
        Ok(ep) => tcp::probe(&*ep, &r.from, addr, r.expect, &r.why, deadline),
        Err(e) => ProbeResult::skip(id.clone(), r.from.clone(), check.clone(), e.to_string()),
    };
    res.id = id;
    res.check = check;
    let port = held.get(&addr).map(Holder::describe).unwrap_or_default();
    if let Status::Fail { evidence } = &mut res.status {
        evidence.push_str(&format!(
            "; from {} ({}) to {addr} held by {port}; decided by: {}",
            r.from, r.from_addr, r.why
        ));
    }
    res
}
