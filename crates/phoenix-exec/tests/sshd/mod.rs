//! A throwaway OpenSSH server for the host shell's ssh tests: `/usr/sbin/sshd` in the
//! foreground on a loopback address (127.0.0.3, a free port), with a host key, client key,
//! `authorized_keys` and configuration made for the test in a temporary directory; killed on
//! drop. Root only (sshd's privilege separation), and only when sshd is installed
//! (`scripts/setup.sh` installs openssh-server with the machine's own service off).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";
pub const ADDRESS: &str = "127.0.0.3";

/// Whether the ssh tests can run here; under CI a missing piece is a failure.
pub fn sshd_available() -> bool {
    let root = nix_is_root();
    let ok = root && Path::new(SSHD).exists() && which("ssh") && which("ssh-keygen");
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: the ssh test needs root, {SSHD}, ssh and ssh-keygen (scripts/setup.sh)"
        );
        eprintln!("skipping: needs root, {SSHD}, ssh and ssh-keygen");
    }
    ok
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).exists()))
}

/// A running sshd and what a client needs to reach it.
pub struct Sshd {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub identity: PathBuf,
    pub known_hosts: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "phoenix-test", "-f"])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ssh-keygen {}", path.display());
}

impl Sshd {
    pub fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let host_key = dir.path().join("host_ed25519");
        let identity = dir.path().join("id_ed25519");
        keygen(&host_key);
        keygen(&identity);
        std::fs::copy(
            dir.path().join("id_ed25519.pub"),
            dir.path().join("authorized_keys"),
        )
        .unwrap();
        let port = {
            let l = TcpListener::bind((ADDRESS, 0)).unwrap();
            l.local_addr().unwrap().port()
        };
        let host_pub = std::fs::read_to_string(dir.path().join("host_ed25519.pub")).unwrap();
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(&known_hosts, format!("[{ADDRESS}]:{port} {host_pub}")).unwrap();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress {ADDRESS}:{port}\nHostKey {}\nPidFile none\n\
                 AuthorizedKeysFile {}\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nLogLevel ERROR\n",
                host_key.display(),
                dir.path().join("authorized_keys").display()
            ),
        )
        .unwrap();
        // sshd's privilege separation directory, as the package's service would make it.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("{ADDRESS}:{port}").parse().unwrap();
        let t = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(10), "sshd did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sshd {
            child,
            dir,
            port,
            identity,
            known_hosts,
        }
    }

    /// `root@127.0.0.3`.
    pub fn destination(&self) -> String {
        format!("root@{ADDRESS}")
    }
}
