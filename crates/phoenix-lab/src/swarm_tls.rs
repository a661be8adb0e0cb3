//! The Swarm nodes' Engine API over TCP + TLS (port [`ENGINE_TLS_PORT`], 2376) with
//! certificates from the lab's internal CA, and the check that proves it from the hypervisor.
//!
//! Why: phoenix runs on the hypervisor and manages the Swarm through the nodes' Engine APIs
//! (the manager for the cluster, stacks and secrets; every node for its own `join`); on a real
//! host that API is reached over the mesh, so it must be mutually authenticated (dockerd
//! `--tlsverify`: only clients with a certificate from the CA get in). The firewall opens 2376
//! on the Swarm nodes only from the hypervisor's mesh address
//! (`phoenix_render::firewall::derived_rules`).
//!
//! Files (Docker's `DOCKER_CERT_PATH` layout, `ca.pem`, `cert.pem`, `key.pem`):
//! - the server side, per node, in [`tls_dir`] (`<engine dir>/tls`): a server certificate
//!   with CN = the node name and SANs = the node name and its node address;
//! - the client side, once per lab, in [`client_dir`] (`<state dir>/engine-client`): a client
//!   certificate with CN `phoenix` — what `docker --tlsverify -H tcp://<addr>:2376` reads.
//!
//! Keys are written 0600 in 0700 directories and never printed. [`prepare`] issues them from
//! the lab CA (`<state dir>/ca`, [`crate::roots::lab_ca`]) and keeps files that are
//! still good (the `ca.pem` is the current root, the certificate chains to it, is valid for
//! its name for another hour), so a second run writes nothing. Without the lab CA nothing
//! happens and the engines serve only their unix socket.
//!
//! [`check`] connects from *inside* a lab namespace (the hypervisor's; the root namespace
//! cannot and must not reach mesh addresses): a thread that `setns`es into it
//! (`phoenix_verify::NetnsEndpoint`) runs a current-thread runtime, asks `/info` with the
//! client certificate (node id, manager or not) and then makes a request with no client
//! certificate at all, which dockerd must refuse.
//!
//! I/O: the lab CA and certificate files, namespaces (setns), the Engine API over TLS.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use bollard::Docker;
use phoenix_model::model::{CertKind, San};
use phoenix_pki::{CaStore, LeafIssuer, LeafRequest};
use phoenix_verify::NetnsEndpoint;
use phoenix_verify::endpoint::with_net;

use phoenix_exec::docker::{API_TIMEOUT_S, API_VERSION, chain};
pub use phoenix_exec::docker::{CA_FILE, CERT_FILE, ENGINE_TLS_PORT, KEY_FILE};

use super::{SwarmCheck, SwarmNode, SwarmPlan, SwarmRoleName, runtime, swarm_err};
use crate::{LabError, state_dir};

/// The client certificate's common name (and DNS SAN).
pub const CLIENT_NAME: &str = "phoenix";
/// Lifetime of the issued certificates, hours (lab-only; reissued by [`prepare`] when less
/// than [`MIN_REMAINING`] is left).
const LIFETIME_HOURS: u32 = 24 * 7;
/// A certificate expiring sooner than this is reissued.
const MIN_REMAINING: Duration = Duration::from_secs(3600);
/// How long the check waits for the engine's first answer over TLS (it may have just started).
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

/// The server side of `n`'s engine: `ca.pem`, `cert.pem`, `key.pem`.
pub fn tls_dir(n: &SwarmNode) -> PathBuf {
    n.dir.join("tls")
}

/// phoenix's client certificate for the Engine APIs of lab `prefix`: `ca.pem`, `cert.pem`,
/// `key.pem` (what `docker --tlsverify` reads from `DOCKER_CERT_PATH`).
pub fn client_dir(prefix: &str) -> PathBuf {
    state_dir(prefix).join("engine-client")
}

/// Do `dir`'s three files exist?
fn complete(dir: &Path) -> bool {
    [CA_FILE, CERT_FILE, KEY_FILE]
        .iter()
        .all(|f| dir.join(f).is_file())
}

/// `n`'s TLS directory when its three files are in place (then its engine listens on
/// `tcp://<addr>:2376` with `--tlsverify`).
pub fn server_files(n: &SwarmNode) -> Option<PathBuf> {
    let dir = tls_dir(n);
    complete(&dir).then_some(dir)
}

