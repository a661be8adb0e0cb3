//! Real Samba in network namespaces: `phoenix setup`'s plan applied to an smbd running in a
//! namespace of this test (its smb.conf adapted only in paths: state, lock, log directories
//! under a private temp dir), then `smbclient` from a second namespace lists exactly the
//! configured shares and logs in with the secret's password; a second plan changes nothing;
//! a changed share option is one planned file change. Root only; skipped with a note outside
//! CI when root or Samba is missing, a failure in CI (`CI` set). Teardown always: the
//! processes inside the namespaces by pid, then the namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use phoenix_exec::shell::{CommandOutput, HostFile, HostShell, LocalShell, ShellError};
use phoenix_host::nthash::NtHash;
use phoenix_host::plan::PlanInputs;
use phoenix_host::{Scope, Step, apply, observe, plan};
use phoenix_model::host::{HostSetup, Samba, SambaShare};
use phoenix_model::model::Secret;
use phoenix_model::source::{FileId, Location};

const USER: &str = "phxsmb";
const SERVER: &str = "198.18.77.1";

/// Runs a command in the server namespace with `/etc/passwd`, `/etc/group` and
/// `/etc/samba/smb.conf` bind-mounted from the test's files (a private mount namespace):
/// the names and paths stay those of the argv, nothing is interpolated.
const WRAP: &str = "mount --bind \"$1\" /etc/passwd && mount --bind \"$2\" /etc/group && mount --bind \"$3\" /etc/samba/smb.conf && shift 3 && exec \"$@\"";

fn skip_or_fail(why: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("{why} (CI must run this test: scripts/setup.sh installs samba and smbclient)");
    }
    eprintln!("skipped: {why}");
    true
}

fn missing_prerequisite() -> bool {
    // The effective uid, from /proc (no libc call).
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        return skip_or_fail("not root: network namespaces need root");
    }
    for tool in [
        "/usr/sbin/smbd",
        "/usr/bin/smbclient",
        "/usr/bin/smbpasswd",
        "/usr/bin/pdbedit",
        "/usr/bin/smbcontrol",
        "/usr/bin/testparm",
    ] {
        if !Path::new(tool).exists() {
            return skip_or_fail(&format!("{tool} missing (apt-get install samba smbclient)"));
        }
    }
    if !Path::new("/etc/samba/smb.conf").exists() {
        return skip_or_fail("/etc/samba/smb.conf missing (the bind-mount target)");
    }
    false
}

/// The namespaces, the smbd and the temp dirs of one run; dropping it tears all down.
#[derive(Debug)]
struct Lab {
    server: String,
    client: String,
    /// 0700: passwd/group copies, the adapted smb.conf, Samba's state, the auth file.
    private: tempfile::TempDir,
    /// The host root phoenix writes (its smb.conf is what gets adapted).
    root: tempfile::TempDir,
    /// The shared directories (0755, shares 0777: the Samba user must reach them).
    shares: tempfile::TempDir,
    /// The smbd this test started (waited for on drop).
    smbd: Option<std::process::Child>,
}

impl Lab {
    fn new() -> Lab {
        let prefix = format!("phs{}", std::process::id());
        let lab = Lab {
            server: format!("{prefix}-srv"),
            client: format!("{prefix}-cli"),
            private: tempfile::Builder::new()
                .prefix("phoenix-smb-")
                .tempdir()
                .unwrap(),
            root: tempfile::tempdir().unwrap(),
            shares: tempfile::tempdir().unwrap(),
            smbd: None,
        };
        std::fs::set_permissions(lab.private.path(), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::fs::set_permissions(lab.shares.path(), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        for d in ["private", "lock", "state", "cache", "pid", "ncalrpc"] {
            std::fs::create_dir(lab.private.path().join(d)).unwrap();
        }
        for s in ["data", "backup"] {
            let dir = lab.shares.path().join(s);
            std::fs::create_dir(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        let group = std::fs::read_to_string("/etc/group").unwrap();
        std::fs::write(
            lab.file("passwd"),
            format!("{passwd}{USER}:x:4242:4242::/nonexistent:/usr/sbin/nologin\n"),
        )
        .unwrap();
        std::fs::write(lab.file("group"), format!("{group}{USER}:x:4242:\n")).unwrap();
        let (va, vb) = (format!("{prefix}a"), format!("{prefix}b"));
        let s = lab.server.as_str();
        let c = lab.client.as_str();
        for argv in [
            vec!["netns", "add", s],
            vec!["netns", "add", c],
            vec![
                "link", "add", &va, "netns", s, "type", "veth", "peer", "name", &vb, "netns", c,
            ],
            vec!["-n", s, "addr", "add", &format!("{SERVER}/24"), "dev", &va],
            vec!["-n", c, "addr", "add", "198.18.77.2/24", "dev", &vb],
            vec!["-n", s, "link", "set", &va, "up"],
            vec!["-n", c, "link", "set", &vb, "up"],
            vec!["-n", s, "link", "set", "lo", "up"],
            vec!["-n", c, "link", "set", "lo", "up"],
        ] {
            let ok = Command::new("ip").args(&argv).status().unwrap().success();
            assert!(ok, "ip {argv:?}");
        }
        lab
    }

    fn file(&self, name: &str) -> PathBuf {
        self.private.path().join(name)
    }

    /// phoenix's smb.conf from the host root, adapted only in paths.
    fn adapt(&self) -> PathBuf {
        let text = std::fs::read_to_string(self.root.path().join("etc/samba/smb.conf"))
            .unwrap_or_default();
        let p = |d: &str| self.file(d).display().to_string();
        let dirs = format!(
            "[global]\n   private dir = {}\n   lock directory = {}\n   state directory = {}\n   cache directory = {}\n   pid directory = {}\n   ncalrpc dir = {}\n",
            p("private"),
            p("lock"),
            p("state"),
            p("cache"),
            p("pid"),
            p("ncalrpc")
        );
        let text = text.replacen("[global]\n", &dirs, 1).replace(
            "/var/log/samba/log.%m",
            &format!("{}/log.%m", self.private.path().display()),
        );
        let out = self.file("smb.conf");
        std::fs::write(&out, text).unwrap();
        out
    }

    /// `argv` in the server namespace under [`WRAP`].
    fn server_command(&self, argv: &[String]) -> Command {
        let conf = self.adapt();
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.server,
            "unshare",
            "-m",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            WRAP,
            "sh",
        ])
        .arg(self.file("passwd"))
        .arg(self.file("group"))
        .arg(conf)
        .args(argv);
        cmd
    }

    fn client(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.client, "smbclient"])
            .args(args)
            .output()
            .unwrap()
    }

