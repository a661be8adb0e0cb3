//! The manifest's certificates on a node: `sync all` through the one pipeline
//! (`phoenix_exec::target::sync_all` over a `PveTarget`) against fakepve as the node's API and
//! a recording fake node shell for `pct exec` / `pct push`. Every container certificate of
//! `examples/homelab` is issued by phoenix's CA and delivered into its guest path with its
//! owner, group and mode (the key before the certificate); the rendered files inside the
//! containers are delivered too; the second run plans no certificate or file and makes no
//! write, through the API or into a guest. Without a CA the certificates are planned but
//! skipped with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::SystemTime;

use common::fakenode::FakeNodes;
use common::{FakePve, fakepve_available};
use phoenix_exec::guest::provision::NoMaterials;
use phoenix_exec::target::{SyncRequest, sync_all};
use phoenix_model::model::{DesiredState, GuestKind};
use phoenix_pki::{CaOptions, CaStore};
use phoenix_plan::{Action, Request};
use phoenix_pve::apply::{Journal, Outcome};
use phoenix_pve::target::PveTarget;
use phoenix_pve::tls::TlsTrust;
use phoenix_render::{FileTarget, RenderOptions};

/// `examples/homelab`'s containers and their manifest entries: a VM is reached through its
/// guest agent, which fakepve answers without holding files (and not at all for a VM it
/// created), so the VMs are left out here.
fn homelab_containers() -> DesiredState {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    let mut d = phoenix_model::validate_dir(&dir).desired.unwrap();
    d.guests.retain(|_, g| g.kind == GuestKind::Lxc);
    let guests: Vec<_> = d.guests.keys().copied().collect();
    d.certificates.retain(|c| guests.contains(&c.guest));
    assert!(
        d.certificates.len() >= 2,
        "homelab has container certificates"
    );
    d
}

fn opts() -> RenderOptions {
    RenderOptions {
        node: "pve1".into(),
    }
}

/// fakepve with the storages `d`'s creates name, and a client for it.
fn node_for(d: &DesiredState) -> (FakePve, phoenix_pve::PveClient) {
    let empty =
        phoenix_plan::plan(d, &Default::default(), &Request::SyncAll, &opts()).expect("plan");
    let pve = FakePve::start(&common::storages_for(&empty));
    let client = pve.client(TlsTrust::CaFile(pve.pki.ca_pem.clone()));
    (pve, client)
}

/// The node as a target over the fake node shell, issuing with `ca` when given.
fn target<'a>(
    client: &'a phoenix_pve::PveClient,
    nodes: &'a FakeNodes,
    d: &DesiredState,
    ca: Option<&'a CaStore>,
) -> PveTarget<'a> {
    PveTarget {
        client,
        shell: nodes,
        opts: opts(),
        parallelism: 4,
        image_store: Some("local".into()),
        materials: &NoMaterials,
        issuer: ca.map(|c| c as &(dyn phoenix_pki::LeafIssuer + Sync)),
        pki: ca
            .map(|c| phoenix_plan::PkiContext::from_ca(c.public(), d, Default::default()).unwrap()),
    }
}

fn request() -> SyncRequest {
    SyncRequest {
        request: Request::SyncAll,
        only: Default::default(),
        provision: false,
        dry_run: false,
    }
}

fn outcomes<'a>(j: &'a Journal, pick: impl Fn(&Action) -> bool + 'a) -> Vec<(String, String)> {
    j.entries
        .iter()
        .filter(|e| pick(&e.action))
        .map(|e| (e.action.to_string(), e.outcome.to_string()))
        .collect()
}

fn is_cert(a: &Action) -> bool {
    matches!(a, Action::IssueCertificate { .. })
}

fn is_guest_file(a: &Action) -> bool {
    matches!(
        a,
        Action::WriteFile {
            target: FileTarget::Guest(_),
            ..
        }
    )
}

