//! The public Nginx gateway: `/etc/nginx/conf.d/phoenix-gateway.conf` for the gateway guest.
//! No I/O.
//!
//! The gateway proxies exactly the public names the internal proxy routes
//! ([`ingress::public_routes`]), and every server block sends them to one upstream: the proxy's
//! current mesh address and its `websecure` port, taken from the model — never a name or an old
//! address. The `Host` header is passed through as `$host`. Those two are the classic causes of
//! the seed's 404 (Nginx → Traefik → Portainer); both are fixed by construction here.
//!
//! Settings relied on (<https://nginx.org/en/docs/http/ngx_http_proxy_module.html>):
//! `proxy_ssl_server_name on` + `proxy_ssl_name` for SNI, `proxy_ssl_verify on` against the
//! internal root with `proxy_ssl_verify_depth 2` (leaf ← intermediate ← root), and
//! `proxy_ssl_certificate`/`_key` when the manifest has a client certificate for the gateway
//! (the proxy's `mesh` entrypoint requires one). Server TLS:
//! <https://nginx.org/en/docs/http/ngx_http_ssl_module.html>.
//!
//! `conf.d/*.conf` is included by Debian's stock `nginx.conf` inside `http {}`, so no
//! `sites-enabled` symlink has to be managed. Names and paths are validated again before they
//! are written ([`ingress::safe_host`], [`ingress::safe_path`]): nothing from the
//! configuration can open a block or a new directive.

use std::fmt::Write;

use phoenix_model::model::{CertKind, DesiredState, Guest, San};

use crate::traefik::ingress::{self, Ingress, IngressError, TlsPair};
use crate::traefik::{ROOT_CA_IN_GUEST, WEBSECURE};
use crate::{FileTarget, RenderedFile};

pub const GATEWAY_CONFIG_PATH: &str = "/etc/nginx/conf.d/phoenix-gateway.conf";
/// Where phoenix installs the gateway's certificates when the manifest path is not under a
/// mount point of the gateway.
pub const NGINX_CERT_DIR: &str = "/etc/nginx/ssl";
/// nginx's default `proxy_ssl_verify_depth` is 1; a Step-CA leaf sits under an intermediate.
pub const VERIFY_DEPTH: u8 = 2;

const HEADER: &str = "# Managed by phoenix: edits are overwritten by the next `phoenix sync`.\n";

/// The upstream every server block proxies to: the proxy's mesh address and `websecure` port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub url: String,
}

/// The gateway file, or `None` when no guest has the gateway role.
pub fn gateway(d: &DesiredState) -> Result<Option<RenderedFile>, IngressError> {
    let Some(gw_id) = d.roles.gateway else {
        return Ok(None);
    };
    let gw = d.guest(gw_id).ok_or(IngressError::MissingGuest {
        role: "gateway",
        guest: gw_id,
    })?;
    let ing = ingress::ingress(d)?;
    Ok(Some(RenderedFile {
        target: FileTarget::Guest(gw_id),
        path: GATEWAY_CONFIG_PATH.into(),
        content: config(d, gw, &ing)?,
        owner: "root".into(),
        group: "root".into(),
        mode: 0o644,
    }))
}

/// `https://<proxy mesh address>:<websecure port>`.
pub fn upstream(d: &DesiredState, ing: &Ingress) -> Result<Upstream, IngressError> {
    let port = d
        .traefik
        .entrypoints
        .get(WEBSECURE)
        .copied()
        .ok_or(IngressError::MissingEntrypoint { name: WEBSECURE })?;
    Ok(Upstream {
        url: format!("https://{}", ingress::host_port(ing.proxy_address, port)),
    })
}

/// The gateway's certificates: server certificates with their SANs, and the client certificate.
struct GatewayTls {
    server: Vec<(Vec<San>, TlsPair)>,
    client: Option<TlsPair>,
}

fn gateway_tls(
    d: &DesiredState,
    gw: &Guest,
    notes: &mut Vec<String>,
) -> Result<GatewayTls, IngressError> {
    let mut out = GatewayTls {
        server: Vec::new(),
        client: None,
    };
    for c in d.certificates.iter().filter(|c| c.guest == gw.id) {
        let pair = ingress::guest_tls_pair(gw, c, NGINX_CERT_DIR, notes)?;
        if c.kind == CertKind::Client || ingress::is_client(c) {
            out.client.get_or_insert(pair);
        } else {
            out.server.push((c.sans.clone(), pair));
        }
    }
    Ok(out)
}

