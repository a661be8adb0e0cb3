//! `phoenix verify --target pve`'s node checks (`phoenix_pve::verify`) against fakepve as the
//! node's API and the recording fake node shell for `pct exec`: the homelab's containers are
//! created by `sync all` first; then a healthy container passes its guest and DNS checks, a
//! stopped one and a missing one fail naming the guest (and their insides are skipped), a
//! name resolving to the wrong address fails with what it resolved to, and the run makes only
//! GET requests and writes nothing on the node or in a guest. TLS, route and Swarm are left
//! out: the homelab's addresses are not this machine's to probe (LAB.md, safety rules).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::fakenode::FakeNodes;
use common::{FakePve, fakepve_available};
use phoenix_exec::guest::provision::NoMaterials;
use phoenix_exec::shell::files::CountingShell;
use phoenix_exec::target::{SyncRequest, sync_all};
use phoenix_model::model::{DesiredState, GuestId, GuestKind};
use phoenix_plan::Request;
use phoenix_pve::target::PveTarget;
use phoenix_pve::tls::TlsTrust;
use phoenix_pve::verify::{Deadlines, Family, NodeVerify, verify};
use phoenix_render::RenderOptions;
use phoenix_verify::report::{Report, Status};

fn homelab_containers() -> DesiredState {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    let mut d = phoenix_model::validate_dir(&dir).desired.unwrap();
    d.guests.retain(|_, g| g.kind == GuestKind::Lxc);
    let guests: Vec<_> = d.guests.keys().copied().collect();
    d.certificates.retain(|c| guests.contains(&c.guest));
    d
}

fn opts() -> RenderOptions {
    RenderOptions {
        node: "pve1".into(),
    }
}

/// fakepve holding `d`'s containers, created by `sync all` through `nodes`.
fn node_with(d: &DesiredState, nodes: &FakeNodes) -> (FakePve, phoenix_pve::PveClient) {
    let empty =
        phoenix_plan::plan(d, &Default::default(), &Request::SyncAll, &opts()).expect("plan");
    let pve = FakePve::start(&common::storages_for(&empty));
    let client = pve.client(TlsTrust::CaFile(pve.pki.ca_pem.clone()));
    let mut target = PveTarget {
        client: &client,
        shell: nodes,
        opts: opts(),
        parallelism: 4,
        image_store: Some("local".into()),
        materials: &NoMaterials,
        issuer: None,
        pki: None,
    };
    let req = SyncRequest {
        request: Request::SyncAll,
        only: Default::default(),
        provision: false,
        dry_run: false,
    };
    sync_all(&mut target, d, &req, None, &mut |_| {}).expect("sync");
    (pve, client)
}

/// Each container's resolver answers the mesh DNS records and names the mesh DNS.
fn resolvers(d: &DesiredState, nodes: &FakeNodes) {
    let mesh = d.dns.listen[0];
    for n in nodes.nodes.values() {
        let etc = n.at("/etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(
            etc.join("resolv.conf"),
            format!("search example\nnameserver {mesh}\n"),
        )
        .unwrap();
        let mut g = n.guest.lock().unwrap();
        for (name, (addr, _)) in phoenix_render::dnsmasq::records(d) {
            g.hosts.insert(name, addr.to_string());
        }
    }
}

fn find<'a>(r: &'a Report, id: &str) -> &'a phoenix_verify::ProbeResult {
    r.results
        .iter()
        .find(|x| x.id == id)
        .unwrap_or_else(|| panic!("no check {id}: {:#?}", r.results))
}

