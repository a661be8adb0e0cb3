//! # phoenix-model
//!
//! The Phoenix configuration format: loading the operator's files (`load`), decoding them
//! while collecting every problem (`decode`, `json`), building the explicit desired state
//! (`build` → [`model::DesiredState`]), the semantic checks (`checks`), located diagnostics
//! (`diag`) and the JSON Schema (`schema`).
//!
//! I/O: `load` reads configuration files through `input`; everything else is pure.

pub mod build;
pub mod checks;
pub mod decode;
pub mod diag;
pub mod explain;
pub mod host;
pub mod image;
pub mod input;
pub mod json;
pub mod legacy;
pub mod load;
pub mod model;
pub mod notyet;
pub mod ports;
pub mod raw;
pub mod schema;
pub mod secrets;
pub mod source;
pub mod summary;
pub mod values;
mod yaml;

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
    /// A file could not be read or parsed: the checks across files were not run, and what
    /// they would report about the missing parts is left out (see [`Code::is_root_cause`]).
    pub checks_skipped: bool,
}

impl Validation {
    /// Findings resolved to `file:line:col`, root causes (unreadable or unparsable files)
    /// first.
    pub fn findings(&self) -> Vec<Finding> {
        let mut f = self.diagnostics.resolve(&self.sources);
        f.sort_by_key(|f| {
            !Code::ALL
                .iter()
                .any(|c| c.as_str() == f.code && c.is_root_cause())
        });
        f
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
    let checks_skipped = diagnostics.iter().any(|d| d.code.is_root_cause());
    let mut built = Diagnostics::default();
    let desired = build::build(&raw, &mut built);
    if let Some(d) = &desired
        && !checks_skipped
    {
        checks::run(d, &raw, &mut built);
    }
    // With a file missing, "guest 101 is not defined" and the like are knock-on findings of
    // that one root cause: leave them out.
    diagnostics.extend(
        built
            .iter()
            .filter(|d| !(checks_skipped && d.code.is_cross_reference()))
            .cloned(),
    );
    Validation {
        sources,
        raw,
        desired,
        diagnostics,
        checks_skipped,
    }
}