#[test]
fn container_certificates_are_issued_into_their_guests_once() {
    if !fakepve_available() {
        return;
    }
    let d = homelab_containers();
    let (_pve, client) = node_for(&d);
    let ca_dir = tempfile::tempdir().unwrap();
    let mut ca_opts = CaOptions::from_settings(&d.step_ca);
    ca_opts.passphrase = None;
    let ca = CaStore::init(ca_dir.path(), &ca_opts, SystemTime::now()).unwrap();
    let nodes = FakeNodes::new(&[101, 102, 103]);
    let mut target = target(&client, &nodes, &d, Some(&ca));

    // First run: everything from nothing.
    let run = sync_all(&mut target, &d, &request(), None, &mut |_| {}).expect("sync");
    let journal = run.journal.expect("applied");
    for e in &journal.entries {
        eprintln!("  [{}] {} → {}", e.wave, e.action, e.outcome);
    }
    let certs = outcomes(&journal, is_cert);
    assert_eq!(certs.len(), d.certificates.len(), "{certs:#?}");
    assert!(certs.iter().all(|(_, o)| o == "done"), "{certs:#?}");
    let files = outcomes(&journal, is_guest_file);
    assert!(!files.is_empty());
    assert!(files.iter().all(|(_, o)| o == "done"), "{files:#?}");
    assert!(
        journal.is_success(),
        "{:#?}",
        journal.failures().collect::<Vec<_>>()
    );
    // Each certificate and key sits at its in-guest path with the manifest's owner and mode,
    // chains to the CA, and the key matches it.
    for entry in &d.certificates {
        let guest = d.guest(entry.guest).unwrap();
        let node = nodes.node(entry.guest.0);
        let cert_path = phoenix_pki::materialise::in_guest_path(guest, &entry.cert_path);
        let key_path = phoenix_pki::materialise::in_guest_path(guest, &entry.key_path);
        let mode = |p: &str| std::fs::metadata(node.at(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&cert_path), 0o644, "{cert_path}");
        assert_eq!(mode(&key_path), entry.key_mode, "{key_path}");
        let owners = node.guest.lock().unwrap().owners.clone();
        let want = (entry.owner.clone(), entry.group.clone());
        assert_eq!(owners.get(&key_path), Some(&want), "{key_path}");
        assert_eq!(owners.get(&cert_path), Some(&want), "{cert_path}");
        let cert = std::fs::read_to_string(node.at(&cert_path)).unwrap();
        let key = std::fs::read_to_string(node.at(&key_path)).unwrap();
        let info = phoenix_pki::parse_leaf_pem(&cert).unwrap();
        assert_eq!(
            info.common_name.as_deref(),
            Some(entry.common_name.as_str())
        );
        assert!(phoenix_pki::engine::key_matches(&key, &info), "{key_path}");
        phoenix_pki::verify_pem(
            &cert,
            ca.public().root_pem(),
            &entry.common_name,
            entry.kind,
            SystemTime::now(),
        )
        .unwrap_or_else(|e| panic!("{cert_path}: {e}"));
        // The key never leaves the node shell's staging in the clear: staged files are gone.
        assert!(
            nodes
                .node_files
                .lock()
                .unwrap()
                .keys()
                .all(|p| !p.starts_with(phoenix_pve::guestexec::PUSH_DIR)),
            "staged pushes removed"
        );
        // The key was pushed before the certificate.
        let pushes: Vec<String> = node
            .commands()
            .into_iter()
            .filter(|c| c.get(1).map(String::as_str) == Some("push"))
            .map(|c| c[4].clone())
            .collect();
        let k = pushes.iter().position(|p| *p == key_path).unwrap();
        let c = pushes.iter().position(|p| *p == cert_path).unwrap();
        assert!(k < c, "{pushes:?}");
    }

    // Second run: nothing to issue or place, no write anywhere.
    let before = client.counts();
    let count = |id: &u32| nodes.node(*id).commands().len();
    let ids = [101u32, 102, 103];
    let before_per_guest: Vec<usize> = ids.iter().map(count).collect();
    let run = sync_all(&mut target, &d, &request(), None, &mut |_| {}).expect("sync");
    let left: Vec<String> = run
        .plan
        .actions()
        .filter(|a| is_cert(a) || is_guest_file(a))
        .map(|a| a.to_string())
        .collect();
    assert!(left.is_empty(), "{left:#?}\n{:#?}", run.plan.notes);
    assert_eq!(client.counts().since(before).writes, 0);
    let writes_in_guests: Vec<(u32, Vec<String>)> = ids
        .iter()
        .zip(before_per_guest)
        .flat_map(|(id, n)| {
            nodes
                .node(*id)
                .commands()
                .into_iter()
                .skip(n)
                .map(move |c| (*id, c))
        })
        .filter(|(_, c)| c.get(1).map(String::as_str) == Some("push"))
        .collect();
    assert!(writes_in_guests.is_empty(), "{writes_in_guests:?}");
}

#[test]
fn without_a_ca_certificates_are_planned_and_skipped_with_the_reason() {
    if !fakepve_available() {
        return;
    }
    let d = homelab_containers();
    let (_pve, client) = node_for(&d);
    let nodes = FakeNodes::new(&[101, 102, 103]);
    let mut target = target(&client, &nodes, &d, None);
    let run = sync_all(&mut target, &d, &request(), None, &mut |_| {}).expect("sync");
    let journal = run.journal.expect("applied");
    let certs: Vec<&Outcome> = journal
        .entries
        .iter()
        .filter(|e| is_cert(&e.action))
        .map(|e| &e.outcome)
        .collect();
    assert_eq!(certs.len(), d.certificates.len());
    for o in certs {
        assert!(
            matches!(o, Outcome::Skipped { reason } if reason.contains("no CA to issue with")),
            "{o}"
        );
    }
    assert!(journal.is_success());
}
