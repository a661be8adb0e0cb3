//! Docker stacks on a Swarm: a [`RenderedStack`] (see [`phoenix_render::stack`]) deployed
//! over the Engine API of a manager, the way `docker stack deploy --prune` does it, and removed
//! the way `docker stack rm` does it.
//! - every service, and every network the stack creates, carries the label
//!   [`NAMESPACE_LABEL`] = the namespace (`<env>_<stack>`), which is how the stack's objects are
//!   found again; the service also carries [`LABEL_STACK_HASH`], a SHA-256 of its rendered
//!   content, the image reference used and the IDs of its secrets and configs;
//! - a service is created when missing, updated (with its current version, so a concurrent
//!   change is refused rather than overwritten) when that hash differs, and left alone
//!   otherwise; services of the namespace that the stack no longer has are removed. A second
//!   deploy of the same stack changes nothing;
//! - stack-local networks are created when missing (overlay, always attachable so lab probes
//!   can join them); external networks, secrets and configs must exist — one error names every
//!   missing one;
//! - [`DeployOptions::resolve_local`]: the lab has no registry, and a Swarm task pulls a
//!   tagged image before it starts, but never an image referenced by ID (see
//!   the lab's stand-in); so a tagged image present in the manager's engine is referenced by
//!   its image ID. Such a service must be placed on nodes holding that ID (an imported image
//!   has a different ID on every engine): constrain it, e.g. `node.role == manager`;
//! - as `docker stack deploy` does, each service is reachable on each of its networks under
//!   its compose name (a network alias) and its containers carry the namespace label too;
//! - secrets phoenix owns and the environment's files are content versions: before the
//!   deploy, [`rotate_secrets`] / [`rotate_configs`] create `<base>-<12 hex of SHA-256>` (a
//!   Swarm secret / config) and point the services at it, so new content updates exactly the
//!   services that use it; after it, [`prune_secrets`] / [`prune_configs`] remove versions no
//!   service mounts.
//!
//! Change lines name objects, never environment values (they may be secrets).
//! I/O: the Engine API of the given client (current-thread runtime per call).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::errors::Error as ApiError;
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, EndpointSpecModeEnum, Mount, MountBindOptions, MountBindOptionsPropagationEnum,
    MountTmpfsOptions, MountType, MountVolumeOptions, MountVolumeOptionsDriverConfig,
    NetworkAttachmentConfig, NetworkCreateRequest, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecConfigs,
    TaskSpecContainerSpecFile, TaskSpecContainerSpecFile1, TaskSpecContainerSpecSecrets,
    TaskSpecPlacement, TaskSpecPlacementPreferences, TaskSpecPlacementSpread,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use bollard::query_parameters::{
    ListNetworksOptionsBuilder, ListServicesOptionsBuilder, UpdateServiceOptionsBuilder,
};
use phoenix_render::stack::{
    EndpointMode, MountKind, MountSpec, Protocol, PublishMode, RenderedService, RenderedStack,
    RestartCondition, SECRETS_DIR, ServiceMode,
};
use sha2::{Digest, Sha256};

pub use phoenix_render::stack::NAMESPACE_LABEL;

pub use super::versions::{
    LABEL_CONFIG_BASE, LABEL_SECRET_BASE, MAX_CONFIG_BYTES, prune_configs, prune_secrets,
    rotate_configs, rotate_secrets,
};
use super::{DockerError, err as swarm_err, is_not_found, runtime};

/// Label with the SHA-256 of everything a stack service's spec is made of.
pub const LABEL_STACK_HASH: &str = "phoenix.stack.sha256";
/// Label Docker puts on a stack's services naming the image as the compose file wrote it.
pub const IMAGE_LABEL: &str = "com.docker.stack.image";
/// How long [`remove`] waits for a network's endpoints to go after its services.
const NETWORK_DEADLINE: Duration = Duration::from_secs(30);

/// How [`deploy`] treats images.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeployOptions {
    /// Reference a tagged image present in the manager's engine by its image ID.
    pub resolve_local: bool,
}

/// IDs of the Swarm secrets and configs a stack uses, by name (a service names both).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectIds {
    pub secrets: BTreeMap<String, String>,
    pub configs: BTreeMap<String, String>,
}

