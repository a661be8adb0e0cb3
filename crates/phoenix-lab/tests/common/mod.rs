//! Helpers shared by the lab tests: the root gate, unique prefixes, the example model, and
//! small probes run inside the lab's namespaces (argv only).

#![allow(dead_code, clippy::expect_used)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::process::Command;

use phoenix_lab::{UpOptions, UpReport};
use phoenix_model::model::DesiredState;

/// True when the lab can run here. Not root (or `ping` missing): a note and `false` unless
/// `CI` is set, where it fails instead.
pub fn lab_available() -> bool {
    let why = if !phoenix_lab::is_root() {
        Some("not root")
    } else if Command::new("ping").arg("-V").output().is_err() {
        Some("`ping` missing (apt-get install iputils-ping)")
    } else {
        None
    };
    match why {
        None => true,
        Some(w) if std::env::var_os("CI").is_some() => panic!("lab tests need root and ping: {w}"),
        Some(w) => {
            eprintln!("note: lab test skipped: {w}");
            false
        }
    }
}

/// `t` + 5 random hex characters.
pub fn unique_prefix() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("t{:05x}", h.finish() & 0xf_ffff)
}

pub fn homelab() -> DesiredState {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    phoenix_model::validate_dir(&dir)
        .desired
        .expect("examples/homelab validates")
}

/// The homelab with the cluster firewall switched off: the network-layer tests ping across
/// the mesh, which the guests' firewalls (policy DROP, no ICMP rule) rightly refuse; the
/// firewall itself is tested in `guestfw_lab.rs` and through `verify`.
#[allow(dead_code)] // not every test binary uses it
pub fn homelab_unfiltered() -> DesiredState {
    let mut d = homelab();
    d.firewall.enabled = false;
    d
}

/// `ip netns exec NS argv…`; success or not.
pub fn in_ns(ns: &str, argv: &[&str]) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(argv)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// stdout of `ip netns exec NS argv…` (panics on failure).
pub fn in_ns_out(ns: &str, argv: &[&str]) -> String {
    let o = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(argv)
        .output()
        .expect("ip runs");
    assert!(
        o.status.success(),
        "{argv:?} in {ns}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn ping(ns: &str, addr: &str) -> bool {
    in_ns(ns, &["ping", "-c1", "-W1", addr])
}

/// Sum of `counter packets N` in an nft listing.
pub fn packets(listing: &str) -> u64 {
    listing
        .split("packets ")
        .skip(1)
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Nothing of the lab is left: no namespace, no /etc/netns dir, no state dir.
pub fn assert_gone(prefix: &str) {
    assert_eq!(
        phoenix_lab::teardown::namespaces(prefix),
        Vec::<String>::new()
    );
    assert_eq!(
        phoenix_lab::teardown::entries_with_prefix(phoenix_lab::teardown::NETNS_ETC, prefix),
        Vec::<String>::new()
    );
    assert!(!phoenix_lab::state_dir(prefix).exists());
    let listed = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        !listed.lines().any(|l| l.starts_with(&format!("{prefix}-"))),
        "ip netns list still shows {prefix}: {listed}"
    );
}

/// True when `dockerd` is installed (the Swarm tests need it). Missing: a note and `false`
/// unless `CI` is set, where it fails instead (scripts/setup.sh installs docker.io).
pub fn dockerd_available() -> bool {
    let found = phoenix_lab::swarm::dockerd_available();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "the Swarm tests need dockerd (scripts/setup.sh installs docker.io)"
        );
        eprintln!("note: Swarm test skipped: dockerd missing");
    }
    found
}

/// `lab up` of `d` under `prefix` (fresh, not recreated); panics with the error.
pub fn lab_up(d: &DesiredState, prefix: &str) -> UpReport {
    phoenix_lab::up(
        d,
        &UpOptions {
            prefix: prefix.to_string(),
            recreate: false,
        },
    )
    .expect("lab up")
}

/// The permission bits of `path`.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The homelab's Portainer name (SNI of the route).
pub const PORTAINER: &str = "portainer.internal.thinkheads.ai";

/// `GET https://PORTAINER/` (SNI [`PORTAINER`], Host `host`) to `addr` from namespace `ns`,
/// trusting `root_pem`; retried until the status is `want` (any answer when `None`) or
/// `within` has passed (services that are still loading their configuration).
pub fn fetch(
    ns: &str,
    addr: std::net::SocketAddr,
    host: &str,
    root_pem: &str,
    want: Option<u16>,
    within: std::time::Duration,
) -> phoenix_verify::https::HttpsOutcome {
    use phoenix_verify::https::{HttpsRequest, get};
    let req = HttpsRequest {
        addr,
        sni: PORTAINER.into(),
        host: host.into(),
        path: "/".into(),
        root_pem: root_pem.into(),
    };
    let start = std::time::Instant::now();
    loop {
        let o = get(
            &phoenix_verify::NetnsEndpoint::new(ns),
            &req,
            std::time::Duration::from_secs(3),
            true,
        )
        .expect("probe");
        let status = o
            .result
            .as_ref()
            .ok()
            .and_then(|r| r.as_ref())
            .map(|r| r.status);
        if want.is_none() || status == want || start.elapsed() > within {
            return o;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Every process whose command line mentions the lab's state dir (services, dockerd,
/// containerd, shims): `pid cmdline`.
pub fn processes_of(prefix: &str) -> Vec<String> {
    let marker = phoenix_lab::state_dir(prefix)
        .to_string_lossy()
        .into_owned();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            cmd.contains(&marker).then(|| format!("{pid} {cmd}"))
        })
        .collect()
}

/// What [`lab_sync_all`] did.
pub struct LabSync {
    pub plan: phoenix_plan::Plan,
    /// Every wave succeeded.
    pub ok: bool,
    /// The actions the journal says changed something.
    pub done: Vec<String>,
    /// The Swarm step's changes.
    pub swarm_changes: Vec<String>,
}

/// `sync all --target lab --provision` of `d` under `prefix` through the one pipeline
/// (`phoenix_exec::target::sync_all` on a `LabTarget`, as the CLI runs it). Panics when it
/// cannot run.
pub fn lab_sync_all(d: &DesiredState, prefix: &str) -> LabSync {
    use phoenix_exec::target::SyncRequest;
    use phoenix_plan::Request;
    let mut target =
        phoenix_lab::target::LabTarget::new(d, prefix, phoenix_render::RenderOptions::default())
            .expect("lab target");
    target.prepare(d).expect("lab prepare");
    let req = SyncRequest {
        request: Request::SyncAll,
        only: Default::default(),
        provision: true,
        dry_run: false,
    };
    let run = phoenix_exec::target::sync_all(&mut target, d, &req, None, &mut |_| {})
        .expect("sync all --target lab");
    let journal = run.journal.expect("not a dry run");
    for (action, e) in journal.failures() {
        eprintln!("FAILED {action}: {e}");
    }
    let done = journal
        .entries
        .iter()
        .filter(|e| matches!(e.outcome, phoenix_exec::journal::Outcome::Done))
        .map(|e| e.action.to_string())
        .collect();
    LabSync {
        plan: run.plan,
        ok: journal.is_success(),
        done,
        swarm_changes: target.swarm_changes.clone(),
    }
}
