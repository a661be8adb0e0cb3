//! The seed's gateway NIC as the bash system made it: a macvlan (raw `lxc.net.0.*` lines) on
//! the public VLAN bridge instead of a tagged veth. The lab realises it as a macvlan child of
//! the hypervisor's public bridge, moved into the gateway's namespace, and it obtains its
//! public address by DHCP from the wan like the veth does. Root only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use common::*;
use phoenix_lab::{LabGuard, UpOptions, services, up};
use phoenix_model::model::{GuestId, NicKind};
use phoenix_verify::hostinfo::parse_inet4;

#[test]
fn macvlan_gateway_nic_gets_its_lease_from_the_wan() {
    if !lab_available() {
        return;
    }
    let mut d = homelab_unfiltered();
    let gw = d.guests.get_mut(&GuestId(101)).expect("gateway 101");
    let public = gw
        .nics
        .iter_mut()
        .find(|n| n.name == "eth0")
        .expect("gateway eth0");
    public.kind = NicKind::Macvlan;
    let prefix = unique_prefix();
    let guard = LabGuard::new(&prefix);
    let report = up(
        &d,
        &UpOptions {
            prefix: prefix.clone(),
            recreate: false,
        },
    )
    .expect("lab up");
    assert_eq!(report.macvlans, 1, "{report:?}");

    let g101 = format!("{prefix}-g101");
    let link = in_ns_out(&g101, &["ip", "-d", "-o", "link", "show", "dev", "eth0"]);
    assert!(link.contains("macvlan mode bridge"), "eth0: {link}");
    assert!(
        link.contains("02:00:00:01:01:00"),
        "the model's MAC: {link}"
    );
    // No veth of the gateway's public NIC on the hypervisor's public bridge.
    let ports = in_ns_out(
        &format!("{prefix}-hv"),
        &["ip", "-o", "link", "show", "master", "vmbr0.20"],
    );
    assert!(!ports.contains(&format!("{prefix}101n0")), "{ports}");

    let shown = in_ns_out(&g101, &["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    let leased = parse_inet4(&shown)
        .into_iter()
        .find(|a| a.dynamic)
        .unwrap_or_else(|| panic!("no dynamic address on the macvlan: {shown}"));
    let (lo, hi) = services::DHCP_POOL;
    assert!((lo..=hi).contains(&leased.net.addr()), "{leased:?}");
    let route = in_ns_out(&g101, &["ip", "-4", "route", "show", "default"]);
    assert!(route.contains("via 203.0.113.1 dev eth0"), "{route}");
    // The wan reaches the gateway's leased address through the bridge.
    assert!(ping(
        &format!("{prefix}-wan"),
        &leased.net.addr().to_string()
    ));

    drop(guard);
    assert_gone(&prefix);
}
