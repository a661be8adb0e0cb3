//! The ingress model shared by the Traefik and Nginx renderers: which names the internal proxy
//! routes, to which static address, scheme and TLS server name, and which certificates the
//! proxy and the gateway present. One computation, two renderers: the gateway can only proxy
//! names the proxy routes, to the proxy's current address. No I/O.
//!
//! Address choice: a backend is reached on the guest's static NIC on a bridge the proxy also
//! sits on, else on any static NIC — never a DHCP NIC (the bash generator wrote `http://dhcp`).
//! Certificate paths: the manifest names host paths inside the guests' persistent-data mounts;
//! a path under a mount's `host_path` becomes `container_path` + the rest inside the guest.

use std::collections::BTreeSet;
use std::net::IpAddr;

use phoenix_model::model::{CertKind, Certificate, DesiredState, Guest, GuestId, Scheme};
use phoenix_model::values;

use super::WEBSECURE;

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error(
        "no internal proxy guest: give exactly one guest the `traefik` feature or set `roles.internal_proxy`"
    )]
    NoProxy,
    #[error("role `{role}` names guest {guest}, which is not defined")]
    MissingGuest { role: &'static str, guest: GuestId },
    #[error("the internal proxy (guest {guest}) has no static address, so nothing can reach it")]
    NoProxyAddress { guest: GuestId },
    #[error("Traefik entrypoint `{name}` is not defined, but the gateway proxies to it")]
    MissingEntrypoint { name: &'static str },
    #[error("{what} `{value}` cannot be written safely into a configuration file")]
    UnsafeValue { what: &'static str, value: String },
    #[error("YAML serialization failed: {0}")]
    Yaml(String),
}

/// A certificate and key as the guest sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPair {
    pub common_name: String,
    pub cert: String,
    pub key: String,
}

/// Where a route comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOrigin {
    /// A guest's `traefik_service`.
    Guest(GuestId),
    /// A stack service's `traefik_labels`.
    Stack {
        stack: String,
        environment: String,
        service: String,
    },
}

/// Where the proxy sends a routed name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The scheme the backend really speaks.
    pub scheme: Scheme,
    pub address: IpAddr,
    pub port: u16,
    /// The name the backend's certificate carries (TLS SNI and verification).
    pub server_name: String,
}

/// One name the proxy routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Router and service key in the dynamic configuration.
    pub id: String,
    /// Fully qualified, lower case.
    pub host: String,
    /// Defined entrypoints only.
    pub entrypoints: Vec<String>,
    pub backend: Backend,
    pub origin: RouteOrigin,
    /// Realised by the Swarm provider from the stack's labels, not by the file provider.
    pub via_swarm: bool,
}

/// The Swarm provider's endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmEndpoint {
    pub manager: IpAddr,
    pub client_cert: Option<TlsPair>,
}

/// Everything both ingress renderers need.
#[derive(Debug, Clone)]
pub struct Ingress {
    pub proxy: GuestId,
    /// The proxy's current mesh address (its static mesh NIC, else its first static NIC).
    pub proxy_address: IpAddr,
    pub routes: Vec<Route>,
    /// Server certificates the proxy presents, the default one first.
    pub proxy_certs: Vec<TlsPair>,
    /// DNS names covered by `proxy_certs` (SANs, wildcards kept).
    pub proxy_cert_names: Vec<phoenix_model::model::San>,
    pub swarm: Option<SwarmEndpoint>,
    /// What phoenix decided and why (skipped routes, default paths), for comments and the plan.
    pub notes: Vec<String>,
}

const TRAEFIK_CERT_DIR: &str = "/etc/traefik/certs";

