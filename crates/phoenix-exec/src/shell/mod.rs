//! The host shell: read, write (atomically), stage and switch files on a hypervisor (a Proxmox
//! node, or the lab's hypervisor root) and run argv commands with a deadline. Does file and
//! process I/O.
//!
//! Two implementations: [`LocalShell`] (phoenix on the node; every path resolved under `root`,
//! so tests run against a scratch directory) and [`ssh::SshShell`] (OpenSSH in batch mode). Writes go to a temp file in the target's directory, are fsynced, renamed over
//! the target and the directory is fsynced. No `O_TMPFILE`: `/etc/pve` is a FUSE file system
//! (pmxcfs) that does not support it.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub mod files;
pub mod ssh;

/// A file as read from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFile {
    pub content: String,
    pub owner: String,
    pub group: String,
    /// Permission bits (`0o644`).
    pub mode: u32,
}

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("{path}: {reason}")]
    BadPath { path: String, reason: String },
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not UTF-8 text")]
    NotText { path: String },
    #[error("unknown {what} {name} on the host")]
    UnknownId { what: &'static str, name: String },
    #[error("cannot run {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} did not finish within {after:?} (killed)")]
    Timeout { program: String, after: Duration },
    #[error("{program} exited with {status}: {stderr}")]
    Failed {
        program: String,
        status: i32,
        stderr: String,
    },
}

/// The node's shell, as phoenix needs it. Paths are absolute paths on the node.
pub trait HostShell: Send + Sync + std::fmt::Debug {
    /// The file at `path`, or `None` when it does not exist.
    fn read_file(&self, path: &str) -> Result<Option<HostFile>, ShellError>;
    /// Replace `path` atomically with `file` (content, owner, group and mode).
    fn write_file(&self, path: &str, file: &HostFile) -> Result<(), ShellError>;
    /// Run `argv` (no shell) and wait at most `deadline`.
    fn run(&self, argv: &[String], deadline: Duration) -> Result<CommandOutput, ShellError>;
    /// Remove `path` if it exists.
    fn remove_file(&self, path: &str) -> Result<(), ShellError>;

    /// Create `path` with `content` (mode 0600, owned by the caller) only if nothing is there;
    /// `false` when something already is. [`LocalShell`] and [`ssh::SshShell`] create it
    /// exclusively (`O_EXCL`, the shell's `noclobber`); this fallback for other shells (test
    /// doubles) reads first and is not atomic.
    fn create_new(&self, path: &str, content: &str) -> Result<bool, ShellError> {
        if self.read_file(path)?.is_some() {
            return Ok(false);
        }
        let file = HostFile {
            content: content.to_string(),
            owner: "root".into(),
            group: "root".into(),
            mode: 0o600,
        };
        self.write_file(path, &file).map(|()| true)
    }

    /// Run `argv` with `input` on its stdin (a secret stays out of argv and the environment).
    fn run_with_input(
        &self,
        argv: &[String],
        input: &[u8],
        deadline: Duration,
    ) -> Result<CommandOutput, ShellError> {
        let _ = (input, deadline);
        Err(ShellError::BadPath {
            path: argv.first().cloned().unwrap_or_default(),
            reason: "this shell cannot pass a command's standard input".into(),
        })
    }

    /// The path a command run through this shell sees for the node path `path` (a scratch
    /// root's directory joined in front; the path itself on the node).
    fn command_path(&self, path: &str) -> Result<String, ShellError> {
        check_path(path)?;
        Ok(path.to_string())
    }

    /// Write `file` next to `path` as [`staged_path`] (`interfaces.new`), leaving `path` alone.
    fn stage_file(&self, path: &str, file: &HostFile) -> Result<String, ShellError> {
        let staged = staged_path(path);
        self.write_file(&staged, file)?;
        Ok(staged)
    }

    /// Put the staged file in place; the previous file is kept as [`previous_path`] for a
    /// rollback. Both steps are atomic renames or writes.
    fn switch_staged(&self, path: &str) -> Result<(), ShellError> {
        let staged = staged_path(path);
        let Some(new) = self.read_file(&staged)? else {
            return Err(ShellError::BadPath {
                path: staged,
                reason: "nothing is staged".into(),
            });
        };
        if let Some(old) = self.read_file(path)? {
            self.write_file(&previous_path(path), &old)?;
        }
        self.write_file(path, &new)?;
        self.remove_file(&staged)
    }
}