/// Issue (or keep) the nodes' server certificates and phoenix's client certificate from
/// the lab CA of `prefix`. True when anything was written; `Ok(false)` and nothing done when
/// the lab has no CA.
pub fn prepare(prefix: &str, plan: &SwarmPlan) -> Result<bool, LabError> {
    let ca_dir = state_dir(prefix).join("ca");
    if !ca_dir.join(phoenix_pki::ca::STATE).is_file() {
        return Ok(false);
    }
    let ca = CaStore::open(&ca_dir, None).map_err(|e| swarm_err(format!("lab CA: {e}")))?;
    let root = ca.public().root_pem().to_string();
    let now = SystemTime::now();
    let mut wrote = false;
    for n in &plan.nodes {
        let sans = [San::Dns(n.name.clone()), San::Ip(IpAddr::V4(n.addr))];
        let want = Want {
            common_name: &n.name,
            sans: &sans,
            kind: CertKind::Server,
            check_name: n.addr.to_string(),
        };
        wrote |= ensure(&ca, &root, &tls_dir(n), &want, now)?;
    }
    let sans = [San::Dns(CLIENT_NAME.to_string())];
    let want = Want {
        common_name: CLIENT_NAME,
        sans: &sans,
        kind: CertKind::Client,
        check_name: CLIENT_NAME.to_string(),
    };
    wrote |= ensure(&ca, &root, &client_dir(prefix), &want, now)?;
    Ok(wrote)
}

/// One certificate [`prepare`] wants in a directory.
struct Want<'a> {
    common_name: &'a str,
    sans: &'a [San],
    kind: CertKind,
    /// The name or address the certificate must be valid for.
    check_name: String,
}

/// Keep `dir`'s files when still good, else issue and write them; true when written.
fn ensure(
    ca: &CaStore,
    root: &str,
    dir: &Path,
    want: &Want<'_>,
    now: SystemTime,
) -> Result<bool, LabError> {
    if still_good(dir, root, want, now) {
        return Ok(false);
    }
    let leaf = ca
        .issue(
            &LeafRequest {
                common_name: want.common_name,
                sans: want.sans,
                kind: want.kind,
                lifetime_hours: LIFETIME_HOURS,
            },
            now,
        )
        .map_err(|e| swarm_err(format!("certificate for {}: {e}", want.common_name)))?;
    std::fs::create_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| LabError::io(dir, e))?;
    // The key first: a cert.pem never pairs with a stale key.pem after an interruption
    // (ca.pem last: until it is written the set counts as not good and is reissued).
    let _ = std::fs::remove_file(dir.join(CA_FILE));
    write_mode(&dir.join(KEY_FILE), leaf.key.expose(), 0o600)?;
    write_mode(&dir.join(CERT_FILE), &leaf.cert_file(false), 0o644)?;
    write_mode(&dir.join(CA_FILE), root, 0o644)?;
    Ok(true)
}

/// Are `dir`'s files still good: complete, `ca.pem` is the current root, the certificate
/// chains to it for its usage, is valid for its name and another [`MIN_REMAINING`], and the
/// key file is not empty?
fn still_good(dir: &Path, root: &str, want: &Want<'_>, now: SystemTime) -> bool {
    if !complete(dir) {
        return false;
    }
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    if read(CA_FILE) != root {
        return false;
    }
    let key_present = std::fs::metadata(dir.join(KEY_FILE)).is_ok_and(|m| m.len() > 0);
    key_present
        && phoenix_pki::verify::verify_pem(
            &read(CERT_FILE),
            root,
            &want.check_name,
            want.kind,
            now + MIN_REMAINING,
        )
        .is_ok()
}

/// Write `content` to `path` with `mode` (also when the file existed with another mode).
fn write_mode(path: &Path, content: &str, mode: u32) -> Result<(), LabError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| LabError::io(path, e))?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| LabError::io(path, e))?;
    f.write_all(content.as_bytes())
        .map_err(|e| LabError::io(path, e))
}

/// An Engine API client for `endpoint` with the certificate files in `dir` (see
/// [`phoenix_exec::docker::connect_tls`]).
pub fn connect(endpoint: &str, dir: &Path) -> Result<Docker, LabError> {
    phoenix_exec::docker::connect_tls(endpoint, dir)
        .map_err(|e| swarm_err(format!("{e} (run `lab up` with the lab CA)")))
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

/// Per node with TLS prepared, `swarm/engine-tls/<guest>`: from namespace `from_ns` the
/// Engine API answers over TLS with the client certificate (in the node's role, its node id),
/// and refuses a client without one. Empty when TLS is not prepared (no lab CA).
pub fn check(plan: &SwarmPlan, prefix: &str, from_ns: &str) -> Vec<SwarmCheck> {
    let client = client_dir(prefix);
    if !complete(&client) {
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
             the lab CA) and refuses a client without one",
            n.addr
        ),
        pass,
        observed,
        duration_ms: start.elapsed().as_millis(),
    }
}