/// Compute the ingress routes and certificates from the desired state.
pub fn ingress(d: &DesiredState) -> Result<Ingress, IngressError> {
    let proxy_id = d.roles.internal_proxy.ok_or(IngressError::NoProxy)?;
    let proxy = d.guest(proxy_id).ok_or(IngressError::MissingGuest {
        role: "internal_proxy",
        guest: proxy_id,
    })?;
    let proxy_address =
        preferred_address(d, proxy).ok_or(IngressError::NoProxyAddress { guest: proxy_id })?;
    let mut notes = Vec::new();
    let mut taken = BTreeSet::new();
    let mut routes = Vec::new();
    for g in d.guests.values().filter(|g| !g.is_template) {
        if let Some(r) = guest_route(d, proxy, g, &mut notes)? {
            if taken.insert(r.host.clone()) {
                routes.push(r);
            } else {
                notes.push(format!(
                    "guest {}: `{}` is already routed; the first guest wins",
                    g.id, r.host
                ));
            }
        }
    }
    let proxy_in_swarm = proxy.swarm.is_some();
    let manager = d
        .roles
        .swarm_managers
        .iter()
        .filter_map(|id| d.guest(*id))
        .find_map(|m| backend_address(proxy, m));
    for r in stack_routes(d, manager, proxy_in_swarm, &mut notes)? {
        if taken.insert(r.host.clone()) {
            routes.push(r);
        } else {
            notes.push(format!(
                "`{}` is routed to a guest already; the stack's route is not added",
                r.host
            ));
        }
    }
    dedupe_ids(&mut routes);

    let (proxy_certs, client) = proxy_certificates(d, proxy, &mut notes)?;
    let proxy_cert_names = d
        .certificates
        .iter()
        .filter(|c| c.guest == proxy_id && !is_client(c))
        .flat_map(|c| c.sans.iter().cloned())
        .collect();
    let swarm = match (manager, proxy_in_swarm) {
        (Some(m), true) => Some(SwarmEndpoint {
            manager: m,
            client_cert: client,
        }),
        (Some(_), false) => {
            notes.push(format!(
                "the proxy (guest {proxy_id}) is not a Swarm node and cannot reach the `{}` overlay: \
                 no Swarm provider; stack services are routed to the manager's published ports",
                super::SWARM_NETWORK
            ));
            None
        }
        (None, _) => None,
    };
    Ok(Ingress {
        proxy: proxy_id,
        proxy_address,
        routes,
        proxy_certs,
        proxy_cert_names,
        swarm,
        notes,
    })
}

/// The guest's static mesh address, else its first static address.
pub fn preferred_address(d: &DesiredState, g: &Guest) -> Option<IpAddr> {
    d.mesh()
        .and_then(|m| g.static_on(&m.name))
        .and_then(|n| n.address())
        .or_else(|| g.addresses().next())
}

/// The address the proxy uses for `g`: a static NIC on one of the proxy's bridges, else any
/// static NIC. DHCP NICs are never used.
pub fn backend_address(proxy: &Guest, g: &Guest) -> Option<IpAddr> {
    proxy
        .nics
        .iter()
        .find_map(|p| g.static_on(&p.bridge).and_then(|n| n.address()))
        .or_else(|| g.addresses().next())
}

fn guest_route(
    d: &DesiredState,
    proxy: &Guest,
    g: &Guest,
    notes: &mut Vec<String>,
) -> Result<Option<Route>, IngressError> {
    let Some(ts) = &g.traefik_service else {
        return Ok(None);
    };
    let host = safe_host(&format!("{}.{}", ts.name, d.domain))?;
    let Some(address) = backend_address(proxy, g) else {
        notes.push(format!(
            "guest {}: `{host}` is not routed: the guest has no static address (DHCP only)",
            g.id
        ));
        return Ok(None);
    };
    let entrypoints = known_entrypoints(d, &ts.entrypoints, &host, notes);
    if entrypoints.is_empty() {
        return Ok(None);
    }
    let server_name = if d.roles.ca == Some(g.id) {
        safe_host(&d.step_ca.dns_name)?
    } else {
        backend_server_name(d, g, &host)?
    };
    Ok(Some(Route {
        id: route_id(&ts.name),
        host,
        entrypoints,
        backend: Backend {
            scheme: ts.scheme,
            address,
            port: ts.port,
            server_name,
        },
        origin: RouteOrigin::Guest(g.id),
        via_swarm: false,
    }))
}

