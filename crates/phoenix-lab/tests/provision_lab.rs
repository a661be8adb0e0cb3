//! Provisioning inside the lab (`phoenix_lab::provision::run`) with `examples/homelab` up:
//! the first run places the guests' files under their roots with the planned content, owner
//! and mode (Traefik's static file and unit in 102's, step-ca's material in 103's, owned by
//! the `step` user created in 103's own passwd); packages, downloads and services are never
//! applied; a second run changes nothing; a file changed behind phoenix's back is rewritten;
//! the ingress path still answers; nothing outside the guest roots changed; teardown leaves
//! nothing. Root only; see `common::lab_available`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use common::*;
use phoenix_exec::guest::GuestExec;
use phoenix_lab::LabGuard;
use phoenix_lab::ingress::{STAND_IN_PAGE, TRUST_BUNDLE, guest_root, under};
use phoenix_lab::provision::{LabOutcome, LabProvisionReport, lab_exec, run};
use phoenix_model::model::GuestId;
use phoenix_plan::provision::{ProvisionOptions, TRAEFIK_UNIT, traefik_unit};

/// Host places provisioning would touch on a real guest: (path, size, mtime, mode, uid) of
/// every entry below, to compare before and after.
const WATCHED: &[&str] = &[
    "/etc/ssl/certs",
    "/usr/local/share/ca-certificates",
    "/etc/systemd/system",
    "/etc/apt/sources.list.d",
    "/etc/apt/keyrings",
    "/usr/local/bin",
    "/etc/passwd",
    "/etc/group",
    "/etc/nginx",
    "/etc/traefik",
    "/var/lib/phoenix",
    "/etc/step-ca",
];

fn listing(path: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return;
    };
    out.insert(
        path.to_string_lossy().into_owned(),
        format!(
            "{} {} {} {:o} {}",
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
            m.mode(),
            m.uid()
        ),
    );
    if m.is_dir()
        && let Ok(rd) = std::fs::read_dir(path)
    {
        for e in rd.flatten() {
            listing(&e.path(), out);
        }
    }
}

fn snapshot() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for p in WATCHED {
        listing(Path::new(p), &mut out);
    }
    out
}

fn outcome<'a>(r: &'a LabProvisionReport, guest: u32, key: &str) -> &'a LabOutcome {
    let g = r
        .guest(guest)
        .unwrap_or_else(|| panic!("guest {guest}: {r}"));
    &g.steps
        .iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("guest {guest} has no step {key}: {r}"))
        .outcome
}

fn uid_in(root: &Path, user: &str) -> u32 {
    std::fs::read_to_string(under(root, "/etc/passwd"))
        .expect("the guest's passwd")
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == user).then(|| f[2].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {user} in the guest's passwd"))
}

