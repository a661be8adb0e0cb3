//! Where the lab's peer binaries (Traefik, step-ca) are found, so the lab runs from anywhere:
//! `$ENV`, next to phoenix's binary, the data directory, `PATH`, then a source checkout.
//! [`PeerSearch::locate`] is pure over its inputs and a file test; [`find`] reads the process's.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The data directory an install step fills (`install -D traefik /usr/local/share/phoenix/`).
pub const DATA_DIR: &str = "/usr/local/share/phoenix";

/// One peer binary and how to get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Environment variable naming the binary (`PHOENIX_LAB_TRAEFIK`).
    pub env: &'static str,
    /// File name (`traefik`).
    pub name: &'static str,
    /// Where a checkout's script puts it, relative to the checkout (`.venv/bin/traefik`).
    pub in_checkout: &'static str,
    /// How to get it, for the error.
    pub get: &'static str,
}

/// What the search looks at: the environment variable's value, `PATH`, phoenix's own binary,
/// the working directory and the data directory.
#[derive(Debug, Clone, Default)]
pub struct PeerSearch {
    pub env_value: Option<OsString>,
    pub path: Option<OsString>,
    pub exe: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub data_dir: PathBuf,
}

impl PeerSearch {
    /// The running process's view (env, `PATH`, `current_exe`, `current_dir`, [`DATA_DIR`]).
    pub fn current(peer: &Peer) -> Self {
        PeerSearch {
            env_value: std::env::var_os(peer.env),
            path: std::env::var_os("PATH"),
            exe: std::env::current_exe().ok(),
            cwd: std::env::current_dir().ok(),
            data_dir: PathBuf::from(DATA_DIR),
        }
    }

    /// The places looked at, in order (without the environment variable, which wins unchecked).
    pub fn candidates(&self, peer: &Peer) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let exe_dir = self.exe.as_deref().and_then(Path::parent);
        if let Some(dir) = exe_dir {
            out.push(dir.join("../share/phoenix").join(peer.name));
            out.push(dir.join(peer.name));
        }
        out.push(self.data_dir.join(peer.name));
        if let Some(path) = &self.path {
            out.extend(std::env::split_paths(path).map(|d| d.join(peer.name)));
        }
        // A checkout: above the working directory, then above the binary (`target/release`).
        for start in [self.cwd.as_deref(), exe_dir].into_iter().flatten() {
            out.extend(start.ancestors().map(|d| d.join(peer.in_checkout)));
        }
        out
    }

    /// The binary: the environment variable's value, else the first candidate that is a file.
    pub fn locate(&self, peer: &Peer, is_file: impl Fn(&Path) -> bool) -> Option<PathBuf> {
        if let Some(p) = &self.env_value {
            return Some(PathBuf::from(p));
        }
        self.candidates(peer).into_iter().find(|p| is_file(p))
    }

    /// Why nothing was found: where the search looked and how to get the binary.
    pub fn not_found(&self, peer: &Peer) -> String {
        let mut places = vec![format!("${} (unset)", peer.env)];
        if let Some(dir) = self.exe.as_deref().and_then(Path::parent) {
            places.push(dir.join("../share/phoenix").display().to_string());
            places.push(dir.display().to_string());
        }
        places.push(self.data_dir.display().to_string());
        places.push("PATH".into());
        places.push(format!(
            "{} under the working directory, phoenix's directory and their parents",
            peer.in_checkout
        ));
        format!(
            "no {} binary; looked in {}; {}, or set {}",
            peer.name,
            places.join(", "),
            peer.get,
            peer.env
        )
    }
}

/// [`PeerSearch::locate`] for this process.
pub fn find(peer: &Peer) -> Option<PathBuf> {
    PeerSearch::current(peer).locate(peer, Path::is_file)
}

/// [`PeerSearch::not_found`] for this process.
pub fn not_found(peer: &Peer) -> String {
    PeerSearch::current(peer).not_found(peer)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const PEER: Peer = Peer {
        env: "PHOENIX_LAB_TEST_PEER",
        name: "traefik",
        in_checkout: ".venv/bin/traefik",
        get: "run scripts/peers.sh",
    };

    /// An install outside any checkout: `<prefix>/bin/phoenix` (a copy) and
    /// `<prefix>/share/phoenix/traefik`, run from another directory.
    #[test]
    fn found_next_to_a_binary_outside_the_checkout() {
        let prefix = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(prefix.path().join("bin")).unwrap();
        std::fs::create_dir_all(prefix.path().join("share/phoenix")).unwrap();
        let exe = prefix.path().join("bin/phoenix");
        std::fs::write(&exe, b"copy").unwrap();
        std::fs::write(prefix.path().join("share/phoenix/traefik"), b"peer").unwrap();
        let search = PeerSearch {
            exe: Some(exe),
            cwd: Some(elsewhere.path().to_path_buf()),
            data_dir: elsewhere.path().join("no-data-dir"),
            ..PeerSearch::default()
        };
        let found = search.locate(&PEER, Path::is_file).expect("found");
        assert_eq!(
            found.canonicalize().unwrap(),
            prefix
                .path()
                .join("share/phoenix/traefik")
                .canonicalize()
                .unwrap()
        );
    }

    #[test]
    fn beside_the_binary_in_the_data_dir_or_the_env() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("phoenix");
        std::fs::write(dir.path().join("traefik"), b"peer").unwrap();
        let mut search = PeerSearch {
            exe: Some(exe),
            data_dir: PathBuf::from("/nonexistent"),
            ..PeerSearch::default()
        };
        assert_eq!(
            search.locate(&PEER, Path::is_file),
            Some(dir.path().join("traefik"))
        );
        search.exe = None;
        search.data_dir = dir.path().to_path_buf();
        assert_eq!(
            search.locate(&PEER, Path::is_file),
            Some(dir.path().join("traefik"))
        );
        search.env_value = Some("/opt/traefik".into());
        assert_eq!(
            search.locate(&PEER, Path::is_file),
            Some(PathBuf::from("/opt/traefik"))
        );
    }

    #[test]
    fn a_checkout_above_the_binary() {
        let search = PeerSearch {
            exe: Some(PathBuf::from("/src/phoenix/target/release/phoenix")),
            cwd: Some(PathBuf::from("/tmp")),
            data_dir: PathBuf::from("/nonexistent"),
            ..PeerSearch::default()
        };
        let want = Path::new("/src/phoenix/.venv/bin/traefik");
        assert_eq!(search.locate(&PEER, |p| p == want), Some(want.into()));
    }

    #[test]
    fn not_found_says_where_it_looked_and_how_to_get_it() {
        let search = PeerSearch {
            exe: Some(PathBuf::from("/opt/phoenix/bin/phoenix")),
            data_dir: PathBuf::from(DATA_DIR),
            ..PeerSearch::default()
        };
        assert_eq!(search.locate(&PEER, |_| false), None);
        assert_eq!(
            search.not_found(&PEER),
            "no traefik binary; looked in $PHOENIX_LAB_TEST_PEER (unset), \
             /opt/phoenix/bin/../share/phoenix, /opt/phoenix/bin, /usr/local/share/phoenix, PATH, \
             .venv/bin/traefik under the working directory, phoenix's directory and their parents; \
             run scripts/peers.sh, or set PHOENIX_LAB_TEST_PEER"
        );
    }
}
