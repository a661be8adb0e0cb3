//! Swarm membership over any engines (the lab's unix sockets or a Proxmox node's VMs over
//! TCP+TLS 2376), driven by the model's [`phoenix_plan::swarm::SwarmDesired`].
//! - **init** on the first manager when its engine is in no Swarm, with explicit
//!   `advertise_addr` and `data_path_addr` (the NIC the model names: a two-NIC VM would
//!   otherwise advertise whichever address the engine picks), listening on that address:2377;
//!   an engine already in a Swarm as a manager advertising another address is an error;
//! - **join** every other node that is in no Swarm, as its role, with the manager's token for
//!   that role, also with explicit addresses; a node that is a member already is left alone
//!   (a node in *another* Swarm is refused with the reason, never forced out);
//! - **labels and role**: each node's labels set to the model's when they differ (other labels
//!   of the node are kept), and its role when it differs (promote / demote; Docker refuses to
//!   demote the last manager, and that error is reported);
//! - **overlays**: the model's overlay networks created when missing (see [`overlays`]).
//!
//! The lab's Swarm (`phoenix_lab::swarm::up`) and `phoenix swarm` / `sync all --target pve` both use it.
//!
//! Returns change lines (empty when everything already held). Join tokens never appear in
//! any line or error.
//! I/O: the Engine API of the given clients (current-thread runtime).

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{
    LocalNodeState, NodeSpec, NodeSpecRoleEnum, SwarmInitRequest, SwarmJoinRequest,
};
use bollard::query_parameters::UpdateNodeOptionsBuilder;
use ipnet::IpNet;
use phoenix_model::model::{DesiredState, SwarmRole};
use phoenix_plan::swarm::{DesiredNode, SwarmDesired};

use super::{DockerError, MANAGER_PORT, err as swarm_err, runtime};

/// The Swarm's overlay address pools, first one that overlaps no subnet of the model wins.
pub const ADDR_POOLS: [&str; 3] = ["10.200.0.0/16", "10.201.0.0/16", "172.30.0.0/16"];

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first of [`ADDR_POOLS`] that overlaps no subnet of the model: the Swarm's
/// `default_addr_pool` (Docker's own 10.0.0.0/8 would overlap a 10.0.0.0/24 management net).
pub fn addr_pool(d: &DesiredState) -> Result<&'static str, DockerError> {
    let subnets: Vec<IpNet> = d.bridges.iter().filter_map(|b| b.subnet).collect();
    ADDR_POOLS
        .iter()
        .copied()
        .find(|p| {
            p.parse::<IpNet>()
                .is_ok_and(|pool| !subnets.iter().any(|s| overlaps(&pool, s)))
        })
        .ok_or_else(|| swarm_err("every overlay address pool overlaps a subnet of the model"))
}

/// An engine client for one node of the model (by guest id).
pub struct NodeEngine<'a> {
    pub guest: u32,
    pub client: &'a Docker,
}

