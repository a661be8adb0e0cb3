//! Traefik, the internal proxy: the static configuration (`/etc/traefik/traefik.yml`) and the
//! dynamic file-provider configuration (`/etc/traefik/dynamic/phoenix.yml`) for the proxy guest.
//! No I/O: the routes come from [`ingress`](crate::traefik::ingress), which the Nginx renderer
//! shares, so the gateway proxies exactly the names this file routes.
//!
//! What the files say, and the Traefik settings they rely on:
//! - entrypoints from the model: `web` redirects to `websecure`
//!   (<https://doc.traefik.io/traefik/routing/entrypoints/#redirection>), `mesh` requires a client
//!   certificate from the internal root through the `mesh` TLS option
//!   (<https://doc.traefik.io/traefik/https/tls/#client-authentication-mtls>); the `traefik`
//!   entrypoint exists only when the API is asked for, and the API is never `insecure`
//!   (<https://doc.traefik.io/traefik/operations/api/>);
//! - `global.checkNewVersion` and `sendAnonymousUsage` off; logs to stdout;
//! - a file provider watching the dynamic directory
//!   (<https://doc.traefik.io/traefik/providers/file/>), and the Swarm provider over TCP+TLS to
//!   the manager's Docker port only when the proxy is itself a Swarm node and so can reach the
//!   `traefik-public` overlay (<https://doc.traefik.io/traefik/providers/swarm/>);
//! - one router per route with `Host(`name`)`, TLS from the certificates in the manifest
//!   (<https://doc.traefik.io/traefik/https/tls/#certificates-definition>), services with the
//!   scheme the backend really speaks and its static address, and for HTTPS backends a
//!   `serversTransport` with `rootCAs` = the internal root and `serverName` = the backend's DNS
//!   name (<https://doc.traefik.io/traefik/routing/services/#serverstransport_1>) — never
//!   `insecureSkipVerify`.
//!
//! Values are written through a YAML serializer, never spliced into text; names and paths are
//! checked again here (see [`ingress::safe_host`], [`ingress::safe_path`]) so that nothing from
//! the configuration can change the structure of the files.

pub mod ingress;

use serde_json::{Map, Value, json};

use phoenix_model::model::{DesiredState, Scheme};

pub use ingress::{Backend, Ingress, IngressError, Route, RouteOrigin, TlsPair};

use crate::{FileTarget, RenderedFile};

pub const STATIC_CONFIG_PATH: &str = "/etc/traefik/traefik.yml";
pub const DYNAMIC_DIR: &str = "/etc/traefik/dynamic";
pub const DYNAMIC_CONFIG_PATH: &str = "/etc/traefik/dynamic/phoenix.yml";
/// Where the internal root certificate sits in every guest with the `trusted_ca` feature
/// (Debian's local trust anchors, picked up by `update-ca-certificates`).
pub const ROOT_CA_IN_GUEST: &str = "/usr/local/share/ca-certificates/phoenix-root-ca.crt";
/// The overlay network Traefik uses to reach Swarm services.
pub const SWARM_NETWORK: &str = "traefik-public";
/// Docker's TLS port on Swarm nodes.
pub const DOCKER_TLS_PORT: u16 = 2376;
pub const WEB: &str = "web";
pub const WEBSECURE: &str = "websecure";
pub const MESH: &str = "mesh";
/// The entrypoint Traefik's API uses when enabled.
pub const API_ENTRYPOINT: &str = "traefik";
/// Name of the TLS option that requires a client certificate from the internal root.
pub const MESH_TLS_OPTION: &str = "mesh";

const HEADER: &str = "# Managed by phoenix: edits are overwritten by the next `phoenix sync`.\n";

/// Whether Traefik's API and dashboard are served. Off unless asked for; when on, it is served
/// on the `traefik` entrypoint behind the mesh mTLS option, never `insecure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Api {
    #[default]
    Off,
    /// Dashboard at `traefik.<domain>` on the `traefik` entrypoint, client certificate required.
    Protected,
}

/// Both Traefik files for the proxy guest, static first.
pub fn files(d: &DesiredState, api: Api) -> Result<Vec<RenderedFile>, IngressError> {
    let ing = ingress::ingress(d)?;
    let target = FileTarget::Guest(ing.proxy);
    let notes = notes_comment(&ing.notes);
    let file = |path: &str, body: String| RenderedFile {
        target,
        path: path.into(),
        content: format!("{HEADER}{notes}{body}"),
        owner: "root".into(),
        group: "root".into(),
        mode: 0o644,
    };
    Ok(vec![
        file(STATIC_CONFIG_PATH, to_yaml(&static_config(d, &ing, api))?),
        file(DYNAMIC_CONFIG_PATH, to_yaml(&dynamic_config(d, &ing, api))?),
    ])
}

fn notes_comment(notes: &[String]) -> String {
    let mut s = String::new();
    for n in notes {
        // Notes are phoenix's own sentences; still, keep each one on its comment line.
        let one_line: String = n
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        s.push_str("# note: ");
        s.push_str(&one_line);
        s.push('\n');
    }
    s
}

pub fn to_yaml(v: &Value) -> Result<String, IngressError> {
    serde_saphyr::to_string(v).map_err(|e| IngressError::Yaml(e.to_string()))
}