pub(super) fn api(what: &str, e: ApiError) -> DockerError {
    swarm_err(format!("{what}: {e}"))
}

/// The [`LABEL_STACK_HASH`] value: the rendered content, the image reference and the IDs of
/// the secrets and configs (a recreated secret of the same name is a new one). Pure.
pub fn deployed_hash(svc: &RenderedService, image: &str, ids: &ObjectIds) -> String {
    let mut h = Sha256::new();
    h.update(b"phoenix stack deploy v1\n");
    h.update(svc.sha256.as_bytes());
    h.update(b"\nimage ");
    h.update(image.as_bytes());
    for f in &svc.secrets {
        h.update(b"\nsecret ");
        h.update(
            ids.secrets
                .get(&f.source)
                .map_or("", String::as_str)
                .as_bytes(),
        );
    }
    for f in &svc.configs {
        h.update(b"\nconfig ");
        h.update(
            ids.configs
                .get(&f.source)
                .map_or("", String::as_str)
                .as_bytes(),
        );
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn mount(m: &MountSpec) -> Mount {
    let mut out = Mount {
        target: Some(m.target.clone()),
        source: m.source.clone(),
        read_only: Some(m.read_only),
        ..Default::default()
    };
    match m.kind {
        MountKind::Bind => {
            out.typ = Some(MountType::BIND);
            out.bind_options = m.bind_propagation.as_deref().map(|p| MountBindOptions {
                propagation: Some(match p {
                    "private" => MountBindOptionsPropagationEnum::PRIVATE,
                    "rprivate" => MountBindOptionsPropagationEnum::RPRIVATE,
                    "shared" => MountBindOptionsPropagationEnum::SHARED,
                    "rshared" => MountBindOptionsPropagationEnum::RSHARED,
                    "slave" => MountBindOptionsPropagationEnum::SLAVE,
                    "rslave" => MountBindOptionsPropagationEnum::RSLAVE,
                    _ => MountBindOptionsPropagationEnum::EMPTY,
                }),
                ..Default::default()
            });
        }
        MountKind::Volume => {
            out.typ = Some(MountType::VOLUME);
            let driver = m
                .volume_driver
                .as_ref()
                .map(|d| MountVolumeOptionsDriverConfig {
                    name: Some(d.clone()),
                    options: Some(
                        m.volume_driver_opts
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ),
                });
            out.volume_options = Some(MountVolumeOptions {
                no_copy: Some(m.volume_nocopy),
                labels: Some(
                    m.volume_labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ),
                driver_config: driver,
                ..Default::default()
            });
        }
        MountKind::Tmpfs => {
            out.typ = Some(MountType::TMPFS);
            out.tmpfs_options = Some(MountTmpfsOptions {
                size_bytes: m.tmpfs_size,
                mode: m.tmpfs_mode,
                ..Default::default()
            });
        }
    }
    out
}

/// A secret's file name for the Engine API: relative to `/run/secrets` when under it.
fn secret_file_name(target: &str) -> String {
    target
        .strip_prefix(SECRETS_DIR)
        .and_then(|t| t.strip_prefix('/'))
        .unwrap_or(target)
        .to_string()
}

fn to_map(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The Engine API spec of `svc` of `stack`, running `image`, with the secret and config IDs
/// of `ids`. Pure.
pub fn service_spec(
    stack: &RenderedStack,
    svc: &RenderedService,
    image: &str,
    ids: &ObjectIds,
) -> ServiceSpec {
    let mut labels = to_map(&svc.labels);
    labels.insert(NAMESPACE_LABEL.into(), stack.namespace.clone());
    labels.insert(IMAGE_LABEL.into(), svc.image.clone());
    labels.insert(LABEL_STACK_HASH.into(), deployed_hash(svc, image, ids));
    // The rendered content alone: what the plan compares (`phoenix_plan::swarm`).
    labels.insert(
        phoenix_plan::swarm::LABEL_SPEC_HASH.into(),
        svc.sha256.clone(),
    );
    let mut container_labels = to_map(&svc.container_labels);
    container_labels.insert(NAMESPACE_LABEL.into(), stack.namespace.clone());
    let secrets = svc
        .secrets
        .iter()
        .map(|f| TaskSpecContainerSpecSecrets {
            file: Some(TaskSpecContainerSpecFile {
                name: Some(secret_file_name(&f.target)),
                uid: Some(f.uid.clone()),
                gid: Some(f.gid.clone()),
                mode: Some(f.mode),
            }),
            secret_id: ids.secrets.get(&f.source).cloned(),
            secret_name: Some(f.source.clone()),
        })
        .collect::<Vec<_>>();
    let configs = svc
        .configs
        .iter()
        .map(|f| TaskSpecContainerSpecConfigs {
            file: Some(TaskSpecContainerSpecFile1 {
                name: Some(f.target.clone()),
                uid: Some(f.uid.clone()),
                gid: Some(f.gid.clone()),
                mode: Some(f.mode),
            }),
            config_id: ids.configs.get(&f.source).cloned(),
            config_name: Some(f.source.clone()),
            ..Default::default()
        })
        .collect::<Vec<_>>();
    let container = TaskSpecContainerSpec {
        image: Some(image.into()),
        labels: Some(container_labels),
        command: svc.entrypoint.clone(),
        args: svc.command.clone(),
        hostname: svc.hostname.clone(),
        env: Some(
            svc.env
                .iter()
                .map(|e| format!("{}={}", e.name, e.value))
                .collect(),
        ),
        dir: svc.working_dir.clone(),
        user: svc.user.clone(),
        tty: svc.tty,
        read_only: svc.read_only,
        mounts: Some(svc.mounts.iter().map(mount).collect()),
        stop_signal: svc.stop_signal.clone(),
        stop_grace_period: svc.stop_grace_period_ns,
        secrets: Some(secrets),
        configs: Some(configs),
        init: svc.init,
        ..Default::default()
    };
    let restart = svc.restart.map(|r| TaskSpecRestartPolicy {
        condition: r.condition.map(|c| match c {
            RestartCondition::None => TaskSpecRestartPolicyConditionEnum::NONE,
            RestartCondition::OnFailure => TaskSpecRestartPolicyConditionEnum::ON_FAILURE,
            RestartCondition::Any => TaskSpecRestartPolicyConditionEnum::ANY,
        }),
        delay: r.delay_ns,
        max_attempts: r.max_attempts.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        window: r.window_ns,
    });
    let placement = TaskSpecPlacement {
        constraints: Some(svc.constraints.clone()),
        preferences: Some(
            svc.preferences
                .iter()
                .map(|s| TaskSpecPlacementPreferences {
                    spread: Some(TaskSpecPlacementSpread {
                        spread_descriptor: Some(s.clone()),
                    }),
                })
                .collect(),
        ),
        max_replicas: svc
            .max_replicas_per_node
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        ..Default::default()
    };
    let networks = svc
        .networks
        .iter()
        .map(|n| {
            let mut aliases = n.aliases.clone();
            if !aliases.contains(&svc.key) {
                aliases.push(svc.key.clone());
            }
            NetworkAttachmentConfig {
                target: Some(n.name.clone()),
                aliases: Some(aliases),
                ..Default::default()
            }
        })
        .collect();
    let mode = match svc.mode {
        ServiceMode::Replicated { replicas } => ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::try_from(replicas).unwrap_or(i64::MAX)),
            }),
            ..Default::default()
        },
        ServiceMode::Global => ServiceSpecMode {
            global: Some(HashMap::new()),
            ..Default::default()
        },
    };
    let ports = svc
        .ports
        .iter()
        .map(|p| EndpointPortConfig {
            name: None,
            protocol: Some(match p.protocol {
                Protocol::Tcp => EndpointPortConfigProtocolEnum::TCP,
                Protocol::Udp => EndpointPortConfigProtocolEnum::UDP,
                Protocol::Sctp => EndpointPortConfigProtocolEnum::SCTP,
            }),
            target_port: Some(i64::from(p.target)),
            published_port: p.published.map(i64::from),
            publish_mode: Some(match p.mode {
                PublishMode::Ingress => EndpointPortConfigPublishModeEnum::INGRESS,
                PublishMode::Host => EndpointPortConfigPublishModeEnum::HOST,
            }),
        })
        .collect();
    ServiceSpec {
        name: Some(svc.name.clone()),
        labels: Some(labels),
        task_template: Some(TaskSpec {
            container_spec: Some(container),
            restart_policy: restart,
            placement: Some(placement),
            networks: Some(networks),
            ..Default::default()
        }),
        mode: Some(mode),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(match svc.endpoint_mode {
                EndpointMode::Vip => EndpointSpecModeEnum::VIP,
                EndpointMode::Dnsrr => EndpointSpecModeEnum::DNSRR,
            }),
            ports: Some(ports),
        }),
        ..Default::default()
    }
}