#[test]
fn provisioning_places_files_in_guest_roots_only() {
    if !lab_available() {
        return;
    }
    let before = snapshot();
    let prefix = unique_prefix();
    let guard = LabGuard::new(&prefix);
    let d = homelab();
    let report = lab_up(&d, &prefix);
    let opts = ProvisionOptions::default();
    let r102 = guest_root(&prefix, 102);
    let r103 = guest_root(&prefix, 103);
    let trust_before = std::fs::read_to_string(under(&r102, TRUST_BUNDLE)).unwrap();

    // `lab up` ran the plan's provision steps (files under the guest roots, services
    // started by their steps); provisioning again keeps every file and places nothing else.
    let first = run(&d, &prefix, &opts).expect("provision run");
    eprintln!("provisioning after lab up:\n{first}");
    assert_eq!(first.failed(), 0, "{first}");
    assert_eq!(first.applied(), 0, "{first}");
    for g in &first.guests {
        assert_eq!(g.root, guest_root(&prefix, g.guest));
        for s in &g.steps {
            let file = s.key.starts_with("file:") && !s.step.starts_with("download");
            let own = s.key.starts_with("command:");
            match &s.outcome {
                LabOutcome::Applied | LabOutcome::Kept => {
                    assert!(
                        file || own,
                        "guest {}: {} was {:?}",
                        g.guest,
                        s.step,
                        s.outcome
                    )
                }
                LabOutcome::Skipped(why) => assert!(
                    !file || s.step.contains("at apply time"),
                    "guest {}: file step {} skipped: {why}",
                    g.guest,
                    s.step
                ),
                LabOutcome::Failed(_) => unreachable!(),
            }
            if s.key.starts_with("package:") || s.key.starts_with("service:") {
                let LabOutcome::Skipped(why) = &s.outcome else {
                    panic!("{}: {:?}", s.step, s.outcome)
                };
                assert!(
                    why.starts_with("provided by the lab") || why.starts_with("not in the lab"),
                    "{}: {why}",
                    s.step
                );
            }
        }
    }
    // trusted_ca: the host's ca-certificates stands in; the lab's trust anchor is in place.
    let LabOutcome::Skipped(why) = outcome(&first, 102, "package:ca-certificates") else {
        panic!("ca-certificates applied in the lab")
    };
    assert!(why.contains("never installs"), "{why}");
    assert_eq!(
        std::fs::read_to_string(under(&r102, TRUST_BUNDLE)).unwrap(),
        trust_before
    );

    // Traefik's unit and static file in 102's root, with owner, mode and content.
    assert_eq!(
        *outcome(&first, 102, &format!("file:{TRAEFIK_UNIT}")),
        LabOutcome::Kept
    );
    // Written the way the lab runs it (in-guest paths into the root), read back as planned.
    let exec = lab_exec(&d, &prefix, GuestId(102)).unwrap();
    let unit = under(&r102, TRAEFIK_UNIT);
    let unit_on_disk = exec.to_lab(TRAEFIK_UNIT, &traefik_unit());
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), unit_on_disk);
    assert_eq!(
        exec.read_file(TRAEFIK_UNIT).unwrap().expect("unit").content,
        traefik_unit()
    );
    assert_eq!(mode(&unit), 0o644);
    assert_eq!(std::fs::metadata(&unit).unwrap().uid(), 0);
    let static_path = phoenix_render::traefik::STATIC_CONFIG_PATH;
    assert!(matches!(
        outcome(&first, 102, &format!("file:{static_path}")),
        LabOutcome::Applied | LabOutcome::Kept
    ));
    let rendered = phoenix_render::traefik::files(&d, phoenix_render::traefik::Api::Off).unwrap();
    let want = rendered
        .iter()
        .find(|f| f.path == static_path)
        .expect("rendered static file");
    let seen = exec.read_file(static_path).unwrap().expect("static file");
    assert_eq!(seen.content, want.content, "read back in the guest's form");
    assert_eq!(
        (seen.owner.as_str(), seen.group.as_str(), seen.mode),
        (want.owner.as_str(), want.group.as_str(), want.mode)
    );
    let on_disk = std::fs::read_to_string(under(&r102, static_path)).unwrap();
    assert_eq!(on_disk, exec.to_lab(static_path, &want.content));
    assert!(!on_disk.contains("\n    swarm:"), "lab adjustments kept");

    // step-ca's material under the model's ca_dir in 103's root, owned by `step`.
    let ca_dir = d.step_ca.ca_dir.trim_end_matches('/').to_string();
    assert_eq!(
        *outcome(&first, 103, "command:system user step"),
        LabOutcome::Kept
    );
    let step_uid = uid_in(&r103, "step");
    assert!(
        std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .lines()
            .all(|l| !l.starts_with("step:")),
        "the host got a step user"
    );
    let key = under(&r103, &format!("{ca_dir}/secrets/intermediate_ca_key"));
    let meta = std::fs::metadata(&key).expect("intermediate key placed");
    assert_eq!(
        (meta.uid(), meta.gid(), mode(&key)),
        (step_uid, step_uid, 0o600)
    );
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .contains("PRIVATE KEY")
    );
    let root_crt = under(&r103, &format!("{ca_dir}/certs/root_ca.crt"));
    assert_eq!(mode(&root_crt), 0o644);
    let db = under(&r103, &format!("{ca_dir}/db"));
    let m = std::fs::metadata(&db).unwrap();
    assert!(m.is_dir());
    assert_eq!((m.uid(), mode(&db)), (step_uid, 0o700));
    let ca_json = format!("file:{ca_dir}/config/ca.json");
    if report.ingress.as_ref().is_some_and(|i| i.step_ca.is_some()) {
        assert_eq!(*outcome(&first, 103, &ca_json), LabOutcome::Kept);
        let text =
            std::fs::read_to_string(under(&r103, &format!("{ca_dir}/config/ca.json"))).unwrap();
        assert!(
            text.contains(&under(&r103, &ca_dir).to_string_lossy().into_owned()),
            "{text}"
        );
    }

    // Second run: nothing changes.
    let second = run(&d, &prefix, &opts).expect("second run");
    assert_eq!(second.applied(), 0, "second run:\n{second}");
    assert_eq!(second.failed(), 0, "second run:\n{second}");
    assert_eq!(second.kept(), first.kept() + first.applied());

    // Changed behind phoenix's back: content of the unit, mode of the key.
    std::fs::write(&unit, "# edited by hand\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let third = run(&d, &prefix, &opts).expect("third run");
    eprintln!("third run:\n{third}");
    assert_eq!(third.applied(), 2, "{third}");
    assert_eq!(
        *outcome(&third, 102, &format!("file:{TRAEFIK_UNIT}")),
        LabOutcome::Applied
    );
    assert_eq!(
        *outcome(
            &third,
            103,
            &format!("file:{ca_dir}/secrets/intermediate_ca_key")
        ),
        LabOutcome::Applied
    );
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), unit_on_disk);
    assert_eq!(mode(&key), 0o600);

    // The lab's ingress still answers after provisioning rewrote its guests' files.
    if let Some(lease) = report
        .services
        .leases
        .iter()
        .find(|l| l.guest == 101)
        .and_then(|l| l.address.clone())
    {
        let ip: IpAddr = lease.split('/').next().unwrap().parse().unwrap();
        let root_pem = std::fs::read_to_string(under(&guest_root(&prefix, 101), TRUST_BUNDLE))
            .expect("trust bundle");
        let ok = fetch(
            &format!("{prefix}-wan"),
            SocketAddr::new(ip, 443),
            PORTAINER,
            &root_pem,
            Some(200),
            Duration::from_secs(10),
        );
        let resp = ok
            .result
            .as_ref()
            .expect("request")
            .as_ref()
            .expect("response");
        assert_eq!(resp.status, 200, "{ok}");
        assert!(resp.body.contains(STAND_IN_PAGE));
    }

    drop(guard);
    assert_gone(&prefix);
    let after = snapshot();
    let changed: Vec<_> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(before.keys().filter(|k| !after.contains_key(*k)).cloned())
        .collect();
    assert!(
        changed.is_empty(),
        "changed outside the guest roots: {changed:#?}"
    );
}
