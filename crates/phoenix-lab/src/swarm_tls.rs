//! The Swarm nodes' Engine API over TCP + TLS (port [`ENGINE_TLS_PORT`], 2376) as the plan
//! configures it, and the check that proves it from the hypervisor.
//!
//! Why: phoenix runs on the hypervisor and manages the Swarm through the nodes' Engine APIs
//! (the manager for the cluster, stacks and secrets; every node for its own `join`); on a real
//! host that API is reached over the mesh, so it must be mutually authenticated (dockerd
//! `tlsverify`: only clients with a certificate from the CA get in). The firewall opens 2376
//! on the Swarm nodes only from the hypervisor's mesh address
//! (`phoenix_render::firewall::derived_rules`).
//!
//! Nothing here issues a server certificate: the plan does, as on a node — each Swarm VM's
//! `daemon.json` and drop-in are rendered files of its `docker` steps
//! (`phoenix_render::dockerd`), its server certificate a derived certificate of the
//! `certificates` wave (`phoenix_plan::certs::engine_certificates`), both written into the
//! guest's root; the engine starts from them ([`super::engine`]). phoenix's client
//! certificate is `phoenix_exec::docker::client_cert`'s, under the lab CA's directory
//! ([`client_dir`]), issued by [`ensure_client`] in the Swarm step after the waves, the same
//! code `sync all --target pve` runs with `--ca-dir`.
//!
//! [`check`] connects from *inside* a lab namespace (the hypervisor's; the root namespace
//! cannot and must not reach mesh addresses): a thread that `setns`es into it
//! (`phoenix_verify::NetnsEndpoint`) runs a current-thread runtime, asks `/info` with the
//! client certificate (node id, manager or not) and then makes a request with no client
//! certificate at all, which dockerd must refuse.
//!
//! I/O: the guest roots, the lab CA's client files, namespaces (setns), the Engine API.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use bollard::Docker;
use phoenix_model::model::DesiredState;
use phoenix_verify::NetnsEndpoint;
use phoenix_verify::endpoint::with_net;

use phoenix_exec::docker::client_cert;
use phoenix_exec::docker::{API_TIMEOUT_S, API_VERSION, chain};
pub use phoenix_exec::docker::{CA_FILE, CERT_FILE, ENGINE_TLS_PORT, KEY_FILE};

use super::{SwarmCheck, SwarmNode, SwarmPlan, SwarmRoleName, runtime, swarm_err};
use crate::LabError;
use crate::roots::{guest_root, lab_ca_dir, under};

/// The client certificate's common name (and DNS SAN).
pub const CLIENT_NAME: &str = client_cert::CLIENT_NAME;
/// How long the check waits for the engine's first answer over TLS (it may have just started).
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

/// The lab `prefix` a Swarm node's engine directory (`<state dir>/swarm/g<id>`) belongs to.
fn prefix_of(n: &SwarmNode) -> String {
    n.dir
        .ancestors()
        .nth(2)
        .and_then(|d| d.file_name())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `n`'s guest root (where the plan writes its files).
pub fn root_of(n: &SwarmNode) -> PathBuf {
    guest_root(&prefix_of(n), n.guest)
}

/// The guest's own `daemon.json` (`/etc/docker/daemon.json` under its root), when the plan
/// wrote one.
pub fn guest_daemon_json(n: &SwarmNode) -> Option<PathBuf> {
    let p = under(&root_of(n), phoenix_render::dockerd::DAEMON_JSON);
    p.is_file().then_some(p)
}

/// phoenix's client certificate for the Engine APIs of lab `prefix`: `ca.pem`, `cert.pem`,
/// `key.pem` under the lab CA's directory (what `docker --tlsverify` reads from
/// `DOCKER_CERT_PATH`).
pub fn client_dir(prefix: &str) -> PathBuf {
    client_cert::client_dir(&lab_ca_dir(prefix))
}

/// `n`'s server files when the plan delivered them: the certificate and key under its root.
pub fn server_files(n: &SwarmNode) -> Option<(PathBuf, PathBuf)> {
    let root = root_of(n);
    let cert = under(&root, phoenix_render::dockerd::SERVER_CERT);
    let key = under(&root, phoenix_render::dockerd::SERVER_KEY);
    (cert.is_file() && key.is_file()).then_some((cert, key))
}

/// Issue (or keep) phoenix's client certificate from the lab CA of `prefix`, its `ca.pem`
/// the trust bundle the plan distributes. `Some(what)` when written.
pub fn ensure_client(d: &DesiredState, prefix: &str) -> Result<Option<String>, LabError> {
    let ca = crate::roots::lab_ca(d, prefix)?;
    let trust = phoenix_pki::trust_distribution(ca.public(), d)
        .map_err(|e| swarm_err(format!("lab CA: {e}")))?;
    client_cert::ensure(
        &client_dir(prefix),
        &ca,
        &trust.bundle_pem,
        SystemTime::now(),
    )
    .map_err(|e| swarm_err(e.to_string()))
}

/// An Engine API client for `endpoint` with the certificate files in `dir` (see
/// [`phoenix_exec::docker::connect_tls`]).
pub fn connect(endpoint: &str, dir: &Path) -> Result<Docker, LabError> {
    phoenix_exec::docker::connect_tls(endpoint, dir).map_err(|e| {
        swarm_err(format!(
            "{e} (`sync all --target lab --provision` issues the client certificate)"
        ))
    })
}

/// What the engine at `endpoint` says about itself over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsAnswer {
    /// The Swarm node id (empty when not in a Swarm).
    pub node_id: String,
    /// The engine is a Swarm manager (`ControlAvailable`).
    pub manager: bool,
}

