//! The Docker engine of each Swarm VM as rendered files: `/etc/docker/daemon.json` (the unix
//! socket and `tcp://<node address>:2376`, `tlsverify` with the server certificate the plan
//! issues from the internal CA) and the systemd drop-in that clears `-H fd://` from Debian's
//! `ExecStart` (dockerd refuses `hosts` given both as a flag and in the file).
//!
//! They are not among `render_all`'s files (the wave "files inside guests"): they belong with
//! the Docker package, so the `docker` feature's provision steps place them
//! (`phoenix_plan::provision`) and restart docker when they change.
//!
//! The node address is the Swarm rule: the VM's static address on the mesh bridge, else its
//! first static address (`phoenix_plan::swarm::node_nic`). Clients are verified against the
//! phoenix trust bundle the trust wave places in every guest (both roots during a rotation).
//! Pure.

use std::net::IpAddr;

use phoenix_model::model::{DesiredState, Guest, GuestId};

use crate::{FileTarget, RenderedFile};

/// The Engine API over TCP + TLS.
pub const ENGINE_TLS_PORT: u16 = 2376;
/// dockerd's configuration file.
pub const DAEMON_JSON: &str = "/etc/docker/daemon.json";
/// The drop-in that lets `daemon.json` own `hosts`.
pub const DROP_IN: &str = "/etc/systemd/system/docker.service.d/phoenix-hosts.conf";
/// The server certificate and key the plan issues into each Swarm VM.
pub const SERVER_CERT: &str = "/etc/docker/tls/cert.pem";
pub const SERVER_KEY: &str = "/etc/docker/tls/key.pem";
/// The CA dockerd verifies clients against: the phoenix trust bundle
/// (`phoenix_pki::trust::TRUST_FILE`, which the trust wave writes in every guest).
pub const CLIENT_CA: &str = "/usr/local/share/ca-certificates/phoenix-root-ca.crt";
/// The local socket stays (the guest's own `docker` CLI).
pub const UNIX_SOCKET: &str = "unix:///var/run/docker.sock";

/// One Swarm VM's engine: the guest, its name, the address dockerd listens on for TLS, and
/// every static address it has (the server certificate's IP SANs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineNode {
    pub guest: GuestId,
    pub name: String,
    pub listen: IpAddr,
    pub addresses: Vec<IpAddr>,
}

/// The Swarm rule for a node's address: static on the mesh bridge, else the first static one.
pub fn node_address(d: &DesiredState, g: &Guest) -> Option<IpAddr> {
    let mesh = d.mesh().map(|b| b.name.as_str());
    mesh.and_then(|m| g.static_on(m))
        .or_else(|| g.nics.iter().find(|n| n.address().is_some()))
        .and_then(|n| n.address())
}

/// Every non-template Swarm VM with a static address, in guest order.
pub fn engine_nodes(d: &DesiredState) -> Vec<EngineNode> {
    d.guests
        .values()
        .filter(|g| g.swarm.is_some() && !g.is_template)
        .filter_map(|g| {
            Some(EngineNode {
                guest: g.id,
                name: g.name.clone(),
                listen: node_address(d, g)?,
                addresses: g.addresses().collect(),
            })
        })
        .collect()
}

/// The `hosts` dockerd listens on (the Engine API endpoint phoenix reaches is the second).
pub fn hosts(n: &EngineNode) -> Vec<String> {
    let tcp = std::net::SocketAddr::new(n.listen, ENGINE_TLS_PORT);
    vec![UNIX_SOCKET.to_string(), format!("tcp://{tcp}")]
}

/// `daemon.json` of `n`.
pub fn daemon_json(n: &EngineNode) -> String {
    let v = serde_json::json!({
        "hosts": hosts(n),
        "tls": true,
        "tlsverify": true,
        "tlscacert": CLIENT_CA,
        "tlscert": SERVER_CERT,
        "tlskey": SERVER_KEY,
    });
    let mut text = serde_json::to_string_pretty(&v).unwrap_or_default();
    text.push('\n');
    text
}

/// The drop-in: Debian's `ExecStart` (docker.io's unit) without `-H fd://` (the hosts come
/// from `daemon.json`), and no `ExecReload`, so that the provisioning runner's
/// `reload-or-restart` after a change of these files is a restart.
pub fn drop_in() -> String {
    "# phoenix: dockerd's hosts come from /etc/docker/daemon.json (unix socket and TLS on 2376);\n\
     # dockerd refuses -H on the command line as well.\n\
     # No ExecReload: SIGHUP re-reads neither hosts nor TLS files, so `systemctl\n\
     # reload-or-restart docker` (run when these files change) must restart it.\n\
     [Service]\n\
     ExecReload=\n\
     ExecStart=\n\
     ExecStart=/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock $DOCKER_OPTS\n"
        .to_string()
}

/// The two files of every Swarm VM.
pub fn files(d: &DesiredState) -> Vec<RenderedFile> {
    let file = |g: GuestId, path: &str, content: String| RenderedFile {
        target: FileTarget::Guest(g),
        path: path.to_string(),
        content,
        owner: "root".into(),
        group: "root".into(),
        mode: 0o644,
    };
    engine_nodes(d)
        .iter()
        .flat_map(|n| {
            [
                file(n.guest, DAEMON_JSON, daemon_json(n)),
                file(n.guest, DROP_IN, drop_in()),
            ]
        })
        .collect()
}
