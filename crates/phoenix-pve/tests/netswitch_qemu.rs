//! The seed's host network on a real Debian kernel with 802.1Q: a Debian 12 guest under QEMU's
//! software CPU (this machine's kernel has no 8021q; LAB.md) gets the `/etc/network/interfaces`
//! that phoenix-render makes from examples/homelab — VLAN-aware `vmbr0`, `vmbr0.20`, `vmbr100`
//! with its NAT — through the node's own try-and-rollback [`Switch`] over a [`LocalShell`] at
//! `/`, run *inside the guest* by real ifupdown2. Then a broken file is rolled back.
//!
//! How (docs/netswitch-qemu.md): the image comes from `scripts/build-qemu-guest.sh` (a cache
//! keyed by its recipe). The host side (`switch_in_qemu_…`) makes a lab namespace `<p>-up`
//! holding the guest's tap (the uplink's wire, with the gateway 10.0.0.1), shares a directory
//! over 9p with this very test binary, its argv and the job (the rendered files), and boots the
//! guest with QEMU recording the wire between its NIC and the tap (`filter-dump`, a pcap). The
//! guest's boot job runs this binary's ignored [`qemu_guest_side`], which switches, sends UDP
//! datagrams from `vmbr0.20` and from a mesh namespace behind `vmbr100` (the lab answers the
//! latter), stages the broken file, switches again, sends again, writes `report.json` and
//! powers off. The host asserts on the recorded wire (VLAN 20 tags, untagged NAT from the
//! uplink address), on what its listener saw and answered, and on the guest's report. This
//! machine's kernel has no 8021q, so the lab cannot terminate VLAN 20 itself.
//!
//! Needs root, `qemu-system-x86_64` and the built image: skips with a note without them, fails
//! in CI. Traffic stays between the guest and the namespace this test made.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod nstest;
mod qemu;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use qemu::host::{Lab, Seen, UdpFrame, listen, peer, rounds_seen, udp_frames};
use qemu::*;
use serde_json::Value;

/// The production render of examples/homelab: the file a node gets.
fn homelab_interfaces() -> String {
    let desired = phoenix_model::validate_dir(&repo().join("examples/homelab"))
        .desired
        .expect("examples/homelab builds");
    let text = phoenix_render::hostnet::interfaces(&desired).content;
    for want in [
        "iface enp6s0 inet manual",
        "address 10.0.0.13/24",
        "gateway 10.0.0.1",
        "bridge-vlan-aware yes",
        "auto vmbr0.20",
        "vlan-id 20",
        "address 172.16.100.1/24",
        "-s 172.16.100.0/24 -o vmbr0 -j MASQUERADE",
    ] {
        assert!(
            text.contains(want),
            "the homelab render lacks {want:?}:\n{text}"
        );
    }
    text
}

/// The same file with the uplink bridge's port renamed to one that does not exist.
fn broken_interfaces(good: &str) -> String {
    let broken = good.replace("bridge-ports enp6s0", "bridge-ports enp9s9");
    assert_ne!(broken, good);
    broken
}

/// Runs only inside the QEMU guest, started by its boot job with the share mounted at
/// `/mnt/phoenix` (see [`switch_in_qemu_vlan20_nat_and_rollback`]); anywhere else it fails.
#[test]
#[ignore = "runs inside the QEMU guest only (started by switch_in_qemu_vlan20_nat_and_rollback)"]
fn qemu_guest_side() {
    qemu::guest::run();
}

