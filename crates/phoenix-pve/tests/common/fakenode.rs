//! A recording fake Proxmox node for tests of `pct exec` / `pct push` through the host shell:
//! each container's file system is a temp dir, its packages, services, users and file owners
//! are state, and every command is logged ([`FakeNode`], one container; [`FakeNodes`], several
//! behind one shell). `pct` does not exist on a development machine; the argv vectors are what
//! a node runs. Shared by the unit tests in `src/` and the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use phoenix_exec::shell::{CommandOutput, HostFile, HostShell, ShellError};
use phoenix_model::model::GuestId;
use phoenix_plan::observed::sha256_hex;

#[derive(Debug, Default)]
pub struct GuestState {
    pub packages: BTreeSet<String>,
    pub enabled: BTreeSet<String>,
    pub active: BTreeSet<String>,
    pub users: BTreeSet<String>,
    /// path → (owner, group); files not listed are root:root.
    pub owners: BTreeMap<String, (String, String)>,
    /// What the guest's resolver answers (`getent ahosts NAME`): name → address.
    pub hosts: BTreeMap<String, String>,
    /// What `curl --resolve HOST:PORT:ADDR …` gets: that value → HTTP status; others fail to
    /// connect.
    pub http: BTreeMap<String, u16>,
}

/// A node with one container: every command is recorded.
#[derive(Debug)]
pub struct FakeNode {
    pub id: GuestId,
    pub root: tempfile::TempDir,
    pub node_files: Mutex<BTreeMap<String, HostFile>>,
    pub guest: Mutex<GuestState>,
    pub log: Mutex<Vec<Vec<String>>>,
}

pub fn ok(stdout: &str) -> CommandOutput {
    CommandOutput {
        status: 0,
        stdout: stdout.into(),
        stderr: String::new(),
    }
}

pub fn fail(status: i32, stderr: &str) -> CommandOutput {
    CommandOutput {
        status,
        stdout: String::new(),
        stderr: stderr.into(),
    }
}

impl FakeNode {
    pub fn new(id: u32) -> Self {
        FakeNode {
            id: GuestId(id),
            root: tempfile::tempdir().unwrap(),
            node_files: Mutex::default(),
            guest: Mutex::default(),
            log: Mutex::default(),
        }
    }

    pub fn at(&self, path: &str) -> PathBuf {
        self.root.path().join(path.trim_start_matches('/'))
    }

    pub fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    pub fn commands(&self) -> Vec<Vec<String>> {
        self.log.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.log.lock().unwrap().clear();
    }

