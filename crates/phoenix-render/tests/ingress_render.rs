//! Golden tests for the Traefik and Nginx renderers on the real fixtures, plus the invariants
//! that make the seed's 404 (Nginx → Traefik → Portainer) impossible by construction.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ingress_support;

use ingress_support as support;
use phoenix_model::DesiredState;
use phoenix_model::model::GuestId;
use phoenix_render::nginx;
use phoenix_render::traefik::{self, Api, IngressError, RouteOrigin, ingress};

fn render(d: &DesiredState) -> (String, String, String) {
    let files = traefik::files(d, Api::Off).unwrap();
    assert_eq!(files[0].path, traefik::STATIC_CONFIG_PATH);
    assert_eq!(files[1].path, traefik::DYNAMIC_CONFIG_PATH);
    let gw = nginx::gateway(d).unwrap().expect("a gateway file");
    (
        files[0].content.clone(),
        files[1].content.clone(),
        gw.content,
    )
}

fn directive_values<'a>(conf: &'a str, directive: &str) -> Vec<&'a str> {
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix(directive)?.strip_prefix(' '))
        .map(|v| v.trim_end_matches(';'))
        .collect()
}

#[test]
fn rootesting_golden() {
    let (stat, dynamic, gw) = render(&support::rootesting());
    insta::assert_snapshot!("rootesting_traefik_static", stat);
    insta::assert_snapshot!("rootesting_traefik_dynamic", dynamic);
    insta::assert_snapshot!("rootesting_nginx_gateway", gw);
}

#[test]
fn homelab_golden() {
    let dir = support::homelab_dir();
    if !dir.join("phoenix_hypervisor_config.json").is_file() {
        eprintln!("note: examples/homelab not present; skipping");
        return;
    }
    let (stat, dynamic, gw) = render(&support::load(&dir));
    insta::assert_snapshot!("homelab_traefik_static", stat);
    insta::assert_snapshot!("homelab_traefik_dynamic", dynamic);
    insta::assert_snapshot!("homelab_nginx_gateway", gw);
}

/// The seed's 404: the upstream must be the proxy's current mesh address, and Host untouched.
#[test]
fn rootesting_upstream_is_the_proxy_mesh_address_and_host_is_passed_through() {
    let d = support::rootesting();
    let (_, _, gw) = render(&d);
    let ing = ingress::ingress(&d).unwrap();
    assert_eq!(ing.proxy_address.to_string(), "172.16.100.12");
    let passes = directive_values(&gw, "proxy_pass");
    assert!(!passes.is_empty());
    assert!(
        passes.iter().all(|p| *p == "https://172.16.100.12:443"),
        "{passes:?}"
    );
    assert_eq!(
        nginx::upstream(&d, &ing).unwrap().url,
        "https://172.16.100.12:443"
    );
    let host_headers: Vec<&str> = directive_values(&gw, "proxy_set_header")
        .into_iter()
        .filter(|v| v.starts_with("Host "))
        .collect();
    assert_eq!(
        host_headers.len(),
        passes.len(),
        "one Host header per proxied server"
    );
    assert!(
        host_headers.iter().all(|h| *h == "Host $host"),
        "{host_headers:?}"
    );
    for v in ["proxy_ssl_verify", "proxy_ssl_server_name"] {
        assert!(directive_values(&gw, v).iter().all(|x| *x == "on"));
        assert_eq!(directive_values(&gw, v).len(), passes.len());
    }
    assert!(
        directive_values(&gw, "proxy_ssl_verify_depth")
            .iter()
            .all(|x| x.parse::<u8>().unwrap() >= 2)
    );
    // The Portainer name the seed curled is proxied.
    assert!(gw.contains("server_name portainer.internal.thinkheads.ai;"));
    // The gateway's own service and the CA are not exposed by the gateway.
    assert!(!gw.contains("server_name nginx.internal.thinkheads.ai;"));
    assert!(!gw.contains("server_name ca.internal.thinkheads.ai;"));
}

/// Whatever the model says, every upstream equals the model's proxy address.
#[test]
fn upstream_follows_the_model_not_a_constant() {
    let mut d = support::rootesting();
    let proxy = d.roles.internal_proxy.unwrap();
    let nic = d.guests.get_mut(&proxy).unwrap().nics.first_mut().unwrap();
    nic.addressing = phoenix_model::model::Addressing::Static {
        cidr: "172.16.100.42/24".parse().unwrap(),
        gateway: None,
    };
    let (_, _, gw) = render(&d);
    let passes = directive_values(&gw, "proxy_pass");
    assert!(
        passes.iter().all(|p| *p == "https://172.16.100.42:443"),
        "{passes:?}"
    );
}

