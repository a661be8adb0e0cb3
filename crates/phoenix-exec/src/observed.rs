//! What a target observed, as a document: `phoenix observe` prints it, `plan --observed`
//! plans against it and a saved plan ([`crate::saved`]) is checked with it. Pure data.

use std::collections::BTreeSet;

use phoenix_model::model::GuestId;
use phoenix_plan::ObservedState;
use phoenix_plan::firewall_api::FirewallState;
use serde::{Deserialize, Serialize};

/// The version of the saved-plan and observed-state documents.
pub const FORMAT_VERSION: u32 = 1;

/// What a target observed, as data: `phoenix observe` prints it and `plan --observed` plans
/// against it (with the same planner as the target).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedExport {
    pub format_version: u32,
    /// `lab PREFIX` or `pve NODE`.
    pub target: String,
    pub state: ObservedState,
    /// Every guest on the target, managed or not.
    pub existing: BTreeSet<GuestId>,
    /// The firewall as the target holds it (`None`: not observed).
    #[serde(default)]
    pub firewall: Option<FirewallState>,
}
