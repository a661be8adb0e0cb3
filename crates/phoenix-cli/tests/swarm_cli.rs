//! `phoenix swarm` against the lab's real two-node Swarm (issue 6/6): the homelab plus a small
//! stack `whoami` (the lab's imported busybox image, a `${GREETING:-hello}` variable, Traefik
//! labels from the stacks file) listed on the manager. After `sync all`: `status` plans only
//! that stack's deploy (and the Portainer stack's, whose secret phoenix cannot read here);
//! `init` changes nothing; `deploy whoami --env production` creates the service, which
//! reaches 1/1 with the labels injected; a second deploy changes nothing; `status` no longer
//! plans it; the certificate renewed by the PKI → `status` plans the secret's rotation and the
//! stack's update, and the next deploy creates the new version and moves the service to it;
//! the environment's file (`files[]`, `stacks/whoami/app.env` → `/app/.env`) is a config
//! version mounted in the service (its content read back from the running task through the
//! docker CLI, when there is one); a changed file → the next deploy creates a new version,
//! updates the service and removes the old version, then changes nothing;
//! `rm` removes it and `status` plans it again. Errors: a lab that is not up, an
//! unknown stack, and a stack whose external secret is missing are refused with a hint.
//! Root and dockerd only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use phoenix_lab::LabGuard;
use phoenix_pki::LeafIssuer;
use serde_json::Value;

const COMPOSE: &str = "services:
  web:
    image: phoenix-lab/busybox:1
    command: [\"sleep\", \"3600\"]
    environment:
      GREETING: ${GREETING:-hello}
    networks:
      - traefik-public
    secrets:
      - portainer_tls_cert
    deploy:
      replicas: 1
      endpoint_mode: dnsrr
      placement:
        constraints:
          - node.role == manager
networks:
  traefik-public:
    external: true
secrets:
  portainer_tls_cert:
    external: true
";

/// The environment file of the `whoami` stack (`files[]`), relative to the config dir.
const APP_ENV: &str = "stacks/whoami/app.env";

/// The homelab with the `whoami` stack on the manager, in a temp dir.
fn config_with_stack() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Path::new(CONFIG);
    for f in [
        "phoenix_hypervisor_config.json",
        "phoenix_lxc_configs.json",
        "certificate-manifest.json",
    ] {
        std::fs::copy(src.join(f), dir.path().join(f)).expect("copy");
    }
    let portainer = src.join("stacks/portainer_service/docker-compose.yml");
    let p = dir.path().join("stacks/portainer_service");
    std::fs::create_dir_all(&p).expect("mkdir");
    std::fs::copy(portainer, p.join("docker-compose.yml")).expect("copy compose");
    let w = dir.path().join("stacks/whoami");
    std::fs::create_dir_all(&w).expect("mkdir");
    std::fs::write(w.join("docker-compose.yml"), COMPOSE).expect("compose");
    std::fs::write(dir.path().join(APP_ENV), "MODE=first\n").expect("app.env");

    let mut stacks: Value = serde_json::from_str(
        &std::fs::read_to_string(src.join("phoenix_stacks_config.json")).expect("stacks"),
    )
    .expect("json");
    stacks["docker_stacks"]["whoami"] = serde_json::json!({
        "description": "test stack",
        "environments": {
            "production": {
                "variables": [{"name": "GREETING", "value": "bonjour"}],
                "files": [{"source": APP_ENV, "destination_in_container": "/app/.env"}],
                "services": {
                    "web": {
                        "traefik_labels": [
                            "traefik.enable=true",
                            "traefik.http.routers.whoami.rule=Host(`whoami.internal.thinkheads.ai`)",
                            "traefik.http.routers.whoami.entrypoints=websecure",
                            "traefik.http.services.whoami.loadbalancer.server.port=8080"
                        ]
                    }
                }
            }
        }
    });
    std::fs::write(
        dir.path().join("phoenix_stacks_config.json"),
        serde_json::to_string_pretty(&stacks).unwrap(),
    )
    .expect("write stacks");
    let mut vms: Value = serde_json::from_str(
        &std::fs::read_to_string(src.join("phoenix_vm_configs.json")).expect("vms"),
    )
    .expect("json");
    let list = vms["vms"]
        .as_array_mut()
        .expect("vms array")
        .iter_mut()
        .find(|v| v["vmid"] == 1001)
        .expect("vm 1001");
    list["docker_stacks"]
        .as_array_mut()
        .expect("docker_stacks")
        .push("whoami".into());
    std::fs::write(
        dir.path().join("phoenix_vm_configs.json"),
        serde_json::to_string_pretty(&vms).unwrap(),
    )
    .expect("write vms");
    dir
}

