//! [`LxcExec`] and [`apply_provision`] against a recording fake node: `pct exec` and
//! `pct push` act on a guest file system in a temp dir, with packages, services and users as
//! state (pct does not exist on a development machine; the argv vectors are what a node runs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use phoenix_model::model::{DesiredState, GuestId};
use phoenix_plan::observed::sha256_hex;
use phoenix_plan::provision::{ProvisionOptions, ProvisionStep, guest_steps};
use phoenix_plan::{ObservedState, PlanContext, Request};
use phoenix_render::RenderOptions;

use crate::guestexec::LxcExec;
use phoenix_exec::guest::provision::*;
use phoenix_exec::shell::{CommandOutput, HostFile};
use phoenix_plan::plan::PlannedFile;
use phoenix_plan::provision::{BinarySource, StepKind};

#[path = "../tests/common/fakenode.rs"]
mod fakenode;
use fakenode::FakeNode;

fn homelab() -> DesiredState {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    phoenix_model::validate_dir(&dir).desired.unwrap()
}

const FAKE_TRAEFIK_URL: &str = "https://example.invalid/traefik.tar.gz";

fn options() -> ProvisionOptions {
    let body = format!("downloaded from {FAKE_TRAEFIK_URL}");
    ProvisionOptions {
        traefik: BinarySource {
            url: FAKE_TRAEFIK_URL.into(),
            sha256: Some(sha256_hex(&body)),
            tar_gz: true,
        },
    }
}

/// The guest's steps and the plan's rendered files.
fn steps_of(
    d: &DesiredState,
    id: u32,
    opts: &ProvisionOptions,
) -> (Vec<ProvisionStep>, Vec<PlannedFile>) {
    let plan = phoenix_plan::plan_full(
        d,
        &ObservedState::default(),
        &Request::SyncAll,
        &RenderOptions::default(),
        &PlanContext::default(),
        Some(opts),
    )
    .unwrap();
    let rendered: Vec<_> = plan.files.iter().map(|f| f.file.clone()).collect();
    let steps = guest_steps(d, &d.guests[&GuestId(id)], &rendered, opts).steps;
    (steps, plan.files)
}

fn materials(id: u32) -> BTreeMap<(GuestId, String), String> {
    [
        (
            "ca.json",
            "{\"root\": \"/var/lib/phoenix/ca/certs/root_ca.crt\"}\n",
        ),
        ("root certificate", "-----BEGIN CERTIFICATE-----\nroot\n"),
        (
            "intermediate certificate",
            "-----BEGIN CERTIFICATE-----\nint\n",
        ),
        ("intermediate key", "-----BEGIN EC PRIVATE KEY-----\nk\n"),
        ("step-ca password", "pw-for-test\n"),
    ]
    .into_iter()
    .map(|(k, v)| ((GuestId(id), k.to_string()), v.to_string()))
    .collect()
}

fn is_write(argv: &[String]) -> bool {
    let a: Vec<&str> = argv.iter().map(String::as_str).collect();
    matches!(
        a.as_slice(),
        ["pct", "push", ..]
            | ["pct", "exec", _, "--", "env", _, "apt-get", ..]
            | [
                "pct",
                "exec",
                _,
                "--",
                "systemctl",
                "enable" | "reload" | "reload-or-restart",
                ..
            ]
            | [
                "pct",
                "exec",
                _,
                "--",
                "useradd" | "curl" | "tar" | "install" | "chmod",
                ..
            ]
    )
}

#[test]
fn lxc_first_run_applies_second_run_keeps_everything() {
    let d = homelab();
    let opts = options();
    for id in [101, 102, 103] {
        let node = FakeNode::new(id);
        let exec = LxcExec::new(&node, GuestId(id));
        let (steps, files) = steps_of(&d, id, &opts);
        let mats = materials(id);
        let contents = Contents {
            rendered: &files,
            materials: &mats,
        };
        let first = apply_provision(&exec, &steps, contents);
        for (s, o) in steps.iter().zip(&first) {
            assert_eq!(*o, StepOutcome::Applied, "guest {id}: {s}");
        }
        // Every command went through pct, as an argv; no temp file is left on the node.
        for argv in node.commands() {
            assert_eq!(argv[0], "pct", "{argv:?}");
            let program = if argv[1] == "exec" {
                argv[4].as_str()
            } else {
                "pct"
            };
            assert!(!matches!(program, "sh" | "bash" | "dash"), "{argv:?}");
        }
        assert!(node.node_files.lock().unwrap().is_empty());
        // `apt-get update` once, and once more after Smallstep's repository was added.
        let updates = node
            .commands()
            .iter()
            .filter(|a| a.iter().any(|x| x == "update"))
            .count();
        assert_eq!(updates, 2, "guest {id}");

        node.clear_log();
        let second = apply_provision(&exec, &steps, contents);
        assert!(
            second.iter().all(|o| *o == StepOutcome::Kept),
            "guest {id}: {second:?}"
        );
        let writes: Vec<_> = node
            .commands()
            .into_iter()
            .filter(|a| is_write(a))
            .collect();
        assert!(
            writes.is_empty(),
            "guest {id}: second run wrote {writes:#?}"
        );
    }
}

