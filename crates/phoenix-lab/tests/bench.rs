//! Figures, not assertions (ARCHITECTURE.md: no timing assertions in tests): a synthetic
//! 100-guest network-only lab against one hand-made `ip -batch` of the same namespaces and
//! veth pairs (the practical floor). Run with
//! `cargo test -p phoenix-lab --test bench -- --ignored --nocapture` (root).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::time::{Duration, Instant};

use common::*;
use ipnet::IpNet;
use phoenix_lab::{LabGuard, topology::topology};
use phoenix_model::model::{Addressing, DesiredState, GuestId};

/// The homelab's hypervisor with 100 mesh guests cloned from 102.
fn synthetic(n: u32) -> DesiredState {
    // Network only: no guest firewalls (the ping below crosses guests).
    let mut d = homelab_unfiltered();
    let proto = d.guests.get(&GuestId(102)).expect("guest 102").clone();
    d.guests.clear();
    // Network only: no Swarm either (its VMs are gone with the guests).
    d.roles.swarm_managers.clear();
    d.roles.swarm_workers.clear();
    for g in [
        &mut d.roles.gateway,
        &mut d.roles.internal_proxy,
        &mut d.roles.ca,
    ] {
        *g = None;
    }
    for i in 0..n {
        let mut g = proto.clone();
        g.id = GuestId(2000 + i);
        g.name = format!("g{i}");
        for nic in &mut g.nics {
            let addr: IpNet = format!("172.16.100.{}/24", 100 + i).parse().expect("cidr");
            nic.addressing = Addressing::Static {
                cidr: addr,
                gateway: nic.gateway(),
            };
            nic.mac = None;
        }
        d.guests.insert(g.id, g);
    }
    d
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
#[ignore = "benchmark: run by hand as root"]
fn hundred_guests_vs_ip_batch_floor() {
    if !lab_available() {
        return;
    }
    let d = synthetic(100);
    let (mut ups, mut downs, mut floors) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..11 {
        let prefix = unique_prefix();
        let _guard = LabGuard::new(&prefix);
        let opts = phoenix_lab::UpOptions {
            prefix: prefix.clone(),
            recreate: false,
        };
        // The kernel frees deleted namespaces in a work queue: let it finish so that neither
        // side pays for the other's cleanup.
        std::thread::sleep(Duration::from_millis(700));
        let t0 = Instant::now();
        let r = phoenix_lab::up_with(&d, &opts, phoenix_lab::Scope::NetworkOnly).expect("lab up");
        ups.push(t0.elapsed());
        eprintln!("up phases (ms): {:?}", r.phases);
        assert!(ping(&format!("{prefix}-g2099"), "172.16.100.100"));
        let t1 = Instant::now();
        phoenix_lab::down(&prefix).expect("lab down");
        downs.push(t1.elapsed());
        assert_gone(&prefix);

        // The floor: the same namespaces, bridges and veths from one hand-made batch.
        let floor_prefix = unique_prefix();
        let _floor_guard = LabGuard::new(&floor_prefix);
        let t = topology(&d, &floor_prefix).expect("topology");
        let file = std::env::temp_dir().join(format!("{floor_prefix}-floor.ip"));
        std::fs::write(&file, phoenix_lab::batch::floor_batch(&t)).expect("write batch");
        std::thread::sleep(Duration::from_millis(700));
        let t2 = Instant::now();
        let ok = std::process::Command::new("ip")
            .arg("-batch")
            .arg(&file)
            .status()
            .expect("ip -batch");
        floors.push(t2.elapsed());
        assert!(ok.success());
        let _ = std::fs::remove_file(&file);
        phoenix_lab::down(&floor_prefix).expect("floor down");
    }
    // Each run's ratio against the floor measured right after it (pairing keeps the ratio
    // meaningful when the machine's speed drifts).
    let mut ratios: Vec<f64> = ups
        .iter()
        .zip(&floors)
        .map(|(u, f)| u.as_secs_f64() / f.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let (up, down, floor) = (median(ups), median(downs), median(floors));
    eprintln!(
        "100-guest lab (102 namespaces, 102 veth pairs), median of {n}: up {up:?}, down {down:?}; \
         floor (one ip -batch, namespaces + veths only) {floor:?}; paired ratio up/floor: \
         median {:.2}, min {:.2}, max {:.2}",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
        n = ratios.len()
    );
}
