//! `--color auto|always|never`: one choice for every stream — stderr through `anstream`, the
//! plan's text on stdout through [`stdout`]. `auto` colours a terminal unless `NO_COLOR` is
//! set (and `CLICOLOR_FORCE` forces it, as anstream reads it).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::cli::ColorWhen;

static CHOICE: AtomicU8 = AtomicU8::new(0);

/// Set the choice for the rest of the run.
pub fn set(when: ColorWhen) {
    let (n, global) = match when {
        ColorWhen::Auto => (0, anstream::ColorChoice::Auto),
        ColorWhen::Always => (1, anstream::ColorChoice::Always),
        ColorWhen::Never => (2, anstream::ColorChoice::Never),
    };
    CHOICE.store(n, Ordering::Relaxed);
    global.write_global();
}

/// Whether text written to stdout is coloured.
pub fn stdout() -> bool {
    match CHOICE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}
