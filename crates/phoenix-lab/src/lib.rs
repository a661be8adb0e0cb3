//! # phoenix-lab
//!
//! The lab twin, first layer: the network of a [`DesiredState`] realised in Linux network
//! namespaces on the local machine (root only). One namespace for the hypervisor (`<prefix>-hv`)
//! holding the model's bridges and the NAT, one `<prefix>-wan` acting as upstream router and
//! "internet", one `<prefix>-g<id>` per non-template guest with exactly its NICs.
//!
//! - [`target`]: the lab as a `Target` of the one `sync all` pipeline: observed through its
//!   node root ([`node`]) and guest roots, planned by the node's planner, applied by
//!   [`executor`]; `lab up` is that pipeline with provisioning;
//! - [`guest_services`]: the programs inside guests, started because a provision step says so;
//! - [`topology`]: what to build, computed from the model (pure);
//! - [`batch`]: the `ip -batch` text that builds it (pure);
//! - [`realise`]: the network (namespaces, links, NAT) and the lab's own world, built once and
//!   kept whole;
//! - [`drift`]: what drifted in a running lab's network (a link down, an address, a route,
//!   `resolv.conf`, the NAT), repaired in place and checked by `verify`;
//! - [`teardown`]: `lab down` and [`LabGuard`] (finds everything by prefix, also after a crash);
//! - [`procs`]: the processes the lab started, recorded by identity (pid and start time);
//! - [`services`]: the wan's DNS, DHCP and HTTP endpoint, the mesh DNS, the guests' DHCP
//!   clients;
//! - [`roots`]: the guests' file roots and the lab's CA;
//! - [`ingress`]: path remapping, the lab's nginx main file, the Portainer stand-in;
//! - [`provision`]: the lab's `GuestExec` (files under the guest roots);
//! - [`stepca`]: step-ca in the CA guest;
//! - [`guestfw`]: the guests' firewalls (the policy as an nftables table per guest);
//! - [`netlink`]: the namespaces' links, addresses and routes configured in-process;
//! - [`swarm`]: a real Docker Swarm, one dockerd per Swarm VM namespace, and its checks;
//! - [`traefik`]: the lab's own adjustments to Traefik's launch;
//! - [`status`]: `lab status` and `lab exec`.
//!
//! Safety (LAB.md): nothing in the root namespace is ever touched except creating and deleting
//! the named namespaces and their `/etc/netns/<ns>` directories; links are created directly
//! inside their target namespaces; the "public" side uses documentation ranges only.
//!
//! [`DesiredState`]: phoenix_model::model::DesiredState

pub mod batch;
pub mod drift;
mod error;
pub mod executor;
pub mod guest_services;
pub mod guestfw;
pub mod ingress;
mod lab_exec;
pub mod netlink;
pub mod node;
pub mod peers;
pub mod procs;
pub mod provision;
pub mod realise;
pub mod roots;
mod run;
pub mod services;
pub mod status;
pub mod stepca;
pub mod swarm;
pub mod target;
pub mod teardown;
pub mod topology;
pub mod traefik;

pub use error::LabError;
pub use realise::{Scope, UpOptions, UpReport};
pub use status::{LabStatus, exec, status};
pub use target::{up, up_with};
pub use teardown::{DownReport, LabGuard, down};
pub use topology::{LabTopology, validate_prefix};

/// Prefix used when none is given.
pub const DEFAULT_PREFIX: &str = "phx";

/// Runtime state of every lab (tmpfs; gone after a reboot, like the namespaces).
pub const STATE_ROOT: &str = "/run/phoenix-lab";

/// The state directory of one lab.
pub fn state_dir(prefix: &str) -> std::path::PathBuf {
    std::path::Path::new(STATE_ROOT).join(prefix)
}

pub use phoenix_exec::root::is_root;

/// Fails with [`LabError::NotRoot`] unless running as root.
pub fn require_root() -> Result<(), LabError> {
    if is_root() {
        Ok(())
    } else {
        Err(LabError::NotRoot)
    }
}
