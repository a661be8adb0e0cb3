//! TCP connect probe for the reachability matrix: from an endpoint to `addr:port` →
//! connected / refused / timed out. An *allowed* pair polls until it connects or the deadline
//! passes (a service may still be starting); a *denied* pair makes one attempt bounded by the
//! deadline and passes when it does not connect (dropped → timed out, rejected → refused;
//! the evidence says which). Does I/O: TCP.

use std::fmt;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::endpoint::{Endpoint, with_net};
use crate::error::ProbeError;
use crate::report::{ProbeResult, Status, Subject};

/// Result of one connect attempt (or of polling).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
pub enum Connect {
    Connected,
    Refused,
    TimedOut,
    /// Unreachable network, no route, …
    Error(String),
}

impl fmt::Display for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Connect::Connected => f.write_str("connected"),
            Connect::Refused => f.write_str("refused"),
            Connect::TimedOut => f.write_str("timed out"),
            Connect::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// Allowed or denied by the firewall intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Allow,
    Deny,
}

fn attempt(addr: SocketAddr, timeout: Duration) -> Connect {
    if timeout.is_zero() {
        return Connect::TimedOut;
    }
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => Connect::Connected,
        Err(e) => match e.kind() {
            std::io::ErrorKind::ConnectionRefused => Connect::Refused,
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Connect::TimedOut,
            _ => Connect::Error(e.to_string()),
        },
    }
}

/// Connect from inside `ep`. With `poll`, retry every 100 ms until connected or `deadline`;
/// returns the last outcome, the number of attempts and the elapsed time.
pub fn connect(
    ep: &(impl Endpoint + ?Sized),
    addr: SocketAddr,
    deadline: Duration,
    poll: bool,
) -> Result<(Connect, u32, Duration), ProbeError> {
    with_net(ep, move || {
        let start = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let remaining = deadline.saturating_sub(start.elapsed());
            let got = attempt(addr, remaining);
            let next = Instant::now() + Duration::from_millis(100);
            if got == Connect::Connected || !poll || next >= start + deadline {
                return (got, attempts, start.elapsed());
            }
            // Refused comes back at once: pace the retries instead of spinning.
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    })
}

/// Check one (source, destination, expectation) pair.
pub fn probe(
    ep: &(impl Endpoint + ?Sized),
    subject: &Subject,
    addr: SocketAddr,
    expect: Expect,
    why: &str,
    deadline: Duration,
) -> ProbeResult {
    let verb = match expect {
        Expect::Allow => "allowed",
        Expect::Deny => "denied",
    };
    let id = format!("tcp/{subject}/{addr}");
    let mut check = format!("tcp {addr} {verb}");
    if !why.is_empty() {
        check.push_str(&format!(" ({why})"));
    }
    let start = Instant::now();
    let (status, observed) = match connect(ep, addr, deadline, expect == Expect::Allow) {
        Ok((got, attempts, elapsed)) => {
            let observed = format!(
                "{got} after {}ms ({attempts} attempt(s))",
                elapsed.as_millis()
            );
            let ok = (got == Connect::Connected) == (expect == Expect::Allow);
            if ok {
                (Status::Pass, observed)
            } else {
                let evidence = format!("expected {verb}, {observed}");
                (Status::Fail { evidence }, observed)
            }
        }
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
        check,
        status,
        observed,
        duration: start.elapsed(),
    }
}
