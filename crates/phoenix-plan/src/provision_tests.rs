//! Which steps each guest of examples/homelab gets, and that every step is an argv.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::path::PathBuf;

use super::*;

fn homelab() -> DesiredState {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    phoenix_model::validate_dir(&dir)
        .desired
        .expect("homelab builds")
}

fn keys_of(d: &DesiredState, id: u32) -> Vec<String> {
    let rendered =
        phoenix_render::render_all(d, &phoenix_render::RenderOptions::default()).unwrap();
    let g = &d.guests[&GuestId(id)];
    guest_steps(d, g, &rendered, &ProvisionOptions::default())
        .steps
        .iter()
        .map(ProvisionStep::key)
        .collect()
}

const BASE: [&str; 2] = ["package:ca-certificates", "package:curl"];
const STEP_CLI: [&str; 3] = [
    "file:/etc/apt/keyrings/smallstep.asc",
    "file:/etc/apt/sources.list.d/smallstep.sources",
    "package:step-cli",
];

fn expect(parts: &[&[&str]]) -> Vec<String> {
    parts
        .iter()
        .flat_map(|p| p.iter().map(|s| s.to_string()))
        .collect()
}

#[test]
fn gateway_101_gets_nginx_with_its_rendered_config() {
    let d = homelab();
    let nginx = [
        "package:nginx",
        "file:/etc/nginx/conf.d/phoenix-gateway.conf",
        "service:nginx",
    ];
    assert_eq!(keys_of(&d, 101), expect(&[&BASE, &STEP_CLI, &nginx]));
}

#[test]
fn proxy_102_gets_traefik_binary_unit_configs_and_service() {
    let d = homelab();
    let traefik = [
        "file:/usr/local/bin/traefik",
        "file:/etc/systemd/system/traefik.service",
        "file:/etc/traefik/traefik.yml",
        "file:/etc/traefik/dynamic/phoenix.yml",
        "service:traefik",
    ];
    assert_eq!(keys_of(&d, 102), expect(&[&BASE, &STEP_CLI, &traefik]));
    let rendered =
        phoenix_render::render_all(&d, &phoenix_render::RenderOptions::default()).unwrap();
    let steps = guest_steps(&d, &d.guests[&GuestId(102)], &rendered, &Default::default());
    let svc = steps.steps.iter().find(|s| s.key() == "service:traefik");
    let Some(StepKind::Service { reload_on, .. }) = svc.map(|s| &s.kind) else {
        panic!("no traefik service")
    };
    // The dynamic directory is watched by Traefik: only the static side restarts it.
    assert!(reload_on.contains(&"/etc/traefik/traefik.yml".to_string()));
    assert!(!reload_on.iter().any(|p| p.contains("dynamic")));
}

#[test]
fn ca_103_gets_step_ca_from_smallstep_with_material_at_apply_time() {
    let d = homelab();
    let dir = d.step_ca.ca_dir.trim_end_matches('/').to_string();
    let keys = keys_of(&d, 103);
    let mut want = expect(&[
        &BASE,
        &STEP_CLI[..2],
        &["package:step-ca", "command:system user step"],
    ]);
    want.push(format!("command:directory {dir}/db owned by step"));
    for p in [
        "config/ca.json",
        "certs/root_ca.crt",
        "certs/intermediate_ca.crt",
        "secrets/intermediate_ca_key",
        "secrets/password",
    ] {
        want.push(format!("file:{dir}/{p}"));
    }
    want.push("file:/etc/systemd/system/step-ca.service".into());
    want.push("service:step-ca".into());
    assert_eq!(keys, want);
    // Key material and secrets are never carried by the plan.
    let rendered = Vec::new();
    let steps = guest_steps(&d, &d.guests[&GuestId(103)], &rendered, &Default::default());
    for s in &steps.steps {
        if let StepKind::File { path, source, .. } = &s.kind
            && path.starts_with(&dir)
        {
            assert!(matches!(source, FileSource::Material { .. }), "{path}");
        }
    }
    assert!(step_ca_unit(&dir).contains(&format!("{dir}/config/ca.json --password-file")));
}

#[test]
fn vms_1001_1002_get_docker_with_its_tls_configuration() {
    let d = homelab();
    let docker = [
        "package:docker.io",
        "file:/etc/docker/daemon.json",
        "file:/etc/systemd/system/docker.service.d/phoenix-hosts.conf",
        "service:docker",
    ];
    let rendered =
        phoenix_render::render_all(&d, &phoenix_render::RenderOptions::default()).unwrap();
    for id in [1001, 1002] {
        assert_eq!(keys_of(&d, id), expect(&[&BASE, &STEP_CLI, &docker]));
        let steps = guest_steps(&d, &d.guests[&GuestId(id)], &rendered, &Default::default());
        let svc = steps.steps.iter().find(|s| s.key() == "service:docker");
        let Some(StepKind::Service { reload_on, .. }) = svc.map(|s| &s.kind) else {
            panic!("no docker service")
        };
        // A changed daemon.json or drop-in restarts the engine.
        assert_eq!(
            reload_on,
            &vec![DOCKER_DAEMON_JSON.to_string(), DOCKER_DROP_IN.to_string()]
        );
    }
}

#[test]
fn docker_outside_the_swarm_gets_no_tls_configuration() {
    let mut d = homelab();
    d.guests.get_mut(&GuestId(1002)).unwrap().swarm = None;
    assert_eq!(
        keys_of(&d, 1002),
        expect(&[&BASE, &STEP_CLI, &["package:docker.io", "service:docker"]])
    );
}

#[test]
fn unknown_features_are_not_steps_and_steps_are_argv_only() {
    let mut d = homelab();
    let g = d.guests.get_mut(&GuestId(1001)).unwrap();
    g.features.push("vllm".into());
    g.features.push("nvidia".into());
    let rendered =
        phoenix_render::render_all(&d, &phoenix_render::RenderOptions::default()).unwrap();
    let gp = guest_steps(
        &d,
        &d.guests[&GuestId(1001)],
        &rendered,
        &Default::default(),
    );
    assert!(
        gp.steps
            .iter()
            .all(|s| s.feature != "vllm" && s.feature != "nvidia")
    );
    for (_, gp) in plan_steps(&d, &rendered, &Default::default()) {
        for s in gp.steps {
            let mut argvs = s.apply.clone();
            if let Check::Probes { probes } = &s.check {
                argvs.extend(probes.iter().map(|p| p.argv.clone()));
            }
            for a in argvs {
                assert!(!a.is_empty());
                assert!(!matches!(a[0].as_str(), "sh" | "bash"), "{a:?}");
            }
        }
    }
}

#[test]
fn package_check_is_dpkg_status_and_done_key_follows_content() {
    let p = package("base_setup", "curl");
    let Check::Probes { probes } = &p.check else {
        panic!("probes")
    };
    assert_eq!(probes[0].argv, ["dpkg-query", "-W", "-f=${Status}", "curl"]);
    assert_eq!(probes[0].stdout.as_deref(), Some("install ok installed"));
    let a = inline("x", "/etc/a", "one".into());
    let b = inline("x", "/etc/a", "two".into());
    assert_eq!(a.key(), b.key());
    assert_ne!(a.done_key(), b.done_key());
}
