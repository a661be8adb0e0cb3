//! Trust distribution data: which roots to install (the current one, plus the previous ones
//! during a rotation overlap), as one PEM bundle, and where — the host's and every guest's
//! `/usr/local/share/ca-certificates/phoenix-root-ca.crt` followed by `update-ca-certificates`,
//! a path Traefik (`serversTransport.rootCAs`) and Nginx (`proxy_ssl_trusted_certificate`)
//! also read for upstream verification (see `phoenix_render::traefik::ROOT_CA_IN_GUEST`).
//! The planner turns these values into files and actions. Pure.
//!
//! One bundle file (not one file per root): Traefik and Nginx read a single path, and Debian's
//! `update-ca-certificates` concatenates the whole file into `/etc/ssl/certs/ca-certificates.crt`
//! (OpenSSL's hashed directory skips multi-certificate files — only the bundle matters here).

use phoenix_model::model::{DesiredState, GuestId};
use serde::Serialize;

use crate::ca::CaPublic;
use crate::error::PkiError;
use crate::inspect;

/// The system trust-store file phoenix owns, on the host and in every guest.
pub const TRUST_FILE: &str = "/usr/local/share/ca-certificates/phoenix-root-ca.crt";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum TrustTarget {
    Host,
    Guest(GuestId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustConsumer {
    /// `update-ca-certificates` → `/etc/ssl/certs/ca-certificates.crt`.
    SystemStore,
    /// Traefik `serversTransport.rootCAs` (upstream verification).
    TraefikUpstream,
    /// Nginx `proxy_ssl_trusted_certificate` (upstream verification).
    NginxUpstream,
}

/// A root to trust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustedRoot {
    pub generation: u32,
    pub current: bool,
    pub fingerprint_sha256: String,
    pub subject: String,
    pub not_after: String,
}

/// One file to place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustFile {
    pub target: TrustTarget,
    pub path: String,
    pub mode: String,
    pub consumers: Vec<TrustConsumer>,
}

/// Something to run after the file changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum TrustAction {
    UpdateCaCertificates {
        target: TrustTarget,
    },
    ReloadService {
        target: TrustTarget,
        service: String,
    },
}

/// Everything the planner needs to distribute trust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustDistribution {
    pub roots: Vec<TrustedRoot>,
    /// The content of every [`TrustFile`]: current root first, then previous ones.
    pub bundle_pem: String,
    pub files: Vec<TrustFile>,
    pub actions: Vec<TrustAction>,
}

/// Roots, bundle, files and actions for the host and every non-template guest.
pub fn trust_distribution(
    ca: &CaPublic,
    desired: &DesiredState,
) -> Result<TrustDistribution, PkiError> {
    let mut gens = vec![ca.current()];
    gens.extend(ca.previous().iter().cloned());
    let mut roots = Vec::new();
    let mut bundle_pem = String::new();
    for (i, g) in gens.iter().enumerate() {
        let der = inspect::pem_certificates(&g.root_pem)?;
        let Some(der) = der.first() else { continue };
        let s = inspect::summary(der)?;
        roots.push(TrustedRoot {
            generation: g.generation,
            current: i == 0,
            fingerprint_sha256: s.fingerprint_sha256,
            subject: s.subject,
            not_after: s.not_after,
        });
        bundle_pem.push_str(&inspect::der_to_pem(der));
    }
    let mut targets = vec![TrustTarget::Host];
    targets.extend(
        desired
            .guests
            .values()
            .filter(|g| !g.is_template)
            .map(|g| TrustTarget::Guest(g.id)),
    );
    let mut files = Vec::new();
    let mut actions = Vec::new();
    for t in targets {
        let mut consumers = vec![TrustConsumer::SystemStore];
        let mut reload = Vec::new();
        if let TrustTarget::Guest(id) = t {
            if desired.roles.internal_proxy == Some(id) {
                consumers.push(TrustConsumer::TraefikUpstream);
                reload.push("traefik");
            }
            if desired.roles.gateway == Some(id) {
                consumers.push(TrustConsumer::NginxUpstream);
                reload.push("nginx");
            }
        }
        files.push(TrustFile {
            target: t,
            path: TRUST_FILE.to_string(),
            mode: "0644".to_string(),
            consumers,
        });
        actions.push(TrustAction::UpdateCaCertificates { target: t });
        actions.extend(reload.into_iter().map(|s| TrustAction::ReloadService {
            target: t,
            service: s.to_string(),
        }));
    }
    Ok(TrustDistribution {
        roots,
        bundle_pem,
        files,
        actions,
    })
}
