//! `phoenix setup --target pve` with the operator's configuration (rootesting) against fakepve
//! (an external process) and a scratch host root: the datasets' Proxmox storage is registered
//! with its type, pool or path and content, the admin becomes `phoenix_admin@pam` with
//! Administrator on `/`; a second run sends no write; a content type changed behind phoenix's
//! back is put back in place; a dataset the configuration drops is reported and its storage
//! left, and removed only with `--remove-dropped-storage`. `sync all --only host-setup` runs the
//! same steps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod cli_common;
#[path = "../../phoenix-pve/tests/common/mod.rs"]
mod common;
mod pve_support;

use std::path::{Path, PathBuf};

use cli_common::{ROOTESTING, scratch_host_root as scratch};
use common::{FakePve, fakepve_available};
use pve_support::{node_cmd, run_json};

fn setup(
    pve: &FakePve,
    root: &Path,
    config: &Path,
    extra: &[&str],
) -> (i32, serde_json::Value, String) {
    let args = [&["setup", "--target", "pve", "-o", "json"][..], extra].concat();
    run_json(node_cmd(pve, root, config, &args))
}

fn writes(pve: &FakePve, since: usize) -> Vec<(String, String)> {
    pve.requests()
        .into_iter()
        .skip(since)
        .filter(|(m, _)| m != "GET")
        .collect()
}

fn storage(pve: &FakePve) -> serde_json::Value {
    pve.client(phoenix_pve::TlsTrust::CaFile(pve.pki.ca_pem.clone()))
        .get("/storage", &[])
        .unwrap()
}

fn find<'a>(list: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    list.as_array().unwrap().iter().find(|s| s["storage"] == id)
}

/// rootesting's etc/ copied, with `edit` applied to the hypervisor file.
fn edited(edit: impl Fn(&mut serde_json::Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(ROOTESTING).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    let path = dir.path().join("phoenix_hypervisor_config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    dir
}

#[test]
fn storage_and_the_admin_are_registered_once_and_kept() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&serde_json::json!({}));
    let root = scratch();
    let config = PathBuf::from(ROOTESTING);
    let (code, report, stderr) = setup(&pve, root.path(), &config, &[]);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    let list = storage(&pve);
    let vm = find(&list, "quickOS-vm-disks").expect("zfspool registered");
    assert_eq!(vm["type"], "zfspool");
    assert_eq!(vm["pool"], "quickOS/vm-disks");
    assert_eq!(vm["content"], "images");
    let iso = find(&list, "fastData-shared-iso").expect("dir registered");
    assert_eq!(iso["type"], "dir");
    assert_eq!(iso["path"], "/fastData/shared-iso");
    assert_eq!(iso["content"], "iso,vztmpl");
    let made = std::fs::read_to_string(root.path().join("var/lib/phoenix/storage-made")).unwrap();
    assert_eq!(made.lines().count(), 12, "{made}");
    for id in made.lines() {
        assert!(
            find(&list, id).is_some(),
            "{id} recorded but not in {list:#}"
        );
    }
    let client = pve.client(phoenix_pve::TlsTrust::CaFile(pve.pki.ca_pem.clone()));
    let users = client.get("/access/users", &[]).unwrap();
    assert!(users.to_string().contains("phoenix_admin@pam"), "{users}");
    let acl = client.get("/access/acl", &[]).unwrap();
    assert!(
        acl.as_array().unwrap().iter().any(|e| e["path"] == "/"
            && e["roleid"] == "Administrator"
            && e["ugid"] == "phoenix_admin@pam"),
        "{acl}"
    );

    // Second run: nothing differs, no write reaches the API.
    let before = pve.requests().len();
    let (code, report, stderr) = setup(&pve, root.path(), &config, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["changes"], 0, "{report:#}");
    assert_eq!(writes(&pve, before), Vec::<(String, String)>::new());

    // A content type changed behind phoenix's back is one PUT back.
    let params = std::collections::BTreeMap::from([("content".to_string(), "rootdir".to_string())]);
    client
        .write_named("PUT", "/storage/quickOS-vm-disks", &params)
        .unwrap();
    let before = pve.requests().len();
    let (code, report, _) = setup(&pve, root.path(), &config, &[]);
    assert_eq!(code, 0);
    assert_eq!(report["changes"], 1, "{report:#}");
    assert_eq!(
        writes(&pve, before),
        [(
            "PUT".to_string(),
            "/api2/json/storage/quickOS-vm-disks".to_string()
        )]
    );
    assert_eq!(
        find(&storage(&pve), "quickOS-vm-disks").unwrap()["content"],
        "images"
    );
}

