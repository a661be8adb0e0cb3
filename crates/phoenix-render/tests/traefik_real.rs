//! Real Traefik loads the rendered static and dynamic files: started on 127.0.0.1 only (every
//! entrypoint remapped to a free loopback port, the API enabled on loopback for the test only,
//! the Swarm endpoint pointed at a closed loopback port), polled with a deadline until its API
//! answers, and its routers and services read back from `/api/http/*`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ingress_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ingress_support as support;
use phoenix_model::DesiredState;
use phoenix_render::traefik::{self, Api, RouteOrigin, ingress};
use serde_json::{Value, json};

/// Kills Traefik when the test ends, whatever happens.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Point every certificate path at the test PKI.
fn remap_paths(v: &mut Value, cert: &Path, key: &Path, ca: &Path) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match (k.as_str(), &*x) {
                    ("certFile" | "cert", Value::String(_)) => *x = json!(cert),
                    ("keyFile" | "key", Value::String(_)) => *x = json!(key),
                    ("ca", Value::String(_)) => *x = json!(ca),
                    ("rootCAs" | "caFiles", Value::Array(_)) => *x = json!([ca]),
                    _ => remap_paths(x, cert, key, ca),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| remap_paths(x, cert, key, ca)),
        _ => {}
    }
}

fn parse_yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("rendered YAML parses")
}

fn traefik_loads(d: &DesiredState) {
    let (Some(bin), Some(openssl)) = (support::traefik(), support::openssl()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = support::TestPki::new(&openssl, dir);
    let (cert, key) = pki.leaf("proxy", &[&format!("traefik.{}", d.domain)]);
    let files = traefik::files(d, Api::Off).unwrap();
    let ing = ingress::ingress(d).unwrap();

    // Static: loopback ports, the API for this test only, file provider in the temp dir.
    let mut stat = parse_yaml(&files[0].content);
    assert!(stat.get("api").is_none(), "the API is off in the render");
    let eps = stat["entryPoints"].as_object_mut().unwrap();
    for ep in eps.values_mut() {
        ep["address"] = json!(format!("127.0.0.1:{}", support::free_port()));
    }
    let api_port = support::free_port();
    eps.insert(
        "phoenix-test-api".into(),
        json!({"address": format!("127.0.0.1:{api_port}")}),
    );
    stat["api"] = json!({"insecure": true, "dashboard": false});
    // `insecure` serves the API on the entrypoint named `traefik`; name ours explicitly.
    let test_api = stat["entryPoints"]["phoenix-test-api"].clone();
    stat["entryPoints"]["traefik"] = test_api;
    stat["entryPoints"]
        .as_object_mut()
        .unwrap()
        .remove("phoenix-test-api");
    stat["providers"]["file"]["directory"] = json!(dir.join("dynamic"));
    if let Some(sw) = stat["providers"].get_mut("swarm") {
        // Never contact a real address from a test: a closed loopback port.
        sw["endpoint"] = json!(format!("tcp://127.0.0.1:{}", support::free_port()));
    }
    remap_paths(&mut stat, &cert, &key, &pki.ca_cert);
    std::fs::write(dir.join("traefik.yml"), traefik::to_yaml(&stat).unwrap()).unwrap();

    let mut dynamic = parse_yaml(&files[1].content);
    remap_paths(&mut dynamic, &cert, &key, &pki.ca_cert);
    std::fs::create_dir_all(dir.join("dynamic")).unwrap();
    std::fs::write(
        dir.join("dynamic/phoenix.yml"),
        traefik::to_yaml(&dynamic).unwrap(),
    )
    .unwrap();

    let log = std::fs::File::create(dir.join("traefik.log")).unwrap();
    let child = Command::new(&bin)
        .arg(format!(
            "--configFile={}",
            dir.join("traefik.yml").display()
        ))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let _guard = Running(child);

    let expected: Vec<&traefik::Route> = ing.routes.iter().filter(|r| !r.via_swarm).collect();
    let expected_routers: usize = expected
        .iter()
        .map(|r| {
            let mesh = r.entrypoints.iter().any(|e| e == traefik::MESH);
            let other = r.entrypoints.iter().any(|e| e != traefik::MESH);
            usize::from(mesh) + usize::from(other)
        })
        .sum();
    let deadline = Instant::now() + Duration::from_secs(30);
    let routers: Vec<Value> = loop {
        if let Some((200, body)) = http_get(api_port, "/api/http/routers?per_page=1000") {
            let all: Vec<Value> = serde_json::from_str(&body).unwrap();
            let file: Vec<Value> = all
                .into_iter()
                .filter(|r| r["provider"] == "file")
                .collect();
            if file.len() >= expected_routers {
                break file;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Traefik did not serve the routers in time; log:\n{}",
            std::fs::read_to_string(dir.join("traefik.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(routers.len(), expected_routers, "{routers:#?}");
    let (_, body) = http_get(api_port, "/api/http/services?per_page=1000").unwrap();
    let services: Vec<Value> = serde_json::from_str(&body).unwrap();
    let log = || std::fs::read_to_string(dir.join("traefik.log")).unwrap_or_default();

    for r in &expected {
        let rule = format!("Host(`{}`)", r.host);
        let mine: Vec<&Value> = routers
            .iter()
            .filter(|x| x["rule"] == rule.as_str())
            .collect();
        assert!(!mine.is_empty(), "no router for {}", r.host);
        let mut eps: Vec<String> = Vec::new();
        for x in &mine {
            assert_eq!(x["status"], "enabled", "{x:#}\n{}", log());
            assert!(x.get("error").is_none(), "{x:#}");
            assert!(x.get("tls").is_some(), "router without TLS: {x:#}");
            assert_eq!(x["service"], r.id.as_str());
            eps.extend(
                x["entryPoints"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.as_str().unwrap().to_string()),
            );
        }
        eps.sort();
        let mut want = r.entrypoints.clone();
        want.sort();
        assert_eq!(eps, want, "entrypoints of {}", r.host);

        let name = format!("{}@file", r.id);
        let svc = services
            .iter()
            .find(|s| s["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no service {name}"));
        assert_eq!(svc["status"], "enabled", "{svc:#}\n{}", log());
        assert!(svc.get("error").is_none(), "{svc:#}");
        let url = svc["loadBalancer"]["servers"][0]["url"].as_str().unwrap();
        assert_eq!(
            url,
            format!(
                "{}://{}",
                r.backend.scheme,
                ingress::host_port(r.backend.address, r.backend.port)
            )
        );
        if let RouteOrigin::Guest(id) = r.origin
            && Some(id) == d.roles.ca
        {
            assert!(url.starts_with("https://"), "the CA speaks HTTPS: {url}");
        }
    }
    let text = log();
    eprintln!(
        "traefik: {} file routers, {} services loaded",
        routers.len(),
        services.len()
    );
    assert!(
        !text.contains("level=error") && !text.contains("ERR "),
        "Traefik logged errors:\n{text}"
    );
}

#[test]
fn traefik_loads_rootesting() {
    traefik_loads(&support::rootesting());
}

#[test]
fn traefik_loads_homelab() {
    let dir: PathBuf = support::homelab_dir();
    if !dir.join("phoenix_hypervisor_config.json").is_file() {
        eprintln!("note: examples/homelab not present; skipping");
        return;
    }
    traefik_loads(&support::load(&dir));
}
