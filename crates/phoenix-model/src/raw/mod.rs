//! Raw serde types: the Phoenix JSON format exactly as written, every field documented for
//! `phoenix schema`. Validation turns them into the model (`crate::model`). No I/O.

pub mod common;
pub mod guests;
pub mod host;
pub mod hypervisor;
pub mod stacks;

pub use common::*;
pub use guests::*;
pub use host::*;
pub use hypervisor::*;
pub use stacks::*;
