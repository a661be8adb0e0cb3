//! The Portainer stand-in as a real Docker Swarm service (`portainer-stand-in`), what the
//! homelab's `portainer_service` stack deploys on the manager, minus the Portainer image
//! (there is none here, and the lab never pulls):
//! - image `phoenix-lab/nginx:1`, imported (`docker import`) from a rootfs holding the host's
//!   nginx (Debian nginx-light), busybox, their `ldd` libraries, a minimal `/etc/passwd` and
//!   `/etc/group`, and the directories nginx needs; the tarball is deterministic (sorted,
//!   mtime 0, owner 0), its SHA-256 is the image label [`LABEL_HASH`], and the image is
//!   imported again only when that label differs. The service names the image by its **ID**:
//!   a Swarm task pulls a tagged image before it starts (the registry is never reachable from
//!   the lab), never one referenced by ID;
//! - the TLS material as Swarm **secrets** `portainer_tls_cert` / `portainer_tls_key` (the
//!   stack's names, mounted at `/run/secrets/…`), the nginx configuration as a Swarm
//!   **config** at `/etc/nginx/nginx.conf`; secrets and configs are immutable, so each is
//!   named `<name>-<first 12 hex of its SHA-256>` and a changed one is a new object (the old
//!   ones are removed once the service no longer uses them);
//! - one replica, placed with `node.hostname == <the VM's name>` on the node holding the
//!   backend address, attached to the overlay `traefik-public`, port 9443 published in
//!   **host mode** (the ingress routing mesh needs IPVS, which this kernel lacks — LAB.md),
//!   endpoint mode `dnsrr` (a VIP is IPVS too); restart policy `on-failure`: a crash is
//!   restarted, a graceful stop (SIGTERM, exit 0) stays stopped until the next deploy;
//! - nginx's access log is bind-mounted from `<state dir>/portainer-stand-in.access.log`, the
//!   evidence that a request reached the service; the task's main process (host pid) goes to
//!   `<state dir>/portainer-stand-in.pid` (fault injection: stop it).
//!
//! Idempotent: the service carries [`LABEL_HASH`] = SHA-256 of everything its spec is made
//! of; it is created when missing, updated when the label differs, force-updated when no task
//! is alive, and left alone otherwise — a second [`deploy_stand_in`] returns no change.
//! [`deploy_stand_in`] returns once the published port answers (nginx's "plain HTTP request
//! was sent to HTTPS port" to a plain request) inside the node's namespace.
//! `lab down` needs nothing extra: the task's container dies with its engine's shim
//! ([`crate::teardown`]), the engine's objects with its data root.
//! I/O: the Engine API, processes (`tar`, `ldd`), the state dir, a TCP connect from inside
//! the node's namespace.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ConfigSpec, EndpointPortConfig, EndpointPortConfigProtocolEnum,
    EndpointPortConfigPublishModeEnum, EndpointSpec, EndpointSpecModeEnum, Mount, MountType,
    NetworkAttachmentConfig, SecretSpec, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecConfigs, TaskSpecContainerSpecFile,
    TaskSpecContainerSpecFile1, TaskSpecContainerSpecSecrets, TaskSpecPlacement,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    CreateImageOptionsBuilder, ListConfigsOptionsBuilder, ListSecretsOptionsBuilder,
    ListTasksOptionsBuilder, UpdateServiceOptionsBuilder,
};
use futures_util::StreamExt;

use super::checks::SwarmCheck;
use super::engine::{copy_into, which};
use super::{SwarmNode, SwarmPlan, api_err, client, is_not_found, p, runtime, swarm_err};
use crate::run::{output, run};
use crate::{LabError, state_dir};

/// The service's name.
pub const STAND_IN_SERVICE: &str = "portainer-stand-in";
/// The nginx image (repository and tag).
pub const NGINX_IMAGE_REPO: &str = "phoenix-lab/nginx";
pub const NGINX_IMAGE_TAG: &str = "1";
/// The published port (host mode) and the container's port: Portainer's HTTPS port.
pub const STAND_IN_PORT: u16 = 9443;
/// The secrets' file names in the container (`/run/secrets/<name>`), as the stack names them.
pub const CERT_SECRET: &str = "portainer_tls_cert";
pub const KEY_SECRET: &str = "portainer_tls_key";
/// The nginx configuration's Swarm config (base name) and its path in the container.
pub const NGINX_CONFIG: &str = "portainer_stand_in_nginx";
pub const NGINX_CONF_PATH: &str = "/etc/nginx/nginx.conf";
/// Label with the SHA-256 of an object's content (image rootfs, secret, config, service spec).
pub const LABEL_HASH: &str = "phoenix.lab.sha256";
/// Label marking the stand-in's secrets and configs (value: the lab prefix).
pub const LABEL_STAND_IN: &str = "phoenix.lab.stand-in";
/// The access log in the container (bind-mounted from the state dir).
const ACCESS_LOG: &str = "/var/log/nginx/access.log";
/// How long the service gets to answer after a deploy.
const READY_DEADLINE: Duration = Duration::from_secs(90);