    /// The disk shares `smbclient -L` lists, logged in with the auth file.
    fn listed_shares(&self) -> Vec<String> {
        let auth = self.file("auth").display().to_string();
        let out = self.client(&["-L", &format!("//{SERVER}"), "-A", &auth, "-g"]);
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("Disk|")?.split('|').next().map(String::from))
            .collect();
        names.sort();
        names
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.server, &self.client] {
            let pids = Command::new("ip").args(["netns", "pids", ns]).output();
            for pid in pids
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
                .split_whitespace()
            {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if let Some(mut smbd) = self.smbd.take() {
            let _ = smbd.kill();
            let _ = smbd.wait();
        }
    }
}

/// The node's shell for this test: files under the scratch root, commands inside the server
/// namespace with phoenix's current smb.conf adapted.
#[derive(Debug)]
struct NsShell<'a> {
    files: LocalShell,
    lab: &'a Lab,
}

fn output(mut cmd: Command, input: Option<&[u8]>) -> Result<CommandOutput, ShellError> {
    use std::io::Write;
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| ShellError::Spawn {
        program: "ip".into(),
        source,
    })?;
    if let (Some(mut stdin), Some(data)) = (child.stdin.take(), input) {
        stdin.write_all(data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Ok(CommandOutput {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

impl HostShell for NsShell<'_> {
    fn read_file(&self, path: &str) -> Result<Option<HostFile>, ShellError> {
        self.files.read_file(path)
    }
    fn write_file(&self, path: &str, file: &HostFile) -> Result<(), ShellError> {
        self.files.write_file(path, file)
    }
    fn remove_file(&self, path: &str) -> Result<(), ShellError> {
        self.files.remove_file(path)
    }
    fn run(&self, argv: &[String], _: Duration) -> Result<CommandOutput, ShellError> {
        output(self.lab.server_command(argv), None)
    }
    fn run_with_input(
        &self,
        argv: &[String],
        input: &[u8],
        _: Duration,
    ) -> Result<CommandOutput, ShellError> {
        output(self.lab.server_command(argv), Some(input))
    }
    fn command_path(&self, path: &str) -> Result<String, ShellError> {
        self.files.command_path(path)
    }
}

fn setup(shares: &Path) -> HostSetup {
    let loc = Location::new(FileId(0), "/samba");
    let share = |name: &str| SambaShare {
        name: name.into(),
        path: shares.join(name).display().to_string(),
        options: vec![
            ("browseable".into(), "yes".into()),
            ("writable".into(), "yes".into()),
        ],
        valid_users: vec![USER.into()],
        loc: loc.clone(),
    };
    HostSetup {
        samba: Some(Samba {
            user: USER.into(),
            password: Some(Secret::Env("PHOENIX_TEST_SMB_PASSWORD".into())),
            workgroup: "WORKGROUP".into(),
            shares: vec![share("data"), share("backup")],
            loc: loc.clone(),
        }),
        ..HostSetup::default()
    }
}

fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn smbclient_sees_the_planned_shares_and_logs_in_with_the_secret() {
    if missing_prerequisite() {
        return;
    }
    let mut lab = Lab::new();
    // A password made here, as a secret file would hold it.
    let password = format!("phx-{}-{:?}", std::process::id(), Instant::now())
        .replace(['(', ')', ' ', '{', '}', ':', ','], "");
    std::fs::write(
        lab.file("auth"),
        format!("username = {USER}\npassword = {password}\n"),
    )
    .unwrap();
    std::fs::set_permissions(lab.file("auth"), std::fs::Permissions::from_mode(0o600)).unwrap();

    // smbd starts with a placeholder config (phoenix's file does not exist yet).
    let conf = lab.root.path().join("etc/samba");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("smb.conf"),
        "[global]\n   workgroup = WORKGROUP\n",
    )
    .unwrap();
    let smbd_argv: Vec<String> = ["smbd", "--foreground", "--no-process-group"]
        .map(String::from)
        .to_vec();
    let mut smbd = lab.server_command(&smbd_argv);
    smbd.stdout(Stdio::null()).stderr(Stdio::null());
    lab.smbd = Some(smbd.spawn().unwrap());

    // The node's files show the accounts its commands see (the Samba user exists).
    std::fs::create_dir_all(lab.root.path().join("etc")).unwrap();
    std::fs::copy(lab.file("passwd"), lab.root.path().join("etc/passwd")).unwrap();
    let shell = NsShell {
        files: LocalShell::new(lab.root.path()),
        lab: &lab,
    };
    poll("smbd to answer", || {
        let ping = ["smbcontrol", "smbd", "ping"].map(String::from);
        (shell.run(&ping, Duration::from_secs(5)).unwrap().status == 0).then_some(())
    });

    let mut desired = setup(lab.shares.path());
    let inputs = PlanInputs {
        samba_password: Some(NtHash::of(password.as_bytes())),
        ..PlanInputs::default()
    };
    let observed = observe(&shell, &desired, Scope::Live).unwrap();
    assert!(observed.smbd_running);
    let first = plan(&desired, &observed, &inputs);
    let kinds: Vec<String> = first
        .steps
        .iter()
        .filter(|s| !matches!(s, Step::Skip { .. }))
        .map(ToString::to_string)
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:#?}");
    assert!(
        kinds[0].starts_with("write /etc/samba/smb.conf (content differs"),
        "{kinds:#?}"
    );
    assert!(
        kinds[1].starts_with("run `smbcontrol smbd reload-config`"),
        "{kinds:#?}"
    );
    assert!(
        kinds[2].starts_with("set the Samba password of phxsmb"),
        "{kinds:#?}"
    );
    let journal = apply(&shell, &first, Some(password.as_bytes()));
    assert!(!journal.failed(), "{:#?}", journal.entries);
    let shown = format!("{:?}{:?}", first, journal.entries);
    assert!(!shown.contains(&password));

    // The reload is asynchronous: wait until the listing is the configured one.
    let want = vec!["backup".to_string(), "data".to_string()];
    poll("smbclient -L to list the configured shares", || {
        (lab.listed_shares() == want).then_some(())
    });
    let auth = lab.file("auth").display().to_string();
    let ls = lab.client(&[&format!("//{SERVER}/data"), "-A", &auth, "-c", "ls"]);
    assert!(
        ls.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ls.stdout),
        String::from_utf8_lossy(&ls.stderr)
    );
    std::fs::write(
        lab.file("wrong"),
        format!("username = {USER}\npassword = not-{password}\n"),
    )
    .unwrap();
    let wrong = lab.client(&[
        &format!("//{SERVER}/data"),
        "-A",
        &lab.file("wrong").display().to_string(),
        "-c",
        "ls",
    ]);
    assert!(!wrong.status.success(), "a wrong password logs in");

    // Nothing differs now: the stored NT hash is the secret's.
    let again = plan(
        &desired,
        &observe(&shell, &desired, Scope::Live).unwrap(),
        &inputs,
    );
    assert_eq!(again.changes(), 0, "{:#?}", again.steps);

    // One share option changed: one planned file change (and its reload).
    let backup = &mut desired.samba.as_mut().unwrap().shares[1];
    backup.options[0].1 = "no".into();
    let changed = plan(
        &desired,
        &observe(&shell, &desired, Scope::Live).unwrap(),
        &inputs,
    );
    let writes: Vec<&Step> = changed
        .steps
        .iter()
        .filter(|s| matches!(s, Step::WriteFile { .. }))
        .collect();
    assert_eq!(writes.len(), 1, "{:#?}", changed.steps);
    assert!(
        writes[0]
            .to_string()
            .contains("content differs: +1 -1 lines"),
        "{}",
        writes[0]
    );
    assert_eq!(changed.changes(), 2, "{:#?}", changed.steps);
    let journal = apply(&shell, &changed, Some(password.as_bytes()));
    assert!(!journal.failed(), "{:#?}", journal.entries);
    poll("the unbrowseable share to leave the listing", || {
        (lab.listed_shares() == ["data"]).then_some(())
    });
}