/// The static configuration as a value (the file is its YAML form).
pub fn static_config(d: &DesiredState, ing: &Ingress, api: Api) -> Value {
    let mut entry_points = Map::new();
    for (name, port) in &d.traefik.entrypoints {
        if name == API_ENTRYPOINT && api == Api::Off {
            continue;
        }
        let mut http = Map::new();
        if name == WEB && d.traefik.entrypoints.contains_key(WEBSECURE) {
            http.insert(
                "redirections".into(),
                json!({"entryPoint": {"to": WEBSECURE, "scheme": "https", "permanent": true}}),
            );
        } else if name == MESH {
            // Applies to routers without their own TLS section (Swarm labels `tls=true`);
            // phoenix's own mesh routers name the option explicitly.
            http.insert(
                "tls".into(),
                json!({"options": format!("{MESH_TLS_OPTION}@file")}),
            );
        } else if name != WEB {
            http.insert("tls".into(), json!({}));
        }
        // Headers whose names alias a managed header (X_Forwarded_For) are dropped before
        // routing: <https://doc.traefik.io/traefik/security/header-aliases/>.
        http.insert("aliasHeadersStrategy".into(), json!("delete"));
        let ep = json!({"address": format!(":{port}"), "http": http});
        entry_points.insert(name.clone(), ep);
    }
    let mut providers = Map::new();
    providers.insert(
        "file".into(),
        json!({"directory": DYNAMIC_DIR, "watch": true}),
    );
    if let Some(sw) = &ing.swarm {
        let mut tls = Map::new();
        tls.insert("ca".into(), json!(ROOT_CA_IN_GUEST));
        if let Some(c) = &sw.client_cert {
            tls.insert("cert".into(), json!(c.cert));
            tls.insert("key".into(), json!(c.key));
        }
        providers.insert(
            "swarm".into(),
            json!({
                "endpoint": format!("tcp://{}", ingress::host_port(sw.manager, DOCKER_TLS_PORT)),
                "tls": tls,
                "exposedByDefault": false,
                "network": SWARM_NETWORK,
            }),
        );
    }
    let mut root = Map::new();
    root.insert(
        "global".into(),
        json!({"checkNewVersion": false, "sendAnonymousUsage": false}),
    );
    root.insert("log".into(), json!({"level": "INFO", "noColor": true}));
    root.insert("accessLog".into(), json!({}));
    root.insert("entryPoints".into(), Value::Object(entry_points));
    root.insert("providers".into(), Value::Object(providers));
    if api == Api::Protected {
        root.insert("api".into(), json!({"dashboard": true, "insecure": false}));
    }
    Value::Object(root)
}

/// The dynamic (file provider) configuration as a value.
pub fn dynamic_config(d: &DesiredState, ing: &Ingress, api: Api) -> Value {
    let mut routers = Map::new();
    let mut services = Map::new();
    let mut transports = Map::new();
    for r in ing.routes.iter().filter(|r| !r.via_swarm) {
        let rule = format!("Host(`{}`)", r.host);
        let (mesh, other): (Vec<&String>, Vec<&String>) =
            r.entrypoints.iter().partition(|e| e.as_str() == MESH);
        if !other.is_empty() {
            routers.insert(
                r.id.clone(),
                json!({"rule": rule, "entryPoints": other, "service": r.id, "tls": {}}),
            );
        }
        if !mesh.is_empty() {
            routers.insert(
                format!("{}-mesh", r.id),
                json!({"rule": rule, "entryPoints": mesh, "service": r.id,
                       "tls": {"options": MESH_TLS_OPTION}}),
            );
        }
        let b = &r.backend;
        let url = format!("{}://{}", b.scheme, ingress::host_port(b.address, b.port));
        let mut lb = Map::new();
        lb.insert("servers".into(), json!([{ "url": url }]));
        lb.insert("passHostHeader".into(), json!(true));
        if b.scheme == Scheme::Https {
            lb.insert("serversTransport".into(), json!(r.id));
            transports.insert(
                r.id.clone(),
                json!({"serverName": b.server_name, "rootCAs": [ROOT_CA_IN_GUEST]}),
            );
        }
        services.insert(r.id.clone(), json!({ "loadBalancer": lb }));
    }
    if api == Api::Protected && d.traefik.entrypoints.contains_key(API_ENTRYPOINT) {
        routers.insert(
            "phoenix-dashboard".into(),
            json!({"rule": format!("Host(`traefik.{}`)", d.domain),
                   "entryPoints": [API_ENTRYPOINT], "service": "api@internal",
                   "tls": {"options": MESH_TLS_OPTION}}),
        );
    }
    let mut http = Map::new();
    http.insert("routers".into(), Value::Object(routers));
    http.insert("services".into(), Value::Object(services));
    if !transports.is_empty() {
        http.insert("serversTransports".into(), Value::Object(transports));
    }
    let mut root = Map::new();
    root.insert("http".into(), Value::Object(http));
    root.insert("tls".into(), tls_section(ing));
    Value::Object(root)
}

fn tls_section(ing: &Ingress) -> Value {
    let certs: Vec<Value> = ing
        .proxy_certs
        .iter()
        .map(|c| json!({"certFile": c.cert, "keyFile": c.key}))
        .collect();
    let mut tls = Map::new();
    tls.insert("certificates".into(), Value::Array(certs));
    tls.insert(
        "options".into(),
        json!({
            "default": {"minVersion": "VersionTLS12"},
            MESH_TLS_OPTION: {"minVersion": "VersionTLS12", "clientAuth": {
                "caFiles": [ROOT_CA_IN_GUEST],
                "clientAuthType": "RequireAndVerifyClientCert"}},
        }),
    );
    if let Some(c) = ing.proxy_certs.first() {
        // Without it an unknown SNI gets Traefik's self-signed certificate, which nothing trusts.
        tls.insert(
            "stores".into(),
            json!({"default": {"defaultCertificate": {"certFile": c.cert, "keyFile": c.key}}}),
        );
    }
    Value::Object(tls)
}