#[test]
fn placed_files_carry_owner_group_and_mode() {
    let d = homelab();
    let node = FakeNode::new(103);
    let exec = LxcExec::new(&node, GuestId(103));
    let (steps, files) = steps_of(&d, 103, &options());
    let mats = materials(103);
    let contents = Contents {
        rendered: &files,
        materials: &mats,
    };
    apply_provision(&exec, &steps, contents);
    let dir = d.step_ca.ca_dir.trim_end_matches('/');
    let key = exec
        .read_file(&format!("{dir}/secrets/intermediate_ca_key"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (key.owner.as_str(), key.group.as_str(), key.mode),
        ("step", "step", 0o600)
    );
    let unit = exec
        .read_file(phoenix_plan::provision::STEP_CA_UNIT)
        .unwrap()
        .unwrap();
    assert_eq!(unit.mode, 0o644);
    assert!(unit.content.contains("ExecStart=/usr/bin/step-ca"));
    let push = node
        .commands()
        .into_iter()
        .find(|a| a[1] == "push" && a[4].ends_with("intermediate_ca_key"))
        .unwrap();
    assert_eq!(
        push[5..],
        ["--perms", "0600", "--user", "step", "--group", "step"]
    );
}

#[test]
fn a_changed_config_is_rewritten_and_the_service_reloaded() {
    let d = homelab();
    let node = FakeNode::new(101);
    let exec = LxcExec::new(&node, GuestId(101));
    let (steps, files) = steps_of(&d, 101, &options());
    let contents = Contents {
        rendered: &files,
        materials: &NoMaterials,
    };
    apply_provision(&exec, &steps, contents);
    let conf = phoenix_render::nginx::GATEWAY_CONFIG_PATH;
    std::fs::write(node.at(conf), "# edited by hand\n").unwrap();
    node.clear_log();
    let third = apply_provision(&exec, &steps, contents);
    let changed: Vec<String> = steps
        .iter()
        .zip(&third)
        .filter(|(_, o)| **o != StepOutcome::Kept)
        .map(|(s, _)| s.key())
        .collect();
    assert_eq!(
        changed,
        [format!("file:{conf}"), "service:nginx".to_string()]
    );
    let reload = ["systemctl".to_string(), "reload".into(), "nginx".into()];
    assert!(node.commands().iter().any(|a| a[4..] == reload[..]));
}

#[test]
fn missing_material_is_skipped_and_a_bad_download_fails_cleanly() {
    let d = homelab();
    let node = FakeNode::new(103);
    let exec = LxcExec::new(&node, GuestId(103));
    let (steps, files) = steps_of(&d, 103, &options());
    let out = apply_provision(
        &exec,
        &steps,
        Contents {
            rendered: &files,
            materials: &NoMaterials,
        },
    );
    let skipped: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            StepOutcome::Skipped(why) => Some(why.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(skipped.len(), 5, "{out:?}");
    assert!(skipped.contains(&"ca.json was not supplied"));

    // A checksum that does not match: the download is removed, nothing is installed, and
    // the later steps of the guest do not run.
    let mut bad = options();
    bad.traefik.sha256 = Some("00".repeat(32));
    let node = FakeNode::new(102);
    let exec = LxcExec::new(&node, GuestId(102));
    let (steps, files) = steps_of(&d, 102, &bad);
    let out = apply_provision(
        &exec,
        &steps,
        Contents {
            rendered: &files,
            materials: &NoMaterials,
        },
    );
    let i = steps
        .iter()
        .position(|s| s.key() == "file:/usr/local/bin/traefik")
        .unwrap();
    assert!(
        matches!(&out[i], StepOutcome::Failed(m) if m.contains("sha256")),
        "{:?}",
        out[i]
    );
    assert!(
        out[i + 1..]
            .iter()
            .all(|o| matches!(o, StepOutcome::Skipped(_)))
    );
    assert!(!node.at("/usr/local/bin/traefik").exists());
    assert!(!node.at("/usr/local/bin/traefik.phoenix-download").exists());
}

#[test]
fn observation_feeds_the_planner_and_a_second_plan_is_empty() {
    let d = homelab();
    let opts = options();
    let node = FakeNode::new(101);
    let exec = LxcExec::new(&node, GuestId(101));
    let (steps, files) = steps_of(&d, 101, &opts);
    let contents = Contents {
        rendered: &files,
        materials: &NoMaterials,
    };
    let before = observe_provision(&exec, &steps, contents).unwrap();
    assert!(before.done.is_empty(), "{before:?}");
    apply_provision(&exec, &steps, contents);
    node.clear_log();
    let after = observe_provision(&exec, &steps, contents).unwrap();
    assert!(
        node.commands().iter().all(|a| !is_write(a)),
        "observing changes nothing"
    );
    let observed = ObservedState {
        provisioned: vec![after],
        ..ObservedState::default()
    };
    let plan = phoenix_plan::plan_full(
        &d,
        &observed,
        &Request::SyncAll,
        &RenderOptions::default(),
        &PlanContext::default(),
        Some(&opts),
    )
    .unwrap();
    let left: Vec<_> = plan
        .actions()
        .filter(|a| {
            matches!(a, phoenix_plan::Action::Provision { .. }) && a.guest() == Some(GuestId(101))
        })
        .collect();
    assert!(left.is_empty(), "{left:#?}");
}

/// The container side of `apply_plan`: the provisioning wave of 101 through the host shell,
/// journaled as done, then as kept; the API is never called (its endpoint does not exist).
#[test]
fn apply_plan_provisions_a_container_through_the_host_shell() {
    use crate::apply::{ApplyOptions, Outcome, apply_plan_with};
    use crate::connection::{ApiToken, ConnectionSettings, PveAuth};
    use crate::observe::Observation;

    let d = homelab();
    let mut plan = phoenix_plan::plan_full(
        &d,
        &ObservedState::default(),
        &Request::SyncAll,
        &RenderOptions::default(),
        &PlanContext::default(),
        Some(&options()),
    )
    .unwrap();
    plan.waves
        .retain(|w| w.name == "provisioning inside guests");
    for w in &mut plan.waves {
        w.actions.retain(|a| a.guest() == Some(GuestId(103)));
    }
    let client = crate::PveClient::new(&ConnectionSettings {
        endpoint: "https://127.0.0.1:9".into(),
        auth: PveAuth::Token(ApiToken::parse("root@pam!t=00000000-0000").unwrap()),
        node: "pve".into(),
        trust: crate::TlsTrust::Fingerprint([0; 32]),
    })
    .unwrap();
    let node = FakeNode::new(103);
    let options = ApplyOptions {
        shell: Some(&node),
        ..ApplyOptions::default()
    };
    let mats = materials(103);
    let first = apply_plan_with(&client, &plan, &Observation::default(), &options, &mats);
    assert!(
        first.is_success(),
        "{:#?}",
        first.failures().collect::<Vec<_>>()
    );
    assert!(
        first
            .entries
            .iter()
            .all(|e| matches!(e.outcome, Outcome::Done))
    );
    let second = apply_plan_with(&client, &plan, &Observation::default(), &options, &mats);
    assert!(second.entries.iter().all(|e| matches!(
        &e.outcome,
        Outcome::Skipped { reason } if reason.starts_with("kept")
    )));
    assert_eq!(first.entries.len(), second.entries.len());
}

/// An executor that handles packages and services itself (as the lab twin does) around a
/// container's `pct`: those steps never reach the guest, files still do.
#[derive(Debug)]
struct OwnSteps<'a>(LxcExec<'a>);

impl GuestExec for OwnSteps<'_> {
    fn guest(&self) -> GuestId {
        self.0.guest()
    }
    fn run(&self, argv: &[String]) -> Result<CommandOutput, ProvisionError> {
        self.0.run(argv)
    }
    fn read_file(&self, path: &str) -> Result<Option<HostFile>, ProvisionError> {
        self.0.read_file(path)
    }
    fn write_file(&self, path: &str, file: &HostFile) -> Result<(), ProvisionError> {
        self.0.write_file(path, file)
    }
    fn own_step(
        &self,
        step: &ProvisionStep,
        _apply: bool,
    ) -> Option<Result<StepOutcome, ProvisionError>> {
        match &step.kind {
            StepKind::Package { name } if name == "ca-certificates" => Some(Ok(StepOutcome::Kept)),
            StepKind::Package { .. } | StepKind::Service { .. } => {
                Some(Ok(StepOutcome::Skipped("provided elsewhere".into())))
            }
            _ => None,
        }
    }
}

