//! Pure parts of the lab ingress: path remapping, the nginx main file, the stand-in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn known() -> Vec<String> {
    vec![
        "/etc/traefik/dynamic".into(),
        "/etc/traefik/certs/t.crt".into(),
        TRUST_BUNDLE.into(),
    ]
}

#[test]
fn remap_prefixes_whole_tokens_once() {
    let root = Path::new("/run/phoenix-lab/x/root/102");
    let text = "  directory: /etc/traefik/dynamic\n  - /usr/local/share/ca-certificates/phoenix-root-ca.crt\n\
                certFile: /etc/traefik/certs/t.crt\nssl_trusted_certificate /usr/local/share/ca-certificates/phoenix-root-ca.crt;\n";
    let out = remap(text, root, &known());
    assert!(out.contains("directory: /run/phoenix-lab/x/root/102/etc/traefik/dynamic\n"));
    assert!(out.contains(
        "- /run/phoenix-lab/x/root/102/usr/local/share/ca-certificates/phoenix-root-ca.crt\n"
    ));
    assert!(out.contains("certFile: /run/phoenix-lab/x/root/102/etc/traefik/certs/t.crt\n"));
    assert!(out.contains(
        "ssl_trusted_certificate /run/phoenix-lab/x/root/102/usr/local/share/ca-certificates/phoenix-root-ca.crt;"
    ));
    // Idempotent on already remapped text: the root is not a known path.
    assert_eq!(remap(&out, root, &known()), out);
}

#[test]
fn remap_leaves_other_text_alone() {
    let root = Path::new("/r");
    for text in [
        "url: https://172.16.100.21:9443/etc/traefik/dynamic",
        "/etc/traefik/dynamicx",
        "x/etc/traefik/dynamic",
        "Host(`portainer.internal`) é",
    ] {
        assert_eq!(remap(text, root, &known()), text, "{text}");
    }
    assert_eq!(
        remap("dir: /etc/traefik/dynamic/a.yml", root, &known()),
        "dir: /r/etc/traefik/dynamic/a.yml"
    );
}

#[test]
fn nginx_main_keeps_everything_in_the_state_dir() {
    let dir = Path::new("/run/phoenix-lab/x");
    let text = nginx_main(
        dir,
        "nginx-gw",
        Path::new("/run/phoenix-lab/x/root/101/etc/nginx/conf.d/g.conf"),
    );
    assert!(text.contains("daemon off;"));
    assert!(text.contains("pid /run/phoenix-lab/x/nginx-gw.pid;"));
    assert!(text.contains("include /run/phoenix-lab/x/root/101/etc/nginx/conf.d/g.conf;"));
    for line in text.lines().filter(|l| l.contains(" /")) {
        assert!(line.contains("/run/phoenix-lab/x/"), "{line}");
    }
    let args = nginx_args(dir, &dir.join("nginx-gw.conf"), "nginx-gw");
    assert_eq!(args[0], "nginx");
    assert!(args.contains(&"-e".to_string()));
}

#[test]
fn stand_in_says_so() {
    let s = stand_in_server(
        "172.16.100.21".parse().unwrap(),
        9443,
        Path::new("/c.crt"),
        Path::new("/c.key"),
    );
    assert!(s.contains("listen 172.16.100.21:9443 ssl;"));
    assert!(s.contains(STAND_IN_PAGE));
}

#[test]
fn homelab_portainer_route_is_the_vm() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    let d = phoenix_model::validate_dir(&dir).desired.unwrap();
    let ing = ingress(&d).unwrap();
    let r = portainer_route(&ing).unwrap();
    assert_eq!(r.backend.address.to_string(), "172.16.100.21");
    assert_eq!(r.backend.port, 9443);
    assert_eq!(r.backend.server_name, "portainer.internal.thinkheads.ai");
}

#[test]
fn swarm_provider_is_dropped_and_the_rest_kept() {
    let yaml = "global:\n  checkNewVersion: false\nproviders:\n  swarm:\n    endpoint: tcp://172.16.100.21:2376\n    tls:\n      ca: /x\n  file:\n    directory: /etc/traefik/dynamic\nlog:\n  level: INFO\n";
    let (out, removed) = without_swarm(yaml);
    assert!(removed);
    assert_eq!(
        out,
        "global:\n  checkNewVersion: false\nproviders:\n  file:\n    directory: /etc/traefik/dynamic\nlog:\n  level: INFO\n"
    );
    let (same, removed) = without_swarm(&out);
    assert!(!removed);
    assert_eq!(same, out);
}

fn homelab() -> DesiredState {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    phoenix_model::validate_dir(&dir)
        .desired
        .expect("examples/homelab validates")
}

#[test]
fn stand_in_listens_where_the_stack_publishes_not_where_the_route_points() {
    let d = homelab();
    let manager: IpAddr = "172.16.100.21".parse().unwrap();
    // The route and the Portainer stack agree on 9443.
    assert_eq!(stand_in_port(&d, manager, 9443), (9443, None));
    // A route moved to 9444: the stack still publishes 9443, and so does the stand-in.
    let (port, why) = stand_in_port(&d, manager, 9444);
    assert_eq!(port, 9443);
    let why = why.unwrap();
    assert!(
        why.contains("points at port 9444") && why.contains("portainer_service"),
        "{why}"
    );
    // A guest with no stack: nothing but the route says where it serves.
    let traefik: IpAddr = "172.16.100.12".parse().unwrap();
    let (port, why) = stand_in_port(&d, traefik, 8443);
    assert_eq!(port, 8443);
    assert!(why.unwrap().contains("no stack"));
}

#[test]
fn compose_ports_in_long_and_short_form() {
    let compose = serde_json::json!({"services": {
        "a": {"ports": [{"target": 9443, "published": 9443, "mode": "host"}]},
        "b": {"ports": ["8080:80", "127.0.0.1:5353:53/udp", "9000"]}
    }});
    assert_eq!(compose_published_ports(&compose), [9443, 8080, 5353]);
}