/// What to deploy: the node (its VM's guest id) and port, the TLS material and the page.
#[derive(Debug, Clone, Copy)]
pub struct StandIn<'a> {
    pub guest: u32,
    pub port: u16,
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
    pub page: &'a str,
}

/// The stand-in's access log and pid file in the state dir of lab `prefix`.
pub fn access_log(prefix: &str) -> PathBuf {
    state_dir(prefix).join(format!("{STAND_IN_SERVICE}.access.log"))
}
pub fn pid_file(prefix: &str) -> PathBuf {
    state_dir(prefix).join(format!("{STAND_IN_SERVICE}.pid"))
}

/// The rootfs tarball of the nginx image (next to the busybox one).
pub fn nginx_rootfs_tar(plan: &SwarmPlan) -> PathBuf {
    plan.rootfs_tar.with_file_name("nginx-rootfs.tar")
}

/// Deploy the stand-in on the first manager, port [`STAND_IN_PORT`] (see [`deploy`]).
pub fn deploy_stand_in(
    plan: &SwarmPlan,
    cert_pem: &str,
    key_pem: &str,
    page: &str,
) -> Result<Vec<String>, LabError> {
    let leader = plan.leader().ok_or_else(|| swarm_err("no manager"))?;
    deploy(
        plan,
        &StandIn {
            guest: leader.guest,
            port: STAND_IN_PORT,
            cert_pem,
            key_pem,
            page,
        },
    )
}

pub use phoenix_exec::docker::{base64, sha256_hex, versioned_name};

/// `text` safe inside an HTML paragraph and an nginx double-quoted string (no `"`, `\`, `$`,
/// `<`, `>`, `&` left). Pure.
pub fn html_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '$' => out.push_str("&#36;"),
            '\\' => out.push_str("&#92;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The nginx configuration inside the container: HTTPS on `port` with the secrets, the page
/// for every path, the access log on the bind mount. Pure.
pub fn nginx_conf(port: u16, page: &str) -> String {
    format!(
        "# phoenix lab: Portainer stand-in, Docker Swarm service {STAND_IN_SERVICE}\n\
         daemon off;\nmaster_process on;\nworker_processes 1;\nuser root root;\n\
         pid /run/nginx.pid;\nerror_log stderr notice;\n\
         events {{\n    worker_connections 256;\n}}\n\
         http {{\n    default_type text/plain;\n    access_log {ACCESS_LOG};\n\
         \x20   server {{\n        listen {port} ssl;\n\
         \x20       ssl_certificate /run/secrets/{CERT_SECRET};\n\
         \x20       ssl_certificate_key /run/secrets/{KEY_SECRET};\n\
         \x20       location / {{\n            default_type text/html;\n\
         \x20           return 200 \"<!doctype html><title>Portainer stand-in</title><p>{}</p>\\n\";\n\
         \x20       }}\n    }}\n}}\n",
        html_text(page)
    )
}

/// A Swarm secret or config: its (versioned) name and its ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    pub id: String,
}

/// The service's spec (pure): `image` is the image ID on the node, `secrets` the versioned
/// names of the certificate and key secrets, `config` the configuration's.
pub struct SpecInputs<'a> {
    pub prefix: &'a str,
    pub node_name: &'a str,
    pub overlay: &'a str,
    pub port: u16,
    pub image: &'a str,
    pub cert_secret: &'a Named,
    pub key_secret: &'a Named,
    pub config: &'a Named,
    pub access_log: &'a Path,
}

/// SHA-256 over every input of the spec, in a fixed order. Pure.
pub fn spec_hash(i: &SpecInputs) -> String {
    let text = format!(
        "v1\nnode {}\noverlay {}\nport {}\nimage {}\ncert {}\nkey {}\nconfig {}\nlog {}\n",
        i.node_name,
        i.overlay,
        i.port,
        i.image,
        i.cert_secret.name,
        i.key_secret.name,
        i.config.name,
        i.access_log.display()
    );
    sha256_hex(text.as_bytes())
}

