//! `LocalShell` against a scratch root directory: atomic writes leave no temp file, owner and
//! mode are applied, staging and switching, and the raw `lxc.*` rewrite keeps other lines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use phoenix_exec::shell::{
    HostFile, HostShell, LocalShell, ShellError, previous_path, raw_lxc_lines, rewrite_raw_lxc,
    staged_path,
};

fn file(content: &str, mode: u32) -> HostFile {
    HostFile {
        content: content.into(),
        owner: "root".into(),
        group: "root".into(),
        mode,
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        == 0
}

/// Our own user and group as names the shell can resolve (numbers when unknown).
fn own(content: &str, mode: u32) -> HostFile {
    let m = std::fs::metadata("/proc/self").unwrap();
    HostFile {
        content: content.into(),
        owner: m.uid().to_string(),
        group: m.gid().to_string(),
        mode,
    }
}

#[test]
fn atomic_write_creates_dirs_sets_mode_and_leaves_no_temp_file() {
    let root = tempfile::tempdir().unwrap();
    let shell = LocalShell::new(root.path());
    let want = own("auto lo\niface lo inet loopback\n", 0o640);
    shell.write_file("/etc/network/interfaces", &want).unwrap();
    shell.write_file("/etc/network/interfaces", &want).unwrap();
    let dir = root.path().join("etc/network");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["interfaces"]);
    let meta = std::fs::metadata(dir.join("interfaces")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640);
    let read = shell.read_file("/etc/network/interfaces").unwrap().unwrap();
    assert_eq!(read.content, want.content);
    assert_eq!(read.mode, 0o640);
    assert_eq!(shell.read_file("/etc/missing").unwrap(), None);
}

#[test]
fn owner_and_group_are_applied_and_read_back_by_name() {
    if !is_root() {
        eprintln!("note: not root; skipping chown test");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::write(
        root.path().join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nsvc:x:4242:4243::/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(root.path().join("etc/group"), "root:x:0:\nsvcg:x:4243:\n").unwrap();
    let shell = LocalShell::new(root.path());
    let want = HostFile {
        content: "secret\n".into(),
        owner: "svc".into(),
        group: "svcg".into(),
        mode: 0o600,
    };
    shell.write_file("/etc/svc/key", &want).unwrap();
    let meta = std::fs::metadata(root.path().join("etc/svc/key")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (4242, 4243));
    assert_eq!(shell.read_file("/etc/svc/key").unwrap().unwrap(), want);
    let unknown = HostFile {
        owner: "nobody-here".into(),
        ..want
    };
    assert!(matches!(
        shell.write_file("/etc/svc/key", &unknown),
        Err(ShellError::UnknownId { .. })
    ));
}

#[test]
fn paths_escaping_the_root_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let shell = LocalShell::new(root.path());
    for bad in ["etc/x", "/etc/../../x", "/etc/./x", "/etc/dir/"] {
        assert!(
            matches!(
                shell.write_file(bad, &file("x", 0o644)),
                Err(ShellError::BadPath { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn staging_leaves_the_live_file_and_switch_keeps_the_previous() {
    let root = tempfile::tempdir().unwrap();
    let shell = LocalShell::new(root.path());
    let path = "/etc/network/interfaces";
    shell.write_file(path, &own("old\n", 0o644)).unwrap();
    let staged = shell.stage_file(path, &own("new\n", 0o644)).unwrap();
    assert_eq!(staged, "/etc/network/interfaces.new");
    assert_eq!(shell.read_file(path).unwrap().unwrap().content, "old\n");
    assert_eq!(
        shell
            .read_file(&staged_path(path))
            .unwrap()
            .unwrap()
            .content,
        "new\n"
    );
    shell.switch_staged(path).unwrap();
    assert_eq!(shell.read_file(path).unwrap().unwrap().content, "new\n");
    assert_eq!(
        shell
            .read_file(&previous_path(path))
            .unwrap()
            .unwrap()
            .content,
        "old\n"
    );
    assert_eq!(shell.read_file(&staged_path(path)).unwrap(), None);
    assert!(
        shell.switch_staged(path).is_err(),
        "nothing staged any more"
    );
}

#[test]
fn commands_run_as_argv_with_a_deadline() {
    let shell = LocalShell::new("/");
    let out = shell
        .run(
            &["printf".into(), "%s".into(), "$(id) ; x".into()],
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!((out.status, out.stdout.as_str()), (0, "$(id) ; x"));
    let slow = shell.run(&["sleep".into(), "5".into()], Duration::from_millis(100));
    assert!(matches!(slow, Err(ShellError::Timeout { .. })));
}

const CONF: &str = "arch: amd64\nhostname: gw\nlxc.net.1.type: macvlan\nmemory: 512\nlxc.net.1.link: old0\nnet0: name=eth0,bridge=vmbr0\n\n[snap1]\nhostname: gw\nlxc.net.1.link: snap0\n";

#[test]
fn raw_lxc_rewrite_keeps_every_other_line_and_snapshots() {
    let lines = vec![
        "lxc.net.1.type: macvlan".to_string(),
        "lxc.net.1.link: enp1s0".to_string(),
    ];
    let out = rewrite_raw_lxc(CONF, &lines);
    assert_eq!(
        out,
        "arch: amd64\nhostname: gw\nmemory: 512\nnet0: name=eth0,bridge=vmbr0\nlxc.net.1.type: macvlan\nlxc.net.1.link: enp1s0\n\n[snap1]\nhostname: gw\nlxc.net.1.link: snap0\n"
    );
    assert_eq!(raw_lxc_lines(&out), lines);
    assert_eq!(rewrite_raw_lxc(&out, &lines), out, "idempotent");
}

#[test]
fn raw_lxc_rewrite_through_the_shell() {
    let root = tempfile::tempdir().unwrap();
    let shell = LocalShell::new(root.path());
    let path = "/etc/pve/lxc/101.conf";
    shell.write_file(path, &own(CONF, 0o640)).unwrap();
    let current = shell.read_file(path).unwrap().unwrap();
    let lines = vec!["lxc.net.1.link: enp2s0".to_string()];
    let new = HostFile {
        content: rewrite_raw_lxc(&current.content, &lines),
        ..current
    };
    shell.write_file(path, &new).unwrap();
    let back = shell.read_file(path).unwrap().unwrap().content;
    assert!(back.contains("memory: 512\n") && back.contains("[snap1]\n"));
    assert_eq!(raw_lxc_lines(&back), lines);
}

#[test]
fn input_reaches_stdin_and_paths_resolve_under_the_root() {
    let root = tempfile::tempdir().unwrap();
    let shell = LocalShell::new(root.path());
    let out = shell
        .run_with_input(
            &["cat".to_string()],
            b"secret\n",
            std::time::Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(out.stdout, "secret\n");
    assert_eq!(
        shell.command_path("/etc/samba/smb.conf").unwrap(),
        root.path().join("etc/samba/smb.conf").display().to_string()
    );
    assert!(shell.command_path("/etc/../x").is_err());
}