/// Where a file is staged: `PATH.new` (ifupdown2's and PVE's `interfaces.new` convention).
pub fn staged_path(path: &str) -> String {
    format!("{path}.new")
}

/// Where the file replaced by a switch is kept.
pub fn previous_path(path: &str) -> String {
    format!("{path}.phoenix-previous")
}

/// Check that `path` is absolute and has no `..`, `.` or empty components.
pub fn check_path(path: &str) -> Result<(), ShellError> {
    let bad = |reason: &str| ShellError::BadPath {
        path: path.into(),
        reason: reason.into(),
    };
    if !path.starts_with('/') {
        return Err(bad("not an absolute path"));
    }
    if path.contains('\0') || path.contains('\n') {
        return Err(bad("contains a NUL or newline"));
    }
    // Split by hand: `Path::components` silently drops `.` and trailing slashes.
    if path[1..]
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(bad(
            "must name a file without empty, `.` or `..` components",
        ));
    }
    Ok(())
}

/// The node's own file system, under `root` (`/` on a real node). Commands run on this
/// machine (not chrooted).
#[derive(Debug, Clone)]
pub struct LocalShell {
    pub root: PathBuf,
}

impl LocalShell {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalShell { root: root.into() }
    }

    /// The real path of a node path.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, ShellError> {
        check_path(path)?;
        Ok(self.root.join(path.trim_start_matches('/')))
    }

    /// `/etc/passwd` or `/etc/group` of the root, then of this machine.
    fn id_tables(&self, file: &str) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        for base in [self.root.as_path(), Path::new("/")] {
            if let Ok(text) = std::fs::read_to_string(base.join("etc").join(file)) {
                out.extend(text.lines().filter_map(|l| {
                    let mut f = l.split(':');
                    let name = f.next()?;
                    let id = f.nth(1)?.parse().ok()?;
                    Some((name.to_string(), id))
                }));
            }
        }
        out
    }

    fn id_of(&self, file: &'static str, name: &str) -> Result<u32, ShellError> {
        if let Ok(n) = name.parse() {
            return Ok(n);
        }
        self.id_tables(file)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| id)
            .ok_or_else(|| ShellError::UnknownId {
                what: if file == "passwd" { "user" } else { "group" },
                name: name.into(),
            })
    }

    fn name_of(&self, file: &str, id: u32) -> String {
        self.id_tables(file)
            .into_iter()
            .find(|(_, i)| *i == id)
            .map_or_else(|| id.to_string(), |(n, _)| n)
    }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ShellError {
    let path = path.display().to_string();
    move |source| ShellError::Io { op, path, source }
}

impl HostShell for LocalShell {
    fn read_file(&self, path: &str) -> Result<Option<HostFile>, ShellError> {
        let real = self.resolve(path)?;
        let bytes = match std::fs::read(&real) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", &real)(e)),
        };
        let meta = std::fs::metadata(&real).map_err(io("stat", &real))?;
        let content =
            String::from_utf8(bytes).map_err(|_| ShellError::NotText { path: path.into() })?;
        Ok(Some(HostFile {
            content,
            owner: self.name_of("passwd", meta.uid()),
            group: self.name_of("group", meta.gid()),
            mode: meta.mode() & 0o7777,
        }))
    }

    fn write_file(&self, path: &str, file: &HostFile) -> Result<(), ShellError> {
        let real = self.resolve(path)?;
        let uid = self.id_of("passwd", &file.owner)?;
        let gid = self.id_of("group", &file.group)?;
        let dir = real.parent().ok_or_else(|| ShellError::BadPath {
            path: path.into(),
            reason: "has no parent directory".into(),
        })?;
        std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
        let name = real
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Unique per process and call: writes to one directory may run concurrently.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.phoenix-{}-{n}", std::process::id()));
        let result = write_temp(&tmp, file, uid, gid).and_then(|()| {
            std::fs::rename(&tmp, &real).map_err(io("rename into place", &real))?;
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io("fsync directory", dir))
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn remove_file(&self, path: &str) -> Result<(), ShellError> {
        let real = self.resolve(path)?;
        match std::fs::remove_file(&real) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &real)(e)),
            _ => Ok(()),
        }
    }

    fn run(&self, argv: &[String], deadline: Duration) -> Result<CommandOutput, ShellError> {
        let mut cmd = Command::new(argv.first().map_or("", String::as_str));
        cmd.args(argv.iter().skip(1));
        run_with_deadline(cmd, None, deadline)
    }

    fn create_new(&self, path: &str, content: &str) -> Result<bool, ShellError> {
        use std::os::unix::fs::OpenOptionsExt;
        let real = self.resolve(path)?;
        if let Some(dir) = real.parent() {
            std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
        }
        let mut f = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&real)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io("create", &real)(e)),
        };
        let written = f
            .write_all(content.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io("write", &real));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&real);
            return Err(e);
        }
        Ok(true)
    }

    fn run_with_input(
        &self,
        argv: &[String],
        input: &[u8],
        deadline: Duration,
    ) -> Result<CommandOutput, ShellError> {
        let mut cmd = Command::new(argv.first().map_or("", String::as_str));
        cmd.args(argv.iter().skip(1));
        run_with_deadline(cmd, Some(input), deadline)
    }

    fn command_path(&self, path: &str) -> Result<String, ShellError> {
        Ok(self.resolve(path)?.display().to_string())
    }
}

