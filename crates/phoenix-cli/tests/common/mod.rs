//! Helpers shared by the lab tests of the CLI (`sync_lab`, `verify_lab`, `route_faults`, …): the
//! binary, root checks, unique prefixes, service pids, the "nothing left" assertion, the
//! Portainer stand-in's certificate swap, and `sync all --target lab`'s JSON (the plan's
//! summary, the journal, the notes).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // not every test uses each; tests may panic

pub mod rng;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/homelab");

/// The operator's own configuration of the bash system (rootesting's `etc`).
pub const ROOTESTING: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/upstream/rootesting-2025-11-25/etc"
);

/// A scratch host root with only `/etc/os-release` (Debian bookworm), for `phoenix setup`.
pub fn scratch_host_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::write(
        root.path().join("etc/os-release"),
        "ID=debian\nVERSION_CODENAME=bookworm\n",
    )
    .unwrap();
    root
}

/// `sync all --target lab --provision --config CONFIG --prefix PREFIX` (the homelab).
pub fn lab_sync_args(prefix: &str) -> [&str; 9] {
    [
        "sync",
        "all",
        "--target",
        "lab",
        "--provision",
        "--config",
        CONFIG,
        "--prefix",
        prefix,
    ]
}

pub fn phoenix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(args)
        .env_remove("PHOENIX_CONFIG")
        .env_remove("PHOENIX_LAB_PREFIX")
        .output()
        .expect("phoenix runs")
}

/// `phoenix sync all --target lab --provision --output json --config CONFIG --prefix P`, run
/// in this crate's directory (a relative `config` is relative to it): (exit code, document).
pub fn lab_sync(prefix: &str, config: &str) -> (Option<i32>, serde_json::Value) {
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args([
            "sync",
            "all",
            "--target",
            "lab",
            "--provision",
            "--output",
            "json",
        ])
        .args(["--config", config, "--prefix", prefix])
        .env_remove("PHOENIX_CONFIG")
        .env_remove("PHOENIX_LAB_PREFIX")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("phoenix runs");
    eprintln!(
        "sync: {:?}, exit {:?}\n{}",
        t.elapsed(),
        o.status.code(),
        text(&o.stderr)
    );
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("json ({e}): {}\n{}", text(&o.stdout), text(&o.stderr)));
    (o.status.code(), v)
}

/// The plan's creates + changes + deletes (a `sync all` or `plan` document).
pub fn planned(v: &serde_json::Value) -> u64 {
    ["create", "change", "delete"]
        .iter()
        .map(|k| v["plan"]["summary"][k].as_u64().unwrap_or(0))
        .sum()
}

