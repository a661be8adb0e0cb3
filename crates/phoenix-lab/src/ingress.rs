//! The ingress path in the lab — wan → Nginx (gateway) → Traefik (proxy) → Portainer stand-in
//! — as the plan sets it up: guest file roots, the path remapping of their files, the lab's
//! nginx main file, and the Portainer stand-in the Swarm step deploys. The programs themselves
//! start from provision steps ([`crate::guest_services`]).
//!
//! - Guest file roots: `/run/phoenix-lab/<prefix>/root/<id>/` stands for guest `<id>`'s
//!   filesystem; the lab's CA lives in `/run/phoenix-lab/<prefix>/ca` (unencrypted, outside
//!   every guest root); certificates, keys, trust files and rendered files reach the roots by
//!   the plan's actions.
//! - Paths (decision): the rendered text is rewritten, not bind-mounted. Every occurrence of a
//!   known in-guest path — the guest's certificate and key paths, the trust bundle, the
//!   directories of its rendered files — standing as a whole token (after a delimiter, followed
//!   by a delimiter or `/`) is prefixed with the guest root ([`remap`], pure, one left-to-right
//!   pass so nothing is rewritten twice). No mount namespace is needed and nothing outside the
//!   state dir is read or written.
//! - nginx runs with a main configuration written by the lab ([`nginx_main`]: pid, logs and
//!   temp paths in the state dir, `include` of the guest's `conf.d`).
//! - The **Portainer stand-in** ([`swarm_stand_in_for`]): the Swarm service
//!   `portainer-stand-in` ([`crate::swarm::service`], host-mode published port) serving a page
//!   that says so ([`STAND_IN_PAGE`]) over HTTPS with the backend's manifest certificate, on the
//!   port the stack's compose file publishes ([`stand_in_port`]); recorded in
//!   [`SWARM_STAND_IN_FILE`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use phoenix_model::model::{CertKind, DesiredState, San};
use phoenix_pki::{LeafIssuer, LeafRequest};
use phoenix_render::traefik::ingress::{Ingress, Route, ingress};
use serde::{Deserialize, Serialize};

pub use crate::roots::{guest_root, under};
use crate::stepca::StepCaState;
use crate::topology::LabTopology;
pub use crate::traefik::{TRAEFIK_ENV, traefik_binary, with_short_grace, without_swarm};
use crate::{LabError, state_dir};

/// Where every guest finds the internal root (the render's trust path).
pub const TRUST_BUNDLE: &str = "/usr/local/share/ca-certificates/phoenix-root-ca.crt";
/// What the Portainer stand-in answers.
pub const STAND_IN_PAGE: &str =
    "Portainer stand-in (phoenix lab): no Portainer image here, this nginx answers in its place";

/// What the ingress path of a lab holds (the report of `lab up`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressState {
    pub ca_dir: PathBuf,
    /// Certificates issued into the guest roots.
    pub certificates: usize,
    /// Rendered files written (host paths under the guest roots).
    pub files: Vec<PathBuf>,
    /// `https://address:port` of the Portainer stand-in, if one runs.
    pub stand_in: Option<String>,
    /// step-ca in the CA guest ([`crate::stepca`]), if it runs.
    pub step_ca: Option<StepCaState>,
    /// The stand-in as a Swarm service (deployed once the Swarm is up), when the backend's
    /// address is a Swarm node's and `dockerd` is installed; `None` when it runs as a process.
    #[serde(default)]
    pub swarm_stand_in: Option<SwarmStandIn>,
    pub notes: Vec<String>,
}

/// The Portainer stand-in as the Swarm service [`crate::swarm::service`] deploys: on the node
/// of `guest`, published on `port` (host mode), with the backend's certificate and key (host
/// paths). Recorded in [`SWARM_STAND_IN_FILE`] so `sync all` can redeploy it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmStandIn {
    pub guest: u32,
    pub port: u16,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The record of the Swarm stand-in in the state dir.
pub const SWARM_STAND_IN_FILE: &str = "stand-in.json";

