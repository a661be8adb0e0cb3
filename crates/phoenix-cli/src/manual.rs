//! `phoenix completions SHELL` and `phoenix man [COMMAND…]`: generated from the clap
//! definitions ([`Cli`]), printed on stdout.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::exit;

/// Print the completion script for `shell`.
pub fn completions(shell: Shell) -> u8 {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "phoenix", &mut out);
    print(&out)
}

/// Print the man page of phoenix, or of the command at `path` (`["sync", "all"]`).
pub fn man(path: &[String]) -> u8 {
    let mut cmd = Cli::command();
    // Fills in each subcommand's `phoenix sync all` usage line.
    cmd.build();
    let mut page = cmd;
    let mut title = String::from("phoenix");
    for word in path {
        let Some(sub) = page.find_subcommand(word).cloned() else {
            let _ = writeln!(
                anstream::stderr(),
                "error: `{title}` has no command `{word}`\n  hint: `{} --help` lists them",
                title.replace('-', " ")
            );
            return exit::USAGE;
        };
        title = format!("{title}-{}", sub.get_name());
        page = sub.name(title.clone());
    }
    let mut out = Vec::new();
    if let Err(e) = clap_mangen::Man::new(page).render(&mut out) {
        let _ = writeln!(anstream::stderr(), "error: cannot render the man page: {e}");
        return exit::FAILED;
    }
    print(&out)
}

fn print(bytes: &[u8]) -> u8 {
    match std::io::stdout().lock().write_all(bytes) {
        Ok(()) => exit::OK,
        // `phoenix man | head` is not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            let _ = writeln!(anstream::stderr(), "error: cannot write output: {e}");
            exit::FAILED
        }
    }
}