/// Deploy `stack` through the manager `docker` (see the module header); the changes made,
/// empty when everything was in place.
pub fn deploy(
    docker: &Docker,
    stack: &RenderedStack,
    opts: &DeployOptions,
) -> Result<Vec<String>, DockerError> {
    runtime()?.block_on(deploy_async(docker, stack, opts))
}

async fn deploy_async(
    c: &Docker,
    stack: &RenderedStack,
    opts: &DeployOptions,
) -> Result<Vec<String>, DockerError> {
    let mut changes = Vec::new();
    let ids = check_external(c, stack).await?;
    ensure_networks(c, stack, &mut changes).await?;
    let mut wanted = BTreeSet::new();
    for svc in &stack.services {
        wanted.insert(svc.name.clone());
        let image = image_ref(c, &svc.image, opts).await?;
        ensure_service(c, stack, svc, &image, &ids, &mut changes).await?;
    }
    for (name, _) in namespace_services(c, &stack.namespace).await? {
        if !wanted.contains(&name) {
            c.delete_service(&name)
                .await
                .map_err(|e| api(&format!("service rm {name}"), e))?;
            changes.push(format!(
                "removed the service {name} (no longer in the stack {})",
                stack.namespace
            ));
        }
    }
    Ok(changes)
}

/// The IDs of the external secrets and configs; an error naming every missing external
/// network, secret and config.
async fn check_external(c: &Docker, stack: &RenderedStack) -> Result<ObjectIds, DockerError> {
    let mut missing = Vec::new();
    for n in stack.networks.iter().filter(|n| n.external) {
        match c.inspect_network(&n.name, None).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => missing.push(format!("network {}", n.name)),
            Err(e) => return Err(api(&format!("network inspect {}", n.name), e)),
        }
    }
    let mut ids = ObjectIds::default();
    for name in &stack.secrets {
        match c.inspect_secret(name).await {
            Ok(s) => {
                ids.secrets.insert(name.clone(), s.id.unwrap_or_default());
            }
            Err(e) if is_not_found(&e) => missing.push(format!("secret {name}")),
            Err(e) => return Err(api(&format!("secret inspect {name}"), e)),
        }
    }
    for name in &stack.configs {
        match c.inspect_config(name).await {
            Ok(s) => {
                ids.configs.insert(name.clone(), s.id.unwrap_or_default());
            }
            Err(e) if is_not_found(&e) => missing.push(format!("config {name}")),
            Err(e) => return Err(api(&format!("config inspect {name}"), e)),
        }
    }
    if missing.is_empty() {
        Ok(ids)
    } else {
        Err(swarm_err(format!(
            "stack {}: external objects missing on the manager: {} (create them before the deploy)",
            stack.namespace,
            missing.join(", ")
        )))
    }
}

