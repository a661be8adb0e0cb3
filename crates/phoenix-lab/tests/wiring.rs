//! Every guest namespace as the model says, read back from the kernel: each NIC with the
//! model's MAC and address, the model's default route, and the resolver the lab wrote for it
//! (`/etc/netns/<ns>/resolv.conf`, bind-mounted by `ip netns exec`) answering the mesh DNS
//! records through the libc resolver — not by asking 172.16.100.1 directly. Root only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use common::*;
use phoenix_lab::{LabGuard, UpOptions, up};
use phoenix_model::model::Addressing;

#[test]
fn guests_have_the_models_macs_addresses_routes_and_resolver() {
    if !lab_available() {
        return;
    }
    let d = homelab_unfiltered();
    let prefix = unique_prefix();
    let guard = LabGuard::new(&prefix);
    up(
        &d,
        &UpOptions {
            prefix: prefix.clone(),
            recreate: false,
        },
    )
    .expect("lab up");
    let records = phoenix_render::dnsmasq::records(&d);
    assert!(!records.is_empty());
    let mut nics = 0;
    for g in d.guests.values() {
        let ns = format!("{prefix}-g{}", g.id.0);
        if !std::path::Path::new("/run/netns").join(&ns).exists() {
            // Templates have no namespace.
            continue;
        }
        for nic in &g.nics {
            nics += 1;
            let link = in_ns_out(&ns, &["ip", "-o", "link", "show", "dev", &nic.name]);
            assert!(
                link.contains("state UP") || link.contains(",UP"),
                "{ns} {link}"
            );
            if let Some(mac) = nic.mac {
                let want = mac.to_string().to_lowercase();
                assert!(
                    link.contains(&want),
                    "{ns} {}: want {want}: {link}",
                    nic.name
                );
            }
            if let Addressing::Static { cidr, gateway } = &nic.addressing {
                let addrs = in_ns_out(&ns, &["ip", "-o", "addr", "show", "dev", &nic.name]);
                assert!(addrs.contains(&cidr.to_string()), "{ns}: {cidr}: {addrs}");
                if let Some(gw) = gateway {
                    let route = in_ns_out(&ns, &["ip", "-4", "route", "show", "default"]);
                    assert!(
                        route.contains(&format!("default via {gw} dev {}", nic.name)),
                        "{ns}: default via {gw}: {route}"
                    );
                }
            }
        }
        let resolv =
            std::fs::read_to_string(format!("/etc/netns/{ns}/resolv.conf")).expect("resolv.conf");
        assert!(resolv.contains("nameserver 172.16.100.1"), "{ns}: {resolv}");
        // The libc resolver inside the namespace (getent reads the bind-mounted resolv.conf).
        for (name, (addr, _)) in &records {
            let got = in_ns_out(&ns, &["getent", "ahostsv4", name]);
            assert!(
                got.lines().any(|l| l.starts_with(&format!("{addr} "))),
                "{ns}: {name} → {addr}: {got:?}"
            );
        }
    }
    assert!(nics >= 7, "{nics} NICs checked");
    drop(guard);
    assert_gone(&prefix);
}