/// The whole file.
pub fn config(d: &DesiredState, gw: &Guest, ing: &Ingress) -> Result<String, IngressError> {
    let up = upstream(d, ing)?;
    let mut notes = Vec::new();
    let tls = gateway_tls(d, gw, &mut notes)?;
    let (routes, unserved) = ingress::public_routes(d, ing);
    for h in unserved {
        notes.push(format!(
            "`{h}` is a stack's public hostname but no proxy route serves it on `{WEBSECURE}`: not proxied"
        ));
    }
    let proxy_name = proxy_tls_name(ing)?;
    let mut s = String::from(HEADER);
    let _ = writeln!(
        s,
        "# Gateway guest {} → internal proxy guest {} at {} (its mesh address). Host is passed\n\
         # through unchanged; the proxy's certificate is verified against the internal root.",
        gw.id, ing.proxy, up.url
    );
    for n in &notes {
        let one: String = n
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let _ = writeln!(s, "# note: {one}");
    }
    s.push_str(
        "\n# WebSocket upgrades (Portainer's console) pass through.\n\
         map $http_upgrade $phoenix_connection_upgrade {\n    default upgrade;\n    '' close;\n}\n",
    );
    for r in routes {
        let host = ingress::safe_host(&r.host)?;
        let cert = server_cert_for(&tls, &host, &mut s);
        server_blocks(&mut s, &host, &cert, &tls, &up, ing, proxy_name.as_deref())?;
    }
    Ok(s)
}

/// The name nginx verifies the proxy's certificate against when the proxy's certificates do
/// not cover the routed name: the proxy's own DNS name. Traefik picks the certificate by SNI
/// and routes by the Host header, so this works as long as both names share the default TLS
/// options (they do: phoenix sets options only on `mesh`).
fn proxy_tls_name(ing: &Ingress) -> Result<Option<String>, IngressError> {
    let name = ing.proxy_cert_names.iter().find_map(|s| match s {
        San::Dns(n) if !n.starts_with("*.") => Some(n.clone()),
        _ => None,
    });
    name.map(|n| ingress::safe_host(&n)).transpose()
}

/// The first server certificate covering `host`; else the first one (with a comment).
fn server_cert_for(tls: &GatewayTls, host: &str, s: &mut String) -> TlsPair {
    if let Some((_, p)) = tls
        .server
        .iter()
        .find(|(sans, _)| sans.iter().any(|x| x.covers_name(host)))
    {
        return p.clone();
    }
    if let Some((_, p)) = tls.server.first() {
        let _ = writeln!(
            s,
            "\n# note: no gateway certificate in the manifest covers {host}; using `{}`",
            p.common_name
        );
        return p.clone();
    }
    let _ = writeln!(
        s,
        "\n# note: the manifest has no server certificate for the gateway; phoenix installs one at the paths below"
    );
    TlsPair {
        common_name: host.to_string(),
        cert: format!("{NGINX_CERT_DIR}/{host}.crt"),
        key: format!("{NGINX_CERT_DIR}/{host}.key"),
    }
}

fn server_blocks(
    s: &mut String,
    host: &str,
    cert: &TlsPair,
    tls: &GatewayTls,
    up: &Upstream,
    ing: &Ingress,
    proxy_name: Option<&str>,
) -> Result<(), IngressError> {
    let cert_file = ingress::safe_path(&cert.cert)?;
    let key_file = ingress::safe_path(&cert.key)?;
    let covered = ing.proxy_cert_names.iter().any(|n| n.covers_name(host));
    let _ = write!(
        s,
        "\nserver {{\n    listen 80;\n    server_name {host};\n    return 301 https://$host$request_uri;\n}}\n\n\
         server {{\n    listen 443 ssl;\n    server_name {host};\n\
         \x20   ssl_certificate {cert_file};\n    ssl_certificate_key {key_file};\n\
         \x20   ssl_protocols TLSv1.2 TLSv1.3;\n\n    location / {{\n\
         \x20       proxy_pass {};\n        proxy_http_version 1.1;\n\
         \x20       proxy_set_header Host $host;\n\
         \x20       proxy_set_header X-Real-IP $remote_addr;\n\
         \x20       proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
         \x20       proxy_set_header X-Forwarded-Proto $scheme;\n\
         \x20       proxy_set_header X-Forwarded-Host $host;\n\
         \x20       proxy_set_header Upgrade $http_upgrade;\n\
         \x20       proxy_set_header Connection $phoenix_connection_upgrade;\n\
         \x20       proxy_ssl_server_name on;\n",
        up.url
    );
    match (covered, proxy_name) {
        (false, Some(n)) => {
            let _ = write!(
                s,
                "        # The proxy's certificate does not cover {host}: verify the proxy by its own name.\n\
                 \x20       proxy_ssl_name {n};\n"
            );
        }
        _ => s.push_str("        proxy_ssl_name $host;\n"),
    }
    let _ = write!(
        s,
        "        proxy_ssl_verify on;\n        proxy_ssl_trusted_certificate {ROOT_CA_IN_GUEST};\n\
         \x20       proxy_ssl_verify_depth {VERIFY_DEPTH};\n        proxy_ssl_protocols TLSv1.2 TLSv1.3;\n"
    );
    if let Some(c) = &tls.client {
        let _ = write!(
            s,
            "        proxy_ssl_certificate {};\n        proxy_ssl_certificate_key {};\n",
            ingress::safe_path(&c.cert)?,
            ingress::safe_path(&c.key)?
        );
    }
    s.push_str("    }\n}\n");
    Ok(())
}