async fn ensure_networks(
    c: &Docker,
    stack: &RenderedStack,
    changes: &mut Vec<String>,
) -> Result<(), DockerError> {
    for n in stack.networks.iter().filter(|n| !n.external) {
        match c.inspect_network(&n.name, None).await {
            Ok(_) => continue,
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(api(&format!("network inspect {}", n.name), e)),
        }
        let mut labels = to_map(&n.labels);
        labels.insert(NAMESPACE_LABEL.into(), stack.namespace.clone());
        let req = NetworkCreateRequest {
            name: n.name.clone(),
            driver: Some(n.driver.clone()),
            attachable: Some(true),
            internal: Some(n.internal),
            options: Some(to_map(&n.driver_opts)),
            labels: Some(labels),
            ..Default::default()
        };
        c.create_network(req)
            .await
            .map_err(|e| api(&format!("network create {}", n.name), e))?;
        changes.push(format!(
            "created the network {} ({}, attachable)",
            n.name, n.driver
        ));
    }
    Ok(())
}

/// The image reference a service runs: the image ID when asked for and present locally.
async fn image_ref(c: &Docker, image: &str, opts: &DeployOptions) -> Result<String, DockerError> {
    if !opts.resolve_local {
        return Ok(image.into());
    }
    match c.inspect_image(image).await {
        Ok(i) => Ok(i.id.unwrap_or_else(|| image.to_string())),
        Err(e) if is_not_found(&e) => Ok(image.into()),
        Err(e) => Err(api(&format!("image inspect {image}"), e)),
    }
}