/// The recorded Swarm stand-in of lab `prefix`, if the stand-in runs as a Swarm service.
pub fn swarm_stand_in(prefix: &str) -> Option<SwarmStandIn> {
    let text = std::fs::read_to_string(state_dir(prefix).join(SWARM_STAND_IN_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Deploy (or leave alone, or repair) the recorded stand-in on the Swarm of `plan`; the
/// changes made (empty when it already ran as recorded).
pub fn deploy_swarm_stand_in(
    plan: &crate::swarm::SwarmPlan,
    si: &SwarmStandIn,
) -> Result<Vec<String>, LabError> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| LabError::io(p, e));
    let (cert, key) = (read(&si.cert)?, read(&si.key)?);
    crate::swarm::service::deploy(
        plan,
        &crate::swarm::service::StandIn {
            guest: si.guest,
            port: si.port,
            cert_pem: &cert,
            key_pem: &key,
            page: STAND_IN_PAGE,
        },
    )
}

/// Where the Portainer stand-in listens: where the stacks of the guest holding `addr`
/// publish (compose `ports`), never simply where the route points, so a route to a port the
/// stack does not publish fails `verify` at the backend hop as it would on a node. The
/// route's own port when one of those stacks publishes it; otherwise the first port they
/// publish; the route's port (with a note) when the guest deploys no stack with a compose
/// file, as nothing else says where the service serves. Pure.
pub fn stand_in_port(d: &DesiredState, addr: IpAddr, route_port: u16) -> (u16, Option<String>) {
    let Some(g) = d
        .guests
        .values()
        .find(|g| g.nics.iter().any(|n| n.address() == Some(addr)))
    else {
        return (route_port, None);
    };
    let mut published = Vec::new();
    let mut stacks = Vec::new();
    for name in &g.docker_stacks {
        let Some(compose) = d.stacks.get(name).and_then(|s| s.compose.as_ref()) else {
            continue;
        };
        stacks.push(name.as_str());
        published.extend(compose_published_ports(compose));
    }
    if stacks.is_empty() {
        return (
            route_port,
            Some(format!(
                "guest {} deploys no stack with a compose file: the stand-in listens on the route's port {route_port}",
                g.id
            )),
        );
    }
    if published.contains(&route_port) {
        return (route_port, None);
    }
    match published.first() {
        Some(&p) => (
            p,
            Some(format!(
                "the route points at port {route_port}, but stack(s) {} on guest {} publish {}: the stand-in listens on {p}",
                stacks.join(", "),
                g.id,
                published
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ),
        None => (
            route_port,
            Some(format!(
                "stack(s) {} on guest {} publish no port: the stand-in listens on the route's port {route_port}",
                stacks.join(", "),
                g.id
            )),
        ),
    }
}

/// Every port a compose file publishes (long form `published`, short form
/// `"[ip:]published:target[/proto]"`), in file order.
fn compose_published_ports(compose: &serde_json::Value) -> Vec<u16> {
    use serde_json::Value;
    let as_port = |v: &Value| match v {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    let Some(services) = compose.get("services").and_then(Value::as_object) else {
        return Vec::new();
    };
    services
        .values()
        .filter_map(|svc| svc.get("ports").and_then(Value::as_array))
        .flatten()
        .filter_map(|p| match p {
            Value::Object(m) => m.get("published").and_then(as_port),
            Value::String(s) => {
                let s = s.split('/').next()?;
                let mut parts = s.rsplitn(3, ':');
                parts.next()?;
                parts.next()?.parse().ok()
            }
            _ => None,
        })
        .collect()
}

/// The Swarm node (guest id) holding `addr` when the stand-in can run as a Swarm service
/// there: the model has a Swarm VM with that address and `dockerd` is installed.
fn swarm_guest_for(
    d: &DesiredState,
    t: &LabTopology,
    addr: IpAddr,
) -> Result<Option<u32>, LabError> {
    if !crate::swarm::dockerd_available() {
        return Ok(None);
    }
    Ok(crate::swarm::plan(d, t)?
        .and_then(|p| p.nodes.iter().find(|n| n.addr == addr).map(|n| n.guest)))
}

/// The Portainer stand-in the Swarm step deploys for the configuration's backend route, when
/// the backend's address is a Swarm VM's: on the port its stacks publish, with the backend's
/// certificate as the plan delivered it into the guest's root (a fresh one from the lab CA
/// when the manifest has none for it). Recorded in [`SWARM_STAND_IN_FILE`].
pub fn swarm_stand_in_for(
    d: &DesiredState,
    t: &LabTopology,
) -> Result<Option<SwarmStandIn>, LabError> {
    let Ok(ing) = ingress(d) else {
        return Ok(None);
    };
    let Some(r) = portainer_route(&ing) else {
        return Ok(None);
    };
    let b = &r.backend;
    let Some(guest) = swarm_guest_for(d, t, b.address)? else {
        return Ok(None);
    };
    let (port, _) = stand_in_port(d, b.address, b.port);
    let covers = |c: &phoenix_model::model::Certificate, with_addr: bool| {
        c.sans
            .iter()
            .any(|s| matches!(s, San::Dns(n) if *n == b.server_name))
            && (!with_addr
                || c.sans
                    .iter()
                    .any(|s| matches!(s, San::Ip(a) if *a == b.address)))
    };
    let delivered = [true, false].into_iter().find_map(|with| {
        let c = d.certificates.iter().find(|c| covers(c, with))?;
        let g = d.guest(c.guest)?;
        let root = guest_root(&t.prefix, c.guest.0);
        let cert = under(
            &root,
            &phoenix_pki::materialise::in_guest_path(g, &c.cert_path),
        );
        let key = under(
            &root,
            &phoenix_pki::materialise::in_guest_path(g, &c.key_path),
        );
        (cert.is_file() && key.is_file()).then_some((cert, key))
    });
    let dir = state_dir(&t.prefix);
    let (cert, key) = match delivered {
        Some(found) => found,
        None => {
            let ca = crate::roots::lab_ca(d, &t.prefix)?;
            let sans = [San::Dns(b.server_name.clone()), San::Ip(b.address)];
            let leaf = ca
                .issue(
                    &LeafRequest {
                        common_name: &b.server_name,
                        sans: &sans,
                        kind: CertKind::Server,
                        lifetime_hours: 24,
                    },
                    SystemTime::now(),
                )
                .map_err(|e| err(format!("stand-in certificate: {e}")))?;
            let (cert, key) = (
                dir.join("portainer-stand-in.crt"),
                dir.join("portainer-stand-in.key"),
            );
            write_file(&cert, &leaf.cert_file(false))?;
            write_file(&key, leaf.key.expose())?;
            (cert, key)
        }
    };
    let si = SwarmStandIn {
        guest,
        port,
        cert,
        key,
    };
    let text = serde_json::to_string_pretty(&si).map_err(LabError::State)?;
    write_file(&dir.join(SWARM_STAND_IN_FILE), &text)?;
    Ok(Some(si))
}

fn is_delim(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '=' | ';' | ',' | '[' | ']' | '(' | ')')
}

/// Prefix every whole-token occurrence of a path in `known` with `root` (see the module doc).
pub fn remap(text: &str, root: &Path, known: &[String]) -> String {
    let mut known: Vec<&str> = known.iter().map(String::as_str).collect();
    known.sort_by_key(|k| std::cmp::Reverse(k.len()));
    let mut out = String::with_capacity(text.len() + 256);
    let mut prev: Option<char> = None;
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let at_token = prev.is_none_or(is_delim);
        let hit = at_token
            .then(|| {
                known.iter().find(|k| {
                    rest.strip_prefix(**k).is_some_and(|after| {
                        after.chars().next().is_none_or(|c| is_delim(c) || c == '/')
                    })
                })
            })
            .flatten();
        if let Some(k) = hit {
            out.push_str(&under(root, k).to_string_lossy());
            prev = k.chars().last();
            i += k.len();
        } else if let Some(c) = rest.chars().next() {
            out.push(c);
            prev = Some(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The nginx main configuration for the lab instance `name` (everything under `dir`).
pub fn nginx_main(dir: &Path, name: &str, include: &Path) -> String {
    let d = dir.to_string_lossy();
    let tmp = dir.join(format!("{name}-tmp"));
    let t = tmp.to_string_lossy();
    format!(
        "# phoenix lab {name}: main configuration (the rendered file is included)\n\
         daemon off;\nmaster_process on;\nworker_processes 1;\nuser root root;\n\
         pid {d}/{name}.pid;\nerror_log {d}/{name}.error.log notice;\n\
         events {{\n    worker_connections 256;\n}}\n\
         http {{\n    default_type text/plain;\n    access_log {d}/{name}.access.log;\n\
         \x20   client_body_temp_path {t}/body;\n    proxy_temp_path {t}/proxy;\n\
         \x20   fastcgi_temp_path {t}/fastcgi;\n    uwsgi_temp_path {t}/uwsgi;\n\
         \x20   scgi_temp_path {t}/scgi;\n    include {};\n}}\n",
        include.to_string_lossy()
    )
}

/// The stand-in's server block: HTTPS on `addr:port`, [`STAND_IN_PAGE`] for every path.
pub fn stand_in_server(addr: IpAddr, port: u16, cert: &Path, key: &Path) -> String {
    let listen = phoenix_render::traefik::ingress::host_port(addr, port);
    format!(
        "# phoenix lab: Portainer stand-in\nserver {{\n    listen {listen} ssl;\n\
         \x20   ssl_certificate {};\n    ssl_certificate_key {};\n\
         \x20   location / {{\n        default_type text/html;\n\
         \x20       return 200 \"<!doctype html><title>Portainer stand-in</title><p>{STAND_IN_PAGE}</p>\\n\";\n\
         \x20   }}\n}}\n",
        cert.to_string_lossy(),
        key.to_string_lossy()
    )
}

/// `nginx` in the foreground with the lab's main file.
pub fn nginx_args(dir: &Path, conf: &Path, name: &str) -> Vec<String> {
    vec![
        "nginx".into(),
        "-p".into(),
        format!("{}/", dir.to_string_lossy()),
        "-c".into(),
        conf.to_string_lossy().into_owned(),
        "-e".into(),
        dir.join(format!("{name}.error.log"))
            .to_string_lossy()
            .into_owned(),
    ]
}

fn err(reason: impl Into<String>) -> LabError {
    LabError::Ingress(reason.into())
}

fn write_file(path: &Path, content: &str) -> Result<(), LabError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| LabError::io(parent, e))?;
    }
    crate::services::write(path, content)
}

/// The Portainer route (the first label of its host is `portainer`).
pub fn portainer_route(ing: &Ingress) -> Option<&Route> {
    ing.routes
        .iter()
        .find(|r| r.host.split('.').next() == Some("portainer"))
}

#[cfg(test)]
#[path = "ingress_tests.rs"]
mod tests;