/// The service spec of [`STAND_IN_SERVICE`] (pure; see the module header).
pub fn service_spec(i: &SpecInputs) -> ServiceSpec {
    let file = |name: &str| TaskSpecContainerSpecFile {
        name: Some(name.into()),
        uid: Some("0".into()),
        gid: Some("0".into()),
        mode: Some(0o400),
    };
    let container = TaskSpecContainerSpec {
        image: Some(i.image.into()),
        command: Some(vec!["/usr/sbin/nginx".into()]),
        args: Some(vec!["-c".into(), NGINX_CONF_PATH.into()]),
        labels: Some(HashMap::from([(
            "phoenix.lab".to_string(),
            i.prefix.to_string(),
        )])),
        secrets: Some(vec![
            TaskSpecContainerSpecSecrets {
                file: Some(file(CERT_SECRET)),
                secret_name: Some(i.cert_secret.name.clone()),
                secret_id: Some(i.cert_secret.id.clone()),
            },
            TaskSpecContainerSpecSecrets {
                file: Some(file(KEY_SECRET)),
                secret_name: Some(i.key_secret.name.clone()),
                secret_id: Some(i.key_secret.id.clone()),
            },
        ]),
        configs: Some(vec![TaskSpecContainerSpecConfigs {
            file: Some(TaskSpecContainerSpecFile1 {
                name: Some(NGINX_CONF_PATH.into()),
                uid: Some("0".into()),
                gid: Some("0".into()),
                mode: Some(0o444),
            }),
            config_name: Some(i.config.name.clone()),
            config_id: Some(i.config.id.clone()),
            ..Default::default()
        }]),
        mounts: Some(vec![Mount {
            typ: Some(MountType::BIND),
            source: Some(p(i.access_log)),
            target: Some(ACCESS_LOG.into()),
            ..Default::default()
        }]),
        // nginx finishes its requests on SIGQUIT; the lab has nothing to wait for.
        stop_grace_period: Some(2_000_000_000),
        ..Default::default()
    };
    ServiceSpec {
        name: Some(STAND_IN_SERVICE.into()),
        labels: Some(HashMap::from([
            ("phoenix.lab".to_string(), i.prefix.to_string()),
            (LABEL_HASH.to_string(), spec_hash(i)),
        ])),
        task_template: Some(TaskSpec {
            container_spec: Some(container),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ON_FAILURE),
                delay: Some(1_000_000_000),
                ..Default::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: Some(vec![format!("node.hostname == {}", i.node_name)]),
                ..Default::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(i.overlay.into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ports: Some(vec![EndpointPortConfig {
                name: None,
                protocol: Some(EndpointPortConfigProtocolEnum::TCP),
                target_port: Some(i64::from(i.port)),
                published_port: Some(i64::from(i.port)),
                publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
            }]),
        }),
        ..Default::default()
    }
}

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// Build the nginx image's rootfs tarball unless it exists; true when built. Deterministic
/// (sorted names, mtime 0, owner root), so its SHA-256 changes only with its content.
pub fn build_nginx_rootfs(tar: &Path) -> Result<bool, LabError> {
    if tar.is_file() {
        return Ok(false);
    }
    let parent = tar
        .parent()
        .ok_or_else(|| swarm_err("rootfs path has no parent"))?;
    let root = parent.join("nginx-rootfs");
    let _ = std::fs::remove_dir_all(&root);
    for d in [
        "bin",
        "etc/nginx",
        "tmp",
        "proc",
        "sys",
        "dev",
        "run/lock",
        "var/lock",
        "var/log/nginx",
        "var/lib/nginx",
        "usr/share/nginx",
        "root",
    ] {
        let dir = root.join(d);
        std::fs::create_dir_all(&dir).map_err(|e| LabError::io(&dir, e))?;
    }
    let nginx = which("nginx")?;
    let busybox = which("busybox")?;
    copy_into(&root, &nginx, "/usr/sbin/nginx")?;
    copy_into(&root, &busybox, "/bin/busybox")?;
    let ldd = output("ldd", &[&p(&nginx), &p(&busybox)])?;
    for lib in super::parse_ldd(&String::from_utf8_lossy(&ldd.stdout)) {
        copy_into(&root, Path::new(&lib), &lib)?;
    }
    for applet in ["sh", "ls", "cat", "ps", "wget"] {
        let link = root.join("bin").join(applet);
        std::os::unix::fs::symlink("busybox", &link).map_err(|e| LabError::io(&link, e))?;
    }
    for (path, text) in [
        ("etc/passwd", PASSWD),
        ("etc/group", GROUP),
        ("etc/nsswitch.conf", "passwd: files\ngroup: files\n"),
    ] {
        let f = root.join(path);
        std::fs::write(&f, text).map_err(|e| LabError::io(&f, e))?;
    }
    let partial = tar.with_extension("tar.partial");
    run(
        "tar",
        &[
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-C",
            &p(&root),
            "-cf",
            &p(&partial),
            ".",
        ],
    )?;
    std::fs::rename(&partial, tar).map_err(|e| LabError::io(tar, e))?;
    let _ = std::fs::remove_dir_all(&root);
    Ok(true)
}