#[test]
fn an_executor_may_handle_steps_itself() {
    let d = homelab();
    let opts = options();
    let node = FakeNode::new(102);
    let exec = OwnSteps(LxcExec::new(&node, GuestId(102)));
    let (steps, files) = steps_of(&d, 102, &opts);
    let contents = Contents {
        rendered: &files,
        materials: &NoMaterials,
    };
    let outcomes = apply_provision(&exec, &steps, contents);
    for (s, o) in steps.iter().zip(&outcomes) {
        let want = match &s.kind {
            StepKind::Package { name } if name == "ca-certificates" => StepOutcome::Kept,
            StepKind::Package { .. } | StepKind::Service { .. } => {
                StepOutcome::Skipped("provided elsewhere".into())
            }
            _ => StepOutcome::Applied,
        };
        assert_eq!(*o, want, "{s}");
    }
    for argv in node.commands() {
        let a = argv.join(" ");
        assert!(
            !a.contains("apt-get") && !a.contains("systemctl"),
            "ran {a}"
        );
    }
    // The observation counts a kept own step as done and a skipped one as not.
    let seen = observe_provision(&exec, &steps, contents).unwrap();
    for s in &steps {
        let want = match &s.kind {
            StepKind::Package { name } => name == "ca-certificates",
            StepKind::Service { .. } => false,
            _ => true,
        };
        assert_eq!(seen.done.contains(&s.done_key()), want, "{s}");
    }
    // The default leaves LxcExec's handling as it was.
    let plain = LxcExec::new(&node, GuestId(102));
    assert!(steps.iter().all(|s| plain.own_step(s, true).is_none()));
}
