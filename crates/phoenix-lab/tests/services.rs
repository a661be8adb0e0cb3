//! The lab's services with `examples/homelab` up, checked with real traffic inside the lab:
//! the gateway's DHCP lease from the wan, the mesh DNS from every guest (model names, NXDOMAIN,
//! an outside name through the wan's resolver), egress to the wan's HTTP endpoint through the
//! NAT, the first fault (mesh dnsmasq stopped → DNS probes fail with evidence), and a teardown
//! that leaves no process behind. Root only; see `common::lab_available`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use phoenix_lab::{LabGuard, services, status};
use phoenix_verify::dns::{DnsExpect, judge, query_a};
use phoenix_verify::hostinfo::{parse_dnsmasq_leases, parse_inet4};
use phoenix_verify::{NetnsEndpoint, with_net};

const MESH_DNS: &str = "172.16.100.1:53";
const DNS_DEADLINE: Duration = Duration::from_secs(2);

/// GET `http://addr/` from inside `ns` with a few lines of std::net.
fn http_get(ns: &str, addr: SocketAddr) -> Result<String, String> {
    with_net(&NetnsEndpoint::new(ns), move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        write!(
            s,
            "GET / HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n",
            addr.ip()
        )
        .map_err(|e| format!("send: {e}"))?;
        let mut body = String::new();
        s.read_to_string(&mut body)
            .map_err(|e| format!("read: {e}"))?;
        Ok(body)
    })
    .map_err(|e| e.to_string())?
}