    /// One command inside the container.
    pub fn guest_cmd(&self, argv: &[String]) -> CommandOutput {
        let a: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut g = self.guest.lock().unwrap();
        match a.as_slice() {
            ["stat", "-c", "%U:%G:%a", p] => match std::fs::metadata(self.at(p)) {
                Ok(m) => {
                    let (u, gr) = g
                        .owners
                        .get(*p)
                        .cloned()
                        .unwrap_or(("root".into(), "root".into()));
                    ok(&format!("{u}:{gr}:{:o}\n", m.permissions().mode() & 0o7777))
                }
                Err(_) => fail(1, "No such file or directory"),
            },
            ["cat", p] => match std::fs::read_to_string(self.at(p)) {
                Ok(s) => ok(&s),
                Err(_) => fail(1, "No such file"),
            },
            ["mkdir", "-p", p] => {
                std::fs::create_dir_all(self.at(p)).unwrap();
                ok("")
            }
            ["dpkg-query", "-W", "-f=${Status}", p] => {
                if g.packages.contains(*p) {
                    ok("install ok installed")
                } else {
                    fail(1, "no packages found")
                }
            }
            [
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get",
                "update",
                "-q",
            ] => ok(""),
            [
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get",
                "install",
                ..,
                p,
            ] => {
                g.packages.insert(p.to_string());
                ok("")
            }
            ["systemctl", "is-enabled", s] => {
                if g.enabled.contains(*s) {
                    ok("enabled\n")
                } else {
                    fail(1, "")
                }
            }
            ["update-ca-certificates"] => ok(""),
            ["systemctl", "is-active", "--quiet", s] | ["systemctl", "is-active", s] => {
                if g.active.contains(*s) {
                    ok("active\n")
                } else {
                    fail(3, "")
                }
            }
            ["systemctl", "daemon-reload"] => ok(""),
            ["systemctl", "enable", "--now", s] => {
                g.enabled.insert(s.to_string());
                g.active.insert(s.to_string());
                ok("")
            }
            ["systemctl", "reload" | "reload-or-restart", s] => {
                if g.active.contains(*s) {
                    ok("")
                } else {
                    fail(1, "not active")
                }
            }
            ["id", "-u", u] => {
                if g.users.contains(*u) {
                    ok("999\n")
                } else {
                    fail(1, "no such user")
                }
            }
            ["useradd", .., u] => {
                g.users.insert(u.to_string());
                ok("")
            }
            ["test", flag, p] => match std::fs::metadata(self.at(p)) {
                Ok(m) if *flag == "-s" && m.len() > 0 => ok(""),
                Ok(m) if *flag == "-x" && m.permissions().mode() & 0o111 != 0 => ok(""),
                _ => fail(1, ""),
            },
            ["curl", "-fsSL", "--retry", "3", "-o", tmp, url] => {
                std::fs::write(self.at(tmp), format!("downloaded from {url}")).unwrap();
                ok("")
            }
            ["sha256sum", p] => {
                let s = std::fs::read_to_string(self.at(p)).unwrap();
                ok(&format!("{}  {p}\n", sha256_hex(&s)))
            }
            ["tar", "-xzf", tmp, "-C", dir, "--no-same-owner", name] => {
                let body = std::fs::read_to_string(self.at(tmp)).unwrap();
                std::fs::write(self.at(dir).join(name), format!("binary from {body}")).unwrap();
                ok("")
            }
            ["chmod", m, p] => {
                Self::chmod(&self.at(p), u32::from_str_radix(m, 8).unwrap());
                ok("")
            }
            ["install", "-d", "-o", u, "-g", gr, "-m", m, p] => {
                std::fs::create_dir_all(self.at(p)).unwrap();
                Self::chmod(&self.at(p), u32::from_str_radix(m, 8).unwrap());
                g.owners
                    .insert(p.to_string(), (u.to_string(), gr.to_string()));
                ok("")
            }
            ["install", "-m", m, src, dest] => {
                std::fs::copy(self.at(src), self.at(dest)).unwrap();
                Self::chmod(&self.at(dest), u32::from_str_radix(m, 8).unwrap());
                ok("")
            }
            ["getent", "ahosts", name] => match g.hosts.get(*name) {
                Some(a) => ok(&format!("{a}   STREAM {name}\n{a}   DGRAM\n{a}   RAW\n")),
                None => fail(2, ""),
            },
            [
                "curl",
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                rest @ ..,
            ] => {
                let resolve = rest
                    .iter()
                    .position(|a| *a == "--resolve")
                    .and_then(|i| rest.get(i + 1));
                match resolve.and_then(|r| g.http.get(*r)) {
                    Some(code) => ok(&code.to_string()),
                    None => fail(7, "curl: (7) Failed to connect"),
                }
            }
            ["rm", "-f", p] => {
                let _ = std::fs::remove_file(self.at(p));
                ok("")
            }
            _ => fail(127, "command not found"),
        }
    }

    pub fn push(
        &self,
        tmp: &str,
        path: &str,
        perms: &str,
        user: &str,
        group: &str,
    ) -> CommandOutput {
        let Some(f) = self.node_files.lock().unwrap().get(tmp).cloned() else {
            return fail(2, "no such file on the node");
        };
        self.push_file(&f, path, perms, user, group)
    }

    /// `pct push` of the node file `f` (already read) to `path` in the container.
    pub fn push_file(
        &self,
        f: &HostFile,
        path: &str,
        perms: &str,
        user: &str,
        group: &str,
    ) -> CommandOutput {
        assert_eq!(f.mode, 0o600, "staged files are private to root");
        let dest = self.at(path);
        if !dest.parent().unwrap().is_dir() {
            return fail(2, "parent directory missing in the container");
        }
        std::fs::write(&dest, &f.content).unwrap();
        Self::chmod(&dest, u32::from_str_radix(perms, 8).unwrap());
        self.guest
            .lock()
            .unwrap()
            .owners
            .insert(path.into(), (user.into(), group.into()));
        ok("")
    }
}

