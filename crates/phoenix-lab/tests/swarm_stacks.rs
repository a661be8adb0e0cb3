//! Docker stacks on the lab's real two-node Swarm: a small compose file (the imported busybox
//! image running `sleep`, a `${GREETING:-hello}` variable, a Traefik label, a stack-local
//! overlay next to the external `traefik-public`) is rendered by `phoenix_render::stack` and
//! deployed through the manager's Engine API by `swarm::stack::deploy` with the image resolved
//! to its local ID. The service reaches 1/1, carries the namespace, Traefik and hash labels; a
//! second deploy changes nothing; a changed variable is exactly one update; a missing external
//! secret is refused by name; `remove` leaves no service or stack network; `lab down` leaves
//! nothing behind. Root and dockerd only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::TaskState;
use bollard::query_parameters::ListTasksOptionsBuilder;
use common::*;
use phoenix_lab::LabGuard;
use phoenix_lab::swarm::stack::{self as swarm_stack, DeployOptions, NAMESPACE_LABEL};
use phoenix_lab::swarm::{self, IMAGE_REPO, IMAGE_TAG};
use phoenix_render::stack::{RenderedStack, namespace, render_compose};
use serde_json::{Value, json};

const SERVICE: &str = "lab_hello_hello";
const DEADLINE: Duration = Duration::from_secs(90);

fn compose(extra_secret: bool) -> Value {
    let mut c = json!({
        "services": {"hello": {
            "image": format!("{IMAGE_REPO}:{IMAGE_TAG}"),
            "command": ["sleep", "3600"],
            "environment": {"GREETING": "${GREETING:-hello}"},
            "networks": ["traefik-public", "back"],
            "deploy": {
                "replicas": 1,
                // A VIP needs IPVS, which this kernel lacks (LAB.md).
                "endpoint_mode": "dnsrr",
                // The image is referenced by its ID on the manager, where it was imported.
                "placement": {"constraints": ["node.role == manager"]},
                "labels": {"phoenix.test": "swarm_stacks"}
            }
        }},
        "networks": {"traefik-public": {"external": true}, "back": {}}
    });
    if extra_secret {
        c["services"]["hello"]["secrets"] = json!(["nope"]);
        c["secrets"] = json!({"nope": {"external": true, "name": "phoenix_test_missing"}});
    }
    c
}

fn render(greeting: Option<&str>, extra_secret: bool) -> RenderedStack {
    let vars: BTreeMap<String, String> = greeting
        .map(|g| BTreeMap::from([("GREETING".to_string(), g.to_string())]))
        .unwrap_or_default();
    let traefik = BTreeMap::from([(
        "hello".to_string(),
        vec![
            "traefik.enable=true".to_string(),
            "traefik.http.routers.hello.rule=Host(`hello.internal.thinkheads.ai`)".to_string(),
            "traefik.http.services.hello.loadbalancer.server.port=8080".to_string(),
        ],
    )]);
    render_compose(
        &namespace("hello", "lab"),
        &compose(extra_secret),
        &vars,
        &traefik,
    )
    .expect("render")
}

