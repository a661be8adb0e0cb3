//! `phoenix doctor`: what phoenix needs on this machine and from a node, checked read-only —
//! the configuration, root, the lab's programs and peers, `policy-rc.d`, and a node's API
//! (reachable, its certificate trusted, the credentials accepted). One row per check with the
//! fix when it fails; exit 1 when any failed. I/O: files, `PATH`, one `GET /version`.

use std::io::Write;
use std::path::Path;

use phoenix_pve::{ConnectionSettings, PveClient, PveError};
use serde::Serialize;

use crate::cli::{DoctorArgs, DoctorTarget, OutputFormat};
use crate::exit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum State {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Serialize)]
struct Row {
    check: String,
    state: State,
    detail: String,
    /// What to do when it failed (or why it was skipped).
    #[serde(skip_serializing_if = "String::is_empty")]
    fix: String,
}

fn row(check: &str, state: State, detail: impl Into<String>, fix: impl Into<String>) -> Row {
    Row {
        check: check.into(),
        state,
        detail: detail.into(),
        fix: fix.into(),
    }
}

/// The programs the lab runs in its namespaces (Debian package in the fix).
const LAB_PROGRAMS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("nft", "nftables"),
    ("dnsmasq", "dnsmasq"),
    ("nginx", "nginx"),
    ("dockerd", "docker.io"),
    ("openssl", "openssl"),
];

fn on_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn config_row(dir: &Path) -> Row {
    if !dir.is_dir() {
        return row(
            "configuration",
            State::Fail,
            format!("{} is not a directory", dir.display()),
            "pass --config DIR (the directory holding phoenix_hypervisor_config.json)",
        );
    }
    let v = phoenix_model::validate_dir(dir);
    let (errors, warnings) = crate::report::counts(&v.findings());
    match &v.desired {
        Some(d) if errors == 0 => row(
            "configuration",
            State::Pass,
            format!(
                "{}: {} guests, {warnings} warnings",
                dir.display(),
                d.guests.len()
            ),
            "",
        ),
        _ => row(
            "configuration",
            State::Fail,
            format!("{}: {errors} errors", dir.display()),
            format!("`phoenix validate --config {}` shows them", dir.display()),
        ),
    }
}

fn lab_rows() -> Vec<Row> {
    let mut out = Vec::new();
    out.push(if phoenix_exec::root::is_root() {
        row("root", State::Pass, "running as root", "")
    } else {
        row(
            "root",
            State::Fail,
            "not root",
            "the lab makes network namespaces: run it as root (sudo)",
        )
    });
    let missing: Vec<&(&str, &str)> = LAB_PROGRAMS
        .iter()
        .filter(|(p, _)| on_path(p).is_none())
        .collect();
    out.push(if missing.is_empty() {
        let names: Vec<&str> = LAB_PROGRAMS.iter().map(|(p, _)| *p).collect();
        row("lab programs", State::Pass, names.join(", "), "")
    } else {
        let names: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
        let pkgs: Vec<&str> = missing.iter().map(|(_, k)| *k).collect();
        row(
            "lab programs",
            State::Fail,
            format!("not on PATH: {}", names.join(", ")),
            format!(
                "apt-get install {} (or `bash scripts/setup.sh` in a checkout)",
                pkgs.join(" ")
            ),
        )
    });
    for peer in [phoenix_lab::traefik::TRAEFIK, phoenix_lab::stepca::STEP_CA] {
        out.push(match phoenix_lab::peers::find(&peer) {
            Some(p) => row(
                &format!("lab peer {}", peer.name),
                State::Pass,
                p.display().to_string(),
                "",
            ),
            None => row(
                &format!("lab peer {}", peer.name),
                State::Fail,
                "not found",
                phoenix_lab::peers::not_found(&peer),
            ),
        });
    }
    out.push(policy_rc_d());
    out
}

/// Debian's `policy-rc.d` must refuse (exit 101) so that installing a peer's package never
/// starts its daemon in the root namespace.
fn policy_rc_d() -> Row {
    const PATH: &str = "/usr/sbin/policy-rc.d";
    let fix = "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d (packages then never start daemons in the root namespace)";
    if !Path::new(PATH).exists() {
        return row(
            "policy-rc.d",
            State::Fail,
            format!("{PATH} is missing"),
            fix,
        );
    }
    match std::process::Command::new(PATH)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(s) if s.code() == Some(101) => {
            row("policy-rc.d", State::Pass, format!("{PATH} exits 101"), "")
        }
        Ok(s) => row(
            "policy-rc.d",
            State::Fail,
            format!("{PATH} exits {s}, not 101"),
            fix,
        ),
        Err(e) => row("policy-rc.d", State::Fail, format!("{PATH}: {e}"), fix),
    }
}

/// Whether a transport error is the certificate's (not the network's).
fn is_tls(e: &PveError) -> bool {
    let text = format!("{e:#}").to_ascii_lowercase();
    [
        "certificate",
        "unknownissuer",
        "tls",
        "handshake",
        "fingerprint",
    ]
    .iter()
    .any(|w| text.contains(w))
}

