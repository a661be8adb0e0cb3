//! Routes and what they lead to: a Traefik service on a guest without a static address (E030)
//! or whose first NIC is DHCP (W022), a scheme that contradicts the service (E031) or is
//! inferred (W023), entrypoints that do not exist in services and stack labels (E032), stacks
//! that do not exist (E054), certificates for guests that do not exist (E051), the CA's
//! directory mounted into other guests (W031) and features phoenix does not provision (W032).
//!
//! No I/O.

use crate::diag::Quote;
use std::collections::HashMap;

use crate::diag::{Code, Diagnostics};
use crate::load::RawConfig;
use crate::model::{DesiredState, Guest, GuestKind, Nic, Scheme, TraefikService};

/// Guest features phoenix provisions. Anything else is reported (W032).
pub const SUPPORTED_FEATURES: &[&str] = &[
    "base_setup",
    "trusted_ca",
    "step_cli",
    "step_ca",
    "traefik",
    "docker",
    "docker_proxy",
    "nginx",
];

/// Ports that only ever speak TLS in this platform.
const TLS_PORTS: &[u16] = &[443, 8443, 9443];

pub fn check(d: &DesiredState, raw: &RawConfig, diags: &mut Diagnostics) {
    for g in d.guests.values() {
        if let Some(ts) = &g.traefik_service {
            route_target(d, g, ts, diags);
            scheme(d, g, ts, diags);
            entrypoints(d, g, ts, diags);
        }
        stacks(d, g, diags);
        features(g, diags);
    }
    stack_labels(d, diags);
    overlay_only_routes(d, diags);
    certificates(d, raw, diags);
    ca_mounts(d, diags);
}

/// The NIC phoenix routes a guest's service to: the static NIC on the mesh, else the first
/// static NIC.
pub fn route_nic<'g>(d: &DesiredState, g: &'g Guest) -> Option<&'g Nic> {
    d.mesh()
        .and_then(|m| g.static_on(&m.name))
        .or_else(|| g.nics.iter().find(|n| n.address().is_some()))
}

fn route_target(d: &DesiredState, g: &Guest, ts: &TraefikService, diags: &mut Diagnostics) {
    let Some(nic) = route_nic(d, g) else {
        diags.emit(
            Code::DhcpRoute,
            &ts.loc,
            format!(
                "service `{}` on guest {} has no static address to route to (the bash system produced `http://dhcp:{}`)",
                ts.name, g.id, ts.port
            ),
            "give the guest a static address (e.g. a NIC on the mesh bridge) or remove `traefik_service`",
        );
        return;
    };
    if let Some(first) = g.nics.first().filter(|n| n.is_dhcp()) {
        let addr = nic.address().map(|a| a.to_string()).unwrap_or_default();
        diags.emit(
            Code::DhcpPrimaryNic,
            &ts.loc,
            format!(
                "service `{}` on guest {}: net{} is DHCP, so phoenix routes via net{} ({}) {addr} on {} instead of the DHCP route the bash system produced (`http://dhcp:{}`)",
                ts.name, g.id, first.index, nic.index, nic.name, nic.bridge, ts.port
            ),
            format!(
                "nothing to do if {addr} is where the service listens; otherwise give net{} a static address",
                first.index
            ),
        );
    }
}

fn is_ca(d: &DesiredState, g: &Guest) -> bool {
    d.roles.ca == Some(g.id) || g.has_feature("step_ca")
}

fn scheme(d: &DesiredState, g: &Guest, ts: &TraefikService, diags: &mut Diagnostics) {
    let ca_port = is_ca(d, g) && ts.port == d.step_ca.port;
    let why = if ca_port {
        format!("port {} is the Step-CA's, which serves HTTPS only", ts.port)
    } else {
        format!("port {} speaks TLS", ts.port)
    };
    let tls = ca_port || TLS_PORTS.contains(&ts.port);
    if ts.scheme_explicit && ts.scheme == Scheme::Http && tls {
        diags.emit(
            Code::SchemeMismatch,
            &ts.loc.child("scheme"),
            format!(
                "service `{}` on guest {} is routed as http, but {why}",
                ts.name, g.id
            ),
            "set \"scheme\": \"https\"",
        );
    }
    if !ts.scheme_explicit && ts.scheme == Scheme::Https {
        diags.emit(
            Code::SchemeInferred,
            &ts.loc,
            format!(
                "service `{}` on guest {} has no `scheme`: phoenix routes it as https ({why}), where the bash system routed http",
                ts.name, g.id
            ),
            "add \"scheme\": \"https\" to make the route explicit",
        );
    }
}

fn unknown_entrypoint_hint(d: &DesiredState) -> String {
    let known: Vec<&str> = d.traefik.entrypoints.keys().map(String::as_str).collect();
    format!(
        "use one of the entrypoints Traefik has ({}) or define it under `traefik.entrypoints`",
        known.join(", ")
    )
}

