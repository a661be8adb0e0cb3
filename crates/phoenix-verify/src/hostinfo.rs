//! Probes over an endpoint's *command* side: a DHCP lease seen as a dynamic IPv4 address on a
//! device (`ip -4 -o addr show dev X`), dnsmasq lease files, and parsers for both. The parsers
//! are pure; the probes poll the command until a deadline. Does I/O: processes.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net};
use serde::Serialize;

use crate::endpoint::Endpoint;
use crate::report::{ProbeResult, Status, Subject};

/// One IPv4 address on a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inet4 {
    pub net: Ipv4Net,
    /// Has a lifetime (`dynamic`): configured by a DHCP client, not statically.
    pub dynamic: bool,
}

/// Parse `ip -4 [-o] addr show` output.
pub fn parse_inet4(output: &str) -> Vec<Inet4> {
    output
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "inet")?;
            let net = words.get(at + 1)?.parse().ok()?;
            Some(Inet4 {
                net,
                dynamic: words.contains(&"dynamic"),
            })
        })
        .collect()
}

/// One line of a dnsmasq lease file: `expiry mac ip hostname client-id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub expiry: u64,
    pub mac: String,
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
}

pub fn parse_dnsmasq_leases(text: &str) -> Vec<Lease> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let expiry = w.next()?.parse().ok()?;
            let mac = w.next()?.to_ascii_lowercase();
            let ip = w.next()?.parse().ok()?;
            let hostname = w.next().filter(|h| *h != "*").map(str::to_string);
            Some(Lease {
                expiry,
                mac,
                ip,
                hostname,
            })
        })
        .collect()
}

/// Poll `ip -4 -o addr show dev DEV` until it shows an address (inside `within`, when given;
/// `dynamic` when `require_dynamic`) or `deadline` passes.
pub fn probe_dhcp_address(
    ep: &(impl Endpoint + ?Sized),
    subject: &Subject,
    dev: &str,
    within: Option<IpNet>,
    require_dynamic: bool,
    deadline: Duration,
) -> ProbeResult {
    let id = format!("dhcp/{subject}/{dev}");
    let mut check = format!("dhcp address on {dev}");
    if let Some(n) = within {
        check.push_str(&format!(" in {n}"));
    }
    let start = Instant::now();
    let fits = |a: &Inet4| {
        within.is_none_or(|n| n.contains(&std::net::IpAddr::V4(a.net.addr())))
            && (!require_dynamic || a.dynamic)
    };
    let mut last;
    let status = loop {
        let left = deadline.saturating_sub(start.elapsed());
        match ep.run(&["ip", "-4", "-o", "addr", "show", "dev", dev], left) {
            Ok(out) if out.success() => {
                let addrs = parse_inet4(&out.stdout);
                last = format!(
                    "addresses [{}]",
                    addrs
                        .iter()
                        .map(|a| format!("{}{}", a.net, if a.dynamic { " dynamic" } else { "" }))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if addrs.iter().any(fits) {
                    break Status::Pass;
                }
            }
            Ok(out) => last = format!("ip exited {:?}: {}", out.code, out.stderr.trim()),
            Err(e) => last = e.to_string(),
        }
        if start.elapsed() + Duration::from_millis(100) >= deadline {
            break Status::Fail {
                evidence: format!(
                    "no matching address after {}ms: {last}",
                    start.elapsed().as_millis()
                ),
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    ProbeResult {
        id,
        subject: subject.clone(),
        check,
        status,
        observed: last,
        duration: start.elapsed(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_addr_and_leases() {
        let out = "5: eth0    inet 203.0.113.50/24 brd 203.0.113.255 scope global dynamic eth0\\       valid_lft 3599sec preferred_lft 3599sec\n\
                   5: eth0    inet 10.9.9.9/8 scope global eth0\\       valid_lft forever preferred_lft forever\n";
        let a = parse_inet4(out);
        assert_eq!(a.len(), 2);
        assert!(a[0].dynamic && !a[1].dynamic);
        assert_eq!(a[0].net.to_string(), "203.0.113.50/24");
        let l = parse_dnsmasq_leases(
            "1764100000 AA:bb:cc:dd:ee:ff 203.0.113.50 gw 01:aa\n1 00:11:22:33:44:55 203.0.113.51 * *\nbad\n",
        );
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].mac, "aa:bb:cc:dd:ee:ff");
        assert_eq!(l[1].hostname, None);
    }
}