fn node_rows(args: &DoctorArgs, asked: bool) -> Vec<Row> {
    let flags = crate::session::connection_flags(&args.pve);
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if !asked && flags.endpoint.is_none() && env(phoenix_pve::connection::ENV_ENDPOINT).is_none() {
        return vec![row(
            "node API",
            State::Skip,
            "no endpoint set",
            "pass --target pve with --endpoint (or set PROXMOX_VE_ENDPOINT) to check a node",
        )];
    }
    let settings = match ConnectionSettings::resolve(&flags, env) {
        Ok(s) => s,
        Err(e) => {
            return vec![row(
                "node settings",
                State::Fail,
                e.to_string(),
                "pass --endpoint/--node, --api-token (or $PROXMOX_VE_API_TOKEN) and --ca-file or --fingerprint",
            )];
        }
    };
    let mut out = vec![row(
        "node settings",
        State::Pass,
        format!("{} node {}", settings.endpoint, settings.node),
        "",
    )];
    let mut client = match PveClient::new(&settings) {
        Ok(c) => c,
        Err(e) => {
            out.push(row(
                "TLS trust",
                State::Fail,
                e.to_string(),
                "--ca-file takes the node's /etc/pve/pve-root-ca.pem; --fingerprint its SHA-256 (`pvenode cert info`)",
            ));
            return out;
        }
    };
    client.request_timeout = std::time::Duration::from_secs(args.pve.request_timeout.min(10));
    let insecure = matches!(settings.trust, phoenix_pve::TlsTrust::InsecureAcceptAny);
    match client.login().and_then(|()| client.get("/version", &[])) {
        Ok(v) => {
            out.push(row(
                "node reachable",
                State::Pass,
                format!("{} answers", settings.endpoint),
                "",
            ));
            out.push(if insecure {
                row(
                    "TLS trust",
                    State::Fail,
                    "certificate verification is off (--insecure-skip-tls-verify)",
                    "pass --ca-file /etc/pve/pve-root-ca.pem (copied from the node) or --fingerprint",
                )
            } else {
                row("TLS trust", State::Pass, "the node's certificate is trusted", "")
            });
            let version = v["version"].as_str().unwrap_or("?");
            out.push(row(
                "credentials",
                State::Pass,
                format!("accepted (Proxmox VE {version})"),
                "",
            ));
        }
        Err(e @ PveError::Transport { .. }) if is_tls(&e) => {
            out.push(row("node reachable", State::Pass, "TCP connects", ""));
            out.push(row(
                "TLS trust",
                State::Fail,
                e.to_string(),
                "--ca-file takes the node's /etc/pve/pve-root-ca.pem; --fingerprint its SHA-256 (`pvenode cert info`)",
            ));
        }
        Err(e @ PveError::Transport { .. }) => out.push(row(
            "node reachable",
            State::Fail,
            e.to_string(),
            "check the endpoint (https://HOST:8006), that pveproxy runs and that no firewall drops 8006",
        )),
        Err(e @ (PveError::Login { .. } | PveError::Http { .. })) => {
            out.push(row("node reachable", State::Pass, "the API answers", ""));
            out.push(row(
                "credentials",
                State::Fail,
                e.to_string(),
                "check the API token (USER@REALM!ID=SECRET) or the login, and its privileges (PVEAuditor at least to read)",
            ));
        }
        Err(e) => out.push(row("node API", State::Fail, e.to_string(), "")),
    }
    out
}

fn text(rows: &[Row]) -> String {
    let w = rows.iter().map(|r| r.check.len()).max().unwrap_or(0);
    let mut s = String::new();
    for r in rows {
        let mark = match r.state {
            State::Pass => "ok  ",
            State::Fail => "FAIL",
            State::Skip => "skip",
        };
        s.push_str(&format!("{mark}  {:w$}  {}\n", r.check, r.detail));
        if !r.fix.is_empty() && r.state != State::Pass {
            s.push_str(&format!("      {:w$}  fix: {}\n", "", r.fix));
        }
    }
    let failed = rows.iter().filter(|r| r.state == State::Fail).count();
    s.push_str(&format!(
        "{} checks: {} passed, {failed} failed, {} skipped\n",
        rows.len(),
        rows.iter().filter(|r| r.state == State::Pass).count(),
        rows.iter().filter(|r| r.state == State::Skip).count()
    ));
    s
}

pub fn run(args: &DoctorArgs) -> u8 {
    let mut rows = vec![config_row(&args.config)];
    if args.target != Some(DoctorTarget::Pve) {
        rows.extend(lab_rows());
    }
    if args.target != Some(DoctorTarget::Lab) {
        rows.extend(node_rows(args, args.target == Some(DoctorTarget::Pve)));
    }
    let failed = rows.iter().any(|r| r.state == State::Fail);
    match args.output {
        OutputFormat::Json => {
            let _ = crate::jsonout::print("doctor", &serde_json::json!({ "checks": rows }));
        }
        OutputFormat::Text => {
            let _ = write!(std::io::stdout(), "{}", text(&rows));
        }
    }
    if failed { exit::FAILED } else { exit::OK }
}
