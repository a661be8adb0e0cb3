//! # phoenix-model
//!
//! The Phoenix configuration format: loading the operator's files (`load`), decoding them
//! while collecting every problem (`decode`, `json`), building the explicit desired state
//! (`build` → [`model::DesiredState`]), the semantic checks (`checks`), located diagnostics
//! (`diag`) and the JSON Schema (`schema`).
//!
//! I/O: `load` reads configuration files; everything else is pure.

pub mod build;
pub mod checks;
pub mod decode;
pub mod diag;
pub mod json;
pub mod legacy;
pub mod load;
pub mod model;
pub mod raw;
pub mod schema;
pub mod secrets;
pub mod source;
pub mod summary;
pub mod values;

use std::path::Path;

pub use diag::{Code, Diagnostics, Finding, Severity};
pub use model::DesiredState;
pub use source::SourceMap;

/// The result of validating a configuration directory.
#[derive(Debug)]
pub struct Validation {
    pub sources: SourceMap,
    pub raw: load::RawConfig,
    /// `None` when the hypervisor file could not be read; present (possibly partial) otherwise.
    pub desired: Option<DesiredState>,
    pub diagnostics: Diagnostics,
}

impl Validation {
    /// Findings resolved to `file:line:col`.
    pub fn findings(&self) -> Vec<Finding> {
        self.diagnostics.resolve(&self.sources)
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.has_errors()
    }
}

/// Load, build and check the configuration in `dir`.
pub fn validate_dir(dir: &Path) -> Validation {
    let mut sources = SourceMap::default();
    let mut diagnostics = Diagnostics::default();
    let raw = load::load_dir(dir, &mut sources, &mut diagnostics);
    let desired = build::build(&raw, &mut diagnostics);
    if let Some(d) = &desired {
        checks::run(d, &raw, &mut diagnostics);
    }
    Validation {
        sources,
        raw,
        desired,
        diagnostics,
    }
}
