//! The host-setup keys (`timezone`, `samba`, `nfs`, `users`): good values become
//! `DesiredState::host_setup`; every bad value is a located finding (file:line, pointer);
//! the Samba password is a secret reference, never plaintext in the model's output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

fn with_host_keys(keys: serde_json::Value) -> (tempfile::TempDir, phoenix_model::Validation) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
        }
    }
    let stacks = src.join("stacks");
    for s in std::fs::read_dir(&stacks).unwrap() {
        let s = s.unwrap();
        let to = dir.path().join("stacks").join(s.file_name());
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(s.path()).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
        }
    }
    let path = dir.path().join("phoenix_hypervisor_config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (k, val) in keys.as_object().unwrap() {
        v[k] = val.clone();
    }
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let validation = phoenix_model::validate_dir(dir.path());
    (dir, validation)
}

#[test]
fn good_values_become_the_host_setup() {
    let (_dir, v) = with_host_keys(serde_json::json!({
        "timezone": "Europe/Berlin",
        "samba": {"user": "heads", "password": {"env": "SMB_PW"}, "shares": [
            {"name": "media", "path": "/tank/media", "options": "browseable=yes read_only=no", "valid_users": ["heads", "@family"]}
        ]},
        "nfs": {"exports": [{"path": "/tank/vm", "clients": ["10.0.0.0/24", "nas.lan"], "options": ["rw", "sync"]}]},
        "users": {"username": "phoenix_admin", "password_hash": "NOT_SET", "sudo_access": true, "ssh_public_key": ""}
    }));
    let host = &v.desired.as_ref().unwrap().host_setup;
    let findings: Vec<_> = v
        .findings()
        .into_iter()
        .filter(|f| {
            ["/timezone", "/samba", "/nfs", "/users"]
                .iter()
                .any(|p| f.pointer.starts_with(p))
        })
        .map(|f| (f.code, f.pointer))
        .collect();
    // All four are applied by `phoenix setup`: no "read but not applied" finding.
    assert_eq!(findings, []);
    assert_eq!(host.timezone.as_deref(), Some("Europe/Berlin"));
    let samba = host.samba.as_ref().unwrap();
    assert_eq!(samba.workgroup, "WORKGROUP");
    assert_eq!(
        samba.shares[0].options,
        [
            ("browseable".to_string(), "yes".to_string()),
            ("read_only".into(), "no".into())
        ]
    );
    assert_eq!(samba.shares[0].valid_users, ["heads", "@family"]);
    assert_eq!(host.nfs_exports[0].clients, ["10.0.0.0/24", "nas.lan"]);
    let admin = host.admin_user.as_ref().unwrap();
    assert!(admin.sudo && admin.password_hash.is_none() && admin.ssh_public_key.is_none());
    let json = serde_json::to_string(host).unwrap();
    assert!(json.contains("\"password\":\"env:SMB_PW\""), "{json}");
}

#[test]
fn bad_values_are_located_and_a_plaintext_password_warned() {
    let (_dir, v) = with_host_keys(serde_json::json!({
        "timezone": "../etc/shadow",
        "samba": {"user": "heads", "password": "hunter2-plain", "workgroup": "A VERY LONG WORKGROUP", "shares": [
            {"name": "global", "path": "/x"},
            {"name": "ok", "path": "/tank/ok", "options": "path=/etc browseable"},
            {"name": "OK", "path": "/tank/ok2", "valid_users": ["Root;rm"]}
        ]},
        "nfs": {"exports": [
            {"path": "/tank/a", "clients": [], "options": ["rw"]},
            {"path": "/tank/b", "clients": ["10.0.0.1(rw)"], "options": ["rw,no_root_squash"]}
        ]}
    }));
    let mut found: Vec<(&str, String)> = v
        .findings()
        .into_iter()
        .filter(|f| {
            ["/timezone", "/samba", "/nfs"]
                .iter()
                .any(|p| f.pointer.starts_with(p))
        })
        .map(|f| {
            assert!(f.line > 0, "{f:?}");
            assert!(!f.message.contains("hunter2"), "{f:?}");
            (f.code, f.pointer)
        })
        .collect();
    found.sort();
    let want = [
        ("PHX-E024", "/nfs/exports/1/clients/0"),
        ("PHX-E040", "/samba/shares/0/name"),
        ("PHX-E040", "/samba/shares/2/valid_users/0"),
        ("PHX-E040", "/samba/workgroup"),
        ("PHX-E053", "/nfs/exports/0/clients"),
        ("PHX-E053", "/nfs/exports/1/options/0"),
        ("PHX-E053", "/samba/shares/1/options"),
        ("PHX-E053", "/samba/shares/1/options"),
        ("PHX-E053", "/timezone"),
    ];
    let want: Vec<(&str, String)> = want.iter().map(|(c, p)| (*c, p.to_string())).collect();
    let plaintext: Vec<_> = found
        .iter()
        .filter(|(c, _)| *c != "PHX-E024" && !c.starts_with("PHX-E0"))
        .cloned()
        .collect();
    let errors: Vec<_> = found
        .into_iter()
        .filter(|(c, _)| c.starts_with("PHX-E0"))
        .collect();
    assert_eq!(errors, want);
    assert!(
        plaintext.iter().any(|(_, p)| p == "/samba/password"),
        "{plaintext:?}"
    );
}

