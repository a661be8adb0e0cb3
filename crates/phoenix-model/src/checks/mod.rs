//! Semantic checks over the whole desired state: things no single value can be wrong about.
//! Each submodule is one family of checks; all of them run and every finding is kept.
//! No I/O.

mod certs;
mod identity;
mod ingress;
mod network;
mod routes;
mod stale;

pub use ingress::{SUPPORTED_FEATURES, label_entrypoints, route_nic};

use crate::diag::Diagnostics;
use crate::load::RawConfig;
use crate::model::DesiredState;

/// Run every check.
pub fn run(d: &DesiredState, raw: &RawConfig, diags: &mut Diagnostics) {
    identity::check(d, raw, diags);
    network::check(d, raw, diags);
    stale::check(d, raw, diags);
    ingress::check(d, raw, diags);
    routes::check(d, raw, diags);
    certs::check(d, diags);
}
