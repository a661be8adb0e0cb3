//! The host shell over OpenSSH: `ssh -o BatchMode=yes -o StrictHostKeyChecking=yes … --
//! DEST 'quoted argv'`. Does process I/O.
//!
//! ssh joins its arguments with spaces and hands the result to the remote user's shell, so
//! the remote argv is quoted with [`quote`] — the one place phoenix builds a shell string.
//! Every operand of it is quoted; content travels over stdin, never in the command line.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{CommandOutput, HostFile, HostShell, ShellError, check_path, run_with_deadline};

/// Quote one word for a POSIX shell: safe words stay as they are, everything else is put in
/// single quotes (a `'` becomes `'\''`). Newlines, `$`, backquotes and globs lose their meaning
/// inside single quotes.
pub fn quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// An argv as one remote command line.
pub fn quote_argv(argv: &[String]) -> String {
    argv.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

/// A node reached with OpenSSH in batch mode (keys from the agent or `identity`; the host key
/// must already be known).
#[derive(Debug, Clone)]
pub struct SshShell {
    /// `user@host` or `host`.
    pub destination: String,
    pub port: Option<u16>,
    pub identity: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    /// Deadline of file reads and writes.
    pub io_deadline: Duration,
    /// A directory on the node under which node paths are read and written (as
    /// [`super::LocalShell`]'s root; `None`: `/`). Commands run as they are.
    pub root: Option<String>,
}

impl SshShell {
    pub fn new(destination: impl Into<String>) -> Self {
        SshShell {
            destination: destination.into(),
            port: None,
            identity: None,
            known_hosts: None,
            io_deadline: Duration::from_secs(60),
            root: None,
        }
    }

    /// The path on the node of node path `path` (checked first).
    pub fn resolve(&self, path: &str) -> Result<String, ShellError> {
        check_path(path)?;
        Ok(match &self.root {
            Some(root) if !root.trim_end_matches('/').is_empty() => {
                format!("{}{path}", root.trim_end_matches('/'))
            }
            _ => path.to_string(),
        })
    }

    /// The local argv running `remote` (already quoted) on the node.
    pub fn ssh_argv(&self, remote: &str) -> Vec<String> {
        let mut argv: Vec<String> = [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=10",
        ]
        .map(String::from)
        .to_vec();
        if let Some(p) = self.port {
            argv.extend(["-p".into(), p.to_string()]);
        }
        if let Some(i) = &self.identity {
            argv.extend(["-i".into(), i.display().to_string()]);
        }
        if let Some(k) = &self.known_hosts {
            argv.extend(["-o".into(), format!("UserKnownHostsFile={}", k.display())]);
        }
        argv.extend(["--".into(), self.destination.clone(), remote.to_string()]);
        argv
    }

    fn exec(
        &self,
        remote: &str,
        input: Option<&[u8]>,
        deadline: Duration,
    ) -> Result<CommandOutput, ShellError> {
        let argv = self.ssh_argv(remote);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        run_with_deadline(cmd, input, deadline)
    }
}

/// The remote script of an atomic write: temp file in the target's directory, owner and mode,
/// fsync (`sync FILE`, coreutils ≥ 8.24), rename, directory fsync; the temp file is removed
/// on failure. The content arrives on stdin.
pub fn write_script(path: &str, file: &HostFile) -> Result<String, ShellError> {
    check_path(path)?;
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let dir = if dir.is_empty() { "/" } else { dir };
    let q_dir = quote(dir);
    let template = quote(&format!("{dir}/.{name}.phoenix-XXXXXX"));
    let owner = quote(&format!("{}:{}", file.owner, file.group));
    let mode = format!("{:o}", file.mode & 0o7777);
    Ok(format!(
        "set -e; umask 077; mkdir -p -- {q_dir}; tmp=$(mktemp -- {template}); \
         trap 'rm -f -- \"$tmp\"' EXIT; cat > \"$tmp\"; chown -- {owner} \"$tmp\"; \
         chmod -- {mode} \"$tmp\"; sync -- \"$tmp\"; mv -f -- \"$tmp\" {path}; trap - EXIT; \
         sync -- {q_dir}",
        path = quote(path),
    ))
}

impl HostShell for SshShell {
    fn read_file(&self, path: &str) -> Result<Option<HostFile>, ShellError> {
        let q = quote(&self.resolve(path)?);
        // One round trip: the metadata line, then the content.
        let remote = format!(
            "if [ -e {q} ]; then stat -c '%U %G %a' -- {q} && cat -- {q}; else echo ABSENT; fi"
        );
        let out = self.exec(&remote, None, self.io_deadline)?;
        if out.status != 0 {
            return Err(ShellError::Failed {
                program: "ssh".into(),
                status: out.status,
                stderr: out.stderr.trim().to_string(),
            });
        }
        let (head, content) = out.stdout.split_once('\n').unwrap_or((&out.stdout, ""));
        if head == "ABSENT" {
            return Ok(None);
        }
        let mut f = head.split(' ');
        let (Some(owner), Some(group), Some(mode)) = (f.next(), f.next(), f.next()) else {
            return Err(ShellError::NotText { path: path.into() });
        };
        Ok(Some(HostFile {
            content: content.to_string(),
            owner: owner.into(),
            group: group.into(),
            mode: u32::from_str_radix(mode, 8).unwrap_or(0),
        }))
    }

    fn write_file(&self, path: &str, file: &HostFile) -> Result<(), ShellError> {
        let script = write_script(&self.resolve(path)?, file)?;
        let out = self.exec(&script, Some(file.content.as_bytes()), self.io_deadline)?;
        if out.status != 0 {
            return Err(ShellError::Failed {
                program: "ssh".into(),
                status: out.status,
                stderr: out.stderr.trim().to_string(),
            });
        }
        Ok(())
    }

    fn remove_file(&self, path: &str) -> Result<(), ShellError> {
        let argv = [
            "rm".to_string(),
            "-f".into(),
            "--".into(),
            self.resolve(path)?,
        ];
        let out = self.run(&argv, self.io_deadline)?;
        if out.status != 0 {
            return Err(ShellError::Failed {
                program: "ssh".into(),
                status: out.status,
                stderr: out.stderr.trim().to_string(),
            });
        }
        Ok(())
    }

    fn run(&self, argv: &[String], deadline: Duration) -> Result<CommandOutput, ShellError> {
        self.exec(&quote_argv(argv), None, deadline)
    }

    fn create_new(&self, path: &str, content: &str) -> Result<bool, ShellError> {
        let out = self.exec(
            &create_new_script(&self.resolve(path)?)?,
            Some(content.as_bytes()),
            self.io_deadline,
        )?;
        match out.status {
            0 => Ok(true),
            EXISTS => Ok(false),
            status => Err(ShellError::Failed {
                program: "ssh".into(),
                status,
                stderr: out.stderr.trim().to_string(),
            }),
        }
    }

    fn run_with_input(
        &self,
        argv: &[String],
        input: &[u8],
        deadline: Duration,
    ) -> Result<CommandOutput, ShellError> {
        self.exec(&quote_argv(argv), Some(input), deadline)
    }

    fn command_path(&self, path: &str) -> Result<String, ShellError> {
        self.resolve(path)
    }
}

/// The exit status of [`create_new_script`] when the file is already there.
const EXISTS: i32 = 17;

/// The remote script of an exclusive create: `noclobber` makes `>` open with `O_EXCL`; the
/// content arrives on stdin; exit [`EXISTS`] when something is already at `path`.
pub fn create_new_script(path: &str) -> Result<String, ShellError> {
    check_path(path)?;
    let (dir, _) = path.rsplit_once('/').unwrap_or(("", path));
    let q_dir = quote(if dir.is_empty() { "/" } else { dir });
    let q = quote(path);
    Ok(format!(
        "umask 077; mkdir -p -- {q_dir} || exit 1; [ -e {q} ] && exit {EXISTS}; set -C; \
         if cat > {q} 2>/dev/null; then sync -- {q}; exit 0; fi; [ -e {q} ] && exit {EXISTS}; exit 1"
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// What `sh` makes of a quoted argv: each word on its own, NUL-separated.
    fn through_sh(argv: &[String]) -> Vec<String> {
        let line = format!("printf '%s\\0' {}", quote_argv(argv));
        let out = Command::new("sh").arg("-c").arg(&line).output().unwrap();
        assert!(out.status.success(), "{line}");
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_terminator('\0').map(String::from).collect()
    }

    #[test]
    fn paths_are_checked_and_put_under_the_root() {
        let mut s = SshShell::new("root@pve1");
        assert_eq!(s.resolve("/etc/hosts").unwrap(), "/etc/hosts");
        s.root = Some("/srv/scratch/".into());
        assert_eq!(
            s.resolve("/etc/network/interfaces").unwrap(),
            "/srv/scratch/etc/network/interfaces"
        );
        assert!(s.resolve("etc/hosts").is_err());
        assert!(s.resolve("/etc/../root/.ssh/authorized_keys").is_err());
    }

    #[test]
    fn safe_words_stay_bare() {
        assert_eq!(quote("pct"), "pct");
        assert_eq!(quote("/etc/pve/lxc/103.conf"), "/etc/pve/lxc/103.conf");
        assert_eq!(
            quote("net0=name=eth0,bridge=vmbr0"),
            "net0=name=eth0,bridge=vmbr0"
        );
    }

    #[test]
    fn hostile_words_are_single_quoted() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(quote("a\nb"), "'a\nb'");
    }

    #[test]
    fn the_remote_shell_sees_the_same_argv() {
        let argv: Vec<String> = [
            "",
            "two words",
            "it's",
            "\"double\"",
            "$(touch /tmp/phoenix-pwned)",
            "`id`",
            "$HOME",
            "line1\nline2",
            "*",
            "a;b|c&d>e<f",
            "\\back\\slash",
            "'",
            "''",
            "-n",
            "ünïcode",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(through_sh(&argv), argv);
        assert!(!std::path::Path::new("/tmp/phoenix-pwned").exists());
    }

    #[test]
    fn ssh_argv_is_batch_and_strict_and_ends_options() {
        let mut s = SshShell::new("root@pve1");
        s.port = Some(2222);
        let argv = s.ssh_argv("true");
        assert_eq!(argv[0], "ssh");
        assert!(argv.windows(2).any(|w| w == ["-o", "BatchMode=yes"]));
        assert!(
            argv.windows(2)
                .any(|w| w == ["-o", "StrictHostKeyChecking=yes"])
        );
        assert!(argv.windows(2).any(|w| w == ["-p", "2222"]));
        let n = argv.len();
        assert_eq!(argv[n - 3..], ["--", "root@pve1", "true"]);
    }

    #[test]
    fn write_script_quotes_the_path_and_runs_in_sh() {
        let file = HostFile {
            content: "x\n".into(),
            owner: "root".into(),
            group: "www-data".into(),
            mode: 0o640,
        };
        let s = write_script("/etc/pve/it's $(x)/f", &file).unwrap();
        assert!(s.contains("cat > \"$tmp\""));
        assert!(s.contains(r"'/etc/pve/it'\''s $(x)/f'"));
        assert!(s.contains("chmod -- 640"));
        assert!(write_script("relative/path", &file).is_err());
        assert!(write_script("/etc/../shadow", &file).is_err());
        // The script is valid sh.
        let out = Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(&s)
            .output()
            .unwrap();
        assert!(out.status.success());
    }

    #[test]
    fn write_script_writes_atomically_when_run_locally() {
        let dir = tempfile::tempdir().unwrap();
        let path = format!("{}/sub dir/it's.conf", dir.path().display());
        let file = HostFile {
            content: "a = 1\n$(no)\n".into(),
            owner: "0".into(),
            group: "0".into(),
            mode: 0o600,
        };
        let script = write_script(&path, &file).unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(&script);
        if nix_uid() != 0 {
            return; // chown to root needs root
        }
        let out =
            run_with_deadline(cmd, Some(file.content.as_bytes()), Duration::from_secs(10)).unwrap();
        assert_eq!(out.status, 0, "{}", out.stderr);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), file.content);
        let entries = std::fs::read_dir(dir.path().join("sub dir"))
            .unwrap()
            .count();
        assert_eq!(entries, 1, "no temp file left");
    }

    fn nix_uid() -> u32 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(1)
    }
}