#[test]
fn services_dhcp_dns_egress_fault_and_down() {
    if !lab_available() {
        return;
    }
    let prefix = unique_prefix();
    let guard = LabGuard::new(&prefix);
    let d = homelab();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let t0 = Instant::now();
    let report = lab_up(&d, &prefix);
    eprintln!(
        "homelab lab up with services: {:?} (phases {:?})",
        t0.elapsed(),
        report.phases
    );
    let mut names: Vec<&str> = report
        .services
        .services
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    names.sort_unstable();
    // The lab's own world, then what the plan's provision steps start in the guests (side
    // by side, so in no fixed order): step-ca in the CA guest when its binary is found
    // (tests/stepca.rs), the ingress path (tests/ingress.rs). The Portainer stand-in is the
    // Swarm stack's service (tests/swarm_stand_in.rs), never a process of its own.
    let with_step_ca = phoenix_lab::stepca::step_ca_binary().is_some();
    assert_eq!(names.contains(&"step-ca"), with_step_ca, "{names:?}");
    let mut want = vec![
        "dnsmasq-wan",
        "httpd-wan",
        "dnsmasq-hv",
        "traefik",
        "nginx-gw",
    ];
    if with_step_ca {
        want.push("step-ca");
    }
    want.sort_unstable();
    assert_eq!(names, want);

    // (a) The gateway's public NIC holds a lease from the pool and routes via the wan.
    let g101 = format!("{prefix}-g101");
    let shown = in_ns_out(&g101, &["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    let leased = parse_inet4(&shown)
        .into_iter()
        .find(|a| a.dynamic)
        .unwrap_or_else(|| panic!("no dynamic address on eth0: {shown}"));
    let (lo, hi) = services::DHCP_POOL;
    assert!(
        (lo..=hi).contains(&leased.net.addr()) && leased.net.prefix_len() == 24,
        "{leased:?} outside the pool"
    );
    let route = in_ns_out(&g101, &["ip", "-4", "route", "show", "default"]);
    assert!(
        route.contains("default via 203.0.113.1 dev eth0"),
        "default route: {route}"
    );
    let leases =
        std::fs::read_to_string(phoenix_lab::state_dir(&prefix).join(services::WAN_LEASES))
            .expect("wan lease file");
    let lease = parse_dnsmasq_leases(&leases)
        .into_iter()
        .find(|l| l.mac == "02:00:00:01:01:00")
        .unwrap_or_else(|| panic!("gateway's MAC not in the lease file:\n{leases}"));
    assert_eq!(lease.ip, leased.net.addr());
    assert_eq!(
        report.services.leases[0].address.as_deref(),
        Some(leased.net.to_string().as_str())
    );
    // udhcpc ran in its own UTS namespace: the machine's hostname is untouched.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname"),
        hostname
    );
    let st = status(&prefix).expect("status");
    assert!(st.is_complete(), "{st:#?}");
    assert!(st.services.iter().all(|s| s.alive) && st.leases[0].held);

    // (b) The mesh DNS from every guest.
    let server: SocketAddr = MESH_DNS.parse().unwrap();
    let mut checks: Vec<(String, DnsExpect)> = phoenix_render::dnsmasq::records(&d)
        .into_iter()
        .map(|(name, (addr, _))| (name, DnsExpect::Address(addr)))
        .collect();
    assert!(checks.len() >= 5, "{checks:?}");
    checks.push((format!("nope.{}", d.domain), DnsExpect::NxDomain));
    checks.push((
        services::OUTSIDE_NAME.to_string(),
        DnsExpect::Address(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 80))),
    ));
    let guests: Vec<String> = st
        .namespaces
        .iter()
        .filter(|n| matches!(n.role, Some(phoenix_lab::topology::NsRole::Guest { .. })))
        .map(|n| n.name.clone())
        .collect();
    assert_eq!(guests.len(), 5);
    let t1 = Instant::now();
    let mut failures = Vec::new();
    for ns in &guests {
        let ep = NetnsEndpoint::new(ns.clone());
        for (name, expect) in &checks {
            let obs = query_a(&ep, server, name, DNS_DEADLINE).expect("probe runs");
            if let Err(evidence) = judge(expect, &obs) {
                failures.push(format!("{ns} {name}: {evidence}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    eprintln!(
        "dns: {} checks from {} guests in {:?}",
        checks.len() * guests.len(),
        guests.len(),
        t1.elapsed()
    );

    // (c) Mesh guests reach the wan's HTTP endpoint through the NAT.
    let www: SocketAddr = "198.51.100.80:80".parse().unwrap();
    for g in ["g102", "g103", "g1001"] {
        let body = http_get(&format!("{prefix}-{g}"), www).expect("GET through the NAT");
        assert!(
            body.starts_with("HTTP/1.") && body.contains(" 200 "),
            "{body}"
        );
        assert!(body.contains(&format!("phoenix lab {prefix}")), "{body}");
    }

    // (d) Fault: the mesh dnsmasq stopped → the DNS probe fails, with evidence.
    let hv_dns = st
        .services
        .iter()
        .find(|s| s.name == "dnsmasq-hv")
        .and_then(|s| s.pid)
        .expect("mesh dnsmasq pid");
    in_ns_out(&format!("{prefix}-hv"), &["kill", &hv_dns.to_string()]);
    let dead = Instant::now();
    while status(&prefix).expect("status").services[2].alive {
        assert!(dead.elapsed().as_secs() < 3, "dnsmasq-hv survived SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ca = format!("ca.{}", d.domain);
    let expect = checks
        .iter()
        .find(|(n, _)| *n == ca)
        .expect("ca record")
        .1
        .clone();
    let obs = query_a(
        &NetnsEndpoint::new(format!("{prefix}-g102")),
        server,
        &ca,
        Duration::from_millis(600),
    )
    .expect("probe runs");
    let evidence = judge(&expect, &obs).expect_err("DNS must fail without dnsmasq");
    eprintln!("fault evidence: {evidence}");
    assert!(
        evidence.contains("172.16.100.1:53") && evidence.contains("no answer"),
        "{evidence}"
    );
    let st = status(&prefix).expect("status");
    assert!(!st.is_complete(), "a dead service makes the lab incomplete");

    // (e) Down leaves no namespace, state or process behind.
    assert!(!processes_of(&prefix).is_empty());
    phoenix_lab::down(&prefix).expect("lab down");
    assert_gone(&prefix);
    let start = Instant::now();
    loop {
        let left = processes_of(&prefix);
        if left.is_empty() {
            break;
        }
        assert!(start.elapsed().as_secs() < 2, "left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(guard);
}