/// The backend's DNS name: the routed name if the guest's certificate covers it, else the
/// guest's own `<hostname>.<domain>` if covered, else the first DNS SAN of its certificate,
/// else the routed name.
fn backend_server_name(d: &DesiredState, g: &Guest, host: &str) -> Result<String, IngressError> {
    let own = format!("{}.{}", g.name.to_ascii_lowercase(), d.domain);
    let certs: Vec<&Certificate> = d
        .certificates
        .iter()
        .filter(|c| c.guest == g.id && !is_client(c))
        .collect();
    let covered = |n: &str| {
        certs
            .iter()
            .any(|c| c.sans.iter().any(|s| s.covers_name(n)))
    };
    let pick = if covered(host) {
        host.to_string()
    } else if covered(&own) {
        own
    } else {
        certs
            .iter()
            .flat_map(|c| c.sans.iter())
            .find_map(|s| match s {
                phoenix_model::model::San::Dns(n) if !n.starts_with("*.") => Some(n.clone()),
                _ => None,
            })
            .unwrap_or_else(|| host.to_string())
    };
    safe_host(&pick)
}

fn known_entrypoints(
    d: &DesiredState,
    wanted: &[String],
    host: &str,
    notes: &mut Vec<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for e in wanted {
        if e == super::API_ENTRYPOINT || !d.traefik.entrypoints.contains_key(e) {
            notes.push(format!(
                "`{host}`: entrypoint `{e}` is not served by the proxy; dropped"
            ));
        } else if !out.contains(e) {
            out.push(e.clone());
        }
    }
    if out.is_empty() {
        notes.push(format!("`{host}` is not routed: no usable entrypoint"));
    }
    out
}