/// Create `tmp` (0600, exclusive), write, set owner and mode, fsync.
fn write_temp(tmp: &Path, file: &HostFile, uid: u32, gid: u32) -> Result<(), ShellError> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(io("create", tmp))?;
    f.write_all(file.content.as_bytes())
        .map_err(io("write", tmp))?;
    let meta = f.metadata().map_err(io("stat", tmp))?;
    if meta.uid() != uid || meta.gid() != gid {
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(io("chown", tmp))?;
    }
    f.set_permissions(std::fs::Permissions::from_mode(file.mode & 0o7777))
        .map_err(io("chmod", tmp))?;
    f.sync_all().map_err(io("fsync", tmp))
}

/// Spawn `cmd` (stdin from `input`), collect its output, kill it after `deadline`.
pub(crate) fn run_with_deadline(
    mut cmd: Command,
    input: Option<&[u8]>,
    deadline: Duration,
) -> Result<CommandOutput, ShellError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| ShellError::Spawn {
        program: program.clone(),
        source,
    })?;
    let input = input.map(<[u8]>::to_vec);
    let stdin = child.stdin.take();
    let feeder = std::thread::spawn(move || {
        if let (Some(mut s), Some(data)) = (stdin, input) {
            let _ = s.write_all(&data);
        }
    });
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ShellError::Timeout {
                    program,
                    after: deadline,
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(source) => return Err(ShellError::Spawn { program, source }),
        }
    };
    let _ = feeder.join();
    Ok(CommandOutput {
        status: status.code().unwrap_or(-1),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Rewrite the raw `lxc.*` lines of a container config (`/etc/pve/lxc/ID.conf`): every other
/// line of the current config is kept in place; the old `lxc.*` lines are dropped and `lines`
/// appended. Snapshot sections (`[name]` and after) are left untouched.
pub fn rewrite_raw_lxc(conf: &str, lines: &[String]) -> String {
    let (main, snapshots) = split_main(conf);
    let mut out: Vec<&str> = main.lines().filter(|l| !is_raw_lxc(l)).collect();
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    let mut text: String = out.iter().map(|l| format!("{l}\n")).collect();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    if !snapshots.is_empty() {
        text.push('\n');
        text.push_str(snapshots);
    }
    text
}

/// The raw `lxc.*` lines of the current (non-snapshot) section of a container config.
pub fn raw_lxc_lines(conf: &str) -> Vec<String> {
    split_main(conf)
        .0
        .lines()
        .filter(|l| is_raw_lxc(l))
        .map(|l| l.trim_end().to_string())
        .collect()
}

fn is_raw_lxc(line: &str) -> bool {
    line.starts_with("lxc.")
}

/// The current config and the snapshot sections that follow it.
fn split_main(conf: &str) -> (&str, &str) {
    let mut offset = 0;
    for line in conf.split_inclusive('\n') {
        if line.starts_with('[') {
            return conf.split_at(offset);
        }
        offset += line.len();
    }
    (conf, "")
}
