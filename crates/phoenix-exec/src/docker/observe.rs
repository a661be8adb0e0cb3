//! Observe a Swarm for the planner: each node's engine (reachable or why not, local
//! Swarm state, node id, manager or not) and the cluster as the first reachable manager lists
//! it (nodes, networks, secrets, services with their labels), as a
//! [`phoenix_plan::swarm::SwarmObserved`] that `phoenix_plan::swarm::plan` compares with the
//! model. Never fails as a whole: an engine that does not answer is recorded on its node, and a
//! Swarm no manager answers for is `cluster: None`. Reads only; secret values are never fetched
//! (the Engine API does not return them anyway).
//! Any set of engines: the lab's unix sockets, a Proxmox node's VMs over TCP+TLS.
//! I/O: the Engine API (bollard, current-thread runtime).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::Docker;
use bollard::models::LocalNodeState;
use phoenix_plan::swarm::{
    ClusterNode, ClusterObserved, LocalState, ObservedNetwork, ObservedNode, ObservedSecret,
    ObservedService, SwarmObserved,
};

use super::runtime;

/// How long one engine may take to answer `GET /info` before it counts as unreachable.
const INFO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the cluster listing through a manager may take.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(20);

/// One engine to observe: the Swarm VM it serves, where it is (for messages) and a client,
/// or why there is none. The lab's are unix sockets; a Proxmox node's are TCP+TLS 2376.
pub struct Engine {
    pub guest: u32,
    pub name: String,
    pub at: String,
    pub client: Result<Docker, String>,
}

/// What the Swarm of `engines` looks like now, node by node and as the first manager that
/// answers sees it.
pub fn observe_engines(engines: &[Engine]) -> SwarmObserved {
    match runtime() {
        Ok(rt) => rt.block_on(observe_async(engines)),
        Err(e) => SwarmObserved {
            nodes: engines
                .iter()
                .map(|n| unreachable(n, e.to_string()))
                .collect(),
            cluster: None,
        },
    }
}

async fn observe_async(engines: &[Engine]) -> SwarmObserved {
    let looks = engines.iter().map(node);
    let mut nodes = futures_util::future::join_all(looks).await;
    let mut cluster = None;
    for (n, o) in engines.iter().zip(&nodes) {
        if o.engine.is_err() || !o.is_manager || o.local_state != Some(LocalState::Active) {
            continue;
        }
        let Ok(c) = &n.client else { continue };
        match tokio::time::timeout(CLUSTER_TIMEOUT, list_cluster(&n.name, c)).await {
            Ok(Ok(c)) => {
                cluster = Some(c);
                break;
            }
            // This manager could not list the cluster (e.g. no quorum): try the next one.
            Ok(Err(_)) | Err(_) => continue,
        }
    }
    // The labels of a node live in the cluster's node objects, not in the engine's info.
    if let Some(c) = &cluster {
        for o in &mut nodes {
            if let Some(cn) = c.nodes.iter().find(|cn| cn.id == o.node_id) {
                o.labels = cn.labels.clone();
            }
        }
    }
    SwarmObserved { nodes, cluster }
}

fn unreachable(n: &Engine, why: String) -> ObservedNode {
    ObservedNode {
        guest: n.guest,
        name: n.name.clone(),
        engine: Err(why),
        local_state: None,
        node_id: String::new(),
        is_manager: false,
        node_addr: String::new(),
        labels: BTreeMap::new(),
    }
}

/// One engine's own view (`GET /info`).
async fn node(n: &Engine) -> ObservedNode {
    let c = match &n.client {
        Ok(c) => c,
        Err(e) => return unreachable(n, e.clone()),
    };
    let info = match tokio::time::timeout(INFO_TIMEOUT, c.info()).await {
        Ok(Ok(info)) => info,
        Ok(Err(e)) => return unreachable(n, format!("{}: {e}", n.at)),
        Err(_) => {
            return unreachable(
                n,
                format!("{}: no answer within {} s", n.at, INFO_TIMEOUT.as_secs()),
            );
        }
    };
    let s = info.swarm.unwrap_or_default();
    ObservedNode {
        guest: n.guest,
        name: n.name.clone(),
        engine: Ok(()),
        local_state: Some(local_state(
            s.local_node_state.unwrap_or(LocalNodeState::INACTIVE),
        )),
        node_id: s.node_id.unwrap_or_default(),
        is_manager: s.control_available.unwrap_or(false),
        node_addr: s.node_addr.unwrap_or_default(),
        labels: BTreeMap::new(),
    }
}

fn local_state(s: LocalNodeState) -> LocalState {
    match s {
        LocalNodeState::EMPTY | LocalNodeState::INACTIVE => LocalState::Inactive,
        LocalNodeState::PENDING => LocalState::Pending,
        LocalNodeState::ACTIVE => LocalState::Active,
        LocalNodeState::ERROR => LocalState::Error,
        LocalNodeState::LOCKED => LocalState::Locked,
    }
}

fn sorted(m: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    m.unwrap_or_default().into_iter().collect()
}

fn lower(s: Option<impl std::fmt::Display>) -> String {
    s.map(|s| s.to_string().to_lowercase()).unwrap_or_default()
}

/// Nodes, networks, secrets and services through the manager `via`.
async fn list_cluster(via: &str, c: &Docker) -> Result<ClusterObserved, bollard::errors::Error> {
    let nodes = c
        .list_nodes(None)
        .await?
        .into_iter()
        .map(|n| {
            let spec = n.spec.unwrap_or_default();
            let status = n.status.unwrap_or_default();
            ClusterNode {
                id: n.id.unwrap_or_default(),
                hostname: n.description.and_then(|d| d.hostname).unwrap_or_default(),
                role: lower(spec.role),
                availability: lower(spec.availability),
                state: lower(status.state),
                addr: status.addr.unwrap_or_default(),
                labels: sorted(spec.labels),
            }
        })
        .collect();
    let networks = c
        .list_networks(None)
        .await?
        .into_iter()
        .map(|n| ObservedNetwork {
            name: n.name.unwrap_or_default(),
            driver: n.driver.unwrap_or_default(),
            attachable: n.attachable.unwrap_or(false),
            options: sorted(n.options),
            labels: sorted(n.labels),
        })
        .collect();
    let secrets = c
        .list_secrets(None)
        .await?
        .into_iter()
        .filter_map(|s| s.spec)
        .map(|spec| ObservedSecret {
            name: spec.name.unwrap_or_default(),
            labels: sorted(spec.labels),
        })
        .collect();
    let services = c
        .list_services(None)
        .await?
        .into_iter()
        .filter_map(|s| s.spec)
        .map(|spec| {
            let secrets = spec
                .task_template
                .and_then(|t| t.container_spec)
                .and_then(|c| c.secrets)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|s| s.secret_name)
                .collect();
            ObservedService {
                name: spec.name.unwrap_or_default(),
                labels: sorted(spec.labels),
                secrets,
            }
        })
        .collect();
    Ok(ClusterObserved {
        via: via.to_string(),
        nodes,
        networks,
        secrets,
        services,
    })
}