/// Routes for stack services with Traefik labels. When the proxy is a Swarm node the labels
/// drive the Swarm provider (`via_swarm`); otherwise the route goes to the manager's node
/// address on the port the compose file publishes for the label's target port.
fn stack_routes(
    d: &DesiredState,
    manager: Option<IpAddr>,
    via_swarm: bool,
    notes: &mut Vec<String>,
) -> Result<Vec<Route>, IngressError> {
    let mut out = Vec::new();
    for (stack_name, stack) in &d.stacks {
        for (env, e) in &stack.environments {
            for (svc, labels) in &e.traefik_labels {
                let parsed = Labels::parse(labels);
                if !parsed.enabled {
                    continue;
                }
                for (router, rule, eps, service) in &parsed.routers {
                    let Some(host) = single_host(rule) else {
                        notes.push(format!(
                            "stack `{stack_name}` router `{router}`: rule `{}` is not a single Host(); not routed by file",
                            rule.escape_debug()
                        ));
                        continue;
                    };
                    let host = safe_host(&host.to_ascii_lowercase())?;
                    let Some((port, scheme)) = parsed.service(service.as_deref(), router) else {
                        notes.push(format!(
                            "stack `{stack_name}` router `{router}`: no service port label; not routed"
                        ));
                        continue;
                    };
                    let eps = if eps.is_empty() {
                        vec![WEBSECURE.to_string()]
                    } else {
                        eps.clone()
                    };
                    let entrypoints = known_entrypoints(d, &eps, &host, notes);
                    let published = stack
                        .compose
                        .as_ref()
                        .and_then(|c| phoenix_model::model::published_port(c, svc, port));
                    let (address, port) = match (manager, published, via_swarm) {
                        (Some(m), _, true) => (m, port),
                        (Some(m), Some(p), false) => (m, p),
                        _ => {
                            notes.push(format!(
                                "stack `{stack_name}` service `{svc}`: `{host}` is not routed: \
                                 no Swarm manager or port {port} is not published"
                            ));
                            continue;
                        }
                    };
                    if entrypoints.is_empty() {
                        continue;
                    }
                    out.push(Route {
                        id: route_id(&format!("{stack_name}-{env}-{router}")),
                        host: host.clone(),
                        entrypoints,
                        backend: Backend {
                            scheme,
                            address,
                            port,
                            server_name: host,
                        },
                        origin: RouteOrigin::Stack {
                            stack: stack_name.clone(),
                            environment: env.clone(),
                            service: svc.clone(),
                        },
                        via_swarm,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The subset of Traefik's label language phoenix reads.
#[derive(Default)]
struct Labels {
    enabled: bool,
    /// router → (rule, entrypoints, service)
    routers: Vec<(String, String, Vec<String>, Option<String>)>,
    /// service → (port, scheme)
    services: Vec<(String, Option<u16>, Scheme)>,
}

impl Labels {
    fn parse(labels: &[String]) -> Labels {
        let mut l = Labels::default();
        for (k, v) in labels.iter().filter_map(|s| s.split_once('=')) {
            let k = k.trim();
            let v = v.trim();
            if k == "traefik.enable" {
                l.enabled = v.eq_ignore_ascii_case("true");
            } else if let Some(rest) = k.strip_prefix("traefik.http.routers.") {
                let Some((name, field)) = rest.split_once('.') else {
                    continue;
                };
                let i = match l.routers.iter().position(|r| r.0 == name) {
                    Some(i) => i,
                    None => {
                        l.routers
                            .push((name.to_string(), String::new(), Vec::new(), None));
                        l.routers.len() - 1
                    }
                };
                if let Some(r) = l.routers.get_mut(i) {
                    match field.to_ascii_lowercase().as_str() {
                        "rule" => r.1 = v.to_string(),
                        "entrypoints" => r.2 = v.split(',').map(|e| e.trim().to_string()).collect(),
                        "service" => r.3 = Some(v.to_string()),
                        _ => {}
                    }
                }
            } else if let Some(rest) = k.strip_prefix("traefik.http.services.") {
                let Some((name, field)) = rest.split_once('.') else {
                    continue;
                };
                let i = match l.services.iter().position(|s| s.0 == name) {
                    Some(i) => i,
                    None => {
                        l.services.push((name.to_string(), None, Scheme::Http));
                        l.services.len() - 1
                    }
                };
                if let Some(s) = l.services.get_mut(i) {
                    match field.to_ascii_lowercase().as_str() {
                        "loadbalancer.server.port" => s.1 = v.parse().ok(),
                        "loadbalancer.server.scheme" if v.eq_ignore_ascii_case("https") => {
                            s.2 = Scheme::Https
                        }
                        _ => {}
                    }
                }
            }
        }
        l
    }

    /// The router's service: named, else the only one, else the router's own name.
    fn service(&self, named: Option<&str>, router: &str) -> Option<(u16, Scheme)> {
        let s = match named {
            Some(n) => self.services.iter().find(|s| s.0 == n),
            None if self.services.len() == 1 => self.services.first(),
            None => self.services.iter().find(|s| s.0 == router),
        }?;
        Some((s.1?, s.2))
    }
}

/// `Host(`a`)` → `a`; anything more complex is not read.
fn single_host(rule: &str) -> Option<String> {
    let inner = rule.trim().strip_prefix("Host(")?.strip_suffix(')')?.trim();
    let name = inner
        .strip_prefix('`')
        .and_then(|s| s.strip_suffix('`'))
        .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))?;
    (!name.contains(['`', '"', ','])).then(|| name.to_string())
}

/// The proxy's server certificates (default first: the one for the proxy's own names) and its
/// client certificate for the Docker TLS endpoint.
fn proxy_certificates(
    d: &DesiredState,
    proxy: &Guest,
    notes: &mut Vec<String>,
) -> Result<(Vec<TlsPair>, Option<TlsPair>), IngressError> {
    let own = [
        format!("traefik.{}", d.domain),
        format!("{}.{}", proxy.name.to_ascii_lowercase(), d.domain),
    ];
    let mut server: Vec<(bool, TlsPair)> = Vec::new();
    let mut client = None;
    for c in d.certificates.iter().filter(|c| c.guest == proxy.id) {
        let pair = guest_tls_pair(proxy, c, TRAEFIK_CERT_DIR, notes)?;
        if is_client(c) {
            if client.is_none() {
                client = Some(pair);
            }
        } else {
            let is_own = own.iter().any(|n| c.sans.iter().any(|s| s.covers_name(n)));
            server.push((is_own, pair));
        }
    }
    // Stable: own-name certificates first, manifest order otherwise.
    server.sort_by_key(|(own, _)| !*own);
    if server.is_empty() {
        notes.push(format!(
            "the manifest has no server certificate for the proxy (guest {}): Traefik would serve its self-signed default",
            proxy.id
        ));
    }
    Ok((server.into_iter().map(|(_, p)| p).collect(), client))
}

/// A client certificate: `cert_type: client`, or — since the bash manifest left the type out for
/// `traefik-client` — a common name whose first label ends in `-client` or is `client`.
pub fn is_client(c: &Certificate) -> bool {
    c.kind == CertKind::Client || {
        let first = c.common_name.split('.').next().unwrap_or_default();
        first == "client" || first.ends_with("-client")
    }
}

/// The certificate's paths as the guest sees them. A host path under one of the guest's mount
/// points maps through the mount (longest `host_path` wins); otherwise phoenix installs the
/// files at `<default_dir>/<common name>.crt|.key` and says so in `notes`.
pub fn guest_tls_pair(
    g: &Guest,
    c: &Certificate,
    default_dir: &str,
    notes: &mut Vec<String>,
) -> Result<TlsPair, IngressError> {
    let file_stem: String = c
        .common_name
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_') {
                ch
            } else {
                '_'
            }
        })
        .collect();
    let map = |host: &str, ext: &str| match in_guest_path(g, host) {
        Some(p) => (p, false),
        None => (format!("{default_dir}/{file_stem}.{ext}"), true),
    };
    let (cert, dc) = map(&c.cert_path, "crt");
    let (key, dk) = map(&c.key_path, "key");
    if dc || dk {
        notes.push(format!(
            "certificate `{}`: not under a mount point of guest {}; phoenix installs it at {cert} and {key}",
            c.common_name, g.id
        ));
    }
    Ok(TlsPair {
        common_name: c.common_name.clone(),
        cert: safe_path(&cert)?,
        key: safe_path(&key)?,
    })
}

/// Map a hypervisor path into the guest through its mount points (component-wise prefix).
pub fn in_guest_path(g: &Guest, host_path: &str) -> Option<String> {
    g.mount_points
        .iter()
        .filter_map(|m| {
            let base = m.host_path.trim_end_matches('/');
            let rest = host_path.strip_prefix(base)?;
            (rest.is_empty() || rest.starts_with('/')).then_some((base.len(), m, rest))
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, m, rest)| format!("{}{rest}", m.container_path.trim_end_matches('/')))
}

/// A lower-case hostname, or an error: names go into `Host(`…`)` rules and `server_name`.
pub fn safe_host(s: &str) -> Result<String, IngressError> {
    let s = s.to_ascii_lowercase();
    match values::hostname(&s) {
        Ok(()) => Ok(s),
        Err(_) => Err(IngressError::UnsafeValue {
            what: "host name",
            value: s.escape_debug().to_string(),
        }),
    }
}

/// An absolute path made only of characters that need no quoting in nginx or YAML
/// (no whitespace, `;`, `{`, `}`, `$`, `#`, quotes or `..`).
pub fn safe_path(s: &str) -> Result<String, IngressError> {
    let ok = values::abs_path(s).is_ok()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'-' | b'_' | b'+' | b'@' | b':')
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err(IngressError::UnsafeValue {
            what: "path",
            value: s.escape_debug().to_string(),
        })
    }
}

