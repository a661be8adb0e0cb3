//! `QemuAgentExec` against fakepve: every request the executor sends (`agent/exec` with the
//! argv as an array, `agent/exec-status` polling, `agent/file-read`, `agent/file-write`) passes
//! PVE's own parameter schema (no HTTP 400), and the answers are read as PVE gives them.
//! fakepve's agent runs nothing: `exec-status` answers exit 0 with empty output unless an
//! answer is preset per command line, and `file-read` returns preset content.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{FakePve, fakepve_available};
use phoenix_exec::guest::provision::{
    Contents, GuestExec, NoMaterials, ProvisionError, StepOutcome, apply_provision,
};
use phoenix_model::model::{DesiredState, GuestId};
use phoenix_plan::provision::{ProvisionOptions, StepKind, guest_steps};
use phoenix_plan::{ObservedState, PlanContext, Request};
use phoenix_pve::guestexec::{AGENT_WRITE_LIMIT, QemuAgentExec};
use phoenix_pve::tls::TlsTrust;
use phoenix_pve::{HostFile, PveError};
use phoenix_render::RenderOptions;
use serde_json::json;

const VMID: u32 = 1001;

fn homelab() -> DesiredState {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    phoenix_model::validate_dir(&dir).desired.unwrap()
}

fn start() -> FakePve {
    let agent = json!({
        "exec": {
            "dpkg-query -W -f=${Status} docker.io": {"out-data": "install ok installed\n"},
            "stat -c %U:%G:%a /etc/phoenix/motd": {"out-data": "root:adm:640\n"},
            "stat -c %U:%G:%a /missing": {"exitcode": 1, "err-data": "No such file"},
            "stat -c %U:%G:%a /etc/apt/sources.list.d/smallstep.sources": {"out-data": "root:root:644\n"},
            // The Swarm VM's dockerd files (the docker feature's file steps).
            "stat -c %U:%G:%a /etc/docker/daemon.json": {"out-data": "root:root:644\n"},
            "stat -c %U:%G:%a /etc/systemd/system/docker.service.d/phoenix-hosts.conf": {"out-data": "root:root:644\n"},
            "false": {"exitcode": 1, "err-data": "nope"},
        },
        "files": {"/etc/phoenix/motd": "hello from the guest\n"},
    });
    FakePve::start_with_vms(
        &json!({}),
        &json!([]),
        0.0,
        0.0,
        &json!([
            {"vmid": VMID, "name": "docker-manager", "config": {"agent": "1"}, "agent": agent},
            {"vmid": 1002, "name": "docker-worker", "config": {"agent": "1"}, "agent": null},
        ]),
    )
}

fn exec<'a>(client: &'a phoenix_pve::PveClient) -> QemuAgentExec<'a> {
    let mut e = QemuAgentExec::new(client, "pve1", GuestId(VMID));
    e.poll = Duration::from_millis(20);
    e.deadline = Duration::from_secs(10);
    e
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn no_rejection(e: &ProvisionError) -> bool {
    let ProvisionError::Api(source) = e else {
        return true;
    };
    !matches!(
        source.downcast_ref::<PveError>(),
        Some(PveError::Parameters { .. } | PveError::Http { status: 400, .. })
    )
}

#[test]
fn agent_exec_read_and_write_are_accepted_by_pve_schema() {
    if !fakepve_available() {
        return;
    }
    let pve = start();
    let client = pve.client(TlsTrust::CaFile(pve.pki.ca_pem.clone()));
    let vm = exec(&client);

    // The argv travels as an array, one element per `command` pair, untouched.
    let out = vm
        .run(&strings(&["dpkg-query", "-W", "-f=${Status}", "docker.io"]))
        .unwrap();
    assert_eq!((out.status, out.stdout.trim()), (0, "install ok installed"));
    let out = vm.run(&strings(&["false"])).unwrap();
    assert_eq!((out.status, out.stderr.as_str()), (1, "nope"));

    let f = vm.read_file("/etc/phoenix/motd").unwrap().unwrap();
    assert_eq!(
        f,
        HostFile {
            content: "hello from the guest\n".into(),
            owner: "root".into(),
            group: "adm".into(),
            mode: 0o640,
        }
    );
    assert_eq!(vm.read_file("/missing").unwrap(), None);

    let secret = HostFile {
        content: "line one\nline two: ü & = + %\n".into(),
        owner: "root".into(),
        group: "root".into(),
        mode: 0o600,
    };
    vm.write_file("/etc/phoenix/secret", &secret)
        .unwrap_or_else(|e| panic!("{e}"));

    let big = HostFile {
        content: "x".repeat(AGENT_WRITE_LIMIT + 1),
        ..secret
    };
    let e = vm.write_file("/etc/phoenix/big", &big).unwrap_err();
    assert!(e.to_string().contains("more than the agent's"), "{e}");
}

