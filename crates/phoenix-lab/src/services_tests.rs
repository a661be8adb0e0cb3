//! Unit tests of the services' pure parts (argument lists, the script, `/proc` encoding).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn proc_hex_is_kernel_order() {
    if cfg!(target_endian = "little") {
        assert_eq!(
            proc_hex(Ipv4Addr::new(198, 51, 100, 80), 80),
            "506433C6:0050"
        );
    }
}

#[test]
fn script_sets_address_and_route_only() {
    assert!(UDHCPC_SCRIPT.starts_with("#!/bin/sh\n"));
    assert!(!UDHCPC_SCRIPT.contains("resolv"));
    assert!(!UDHCPC_SCRIPT.contains("hostname"));
}

#[test]
fn wan_dnsmasq_serves_the_pool_without_ping() {
    let a = wan_dnsmasq_args(Path::new("/run/phoenix-lab/x"));
    for want in [
        "--dhcp-range=203.0.113.100,203.0.113.199,255.255.255.0,1h",
        "--dhcp-option=option:router,203.0.113.1",
        "--dhcp-option=option:dns-server,198.51.100.53",
        "--no-ping",
        "--listen-address=198.51.100.53",
        "--address=/www.example.net/198.51.100.80",
        "--dhcp-leasefile=/run/phoenix-lab/x/wan.leases",
    ] {
        assert!(a.iter().any(|x| x == want), "{want} missing in {a:?}");
    }
}