#[test]
fn switch_in_qemu_vlan20_nat_and_rollback() {
    let Some(image) = peer() else { return };
    let good = homelab_interfaces();
    let broken = broken_interfaces(&good);

    let scratch = tempfile::Builder::new().prefix("qsw-").tempdir().unwrap();
    let share = scratch.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::copy(std::env::current_exe().unwrap(), share.join("guest")).unwrap();
    std::fs::write(
        share.join("args"),
        "qemu_guest_side\n--exact\n--ignored\n--nocapture\n--test-threads=1\n",
    )
    .unwrap();
    let job = Job {
        uplink_mac: GUEST_MAC.into(),
        uplink: "enp6s0".into(),
        good: good.clone(),
        broken: broken.clone(),
    };
    std::fs::write(share.join("job.json"), serde_json::to_string(&job).unwrap()).unwrap();

    let mut lab = Lab::new();
    let stop = Arc::new(AtomicBool::new(false));
    let nat_seen = Arc::default();
    let listener = listen(
        &lab.ns,
        SocketAddr::new(IpAddr::V4(GATEWAY), NAT_PORT),
        stop.clone(),
        Arc::clone(&nat_seen),
    );

    let console = scratch.path().join("console.log");
    let t = Instant::now();
    let wire = scratch.path().join("wire.pcap");
    lab.boot(&image, &share, &console, &wire);
    let finished = lab.wait(Duration::from_secs(420));
    let took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    listener.join().unwrap();
    let guest_log = std::fs::read_to_string(share.join("guest.log")).unwrap_or_default();
    eprintln!(
        "== guest log ({:.1}s boot to power-off)\n{guest_log}",
        took.as_secs_f64()
    );
    if !finished || !share.join("report.json").is_file() {
        let text = std::fs::read_to_string(&console).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        drop(lab); // QEMU killed, the namespace gone
        let stderr =
            std::fs::read_to_string(console.with_extension("qemu-stderr")).unwrap_or_default();
        panic!(
            "the guest did not finish (powered off: {finished}); qemu: {stderr}\nconsole tail:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(share.join("report.json")).unwrap()).unwrap();
    let frames = udp_frames(&std::fs::read(&wire).unwrap());
    check(&report, &good, &frames, &nat_seen.lock().unwrap());
}

/// The assertions on the guest's report and on what the lab saw.
fn check(report: &Value, good: &str, frames: &[UdpFrame], nat_seen: &[Seen]) {
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap();
    eprintln!("kernel: {}", report["kernel"]["stdout"]);

    // 1. The seed's file switched on a kernel with 802.1Q, ifquery agreeing (the first probe).
    let sw = &report["switch"];
    assert_eq!(sw["outcome"]["outcome"], "switched", "{}", pretty(sw));
    assert!(
        sw["probes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["passed"] == true),
        "{}",
        pretty(sw)
    );
    let vlan_dev = report["vlan_device"]["stdout"].as_str().unwrap();
    assert!(
        vlan_dev.contains("vlan protocol 802.1Q id 20"),
        "{vlan_dev}"
    );
    let vlans = report["vlans"]["stdout"].as_str().unwrap();
    assert!(vlans.contains("enp6s0"), "{vlans}");
    let nat = report["nat_rules"]["stdout"].as_str().unwrap();
    assert!(
        nat.contains("-s 172.16.100.0/24 -o vmbr0 -j MASQUERADE"),
        "{nat}"
    );

    for round in ["round1", "round2"] {
        // 2. Frames tagged 20 left vmbr0.20 onto the uplink's wire (recorded by QEMU between
        //    the guest's NIC and the lab's tap): from the guest's address there, to the lab's.
        let tagged: Vec<&UdpFrame> = frames
            .iter()
            .filter(|f| f.payload.starts_with(&format!("{round} vlan20 ")))
            .collect();
        assert!(
            !tagged.is_empty(),
            "{round}: no VLAN 20 datagram on the wire: {}\nwire: {frames:?}\nbridge vlans: {}",
            pretty(&report[round]),
            report["vlans"]["stdout"]
        );
        for f in &tagged {
            assert_eq!(f.vlan, Some(20), "{round}: {f:?}");
            assert_eq!((f.src, f.dst), (GUEST_VLAN20, LAB_VLAN20), "{f:?}");
            assert_eq!(f.dst_port, VLAN_PORT, "{f:?}");
        }
        // 3. NAT: the mesh guest's datagram reached the lab from the uplink address
        //    (masquerade), and the answer found its way back through conntrack.
        //    On the wire it is untagged.
        let n = rounds_seen(nat_seen, round);
        let on_wire: Vec<&UdpFrame> = frames
            .iter()
            .filter(|f| f.payload.starts_with(&format!("{round} nat ")))
            .collect();
        assert!(!on_wire.is_empty(), "{round}: {frames:?}");
        assert!(
            on_wire.iter().all(|f| f.vlan.is_none() && f.src == MGMT),
            "{on_wire:?}"
        );
        assert!(
            !n.is_empty(),
            "{round}: no NAT datagram: {}",
            pretty(&report[round])
        );
        assert!(
            n.iter().all(|s| s.from.ip() == IpAddr::V4(MGMT)
                && s.payload.ends_with(&format!("from {MESH_GUEST}"))),
            "{round}: {n:?}"
        );
        assert_eq!(
            report[round]["nat"]["answer"]
                .as_str()
                .map(|a| a.starts_with(&format!("seen {MGMT}:"))),
            Some(true),
            "{}",
            pretty(&report[round])
        );
    }

    // 4. The broken file was rolled back: the cause named, the probes pass again, the seed's
    //    file is live and ifquery agrees; round 2 above ran on the restored network.
    let b = &report["broken_switch"];
    assert_eq!(b["outcome"]["outcome"], "rolled_back", "{}", pretty(b));
    assert_eq!(b["outcome"]["recovered"], true, "{}", pretty(b));
    let cause = b["cause_text"].as_str().unwrap_or_default();
    eprintln!("rollback cause: {cause}");
    assert!(
        cause.contains("ifreload -a") && cause.contains("enp9s9"),
        "{}",
        pretty(b)
    );
    assert_eq!(report["live_after_rollback"].as_str(), Some(good));
    let q = &report["ifquery_after_rollback"];
    assert_eq!(q["status"], 0, "{}", pretty(q));
    let (before, after) = (
        &report["addresses"]["stdout"],
        &report["addresses_after_rollback"]["stdout"],
    );
    assert!(
        before.as_str().is_some_and(|a| a.contains("10.0.0.13/24")),
        "{before}"
    );
    assert_eq!(before, after, "the IPv4 addresses after the rollback");
}