/// Deploy (or leave alone) the stand-in service `s` in the lab's Swarm and wait until its
/// published port answers inside the node's namespace; returns the changes made (empty when
/// everything was in place).
pub fn deploy(plan: &SwarmPlan, s: &StandIn) -> Result<Vec<String>, LabError> {
    crate::require_root()?;
    let node = plan
        .node(s.guest)
        .ok_or_else(|| swarm_err(format!("guest {} is not a Swarm node", s.guest)))?;
    let leader = plan.leader().ok_or_else(|| swarm_err("no manager"))?;
    let mut changes = Vec::new();
    let tar = nginx_rootfs_tar(plan);
    if build_nginx_rootfs(&tar)? {
        changes.push(format!("built the nginx image rootfs {}", p(&tar)));
    }
    let bytes = std::fs::read(&tar).map_err(|e| LabError::io(&tar, e))?;
    let log = access_log(&plan.prefix);
    if !log.exists() {
        std::fs::write(&log, "").map_err(|e| LabError::io(&log, e))?;
    }
    let rt = runtime()?;
    let deadline = Instant::now() + READY_DEADLINE;
    let container = rt.block_on(async {
        let nc = client(node)?;
        let image = ensure_image(node, &nc, bytes, &mut changes).await?;
        let ld = client(leader)?;
        let labels = |hash: &str| {
            HashMap::from([
                (LABEL_STAND_IN.to_string(), plan.prefix.clone()),
                (LABEL_HASH.to_string(), hash.to_string()),
            ])
        };
        let cert = ensure_secret(leader, &ld, CERT_SECRET, s.cert_pem, &labels, &mut changes);
        let cert = cert.await?;
        let key = ensure_secret(leader, &ld, KEY_SECRET, s.key_pem, &labels, &mut changes);
        let key = key.await?;
        let conf = nginx_conf(s.port, s.page);
        let config = ensure_config(leader, &ld, &conf, &labels, &mut changes).await?;
        let inputs = SpecInputs {
            prefix: &plan.prefix,
            node_name: &node.name,
            overlay: &plan.overlay,
            port: s.port,
            image: &image,
            cert_secret: &cert,
            key_secret: &key,
            config: &config,
            access_log: &log,
        };
        ensure_service(leader, &ld, &inputs, &mut changes).await?;
        prune(&ld, &plan.prefix, &[&cert.name, &key.name, &config.name]).await;
        wait_task(node, &ld, deadline).await
    })?;
    wait_answering(node, s.port, deadline, || {
        rt.block_on(async {
            let ld = client(leader).ok()?;
            Some(task_story(&ld).await)
        })
        .unwrap_or_default()
    })?;
    // The task's main process as the host sees it (fault injection stops it).
    let pid = rt.block_on(async {
        let nc = client(node).ok()?;
        let i = nc.inspect_container(&container, None).await.ok()?;
        i.state.and_then(|s| s.pid).filter(|p| *p > 0)
    });
    if let Some(pid) = pid {
        let f = pid_file(&plan.prefix);
        std::fs::write(&f, format!("{pid}\n")).map_err(|e| LabError::io(&f, e))?;
    }
    Ok(changes)
}

/// The stand-in's nginx image put into guest `guest`'s engine ahead of [`deploy`] (which
/// then finds it), so the import runs beside the Swarm's membership work; what it did.
pub fn preload_image(plan: &SwarmPlan, guest: u32) -> Result<Vec<String>, LabError> {
    let node = plan
        .node(guest)
        .ok_or_else(|| swarm_err(format!("guest {guest} is not a Swarm node")))?;
    let mut changes = Vec::new();
    let tar = nginx_rootfs_tar(plan);
    if build_nginx_rootfs(&tar)? {
        changes.push(format!("built the nginx image rootfs {}", p(&tar)));
    }
    let bytes = std::fs::read(&tar).map_err(|e| LabError::io(&tar, e))?;
    runtime()?.block_on(async {
        let nc = client(node)?;
        ensure_image(node, &nc, bytes, &mut changes).await
    })?;
    Ok(changes)
}