#[test]
fn rootesting_has_no_dhcp_route_and_no_plain_http_to_the_ca() {
    let d = support::rootesting();
    let (stat, dynamic, gw) = render(&d);
    for text in [&stat, &dynamic, &gw] {
        assert!(!text.contains("http://dhcp") && !text.contains("https://dhcp"));
        assert!(!text.to_ascii_lowercase().contains("insecureskipverify"));
    }
    assert!(
        !dynamic.contains("http://172.16.100.11"),
        "plain HTTP to Step-CA"
    );
    assert!(dynamic.contains("https://172.16.100.11:9000"));
    assert!(
        !gw.contains("http://"),
        "the gateway has no plain-HTTP upstream"
    );
    let ing = ingress::ingress(&d).unwrap();
    let ca = ing
        .routes
        .iter()
        .find(|r| r.origin == RouteOrigin::Guest(GuestId(103)))
        .unwrap();
    assert_eq!(ca.backend.scheme.to_string(), "https");
    assert_eq!(ca.backend.server_name, "ca.internal.thinkheads.ai");
    // The gateway is reached on its static mesh NIC, never its DHCP one.
    let nginx_route = ing
        .routes
        .iter()
        .find(|r| r.origin == RouteOrigin::Guest(GuestId(101)))
        .unwrap();
    assert_eq!(nginx_route.backend.address.to_string(), "172.16.100.10");
}

#[test]
fn rootesting_every_https_backend_has_a_verifying_transport() {
    let d = support::rootesting();
    let ing = ingress::ingress(&d).unwrap();
    let dynamic = traefik::dynamic_config(&d, &ing, Api::Off);
    for r in ing.routes.iter().filter(|r| !r.via_swarm) {
        let svc = &dynamic["http"]["services"][&r.id]["loadBalancer"];
        if r.backend.scheme.to_string() == "https" {
            let t = &dynamic["http"]["serversTransports"][&r.id];
            assert_eq!(svc["serversTransport"], r.id.as_str());
            assert_eq!(t["serverName"], r.backend.server_name.as_str());
            assert_eq!(t["rootCAs"][0], traefik::ROOT_CA_IN_GUEST);
        } else {
            assert!(svc.get("serversTransport").is_none());
        }
    }
    // Portainer's certificate names portainer.<domain>: that is the name sent and verified.
    let p = ing
        .routes
        .iter()
        .find(|r| r.origin == RouteOrigin::Guest(GuestId(1001)))
        .unwrap();
    assert_eq!(p.backend.server_name, "portainer.internal.thinkheads.ai");
    assert_eq!(p.backend.address.to_string(), "10.0.0.111");
}

#[test]
fn rootesting_certificates_map_through_mount_points() {
    let d = support::rootesting();
    let ing = ingress::ingress(&d).unwrap();
    assert_eq!(
        ing.proxy_certs.first().map(|c| c.cert.as_str()),
        Some("/etc/traefik/certs/traefik.internal.thinkheads.ai.crt")
    );
    let (_, _, gw) = render(&d);
    assert!(
        directive_values(&gw, "ssl_certificate")
            .iter()
            .all(|p| *p == "/etc/nginx/ssl/nginx.internal.thinkheads.ai.crt")
    );
    assert!(
        directive_values(&gw, "proxy_ssl_certificate")
            .iter()
            .all(|p| *p == "/etc/nginx/ssl/nginx-client.crt")
    );
    let g = d.guest(GuestId(102)).unwrap();
    assert_eq!(
        ingress::in_guest_path(g, "/mnt/pve/quickOS/lxc-persistent-data/102/certs/a.crt")
            .as_deref(),
        Some("/etc/traefik/certs/a.crt")
    );
    // A prefix that is not a whole path component does not match.
    assert_eq!(
        ingress::in_guest_path(g, "/mnt/pve/quickOS/lxc-persistent-data/102/certsX/a.crt"),
        None
    );
}

