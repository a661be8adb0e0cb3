//! The Portainer route broken on purpose, three ways, each on its own `examples/homelab` lab:
//! `phoenix verify --target lab` exits 1 and the route check names the hop where it breaks,
//! who answered there and the cause, while the other ingress checks say what they should:
//!
//! - (a) the gateway forwards a wrong Host (`proxy_set_header Host wrong.example`, nginx
//!   reloaded): hop 1 fails, hops 2 and 3 pass, the cause is the gateway's Host/SNI and
//!   Traefik's access log shows the Host it received; every TLS check passes. Then the right
//!   Host with a wrong SNI (`proxy_ssl_name wrong.example`): nginx answers 502 itself and the
//!   cause quotes its error log. This test also runs the clean lab first (exit 0) and pins the
//!   firewall matrix's summary line.
//! - (b) the Portainer router removed from Traefik's dynamic file (the file provider reloads
//!   it): hop 2 is the cause ("no router matching Host(…) on entrypoint websecure"), hop 3
//!   passes.
//! - (c) the backend's certificate replaced by one from another CA: hop 3 is the cause
//!   ("Traefik does not trust the backend's certificate", naming the issuer), Traefik answers
//!   hop 2 with a 5xx, and the backend's TLS check fails too.
//! - (d) the route's backend port moved to 9444 in the configuration while the Portainer stack
//!   still publishes 9443: the stand-in serves where the stack publishes, so hop 3 breaks.
//!
//! Every wait (reload, redeploy) polls, bounded. Root only: without root a note and return,
//! unless `CI` is set (then it fails).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod common;

use common::*;
use phoenix_lab::LabGuard;
use phoenix_lab::ingress::{TRUST_BUNDLE, guest_root, under};
use phoenix_verify::https::{self, HttpsOutcome, HttpsRequest};
use phoenix_verify::netns::NetnsEndpoint;
use serde_json::Value;

const NAME: &str = "portainer.internal.thinkheads.ai";
const ROUTE: &str = "route/portainer.internal.thinkheads.ai";
const BACKEND_TLS: &str = "tls/guest:102/172.16.100.21:9443";
const TRAEFIK: &str = "172.16.100.12:443";
const BACKEND: &str = "172.16.100.21:9443";

/// A lab up with a unique prefix, torn down (and checked gone) on [`Lab::down`] or by the
/// guard when a step panics.
struct Lab {
    prefix: String,
    config: String,
    guard: Option<LabGuard>,
}

impl Lab {
    fn up(name: &str, tag: char) -> Option<Lab> {
        Lab::up_with(name, tag, CONFIG)
    }

    fn up_with(name: &str, tag: char, config: &str) -> Option<Lab> {
        if !root_or_skip(name) {
            return None;
        }
        let prefix = unique_prefix(tag);
        let guard = LabGuard::new(&prefix);
        let up = phoenix(&["lab", "up", "--config", config, "--prefix", &prefix]);
        assert!(up.status.success(), "lab up: {}", text(&up.stderr));
        Some(Lab {
            prefix,
            config: config.to_string(),
            guard: Some(guard),
        })
    }

    fn down(mut self) {
        let down = phoenix(&["lab", "down", "--prefix", &self.prefix]);
        assert!(down.status.success(), "lab down: {}", text(&down.stderr));
        drop(self.guard.take());
        assert_gone(&self.prefix);
    }

    fn ns(&self, guest: u32) -> String {
        format!("{}-g{guest}", self.prefix)
    }

    fn root_pem(&self) -> String {
        std::fs::read_to_string(under(&guest_root(&self.prefix, 101), TRUST_BUNDLE))
            .expect("trust bundle in the gateway's root")
    }

    /// `https://NAME/` at `addr` from inside guest `from`'s namespace (Host and SNI `NAME`).
    fn get(&self, from: u32, addr: &str) -> HttpsOutcome {
        let req = HttpsRequest {
            addr: addr.parse::<SocketAddr>().expect("addr"),
            sni: NAME.into(),
            host: NAME.into(),
            path: "/".into(),
            root_pem: self.root_pem(),
        };
        https::get(
            &NetnsEndpoint::new(self.ns(from)),
            &req,
            Duration::from_secs(2),
            true,
        )
        .expect("probe runs")
    }

