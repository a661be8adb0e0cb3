//! The DNS probe: send an explicit A query over UDP to a server from inside an endpoint,
//! retransmitting until a deadline (packet loss), and judge the answer against a
//! [`DnsExpect`]. Evidence: server, rcode, answers, elapsed. Does I/O: UDP.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::dnsmsg::{self, Rcode, Record, Response};
use crate::endpoint::{Endpoint, with_net};
use crate::error::ProbeError;
use crate::report::{ProbeResult, Status, Subject};

/// What the answer to a name should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "expect", content = "value")]
pub enum DnsExpect {
    /// NOERROR with this address among the A answers.
    Address(IpAddr),
    /// NXDOMAIN (an unknown name under the local domain).
    NxDomain,
    /// NOERROR with at least one A answer (an outside name, through the upstream).
    Answered,
}

impl fmt::Display for DnsExpect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsExpect::Address(a) => write!(f, "→ {a}"),
            DnsExpect::NxDomain => f.write_str("→ NXDOMAIN"),
            DnsExpect::Answered => f.write_str("→ answered"),
        }
    }
}

/// One name to ask about and what should come back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsCheck {
    pub name: String,
    #[serde(flatten)]
    pub expect: DnsExpect,
}

/// What the server said, or that it said nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsObservation {
    pub server: SocketAddr,
    /// `None`: no usable response before the deadline.
    pub response: Option<Response>,
    pub attempts: u32,
    pub elapsed: Duration,
    /// Last socket or parse problem, if any.
    pub last_error: Option<String>,
}

impl DnsObservation {
    pub fn addresses(&self) -> Vec<Ipv4Addr> {
        self.response
            .iter()
            .flat_map(|r| &r.answers)
            .filter_map(|a| match a {
                Record::A(a) => Some(*a),
                _ => None,
            })
            .collect()
    }
}

impl fmt::Display for DnsObservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.elapsed.as_millis();
        match &self.response {
            Some(r) => {
                let answers: Vec<String> = r.answers.iter().map(|a| a.to_string()).collect();
                write!(
                    f,
                    "server {} rcode {} answers [{}]{} in {ms}ms ({} attempt(s))",
                    self.server,
                    r.rcode,
                    answers.join(", "),
                    if r.truncated { " (truncated)" } else { "" },
                    self.attempts
                )
            }
            None => {
                write!(
                    f,
                    "server {} gave no answer in {ms}ms ({} attempt(s))",
                    self.server, self.attempts
                )?;
                if let Some(e) = &self.last_error {
                    write!(f, ": {e}")?;
                }
                Ok(())
            }
        }
    }
}

/// Ask `server` for the A records of `name` from inside `ep`, retransmitting every
/// `min(250ms, remaining)` until an answer with our id arrives or `deadline` passes.
pub fn query_a(
    ep: &(impl Endpoint + ?Sized),
    server: SocketAddr,
    name: &str,
    deadline: Duration,
) -> Result<DnsObservation, ProbeError> {
    let start = Instant::now();
    // Query id: not security relevant (the socket is connected to the server); vary it per
    // call so late answers to an earlier probe are not mistaken for ours.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let id = ((nanos >> 4) ^ std::process::id()) as u16;
    let query = dnsmsg::a_query(id, name)?;
    with_net(ep, move || exchange(server, &query, id, deadline, start))?
}

fn exchange(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    deadline: Duration,
    start: Instant,
) -> Result<DnsObservation, ProbeError> {
    let sock_err = |what: &str| {
        let what = what.to_string();
        move |source| ProbeError::Socket { what, source }
    };
    let bind: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(bind).map_err(sock_err("bind UDP"))?;
    sock.connect(server).map_err(sock_err("connect UDP"))?;
    let mut obs = DnsObservation {
        server,
        response: None,
        attempts: 0,
        elapsed: Duration::ZERO,
        last_error: None,
    };
    let mut buf = [0u8; 4096];
    while start.elapsed() < deadline {
        obs.attempts += 1;
        if let Err(e) = sock.send(query) {
            // ECONNREFUSED from a previous ICMP port unreachable: note and retry.
            obs.last_error = Some(format!("send: {e}"));
        }
        let resend_at = Instant::now() + Duration::from_millis(250);
        loop {
            let now = Instant::now();
            let until = resend_at.min(start + deadline);
            if now >= until {
                break;
            }
            sock.set_read_timeout(Some(until - now))
                .map_err(sock_err("set read timeout"))?;
            match sock.recv(&mut buf) {
                Ok(n) => match dnsmsg::parse_response(&buf[..n]) {
                    Ok(r) if r.id == id => {
                        obs.response = Some(r);
                        obs.elapsed = start.elapsed();
                        return Ok(obs);
                    }
                    Ok(_) => obs.last_error = Some("answer with another id".to_string()),
                    Err(e) => obs.last_error = Some(e.to_string()),
                },
                Err(e) => {
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) {
                        obs.last_error = Some(format!("recv: {e}"));
                        // Refused: nothing listens (yet); wait for the resend slot.
                        std::thread::sleep(
                            until
                                .saturating_duration_since(Instant::now())
                                .min(Duration::from_millis(50)),
                        );
                    }
                }
            }
        }
    }
    obs.elapsed = start.elapsed();
    Ok(obs)
}

/// Compare an observation with the expectation; `Err` carries the evidence of a failure.
pub fn judge(expect: &DnsExpect, obs: &DnsObservation) -> Result<(), String> {
    let Some(r) = &obs.response else {
        return Err(format!("expected {expect}, {obs}"));
    };
    let ok = match expect {
        DnsExpect::Address(IpAddr::V4(a)) => {
            r.rcode == Rcode::NOERROR && obs.addresses().contains(a)
        }
        DnsExpect::Address(IpAddr::V6(_)) => false,
        DnsExpect::NxDomain => r.rcode == Rcode::NXDOMAIN,
        DnsExpect::Answered => r.rcode == Rcode::NOERROR && !obs.addresses().is_empty(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected {expect}, {obs}"))
    }
}

/// Run one DNS check from `ep` and turn it into a result.
pub fn probe(
    ep: &(impl Endpoint + ?Sized),
    subject: &Subject,
    server: SocketAddr,
    check: &DnsCheck,
    deadline: Duration,
) -> ProbeResult {
    let id = format!("dns/{subject}/{}", check.name);
    let what = format!("dns {} {} via {server}", check.name, check.expect);
    let start = Instant::now();
    let (status, observed) = match query_a(ep, server, &check.name, deadline) {
        Ok(obs) => match judge(&check.expect, &obs) {
            Ok(()) => (Status::Pass, obs.to_string()),
            Err(evidence) => (Status::Fail { evidence }, obs.to_string()),
        },
        Err(e) => (
            Status::Fail {
                evidence: format!("probe could not run from {}: {e}", ep.label()),
            },
            String::new(),
        ),
    };
    ProbeResult {
        id,
        subject: subject.clone(),
        check: what,
        status,
        observed,
        duration: start.elapsed(),
    }
}
