//! The manifest's certificates inside guests, through a [`GuestExec`]: observed (the leaf at
//! its path and whether the key next to it matches, for the planner's keep / renew decision)
//! and delivered (issued by the target's issuer; the key written with its owner, group and
//! mode before the certificate; then the post-renewal reloads in that guest). Target-neutral.
//! Key material never appears in a message.

use std::time::SystemTime;

use phoenix_model::model::{CertKind, GuestId};
use phoenix_pki::engine::key_matches;
use phoenix_pki::{KeyAlgorithm, LeafIssuer, LeafRequest, PostRenewalAction, san_from_text};
use phoenix_plan::Action;
use phoenix_plan::certs::KEY_TYPE_ECDSA_P256;
use phoenix_plan::observed::{ObservedCertificate, ObservedKey};

use crate::guest::{GuestExec, ProvisionError, guest_error};
use crate::shell::HostFile;

/// Certificate files are public.
pub const CERT_MODE: u32 = phoenix_pki::materialise::CERT_MODE;

/// The certificate at `cert_path` in the guest of `exec` as the planner compares it, and the
/// key at `key_path` next to it; `None` when there is no certificate file. A file that does
/// not parse as a certificate is reported as missing (it is replaced).
pub fn observe(
    exec: &dyn GuestExec,
    cert_path: &str,
    key_path: &str,
) -> Result<Option<ObservedCertificate>, ProvisionError> {
    let Some(cert) = exec.read_content(cert_path)? else {
        return Ok(None);
    };
    let Ok(info) = phoenix_pki::parse_leaf_pem(&cert) else {
        return Ok(None);
    };
    let key = match exec.read_content(key_path)? {
        None => ObservedKey::Missing,
        Some(k) if key_matches(&k, &info) => ObservedKey::Matches,
        Some(_) => ObservedKey::Mismatch,
    };
    Ok(Some(ObservedCertificate {
        guest: exec.guest(),
        path: cert_path.to_string(),
        serial: info.serial.clone(),
        common_name: info.common_name.clone(),
        sans: info.sans.iter().map(phoenix_pki::san_text).collect(),
        not_before: info.not_before,
        not_after: info.not_after,
        issuer_key_id: info.authority_key_id.clone(),
        key_type: Some(match info.key_algorithm {
            KeyAlgorithm::EcdsaP256 => KEY_TYPE_ECDSA_P256.to_string(),
            other => format!("{other:?}"),
        }),
        usage: info.kind.map(|k| match k {
            CertKind::Server => "server".to_string(),
            CertKind::Client => "client".to_string(),
        }),
        key: Some(key),
    }))
}

/// What delivering one certificate did, for the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub serial: String,
    /// The post-renewal actions carried out (`reload service nginx in guest 101`) and the ones
    /// left to another phase, with why.
    pub after: Vec<String>,
}

/// Issue the certificate of `action` (an [`Action::IssueCertificate`]) with `issuer` and put
/// it into the guest of `exec`: the key first (owner, group, the entry's mode), then the
/// certificate (owner, group, 0644; the root appended with `include_ca`), then the entry's
/// reloads and restarts in that guest (`systemctl`). Docker secrets are rotated by the Swarm
/// phase, which reads the new files by content.
pub fn deliver(
    action: &Action,
    issuer: &dyn LeafIssuer,
    exec: &dyn GuestExec,
    now: SystemTime,
) -> Result<Delivered, ProvisionError> {
    let Action::IssueCertificate {
        guest,
        common_name,
        sans,
        cert_path,
        key_path,
        owner,
        group,
        key_mode,
        kind,
        lifetime_hours,
        include_ca,
        post_renewal,
        ..
    } = action
    else {
        return Err(guest_error(
            exec,
            format!("not a certificate action: {action}"),
        ));
    };
    if *guest != exec.guest() {
        return Err(guest_error(
            exec,
            format!("certificate {common_name} belongs to guest {guest}"),
        ));
    }
    let sans: Vec<_> = sans.iter().map(|s| san_from_text(s)).collect();
    let req = LeafRequest {
        common_name,
        sans: &sans,
        kind: *kind,
        lifetime_hours: *lifetime_hours,
    };
    let issued = issuer
        .issue(&req, now)
        .map_err(|e| guest_error(exec, format!("issue {common_name}: {e}")))?;
    exec.write_file(
        key_path,
        &HostFile {
            content: issued.key.expose().to_string(),
            owner: owner.clone(),
            group: group.clone(),
            mode: *key_mode,
        },
    )?;
    exec.write_file(
        cert_path,
        &HostFile {
            content: issued.cert_file(*include_ca),
            owner: owner.clone(),
            group: group.clone(),
            mode: CERT_MODE,
        },
    )?;
    let mut after = Vec::new();
    for a in post_renewal {
        after.push(run_post_renewal(a, exec.guest(), exec)?);
    }
    Ok(Delivered {
        serial: issued.serial,
        after,
    })
}

fn run_post_renewal(
    a: &PostRenewalAction,
    here: GuestId,
    exec: &dyn GuestExec,
) -> Result<String, ProvisionError> {
    let (verb, guest, service) = match a {
        PostRenewalAction::ReloadService { guest, service } => ("reload", guest, service),
        PostRenewalAction::RestartService { guest, service } => ("restart", guest, service),
        PostRenewalAction::RotateDockerSecret { .. } => {
            return Ok(format!("{a}: by the Swarm phase (secrets follow content)"));
        }
    };
    if *guest != here {
        return Ok(format!("{a}: not this guest's, left to guest {guest}"));
    }
    // A service that is not installed or not running yet has nothing to reload: its start
    // (provisioning) reads the new files.
    let active = exec.run(&[
        "systemctl".to_string(),
        "is-active".to_string(),
        "--quiet".to_string(),
        service.clone(),
    ])?;
    if active.status != 0 {
        return Ok(format!("{a}: not running, starts with the new files"));
    }
    crate::guest::run_ok(
        exec,
        &["systemctl".to_string(), verb.to_string(), service.clone()],
    )?;
    Ok(a.to_string())
}