#[test]
fn zfs_is_read_and_checked() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/upstream/rootesting-2025-11-25/etc");
    let v = phoenix_model::validate_dir(&dir);
    let zfs_findings: Vec<_> = v
        .findings()
        .into_iter()
        .filter(|f| f.pointer.starts_with("/zfs"))
        .map(|f| (f.code, f.pointer))
        .collect();
    assert_eq!(zfs_findings, [], "applied by phoenix setup, and valid");
    let zfs = v.desired.unwrap().host_setup.zfs.unwrap();
    assert_eq!(zfs.arc_max_gb, Some(32));
    assert_eq!(zfs.pools.len(), 2);
    assert_eq!(zfs.datasets.len(), 12);
    assert_eq!(zfs.datasets[0].name, "quickOS/vm-disks");
    assert_eq!(
        zfs.datasets[0].properties[3],
        ("quota".to_string(), "800G".to_string())
    );

    let (_dir, v) = with_host_keys(serde_json::json!({"zfs": {
        "pools": [
            {"name": "tank", "raid_level": "mirror", "disks": ["/dev/disk/by-id/ata-A"]},
            {"name": "fast", "raid_level": "raid5", "disks": ["/dev/sdb"]}
        ],
        "datasets": [
            {"name": "vm", "pool": "nope", "properties": "recordsize=128K,compression", "proxmox_storage_type": "lvm", "proxmox_content_type": "images,movies"}
        ]
    }}));
    let mut found: Vec<(&str, String)> = v
        .findings()
        .into_iter()
        .filter(|f| f.pointer.starts_with("/zfs/"))
        .map(|f| (f.code, f.pointer))
        .collect();
    found.sort();
    let want = [
        ("PHX-E041", "/zfs/pools/1/disks/0"),
        ("PHX-E053", "/zfs/datasets/0/pool"),
        ("PHX-E053", "/zfs/datasets/0/properties"),
        ("PHX-E053", "/zfs/datasets/0/proxmox_content_type"),
        ("PHX-E053", "/zfs/datasets/0/proxmox_storage_type"),
        ("PHX-E053", "/zfs/pools/0/disks"),
        ("PHX-E053", "/zfs/pools/1/raid_level"),
    ];
    let want: Vec<(&str, String)> = want.iter().map(|(c, p)| (*c, p.to_string())).collect();
    assert_eq!(found, want);
}

#[test]
fn an_ssh_key_must_be_one_public_key_line() {
    for bad in [
        "ssh-ed25519 AAAAkey ops@laptop\nssh-rsa AAAAinjected other",
        "not a key",
        "ssh-ed25519",
    ] {
        let (_dir, v) = with_host_keys(serde_json::json!({
            "users": {"username": "ops", "sudo_access": true, "ssh_public_key": bad}
        }));
        let found: Vec<_> = v
            .findings()
            .into_iter()
            .filter(|f| f.pointer.starts_with("/users"))
            .map(|f| (f.code, f.pointer, f.line > 0))
            .collect();
        assert_eq!(
            found,
            [("PHX-E053", "/users/ssh_public_key".to_string(), true)],
            "{bad:?}"
        );
    }
    let (_dir, v) = with_host_keys(serde_json::json!({
        "users": {"username": "ops", "ssh_public_key": "ssh-ed25519 AAAAC3Nza ops@laptop"}
    }));
    let host = &v.desired.unwrap().host_setup;
    assert_eq!(
        host.admin_user.as_ref().unwrap().ssh_public_key.as_deref(),
        Some("ssh-ed25519 AAAAC3Nza ops@laptop")
    );
}
