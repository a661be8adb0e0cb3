//! DNS expectations derived from the desired state: every record the mesh DNS serves
//! ([`phoenix_render::dnsmasq::records`]) must resolve to its address; one name under the
//! local domain that phoenix never defines must be NXDOMAIN (`local=/domain/`); one outside
//! name (given by the caller: the lab's "internet" decides what exists) must be answered
//! through the upstream. Pure: no I/O.

use std::net::{IpAddr, SocketAddr};

use phoenix_model::DesiredState;
use phoenix_render::dnsmasq::records;
use serde::Serialize;

use crate::dns::{DnsCheck, DnsExpect};

/// The label used for the NXDOMAIN check (a suffix is added if the model defines it).
pub const NXDOMAIN_LABEL: &str = "phoenix-verify-unknown";

/// What the DNS probes check, and against which servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsExpectations {
    /// The mesh DNS listen addresses, port 53.
    pub servers: Vec<SocketAddr>,
    pub checks: Vec<DnsCheck>,
}

/// Derive the DNS checks. `outside` is a name outside the local domain that the upstream
/// answers (the lab serves it from its `wan` resolver).
pub fn dns_expectations(d: &DesiredState, outside: &str) -> DnsExpectations {
    let recs = records(d);
    let mut checks: Vec<DnsCheck> = recs
        .iter()
        .map(|(name, (addr, _))| DnsCheck {
            name: name.clone(),
            expect: DnsExpect::Address(*addr),
        })
        .collect();
    let mut unknown = format!("{NXDOMAIN_LABEL}.{}", d.domain);
    let mut n = 2;
    while recs.contains_key(&unknown) {
        unknown = format!("{NXDOMAIN_LABEL}-{n}.{}", d.domain);
        n += 1;
    }
    checks.push(DnsCheck {
        name: unknown,
        expect: DnsExpect::NxDomain,
    });
    checks.push(DnsCheck {
        name: outside.to_string(),
        expect: DnsExpect::Answered,
    });
    let servers = d
        .dns
        .listen
        .iter()
        .map(|a: &IpAddr| SocketAddr::new(*a, 53))
        .collect();
    DnsExpectations { servers, checks }
}
