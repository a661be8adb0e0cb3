//! The QEMU guest of `netswitch_qemu`: what the host hands the guest (the constants of the
//! addresses both sides use and the [`Job`]), the guest side ([`guest`]: run inside the guest
//! by the test binary itself) and the host side ([`host`]: the lab namespace with the guest's
//! tap, QEMU, the listener and the recorded wire). See docs/netswitch-qemu.md.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod guest;
pub mod host;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub const INTERFACES: &str = "/etc/network/interfaces";
pub const MGMT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 13);
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The lab's end of VLAN 20, and the test address the guest puts on `vmbr0.20` while it sends
/// (`vmbr0.20` is `inet manual` in the seed).
pub const LAB_VLAN20: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const GUEST_VLAN20: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// A mesh guest behind `vmbr100` (172.16.100.1/24): a namespace inside the guest.
pub const MESH_GUEST: Ipv4Addr = Ipv4Addr::new(172, 16, 100, 50);
pub const MESH_GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 16, 100, 1);
pub const VLAN_PORT: u16 = 4720;
pub const NAT_PORT: u16 = 4721;
pub const GUEST_MAC: &str = "52:54:00:70:68:01";
/// The lab tap's MAC (the guest's static neighbour for VLAN 20).
pub const LAB_MAC: &str = "52:54:00:70:68:fe";
/// Where the guest's boot job mounts the share.
pub const SHARE: &str = "/mnt/phoenix";

/// What the host hands the guest.
#[derive(Debug, Serialize, Deserialize)]
pub struct Job {
    pub uplink_mac: String,
    pub uplink: String,
    pub good: String,
    pub broken: String,
}

/// The workspace root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
