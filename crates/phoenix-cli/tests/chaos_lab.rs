//! Chaos on a running `examples/homelab` lab (issue 17): a bounded series of rounds, each one
//! random fault from a list — a service (nginx's master alone, Traefik, step-ca) or a dockerd
//! SIGKILLed, a route deleted, an address flushed, the NAT table flushed in the hypervisor, a
//! guest's `resolv.conf` or a rendered file edited, `phoenix sync` itself SIGKILLed mid-apply —
//! followed by ONE `sync all --target lab --provision`, after which `verify` passes in full.
//! Each repair must be said (a journal entry, a planned change or a lab upkeep note), never
//! silent. `PHOENIX_CHAOS_ROUNDS` (default 12) sets the rounds, `PHOENIX_CHAOS_SEED` replays
//! a run (the seed is printed first). Root only (a note and return without, unless `CI`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::rng::Rng;
use common::*;
use phoenix_lab::LabGuard;
use phoenix_lab::ingress::{guest_root, under};

/// The faults, with what they act on.
#[derive(Debug, Clone)]
enum Fault {
    /// SIGKILL to the recorded pid of a lab service (nginx-gw: the master alone, its worker
    /// is left holding 80/443).
    KillService(&'static str),
    KillDockerd(u32),
    DeleteRoute {
        ns: String,
        dest: String,
    },
    FlushAddress {
        ns: String,
        dev: String,
    },
    FlushNat {
        hv: String,
    },
    EditResolv {
        ns: String,
    },
    EditRendered {
        guest: u32,
        path: &'static str,
    },
    /// Traefik killed, then `sync` SIGKILLed after this many milliseconds.
    KillSync(u64),
}

/// Guest files the plan renders (the gateway's site, Traefik's static and dynamic files).
const RENDERED: [(u32, &str); 3] = [
    (101, "/etc/nginx/conf.d/phoenix-gateway.conf"),
    (102, "/etc/traefik/traefik.yml"),
    (102, "/etc/traefik/dynamic/phoenix.yml"),
];

/// One fault drawn from every kind the lab has (a kind picked first, then its object).
fn draw(rng: &mut Rng, t: &phoenix_lab::LabTopology, swarm: bool) -> Fault {
    let kinds = if swarm { 8 } else { 7 };
    match rng.below(kinds) {
        0 => Fault::KillService(["nginx-gw", "traefik", "step-ca"][rng.below(3)]),
        1 => {
            let mut routes: Vec<(String, String)> = t
                .routes
                .iter()
                .map(|r| {
                    let dest = r.dest.map_or_else(|| "default".into(), |d| d.to_string());
                    (r.ns.clone(), dest)
                })
                .collect();
            routes.extend(
                t.dhcp_clients
                    .iter()
                    .map(|c| (c.ns.clone(), "default".into())),
            );
            let (ns, dest) = routes[rng.below(routes.len())].clone();
            Fault::DeleteRoute { ns, dest }
        }
        2 => {
            let mut devs: Vec<(String, String)> = t
                .addresses
                .iter()
                .map(|a| (a.ns.clone(), a.dev.clone()))
                .collect();
            devs.extend(t.dhcp_clients.iter().map(|c| (c.ns.clone(), c.nic.clone())));
            devs.dedup();
            let (ns, dev) = devs[rng.below(devs.len())].clone();
            Fault::FlushAddress { ns, dev }
        }
        3 => Fault::FlushNat { hv: t.hv.clone() },
        4 => Fault::EditResolv {
            ns: t.namespaces[rng.below(t.namespaces.len())].name.clone(),
        },
        5 => {
            let (guest, path) = RENDERED[rng.below(RENDERED.len())];
            Fault::EditRendered { guest, path }
        }
        6 => Fault::KillSync(200 + rng.next() % 2800),
        _ => Fault::KillDockerd([1001, 1002][rng.below(2)]),
    }
}

/// Inject `f` in lab `prefix`; returns the rendered file's content before an edit (to compare
/// after the repair).
fn inject(prefix: &str, f: &Fault) -> Option<(std::path::PathBuf, String)> {
    let dir = phoenix_lab::state_dir(prefix);
    match f {
        Fault::KillService(name) => kill9(pid_of(prefix, name)),
        Fault::KillDockerd(guest) => {
            let pid = std::fs::read_to_string(dir.join(format!("swarm/g{guest}/docker.pid")))
                .expect("docker pid file");
            kill9(pid.trim().parse().expect("pid"));
        }
        Fault::DeleteRoute { ns, dest } => run_ok("ip", &["-n", ns, "route", "del", dest]),
        Fault::FlushAddress { ns, dev } => run_ok("ip", &["-n", ns, "addr", "flush", "dev", dev]),
        Fault::FlushNat { hv } => run_ok(
            "ip",
            &[
                "netns",
                "exec",
                hv,
                "nft",
                "flush",
                "table",
                "ip",
                "phoenix_nat",
            ],
        ),
        Fault::EditResolv { ns } => {
            std::fs::write(
                format!("/etc/netns/{ns}/resolv.conf"),
                "nameserver 192.0.2.53\n",
            )
            .expect("edit resolv.conf");
        }
        Fault::EditRendered { guest, path } => {
            let file = under(&guest_root(prefix, *guest), path);
            let before = std::fs::read_to_string(&file).expect("rendered file");
            std::fs::write(&file, "# edited by the chaos test\n").expect("edit");
            return Some((file, before));
        }
        Fault::KillSync(ms) => {
            kill9(pid_of(prefix, "traefik"));
            let mut c = Command::new(env!("CARGO_BIN_EXE_phoenix"))
                .args(lab_sync_args(prefix))
                .env_remove("PHOENIX_CONFIG")
                .env_remove("PHOENIX_LAB_PREFIX")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("phoenix runs");
            std::thread::sleep(Duration::from_millis(*ms));
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    None
}

/// The repair run said what it did, as the fault's kind needs.
fn said(f: &Fault, v: &serde_json::Value) -> Result<(), String> {
    let upkeep = plan_notes(v)
        .iter()
        .any(|n| n.starts_with("lab upkeep before the plan's actions"));
    let repaired = notes(v)
        .iter()
        .any(|n| n.starts_with("repaired: ") || n.starts_with("renewed the DHCP lease"));
    let ok = match f {
        Fault::KillService(_) | Fault::KillDockerd(_) => !done(v).is_empty(),
        Fault::DeleteRoute { .. }
        | Fault::FlushAddress { .. }
        | Fault::FlushNat { .. }
        | Fault::EditResolv { .. } => upkeep && repaired,
        Fault::EditRendered { .. } => planned(v) > 0 && !done(v).is_empty(),
        Fault::KillSync(_) => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the repair of {f:?} was silent: plan notes {:?}, notes {:?}, done {:?}",
            plan_notes(v),
            notes(v),
            done(v)
        ))
    }
}

#[test]
fn chaos_rounds_each_repaired_by_one_sync() {
    if !root_or_skip("chaos_lab") {
        return;
    }
    let (seed, rounds) = Rng::from_env(12);
    eprintln!("chaos seed {seed}, {rounds} rounds (PHOENIX_CHAOS_SEED={seed} replays)");
    let mut rng = Rng(seed);
    let start = Instant::now();
    let prefix = unique_prefix('x');
    let guard = LabGuard::new(&prefix);
    let (code, v) = lab_sync(&prefix, CONFIG);
    assert_eq!(code, Some(0), "lab up: {:?}", failed_results(&v["verify"]));
    let t = phoenix_lab::status::load_state(&prefix).expect("recorded topology");
    let swarm = phoenix_lab::swarm::dockerd_available();
    eprintln!("lab {prefix} up after {:?}", start.elapsed());
    for round in 1..=rounds {
        let f = draw(&mut rng, &t, swarm);
        let r0 = Instant::now();
        let edited = inject(&prefix, &f);
        if let Fault::EditResolv { ns } = &f {
            // verify fails while the edit is there, naming the namespace.
            let (code, report) = lab_verify(&prefix, CONFIG);
            let failed = failed_results(&report);
            assert_eq!(
                code,
                Some(1),
                "seed {seed} round {round}: {f:?} passed verify"
            );
            assert!(
                failed
                    .iter()
                    .any(|l| l.starts_with(&format!("lab/net/{ns}: ")) && l.contains("resolv.conf")),
                "seed {seed} round {round}: {failed:#?}"
            );
        }
        let (code, v) = lab_sync(&prefix, CONFIG);
        assert_eq!(
            code,
            Some(0),
            "seed {seed} round {round}: {f:?}: sync: {:#?}\nnotes {:?}",
            failed_results(&v["verify"]),
            notes(&v)
        );
        if let Err(e) = said(&f, &v) {
            panic!("seed {seed} round {round}: {e}");
        }
        let (code, report) = lab_verify(&prefix, CONFIG);
        assert_eq!(
            code,
            Some(0),
            "seed {seed} round {round}: {f:?}: verify after one sync: {:#?}",
            failed_results(&report)
        );
        if let Some((file, before)) = edited {
            let now = std::fs::read_to_string(&file).expect("rendered file");
            assert_eq!(
                now,
                before,
                "seed {seed} round {round}: {} not restored",
                file.display()
            );
        }
        eprintln!("round {round}: {f:?} repaired in {:?}", r0.elapsed());
    }
    lab_down(&prefix);
    drop(guard);
    assert_gone(&prefix);
    eprintln!(
        "chaos: {rounds} rounds in {:?} (seed {seed})",
        start.elapsed()
    );
}