fn entrypoints(d: &DesiredState, g: &Guest, ts: &TraefikService, diags: &mut Diagnostics) {
    for (i, e) in ts.entrypoints.iter().enumerate() {
        if !d.traefik.entrypoints.contains_key(e) {
            diags.emit(
                Code::UnknownEntrypoint,
                &ts.loc.child("entrypoints").child(i),
                format!(
                    "service `{}` on guest {} uses entrypoint `{}`, which Traefik does not have",
                    ts.name,
                    g.id,
                    e.quoted()
                ),
                unknown_entrypoint_hint(d),
            );
        }
    }
}

/// `traefik.{http,tcp,udp}.routers.<router>.entrypoints=<a,b>` → (router, [a, b]).
pub fn label_entrypoints(label: &str) -> Option<(&str, Vec<&str>)> {
    let (key, value) = label.split_once('=')?;
    let rest = key.trim().strip_prefix("traefik.")?;
    let rest = ["http.", "tcp.", "udp."]
        .iter()
        .find_map(|p| rest.strip_prefix(p))?;
    let router = rest
        .strip_prefix("routers.")?
        .strip_suffix(".entrypoints")?;
    let eps = value
        .trim()
        .trim_matches(['"', '\''])
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    Some((router, eps))
}

fn stack_labels(d: &DesiredState, diags: &mut Diagnostics) {
    for s in d.stacks.values() {
        for (env, e) in &s.environments {
            for (svc, labels) in &e.traefik_labels {
                let loc = s
                    .loc
                    .child("environments")
                    .child(env)
                    .child("services")
                    .child(svc)
                    .child("traefik_labels");
                for (i, label) in labels.iter().enumerate() {
                    let Some((router, eps)) = label_entrypoints(label) else {
                        continue;
                    };
                    for ep in eps
                        .into_iter()
                        .filter(|ep| !d.traefik.entrypoints.contains_key(*ep))
                    {
                        diags.emit(
                            Code::UnknownEntrypoint,
                            &loc.child(i),
                            format!(
                                "router `{}` of stack {} ({env}) uses entrypoint `{}`, which Traefik does not have",
                                router.quoted(),
                                s.name,
                                ep.quoted()
                            ),
                            unknown_entrypoint_hint(d),
                        );
                    }
                }
            }
        }
    }
}

/// The port a service's labels send Traefik to (`…loadbalancer.server.port=P`).
pub(super) fn label_port(labels: &[String]) -> Option<(usize, u16)> {
    labels.iter().enumerate().find_map(|(i, l)| {
        let (k, v) = l.split_once('=')?;
        (k.starts_with("traefik.http.services.") && k.ends_with(".loadbalancer.server.port"))
            .then(|| v.trim().parse().ok().map(|p| (i, p)))?
    })
}

/// The bash design's latent failure: Traefik outside the Swarm cannot reach a task's overlay
/// address, so a labelled service whose port the compose file does not publish is unreachable.
fn overlay_only_routes(d: &DesiredState, diags: &mut Diagnostics) {
    let Some(proxy) = d.roles.internal_proxy.and_then(|id| d.guest(id)) else {
        return;
    };
    if proxy.swarm.is_some() {
        return;
    }
    for s in d.stacks.values() {
        for (env, e) in &s.environments {
            for (svc, labels) in &e.traefik_labels {
                let Some((i, port)) = label_port(labels) else {
                    continue;
                };
                if s.compose.is_none() || s.published_port(svc, port).is_some() {
                    continue;
                }
                let loc = s
                    .loc
                    .child("environments")
                    .child(env)
                    .child("services")
                    .child(svc)
                    .child("traefik_labels")
                    .child(i);
                diags.emit(
                    Code::OverlayOnlyRoute,
                    &loc,
                    format!(
                        "Traefik (guest {}) is not a Swarm node, but stack {} ({env}) routes `{}` to port {port}, which its compose file does not publish: only the overlay reaches it, so the route would answer 502/404",
                        proxy.id,
                        s.name,
                        svc.quoted()
                    ),
                    format!(
                        "publish it in host mode on the node Traefik routes to (`ports: [{{target: {port}, published: {port}, protocol: tcp, mode: host}}]`), or run Traefik as a Swarm service on the `traefik-public` overlay"
                    ),
                );
            }
        }
    }
}

fn stacks(d: &DesiredState, g: &Guest, diags: &mut Diagnostics) {
    for (i, name) in g.docker_stacks.iter().enumerate() {
        if !d.stacks.contains_key(name) {
            diags.emit(
                Code::UnknownStack,
                &g.loc.child("docker_stacks").child(i),
                format!(
                    "guest {} deploys stack `{}`, which is not defined",
                    g.id,
                    name.quoted()
                ),
                "define it under `docker_stacks` in phoenix_stacks_config.json (or stacks/<name>/phoenix.json), or remove it",
            );
        }
    }
}

fn features(g: &Guest, diags: &mut Diagnostics) {
    for (i, f) in g.features.iter().enumerate() {
        if !SUPPORTED_FEATURES.contains(&f.as_str()) {
            diags.emit(
                Code::UnsupportedFeature,
                &g.loc.child("features").child(i),
                format!(
                    "feature `{}` of guest {} is not provisioned by phoenix yet",
                    f.quoted(),
                    g.id
                ),
                format!(
                    "phoenix provisions {}; keep the entry for a later release or install it yourself",
                    SUPPORTED_FEATURES.join(", ")
                ),
            );
        }
    }
}

