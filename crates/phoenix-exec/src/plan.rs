//! The plan every target applies: [`phoenix_plan::plan::plan_full`] for what was observed,
//! the firewall's API actions merged in, restricted to the run's subsystems. Pure: the
//! targets call it with their observation and the time.

use std::collections::BTreeSet;

use phoenix_model::model::{DesiredState, GuestId};
use phoenix_plan::firewall_api::FirewallState;
use phoenix_plan::plan::Plan;
use phoenix_plan::subsystem::{self, Subsystem};
use phoenix_plan::{Action, ObservedState, PlanContext, Request};
use phoenix_render::RenderOptions;

use crate::target::{Failure, Stage, SyncRequest};

/// What a target observed, as the planner needs it.
pub struct PlanInput<'a> {
    pub state: &'a ObservedState,
    /// Every guest that exists on the target, managed or not.
    pub existing: &'a BTreeSet<GuestId>,
    /// The firewall as the target holds it (`None`: not part of this run).
    pub firewall: Option<&'a FirewallState>,
    /// Unix seconds (certificate decisions).
    pub now: i64,
    /// The CA's public side, when the target issues with a known CA: existing certificates
    /// are then checked (issuer, expiry, names, key), not only their presence.
    pub pki: Option<phoenix_plan::PkiContext>,
}

/// A plan and the desired firewall it was planned against (for `status`).
#[derive(Debug, Clone)]
pub struct TargetPlan {
    pub plan: Plan,
    pub firewall: Option<FirewallState>,
}

/// The plan for `input`: the same on every target for the same observation.
pub fn plan_target(
    d: &DesiredState,
    input: &PlanInput<'_>,
    req: &SyncRequest,
    opts: &RenderOptions,
) -> Result<TargetPlan, Failure> {
    let ctx = PlanContext {
        now: input.now,
        pki: input.pki.clone(),
    };
    let provision = req
        .provision
        .then(phoenix_plan::provision::ProvisionOptions::default);
    let mut plan =
        phoenix_plan::plan::plan_full(d, input.state, &req.request, opts, &ctx, provision.as_ref())
            .map_err(|e| {
                Failure::new(
                    Stage::Plan,
                    e.to_string(),
                    "`phoenix plan` shows the same plan offline",
                )
            })?;
    let mut firewall = None;
    if req.request == Request::SyncAll {
        let fw_plan = match input.firewall {
            Some(observed_fw) => {
                let mut desired_fw = phoenix_plan::firewall_api::desired(d, opts);
                let present = present_guests(input.existing, &plan, req);
                let absent: Vec<String> = desired_fw
                    .guests
                    .iter()
                    .filter(|g| !present.contains(&g.id))
                    .map(|g| g.id.to_string())
                    .collect();
                if !absent.is_empty() {
                    plan.notes.push(format!(
                        "firewall of guest(s) {} not planned: they do not exist and are not created in this run",
                        absent.join(", ")
                    ));
                }
                desired_fw.guests.retain(|g| present.contains(&g.id));
                let fw_plan = phoenix_plan::firewall_api::plan(&desired_fw, observed_fw);
                firewall = Some(desired_fw);
                fw_plan
            }
            None => Default::default(),
        };
        phoenix_plan::firewall_api::merge_into(&mut plan, fw_plan);
    }
    if !req.only.is_empty() {
        subsystem::restrict(&mut plan, &req.only);
    }
    Ok(TargetPlan { plan, firewall })
}

/// Guests whose firewall can be written in this run: they exist, or the run creates them
/// (the firewall's wave follows the creates).
fn present_guests(
    existing: &BTreeSet<GuestId>,
    plan: &Plan,
    req: &SyncRequest,
) -> BTreeSet<GuestId> {
    let creating = req.includes(Subsystem::Guests);
    existing
        .iter()
        .copied()
        .chain(plan.actions().filter_map(|a| match a {
            Action::CreateGuest { id, .. } if creating => Some(*id),
            _ => None,
        }))
        .collect()
}
