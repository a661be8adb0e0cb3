//! step-ca in the CA guest with `examples/homelab` up: from the proxy's namespace,
//! `https://172.16.100.11:9000/health` answers `{"status":"ok"}` over TLS verified against the
//! lab root, one certificate signed through it with the run's JWK provisioner chains to the lab
//! root (`openssl verify`), the root key stays out of the guest root, secrets are 0600,
//! `lab status` lists it, and `lab down` (timed) leaves no step-ca or Traefik of this lab.
//! Root only (see `common::lab_available`); without the step-ca binary a note and a pass,
//! unless `CI` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::process::Command;
use std::time::{Instant, SystemTime};

use common::*;
use phoenix_lab::ingress::{TRUST_BUNDLE, guest_root, under};
use phoenix_lab::stepca::{STEP_DIR, step_ca_binary};
use phoenix_lab::{LabGuard, down, status};
use phoenix_model::model::{CertKind, San};
use phoenix_pki::LeafRequest;
use phoenix_pki::stepca::{ProvisionerKey, StepCaClient, StepCaIssuer};
use phoenix_verify::{NetnsEndpoint, with_net};

const LEAF: &str = "lab-test.internal.thinkheads.ai";

fn step_ca_available() -> bool {
    if step_ca_binary().is_some() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("step-ca binary missing; CI must build it (bash scripts/build-step-ca.sh)");
    }
    eprintln!("note: step-ca not built; skipping (run scripts/build-step-ca.sh)");
    false
}

fn pgrep(pattern: &str) -> String {
    let o = Command::new("pgrep")
        .args(["-a", "-f", pattern])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn step_ca_in_the_ca_guest_signs_from_the_proxy() {
    if !lab_available() || !step_ca_available() {
        return;
    }
    let prefix = unique_prefix();
    let guard = LabGuard::new(&prefix);
    let d = homelab();
    let report = lab_up(&d, &prefix);
    let ing = report.ingress.as_ref().expect("ingress");
    let sc = ing.step_ca.clone().expect("step-ca started");
    eprintln!("step-ca: {sc:?}; notes {:?}", ing.notes);
    assert_eq!(sc.url, "https://172.16.100.11:9000");
    assert_eq!(sc.ns, format!("{prefix}-g103"));

    // Material: secrets 0600, the root key only in the lab's CA dir.
    assert_eq!(mode(&sc.provisioner_key), 0o600);
    let step_dir = under(&guest_root(&prefix, 103), STEP_DIR);
    assert_eq!(mode(&step_dir.join("secrets/intermediate_ca_key")), 0o600);
    assert_eq!(mode(&step_dir.join("secrets/password")), 0o600);
    let root_key = std::fs::read_to_string(ing.ca_dir.join("root.key")).expect("root key");
    let roots = phoenix_lab::state_dir(&prefix).join("root");
    let mut stack = vec![roots];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if let Ok(text) = std::fs::read_to_string(&p) {
            assert!(!text.contains(root_key.trim()), "root key in {p:?}");
        }
    }

    let st = status(&prefix).expect("status");
    let svc = st.services.iter().find(|s| s.name == "step-ca");
    assert!(svc.is_some_and(|s| s.alive), "{:?}", st.services);

    // From the proxy's namespace, trusting only the lab root.
    let root_pem = std::fs::read_to_string(under(&guest_root(&prefix, 102), TRUST_BUNDLE))
        .expect("trust bundle in the proxy's root");
    let key = std::fs::read_to_string(&sc.provisioner_key).expect("provisioner key");
    let (url, root, name) = (sc.url.clone(), root_pem.clone(), sc.provisioner.clone());
    let t0 = Instant::now();
    let issued = with_net(&NetnsEndpoint::new(format!("{prefix}-g102")), move || {
        let client = StepCaClient::new(&url, &root).map_err(|e| e.to_string())?;
        client.health().map_err(|e| format!("health: {e}"))?;
        let prov = ProvisionerKey::from_file_contents(&name, &key).map_err(|e| e.to_string())?;
        let issuer = StepCaIssuer::connect(client, prov).map_err(|e| e.to_string())?;
        let sans = [
            San::Dns(LEAF.into()),
            San::Ip("172.16.100.12".parse().unwrap()),
        ];
        let req = LeafRequest {
            common_name: LEAF,
            sans: &sans,
            kind: CertKind::Server,
            lifetime_hours: 1,
        };
        issuer
            .issue(&req, SystemTime::now())
            .map_err(|e| format!("sign: {e}"))
    })
    .expect("probe thread")
    .unwrap_or_else(|e| {
        let log = std::fs::read_to_string(phoenix_lab::state_dir(&prefix).join("step-ca.out"));
        panic!("{e}\nstep-ca log: {log:?}")
    });
    eprintln!("health + sign from the proxy: {:?}", t0.elapsed());

    // openssl verify on the files (no network): leaf → intermediate → the lab root.
    let dir = phoenix_lab::state_dir(&prefix).join("test-verify");
    std::fs::create_dir_all(&dir).unwrap();
    let files = [
        ("root.pem", root_pem.as_str()),
        ("int.pem", issued.intermediates_pem.as_str()),
        ("leaf.pem", issued.leaf_pem.as_str()),
    ];
    for (n, text) in files {
        std::fs::write(dir.join(n), text).unwrap();
    }
    let o = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(dir.join("root.pem"))
        .arg("-untrusted")
        .arg(dir.join("int.pem"))
        .arg(dir.join("leaf.pem"))
        .output()
        .expect("openssl");
    assert!(
        o.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    // Teardown, timed: well under 2 s with Traefik's zero grace timeout.
    let t1 = Instant::now();
    let down_report = down(&prefix).expect("lab down");
    let took = t1.elapsed();
    eprintln!("lab down: {took:?}, {} processes", down_report.killed.len());
    drop(guard);
    let state = format!("/run/phoenix-lab/{prefix}/");
    for p in ["step-ca", "traefik", "nginx"] {
        let left: Vec<String> = pgrep(p)
            .lines()
            .filter(|l| l.contains(&state))
            .map(str::to_string)
            .collect();
        assert!(left.is_empty(), "{p} left: {left:?}");
    }
    assert!(took.as_millis() < 1500, "lab down took {took:?}");
}
