//! # phoenix-plan
//!
//! The pure planner: [`observed::ObservedState`] (what exists), [`plan::plan`] (what to do,
//! in dependency waves, with reasons and file diffs), [`action::Action`], ordering
//! ([`order`]) and config comparison ([`compare`]). No I/O, no clock, no randomness.

pub mod action;
pub mod compare;
pub mod display;
pub mod observed;
pub mod order;
pub mod plan;
pub mod spec;

pub use action::{Action, Reason};
pub use observed::ObservedState;
pub use plan::{Plan, PlanError, Request, plan};
