//! The admin user on a live node whose account tools are the recorded stand-in (`useradd`,
//! `chpasswd`, `visudo` first on PATH, changing only the scratch root's passwd/group/shadow):
//! the account is made, the password hash goes to `chpasswd -e` on stdin only (never argv,
//! the plan or the journal), the sudoers file is `visudo`-checked before it is put in place,
//! the SSH key lands in authorized_keys 0600 owned by the user; a second run changes nothing,
//! a new hash is one `chpasswd`, sudo switched off removes the file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::MetadataExt;

use phoenix_host::plan::PlanInputs;
use phoenix_host::users::Hidden;
use phoenix_host::{Scope, Secrets, SetupPlan, Step, apply_with, observe, plan};
use phoenix_model::host::{AdminUser, HostSetup};
use phoenix_model::model::Secret;
use support::{StandinNode, writes};

const HASH: &str = "$6$rounds=5000$saltsalt$0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ./0123456789abcdefghijk";
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPhoenixTestKeyOnlyForTests ops@laptop";

fn admin(sudo: bool) -> HostSetup {
    HostSetup {
        admin_user: Some(AdminUser {
            username: "opsadmin".into(),
            password_hash: Some(Secret::Env("PHX_ADMIN_HASH".into())),
            sudo,
            ssh_public_key: Some(KEY.into()),
        }),
        ..HostSetup::default()
    }
}

fn node() -> StandinNode {
    let node = StandinNode::new(&serde_json::json!({}));
    let etc = node.root().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    std::fs::write(etc.join("group"), "root:x:0:\n").unwrap();
    std::fs::write(etc.join("shadow"), "root:*:20000:0:99999:7:::\n").unwrap();
    node
}

fn plan_on(node: &StandinNode, setup: &HostSetup, hash: &str) -> SetupPlan {
    let observed = observe(node, setup, Scope::Live).unwrap();
    let inputs = PlanInputs {
        admin_password_hash: Some(Hidden(hash.into())),
        ..PlanInputs::default()
    };
    plan(setup, &observed, &inputs)
}

fn secrets(hash: &str) -> Secrets<'_> {
    Secrets {
        admin_password_hash: Some(hash.as_bytes()),
        ..Secrets::default()
    }
}

#[test]
fn the_admin_is_made_once_with_the_hash_on_stdin_only() {
    let node = node();
    let setup = admin(true);
    let p = plan_on(&node, &setup, HASH);
    let shown: Vec<String> = p
        .steps
        .iter()
        .filter(|s| s.is_change())
        .map(ToString::to_string)
        .collect();
    assert_eq!(shown.len(), 4, "{shown:#?}");
    assert!(shown[0].starts_with("run `useradd --create-home --shell /bin/bash opsadmin`"));
    assert!(shown[1].starts_with("set the password hash of opsadmin with `chpasswd -e`"));
    assert!(
        shown[2]
            .contains("/etc/sudoers.d/phoenix-opsadmin (missing), checked first with `visudo -cf"),
        "{}",
        shown[2]
    );
    assert!(shown[3].starts_with("write /home/opsadmin/.ssh/authorized_keys (missing)"));

    node.clear_calls();
    let journal = apply_with(&node, None, &p, &secrets(HASH));
    assert!(!journal.failed(), "{:#?}", journal.entries);
    let calls = node.calls();
    let names: Vec<&str> = calls.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(names, ["useradd", "chpasswd", "visudo"], "{calls:?}");
    assert_eq!(calls[1], ["chpasswd", "-e"]);
    assert_eq!(calls[2][1], "-cf");
    assert!(calls[2][2].ends_with("/etc/sudoers.d/phoenix-opsadmin.new"));
    assert_eq!(node.chpasswd_stdin(), format!("opsadmin:{HASH}\n"));
    let shadow = std::fs::read_to_string(node.root().join("etc/shadow")).unwrap();
    assert!(shadow.contains(&format!("opsadmin:{HASH}:")), "{shadow}");

    let root = node.root();
    let sudoers = root.join("etc/sudoers.d/phoenix-opsadmin");
    assert_eq!(std::fs::metadata(&sudoers).unwrap().mode() & 0o777, 0o440);
    assert!(!root.join("etc/sudoers.d/phoenix-opsadmin.new").exists());
    let keys = root.join("home/opsadmin/.ssh/authorized_keys");
    let meta = std::fs::metadata(&keys).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), 1001);
    assert_eq!(std::fs::read_to_string(&keys).unwrap(), format!("{KEY}\n"));

    // The hash is in no argv, no plan text, no JSON, no journal.
    let everywhere = format!(
        "{calls:?}{p:?}{}{:?}",
        serde_json::to_string(&p).unwrap(),
        journal.entries
    );
    assert!(!everywhere.contains("saltsalt"), "the hash leaked");

    node.clear_calls();
    let again = plan_on(&node, &setup, HASH);
    assert_eq!(again.changes(), 0, "{:#?}", again.steps);
    apply_with(&node, None, &again, &secrets(HASH));
    assert!(writes(&node.calls()).is_empty(), "{:?}", node.calls());
}

#[test]
fn a_new_hash_is_one_chpasswd_and_sudo_off_removes_the_file() {
    let node = node();
    let p = plan_on(&node, &admin(true), HASH);
    assert!(!apply_with(&node, None, &p, &secrets(HASH)).failed());

    let new_hash = HASH.replace("saltsalt", "pepper00");
    let p = plan_on(&node, &admin(false), &new_hash);
    let changes: Vec<&Step> = p.steps.iter().filter(|s| s.is_change()).collect();
    assert_eq!(changes.len(), 2, "{changes:#?}");
    assert!(
        matches!(changes[0], Step::PasswordHash { reason, .. } if reason == "differs from the secret")
    );
    assert!(
        matches!(changes[1], Step::RemoveFile { path, .. } if path == "/etc/sudoers.d/phoenix-opsadmin")
    );
    node.clear_calls();
    assert!(!apply_with(&node, None, &p, &secrets(&new_hash)).failed());
    assert_eq!(writes(&node.calls()), [["chpasswd", "-e"]]);
    assert!(!node.root().join("etc/sudoers.d/phoenix-opsadmin").exists());
    assert_eq!(plan_on(&node, &admin(false), &new_hash).changes(), 0);
}

#[test]
fn a_sudoers_file_visudo_refuses_is_never_put_in_place() {
    let node = node();
    let mut setup = admin(true);
    setup.admin_user.as_mut().unwrap().ssh_public_key = None;
    let mut p = plan_on(&node, &setup, HASH);
    for s in &mut p.steps {
        if let Step::WriteFile { file, .. } = s {
            file.content = "opsadmin ALL=(ALL:ALL ALL\n".into();
        }
    }
    let journal = apply_with(&node, None, &p, &secrets(HASH));
    assert!(journal.failed());
    let failed: String = journal
        .entries
        .iter()
        .filter_map(|(_, o)| o.detail())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        failed.contains("visudo refused the new /etc/sudoers.d/phoenix-opsadmin"),
        "{failed}"
    );
    assert!(!node.root().join("etc/sudoers.d/phoenix-opsadmin").exists());
    assert!(
        !node
            .root()
            .join("etc/sudoers.d/phoenix-opsadmin.new")
            .exists()
    );
}
