//! phoenix's client certificate for the Swarm VMs' Engine APIs (CN `phoenix`, client auth,
//! from the internal CA), in `<CA dir>/engine-client/` in Docker's `DOCKER_CERT_PATH` layout
//! (`ca.pem` = the trust bundle, `cert.pem`, `key.pem` 0600 in a 0700 directory). It lives
//! beside the CA that issues it on the machine phoenix runs on, so `phoenix swarm --target pve`
//! and `sync all`'s Swarm phase find it by default, whichever target (lab or node) issued it.
//!
//! Issued, renewed or kept by the rule the plan applies to the manifest's certificates
//! (`phoenix_pki::decide_leaf` against the files found); a second run writes nothing. Key
//! material never appears in a message. I/O: the three files.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use phoenix_model::model::{CertKind, Certificate, GuestId, San};
use phoenix_pki::engine::key_matches;
use phoenix_pki::{Decision, KeyState, LeafIssuer, LeafRequest, RenewalPolicy};

use super::{CA_FILE, CERT_FILE, DockerError, KEY_FILE, err};

/// The client certificate's common name (and DNS SAN).
pub const CLIENT_NAME: &str = "phoenix";
/// Its directory under the CA directory.
pub const CLIENT_DIR: &str = "engine-client";

/// `<ca_dir>/engine-client`: where phoenix keeps (and looks for) its Engine API client files.
pub fn client_dir(ca_dir: &Path) -> PathBuf {
    ca_dir.join(CLIENT_DIR)
}

/// Are `dir`'s three files there?
pub fn complete(dir: &Path) -> bool {
    [CA_FILE, CERT_FILE, KEY_FILE]
        .iter()
        .all(|f| dir.join(f).is_file())
}

/// The client certificate as a manifest-like entry (what [`decide`] compares against).
pub fn entry() -> Certificate {
    Certificate {
        common_name: CLIENT_NAME.to_string(),
        sans: vec![San::Dns(CLIENT_NAME.to_string())],
        guest: GuestId(0),
        cert_path: CERT_FILE.to_string(),
        key_path: KEY_FILE.to_string(),
        owner: "root".into(),
        group: "root".into(),
        include_ca: false,
        key_mode: 0o600,
        kind: CertKind::Client,
        lifetime_hours: phoenix_model::build::DEFAULT_CERT_LIFETIME_HOURS,
        post_renewal_command: None,
        // Not from the configuration: no file, no pointer.
        loc: phoenix_model::source::Location::new(phoenix_model::source::FileId(0), ""),
    }
}

/// Issue, renew or keep the files in `dir`, by `issuer`'s identity; a `ca.pem` that is not
/// `bundle_pem` counts as missing (the roots changed).
pub fn decide(dir: &Path, issuer: &dyn LeafIssuer, bundle_pem: &str, now: SystemTime) -> Decision {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let leaf = read(CERT_FILE).and_then(|c| phoenix_pki::parse_leaf_pem(&c).ok());
    let leaf = leaf.filter(|_| read(CA_FILE).as_deref() == Some(bundle_pem));
    let key = match (&leaf, read(KEY_FILE)) {
        (_, None) => KeyState::Missing,
        (Some(info), Some(k)) if key_matches(&k, info) => KeyState::Matches,
        (_, Some(_)) => KeyState::Mismatch,
    };
    phoenix_pki::decide_leaf(
        &entry(),
        leaf.as_ref(),
        key,
        &issuer.identity(),
        phoenix_pki::issue::unix_seconds(now),
        &RenewalPolicy::default(),
    )
}

/// Make `dir` hold a good client certificate: `Ok(None)` when kept, `Ok(Some(what))` when
/// issued (the key first, then the certificate, the bundle last — until `ca.pem` is written
/// the set counts as missing and is issued again).
pub fn ensure(
    dir: &Path,
    issuer: &dyn LeafIssuer,
    bundle_pem: &str,
    now: SystemTime,
) -> Result<Option<String>, DockerError> {
    let decision = decide(dir, issuer, bundle_pem, now);
    if decision.is_keep() {
        return Ok(None);
    }
    let e = entry();
    let leaf = issuer
        .issue(
            &LeafRequest {
                common_name: &e.common_name,
                sans: &e.sans,
                kind: e.kind,
                lifetime_hours: e.lifetime_hours,
            },
            now,
        )
        .map_err(|x| err(format!("issue the Engine API client certificate: {x}")))?;
    let io = |p: &Path, x: std::io::Error| err(format!("{}: {x}", p.display()));
    std::fs::create_dir_all(dir).map_err(|x| io(dir, x))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|x| io(dir, x))?;
    let _ = std::fs::remove_file(dir.join(CA_FILE));
    write_mode(&dir.join(KEY_FILE), leaf.key.expose(), 0o600)?;
    write_mode(&dir.join(CERT_FILE), &leaf.cert_file(false), 0o644)?;
    write_mode(&dir.join(CA_FILE), bundle_pem, 0o644)?;
    Ok(Some(format!(
        "issued the Engine API client certificate {CLIENT_NAME} (serial {}) into {} ({decision})",
        leaf.serial,
        dir.display()
    )))
}

/// Write `content` to `path` with `mode` (also when the file existed with another mode).
fn write_mode(path: &Path, content: &str, mode: u32) -> Result<(), DockerError> {
    let io = |x: std::io::Error| err(format!("{}: {x}", path.display()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io)?;
    f.write_all(content.as_bytes()).map_err(io)
}