/// `addr:port`, with brackets for IPv6.
pub fn host_port(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// A router/service key: letters, digits and `-` only (no `@`, which Traefik reserves).
fn route_id(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn dedupe_ids(routes: &mut [Route]) {
    let mut seen = BTreeSet::new();
    for r in routes.iter_mut() {
        let base = r.id.clone();
        let mut n = 2;
        while !seen.insert(r.id.clone()) {
            r.id = format!("{base}-{n}");
            n += 1;
        }
    }
}

/// Routes the public gateway may proxy: reachable on `websecure` (where the gateway connects),
/// guest services except the gateway's own and the CA's (the root of trust has no public
/// access), and stack routes for the stacks' public hostnames (`nginx_proxy.hostname`).
/// Public hostnames no route serves are returned too: proxying them would only produce 404s.
pub fn public_routes<'a>(d: &DesiredState, ing: &'a Ingress) -> (Vec<&'a Route>, Vec<String>) {
    let stack_names: BTreeSet<String> = d
        .stacks
        .values()
        .filter_map(|s| s.public_hostname.as_ref())
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let routes: Vec<&Route> = ing
        .routes
        .iter()
        .filter(|r| r.entrypoints.iter().any(|e| e == WEBSECURE))
        .filter(|r| match &r.origin {
            RouteOrigin::Guest(id) => Some(*id) != d.roles.gateway && Some(*id) != d.roles.ca,
            RouteOrigin::Stack { .. } => stack_names.contains(&r.host),
        })
        .collect();
    let unserved = stack_names
        .into_iter()
        .filter(|h| !routes.iter().any(|r| &r.host == h))
        .collect();
    (routes, unserved)
}