impl HostShell for FakeNode {
    fn read_file(&self, path: &str) -> Result<Option<HostFile>, ShellError> {
        Ok(self.node_files.lock().unwrap().get(path).cloned())
    }

    fn write_file(&self, path: &str, file: &HostFile) -> Result<(), ShellError> {
        self.node_files
            .lock()
            .unwrap()
            .insert(path.into(), file.clone());
        Ok(())
    }

    fn run(&self, argv: &[String], _deadline: Duration) -> Result<CommandOutput, ShellError> {
        self.log.lock().unwrap().push(argv.to_vec());
        let id = self.id.to_string();
        let a: Vec<&str> = argv.iter().map(String::as_str).collect();
        Ok(match a.as_slice() {
            ["pct", "exec", i, "--", ..] if *i == id => self.guest_cmd(&argv[4..]),
            [
                "pct",
                "push",
                i,
                tmp,
                path,
                "--perms",
                m,
                "--user",
                u,
                "--group",
                gr,
            ] if *i == id => self.push(tmp, path, m, u, gr),
            _ => fail(127, "unknown command on the node"),
        })
    }

    fn remove_file(&self, path: &str) -> Result<(), ShellError> {
        self.node_files.lock().unwrap().remove(path);
        Ok(())
    }
}

/// Several containers behind one node shell: `pct exec ID` / `pct push ID` go to container
/// ID; the node's own files are shared.
#[derive(Debug)]
pub struct FakeNodes {
    pub nodes: BTreeMap<GuestId, FakeNode>,
    pub node_files: Mutex<BTreeMap<String, HostFile>>,
}

impl FakeNodes {
    pub fn new(ids: &[u32]) -> Self {
        FakeNodes {
            nodes: ids
                .iter()
                .map(|&i| (GuestId(i), FakeNode::new(i)))
                .collect(),
            node_files: Mutex::default(),
        }
    }

    pub fn node(&self, id: u32) -> &FakeNode {
        &self.nodes[&GuestId(id)]
    }

    /// Every command run inside any container, with the container's id.
    pub fn commands(&self) -> Vec<(u32, Vec<String>)> {
        self.nodes
            .values()
            .flat_map(|n| n.commands().into_iter().map(|c| (n.id.0, c)))
            .collect()
    }
}

impl HostShell for FakeNodes {
    fn read_file(&self, path: &str) -> Result<Option<HostFile>, ShellError> {
        Ok(self.node_files.lock().unwrap().get(path).cloned())
    }

    fn write_file(&self, path: &str, file: &HostFile) -> Result<(), ShellError> {
        self.node_files
            .lock()
            .unwrap()
            .insert(path.into(), file.clone());
        Ok(())
    }

    fn run(&self, argv: &[String], _deadline: Duration) -> Result<CommandOutput, ShellError> {
        let a: Vec<&str> = argv.iter().map(String::as_str).collect();
        let node = a
            .get(2)
            .and_then(|i| i.parse::<u32>().ok())
            .and_then(|i| self.nodes.get(&GuestId(i)));
        let Some(node) = node else {
            // The node's own commands: its trust store and services.
            return Ok(match a.as_slice() {
                ["update-ca-certificates"] | ["systemctl", "reload-or-restart", _] => ok(""),
                _ => fail(127, "unknown command or container on the node"),
            });
        };
        node.log.lock().unwrap().push(argv.to_vec());
        Ok(match a.as_slice() {
            ["pct", "exec", _, "--", ..] => node.guest_cmd(&argv[4..]),
            [
                "pct",
                "push",
                _,
                tmp,
                path,
                "--perms",
                m,
                "--user",
                u,
                "--group",
                gr,
            ] => match self.node_files.lock().unwrap().get(*tmp).cloned() {
                Some(f) => node.push_file(&f, path, m, u, gr),
                None => fail(2, "no such file on the node"),
            },
            _ => fail(127, "unknown command on the node"),
        })
    }

    fn remove_file(&self, path: &str) -> Result<(), ShellError> {
        self.node_files.lock().unwrap().remove(path);
        Ok(())
    }
}