/// From inside namespace `ns`: `/info` at `endpoint` with the client certificate in `dir`,
/// retried until `deadline`. `Err` with the last error (the evidence) otherwise.
pub fn info_from(
    ns: &str,
    endpoint: &str,
    dir: &Path,
    deadline: Duration,
) -> Result<TlsAnswer, String> {
    let (endpoint, dir) = (endpoint.to_string(), dir.to_path_buf());
    with_net(&NetnsEndpoint::new(ns), move || {
        let rt = runtime().map_err(|e| e.to_string())?;
        rt.block_on(info_until(&endpoint, &dir, deadline))
    })
    .map_err(|e| e.to_string())?
}

async fn info_until(endpoint: &str, dir: &Path, deadline: Duration) -> Result<TlsAnswer, String> {
    let c = connect(endpoint, dir).map_err(|e| e.to_string())?;
    let start = Instant::now();
    loop {
        let left = deadline.saturating_sub(start.elapsed());
        let err = match tokio::time::timeout(left.max(Duration::from_millis(1)), c.info()).await {
            Ok(Ok(info)) => {
                let s = info.swarm.unwrap_or_default();
                return Ok(TlsAnswer {
                    node_id: s.node_id.unwrap_or_default(),
                    manager: s.control_available.unwrap_or(false),
                });
            }
            Ok(Err(e)) => chain(&e),
            Err(_) => format!("no answer within {} ms", deadline.as_millis()),
        };
        if start.elapsed() >= deadline {
            return Err(err);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// From inside namespace `ns`: a request to `endpoint` over TLS that trusts the lab root
/// (`dir`'s `ca.pem`) but presents *no* client certificate. `Ok(text)` when the engine
/// refused it (the error), `Err` when it answered — or when the probe could not run.
pub fn refuses_anonymous(ns: &str, endpoint: &str, dir: &Path) -> Result<String, String> {
    let (endpoint, dir) = (endpoint.to_string(), dir.to_path_buf());
    with_net(&NetnsEndpoint::new(ns), move || {
        let rt = runtime().map_err(|e| e.to_string())?;
        rt.block_on(anonymous(&endpoint, &dir))
    })
    .map_err(|e| e.to_string())?
}

async fn anonymous(endpoint: &str, dir: &Path) -> Result<String, String> {
    // bollard loads the client certificate at the handshake; files that do not exist mean
    // none is sent (an empty Certificate message): a client with the CA only.
    let none = dir.join("no-client-certificate");
    let addr = endpoint.strip_prefix("tcp://").unwrap_or(endpoint);
    let c = Docker::connect_with_ssl(
        addr,
        &none.join(KEY_FILE),
        &none.join(CERT_FILE),
        &dir.join(CA_FILE),
        API_TIMEOUT_S,
        &API_VERSION,
    )
    .map_err(|e| format!("cannot build the anonymous client: {e}"))?;
    match tokio::time::timeout(Duration::from_secs(5), c.version()).await {
        Ok(Ok(v)) => Err(format!(
            "the engine answered a client without a certificate (version {})",
            v.version.unwrap_or_default()
        )),
        Ok(Err(e)) => Ok(format!("refused: {}", chain(&e))),
        Err(_) => Ok("no answer within 5000 ms".to_string()),
    }
}

/// `tcp://<addr>:2376` of `n`.
pub fn endpoint(n: &SwarmNode) -> String {
    format!("tcp://{}:{ENGINE_TLS_PORT}", n.addr)
}

/// Per node whose server files the plan delivered, `swarm/engine-tls/<guest>`: from
/// namespace `from_ns` the Engine API answers over TLS with the client certificate (in the
/// node's role, its node id), and refuses a client without one. Empty without the client
/// certificate.
pub fn check(plan: &SwarmPlan, prefix: &str, from_ns: &str) -> Vec<SwarmCheck> {
    let client = client_dir(prefix);
    if !client_cert::complete(&client) {
        return Vec::new();
    }
    plan.nodes
        .iter()
        .filter(|n| server_files(n).is_some())
        .map(|n| check_one(n, &client, from_ns))
        .collect()
}

fn check_one(n: &SwarmNode, client: &Path, from_ns: &str) -> SwarmCheck {
    let start = Instant::now();
    let ep = endpoint(n);
    let r = info_from(from_ns, &ep, client, ANSWER_DEADLINE).and_then(|a| {
        let manager = n.role == SwarmRoleName::Manager;
        if a.manager != manager {
            return Err(format!(
                "answers over TLS, but {} a Swarm manager (node id {:?})",
                if a.manager { "as" } else { "not as" },
                a.node_id
            ));
        }
        let refused = refuses_anonymous(from_ns, &ep, client)?;
        Ok(format!(
            "from {from_ns}: Swarm node {} ({}); without a client certificate: {refused}",
            a.node_id, n.role
        ))
    });
    let (pass, observed) = match r {
        Ok(o) => (true, o),
        Err(o) => (false, o),
    };
    SwarmCheck {
        id: format!("swarm/engine-tls/{}", n.guest),
        subject: n.label(),
        check: format!(
            "the Engine API answers over TLS on {}:{ENGINE_TLS_PORT} (client certificate from \
             the CA, from the plan's location) and refuses a client without one",
            n.addr
        ),
        pass,
        observed,
        duration_ms: start.elapsed().as_millis(),
    }
}