/// Import the nginx image into `n` unless its rootfs label matches; its image ID.
async fn ensure_image(
    n: &SwarmNode,
    c: &Docker,
    tar: Vec<u8>,
    changes: &mut Vec<String>,
) -> Result<String, LabError> {
    let image = format!("{NGINX_IMAGE_REPO}:{NGINX_IMAGE_TAG}");
    let hash = sha256_hex(&tar);
    let label = |i: &bollard::models::ImageInspect| {
        i.config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(LABEL_HASH).cloned())
    };
    match c.inspect_image(&image).await {
        Ok(i) if label(&i).as_deref() == Some(hash.as_str()) => {
            return i
                .id
                .ok_or_else(|| swarm_err(format!("{image} on {} has no ID", n.label())));
        }
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(api_err(n, "inspect image", e)),
    }
    let opts = CreateImageOptionsBuilder::new()
        .from_src("-")
        .repo(NGINX_IMAGE_REPO)
        .tag(NGINX_IMAGE_TAG)
        .changes(vec![format!("LABEL {LABEL_HASH}={hash}")])
        .build();
    let mut stream = c.create_image(
        Some(opts),
        Some(bollard::body_full(bytes::Bytes::from(tar))),
        None,
    );
    while let Some(item) = stream.next().await {
        item.map_err(|e| api_err(n, "import the nginx image", e))?;
    }
    let i = c
        .inspect_image(&image)
        .await
        .map_err(|e| api_err(n, "inspect image", e))?;
    changes.push(format!(
        "imported {image} into {} (rootfs sha256 {})",
        n.label(),
        &hash[..12]
    ));
    i.id.ok_or_else(|| swarm_err(format!("{image} on {} has no ID", n.label())))
}

/// The secret `<base>-<hash>` holding `content`, created when missing; its name.
async fn ensure_secret(
    leader: &SwarmNode,
    c: &Docker,
    base: &str,
    content: &str,
    labels: &impl Fn(&str) -> HashMap<String, String>,
    changes: &mut Vec<String>,
) -> Result<Named, LabError> {
    let name = versioned_name(base, content.as_bytes());
    match c.inspect_secret(&name).await {
        Ok(s) => {
            let id = s.id.unwrap_or_default();
            return Ok(Named { name, id });
        }
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(api_err(leader, "secret inspect", e)),
    }
    let created = c
        .create_secret(SecretSpec {
            name: Some(name.clone()),
            labels: Some({
                let hash = sha256_hex(content.as_bytes());
                let mut l = labels(&hash);
                // What `phoenix swarm` and the plan read (`swarm::stack::rotate_secrets`).
                l.insert(super::stack::LABEL_SECRET_BASE.into(), base.into());
                l.insert(phoenix_plan::swarm::LABEL_SECRET_HASH.into(), hash);
                l
            }),
            data: Some(base64(content.as_bytes())),
            ..Default::default()
        })
        .await
        .map_err(|e| api_err(leader, "secret create", e))?;
    changes.push(format!("created the Swarm secret {name}"));
    Ok(Named {
        name,
        id: created.id,
    })
}

/// The config `portainer_stand_in_nginx-<hash>` holding `content`, created when missing.
async fn ensure_config(
    leader: &SwarmNode,
    c: &Docker,
    content: &str,
    labels: &impl Fn(&str) -> HashMap<String, String>,
    changes: &mut Vec<String>,
) -> Result<Named, LabError> {
    let name = versioned_name(NGINX_CONFIG, content.as_bytes());
    match c.inspect_config(&name).await {
        Ok(s) => {
            let id = s.id.unwrap_or_default();
            return Ok(Named { name, id });
        }
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(api_err(leader, "config inspect", e)),
    }
    let created = c
        .create_config(ConfigSpec {
            name: Some(name.clone()),
            labels: Some(labels(&sha256_hex(content.as_bytes()))),
            data: Some(base64(content.as_bytes())),
            ..Default::default()
        })
        .await
        .map_err(|e| api_err(leader, "config create", e))?;
    changes.push(format!("created the Swarm config {name}"));
    Ok(Named {
        name,
        id: created.id,
    })
}

/// States of a task that is alive or on its way to running.
fn alive(state: Option<TaskState>) -> bool {
    matches!(
        state,
        Some(
            TaskState::NEW
                | TaskState::ALLOCATED
                | TaskState::PENDING
                | TaskState::ASSIGNED
                | TaskState::ACCEPTED
                | TaskState::PREPARING
                | TaskState::READY
                | TaskState::STARTING
                | TaskState::RUNNING
        )
    )
}

