//! The lab's places on this machine: each guest's file root under the state dir, an
//! in-guest path under a root, and the lab's CA (the lab's stand-in for the operator's
//! `--ca-dir`). Small file I/O only.

use std::path::{Path, PathBuf};

use phoenix_model::model::DesiredState;
use phoenix_pki::{CaOptions, CaStore};

use crate::{LabError, state_dir};

/// The file root of guest `id` in the lab `prefix`.
pub fn guest_root(prefix: &str, id: u32) -> PathBuf {
    state_dir(prefix).join("root").join(id.to_string())
}

/// `in_guest` (absolute) under `root`.
pub fn under(root: &Path, in_guest: &str) -> PathBuf {
    root.join(in_guest.trim_start_matches('/'))
}

/// The lab CA's directory.
pub fn lab_ca_dir(prefix: &str) -> PathBuf {
    state_dir(prefix).join("ca")
}

/// The lab's built-in CA (created on first use; unencrypted, in the state dir, outside
/// every guest root).
pub fn lab_ca(d: &DesiredState, prefix: &str) -> Result<CaStore, LabError> {
    let dir = lab_ca_dir(prefix);
    if dir.join(phoenix_pki::ca::STATE).is_file() {
        return CaStore::open(&dir, None).map_err(|e| LabError::Ingress(format!("lab CA: {e}")));
    }
    let mut opts = CaOptions::from_settings(&d.step_ca);
    opts.passphrase = None;
    CaStore::init(&dir, &opts, std::time::SystemTime::now())
        .map_err(|e| LabError::Ingress(format!("lab CA: {e}")))
}
