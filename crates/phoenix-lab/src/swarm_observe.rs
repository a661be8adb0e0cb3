//! Observe the lab's Swarm for the planner through each node's unix socket
//! ([`phoenix_exec::docker::observe`] does the work, for any set of engines).

pub use phoenix_exec::docker::observe::*;
use phoenix_plan::swarm::SwarmObserved;

use super::{SwarmNode, SwarmPlan, client};

/// The lab's engines (each node's unix socket).
pub fn lab_engines(plan: &SwarmPlan) -> Vec<Engine> {
    plan.nodes
        .iter()
        .map(|n: &SwarmNode| Engine {
            guest: n.guest,
            name: n.name.clone(),
            at: n.socket().display().to_string(),
            client: client(n).map_err(|e| e.to_string()),
        })
        .collect()
}

/// What the lab's Swarm looks like now, node by node and as the managers see it.
pub fn observe(plan: &SwarmPlan) -> SwarmObserved {
    observe_engines(&lab_engines(plan))
}