/// The journal's entries that changed something: (wave, action as JSON).
pub fn done(v: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    v["journal"]["entries"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["outcome"] == "done")
                .map(|e| {
                    (
                        e["wave"].as_str().unwrap_or_default().to_string(),
                        e["action"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What the lab said of a run (`notes`).
pub fn notes(v: &serde_json::Value) -> Vec<String> {
    v["notes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn root_or_skip(name: &str) -> bool {
    if phoenix_lab::is_root() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{name} needs root in CI");
    eprintln!("note: {name} skipped: not root");
    false
}

/// Root and `dockerd` (the Swarm tests): a note and `false` when either is missing, unless
/// `CI` is set (setup installs docker.io and CI runs as root), where it fails instead.
pub fn swarm_or_skip(name: &str) -> bool {
    if !root_or_skip(name) {
        return false;
    }
    if phoenix_lab::swarm::dockerd_available() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "CI installs docker.io");
    eprintln!("note: {name} skipped: no dockerd");
    false
}

pub fn unique_prefix(tag: char) -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{tag}{:05x}", h.finish() & 0xf_ffff)
}

pub fn pid_of(prefix: &str, name: &str) -> u32 {
    let f = phoenix_lab::state_dir(prefix).join(format!("{name}.pid"));
    std::fs::read_to_string(&f)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid")
}

pub fn stop(pid: u32) {
    assert!(
        Command::new("kill")
            .arg(pid.to_string())
            .status()
            .expect("kill")
            .success()
    );
    let t = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() && t.elapsed().as_secs() < 2 {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SIGHUP to `pid` (nginx re-reads its configuration).
pub fn hup(pid: u32) {
    let ok = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -HUP {pid}");
}

/// A server certificate for `name` and the Portainer backend's address (172.16.100.21), issued
/// by a throwaway CA that is not the lab's ("Some Other Root" / "Some Other Intermediate"):
/// (certificate chain PEM, key PEM).
pub fn foreign_backend_cert(name: &str) -> (String, String) {
    use phoenix_model::model::{CertKind, San};
    use phoenix_pki::{CaOptions, CaStore, LeafIssuer, LeafRequest};
    let now = std::time::SystemTime::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let other = CaStore::init(
        dir.path(),
        &CaOptions {
            root_name: "Some Other Root".into(),
            intermediate_name: "Some Other Intermediate".into(),
            ..CaOptions::default()
        },
        now,
    )
    .expect("other CA");
    let leaf = other
        .issue(
            &LeafRequest {
                common_name: name,
                sans: &[
                    San::Dns(name.into()),
                    San::Ip("172.16.100.21".parse().expect("ip")),
                ],
                kind: CertKind::Server,
                lifetime_hours: 1,
            },
            now,
        )
        .expect("issue");
    (leaf.cert_file(false), leaf.key.expose().to_string())
}

/// `phoenix lab down --prefix PREFIX`, which must succeed.
pub fn lab_down(prefix: &str) {
    let down = phoenix(&["lab", "down", "--prefix", prefix]);
    assert!(down.status.success(), "lab down: {}", text(&down.stderr));
}

pub fn assert_gone(prefix: &str) {
    let listed = text(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip")
            .stdout,
    );
    assert!(
        !listed.lines().any(|l| l.starts_with(&format!("{prefix}-"))),
        "{listed}"
    );
    assert!(!phoenix_lab::state_dir(prefix).exists());
    let etc = std::fs::read_dir("/etc/netns")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("{prefix}-"))
                })
                .count()
        })
        .unwrap_or(0);
    assert_eq!(etc, 0, "/etc/netns leftovers");
    let procs = text(
        &Command::new("pgrep")
            .args(["-f", &format!("/run/phoenix-lab/{prefix}/")])
            .output()
            .expect("pgrep")
            .stdout,
    );
    assert!(procs.trim().is_empty(), "processes left: {procs}");
}

/// Replace the certificate and key the Portainer stand-in serves: a new deployment with them
/// as its secrets when it is a Swarm service, else whatever files its nginx configuration
/// names, reloaded.
pub fn replace_backend_cert(prefix: &str, cert_pem: &str, key_pem: &str) {
    if let Some(si) = phoenix_lab::ingress::swarm_stand_in(prefix) {
        let plan = phoenix_lab::swarm::load(prefix).expect("swarm record").plan;
        let changes = phoenix_lab::swarm::service::deploy(
            &plan,
            &phoenix_lab::swarm::service::StandIn {
                guest: si.guest,
                port: si.port,
                cert_pem,
                key_pem,
                page: phoenix_lab::ingress::STAND_IN_PAGE,
            },
        )
        .expect("redeploy with the replaced certificate");
        assert!(!changes.is_empty());
        return;
    }
    let site = phoenix_lab::state_dir(prefix).join("portainer-stand-in.site.conf");
    let conf = std::fs::read_to_string(&site).expect("stand-in site");
    let path = |directive: &str| {
        conf.lines()
            .find_map(|l| l.trim().strip_prefix(directive))
            .map(|p| p.trim().trim_end_matches(';').to_string())
            .unwrap_or_else(|| panic!("no {directive} in {conf}"))
    };
    std::fs::write(path("ssl_certificate "), cert_pem).expect("write cert");
    std::fs::write(path("ssl_certificate_key "), key_pem).expect("write key");
    hup(pid_of(prefix, "portainer-stand-in"));
    // nginx re-reads its configuration and starts new workers; give it a moment.
    std::thread::sleep(std::time::Duration::from_millis(500));
}

/// `dir` copied to `to`, recursively (plain files and directories).
pub fn copy_tree(dir: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// `phoenix verify --target lab --output json --config CONFIG --prefix P`: (exit code, report).
pub fn lab_verify(prefix: &str, config: &str) -> (Option<i32>, serde_json::Value) {
    let o = phoenix(&[
        "verify", "--target", "lab", "--output", "json", "--config", config, "--prefix", prefix,
    ]);
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("json ({e}): {}\n{}", text(&o.stdout), text(&o.stderr)));
    (o.status.code(), v)
}

/// The failed checks of a verify report (or a `sync all` document's `verify`): "id: evidence".
pub fn failed_results(report: &serde_json::Value) -> Vec<String> {
    report["results"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| r["status"] == "fail")
                .map(|r| {
                    format!(
                        "{}: {}",
                        r["id"].as_str().unwrap_or_default(),
                        r["evidence"].as_str().unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The plan's notes of a `sync all` document.
pub fn plan_notes(v: &serde_json::Value) -> Vec<String> {
    v["plan"]["notes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Run `program args` (argv, no shell), which must succeed.
pub fn run_ok(program: &str, args: &[&str]) {
    let o = Command::new(program).args(args).output().expect(program);
    assert!(
        o.status.success(),
        "{program} {}: {}",
        args.join(" "),
        text(&o.stderr)
    );
}

/// SIGKILL to `pid`, which must exist.
pub fn kill9(pid: u32) {
    run_ok("kill", &["-KILL", "--", &pid.to_string()]);
}