fn find<'a>(engines: &'a [NodeEngine<'a>], n: &DesiredNode) -> Result<&'a Docker, DockerError> {
    engines
        .iter()
        .find(|e| e.guest == n.guest.0)
        .map(|e| e.client)
        .ok_or_else(|| swarm_err(format!("no engine for {} ({})", n.name, n.guest)))
}

fn api(n: &DesiredNode, what: &str, e: bollard::errors::Error) -> DockerError {
    swarm_err(format!("{} ({}) {what}: {e}", n.name, n.guest))
}

/// An engine's own view of its membership (`GET /info`).
struct Membership {
    state: LocalNodeState,
    cluster: String,
    manager: bool,
    addr: String,
}

async fn state(c: &Docker, n: &DesiredNode) -> Result<Membership, DockerError> {
    let info = c.info().await.map_err(|e| api(n, "info", e))?;
    let s = info.swarm.unwrap_or_default();
    Ok(Membership {
        state: s.local_node_state.unwrap_or(LocalNodeState::INACTIVE),
        cluster: s.cluster.and_then(|c| c.id).unwrap_or_default(),
        manager: s.control_available.unwrap_or(false),
        addr: s.node_addr.unwrap_or_default(),
    })
}

/// Swarm's cluster-management listener: the node's own Swarm address, not every address.
fn listen(n: &DesiredNode) -> String {
    std::net::SocketAddr::new(n.advertise_addr, MANAGER_PORT).to_string()
}

/// Initialise the Swarm on the first manager unless it is in one already; overlay subnets
/// from `addr_pool` ([`addr_pool`]).
pub fn init(
    desired: &SwarmDesired,
    engines: &[NodeEngine],
    addr_pool: &str,
) -> Result<Vec<String>, DockerError> {
    let leader = desired
        .leader()
        .ok_or_else(|| swarm_err("the configuration has no Swarm manager"))?;
    let c = find(engines, leader)?;
    runtime()?.block_on(async {
        let m = state(c, leader).await?;
        match m.state {
            LocalNodeState::ACTIVE if m.manager && m.addr == leader.advertise_addr.to_string() => {
                return Ok(Vec::new());
            }
            LocalNodeState::ACTIVE => {
                return Err(swarm_err(format!(
                    "{} ({}) is in a Swarm {} advertising {:?}, not a manager advertising {}",
                    leader.name,
                    leader.guest,
                    if m.manager {
                        "as a manager"
                    } else {
                        "as a worker"
                    },
                    m.addr,
                    leader.advertise_addr
                )));
            }
            LocalNodeState::INACTIVE | LocalNodeState::EMPTY => {}
            other => {
                return Err(swarm_err(format!(
                    "{} ({}): Swarm state {other}; resolve it on the node first",
                    leader.name, leader.guest
                )));
            }
        }
        let req = SwarmInitRequest {
            listen_addr: Some(listen(leader)),
            advertise_addr: Some(leader.advertise_addr.to_string()),
            data_path_addr: Some(leader.data_path_addr.to_string()),
            default_addr_pool: Some(vec![addr_pool.to_string()]),
            subnet_size: Some(24),
            ..Default::default()
        };
        c.init_swarm(req)
            .await
            .map_err(|e| api(leader, "swarm init", e))?;
        Ok(vec![format!(
            "swarm init on {} ({}) (advertise {}, data path {} on {}, address pool {addr_pool})",
            leader.name, leader.guest, leader.advertise_addr, leader.data_path_addr, leader.nic
        )])
    })
}

/// Join every other node of the model (managers first) and set every node's labels.
pub fn join(desired: &SwarmDesired, engines: &[NodeEngine]) -> Result<Vec<String>, DockerError> {
    let leader = desired
        .leader()
        .ok_or_else(|| swarm_err("the configuration has no Swarm manager"))?;
    let lc = find(engines, leader)?;
    runtime()?.block_on(async {
        let lm = state(lc, leader).await?;
        if lm.state != LocalNodeState::ACTIVE || !lm.manager {
            return Err(swarm_err(format!(
                "{} ({}) is not an active manager (state {}): run `phoenix swarm init` first",
                leader.name, leader.guest, lm.state
            )));
        }
        let cluster = lm.cluster;
        let swarm = lc
            .inspect_swarm()
            .await
            .map_err(|e| api(leader, "swarm inspect", e))?;
        let tokens = swarm.join_tokens.unwrap_or_default();
        let remote = format!("{}:{MANAGER_PORT}", leader.advertise_addr);
        let mut changes = Vec::new();
        for n in desired.nodes.iter().skip(1) {
            let c = find(engines, n)?;
            let m = state(c, n).await?;
            let theirs = m.cluster;
            match m.state {
                LocalNodeState::ACTIVE | LocalNodeState::PENDING if theirs == cluster => continue,
                LocalNodeState::ACTIVE | LocalNodeState::PENDING if !theirs.is_empty() => {
                    return Err(swarm_err(format!(
                        "{} ({}) is a member of another Swarm ({theirs}); leave it there first",
                        n.name, n.guest
                    )));
                }
                LocalNodeState::ACTIVE | LocalNodeState::PENDING => continue,
                LocalNodeState::INACTIVE | LocalNodeState::EMPTY => {}
                other => {
                    return Err(swarm_err(format!(
                        "{} ({}): Swarm state {other}; resolve it on the node first",
                        n.name, n.guest
                    )));
                }
            }
            let token = match n.role {
                SwarmRole::Manager => tokens.manager.clone(),
                SwarmRole::Worker => tokens.worker.clone(),
            }
            .ok_or_else(|| swarm_err("the manager returned no join token"))?;
            let req = SwarmJoinRequest {
                listen_addr: Some(listen(n)),
                advertise_addr: Some(n.advertise_addr.to_string()),
                data_path_addr: Some(n.data_path_addr.to_string()),
                remote_addrs: Some(vec![remote.clone()]),
                join_token: Some(token),
            };
            c.join_swarm(req)
                .await
                .map_err(|e| api(n, "swarm join", e))?;
            let role = match n.role {
                SwarmRole::Manager => "manager",
                SwarmRole::Worker => "worker",
            };
            changes.push(format!(
                "{} ({}) joined as {role} (advertise {}, data path {} on {})",
                n.name, n.guest, n.advertise_addr, n.data_path_addr, n.nic
            ));
        }
        changes.extend(labels(desired, engines, lc).await?);
        Ok(changes)
    })
}

/// Set each node's labels (and role) to the model's where they differ, through the manager
/// `lc`. Each node is found by the node id its own engine reports (a node that left and joined
/// again is listed twice under one hostname), waiting a moment for a fresh join to be listed.
async fn labels(
    desired: &SwarmDesired,
    engines: &[NodeEngine<'_>],
    lc: &Docker,
) -> Result<Vec<String>, DockerError> {
    let mut changes = Vec::new();
    for n in &desired.nodes {
        let info = find(engines, n)?
            .info()
            .await
            .map_err(|e| api(n, "info", e))?;
        let id = info.swarm.and_then(|s| s.node_id).unwrap_or_default();
        if id.is_empty() {
            continue;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let node = loop {
            match lc.inspect_node(&id).await {
                Ok(node) => break node,
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => return Err(api(n, &format!("node inspect {id}"), e)),
            }
        };
        let spec = node.spec.clone().unwrap_or_default();
        let mut have: HashMap<String, String> = spec.labels.clone().unwrap_or_default();
        let role = match n.role {
            SwarmRole::Manager => NodeSpecRoleEnum::MANAGER,
            SwarmRole::Worker => NodeSpecRoleEnum::WORKER,
        };
        let missing = n.labels.iter().any(|(k, v)| have.get(k) != Some(v));
        let promote = spec.role != Some(role);
        if !missing && !promote {
            continue;
        }
        for (k, v) in &n.labels {
            have.insert(k.clone(), v.clone());
        }
        let version = node
            .version
            .as_ref()
            .and_then(|v| v.index)
            .ok_or_else(|| swarm_err(format!("node {} has no version", n.name)))?;
        let new = NodeSpec {
            labels: Some(have),
            role: Some(role),
            ..spec
        };
        let opts = UpdateNodeOptionsBuilder::default()
            .version(i64::try_from(version).unwrap_or(i64::MAX))
            .build();
        lc.update_node(&id, new, opts)
            .await
            .map_err(|e| swarm_err(format!("node {} update: {e}", n.name)))?;
        if promote {
            changes.push(format!(
                "set the role of {} ({}) to {role}",
                n.name, n.guest
            ));
        }
        if !missing {
            continue;
        }
        let shown: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        changes.push(format!(
            "labelled {} ({}): {}",
            n.name,
            n.guest,
            shown.join(", ")
        ));
    }
    Ok(changes)
}

/// The model's overlay networks through the first manager: created when missing (overlay
/// driver, attachable as the model says, the MTU option from the underlay); one that exists
/// with another driver or MTU is an error naming the difference — recreating a network
/// disconnects every service on it, which phoenix does not do behind the operator's back.
pub fn overlays(
    desired: &SwarmDesired,
    engines: &[NodeEngine],
) -> Result<Vec<String>, DockerError> {
    let leader = desired
        .leader()
        .ok_or_else(|| swarm_err("the configuration has no Swarm manager"))?;
    let c = find(engines, leader)?;
    runtime()?.block_on(async {
        let mut changes = Vec::new();
        for o in &desired.overlays {
            let want_mtu = o.mtu_option.to_string();
            match c.inspect_network(&o.name, None).await {
                Ok(_) => {
                    // Right after a create the inspect may show no driver yet (seen here).
                    let n = allocated(c, leader, &o.name).await?;
                    let mtu = n
                        .options
                        .as_ref()
                        .and_then(|m| m.get(phoenix_plan::swarm::MTU_OPTION).cloned());
                    let driver = n.driver.unwrap_or_default();
                    if driver != "overlay" || mtu.as_deref().unwrap_or("1500") != want_mtu {
                        return Err(swarm_err(format!(
                            "network {} exists with driver {driver:?} and MTU option {}, want an \
                             overlay with {want_mtu}: detach its services and remove it \
                             (`docker network rm {}`), then run again",
                            o.name,
                            mtu.as_deref().unwrap_or("unset"),
                            o.name
                        )));
                    }
                }
                Err(e) if super::is_not_found(&e) => {
                    let req = bollard::models::NetworkCreateRequest {
                        name: o.name.clone(),
                        driver: Some("overlay".into()),
                        attachable: Some(o.attachable),
                        options: Some(HashMap::from([(
                            phoenix_plan::swarm::MTU_OPTION.to_string(),
                            want_mtu.clone(),
                        )])),
                        ..Default::default()
                    };
                    c.create_network(req)
                        .await
                        .map_err(|e| api(leader, "network create", e))?;
                    allocated(c, leader, &o.name).await?;
                    changes.push(format!(
                        "created the overlay {} (attachable: {}, MTU option {want_mtu}: containers {})",
                        o.name, o.attachable, o.container_mtu
                    ));
                }
                Err(e) => return Err(api(leader, "network inspect", e)),
            }
        }
        Ok(changes)
    })
}

/// The network `name` once the manager has allocated it (its driver shows), up to 10 s.
async fn allocated(
    c: &Docker,
    leader: &DesiredNode,
    name: &str,
) -> Result<bollard::models::NetworkInspect, DockerError> {
    let start = std::time::Instant::now();
    loop {
        let n = c
            .inspect_network(name, None)
            .await
            .map_err(|e| api(leader, "network inspect", e))?;
        if n.driver.as_deref().is_some_and(|d| !d.is_empty()) {
            return Ok(n);
        }
        if start.elapsed() > std::time::Duration::from_secs(10) {
            return Err(swarm_err(format!(
                "{name} not allocated after 10 s (driver {:?})",
                n.driver
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pools_that_contain_each_other_overlap() {
        let a: IpNet = "10.0.0.0/8".parse().unwrap();
        let b: IpNet = "10.0.0.0/24".parse().unwrap();
        let c: IpNet = "10.200.0.0/16".parse().unwrap();
        assert!(overlaps(&a, &b) && overlaps(&b, &a));
        assert!(!overlaps(&b, &c));
    }
}
