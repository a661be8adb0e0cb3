//! The step-ca client as an issuer for the manifest engine: the same [`IssuedLeaf`] and
//! [`IssuerIdentity`] the built-in CA's [`crate::LeafIssuer`] gives, so `phoenix ca issue
//! --step-ca …` can drive the same decisions (a second run issues nothing). Network I/O
//! through [`StepCaClient`].
//!
//! Limitation: step-ca's default leaf template always sets serverAuth + clientAuth, so a
//! `cert_type: client` entry is refused here rather than issued with the wrong usage.

use std::time::SystemTime;

use phoenix_model::model::CertKind;
use time::OffsetDateTime;

use super::StepCaError;
use super::client::{CsrRequest, StepCaClient};
use super::jws::ProvisionerKey;
use crate::issue::{IssuedLeaf, IssuerIdentity, LeafRequest, unix_seconds, validate_request};

/// A step-ca, a JWK provisioner, and who they issue as.
#[derive(Debug)]
pub struct StepCaIssuer {
    client: StepCaClient,
    provisioner: ProvisionerKey,
    identity: IssuerIdentity,
}

impl StepCaIssuer {
    /// Learn the CA's identity (root fingerprint, current intermediate key id) over one
    /// verified request.
    pub fn connect(client: StepCaClient, provisioner: ProvisionerKey) -> Result<Self, StepCaError> {
        let identity = IssuerIdentity {
            intermediate_key_id: client.intermediate_key_id()?,
            root_fingerprint: client.root_fingerprint(),
        };
        Ok(StepCaIssuer {
            client,
            provisioner,
            identity,
        })
    }

    pub fn client(&self) -> &StepCaClient {
        &self.client
    }

    /// Who issues (compare existing leaves against this).
    pub fn identity(&self) -> IssuerIdentity {
        self.identity.clone()
    }

    /// Validate `req` like the built-in CA does, then sign through step-ca with the entry's
    /// lifetime.
    pub fn issue(&self, req: &LeafRequest<'_>, now: SystemTime) -> Result<IssuedLeaf, StepCaError> {
        let csr_err = |reason: String| StepCaError::Csr { reason };
        validate_request(req).map_err(|e| csr_err(e.to_string()))?;
        if req.kind == CertKind::Client {
            return Err(csr_err(format!(
                "`{}` is a client certificate; step-ca's default template would add serverAuth \
                 (issue client certificates with the built-in CA)",
                req.common_name
            )));
        }
        // The token's `iat` is whole seconds, and step-ca refuses a token issued before its
        // own start ("token issued before the bootstrap of certificate authority"): right after
        // a (re)start the floor of `now` can fall before it. The next whole second cannot, and
        // stays well inside step-ca's one-minute leeway for times in the future.
        let fraction = now
            .duration_since(std::time::UNIX_EPOCH)
            .is_ok_and(|d| d.subsec_nanos() > 0);
        let secs = unix_seconds(now) + i64::from(fraction);
        let now = OffsetDateTime::from_unix_timestamp(secs)
            .map_err(|e| csr_err(format!("time out of range ({e})")))?;
        let request = CsrRequest {
            common_name: req.common_name.to_owned(),
            sans: req.sans.to_vec(),
        };
        let issued =
            self.client
                .sign_for(&request, &self.provisioner, now, Some(req.lifetime_hours))?;
        let info = crate::inspect::parse_leaf_pem(&issued.certificate_pem).map_err(|e| {
            StepCaError::Protocol {
                method: "POST",
                path: "/1.0/sign".into(),
                reason: format!("issued certificate: {e}"),
            }
        })?;
        Ok(IssuedLeaf {
            leaf_pem: issued.certificate_pem,
            intermediates_pem: issued.intermediates_pem,
            root_pem: issued.root_pem,
            key: issued.key,
            serial: info.serial,
            not_after: info.not_after,
        })
    }
}

impl crate::issue::LeafIssuer for StepCaIssuer {
    fn identity(&self) -> IssuerIdentity {
        StepCaIssuer::identity(self)
    }

    fn issue(&self, req: &LeafRequest<'_>, now: SystemTime) -> Result<IssuedLeaf, crate::PkiError> {
        StepCaIssuer::issue(self, req, now).map_err(crate::PkiError::from)
    }
}
