//! The ssh host shell against a real OpenSSH server (tests/sshd: sshd on a loopback address
//! with test-made keys): atomic writes with owner and mode under a scratch root on the "node",
//! reads back, removal, staged files, and argv with hostile words arriving word for word —
//! nothing in them runs as shell code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sshd;

use std::time::Duration;

use phoenix_exec::shell::ssh::SshShell;
use phoenix_exec::shell::{HostFile, HostShell};
use sshd::{Sshd, sshd_available};

fn shell(s: &Sshd, root: &std::path::Path) -> SshShell {
    let mut sh = SshShell::new(s.destination());
    sh.port = Some(s.port);
    sh.identity = Some(s.identity.clone());
    sh.known_hosts = Some(s.known_hosts.clone());
    sh.root = Some(root.display().to_string());
    sh
}

#[test]
fn files_and_commands_through_a_real_sshd() {
    if !sshd_available() {
        return;
    }
    let s = Sshd::start();
    let root = tempfile::tempdir().unwrap();
    let sh = shell(&s, root.path());

    assert_eq!(sh.read_file("/etc/phoenix/nat.nft").unwrap(), None);
    let file = HostFile {
        content: "table inet phoenix {}\n'quoted' $(not run) `id`\n".into(),
        owner: "root".into(),
        group: "root".into(),
        mode: 0o640,
    };
    sh.write_file("/etc/phoenix/nat.nft", &file).unwrap();
    let local = root.path().join("etc/phoenix/nat.nft");
    assert_eq!(std::fs::read_to_string(&local).unwrap(), file.content);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&local).unwrap().permissions().mode() & 0o7777,
        0o640
    );
    assert_eq!(
        sh.read_file("/etc/phoenix/nat.nft").unwrap(),
        Some(file.clone())
    );
    // No temp file left beside it.
    let names: Vec<_> = std::fs::read_dir(root.path().join("etc/phoenix"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");

    // Staging: the staged file next to the live one, the live one untouched.
    let staged = sh.stage_file(
        "/etc/phoenix/nat.nft",
        &HostFile {
            content: "table inet phoenix { }\n".into(),
            ..file.clone()
        },
    );
    assert_eq!(staged.unwrap(), "/etc/phoenix/nat.nft.new");
    assert_eq!(std::fs::read_to_string(&local).unwrap(), file.content);

    sh.remove_file("/etc/phoenix/nat.nft").unwrap();
    assert!(!local.exists());
    assert!(sh.read_file("/etc/../etc/passwd").is_err());

    // argv, word for word, no shell code run.
    let marker = root.path().join("pwned");
    let words = [
        "two words".to_string(),
        "it's".into(),
        format!("$(touch {})", marker.display()),
        "`id`".into(),
        "a;b|c&d".into(),
        "".into(),
    ];
    let mut argv = vec!["printf".to_string(), "%s\\n".into()];
    argv.extend(words.iter().cloned());
    let out = sh.run(&argv, Duration::from_secs(10)).unwrap();
    assert_eq!(out.status, 0, "{}", out.stderr);
    let got: Vec<&str> = out.stdout.split('\n').collect();
    assert_eq!(
        &got[..words.len()],
        words.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(!marker.exists());

    // A host key that does not match is refused (StrictHostKeyChecking, BatchMode).
    let mut wrong = shell(&s, root.path());
    let other = tempfile::tempdir().unwrap();
    let kh = other.path().join("known_hosts");
    std::fs::write(
        &kh,
        format!(
            "[{}]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
            sshd::ADDRESS,
            s.port
        ),
    )
    .unwrap();
    wrong.known_hosts = Some(kh);
    assert!(wrong.read_file("/etc/hosts").is_err());
}
