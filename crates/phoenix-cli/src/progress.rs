//! Progress on stderr: a spinner on a terminal, plain `… step` / `✓ done` lines otherwise.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A spinner on a terminal, plain lines otherwise (logs, CI).
pub(crate) struct Progress(Option<ProgressBar>);

impl Progress {
    pub(crate) fn new() -> Self {
        if std::io::stderr().is_terminal() {
            let pb = ProgressBar::new_spinner();
            pb.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>3} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            pb.enable_steady_tick(Duration::from_millis(80));
            Progress(Some(pb))
        } else {
            Progress(None)
        }
    }

    pub(crate) fn step(&self, msg: String) {
        match &self.0 {
            Some(pb) => pb.set_message(msg),
            None => {
                let _ = writeln!(anstream::stderr(), "… {msg}");
            }
        }
    }

    pub(crate) fn done(&self, msg: String) {
        match &self.0 {
            Some(pb) => pb.println(format!("✓ {msg}")),
            None => {
                let _ = writeln!(anstream::stderr(), "✓ {msg}");
            }
        }
    }

    pub(crate) fn finish(self) {
        if let Some(pb) = self.0 {
            pb.finish_and_clear();
        }
    }
}