#[test]
fn dropped_storage_is_reported_and_removed_only_when_asked() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&serde_json::json!({}));
    let root = scratch();
    let (code, _, stderr) = setup(&pve, root.path(), Path::new(ROOTESTING), &[]);
    assert_eq!(code, 0, "{stderr}");
    let dropped = edited(|v| {
        let ds = v["zfs"]["datasets"].as_array_mut().unwrap();
        ds.retain(|d| d["name"] != "shared-iso");
    });
    let before = pve.requests().len();
    let (code, report, _) = setup(&pve, root.path(), dropped.path(), &[]);
    assert_eq!(code, 0);
    assert_eq!(report["changes"], 0, "{report:#}");
    assert!(
        report.to_string().contains("storage fastData-shared-iso: phoenix made it and the configuration dropped it: left in place"),
        "{report:#}"
    );
    assert!(writes(&pve, before).is_empty());
    assert!(find(&storage(&pve), "fastData-shared-iso").is_some());

    let (code, report, stderr) = setup(
        &pve,
        root.path(),
        dropped.path(),
        &["--remove-dropped-storage"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        find(&storage(&pve), "fastData-shared-iso").is_none(),
        "{report:#}"
    );
    let made = std::fs::read_to_string(root.path().join("var/lib/phoenix/storage-made")).unwrap();
    assert!(!made.contains("fastData-shared-iso"));
    assert_eq!(made.lines().count(), 11);
    let (_, report, _) = setup(
        &pve,
        root.path(),
        dropped.path(),
        &["--remove-dropped-storage"],
    );
    assert_eq!(report["changes"], 0, "{report:#}");
}

#[test]
fn sync_all_only_host_setup_runs_the_same_steps() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&serde_json::json!({}));
    let root = scratch();
    let config = Path::new(ROOTESTING);
    let args = [
        "sync",
        "all",
        "--target",
        "pve",
        "--only",
        "host-setup",
        "-o",
        "json",
    ];
    let (code, dry, stderr) = run_json(node_cmd(
        &pve,
        root.path(),
        config,
        &[&args[..], &["--dry-run"]].concat(),
    ));
    assert_eq!(code, 0, "{stderr}");
    // The same plan `phoenix setup --dry-run` makes.
    let (_, setup_dry, _) = setup(&pve, root.path(), config, &["--dry-run"]);
    assert_eq!(dry["plan"], setup_dry["plan"]);
    // 6 host files, the storage record, 12 storages, the user and its ACL.
    assert_eq!(dry["changes"], 21, "{dry:#}");
    assert_eq!(dry["needs_reboot"].as_array().unwrap().len(), 1, "{dry:#}");
    assert!(dry["destructive"].as_array().unwrap().is_empty());
    assert!(!root.path().join("etc/samba").exists(), "a dry run wrote");

    let (code, report, stderr) = run_json(node_cmd(&pve, root.path(), config, &args));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        report["journal"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["outcome"] != "failed")
    );
    assert!(find(&storage(&pve), "quickOS-vm-disks").is_some());
    let (_, again, _) = run_json(node_cmd(&pve, root.path(), config, &args));
    assert_eq!(again["changes"], 0, "{again:#}");

    let lab = std::process::Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args([
            "sync",
            "all",
            "--target",
            "lab",
            "--only",
            "host-setup",
            "-c",
            ROOTESTING,
        ])
        .output()
        .unwrap();
    assert_eq!(lab.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&lab.stderr).contains("the lab twin has no host setup yet"));
}
