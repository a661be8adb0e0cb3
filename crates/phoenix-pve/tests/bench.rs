//! A synthetic create wave against fakepve with response latency: wall time with parallel
//! guests vs one at a time. Ignored by default (tens of seconds); run with
//! `cargo test -p phoenix-pve --test bench -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::{FakePve, fakepve_available};
use phoenix_model::model::{GuestId, GuestKind};
use phoenix_plan::action::{Action, CreateVia, Reason};
use phoenix_plan::plan::{Plan, Summary, Wave};
use phoenix_pve::apply::{ApplyOptions, apply_plan};
use phoenix_pve::observe::Observation;
use phoenix_pve::tls::TlsTrust;
use phoenix_render::guestparams::{ApiCall, GuestEndpoint};

const TEMPLATE: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

fn create_wave(first: u32, count: u32) -> Plan {
    let actions = (first..first + count)
        .map(|n| {
            let params = BTreeMap::from([
                ("vmid".to_string(), n.to_string()),
                ("hostname".to_string(), format!("bench{n}")),
                ("ostemplate".to_string(), TEMPLATE.to_string()),
                ("memory".to_string(), "128".to_string()),
                ("rootfs".to_string(), "local-lvm:1".to_string()),
            ]);
            Action::CreateGuest {
                id: GuestId(n),
                kind: GuestKind::Lxc,
                name: format!("bench{n}"),
                via: CreateVia::Template {
                    image: TEMPLATE.into(),
                },
                calls: vec![ApiCall {
                    endpoint: GuestEndpoint::LxcCreate,
                    vmid: GuestId(n),
                    params,
                }],
                image_import: None,
                image_source: None,
                reason: Reason::Missing,
            }
        })
        .collect();
    Plan {
        node: "pve1".into(),
        waves: vec![Wave {
            name: "bench".into(),
            actions,
        }],
        files: Vec::new(),
        orphans: Vec::new(),
        certificates: Vec::new(),
        notes: Vec::new(),
        swarm: Vec::new(),
        summary: Summary::default(),
    }
}

#[test]
#[ignore = "benchmark: tens of seconds"]
fn create_wave_parallel_vs_sequential() {
    if !fakepve_available() {
        return;
    }
    const GUESTS: u32 = 200;
    // 20 ms per response, tasks at 1/100 of PVE time.
    let pve = FakePve::start_full(&serde_json::json!({}), &serde_json::json!([]), 0.01, 2.0);
    let client = pve.client(TlsTrust::CaFile(pve.pki.ca_pem.clone()));
    let observation = Observation::default();
    for (label, first, parallelism) in [("parallel (8)", 1000, 8), ("sequential", 2000, 1)] {
        let before = client.counts();
        let start = Instant::now();
        let options = ApplyOptions {
            parallelism,
            shell: None,
            image_store: None,
            issuer: None,
        };
        let journal = apply_plan(&client, &create_wave(first, GUESTS), &observation, &options);
        let wall = start.elapsed();
        assert!(journal.is_success(), "{:?}", journal.failures().next());
        let used = client.counts().since(before);
        println!(
            "{GUESTS}-guest create wave, {label}: {wall:?}, {} requests, {} writes",
            used.requests, used.writes
        );
    }
}
