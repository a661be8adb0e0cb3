//! Semantic checks over the whole desired state: things no single value can be wrong about.
//! Each submodule is one family of checks; all of them run and every finding is kept.
//! No I/O.

mod identity;

use crate::diag::Diagnostics;
use crate::load::RawConfig;
use crate::model::DesiredState;

/// Run every check.
pub fn run(d: &DesiredState, raw: &RawConfig, diags: &mut Diagnostics) {
    identity::check(d, raw, diags);
}
