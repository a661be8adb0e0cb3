//! How `verify` lays out its text: `--failed-only`, and lines cut to the terminal's width when
//! stdout is a terminal (whole lines when piped). Reads the terminal, prints nothing.

use std::io::IsTerminal;

use phoenix_verify::TextOptions;

use crate::cli::VerifyArgs;

pub fn options(args: &VerifyArgs) -> TextOptions {
    let stdout = std::io::stdout();
    let width = if stdout.is_terminal() {
        terminal_size::terminal_size_of(&stdout).map(|(w, _)| usize::from(w.0))
    } else {
        None
    };
    TextOptions {
        failed_only: args.failed_only,
        width,
    }
}
