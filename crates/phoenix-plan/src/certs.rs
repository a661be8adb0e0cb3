//! Certificates and trust as part of the plan. For every manifest entry, and every Swarm VM's
//! derived Engine API server certificate ([`engine_certificates`]): issue (missing), renew
//! (and why) or keep — decided by `phoenix_pki::decide_leaf`, the same rule `phoenix ca issue`
//! uses, applied to what the observer reported ([`ObservedCertificate`]). And the CA's roots
//! (current + previous during a rotation overlap, from `phoenix_pki::trust_distribution`) as a
//! managed file on the host and in every non-template guest, followed by
//! `update-ca-certificates` and a reload of the trust consumers (Traefik, Nginx) when it changes.
//!
//! Pure: the time and the CA's public material come in through [`PlanContext`]. Without a CA
//! (`PlanContext::default()`), missing certificates are planned as issue, existing ones are not
//! checked, and no trust file is planned; the plan says so in a note.

use std::collections::BTreeSet;

use phoenix_model::model::{CertKind, Certificate, DesiredState};
use phoenix_pki::trust::{TrustAction, TrustTarget};
use phoenix_pki::{
    CaPublic, Decision, IssueReason, IssuerIdentity, KeyAlgorithm, KeyState, LeafInfo, PkiError,
    RenewalPolicy, TrustDistribution,
};
use phoenix_render::{FileTarget, RenderedFile};
use serde::Serialize;

use crate::action::{Action, Reason};
use crate::files::plan_file;
use crate::observed::{ObservedCertificate, ObservedKey, ObservedState};
use crate::plan_types::{PlanError, PlannedFile};

/// How an observer names the only key type phoenix issues.
pub const KEY_TYPE_ECDSA_P256: &str = "ecdsa-p256";

/// The note a plan carries when no CA was given.
pub const NO_CA_NOTE: &str = "no CA given (`--ca-dir`): certificates are planned as issue when \
     missing, existing ones are not checked, and trust files are not planned";

/// What the planner needs beyond desired and observed state, passed in so `plan` stays pure.
#[derive(Debug, Clone, Default)]
pub struct PlanContext {
    /// Unix seconds: "now" for renewal windows.
    pub now: i64,
    /// The CA's public side; `None` when no CA is known.
    pub pki: Option<PkiContext>,
}

/// The CA's public material: who issues now, what to trust, when to renew.
#[derive(Debug, Clone)]
pub struct PkiContext {
    pub identity: IssuerIdentity,
    pub trust: TrustDistribution,
    pub policy: RenewalPolicy,
}

impl PkiContext {
    /// From a loaded CA directory (public files only; no key is read).
    pub fn from_ca(
        ca: &CaPublic,
        desired: &DesiredState,
        policy: RenewalPolicy,
    ) -> Result<PkiContext, PkiError> {
        Ok(PkiContext {
            identity: ca.identity(),
            trust: phoenix_pki::trust_distribution(ca, desired)?,
            policy,
        })
    }
}

/// One manifest entry and what the plan decided for it (issue, renew or keep).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedCertificate {
    pub guest: phoenix_model::model::GuestId,
    pub common_name: String,
    pub cert_path: String,
    pub key_path: String,
    /// `None`: a certificate exists but no CA was given to check it against.
    pub decision: Option<Decision>,
    /// Serial of the certificate now at the destination.
    pub serial: Option<String>,
}

/// The facts an observer reported, in the form the pki engine compares.
pub fn observed_leaf(c: &ObservedCertificate) -> LeafInfo {
    let key_algorithm = match c.key_type.as_deref() {
        Some(t) if t.eq_ignore_ascii_case(KEY_TYPE_ECDSA_P256) => KeyAlgorithm::EcdsaP256,
        Some(t) => KeyAlgorithm::Other(t.to_string()),
        None => KeyAlgorithm::Other("(not observed)".to_string()),
    };
    let kind = match c.usage.as_deref() {
        Some("server") => Some(CertKind::Server),
        Some("client") => Some(CertKind::Client),
        _ => None,
    };
    LeafInfo {
        common_name: c.common_name.clone(),
        sans: c
            .sans
            .iter()
            .map(|s| phoenix_pki::san_from_text(s))
            .collect(),
        not_before: c.not_before,
        not_after: c.not_after,
        authority_key_id: c
            .issuer_key_id
            .as_deref()
            .map(|k| k.replace(':', "").to_ascii_lowercase()),
        key_algorithm,
        public_key: Vec::new(),
        kind,
        serial: c.serial.clone(),
    }
}