    /// Poll `get(from, addr)` until `done` holds (bounded).
    fn wait_for(&self, what: &str, from: u32, addr: &str, done: impl Fn(&HttpsOutcome) -> bool) {
        let t = Instant::now();
        loop {
            let o = self.get(from, addr);
            if done(&o) {
                eprintln!("{what}: after {:?}: {o}", t.elapsed());
                return;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "{what}: still {o}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `phoenix verify --target lab --output <output>`: exit code and stdout.
    fn verify(&self, output: &str) -> (Option<i32>, String) {
        let o = phoenix(&[
            "verify",
            "--target",
            "lab",
            "--config",
            &self.config,
            "--prefix",
            &self.prefix,
            "--output",
            output,
        ]);
        eprintln!(
            "verify {output}: exit {:?}\n{}",
            o.status.code(),
            text(&o.stderr)
        );
        (o.status.code(), text(&o.stdout))
    }

    fn verify_json(&self) -> (Option<i32>, Value) {
        let (code, out) = self.verify("json");
        (code, serde_json::from_str(&out).expect("json report"))
    }
}

fn status(o: &HttpsOutcome) -> Option<u16> {
    o.result
        .as_ref()
        .ok()
        .and_then(|r| r.as_ref().map(|r| r.status))
}

fn results(v: &Value) -> &Vec<Value> {
    v["results"].as_array().expect("results")
}

fn by_id<'a>(v: &'a Value, id: &str) -> &'a Value {
    results(v)
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no result {id}: {v:#}"))
}

fn failed_ids(v: &Value) -> BTreeSet<String> {
    results(v)
        .iter()
        .filter(|r| r["status"] == "fail")
        .filter_map(|r| r["id"].as_str().map(String::from))
        .collect()
}

fn evidence(r: &Value) -> &str {
    r["evidence"].as_str().unwrap_or_default()
}

fn hop(n: u8) -> String {
    format!("{ROUTE}/hop{n}")
}

/// The route's summary: failed, naming `at` (e.g. `hop 1/3 (wan → gateway`) and every one of
/// `causes`; returned for more.
fn route_fails_at(v: &Value, at: &str, causes: &[&str]) -> String {
    let r = by_id(v, ROUTE);
    assert_eq!(r["status"], "fail", "{r:#}");
    let e = evidence(r);
    assert!(e.contains(&format!("broken at {at}")), "not at {at}: {e}");
    for c in causes {
        assert!(e.contains(c), "no {c:?} in: {e}");
    }
    e.to_string()
}

/// Every `tls/…` check passes except `except`.
fn tls_pass_except(v: &Value, except: &[&str]) {
    let tls: Vec<&Value> = results(v)
        .iter()
        .filter(|r| r["id"].as_str().is_some_and(|i| i.starts_with("tls/")))
        .collect();
    assert_eq!(tls.len(), 4, "{tls:#?}");
    for r in tls {
        let want = if except.contains(&r["id"].as_str().unwrap_or_default()) {
            "fail"
        } else {
            "pass"
        };
        assert_eq!(r["status"], want, "{r:#}");
    }
}

/// The `fw/matrix` line: "firewall matrix: N allowed connect (N ok), M denied blocked (M ok)"
/// with N, M > 0 and every pair holding; its counts match the `fw/…` lines.
fn matrix_holds(v: &Value) {
    let m = by_id(v, "fw/matrix");
    assert_eq!(m["status"], "pass", "{m:#}");
    let check = m["check"].as_str().unwrap_or_default();
    let nums: Vec<usize> = check
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(check.starts_with("firewall matrix: "), "{check}");
    assert_eq!(nums.len(), 4, "{check}");
    let (allowed, allowed_ok, denied, denied_ok) = (nums[0], nums[1], nums[2], nums[3]);
    assert!(allowed > 0 && denied > 0, "{check}");
    assert_eq!((allowed_ok, denied_ok), (allowed, denied), "{check}");
    assert_eq!(
        check,
        format!(
            "firewall matrix: {allowed} allowed connect ({allowed} ok), {denied} denied blocked ({denied} ok)"
        )
    );
    let pairs = results(v)
        .iter()
        .filter(|r| {
            r["id"]
                .as_str()
                .is_some_and(|i| i.starts_with("fw/") && i != "fw/matrix")
        })
        .count();
    assert_eq!(pairs, allowed + denied);
}

/// Replace the gateway's site file `conf` with `text` and reload the gateway's nginx: SIGHUP,
/// then wait (bounded) until its error log shows new workers started.
fn rewrite_gateway_site(prefix: &str, conf: &std::path::Path, text: &str) {
    let log = phoenix_lab::state_dir(prefix).join("nginx-gw.error.log");
    let before = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
    std::fs::write(conf, text).expect("write site");
    hup(pid_of(prefix, "nginx-gw"));
    let t = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let new = text.get(before..).unwrap_or_default();
        if new.contains("start worker process") {
            // The old worker may still finish the requests it holds; new ones go to the new.
            std::thread::sleep(Duration::from_millis(200));
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "nginx-gw did not reload: {new}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn route_fault_wrong_host_from_the_gateway() {
    let Some(lab) = Lab::up("route_faults wrong Host", 'h') else {
        return;
    };
    // Clean: exit 0, the route passes, and the matrix summary counts both kinds of pair.
    let (code, text_report) = lab.verify("text");
    assert_eq!(code, Some(0), "{text_report}");
    assert!(
        text_report
            .lines()
            .any(|l| l.starts_with("PASS") && l.contains("firewall matrix: ")),
        "{text_report}"
    );
    let (code, v) = lab.verify_json();
    assert_eq!(code, Some(0));
    assert_eq!(by_id(&v, ROUTE)["status"], "pass");
    matrix_holds(&v);

    // The gateway forwards Host `wrong.example` (SNI unchanged: `proxy_ssl_name $host`).
    let conf = under(
        &guest_root(&lab.prefix, 101),
        "/etc/nginx/conf.d/phoenix-gateway.conf",
    );
    let site = std::fs::read_to_string(&conf).expect("gateway site");
    let good = "proxy_set_header Host $host;";
    assert!(site.contains(good), "{site}");
    rewrite_gateway_site(
        &lab.prefix,
        &conf,
        &site.replace(good, "proxy_set_header Host wrong.example;"),
    );

    let (code, v) = lab.verify_json();
    assert_eq!(code, Some(1), "{v:#}");
    let e = route_fails_at(
        &v,
        "hop 1/3 (wan → gateway",
        &[
            "the gateway forwards a Host header / SNI other than `portainer.internal.thinkheads.ai`",
            "Traefik answers 404 for the Host it receives",
            "proxy_set_header Host",
            // What Traefik received (its JSON access log in the lab).
            "Traefik's access log during the trace (from 172.16.100.10): received ",
            "Host `wrong.example` → no router matched, 404 ×",
            // What was sent, and the certificate the gateway presented.
            &format!("sent Host {NAME} SNI {NAME}"),
            "certificate subject \"CN=nginx.internal.thinkheads.ai\"",
            "answered by Traefik",
        ],
    );
    eprintln!("(a) {e}");
    assert_eq!(by_id(&v, &hop(1))["status"], "fail");
    assert_eq!(by_id(&v, &hop(2))["status"], "pass");
    assert_eq!(by_id(&v, &hop(3))["status"], "pass");
    assert_eq!(
        failed_ids(&v),
        BTreeSet::from([ROUTE.to_string(), hop(1)]),
        "only the route fails"
    );
    tls_pass_except(&v, &[]);
    matrix_holds(&v);

    // The same gateway with the right Host but a wrong SNI (`proxy_ssl_name wrong.example`):
    // nginx refuses Traefik's certificate for that name and answers 502 itself; the cause
    // quotes its error log.
    let wrong_sni = site.replace("proxy_ssl_name $host;", "proxy_ssl_name wrong.example;");
    assert_ne!(wrong_sni, site, "no `proxy_ssl_name $host` in {site}");
    rewrite_gateway_site(&lab.prefix, &conf, &wrong_sni);
    let (code, v) = lab.verify_json();
    assert_eq!(code, Some(1), "{v:#}");
    let e = route_fails_at(
        &v,
        "hop 1/3 (wan → gateway",
        &[
            "(answered by nginx)",
            "cause: the gateway's nginx answers 502: it cannot reach or does not trust Traefik",
            "nginx's error log: upstream SSL certificate does not match \"wrong.example\"",
        ],
    );
    eprintln!("(a') {e}");
    assert_eq!(
        failed_ids(&v),
        BTreeSet::from([ROUTE.to_string(), hop(1)]),
        "only the route fails"
    );
    tls_pass_except(&v, &[]);
    lab.down();
}

#[test]
fn route_fault_missing_router() {
    let Some(lab) = Lab::up("route_faults missing router", 'r') else {
        return;
    };
    // Drop the `portainer` router (its service and transport stay) from the dynamic file.
    let file = under(
        &guest_root(&lab.prefix, 102),
        "/etc/traefik/dynamic/phoenix.yml",
    );
    let yaml = std::fs::read_to_string(&file).expect("dynamic file");
    let mut out = String::new();
    let (mut in_routers, mut skipping, mut removed) = (false, false, false);
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        if indent <= 2 && !line.trim().is_empty() {
            in_routers = line.trim_end() == "  routers:";
            skipping = false;
        } else if indent == 4 && in_routers {
            skipping = line.trim_end() == "    portainer:";
            removed |= skipping;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(removed, "no portainer router in {yaml}");
    assert!(out.contains("    ca:\n      rule: Host(`ca."), "{out}");
    std::fs::write(&file, out).expect("write dynamic file");
    // The file provider reloads: Traefik answers the name with its own 404.
    lab.wait_for("router gone", 101, TRAEFIK, |o| status(o) == Some(404));

    let (code, v) = lab.verify_json();
    assert_eq!(code, Some(1), "{v:#}");
    let e = route_fails_at(
        &v,
        "hop 2/3 (gateway → proxy",
        &[
            "cause: Traefik has no router matching Host(`portainer.internal.thinkheads.ai`) on entrypoint websecure",
            "Traefik's access log during the trace (from 172.16.100.10): received ",
            "Host `portainer.internal.thinkheads.ai` → no router matched, 404 ×",
            &format!("sent Host {NAME} SNI {NAME}"),
            "certificate subject \"CN=traefik.internal.thinkheads.ai\"",
            "answered by Traefik",
        ],
    );
    eprintln!("(b) {e}");
    assert_eq!(by_id(&v, &hop(1))["status"], "fail");
    assert_eq!(by_id(&v, &hop(2))["status"], "fail");
    assert_eq!(by_id(&v, &hop(3))["status"], "pass");
    assert_eq!(
        failed_ids(&v),
        BTreeSet::from([ROUTE.to_string(), hop(1), hop(2)]),
        "only the route fails"
    );
    tls_pass_except(&v, &[]);
    lab.down();
}

#[test]
fn route_fault_untrusted_backend_certificate() {
    let Some(lab) = Lab::up("route_faults untrusted backend", 'c') else {
        return;
    };
    let (cert, key) = foreign_backend_cert(NAME);
    replace_backend_cert(&lab.prefix, &cert, &key);
    // The backend presents the other CA's certificate (polled from the proxy's namespace).
    lab.wait_for("backend certificate replaced", 102, BACKEND, |o| {
        o.cert
            .as_ref()
            .is_some_and(|c| c.issuer.contains("Some Other Intermediate"))
    });

    let (code, v) = lab.verify_json();
    assert_eq!(code, Some(1), "{v:#}");
    let e = route_fails_at(
        &v,
        "hop 3/3 (proxy → backend",
        &[
            "cause: Traefik does not trust the backend's certificate: its certificate does not chain to the internal root",
            "Some Other Intermediate",
            "Traefik answers HTTP 5",
            "(answered by Traefik)",
            &format!("sent Host {NAME} SNI {NAME}"),
            "172.16.100.21:9443",
        ],
    );
    eprintln!("(c) {e}");
    for n in 1..=3 {
        assert_eq!(by_id(&v, &hop(n))["status"], "fail", "hop {n}");
    }
    let hop2 = evidence(by_id(&v, &hop(2)));
    assert!(hop2.contains("answered by Traefik"), "{hop2}");
    let failed = failed_ids(&v);
    let want = BTreeSet::from([
        ROUTE.to_string(),
        hop(1),
        hop(2),
        hop(3),
        BACKEND_TLS.to_string(),
    ]);
    assert_eq!(failed, want, "the route and the backend's TLS check fail");
    tls_pass_except(&v, &[BACKEND_TLS]);
    let tls = evidence(by_id(&v, BACKEND_TLS));
    assert!(
        tls.contains("untrusted issuer") && tls.contains("Some Other Intermediate"),
        "{tls}"
    );
    lab.down();
}

#[test]
fn route_fault_route_port_the_stack_does_not_publish() {
    if !root_or_skip("route_faults route port") {
        return;
    }
    // The homelab with the Portainer route's backend port moved to 9444; the stack's compose
    // file still publishes 9443.
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(std::path::Path::new(CONFIG), tmp.path());
    let vms = tmp.path().join("phoenix_vm_configs.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&vms).unwrap()).unwrap();
    let manager = v["vms"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|vm| vm["vmid"] == 1001)
        .unwrap();
    assert_eq!(manager["traefik_service"]["port"], 9443);
    manager["traefik_service"]["port"] = 9444.into();
    std::fs::write(&vms, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let config = tmp.path().display().to_string();
    let Some(lab) = Lab::up_with("route_faults route port", 'p', &config) else {
        return;
    };
    // The stand-in serves where the stack publishes: 9443 answers, the route's 9444 does not.
    lab.wait_for("stand-in on 9443", 102, BACKEND, |o| status(o).is_some());

    let (code, v) = lab.verify_json();
    assert_eq!(code, Some(1), "{v:#}");
    let e = route_fails_at(
        &v,
        "hop 3/3 (proxy → backend",
        &[
            "cause: the backend does not answer: connect 172.16.100.21:9444",
            "Connection refused",
        ],
    );
    eprintln!("(d) {e}");
    // Only the route and the backend's TLS check at the route's port fail.
    assert_eq!(
        failed_ids(&v),
        BTreeSet::from([
            ROUTE.to_string(),
            hop(1),
            hop(2),
            hop(3),
            "tls/guest:102/172.16.100.21:9444".to_string(),
        ]),
        "{v:#}"
    );
    lab.down();
}