/// E051: a certificate for a guest that does not exist, or whose `guest_type` says the other kind.
fn certificates(d: &DesiredState, raw: &RawConfig, diags: &mut Diagnostics) {
    let raw_by_pointer: HashMap<&str, &crate::raw::RawCertificate> = raw
        .certificates
        .iter()
        .map(|c| (c.loc.pointer.as_str(), &c.value))
        .collect();
    for c in &d.certificates {
        let r = raw_by_pointer.get(c.loc.pointer.as_str());
        let id_key = if r.is_some_and(|r| r.guest_id.is_some()) {
            "guest_id"
        } else {
            "cert_path"
        };
        let Some(g) = d.guest(c.guest) else {
            diags.emit(
                Code::UnknownGuest,
                &c.loc.child(id_key),
                format!(
                    "certificate `{}` is for guest {}, which is not defined",
                    c.common_name.quoted(),
                    c.guest
                ),
                "name a VMID from the LXC or VM file, or remove the entry",
            );
            continue;
        };
        let written = r.and_then(|r| r.guest_type.as_deref());
        let claimed = match written {
            Some("lxc") => GuestKind::Lxc,
            Some("vm") => GuestKind::Vm,
            _ => continue,
        };
        if claimed != g.kind {
            diags.emit(
                Code::UnknownGuest,
                &c.loc.child("guest_type"),
                format!(
                    "certificate `{}` is for {claimed} {}, but guest {} is a {}",
                    c.common_name.quoted(),
                    c.guest,
                    c.guest,
                    g.kind
                ),
                format!("set \"guest_type\": \"{}\" or correct `guest_id`", g.kind),
            );
        }
    }
}

/// Host paths that hold the CA's keys: the CA guest's mounts and `step_ca.ca_dir`.
fn ca_paths(d: &DesiredState) -> Vec<&str> {
    let mut out = vec![d.step_ca.ca_dir.trim_end_matches('/')];
    if let Some(ca) = d.roles.ca.and_then(|id| d.guest(id)) {
        out.extend(
            ca.mount_points
                .iter()
                .map(|m| m.host_path.trim_end_matches('/')),
        );
    }
    out.retain(|p| !p.is_empty());
    out
}

/// Does mounting `mount` expose `secret` (same path, inside it, or a parent of it)?
pub fn path_overlaps(mount: &str, secret: &str) -> bool {
    let mount = mount.trim_end_matches('/');
    let under = |a: &str, b: &str| a.strip_prefix(b).is_some_and(|r| r.starts_with('/'));
    mount == secret || under(mount, secret) || under(secret, mount) || mount.is_empty()
}

fn ca_mounts(d: &DesiredState, diags: &mut Diagnostics) {
    let secrets = ca_paths(d);
    let ca = d.roles.ca;
    for g in d.guests.values().filter(|g| Some(g.id) != ca) {
        for m in &g.mount_points {
            let Some(secret) = secrets.iter().find(|s| path_overlaps(&m.host_path, s)) else {
                continue;
            };
            let owner = match ca {
                Some(id) => format!("the CA guest {id}'s"),
                None => "the CA's".to_string(),
            };
            diags.emit(
                Code::CaDirMounted,
                &m.loc.child("host_path"),
                format!(
                    "guest {} mounts {} at {}, which exposes {owner} key directory {secret}",
                    g.id,
                    m.host_path.quoted(),
                    m.container_path.quoted()
                ),
                "remove the mount: guests get their own certificate and the root certificate from phoenix (feature `trusted_ca`), never the CA's keys",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_entrypoint_labels_are_parsed() {
        assert_eq!(
            label_entrypoints("traefik.http.routers.qdrant.entrypoints=mesh"),
            Some(("qdrant", vec!["mesh"]))
        );
        assert_eq!(
            label_entrypoints("traefik.tcp.routers.db.entrypoints= a, b "),
            Some(("db", vec!["a", "b"]))
        );
        assert_eq!(
            label_entrypoints("traefik.http.routers.x.rule=Host(`a`)"),
            None
        );
        assert_eq!(label_entrypoints("traefik.enable=true"), None);
    }

    #[test]
    fn ca_path_overlap() {
        let ca = "/mnt/pve/quickOS/lxc-persistent-data/103/ssl";
        assert!(path_overlaps(ca, ca));
        assert!(path_overlaps(&format!("{ca}/"), ca));
        assert!(path_overlaps(&format!("{ca}/certs"), ca));
        assert!(path_overlaps(
            "/mnt/pve/quickOS/lxc-persistent-data/103",
            ca
        ));
        assert!(!path_overlaps(
            "/mnt/pve/quickOS/lxc-persistent-data/101/ssl",
            ca
        ));
        assert!(!path_overlaps(
            "/mnt/pve/quickOS/lxc-persistent-data/103/ssl2",
            ca
        ));
    }
}