fn key_state(c: &ObservedCertificate) -> KeyState {
    match c.key {
        Some(ObservedKey::Matches) => KeyState::Matches,
        Some(ObservedKey::Mismatch) => KeyState::Mismatch,
        Some(ObservedKey::Missing) => KeyState::Missing,
        None => KeyState::NotObserved,
    }
}

fn sans_text(entry: &Certificate) -> Vec<String> {
    let set: BTreeSet<String> = entry.sans.iter().map(phoenix_pki::san_text).collect();
    set.into_iter().collect()
}

/// The Swarm VMs' Engine API server certificates, derived from the Swarm roles (never written
/// into the operator's manifest): CN the VM's name, SANs its name and every static address
/// (mesh and management), at the paths `daemon.json` names (`phoenix_render::dockerd`), key
/// 0600 root's, the manifest's default lifetime (step-ca's maximum), and docker restarted
/// after a renewal (dockerd reads its TLS files at start only).
pub fn engine_certificates(d: &DesiredState) -> Vec<Certificate> {
    use phoenix_render::dockerd;
    dockerd::engine_nodes(d)
        .into_iter()
        .filter_map(|n| {
            let guest = d.guest(n.guest)?;
            let mut sans = vec![phoenix_model::model::San::Dns(n.name.clone())];
            sans.extend(
                n.addresses
                    .iter()
                    .map(|a| phoenix_model::model::San::Ip(*a)),
            );
            sans.sort();
            sans.dedup();
            Some(Certificate {
                common_name: n.name.clone(),
                sans,
                guest: n.guest,
                cert_path: dockerd::SERVER_CERT.to_string(),
                key_path: dockerd::SERVER_KEY.to_string(),
                owner: "root".into(),
                group: "root".into(),
                include_ca: false,
                key_mode: 0o600,
                kind: CertKind::Server,
                lifetime_hours: phoenix_model::build::DEFAULT_CERT_LIFETIME_HOURS,
                post_renewal_command: Some(ENGINE_POST_RENEWAL.to_string()),
                loc: guest.loc.clone(),
            })
        })
        .collect()
}

/// What follows a renewal of an Engine API server certificate.
pub const ENGINE_POST_RENEWAL: &str = "systemctl restart docker";

/// Every certificate the plan delivers into guests: the manifest's entries, then the derived
/// Engine API certificates (one the manifest already places at the same guest and path is
/// the manifest's).
pub fn delivered_certificates(d: &DesiredState) -> Vec<Certificate> {
    let mut out = d.certificates.clone();
    for c in engine_certificates(d) {
        if !out
            .iter()
            .any(|m| m.guest == c.guest && m.cert_path == c.cert_path)
        {
            out.push(c);
        }
    }
    out
}

/// Decide every delivered certificate ([`delivered_certificates`]): the actions for
/// issue/renew, and the list of all entries.
pub(crate) fn plan_certificates(
    d: &DesiredState,
    observed: &ObservedState,
    ctx: &PlanContext,
) -> Result<(Vec<Action>, Vec<PlannedCertificate>), PlanError> {
    let mut actions = Vec::new();
    let mut planned = Vec::new();
    for entry in &delivered_certificates(d) {
        let guest = d.guest(entry.guest).ok_or_else(|| PlanError::Certificate {
            common_name: entry.common_name.clone(),
            reason: format!(
                "delivered to guest {}, which the configuration does not define",
                entry.guest
            ),
        })?;
        let cert_path = phoenix_pki::materialise::in_guest_path(guest, &entry.cert_path);
        let key_path = phoenix_pki::materialise::in_guest_path(guest, &entry.key_path);
        let existing = observed.certificate(entry.guest, &cert_path);
        let decision = match (&ctx.pki, existing) {
            (Some(pki), e) => Some(phoenix_pki::decide_leaf(
                entry,
                e.map(observed_leaf).as_ref(),
                e.map_or(KeyState::NotObserved, key_state),
                &pki.identity,
                ctx.now,
                &pki.policy,
            )),
            // Without a CA only absence is certain.
            (None, None) => Some(Decision::Issue {
                reason: IssueReason::Missing,
            }),
            (None, Some(_)) => None,
        };
        if let Some(decision) = decision.as_ref().filter(|d| !d.is_keep()) {
            actions.push(Action::IssueCertificate {
                guest: entry.guest,
                common_name: entry.common_name.clone(),
                sans: sans_text(entry),
                cert_path: cert_path.clone(),
                key_path: key_path.clone(),
                owner: entry.owner.clone(),
                group: entry.group.clone(),
                key_mode: entry.key_mode,
                kind: entry.kind,
                lifetime_hours: entry.lifetime_hours,
                include_ca: entry.include_ca,
                decision: decision.clone(),
                post_renewal: phoenix_pki::postrenewal::derive(entry, Some(guest)),
                post_renewal_command: entry.post_renewal_command.clone(),
            });
        }
        planned.push(PlannedCertificate {
            guest: entry.guest,
            common_name: entry.common_name.clone(),
            cert_path,
            key_path,
            decision,
            serial: existing.map(|c| c.serial.clone()),
        });
    }
    Ok((actions, planned))
}

