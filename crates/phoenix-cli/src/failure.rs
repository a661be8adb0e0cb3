//! How a command says it failed: one `error: … / hint: …` pair on stderr, and the exit code
//! of a pipeline's failure.

use std::io::Write;

use phoenix_exec::target::{Failure, Stage};

use crate::exit;

/// `error: MESSAGE` and `  hint: HINT` on stderr.
pub(crate) fn error(message: &str, hint: &str) {
    crate::jsonout::note_error(message, hint);
    let _ = writeln!(anstream::stderr(), "error: {message}\n  hint: {hint}");
}

/// The pipeline's failure as the CLI reports it: observe failures are apply failures (3),
/// a configuration that cannot be planned a finding (1).
pub(crate) fn report_failure(f: &Failure) -> u8 {
    error(&f.message, &f.hint);
    match f.stage {
        Stage::Plan | Stage::Refused => exit::FAILED,
        _ => exit::APPLY_FAILED,
    }
}
