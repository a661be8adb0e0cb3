//! Shared test helpers: the homelab example, a scratch CA, openssl invocations.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use phoenix_model::DesiredState;
use phoenix_pki::{CaOptions, CaStore, Passphrase};

pub fn homelab() -> DesiredState {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    phoenix_model::validate_dir(&dir)
        .desired
        .expect("homelab loads")
}

pub fn rootesting() -> DesiredState {
    let dir = Path::new("/work/shared/fixtures/upstream/rootesting-2025-11-25/etc");
    phoenix_model::validate_dir(dir)
        .desired
        .expect("rootesting loads")
}

/// A fixed "now" (2026-06-01T00:00:00Z) so tests do not depend on the clock.
pub fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_272_000)
}

pub fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

pub fn init_ca(dir: &Path, pass: Option<&str>) -> CaStore {
    let opts = CaOptions {
        passphrase: pass.map(|p| Passphrase::new(p.as_bytes().to_vec())),
        kdf_iterations: 1000,
        ..CaOptions::default()
    };
    CaStore::init(dir, &opts, t0()).expect("init")
}

/// Run openssl; returns (success, stdout+stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

/// Unix seconds of a SystemTime, as openssl's `-attime` wants.
pub fn attime(t: SystemTime) -> String {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