async fn ensure_service(
    c: &Docker,
    stack: &RenderedStack,
    svc: &RenderedService,
    image: &str,
    ids: &ObjectIds,
    changes: &mut Vec<String>,
) -> Result<(), DockerError> {
    let spec = service_spec(stack, svc, image, ids);
    let want = deployed_hash(svc, image, ids);
    let existing = match c.inspect_service(&svc.name, None).await {
        Ok(s) => s,
        Err(e) if is_not_found(&e) => {
            c.create_service(spec, None)
                .await
                .map_err(|e| api(&format!("service create {}", svc.name), e))?;
            changes.push(format!("created the service {} ({})", svc.name, svc.image));
            return Ok(());
        }
        Err(e) => return Err(api(&format!("service inspect {}", svc.name), e)),
    };
    let have = existing
        .spec
        .as_ref()
        .and_then(|s| s.labels.as_ref())
        .and_then(|l| l.get(LABEL_STACK_HASH).cloned());
    if have.as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    let version = existing.version.and_then(|v| v.index).unwrap_or(0);
    let opts = UpdateServiceOptionsBuilder::new()
        .version(i32::try_from(version).unwrap_or(i32::MAX))
        .build();
    c.update_service(&svc.name, spec, opts, None)
        .await
        .map_err(|e| api(&format!("service update {}", svc.name), e))?;
    changes.push(format!(
        "updated the service {} (its spec changed)",
        svc.name
    ));
    Ok(())
}

fn namespace_filter(namespace: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![format!("{NAMESPACE_LABEL}={namespace}")],
    )])
}

