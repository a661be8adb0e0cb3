//! `phoenix setup` on a scratch host root from the operator's real configuration (rootesting):
//! the plan (golden), apply, a second plan with no change; the rendered smb.conf read by the
//! real `testparm`; and, over a recording shell standing for a live node, the activations as
//! argv in order with the Samba password on stdin only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use phoenix_exec::shell::{CommandOutput, HostFile, HostShell, LocalShell, ShellError};
use phoenix_host::nthash::NtHash;
use phoenix_host::plan::PlanInputs;
use phoenix_host::{Scope, Step, apply, observe, plan};
use phoenix_model::host::HostSetup;

fn rootesting() -> HostSetup {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/upstream/rootesting-2025-11-25/etc");
    let v = phoenix_model::validate_dir(&dir);
    v.desired.expect("the fixture loads").host_setup
}

fn scratch_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc");
    std::fs::create_dir_all(etc.join("apt/sources.list.d")).unwrap();
    std::fs::write(
        etc.join("os-release"),
        "ID=debian\nVERSION_CODENAME=bookworm\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("apt/sources.list.d/pve-enterprise.list"),
        "deb https://enterprise.proxmox.com/debian/pve bookworm pve-enterprise\n",
    )
    .unwrap();
    root
}

fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

#[test]
fn scratch_root_is_set_up_once_then_left_alone() {
    let setup = rootesting();
    let root = scratch_root();
    let shell = LocalShell::new(root.path());
    let scope = Scope::Scratch("ROOT".into());
    let observed = observe(&shell, &setup, scope.clone()).unwrap();
    let first = plan(&setup, &observed, &PlanInputs::default());
    let text: Vec<String> = first
        .steps
        .iter()
        .map(|s| {
            s.to_string().replace(
                "testparm not found (samba-common-bin is not installed)",
                "testparm not found",
            )
        })
        .filter(|s| !s.starts_with("checking smb.conf"))
        .collect();
    insta::assert_snapshot!("rootesting_first_plan", text.join("\n"));
    for s in &first.steps {
        if let Step::WriteFile { path, file, .. } = s {
            let name = path.trim_start_matches('/').replace('/', "_");
            insta::assert_snapshot!(name, file.content);
        }
    }
    let journal = apply(&shell, &first, None);
    assert!(!journal.failed(), "{:?}", journal.entries);
    assert_eq!(journal.done(), first.changes());
    assert!(!root.path().join("etc/samba/smb.conf.new").exists());

    let again = observe(&shell, &setup, scope).unwrap();
    let second = plan(&setup, &again, &PlanInputs::default());
    assert_eq!(second.changes(), 0, "{:#?}", second.steps);
}