async fn tasks(c: &Docker) -> Result<Vec<bollard::models::Task>, bollard::errors::Error> {
    let filters = HashMap::from([("service", vec![STAND_IN_SERVICE])]);
    c.list_tasks(Some(
        ListTasksOptionsBuilder::new().filters(&filters).build(),
    ))
    .await
}

/// Create the service when missing, update it when its spec hash differs, force a new task
/// when none is alive.
async fn ensure_service(
    leader: &SwarmNode,
    c: &Docker,
    i: &SpecInputs<'_>,
    changes: &mut Vec<String>,
) -> Result<(), LabError> {
    let mut spec = service_spec(i);
    let want = spec_hash(i);
    let existing = match c.inspect_service(STAND_IN_SERVICE, None).await {
        Ok(s) => s,
        Err(e) if is_not_found(&e) => {
            c.create_service(spec, None)
                .await
                .map_err(|e| api_err(leader, "service create", e))?;
            changes.push(format!(
                "created the Swarm service {STAND_IN_SERVICE} (1 replica on {}, port {} published in host mode, overlay {})",
                i.node_name, i.port, i.overlay
            ));
            return Ok(());
        }
        Err(e) => return Err(api_err(leader, "service inspect", e)),
    };
    let have = existing
        .spec
        .as_ref()
        .and_then(|s| s.labels.as_ref())
        .and_then(|l| l.get(LABEL_HASH).cloned());
    let version = existing.version.and_then(|v| v.index).unwrap_or(0);
    let any_alive = tasks(c)
        .await
        .map_err(|e| api_err(leader, "task list", e))?
        .iter()
        .any(|t| alive(t.status.as_ref().and_then(|s| s.state)));
    let why = if have.as_deref() != Some(want.as_str()) {
        format!("updated the Swarm service {STAND_IN_SERVICE} (its spec changed)")
    } else if !any_alive {
        let old = existing
            .spec
            .as_ref()
            .and_then(|s| s.task_template.as_ref())
            .and_then(|t| t.force_update)
            .unwrap_or(0);
        if let Some(t) = spec.task_template.as_mut() {
            t.force_update = Some(old + 1);
        }
        format!("restarted the Swarm service {STAND_IN_SERVICE} (no task was running)")
    } else {
        return Ok(());
    };
    let opts = UpdateServiceOptionsBuilder::new()
        .version(i32::try_from(version).unwrap_or(i32::MAX))
        .build();
    c.update_service(STAND_IN_SERVICE, spec, opts, None)
        .await
        .map_err(|e| api_err(leader, "service update", e))?;
    changes.push(why);
    Ok(())
}