#[test]
fn rootesting_swarm_stack_is_routed_to_the_published_port_when_the_proxy_is_not_a_node() {
    let d = support::rootesting();
    let ing = ingress::ingress(&d).unwrap();
    assert!(ing.swarm.is_none(), "the proxy is not a Swarm node");
    let q = ing
        .routes
        .iter()
        .find(|r| r.host == "qdrant.internal.thinkheads.ai")
        .unwrap();
    assert!(!q.via_swarm);
    assert_eq!(q.entrypoints, vec!["mesh".to_string()]);
    assert_eq!(
        ingress::host_port(q.backend.address, q.backend.port),
        "10.0.0.111:6333"
    );
}

#[test]
fn swarm_provider_when_the_proxy_is_a_swarm_node() {
    let mut d = support::rootesting();
    let proxy = d.roles.internal_proxy.unwrap();
    d.guests.get_mut(&proxy).unwrap().swarm = Some(phoenix_model::model::SwarmMembership {
        role: phoenix_model::model::SwarmRole::Worker,
        labels: Default::default(),
    });
    let ing = ingress::ingress(&d).unwrap();
    let stat = traefik::static_config(&d, &ing, Api::Off);
    let sw = &stat["providers"]["swarm"];
    assert_eq!(sw["endpoint"], "tcp://10.0.0.111:2376");
    assert_eq!(sw["exposedByDefault"], false);
    assert_eq!(sw["network"], "traefik-public");
    assert_eq!(sw["tls"]["cert"], "/etc/traefik/certs/client-cert.pem");
    assert_eq!(sw["tls"]["ca"], traefik::ROOT_CA_IN_GUEST);
    // Label-driven routes are not duplicated in the file provider.
    let dynamic = traefik::dynamic_config(&d, &ing, Api::Off);
    assert!(
        dynamic["http"]["routers"]
            .get("qdrant-service-production-qdrant-mesh")
            .is_none()
    );
}

#[test]
fn static_config_basics() {
    let d = support::rootesting();
    let ing = ingress::ingress(&d).unwrap();
    let stat = traefik::static_config(&d, &ing, Api::Off);
    assert_eq!(stat["global"]["checkNewVersion"], false);
    assert_eq!(stat["global"]["sendAnonymousUsage"], false);
    assert!(stat.get("api").is_none());
    assert!(
        stat["entryPoints"].get("traefik").is_none(),
        "no API entrypoint while the API is off"
    );
    assert_eq!(
        stat["entryPoints"]["web"]["http"]["redirections"]["entryPoint"]["to"],
        "websecure"
    );
    assert_eq!(stat["entryPoints"]["mesh"]["address"], ":8443");
    let prot = traefik::static_config(&d, &ing, Api::Protected);
    assert_eq!(prot["api"]["insecure"], false);
    assert_eq!(prot["entryPoints"]["traefik"]["address"], ":8080");
    let dynamic = traefik::dynamic_config(&d, &ing, Api::Protected);
    assert_eq!(
        dynamic["http"]["routers"]["phoenix-dashboard"]["tls"]["options"],
        "mesh"
    );
}

/// The YAML text means exactly the value phoenix built (no value changed the structure).
#[test]
fn yaml_round_trips() {
    let d = support::rootesting();
    let ing = ingress::ingress(&d).unwrap();
    for v in [
        traefik::static_config(&d, &ing, Api::Protected),
        traefik::dynamic_config(&d, &ing, Api::Protected),
    ] {
        let text = traefik::to_yaml(&v).unwrap();
        let back: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}

#[test]
fn hostile_names_and_paths_are_rejected() {
    let base = support::rootesting();
    for evil in ["x`) || Host(`y", "a;b", "a b", "a\nb", "x{}"] {
        let mut d = base.clone();
        d.guests
            .get_mut(&GuestId(1001))
            .unwrap()
            .traefik_service
            .as_mut()
            .unwrap()
            .name = evil.into();
        assert!(
            matches!(ingress::ingress(&d), Err(IngressError::UnsafeValue { .. })),
            "{evil:?} accepted"
        );
        assert!(nginx::gateway(&d).is_err());
    }
    for evil in ["a.crt;\n}\nserver {", "$host.crt", "a b.crt", "\"a.crt"] {
        // Under the gateway's ssl mount, so the value would reach the file.
        let mut d = base.clone();
        let c = d
            .certificates
            .iter_mut()
            .find(|c| c.guest == GuestId(101))
            .unwrap();
        c.cert_path = format!("/mnt/pve/quickOS/lxc-persistent-data/101/ssl/{evil}");
        assert!(nginx::gateway(&d).is_err(), "{evil:?} accepted");
    }
}