#[test]
fn rendered_smb_conf_passes_the_real_testparm() {
    let setup = rootesting();
    let conf = phoenix_render::hostsetup::smb_conf(setup.samba.as_ref().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("smb.conf");
    std::fs::write(&path, conf).unwrap();
    let out = match std::process::Command::new("testparm")
        .arg("-s")
        .arg(&path)
        .output()
    {
        Ok(o) => o,
        Err(e) if !in_ci() => {
            eprintln!("skipped: no testparm here ({e}); scripts/setup.sh installs samba");
            return;
        }
        Err(e) => panic!("testparm missing in CI: {e}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("nknown parameter"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for share in &setup.samba.as_ref().unwrap().shares {
        assert!(stdout.contains(&format!("[{}]", share.name)), "{stdout}");
    }
}

/// A recorded command: its argv and what it got on stdin.
type Run = (Vec<String>, Option<Vec<u8>>);

/// A live node as a recording shell: files in a scratch directory, every command recorded
/// with its stdin and answered from a script.
#[derive(Debug)]
struct RecordingNode {
    files: LocalShell,
    runs: Mutex<Vec<Run>>,
    smbd_running: bool,
    pdbedit: String,
}

impl HostShell for RecordingNode {
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
        self.runs.lock().unwrap().push((argv.to_vec(), None));
        let status = match argv.first().map(String::as_str) {
            Some("smbcontrol") if argv.get(2).is_some_and(|a| a == "ping") => {
                i32::from(!self.smbd_running)
            }
            _ => 0,
        };
        let stdout = if argv[0] == "pdbedit" {
            self.pdbedit.clone()
        } else if argv[0] == "sh" {
            // The command probe: this node has Samba and NFS tools, no ZFS or account tools.
            let have = [
                "testparm",
                "smbcontrol",
                "smbpasswd",
                "pdbedit",
                "exportfs",
                "systemctl",
            ];
            argv.iter()
                .skip(4)
                .filter(|c| have.contains(&c.as_str()))
                .map(|c| format!("{c}\n"))
                .collect()
        } else {
            String::new()
        };
        Ok(CommandOutput {
            status,
            stdout,
            stderr: String::new(),
        })
    }
    fn run_with_input(
        &self,
        argv: &[String],
        input: &[u8],
        _: Duration,
    ) -> Result<CommandOutput, ShellError> {
        self.runs
            .lock()
            .unwrap()
            .push((argv.to_vec(), Some(input.to_vec())));
        Ok(CommandOutput {
            status: 0,
            stdout: String::new(),
            stderr: String::new(),
        })
    }
}

#[test]
fn live_node_gets_checked_reloaded_and_the_password_on_stdin() {
    let setup = rootesting();
    let root = scratch_root();
    let node = RecordingNode {
        files: LocalShell::new(root.path()),
        runs: Mutex::new(Vec::new()),
        smbd_running: true,
        pdbedit: String::new(),
    };
    let password = b"pw-from-the-secret";
    let inputs = PlanInputs {
        samba_password: Some(NtHash::of(password)),
        ..PlanInputs::default()
    };
    let mut with_password = setup.clone();
    let samba = with_password.samba.as_mut().unwrap();
    samba.password = Some(phoenix_model::model::Secret::Env("SMB_PW".into()));
    let observed = observe(&node, &with_password, Scope::Live).unwrap();
    let p = plan(&with_password, &observed, &inputs);
    node.runs.lock().unwrap().clear();
    let journal = apply(&node, &p, Some(password));
    assert!(!journal.failed(), "{:?}", journal.entries);
    let runs = node.runs.lock().unwrap().clone();
    let argvs: Vec<String> = runs.iter().map(|(a, _)| a.join(" ")).collect();
    // A live node's commands see node paths (the recording node resolves nothing).
    let staged = "/etc/samba/smb.conf.new";
    assert_eq!(
        argvs,
        [
            format!("testparm -s {staged}"),
            "smbcontrol smbd reload-config".into(),
            "smbpasswd -s -a heads".into(),
            "exportfs -ra".into(),
        ]
    );
    assert_eq!(
        runs[2].1.as_deref(),
        Some(&b"pw-from-the-secret\npw-from-the-secret\n"[..])
    );
    let shown = format!(
        "{p:?}{:?}{}",
        journal.entries,
        serde_json::to_string(&p).unwrap()
    );
    assert!(!shown.contains("pw-from-the-secret") && !argvs.concat().contains("pw-from"));

    // The stored hash now matches: nothing to do.
    let line = format!("heads:1000:X:{}:[U ]:LCT-0:", hex(password));
    let node = RecordingNode {
        pdbedit: line,
        ..node
    };
    let observed = observe(&node, &with_password, Scope::Live).unwrap();
    assert_eq!(plan(&with_password, &observed, &inputs).changes(), 0);

    // smbd stopped: a restart instead of a reload, also with smb.conf already in place
    // (an earlier start failed).
    for (files, reason) in [
        (
            tempfile::tempdir().unwrap(),
            "smb.conf changed and smbd is not running",
        ),
        (root, "smbd is not running"),
    ] {
        let stopped = RecordingNode {
            smbd_running: false,
            pdbedit: String::new(),
            files: LocalShell::new(files.path()),
            runs: Mutex::new(Vec::new()),
        };
        let observed = observe(&stopped, &setup, Scope::Live).unwrap();
        let p = plan(&setup, &observed, &PlanInputs::default());
        let restart = Step::Run {
            argv: ["systemctl", "restart", "smbd"].map(String::from).to_vec(),
            reason: reason.into(),
        };
        assert!(p.steps.contains(&restart), "{:#?}", p.steps);
    }
}

/// The NT hash as pdbedit prints it.
fn hex(password: &[u8]) -> String {
    NtHash::of(password).to_hex()
}