fn file_target(t: TrustTarget) -> FileTarget {
    match t {
        TrustTarget::Host => FileTarget::Host,
        TrustTarget::Guest(id) => FileTarget::Guest(id),
    }
}

/// The trust bundle as managed files (root-owned, on the host and in every non-template guest).
pub fn trust_files(trust: &TrustDistribution) -> Vec<RenderedFile> {
    trust
        .files
        .iter()
        .map(|f| RenderedFile {
            target: file_target(f.target),
            path: f.path.clone(),
            content: trust.bundle_pem.clone(),
            owner: "root".into(),
            group: "root".into(),
            mode: u32::from_str_radix(&f.mode, 8).unwrap_or(0o644),
        })
        .collect()
}

/// Trust files with their diffs, and for each one that changes: write it, then
/// `update-ca-certificates`, then reload its consumers.
pub(crate) fn plan_trust(
    trust: &TrustDistribution,
    observed: &ObservedState,
) -> (Vec<Action>, Vec<PlannedFile>) {
    let mut actions = Vec::new();
    let mut files = Vec::new();
    for (f, tf) in trust_files(trust).into_iter().zip(&trust.files) {
        let path = f.path.clone();
        let (planned, write) = plan_file(f, observed);
        files.push(planned);
        let Some(write) = write else { continue };
        actions.push(write);
        let reason = || Reason::FileChanged { path: path.clone() };
        for a in trust.actions.iter() {
            match a {
                TrustAction::UpdateCaCertificates { target } if *target == tf.target => {
                    actions.push(Action::UpdateTrustStore {
                        target: file_target(*target),
                        reason: reason(),
                    });
                }
                TrustAction::ReloadService { target, service } if *target == tf.target => {
                    actions.push(Action::ReloadService {
                        target: file_target(*target),
                        service: service.clone(),
                        reason: reason(),
                    });
                }
                _ => {}
            }
        }
    }
    (actions, files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trust file the planner writes is the one Traefik and Nginx are configured to read.
    #[test]
    fn one_trust_path() {
        assert_eq!(
            phoenix_pki::trust::TRUST_FILE,
            phoenix_render::traefik::ROOT_CA_IN_GUEST
        );
    }

    #[test]
    fn observed_facts_map_to_the_engine_form() {
        let c = ObservedCertificate {
            guest: phoenix_model::model::GuestId(101),
            path: "/etc/x.crt".into(),
            serial: "0a".into(),
            common_name: Some("a.example".into()),
            sans: vec!["DNS:A.example".into(), "10.0.0.1".into()],
            not_before: 1,
            not_after: 2,
            issuer_key_id: Some("AB:CD".into()),
            key_type: Some("ecdsa-p256".into()),
            usage: Some("client".into()),
            key: None,
        };
        let l = observed_leaf(&c);
        assert_eq!(l.authority_key_id.as_deref(), Some("abcd"));
        assert_eq!(l.key_algorithm, KeyAlgorithm::EcdsaP256);
        assert_eq!(l.kind, Some(CertKind::Client));
        assert_eq!(l.sans.len(), 2);
        assert_eq!(key_state(&c), KeyState::NotObserved);
    }
}