/// The services labelled with `namespace`: (name, running tasks, desired tasks), by name.
async fn namespace_services(
    c: &Docker,
    namespace: &str,
) -> Result<Vec<(String, (u64, u64))>, DockerError> {
    let opts = ListServicesOptionsBuilder::new()
        .filters(&namespace_filter(namespace))
        .status(true)
        .build();
    let mut out: Vec<(String, (u64, u64))> = c
        .list_services(Some(opts))
        .await
        .map_err(|e| api("service ls", e))?
        .into_iter()
        .filter_map(|s| {
            let name = s.spec.and_then(|sp| sp.name)?;
            let st = s.service_status.unwrap_or_default();
            Some((
                name,
                (st.running_tasks.unwrap_or(0), st.desired_tasks.unwrap_or(0)),
            ))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Remove the services of `namespace`, then its networks (waiting for their endpoints to go,
/// and for the networks to vanish); the changes made.
pub fn remove(docker: &Docker, namespace: &str) -> Result<Vec<String>, DockerError> {
    runtime()?.block_on(remove_async(docker, namespace))
}

async fn remove_async(c: &Docker, namespace: &str) -> Result<Vec<String>, DockerError> {
    let mut changes = Vec::new();
    for (name, _) in namespace_services(c, namespace).await? {
        match c.delete_service(&name).await {
            Ok(()) => changes.push(format!("removed the service {name}")),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(api(&format!("service rm {name}"), e)),
        }
    }
    let opts = ListNetworksOptionsBuilder::new()
        .filters(&namespace_filter(namespace))
        .build();
    let networks = c
        .list_networks(Some(opts))
        .await
        .map_err(|e| api("network ls", e))?;
    let deadline = Instant::now() + NETWORK_DEADLINE;
    for n in networks {
        let Some(name) = n.name else { continue };
        let id = n.id.unwrap_or_else(|| name.clone());
        loop {
            match c.remove_network(&id).await {
                Ok(()) => {
                    wait_network_gone(c, &name, deadline).await?;
                    changes.push(format!("removed the network {name}"));
                    break;
                }
                Err(e) if is_not_found(&e) => break,
                // Endpoints of the removed services' tasks linger for a moment.
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(api(&format!("network rm {name}"), e)),
            }
        }
    }
    Ok(changes)
}

/// Wait until the manager no longer knows `name`: a removed overlay lingers on the node until
/// the last task container on it is gone.
async fn wait_network_gone(c: &Docker, name: &str, deadline: Instant) -> Result<(), DockerError> {
    loop {
        match c.inspect_network(name, None).await {
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(api(&format!("network inspect {name}"), e)),
            Ok(_) if Instant::now() > deadline => {
                return Err(swarm_err(format!(
                    "network {name} still present {} s after its removal",
                    NETWORK_DEADLINE.as_secs()
                )));
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The services of `namespace` with their running and desired task counts, by name.
pub fn replicas(docker: &Docker, namespace: &str) -> Result<Vec<(String, u64, u64)>, DockerError> {
    let list = runtime()?.block_on(namespace_services(docker, namespace))?;
    Ok(list
        .into_iter()
        .map(|(name, (running, desired))| (name, running, desired))
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;
    use crate::docker::versions::*;
    use phoenix_render::stack::{FileRef, render_compose};
    use serde_json::json;

    fn stack() -> RenderedStack {
        let compose = json!({
            "services": {"hello": {
                "image": "phoenix-lab/busybox:1",
                "command": ["sleep", "3600"],
                "environment": {"GREETING": "${GREETING:-hello}"},
                "ports": [{"target": 80, "published": 8080, "mode": "host"}],
                "secrets": ["tls"],
                "volumes": ["data:/data", "/srv:/srv:ro"],
                "networks": ["traefik-public", "back"],
                "deploy": {"endpoint_mode": "dnsrr", "placement": {"constraints": ["node.role == manager"]},
                           "restart_policy": {"condition": "on-failure", "delay": "1s"}}
            }},
            "networks": {"traefik-public": {"external": true}, "back": {}},
            "volumes": {"data": {}},
            "secrets": {"tls": {"external": true, "name": "tls_cert"}}
        });
        let traefik =
            BTreeMap::from([("hello".to_string(), vec!["traefik.enable=true".to_string()])]);
        render_compose("lab_demo", &compose, &BTreeMap::new(), &traefik).unwrap()
    }

    #[test]
    fn spec_follows_docker_stack_deploy() {
        let s = stack();
        let svc = &s.services[0];
        let ids = ObjectIds {
            secrets: BTreeMap::from([("tls_cert".to_string(), "sid".to_string())]),
            configs: BTreeMap::new(),
        };
        let spec = service_spec(&s, svc, "sha256:abc", &ids);
        assert_eq!(spec.name.as_deref(), Some("lab_demo_hello"));
        let labels = spec.labels.clone().unwrap();
        assert_eq!(labels[NAMESPACE_LABEL], "lab_demo");
        assert_eq!(labels["traefik.enable"], "true");
        assert_eq!(labels[IMAGE_LABEL], "phoenix-lab/busybox:1");
        assert_eq!(
            labels[LABEL_STACK_HASH],
            deployed_hash(svc, "sha256:abc", &ids)
        );
        let t = spec.task_template.clone().unwrap();
        let c = t.container_spec.unwrap();
        assert_eq!(c.image.as_deref(), Some("sha256:abc"));
        assert_eq!(c.command, None);
        assert_eq!(c.args.unwrap(), ["sleep", "3600"]);
        assert_eq!(c.env.unwrap(), ["GREETING=hello"]);
        assert_eq!(c.labels.unwrap()[NAMESPACE_LABEL], "lab_demo");
        let sec = &c.secrets.unwrap()[0];
        assert_eq!(sec.secret_id.as_deref(), Some("sid"));
        assert_eq!(sec.secret_name.as_deref(), Some("tls_cert"));
        assert_eq!(sec.file.as_ref().unwrap().name.as_deref(), Some("tls"));
        let mounts = c.mounts.unwrap();
        assert_eq!(mounts[0].typ, Some(MountType::VOLUME));
        assert_eq!(mounts[0].source.as_deref(), Some("lab_demo_data"));
        assert_eq!(mounts[1].typ, Some(MountType::BIND));
        assert_eq!(mounts[1].read_only, Some(true));
        let nets = t.networks.unwrap();
        assert_eq!(nets[0].target.as_deref(), Some("traefik-public"));
        assert_eq!(nets[1].target.as_deref(), Some("lab_demo_back"));
        assert_eq!(nets[1].aliases.as_ref().unwrap(), &["hello"]);
        assert_eq!(
            t.placement.unwrap().constraints.unwrap(),
            ["node.role == manager"]
        );
        let r = t.restart_policy.unwrap();
        assert_eq!(
            r.condition,
            Some(TaskSpecRestartPolicyConditionEnum::ON_FAILURE)
        );
        assert_eq!(r.delay, Some(1_000_000_000));
        assert_eq!(spec.mode.unwrap().replicated.unwrap().replicas, Some(1));
        let ep = spec.endpoint_spec.unwrap();
        assert_eq!(ep.mode, Some(EndpointSpecModeEnum::DNSRR));
        let p = &ep.ports.unwrap()[0];
        assert_eq!(
            p.publish_mode,
            Some(EndpointPortConfigPublishModeEnum::HOST)
        );
        assert_eq!((p.target_port, p.published_port), (Some(80), Some(8080)));
    }

    #[test]
    fn hash_changes_with_image_and_secret_ids() {
        let s = stack();
        let svc = &s.services[0];
        let ids = ObjectIds::default();
        let a = deployed_hash(svc, "sha256:a", &ids);
        assert_eq!(a, deployed_hash(svc, "sha256:a", &ids));
        assert_ne!(a, deployed_hash(svc, "sha256:b", &ids));
        let other = ObjectIds {
            secrets: BTreeMap::from([("tls_cert".to_string(), "new".to_string())]),
            configs: BTreeMap::new(),
        };
        assert_ne!(a, deployed_hash(svc, "sha256:a", &other));
    }

    #[test]
    fn global_mode_and_secret_paths() {
        assert_eq!(secret_file_name("/run/secrets/x"), "x");
        assert_eq!(secret_file_name("/etc/x"), "/etc/x");
        let compose = json!({"services": {"a": {"image": "i", "deploy": {"mode": "global"}}}});
        let s = render_compose("n", &compose, &BTreeMap::new(), &BTreeMap::new()).unwrap();
        let spec = service_spec(&s, &s.services[0], "i", &ObjectIds::default());
        let mode = spec.mode.unwrap();
        assert!(mode.global.is_some() && mode.replicated.is_none());
        // The default network.
        assert_eq!(
            spec.task_template.unwrap().networks.unwrap()[0]
                .target
                .as_deref(),
            Some("n_default")
        );
    }

    #[test]
    fn versions_replace_bases_in_names_and_refs() {
        let mut s = stack();
        s.configs.push("lab_demo_app".into());
        s.services[0].configs.push(FileRef {
            source: "lab_demo_app".into(),
            target: "/app/.env".into(),
            uid: "0".into(),
            gid: "0".into(),
            mode: 0o444,
        });
        let renamed = BTreeMap::from([(
            "lab_demo_app".to_string(),
            "lab_demo_app-0123456789ab".to_string(),
        )]);
        let mut refs = s.services.iter_mut().flat_map(|s| s.configs.iter_mut());
        use_versions(&mut s.configs, &mut refs, &renamed);
        assert_eq!(s.configs, ["lab_demo_app-0123456789ab"]);
        assert_eq!(s.services[0].configs[0].source, "lab_demo_app-0123456789ab");
        // Secrets are another kind: untouched.
        assert_eq!(s.secrets, ["tls_cert"]);
        let ids = ObjectIds {
            secrets: BTreeMap::new(),
            configs: BTreeMap::from([("lab_demo_app-0123456789ab".into(), "cid".into())]),
        };
        let spec = service_spec(&s, &s.services[0], "i", &ids);
        let c = spec.task_template.unwrap().container_spec.unwrap();
        let cfg = &c.configs.unwrap()[0];
        assert_eq!(cfg.config_id.as_deref(), Some("cid"));
        assert_eq!(
            cfg.config_name.as_deref(),
            Some("lab_demo_app-0123456789ab")
        );
        let file = cfg.file.as_ref().unwrap();
        assert_eq!(file.name.as_deref(), Some("/app/.env"));
        assert_eq!(file.mode, Some(0o444));
        assert_eq!(Versioned::Config.base_label(), LABEL_CONFIG_BASE);
        assert_eq!(Versioned::Secret.base_label(), LABEL_SECRET_BASE);
    }
}