#[test]
fn vm_steps_run_through_the_agent_without_rejections() {
    if !fakepve_available() {
        return;
    }
    let pve = start();
    let client = pve.client(TlsTrust::CaFile(pve.pki.ca_pem.clone()));
    let vm = exec(&client);
    let d = homelab();
    let opts = ProvisionOptions::default();
    let plan = phoenix_plan::plan_full(
        &d,
        &ObservedState::default(),
        &Request::SyncAll,
        &RenderOptions::default(),
        &PlanContext::default(),
        Some(&opts),
    )
    .unwrap();
    let rendered: Vec<_> = plan.files.iter().map(|f| f.file.clone()).collect();
    let steps = guest_steps(&d, &d.guests[&GuestId(VMID)], &rendered, &opts).steps;
    let out = apply_provision(
        &vm,
        &steps,
        Contents {
            rendered: &plan.files,
            materials: &NoMaterials,
        },
    );
    for (s, o) in steps.iter().zip(&out) {
        assert!(!matches!(o, StepOutcome::Failed(_)), "{s}: {o:?}");
        // docker.io is reported installed by the preset answer: kept, not reinstalled.
        if matches!(&s.kind, StepKind::Package { name } if name == "docker.io") {
            assert_eq!(*o, StepOutcome::Kept, "{s}");
        }
    }
    // The agent answers ping; one that never comes up is an error after the deadline.
    vm.wait_ready(Duration::from_secs(5)).unwrap();
    let silent = QemuAgentExec::new(&client, "pve1", GuestId(1002));
    let t = std::time::Instant::now();
    let e = silent.wait_ready(Duration::from_millis(700)).unwrap_err();
    assert!(e.to_string().contains("agent is not running"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));
    // An agent that is not running is an error naming the guest's API path, not a panic.
    let other = QemuAgentExec::new(&client, "pve1", GuestId(4242));
    let e = other.run(&strings(&["true"])).unwrap_err();
    assert!(no_rejection(&e), "{e}");
}

/// The plan's provisioning wave through `apply_plan`: the VM's steps go through the agent,
/// kept steps are journaled as such, a container without a host shell is skipped with a reason.
#[test]
fn apply_plan_runs_the_provisioning_wave() {
    if !fakepve_available() {
        return;
    }
    use phoenix_plan::action::Action;
    use phoenix_pve::apply::{ApplyOptions, Outcome, apply_plan};
    use phoenix_pve::observe::Observation;

    let pve = start();
    let client = pve.client(TlsTrust::CaFile(pve.pki.ca_pem.clone()));
    let d = homelab();
    let mut plan = phoenix_plan::plan_full(
        &d,
        &ObservedState::default(),
        &Request::SyncAll,
        &RenderOptions {
            node: "pve1".into(),
        },
        &PlanContext::default(),
        Some(&ProvisionOptions::default()),
    )
    .unwrap();
    // Only the provisioning of 1001 (the VM fakepve knows) and 101 (a container).
    plan.waves
        .retain(|w| w.name == "provisioning inside guests");
    for w in &mut plan.waves {
        w.actions
            .retain(|a| matches!(a.guest(), Some(GuestId(1001 | 101))));
    }
    let journal = apply_plan(
        &client,
        &plan,
        &Observation::default(),
        &ApplyOptions::default(),
    );
    assert!(
        journal.is_success(),
        "{:#?}",
        journal.failures().collect::<Vec<_>>()
    );
    let mut kept = 0;
    for e in &journal.entries {
        let Action::Provision { guest, step, .. } = &e.action else {
            panic!("only provision actions: {:?}", e.action)
        };
        match (guest.0, &e.outcome) {
            (1001, Outcome::Done) => {}
            (1001, Outcome::Skipped { reason }) if reason.starts_with("kept") => kept += 1,
            (101, Outcome::Skipped { reason }) if reason.contains("host shell") => {}
            (g, o) => panic!("guest {g}: {step}: {o:?}"),
        }
    }
    // docker.io (preset as installed) and the Smallstep key (`test -s` answers 0) are kept.
    assert_eq!(kept, 2);
}
