//! # phoenix-plan
//!
//! The pure planner: [`observed::ObservedState`] (what exists), [`plan::plan`] (what to do,
//! in dependency waves, with reasons and file diffs), [`action::Action`], ordering
//! ([`order`]), provisioning steps inside guests ([`provision`]), config comparison ([`compare`]), and certificates and trust ([`certs`]: issue /
//! renew / keep per manifest entry, the CA bundle in every trust store). No I/O, no clock, no
//! randomness: time and the CA's public material come in through [`PlanContext`].

pub mod action;
pub mod certs;
pub mod compare;
pub mod disk;
pub mod display;
pub mod fielddiff;
mod files;
pub mod fingerprint;
pub mod firewall_api;
mod guests;
pub mod observed;
pub mod order;
pub mod plan;
mod plan_types;
pub mod provision;
pub mod snapshots;
pub mod spec;
pub mod status;
pub mod subsystem;
pub mod swarm;
pub mod vendor;

pub use action::{Action, Reason};
pub use certs::{PkiContext, PlanContext, PlannedCertificate};
pub use observed::ObservedState;
pub use plan::{Plan, PlanError, Request, plan, plan_full, plan_with};