fn swarm(cfg: &Path, prefix: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["swarm"];
    all.extend_from_slice(args);
    let c = cfg.to_string_lossy().into_owned();
    all.extend_from_slice(&["--target", "lab", "--config", &c, "--prefix", prefix]);
    phoenix(&all)
}

/// `swarm deploy whoami --env production` succeeds and changes nothing.
fn deploy_changes_nothing(cfg: &Path, prefix: &str) {
    let o = swarm(cfg, prefix, &["deploy", "whoami", "--env", "production"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("no changes"),
        "{}",
        text(&o.stdout)
    );
}

fn status(cfg: &Path, prefix: &str) -> Value {
    let o = swarm(cfg, prefix, &["status", "--output", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("status json")
}

/// `production_whoami_app-<12 hex>`: the config version of `content`.
fn app_config(content: &str) -> String {
    format!(
        "production_whoami_app-{}",
        &phoenix_lab::swarm::service::sha256_hex(content.as_bytes())[..12]
    )
}

/// Wait until the one running task container of `service` on the lab's manager has `want` at
/// `path`, read through the docker CLI; `false` when there is no docker CLI here.
fn wait_file_in_task(prefix: &str, service: &str, path: &str, want: &str) -> bool {
    let state = phoenix_lab::swarm::load(prefix).expect("swarm state");
    let leader = state.plan.leader().expect("leader");
    let host = format!("unix://{}", leader.socket().display());
    let docker = |args: &[&str]| {
        std::process::Command::new("docker")
            .arg("-H")
            .arg(&host)
            .args(args)
            .output()
    };
    if docker(&["version", "--format", "{{.Client.Version}}"]).is_err() {
        eprintln!("note: no docker CLI: the file in the container is not read back");
        return false;
    }
    let filter = format!("label=com.docker.swarm.service.name={service}");
    let t0 = Instant::now();
    let mut last = String::new();
    while t0.elapsed() < Duration::from_secs(60) {
        let ps = docker(&["ps", "-q", "--filter", &filter]).expect("docker ps");
        let ids: Vec<String> = text(&ps.stdout)
            .split_whitespace()
            .map(String::from)
            .collect();
        if let [id] = ids.as_slice() {
            let cat = docker(&["exec", id, "cat", path]).expect("docker exec");
            last = format!("{}{}", text(&cat.stdout), text(&cat.stderr));
            if cat.status.success() && text(&cat.stdout) == want {
                return true;
            }
        } else {
            last = format!("{} running containers", ids.len());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("{service}: {path} never became {want:?} (last: {last})");
}

fn actions(v: &Value) -> Vec<(String, String)> {
    v["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap_or_default().to_string(),
                a["subject"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn swarm_cli_status_deploy_rm_on_the_lab() {
    if !swarm_or_skip("swarm_cli") {
        return;
    }
    let cfg_dir = config_with_stack();
    let cfg = cfg_dir.path();
    let prefix = unique_prefix('s');

    // Not up yet: a clear refusal.
    let o = swarm(cfg, &prefix, &["status"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("is not up") && err.contains("hint:"), "{err}");

    let guard = LabGuard::new(&prefix);
    let c = cfg.to_string_lossy().into_owned();
    let (code, up) = lab_sync(&prefix, &c);
    assert_eq!(code, Some(0), "{:#}", up["verify"]["counts"]);

    let v = status(cfg, &prefix);
    let a = actions(&v);
    assert!(
        a.contains(&("stack_deploy".into(), "production_whoami".into())),
        "{a:?}"
    );
    assert!(
        !a.iter()
            .any(|(k, _)| k == "init" || k == "join" || k == "label" || k == "overlay"),
        "the lab's Swarm is up: {a:?}"
    );

    let o = swarm(cfg, &prefix, &["init"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("no changes"),
        "{}",
        text(&o.stdout)
    );

    // Unknown stack.
    let o = swarm(cfg, &prefix, &["deploy", "nosuch", "--env", "production"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("nosuch"), "{}", text(&o.stderr));

    // Deploy, converge, labels.
    let t0 = Instant::now();
    let o = swarm(cfg, &prefix, &["deploy", "whoami", "--env", "production"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("production_whoami_web"), "{out}");
    assert!(
        !out.contains("bonjour"),
        "a variable's value in the output: {out}"
    );
    let first = app_config("MODE=first\n");
    assert!(out.contains(&format!("created config {first}")), "{out}");
    assert!(
        !out.contains("MODE="),
        "a file's content in the output: {out}"
    );
    eprintln!("deploy: {:?}\n{out}", t0.elapsed());
    let running = loop {
        let v = status(cfg, &prefix);
        let r = v["replicas"]["production_whoami"].clone();
        if r[0][1] == 1 || t0.elapsed() > Duration::from_secs(60) {
            break (v, r);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(running.1[0][1], 1, "{:#}", running.0);
    let a = actions(&running.0);
    assert!(!a.iter().any(|(_, s)| s == "production_whoami"), "{a:?}");
    let services = running.0["observed"]["cluster"]["services"]
        .as_array()
        .unwrap()
        .clone();
    let web = services
        .iter()
        .find(|s| s["name"] == "production_whoami_web")
        .expect("service observed");
    assert_eq!(web["labels"]["traefik.enable"], "true", "{web:#}");
    assert_eq!(
        web["labels"]["com.docker.stack.namespace"],
        "production_whoami"
    );
    wait_file_in_task(
        &prefix,
        "production_whoami_web",
        "/app/.env",
        "MODE=first\n",
    );
    // `verify` checks the deployed stack's replicas (and lists no line for the Portainer
    // stack, which the lab serves with its stand-in).
    let o = phoenix(&[
        "verify", "--target", "lab", "--config", &c, "--prefix", &prefix, "--output", "json",
    ]);
    let report: Value = serde_json::from_slice(&o.stdout).expect("verify json");
    let stacks: Vec<&Value> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| {
            r["id"]
                .as_str()
                .is_some_and(|i| i.starts_with("swarm/stack/"))
        })
        .collect();
    assert_eq!(stacks.len(), 1, "{stacks:#?}");
    assert_eq!(stacks[0]["id"], "swarm/stack/production_whoami");
    assert_eq!(stacks[0]["status"], "pass", "{:#}", stacks[0]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));

    deploy_changes_nothing(cfg, &prefix);

    // The PKI renews Portainer's certificate: the secret is rotated (a new version) and the
    // stack's service moves to it; the old version stays while the stand-in still uses it.
    let d = phoenix_model::validate_dir(cfg).desired.expect("config");
    let entry = d
        .certificates
        .iter()
        .find(|c| c.guest.0 == 1001)
        .expect("Portainer's certificate");
    let cert_file = phoenix_lab::ingress::under(
        &phoenix_lab::ingress::guest_root(&prefix, 1001),
        &entry.cert_path,
    );
    let ca = phoenix_pki::CaStore::open(&phoenix_lab::state_dir(&prefix).join("ca"), None)
        .expect("lab CA");
    let renewed = ca
        .issue(
            &phoenix_pki::LeafRequest {
                common_name: &entry.common_name,
                sans: &entry.sans,
                kind: phoenix_model::model::CertKind::Server,
                lifetime_hours: 48,
            },
            std::time::SystemTime::now(),
        )
        .expect("renew");
    std::fs::write(&cert_file, renewed.cert_file(false)).expect("write renewed");
    let a = actions(&status(cfg, &prefix));
    assert!(
        a.contains(&("secret".into(), "portainer_tls_cert".into())),
        "{a:?}"
    );
    assert!(
        a.contains(&("stack_update".into(), "production_whoami".into())),
        "{a:?}"
    );
    let o = swarm(cfg, &prefix, &["deploy", "whoami", "--env", "production"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("created secret portainer_tls_cert-"), "{out}");
    assert!(out.contains("production_whoami_web"), "{out}");
    assert!(
        !out.contains("BEGIN"),
        "secret content in the output: {out}"
    );
    let v = status(cfg, &prefix);
    let a = actions(&v);
    assert!(!a.iter().any(|(_, s)| s == "production_whoami"), "{a:?}");
    let web = v["observed"]["cluster"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "production_whoami_web")
        .cloned()
        .expect("service");
    let want = format!(
        "portainer_tls_cert-{}",
        &phoenix_lab::swarm::service::sha256_hex(renewed.cert_file(false).as_bytes())[..12]
    );
    assert_eq!(web["secrets"][0], want.as_str(), "{web:#}");

    // The environment's file changes: a new config version, the service moved to it, the old
    // version removed; then nothing to do.
    std::fs::write(cfg.join(APP_ENV), "MODE=second\n").expect("rewrite app.env");
    let a = actions(&status(cfg, &prefix));
    assert!(
        a.contains(&("stack_update".into(), "production_whoami".into())),
        "a changed file is planned: {a:?}"
    );
    let o = swarm(cfg, &prefix, &["deploy", "whoami", "--env", "production"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let second = app_config("MODE=second\n");
    assert!(out.contains(&format!("created config {second}")), "{out}");
    assert!(out.contains("production_whoami_web"), "{out}");
    assert!(out.contains(&format!("removed config {first}")), "{out}");
    assert!(
        !out.contains("MODE="),
        "a file's content in the output: {out}"
    );
    wait_file_in_task(
        &prefix,
        "production_whoami_web",
        "/app/.env",
        "MODE=second\n",
    );
    deploy_changes_nothing(cfg, &prefix);

    // An unreadable file: the deploy is refused, naming it.
    std::fs::remove_file(cfg.join(APP_ENV)).expect("rm app.env");
    let o = swarm(cfg, &prefix, &["deploy", "whoami", "--env", "production"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("app.env") && err.contains("whoami") && err.contains("hint:"),
        "{err}"
    );

    // Portainer's stack needs its admin password secret, which nothing provides here.
    let o = phoenix(&[
        "swarm",
        "deploy",
        "portainer_service",
        "--env",
        "production",
        "--target",
        "lab",
        "--config",
        &c,
        "--prefix",
        &prefix,
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("portainer_admin_password"), "{err}");

    let o = swarm(cfg, &prefix, &["rm", "whoami", "--env", "production"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("production_whoami_web"));
    let a = actions(&status(cfg, &prefix));
    assert!(
        a.contains(&("stack_deploy".into(), "production_whoami".into())),
        "{a:?}"
    );

    let down = phoenix(&["lab", "down", "--prefix", &prefix]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    drop(guard);
    assert_gone(&prefix);
}

/// `phoenix sync all --target pve --only swarm` — the production path, over TCP+TLS 2376 with
/// phoenix's client certificate — run from the lab's hypervisor namespace (where phoenix runs
/// on a real node) against the lab's engines: the Swarm is observed (already initialised,
/// joined, labelled, with its overlay), the plan has exactly the Portainer stack's missing
/// admin-password secret and its deploy; the apply creates them; a second run plans and
/// changes nothing. Without the client certificate the Swarm is left out, said so.
#[test]
fn sync_pve_only_swarm_over_tls_from_the_hypervisor() {
    if !swarm_or_skip("swarm_cli pve") {
        return;
    }
    let prefix = unique_prefix('t');
    let guard = LabGuard::new(&prefix);
    let (code, up) = lab_sync(&prefix, CONFIG);
    assert_eq!(code, Some(0), "{:#}", up["verify"]["counts"]);
    let certs = phoenix_lab::swarm::tls::client_dir(&prefix);
    let hv = format!("{prefix}-hv");
    let sync = |with_certs: bool| {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &hv, env!("CARGO_BIN_EXE_phoenix")])
            .args(["sync", "all", "--target", "pve", "--only", "swarm", "--yes"])
            .args(["--config", CONFIG, "--output", "json"])
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CERT_PATH")
            .env("PORTAINER_ADMIN_PASSWORD", "lab-only-admin-pw");
        if with_certs {
            c.arg("--docker-cert-path").arg(&certs);
        }
        c.output().expect("phoenix in the hypervisor namespace")
    };

    let o = sync(false);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("no Engine API client certificate"),
        "{}",
        text(&o.stderr)
    );

    let o = sync(true);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    let a = actions(&v["swarm"]);
    assert_eq!(
        a,
        vec![
            ("secret".to_string(), "portainer_admin_password".to_string()),
            (
                "stack_deploy".to_string(),
                "production_portainer_service".to_string()
            ),
        ],
        "{:#}",
        v["swarm"]
    );
    let applied: Vec<String> = v["swarm"]["applied"]
        .as_array()
        .expect("applied")
        .iter()
        .map(|c| c.as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        applied
            .iter()
            .any(|c| c.contains("created secret portainer_admin_password-")),
        "{applied:?}"
    );
    assert!(
        applied
            .iter()
            .any(|c| c.contains("production_portainer_service_portainer")),
        "{applied:?}"
    );
    let all = text(&o.stdout) + &text(&o.stderr);
    assert!(
        !all.contains("lab-only-admin-pw"),
        "the password in the output"
    );

    let o = sync(true);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(
        v["swarm"]["actions"],
        serde_json::json!([]),
        "{:#}",
        v["swarm"]
    );
    assert_eq!(v["swarm"]["applied"], serde_json::json!([]));

    // The worker leaves the Swarm (its own engine, over its unix socket): the next run plans
    // its join and rejoins it over TLS with the worker token and its labels.
    let d = phoenix_model::validate_dir(std::path::Path::new(CONFIG))
        .desired
        .expect("homelab");
    let t = phoenix_lab::status::load_state(&prefix).expect("state");
    let plan = phoenix_lab::swarm::plan(&d, &t)
        .expect("plan")
        .expect("swarm");
    let worker = plan.node(1002).expect("worker");
    let left = std::process::Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", worker.socket().display()))
        .args(["swarm", "leave", "--force"])
        .output();
    match left {
        Err(e) => eprintln!("note: no docker CLI ({e}): the rejoin part is skipped"),
        Ok(l) => {
            assert!(l.status.success(), "{}", text(&l.stderr));
            let o = sync(true);
            assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
            let v: Value = serde_json::from_slice(&o.stdout).expect("json");
            let a = actions(&v["swarm"]);
            assert!(
                a.contains(&("join".to_string(), "drphoenix".to_string())),
                "{a:?}"
            );
            let applied = v["swarm"]["applied"].to_string();
            assert!(
                applied.contains("drphoenix (1002) joined as worker"),
                "{applied}"
            );
            let o = sync(true);
            let v: Value = serde_json::from_slice(&o.stdout).expect("json");
            assert_eq!(
                v["swarm"]["actions"],
                serde_json::json!([]),
                "{:#}",
                v["swarm"]
            );
        }
    }

    let down = phoenix(&["lab", "down", "--prefix", &prefix]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    drop(guard);
    assert_gone(&prefix);
}