/// Remove the stand-in's secrets and configs other than `keep` (best effort: one still in
/// use stays).
async fn prune(c: &Docker, prefix: &str, keep: &[&str]) {
    let filters = HashMap::from([("label", vec![format!("{LABEL_STAND_IN}={prefix}")])]);
    if let Ok(list) = c
        .list_secrets(Some(
            ListSecretsOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
    {
        for s in list {
            let name = s.spec.and_then(|s| s.name).unwrap_or_default();
            if let Some(id) = s.id.filter(|_| !keep.contains(&name.as_str())) {
                let _ = c.delete_secret(&id).await;
            }
        }
    }
    if let Ok(list) = c
        .list_configs(Some(
            ListConfigsOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
    {
        for s in list {
            let name = s.spec.and_then(|s| s.name).unwrap_or_default();
            if let Some(id) = s.id.filter(|_| !keep.contains(&name.as_str())) {
                let _ = c.delete_config(&id).await;
            }
        }
    }
}

/// The service's tasks for humans: `state (desired d) on node: message/err`.
async fn task_story(c: &Docker) -> String {
    let names = node_names(c).await;
    match tasks(c).await {
        Ok(list) if list.is_empty() => "no task".into(),
        Ok(list) => list
            .iter()
            .map(|t| {
                let st = t.status.clone().unwrap_or_default();
                let node = t
                    .node_id
                    .as_ref()
                    .and_then(|id| names.get(id).cloned())
                    .unwrap_or_else(|| "no node".into());
                format!(
                    "task {:?} (desired {:?}) on {node}: {}{}",
                    st.state.unwrap_or(TaskState::NEW),
                    t.desired_state.unwrap_or(TaskState::NEW),
                    st.message.unwrap_or_default(),
                    st.err.map(|e| format!(", err: {e}")).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(e) => format!("task list: {e}"),
    }
}

/// Node id → hostname, through the first manager.
async fn node_names(c: &Docker) -> BTreeMap<String, String> {
    c.list_nodes(None)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| {
            let host = n.description.and_then(|d| d.hostname)?;
            Some((n.id?, host))
        })
        .collect()
}

/// Image, secret names, config names, force-update counter.
type SpecKey = (
    Option<String>,
    Vec<Option<String>>,
    Vec<Option<String>>,
    u64,
);

/// What tells one version of the task spec from another (the daemon normalises the rest
/// differently in a task and in its service): image, secrets, configs, force-update counter.
fn spec_key(t: &TaskSpec) -> SpecKey {
    let c = t.container_spec.clone().unwrap_or_default();
    (
        c.image,
        c.secrets
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.secret_name)
            .collect(),
        c.configs
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.config_name)
            .collect(),
        t.force_update.unwrap_or(0),
    )
}

/// Wait until a task of the service's current spec runs on `node` (right after an update the
/// old task still runs for a moment; the update stops it before the new one starts); its
/// container ID.
async fn wait_task(node: &SwarmNode, c: &Docker, deadline: Instant) -> Result<String, LabError> {
    loop {
        let names = node_names(c).await;
        let current = c
            .inspect_service(STAND_IN_SERVICE, None)
            .await
            .map_err(|e| api_err(node, "service inspect", e))?
            .spec
            .and_then(|s| s.task_template);
        let list = tasks(c).await.map_err(|e| api_err(node, "task list", e))?;
        let running = list.iter().find_map(|t| {
            let st = t.status.as_ref()?;
            let on = names.get(t.node_id.as_deref()?)?;
            (st.state == Some(TaskState::RUNNING)
                && *on == node.name
                && t.spec.as_ref().map(spec_key) == current.as_ref().map(spec_key))
            .then(|| st.container_status.as_ref()?.container_id.clone())
            .flatten()
        });
        if let Some(id) = running {
            return Ok(id);
        }
        if Instant::now() > deadline {
            return Err(swarm_err(format!(
                "{STAND_IN_SERVICE} not running on {} after {} s: {}",
                node.label(),
                READY_DEADLINE.as_secs(),
                task_story(c).await
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ask `addr` from inside `ns` in plain HTTP; the first line of the answer.
pub fn plain_request_from(ns: &str, addr: SocketAddr) -> Result<String, String> {
    let path = Path::new("/run/netns").join(ns);
    let handle = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || -> Result<String, String> {
                nix::sched::setns(&handle, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| format!("setns into {ns}: {e}"))?;
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                    .map_err(|e| format!("connect {addr}: {e}"))?;
                let t = Some(Duration::from_secs(2));
                s.set_read_timeout(t).map_err(|e| e.to_string())?;
                s.set_write_timeout(t).map_err(|e| e.to_string())?;
                s.write_all(b"GET / HTTP/1.0\r\nHost: phoenix-lab\r\n\r\n")
                    .map_err(|e| format!("send to {addr}: {e}"))?;
                let mut buf = Vec::new();
                let _ = s.take(4096).read_to_end(&mut buf);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if text.is_empty() {
                    return Err(format!("{addr} closed without an answer"));
                }
                Ok(text)
            })
            .join()
            .map_err(|_| "the probing thread panicked".to_string())?
    })
}

/// nginx's answer to a plain request on its TLS port. Pure.
pub fn is_tls_nginx_answer(text: &str) -> bool {
    text.starts_with("HTTP/1.1 400") && text.contains("HTTPS port")
}

/// Wait until the port answers as nginx's TLS listener inside `node`'s namespace.
fn wait_answering(
    node: &SwarmNode,
    port: u16,
    deadline: Instant,
    story: impl Fn() -> String,
) -> Result<(), LabError> {
    let addr = SocketAddr::from((node.addr, port));
    loop {
        let r = plain_request_from(&node.ns, addr);
        match &r {
            Ok(t) if is_tls_nginx_answer(t) => return Ok(()),
            _ => {}
        }
        if Instant::now() > deadline {
            let seen = match r {
                Ok(t) => format!("answered {:?}", t.lines().next().unwrap_or_default()),
                Err(e) => e,
            };
            return Err(swarm_err(format!(
                "{STAND_IN_SERVICE}: {addr} in {} does not answer as nginx's TLS port: {seen}; {}",
                node.ns,
                story()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `swarm/service/portainer-stand-in`: one task of the service runs (1/1) on the node of
/// `guest`, and its port answers there.
pub fn stand_in_running_on(plan: &SwarmPlan, guest: u32, port: u16) -> SwarmCheck {
    let start = Instant::now();
    let subject = plan
        .node(guest)
        .map(SwarmNode::label)
        .unwrap_or_else(|| format!("guest {guest}"));
    let r = (|| -> Result<String, String> {
        let node = plan.node(guest).ok_or("not a Swarm node")?;
        let leader = plan.leader().ok_or("no manager")?;
        let rt = runtime().map_err(|e| e.to_string())?;
        let (running, story) = rt.block_on(async {
            let c = client(leader).map_err(|e| e.to_string())?;
            let names = node_names(&c).await;
            let list = tasks(&c).await.map_err(|e| format!("task list: {e}"))?;
            let running: Vec<String> = list
                .iter()
                .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
                .map(|t| {
                    t.node_id
                        .as_ref()
                        .and_then(|id| names.get(id).cloned())
                        .unwrap_or_default()
                })
                .collect();
            Ok::<_, String>((running, task_story(&c).await))
        })?;
        let seen = format!("{}/1 running ({story})", running.len());
        if running.len() != 1 || running[0] != node.name {
            return Err(format!("{seen}; want 1/1 on {}", node.name));
        }
        let addr = SocketAddr::from((node.addr, port));
        match plain_request_from(&node.ns, addr) {
            Ok(t) if is_tls_nginx_answer(&t) => Ok(format!("{seen}; {addr} answers (nginx, TLS)")),
            Ok(t) => Err(format!(
                "{seen}; {addr} answered {:?}",
                t.lines().next().unwrap_or_default()
            )),
            Err(e) => Err(format!("{seen}; {e}")),
        }
    })();
    let (pass, observed) = match r {
        Ok(o) => (true, o),
        Err(o) => (false, o),
    };
    SwarmCheck {
        id: format!("swarm/service/{STAND_IN_SERVICE}"),
        subject,
        check: "the Portainer stand-in runs as a Swarm service, 1/1 on its node, port answering"
            .into(),
        pass,
        observed,
        duration_ms: start.elapsed().as_millis(),
    }
}

/// [`stand_in_running_on`] for the first manager and [`STAND_IN_PORT`].
pub fn stand_in_running(plan: &SwarmPlan) -> SwarmCheck {
    let guest = plan.leader().map(|n| n.guest).unwrap_or(0);
    stand_in_running_on(plan, guest, STAND_IN_PORT)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;

    #[test]
    fn page_is_escaped_for_html_and_nginx() {
        let conf = nginx_conf(9443, "a \"$x\" <b> \\ & ok");
        assert!(conf.contains("a &quot;&#36;x&quot; &lt;b&gt; &#92; &amp; ok"));
        assert!(conf.contains("listen 9443 ssl;"));
        assert!(conf.contains("/run/secrets/portainer_tls_cert;"));
    }

    #[test]
    fn versioned_names_follow_content() {
        let a = versioned_name(CERT_SECRET, b"one");
        assert!(a.starts_with("portainer_tls_cert-") && a.len() == CERT_SECRET.len() + 13);
        assert_ne!(a, versioned_name(CERT_SECRET, b"two"));
    }

    fn named(n: &str) -> Named {
        Named {
            name: n.into(),
            id: format!("id-{n}"),
        }
    }

    #[test]
    fn spec_is_host_mode_dnsrr_pinned_to_the_node() {
        let log = PathBuf::from("/run/phoenix-lab/t/portainer-stand-in.access.log");
        let i = SpecInputs {
            prefix: "t",
            node_name: "portainer-manager",
            overlay: "traefik-public",
            port: 9443,
            image: "sha256:abc",
            cert_secret: &named("c-1"),
            key_secret: &named("k-1"),
            config: &named("n-1"),
            access_log: &log,
        };
        let s = service_spec(&i);
        let ep = s.endpoint_spec.clone().unwrap();
        assert_eq!(ep.mode, Some(EndpointSpecModeEnum::DNSRR));
        let port = &ep.ports.unwrap()[0];
        assert_eq!(
            port.publish_mode,
            Some(EndpointPortConfigPublishModeEnum::HOST)
        );
        assert_eq!(port.published_port, Some(9443));
        let t = s.task_template.unwrap();
        assert_eq!(
            t.placement.unwrap().constraints.unwrap(),
            ["node.hostname == portainer-manager"]
        );
        assert_eq!(
            t.container_spec.unwrap().image.as_deref(),
            Some("sha256:abc")
        );
        assert_eq!(s.labels.unwrap()[LABEL_HASH], spec_hash(&i));
        assert!(is_tls_nginx_answer(
            "HTTP/1.1 400 Bad Request\r\n\r\nThe plain HTTP request was sent to HTTPS port"
        ));
    }
}