/// Poll until the stack's only service runs 1/1.
fn wait_running(docker: &Docker) {
    let start = Instant::now();
    loop {
        let r = swarm_stack::replicas(docker, "lab_hello").expect("replicas");
        if r == [(SERVICE.to_string(), 1, 1)] {
            return;
        }
        assert!(start.elapsed() < DEADLINE, "not 1/1 in time: {r:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The service's labels, image and environment as the manager has them.
fn inspect(docker: &Docker) -> (BTreeMap<String, String>, String, Vec<String>) {
    let s = rt()
        .block_on(docker.inspect_service(SERVICE, None))
        .expect("service inspect");
    let spec = s.spec.expect("spec");
    let c = spec
        .task_template
        .and_then(|t| t.container_spec)
        .expect("container spec");
    (
        spec.labels.unwrap_or_default().into_iter().collect(),
        c.image.unwrap_or_default(),
        c.env.unwrap_or_default(),
    )
}

/// Poll until a running task's container (on the manager) has `GREETING=<greeting>`: the
/// value reached the process, not only the spec.
fn wait_greeting(docker: &Docker, greeting: &str) {
    let want = format!("GREETING={greeting}");
    let filters = HashMap::from([
        ("service", vec![SERVICE]),
        ("desired-state", vec!["running"]),
    ]);
    let rt = rt();
    let start = Instant::now();
    loop {
        let tasks = rt
            .block_on(docker.list_tasks(Some(
                ListTasksOptionsBuilder::new().filters(&filters).build(),
            )))
            .expect("task list");
        let envs: Vec<Vec<String>> = tasks
            .iter()
            .filter_map(|t| {
                let st = t.status.as_ref()?;
                if st.state != Some(TaskState::RUNNING) {
                    return None;
                }
                let id = st.container_status.as_ref()?.container_id.clone()?;
                let c = rt.block_on(docker.inspect_container(&id, None)).ok()?;
                c.config?.env
            })
            .collect();
        if envs.iter().any(|e| e.contains(&want)) {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no running container with {want}: {} running task(s)",
            envs.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_stack_deploys_updates_and_goes_away() {
    if !lab_available() || !dockerd_available() {
        return;
    }
    let prefix = unique_prefix();
    let guard = LabGuard::new(&prefix);
    let d = homelab_unfiltered();
    let report = lab_up(&d, &prefix);
    let plan = report.swarm.as_ref().expect("swarm").plan.clone();
    let leader = plan.leader().expect("a manager");
    let docker = swarm::client(leader).expect("client");
    let opts = DeployOptions {
        resolve_local: true,
    };

    // A missing external secret is refused by name, before anything is made.
    let e = swarm_stack::deploy(&docker, &render(None, true), &opts).unwrap_err();
    assert!(e.to_string().contains("secret phoenix_test_missing"), "{e}");
    assert_eq!(swarm_stack::replicas(&docker, "lab_hello").unwrap(), []);

    let stack = render(None, false);
    let t0 = Instant::now();
    let changes = swarm_stack::deploy(&docker, &stack, &opts).expect("deploy");
    eprintln!("deploy {:?}: {changes:#?}", t0.elapsed());
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes[0].contains("network lab_hello_back"), "{changes:?}");
    assert!(
        changes[1].contains(&format!("service {SERVICE}")),
        "{changes:?}"
    );
    wait_running(&docker);
    eprintln!("1/1 after {:?}", t0.elapsed());

    let (labels, image, env) = inspect(&docker);
    assert_eq!(labels[NAMESPACE_LABEL], "lab_hello");
    assert_eq!(labels["traefik.enable"], "true");
    assert_eq!(
        labels["traefik.http.routers.hello.rule"],
        "Host(`hello.internal.thinkheads.ai`)"
    );
    assert_eq!(labels["phoenix.test"], "swarm_stacks");
    assert!(labels.contains_key(swarm_stack::LABEL_STACK_HASH));
    assert!(
        image.starts_with("sha256:"),
        "not resolved to the ID: {image}"
    );
    assert_eq!(env, ["GREETING=hello"]);
    wait_greeting(&docker, "hello");

    let again = swarm_stack::deploy(&docker, &stack, &opts).expect("deploy again");
    assert_eq!(again, Vec::<String>::new());

    let changed = render(Some("bonjour"), false);
    let update = swarm_stack::deploy(&docker, &changed, &opts).expect("deploy the change");
    assert_eq!(update.len(), 1, "{update:?}");
    assert!(update[0].contains("updated the service"), "{update:?}");
    assert!(
        !update[0].contains("bonjour"),
        "a change line shows a value"
    );
    assert_eq!(inspect(&docker).2, ["GREETING=bonjour"]);
    wait_greeting(&docker, "bonjour");
    wait_running(&docker);
    let settled = swarm_stack::deploy(&docker, &changed, &opts).expect("deploy once more");
    assert_eq!(settled, Vec::<String>::new());

    let removed = swarm_stack::remove(&docker, "lab_hello").expect("remove");
    eprintln!("remove: {removed:?}");
    assert!(
        removed.contains(&format!("removed the service {SERVICE}")),
        "{removed:?}"
    );
    assert!(
        removed.contains(&"removed the network lab_hello_back".to_string()),
        "{removed:?}"
    );
    assert_eq!(swarm_stack::replicas(&docker, "lab_hello").unwrap(), []);
    let net = rt().block_on(docker.inspect_network("lab_hello_back", None));
    assert!(net.is_err(), "the stack network is still there");
    assert_eq!(
        swarm_stack::remove(&docker, "lab_hello").expect("remove again"),
        Vec::<String>::new()
    );

    drop(guard);
    assert_gone(&prefix);
}