#[test]
fn guests_and_dns_read_only() {
    if !fakepve_available() {
        return;
    }
    let d = homelab_containers();
    let ids: Vec<u32> = d.guests.keys().map(|g| g.0).collect();
    assert!(ids.len() >= 3, "homelab has three containers: {ids:?}");
    let (stopped, missing) = (GuestId(ids[1]), GuestId(ids[2]));
    // The node holds every container but `missing`.
    let mut partial = d.clone();
    partial.guests.remove(&missing);
    partial.certificates.retain(|c| c.guest != missing);
    let nodes = FakeNodes::new(&ids);
    let (pve, client) = node_with(&partial, &nodes);
    client
        .write_and_wait(
            reqwest::Method::POST,
            &format!("/nodes/pve1/lxc/{stopped}/status/stop"),
            &Default::default(),
        )
        .expect("stop");
    resolvers(&d, &nodes);
    // One name resolves wrongly inside the first container.
    let healthy = GuestId(ids[0]);
    let records = phoenix_render::dnsmasq::records(&d);
    let (wrong_name, _) = records.iter().next().unwrap();
    nodes
        .node(healthy.0)
        .guest
        .lock()
        .unwrap()
        .hosts
        .insert(wrong_name.clone(), "192.0.2.99".into());
    for n in nodes.nodes.values() {
        n.clear_log();
    }
    let before = pve.requests().len();
    let node_files = nodes.node_files.lock().unwrap().clone();

    let shell = CountingShell::new(&nodes);
    let v = NodeVerify {
        d: &d,
        client: &client,
        shell: &shell,
        root_pem: Err("no --ca-dir".into()),
        engines: Err("no client certificate".into()),
        deadlines: Deadlines::default(),
        families: BTreeSet::from([Family::Guests, Family::Dns]),
    };
    let report = verify(&v);
    print!("{}", report.render_text());

    // Guests: the healthy one passes, the stopped and the missing one fail naming themselves.
    assert_eq!(
        find(&report, &format!("guest/{healthy}")).status,
        Status::Pass
    );
    let ev = |id: String| match &find(&report, &id).status {
        Status::Fail { evidence } => evidence.clone(),
        s => panic!("{id}: expected a failure, got {s:?}"),
    };
    let name = |id: GuestId| d.guest(id).unwrap().name.clone();
    let e = ev(format!("guest/{stopped}"));
    assert!(
        e.contains(&stopped.to_string()) && e.contains(&name(stopped)),
        "{e}"
    );
    assert!(e.contains("stopped"), "{e}");
    let e = ev(format!("guest/{missing}"));
    assert!(
        e.contains(&missing.to_string()) && e.contains(&name(missing)),
        "{e}"
    );
    assert!(e.contains("does not exist"), "{e}");

    // DNS: every record from the healthy container, but the wrong one; the unknown name is
    // not found; the stopped and missing containers are skipped with the reason.
    assert_eq!(
        find(&report, &format!("dns/guest:{healthy}/resolver")).status,
        Status::Pass
    );
    for (n, (addr, _)) in &records {
        let r = find(&report, &format!("dns/guest:{healthy}/{n}"));
        if n == wrong_name {
            let e = ev(r.id.clone());
            assert!(
                e.contains("192.0.2.99") && e.contains(&addr.to_string()),
                "{e}"
            );
        } else {
            assert_eq!(r.status, Status::Pass, "{r:#?}");
        }
    }
    let nx = format!(
        "dns/guest:{healthy}/{}.{}",
        phoenix_verify::expect::NXDOMAIN_LABEL,
        d.domain
    );
    assert_eq!(find(&report, &nx).status, Status::Pass);
    for g in [stopped, missing] {
        let r = find(&report, &format!("dns/guest:{g}"));
        assert!(matches!(r.status, Status::Skip { .. }), "{r:#?}");
    }
    assert!(!report.ok());
    assert_eq!(report.exit_code(), 1);

    // Read-only: GETs only, nothing written on the node, only reading commands in guests.
    let requests = pve.requests();
    let made = &requests[before..];
    assert!(!made.is_empty());
    assert!(made.iter().all(|(m, _)| m == "GET"), "{made:#?}");
    assert_eq!(shell.writes(), 0);
    assert_eq!(*nodes.node_files.lock().unwrap(), node_files);
    for (id, argv) in nodes.commands() {
        assert_eq!(&argv[..2], ["pct", "exec"], "{id}: {argv:?}");
        assert!(
            matches!(argv[4].as_str(), "getent" | "cat"),
            "{id}: {argv:?}"
        );
        assert_eq!(id, healthy.0, "only the running container is entered");
    }
}
