//! Shared helpers of phoenix-host's tests: the operator's configuration (rootesting), and a
//! node whose files live in a scratch directory and whose `zpool`/`zfs`/`lsblk`/`blkid`/
//! `wipefs`/`update-initramfs` are the recorded stand-in (`standin.py`) first on PATH.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use phoenix_exec::shell::{CommandOutput, HostFile, HostShell, LocalShell, ShellError};
use phoenix_model::host::HostSetup;

pub fn rootesting() -> HostSetup {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/upstream/rootesting-2025-11-25/etc");
    let v = phoenix_model::validate_dir(&dir);
    v.desired.expect("the fixture loads").host_setup
}

/// The commands the stand-in answers.
pub const STANDIN_COMMANDS: &[&str] = &[
    "zpool",
    "zfs",
    "lsblk",
    "blkid",
    "wipefs",
    "update-initramfs",
    "useradd",
    "chpasswd",
    "visudo",
];

/// The stand-in's directory, then only /usr/bin and /bin (python3, env, sh): never /usr/sbin
/// or /sbin, where this machine's real disk and account tools live.
const SYSTEM_PATH: &str = "/usr/bin:/bin";

/// A node: files under `root`, the stand-in's commands first on PATH, every call recorded.
#[derive(Debug)]
pub struct StandinNode {
    pub dir: tempfile::TempDir,
    pub files: LocalShell,
    bin: PathBuf,
}

impl StandinNode {
    /// A node with the stand-in's `state` (JSON: pools, datasets, disks).
    pub fn new(state: &serde_json::Value) -> StandinNode {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let mut state = state.clone();
        state["root"] = serde_json::Value::String(root.display().to_string());
        std::fs::write(dir.path().join("state.json"), state.to_string()).unwrap();
        std::fs::write(dir.path().join("log"), "").unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/standin.py");
        for name in STANDIN_COMMANDS {
            let path = bin.join(name);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\nexec python3 '{}' '{}' '{}' \"$0\" \"$@\"\n",
                    script.display(),
                    dir.path().join("state.json").display(),
                    dir.path().join("log").display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        StandinNode {
            files: LocalShell::new(&root),
            dir,
            bin,
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Every recorded call, `[command, args…]`.
    pub fn calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.dir.path().join("log"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// What `chpasswd` read on stdin.
    pub fn chpasswd_stdin(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log.stdin")).unwrap_or_default()
    }

    /// Forget the calls so far.
    pub fn clear_calls(&self) {
        std::fs::write(self.dir.path().join("log"), "").unwrap();
    }

    pub fn state(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.path().join("state.json")).unwrap())
            .unwrap()
    }

    fn with_path(&self, argv: &[String]) -> Vec<String> {
        let tool = argv.first().map(String::as_str).unwrap_or_default();
        assert!(
            ![
                "useradd", "usermod", "userdel", "chpasswd", "passwd", "wipefs", "zpool", "sgdisk"
            ]
            .contains(&tool)
                || STANDIN_COMMANDS.contains(&tool),
            "{tool} would run for real"
        );
        let path = format!("PATH={}:{SYSTEM_PATH}", self.bin.display());
        let mut out = vec!["env".to_string(), path];
        out.extend(argv.iter().cloned());
        out
    }
}

/// Calls that change something (not `list`/`get`/`lsblk`/`blkid`).
pub fn writes(calls: &[Vec<String>]) -> Vec<Vec<String>> {
    calls
        .iter()
        .filter(|c| {
            !matches!(c[0].as_str(), "lsblk" | "blkid" | "visudo")
                && !matches!(c.get(1).map(String::as_str), Some("list" | "get"))
        })
        .cloned()
        .collect()
}

impl HostShell for StandinNode {
    fn read_file(&self, path: &str) -> Result<Option<HostFile>, ShellError> {
        self.files.read_file(path)
    }
    fn write_file(&self, path: &str, file: &HostFile) -> Result<(), ShellError> {
        self.files.write_file(path, file)
    }
    fn remove_file(&self, path: &str) -> Result<(), ShellError> {
        self.files.remove_file(path)
    }
    fn run(&self, argv: &[String], deadline: Duration) -> Result<CommandOutput, ShellError> {
        self.files.run(&self.with_path(argv), deadline)
    }
    fn run_with_input(
        &self,
        argv: &[String],
        input: &[u8],
        deadline: Duration,
    ) -> Result<CommandOutput, ShellError> {
        self.files
            .run_with_input(&self.with_path(argv), input, deadline)
    }
    fn command_path(&self, path: &str) -> Result<String, ShellError> {
        self.files.command_path(path)
    }
}
