//! `phoenix setup --target pve` on a scratch host root with the operator's real configuration:
//! the dry run writes nothing, the run writes the files and skips (with reasons) what a
//! scratch root cannot do, the second run changes nothing; a Samba password secret that
//! cannot be read is a usage error naming the key, never the value.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ROOTESTING, phoenix, scratch_host_root as scratch, text};

#[test]
fn setup_writes_once_then_changes_nothing() {
    let root = scratch();
    let r = root.path().to_str().unwrap();
    let args = [
        "setup",
        "--target",
        "pve",
        "-c",
        ROOTESTING,
        "--host-root",
        r,
    ];
    let dry = phoenix(&[&args[..], &["--dry-run"]].concat());
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    let out = text(&dry.stdout);
    assert!(out.starts_with("phoenix setup: 6 changes"), "{out}");
    assert!(out.contains("write /etc/samba/smb.conf (missing)"), "{out}");
    assert!(!root.path().join("etc/samba").exists(), "a dry run wrote");
    let detailed = phoenix(&[&args[..], &["--dry-run", "--detailed-exitcode"]].concat());
    assert_eq!(detailed.status.code(), Some(2), "changes planned");

    // Not a terminal and no --yes: refused before anything changes, and the lock is freed.
    let refused = phoenix(&args);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stdout));
    assert!(
        text(&refused.stderr).contains("without confirmation: not a terminal"),
        "{}",
        text(&refused.stderr)
    );
    assert!(
        !root.path().join("etc/samba").exists(),
        "a refused run wrote"
    );

    let args = [&args[..], &["--yes"]].concat();
    let run = phoenix(&args);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let out = text(&run.stdout);
    assert!(
        out.contains("done        write /etc/exports.d/phoenix.exports (missing)"),
        "{out}"
    );
    assert!(
        out.contains("skipped     `exportfs -ra`: the host root"),
        "{out}"
    );
    let conf = std::fs::read_to_string(root.path().join("etc/samba/smb.conf")).unwrap();
    assert!(conf.contains("[shared-prod-data]\n   path = /quickOS/shared-prod-data\n"));

    let again = phoenix(&args);
    assert!(
        text(&again.stdout).starts_with("phoenix setup: 0 changes"),
        "{}",
        text(&again.stdout)
    );

    let lab = phoenix(&["setup", "--target", "lab", "-c", ROOTESTING]);
    assert_eq!(lab.status.code(), Some(2));
    assert!(text(&lab.stderr).contains("the lab twin has no host setup yet"));
}

#[test]
fn unreadable_samba_secret_is_named_not_shown() {
    let dir = tempfile::tempdir().unwrap();
    common::copy_tree(
        std::path::Path::new(ROOTESTING).parent().unwrap(),
        dir.path(),
    );
    let config = dir.path().join("etc");
    let path = config.join("phoenix_hypervisor_config.json");
    let text_in = std::fs::read_to_string(&path).unwrap();
    let edited = text_in.replacen(
        "\"user\": \"heads\",",
        "\"user\": \"heads\", \"password\": {\"env\": \"PHOENIX_TEST_UNSET_SMB_PW\"},",
        1,
    );
    assert_ne!(edited, text_in);
    std::fs::write(&path, edited).unwrap();
    let root = scratch();
    let out = phoenix(&[
        "setup",
        "--target",
        "pve",
        "-c",
        config.to_str().unwrap(),
        "--host-root",
        root.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("samba.password: environment variable PHOENIX_TEST_UNSET_SMB_PW is not set"),
        "{err}"
    );
}
